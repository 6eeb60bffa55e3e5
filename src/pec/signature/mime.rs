//! Exact MIME helpers for multipart/signed: header block, Content-Type
//! parameters, the exact bytes of each part, lenient base64.

use base64::Engine as _;

/// Offset of the body: just after the first empty line (CRLF or bare LF), or
/// `raw.len()` when there is none.
pub(super) fn body_offset(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(b"\r\n") {
            return i + 2;
        }
        if raw[i] == b'\n' {
            return i + 1;
        }
        match raw[i..].iter().position(|&b| b == b'\n') {
            Some(p) => i += p + 1,
            None => return raw.len(),
        }
    }
    raw.len()
}

fn decode_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// `(name, unfolded value)` pairs of the header block at the start of `raw`.
pub(super) fn parse_headers(raw: &[u8]) -> Vec<(String, String)> {
    let block = &raw[..body_offset(raw)];
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push_str(&decode_lossy(line));
            }
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = decode_lossy(&line[..colon]).trim().to_string();
            if name.is_empty() || name.contains(' ') {
                continue;
            }
            out.push((name, decode_lossy(&line[colon + 1..])));
        }
    }
    for h in &mut out {
        h.1 = h.1.trim().to_string();
    }
    out
}

/// First header named `name` (case-insensitive).
pub(super) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A parsed Content-Type value: lower-cased `type/subtype` and parameters
/// with lower-cased names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ContentType {
    pub(super) mime: String,
    pub(super) params: Vec<(String, String)>,
}

impl ContentType {
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parse `type/subtype; a=b; c="d e"` (quoted strings with backslash escapes).
pub(super) fn parse_content_type(value: &str) -> ContentType {
    let mut chars = value.chars().peekable();
    let mut mime = String::new();
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
        mime.push(c);
    }
    let mut params = Vec::new();
    while chars.peek().is_some() {
        let mut name = String::new();
        let mut has_value = false;
        for c in chars.by_ref() {
            if c == ';' {
                name.clear();
                continue;
            }
            if c == '=' {
                has_value = true;
                break;
            }
            name.push(c);
        }
        if !has_value {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    _ => val.push(c),
                }
            }
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
                val.push(c);
            }
        }
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() {
            params.push((name, val.trim().to_string()));
        }
    }
    ContentType { mime: mime.trim().to_ascii_lowercase(), params }
}

/// After `--boundary` a delimiter line continues with `--`, whitespace or the
/// line end (RFC 2046 §5.1.1).
fn is_delimiter_end(rest: &[u8]) -> bool {
    match rest.first() {
        None => true,
        Some(b'\r' | b'\n' | b' ' | b'\t') => true,
        Some(b'-') => rest.get(1) == Some(&b'-'),
        _ => false,
    }
}

/// The parts of a multipart body, each the exact bytes between the end of a
/// delimiter line (after its CRLF or LF) and the CRLF (or LF) that precedes the
/// next delimiter line. The first part returned is complete (followed by a
/// delimiter); a trailing part without a closing delimiter (truncated message)
/// is returned up to the end of the body. Empty when no delimiter is found.
pub(super) fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = [b"--", boundary.as_bytes()].concat();
    let mut parts = Vec::new();
    // Start of the current part (after a delimiter line), if any.
    let mut open: Option<usize> = None;
    let mut i = 0usize;
    while i < body.len() {
        let line_end = body[i..].iter().position(|&b| b == b'\n').map_or(body.len(), |p| i + p + 1);
        let line = &body[i..line_end];
        if line.starts_with(&delim) && is_delimiter_end(&line[delim.len()..]) {
            if let Some(start) = open {
                let mut end = i;
                if end > start && body[end - 1] == b'\n' {
                    end -= 1;
                    if end > start && body[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                parts.push(&body[start..end.max(start)]);
            }
            if line[delim.len()..].starts_with(b"--") {
                return parts;
            }
            open = Some(line_end);
        }
        i = line_end;
    }
    if let Some(start) = open
        && start < body.len()
    {
        parts.push(&body[start..]);
    }
    parts
}

/// Base64 ignoring anything outside the alphabet; stops at the first `=`.
pub(super) fn base64_decode_lenient(body: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> =
        body.iter().copied().take_while(|&b| b != b'=').filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/').collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean).unwrap_or_default()
}

/// True when `data` has a LF not preceded by CR.
pub(super) fn has_bare_lf(data: &[u8]) -> bool {
    data.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
}

/// The canonical (RFC 8551 §3.1.1) form: every bare LF becomes CRLF.
pub(super) fn bare_lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_fold_case_and_quoted_boundary() {
        let raw =
            b"content-TYPE: Multipart/Signed;\r\n\tprotocol=\"application/pkcs7-signature\";\r\n boundary=\"a;b \\\"c\"\r\n\r\nbody: x\r\n";
        let h = parse_headers(raw);
        let ct = parse_content_type(header(&h, "Content-Type").unwrap_or_default());
        assert_eq!(ct.mime, "multipart/signed");
        assert_eq!(ct.param("boundary"), Some("a;b \"c"));
        assert_eq!(ct.param("PROTOCOL"), Some("application/pkcs7-signature"));
        assert_eq!(header(&h, "body"), None);
        let ct = parse_content_type("x/y; ;; =; a");
        assert_eq!(ct.mime, "x/y");
    }

    #[test]
    fn split_table() {
        let body = b"preamble\r\n--B\r\nA: 1\r\n\r\nhi\r\n--B \r\nsig\r\n--B--\r\nepilogue";
        assert_eq!(split_multipart(body, "B"), vec![&b"A: 1\r\n\r\nhi"[..], &b"sig"[..]]);
        let lf = b"--B\nA\n\nb\n--B\nsig\n--B--\n";
        assert_eq!(split_multipart(lf, "B"), vec![&b"A\n\nb"[..], &b"sig"[..]]);
        let tricky = b"--B\r\nx --B\r\n--BB\r\n--B\r\n--B--\r\n";
        assert_eq!(split_multipart(tricky, "B"), vec![&b"x --B\r\n--BB"[..], &b""[..]]);
        let truncated = b"--B\r\nx\r\n--B\r\nsig";
        assert_eq!(split_multipart(truncated, "B"), vec![&b"x"[..], &b"sig"[..]]);
        assert!(split_multipart(b"no delimiters", "B").is_empty());
        assert_eq!(split_multipart(b"--B\r\nonly", "B"), vec![&b"only"[..]]);
    }

    #[test]
    fn canonical_form() {
        assert!(has_bare_lf(b"a\nb"));
        assert!(!has_bare_lf(b"a\r\nb\r"));
        assert_eq!(bare_lf_to_crlf(b"\na\r\nb\nc\r"), b"\r\na\r\nb\r\nc\r");
        assert_eq!(base64_decode_lenient(b"aGVs\r\nbG8=\r\n"), b"hello");
    }
}
