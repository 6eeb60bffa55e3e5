//! Pure POP3 response parsing (RFC 1939, RFC 2449), with no I/O, so that every
//! rule can be table-tested and fuzzed apart from the network code.
//!
//! Multi-line bodies and listings are dot-unstuffed by the codec SMTP DATA
//! uses too, `proto::codec` with `Dialect::Pop3` (byte-transparent: PEC
//! messages carry an S/MIME signature over their exact bytes).

/// Longest response line (status or listing line) accepted, CRLF included.
/// RFC 2449 caps responses at 512 octets; real servers exceed that, so allow
/// a generous margin while still refusing a server that never ends a line.
pub const MAX_LINE: usize = 8 * 1024;

/// Longest unique-id, RFC 1939 section 7.
pub const MAX_UID_LEN: usize = 70;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a POP3 status line: {line}")]
    Status { line: String },
    #[error("malformed {what}: {line}")]
    Malformed { what: &'static str, line: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// A printable, bounded rendering of bytes from the server, for error
/// messages and logs (server text is untrusted: no control characters).
pub fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 160;
    let mut s = String::new();
    for b in line.iter().take(MAX) {
        s.extend(std::ascii::escape_default(*b).map(char::from));
    }
    if line.len() > MAX {
        s.push_str("...");
    }
    s
}

