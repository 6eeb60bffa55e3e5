//! Parsing IMAP response lines (RFC 3501 section 7), pure.

/// Longest response line accepted (literals excluded).
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// `tag OK text` -> (Ok, "text"), if `line` is the tagged reply to `tag`.
pub fn tagged<'a>(line: &'a str, tag: &str) -> Option<(Status, &'a str)> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => return None,
    };
    Some((status, text))
}

/// The size of the literal announced at the end of `line` (`{123}` or `{123+}`).
pub fn literal_len(line: &str) -> Option<u64> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    let digits = inner[open + 1..].trim_end_matches('+');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The words of `* CAPABILITY ...` (or of a `[CAPABILITY ...]` response code), upper-cased.
pub fn capabilities(line: &str) -> Option<Vec<String>> {
    let upper = line.to_ascii_uppercase();
    let start = upper.find("CAPABILITY ")? + "CAPABILITY ".len();
    let words = upper[start..].split(']').next().unwrap_or("");
    Some(words.split_ascii_whitespace().map(str::to_owned).collect())
}

/// `* 5 EXISTS` -> 5 (`word` = "EXISTS", "RECENT", "EXPUNGE", "FETCH").
pub fn numbered(line: &str, word: &str) -> Option<u32> {
    let rest = line.strip_prefix("* ")?;
    let (n, rest) = rest.split_once(' ')?;
    let kw = rest.split([' ', '(']).next()?;
    kw.eq_ignore_ascii_case(word).then(|| n.parse().ok()).flatten()
}

/// The number in a response code such as `* OK [UIDVALIDITY 3857529045] UIDs valid`.
pub fn code_number(line: &str, code: &str) -> Option<u32> {
    let upper = line.to_ascii_uppercase();
    let at = upper.find(&format!("[{code} "))? + code.len() + 2;
    upper[at..].split(']').next()?.trim().parse().ok()
}

/// One message's attributes from `* n FETCH (UID 7 RFC822.SIZE 123 FLAGS (\Seen))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchAttrs {
    pub uid: Option<u32>,
    pub size: Option<u64>,
    /// Upper-cased, as `\SEEN`.
    pub flags: Option<Vec<String>>,
}

pub fn fetch_attrs(line: &str) -> Option<FetchAttrs> {
    numbered(line, "FETCH")?;
    let open = line.find('(')?;
    let body = &line[open + 1..];
    let upper = body.to_ascii_uppercase();
    let number_after = |key: &str| -> Option<u64> {
        let mut from = 0;
        while let Some(i) = upper[from..].find(key) {
            let at = from + i;
            let before_ok = at == 0 || matches!(upper.as_bytes()[at - 1], b' ' | b'(');
            let after = &upper[at + key.len()..];
            if before_ok && let Some(rest) = after.strip_prefix(' ') {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                return digits.parse().ok();
            }
            from = at + key.len();
        }
        None
    };
    let flags = upper.find("FLAGS (").map(|i| {
        let rest = &upper[i + "FLAGS (".len()..];
        rest.split(')').next().unwrap_or("").split_ascii_whitespace().map(str::to_owned).collect()
    });
    Some(FetchAttrs { uid: number_after("UID").and_then(|u| u32::try_from(u).ok()), size: number_after("RFC822.SIZE"), flags })
}

/// The UIDs of `* SEARCH 3 5 9`.
pub fn search(line: &str) -> Option<Vec<u32>> {
    let rest = line.strip_prefix("* ")?;
    let (kw, nums) = rest.split_once(' ').unwrap_or((rest, ""));
    kw.eq_ignore_ascii_case("SEARCH").then(|| nums.split_ascii_whitespace().filter_map(|n| n.parse().ok()).collect())
}

/// Short, printable excerpt of a server line for error messages.
pub fn excerpt(line: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&line[..line.len().min(120)]).chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if line.len() > 120 { format!("{s}...") } else { s }
}

/// `"..."` with `\` and `"` escaped; `None` if it cannot be a quoted string (CR, LF, NUL).
pub fn quoted(s: &str) -> Option<String> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return None;
    }
    Some(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lines_the_client_depends_on() {
        assert_eq!(tagged("p3 OK [READ-WRITE] SELECT completed", "p3"), Some((Status::Ok, "[READ-WRITE] SELECT completed")));
        assert_eq!(tagged("p3 no quota", "p3"), Some((Status::No, "quota")));
        assert_eq!(tagged("p31 OK done", "p3"), None);
        assert_eq!(tagged("* OK p3", "p3"), None);
        assert_eq!(literal_len("* 1 FETCH (UID 7 BODY[] {1234}"), Some(1234));
        assert_eq!(literal_len("* 1 FETCH (BODY[] {12+}"), Some(12));
        assert_eq!(literal_len("* 1 FETCH (BODY[] {}"), None);
        assert_eq!(literal_len("* 1 FETCH (BODY[] {-1}"), None);
        assert_eq!(literal_len("* 1 FETCH (BODY[] {99999999999999999999999}"), None);
        assert_eq!(capabilities("* CAPABILITY IMAP4rev1 IDLE uidplus MOVE").unwrap(), ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE"]);
        assert_eq!(capabilities("* OK [CAPABILITY IMAP4rev1 IDLE] ready").unwrap(), ["IMAP4REV1", "IDLE"]);
        assert_eq!(numbered("* 23 EXISTS", "EXISTS"), Some(23));
        assert_eq!(numbered("* 23 RECENT", "EXISTS"), None);
        assert_eq!(code_number("* OK [UIDVALIDITY 3857529045] UIDs valid", "UIDVALIDITY"), Some(3857529045));
        assert_eq!(code_number("* OK [UIDNEXT 4392] Predicted next UID", "UIDVALIDITY"), None);
        let a = fetch_attrs("* 12 FETCH (UID 77 RFC822.SIZE 4423 FLAGS (\\Seen \\Answered))").unwrap();
        assert_eq!(a, FetchAttrs { uid: Some(77), size: Some(4423), flags: Some(vec!["\\SEEN".into(), "\\ANSWERED".into()]) });
        let b = fetch_attrs("* 2 FETCH (FLAGS () RFC822.SIZE 9 UID 3)").unwrap();
        assert_eq!((b.uid, b.size, b.flags), (Some(3), Some(9), Some(vec![])));
        assert_eq!(search("* SEARCH 3 5 9"), Some(vec![3, 5, 9]));
        assert_eq!(search("* SEARCH"), Some(vec![]));
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("a\r\nb"), None);
    }
}