/// Strips one trailing CRLF (or a lone LF, which some servers send on status
/// lines) from a line.
pub fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A status line: `+OK text` or `-ERR text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    /// The text after the status indicator, sanitised for display.
    pub text: String,
}

impl Reply {
    /// The RFC 2449 response code, e.g. `IN-USE` for `-ERR [IN-USE] locked`.
    pub fn code(&self) -> Option<&str> {
        let rest = self.text.strip_prefix('[')?;
        let end = rest.find(']')?;
        Some(&rest[..end])
    }
}

/// Parses a status line (without its CRLF). Only the exact upper-case
/// indicators of RFC 1939 count; anything else is a protocol error.
pub fn parse_status(line: &[u8]) -> Result<Reply> {
    let (ok, rest) = if let Some(rest) = line.strip_prefix(b"+OK") {
        (true, rest)
    } else if let Some(rest) = line.strip_prefix(b"-ERR") {
        (false, rest)
    } else {
        return Err(Error::Status { line: excerpt(line) });
    };
    let text = match rest.split_first() {
        None => &[][..],
        Some((b' ', text)) => text,
        Some(_) => return Err(Error::Status { line: excerpt(line) }),
    };
    Ok(Reply { ok, text: printable(text) })
}

/// Server text as a display string: lossy UTF-8, control characters replaced.
fn printable(text: &[u8]) -> String {
    String::from_utf8_lossy(text).chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A decimal number as POP3 writes it: digits only (no sign, no spaces).
fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// A message number: 1-based per RFC 1939.
fn msg_number(field: &[u8]) -> Option<u32> {
    number::<u32>(field).filter(|n| *n >= 1)
}

fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b' ').filter(|f| !f.is_empty())
}

/// The text of a `+OK` to STAT: `count size`; later text is allowed by RFC 1939.
pub fn parse_stat(text: &str) -> Result<(u32, u64)> {
    let mut f = fields(text.as_bytes());
    let count = f.next().and_then(number::<u32>);
    let size = f.next().and_then(number::<u64>);
    match (count, size) {
        (Some(c), Some(s)) => Ok((c, s)),
        _ => Err(Error::Malformed { what: "STAT reply", line: excerpt(text.as_bytes()) }),
    }
}

/// A scan listing line (`n size`), from multi-line LIST or the text of `+OK`
/// to `LIST n`. RFC 1939 allows text after the size, so it is ignored.
pub fn parse_list_line(line: &[u8]) -> Result<(u32, u64)> {
    let mut f = fields(line);
    let n = f.next().and_then(msg_number);
    let size = f.next().and_then(number::<u64>);
    match (n, size) {
        (Some(n), Some(s)) => Ok((n, s)),
        _ => Err(Error::Malformed { what: "LIST line", line: excerpt(line) }),
    }
}

/// Whether `uid` is a valid RFC 1939 unique-id: 1 to 70 octets in 0x21..=0x7E.
/// The fetcher uses uids as keys and in file names, so the rule is enforced.
pub fn valid_uid(uid: &[u8]) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_LEN && uid.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A unique-id listing line (`n uid`), from multi-line UIDL or the text of
/// `+OK` to `UIDL n`. Exactly two fields.
pub fn parse_uidl_line(line: &[u8]) -> Result<(u32, String)> {
    let bad = || Error::Malformed { what: "UIDL line", line: excerpt(line) };
    let mut f = fields(line);
    let n = f.next().and_then(msg_number).ok_or_else(bad)?;
    let uid = f.next().filter(|u| valid_uid(u)).ok_or_else(bad)?;
    if f.next().is_some() {
        return Err(bad());
    }
    // valid_uid admits only ASCII, so this cannot fail; map anyway rather than unwrap.
    let uid = String::from_utf8(uid.to_vec()).map_err(|_| bad())?;
    Ok((n, uid))
}

/// The capabilities a server announced with CAPA (RFC 2449).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// (upper-cased tag, arguments as sent).
    entries: Vec<(String, Vec<String>)>,
}

impl Capabilities {
    /// Builds from the unstuffed lines of a CAPA response. Unparseable
    /// (non-UTF-8) lines are skipped: an unknown capability is never needed.
    pub fn parse<L: AsRef<[u8]>>(lines: &[L]) -> Self {
        let mut entries = Vec::new();
        for line in lines {
            let Ok(line) = std::str::from_utf8(line.as_ref()) else { continue };
            let mut words = line.split_ascii_whitespace();
            let Some(tag) = words.next() else { continue };
            entries.push((tag.to_ascii_uppercase(), words.map(str::to_owned).collect()));
        }
        Self { entries }
    }

    pub fn has(&self, tag: &str) -> bool {
        self.entries.iter().any(|(t, _)| t.eq_ignore_ascii_case(tag))
    }

    pub fn args(&self, tag: &str) -> Option<&[String]> {
        self.entries.iter().find(|(t, _)| t.eq_ignore_ascii_case(tag)).map(|(_, a)| a.as_slice())
    }

    /// Whether the `SASL` capability lists `mechanism` (RFC 5034).
    pub fn sasl(&self, mechanism: &str) -> bool {
        self.args("SASL").is_some_and(|a| a.iter().any(|m| m.eq_ignore_ascii_case(mechanism)))
    }

    pub fn stls(&self) -> bool {
        self.has("STLS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A table row: wire line and the parse result wanted (None: rejected).
    type Case<'a, T> = (&'a [u8], Option<T>);

    #[test]
    fn status_lines() {
        let cases: &[Case<'_, (bool, &str)>] = &[
            (b"+OK", Some((true, ""))),
            (b"+OK ", Some((true, ""))),
            (b"+OK POP3 ready <1.2@x>", Some((true, "POP3 ready <1.2@x>"))),
            (b"-ERR", Some((false, ""))),
            (b"-ERR [IN-USE] locked", Some((false, "[IN-USE] locked"))),
            (b"-ERR bad\x01ctl", Some((false, "bad?ctl"))),
            (b"+OKAY", None),
            (b"-ERROR x", None),
            (b"+ok", None),
            (b"", None),
            (b"+ ", None),
            (b"HTTP/1.1 200 OK", None),
        ];
        for (line, want) in cases {
            let got = parse_status(line).ok().map(|r| (r.ok, r.text));
            assert_eq!(got, want.map(|(ok, t)| (ok, t.to_string())), "{}", excerpt(line));
        }
    }

    #[test]
    fn response_codes() {
        let cases = [("[IN-USE] locked", Some("IN-USE")), ("[SYS/TEMP] later", Some("SYS/TEMP")), ("no code", None), ("[open", None)];
        for (text, want) in cases {
            assert_eq!(Reply { ok: false, text: text.into() }.code(), want, "{text}");
        }
    }

    #[test]
    fn stat_replies() {
        let cases = [
            ("2 320", Some((2, 320))),
            ("0 0", Some((0, 0))),
            ("3 99999999999 extra", Some((3, 99_999_999_999))),
            ("2", None),
            ("", None),
            ("a b", None),
            ("-1 3", None),
            ("+1 3", None),
            ("4294967296 1", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_stat(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn list_lines() {
        let cases: &[Case<'_, (u32, u64)>] = &[
            (b"1 120", Some((1, 120))),
            (b"7 0", Some((7, 0))),
            (b"2 300 extra info", Some((2, 300))),
            (b"0 12", None),
            (b"1", None),
            (b"x 12", None),
            (b"1 1.5", None),
            (b"", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_list_line(line).ok(), *want, "{}", excerpt(line));
        }
    }

    #[test]
    fn uidl_lines() {
        let long_ok = format!("1 {}", "a".repeat(70));
        let too_long = format!("1 {}", "a".repeat(71));
        let cases: Vec<Case<'_, (u32, &str)>> = vec![
            (b"1 whqtswO00WBw418f9t5JxYwZ", Some((1, "whqtswO00WBw418f9t5JxYwZ"))),
            (b"12 !~", Some((12, "!~"))),
            (long_ok.as_bytes(), Some((1, &long_ok[2..]))),
            (too_long.as_bytes(), None),
            (b"1", None),
            (b"1 ", None),
            (b"0 abc", None),
            (b"1 ab\x7f", None),
            (b"1 ab\xc3\xa8", None),
            (b"1 a\tb", None),
            (b"1 abc def", None),
            (b"a abc", None),
        ];
        for (line, want) in cases {
            let want = want.map(|(n, u)| (n, u.to_string()));
            assert_eq!(parse_uidl_line(line).ok(), want, "{}", excerpt(line));
        }
    }

    #[test]
    fn capabilities() {
        let lines: Vec<&[u8]> = vec![b"USER", b"uidl", b"SASL PLAIN LOGIN", b"STLS", b"IMPLEMENTATION x y", b"", b"\xff\xfe"];
        let c = Capabilities::parse(&lines);
        assert!(c.has("UIDL") && c.has("user") && c.stls());
        assert!(c.sasl("plain") && c.sasl("LOGIN") && !c.sasl("CRAM-MD5"));
        assert!(!c.has("TOP"));
        assert_eq!(c.args("IMPLEMENTATION"), Some(&["x".to_string(), "y".to_string()][..]));
        let none = Capabilities::parse(&[b"USER"]);
        assert!(!none.stls() && !none.sasl("PLAIN"));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(line in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse_status(&line);
            let _ = parse_list_line(&line);
            let _ = parse_uidl_line(&line);
            let _ = parse_stat(&String::from_utf8_lossy(&line));
            let _ = Capabilities::parse(&[&line]);
        }
    }
}
