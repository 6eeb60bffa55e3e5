//! Small, exact MIME helpers: header blocks, Content-Type parameters,
//! transfer decodings and the exact bytes of a multipart/signed first part.

use base64::Engine as _;

/// Offset of the body: just after the first empty line, or `raw.len()` when
/// there is none. Handles CRLF and bare LF line endings.
pub(crate) fn body_offset(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        // `i` is always at the start of a line here.
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

/// Decode bytes as UTF-8, each byte that is not part of valid UTF-8 as
/// ISO-8859-1 (raw Latin-1 in a header; one stray byte in UTF-8 text).
pub(crate) fn decode_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    out
}

/// Parse the header block at the start of `raw` into `(name, unfolded value)`
/// pairs, in order. Lines without a colon are skipped. At most
/// [`super::MAX_HEADERS`] headers are kept: the rest of a hostile header
/// section would only cost memory (classification flags such a message).
pub(crate) fn parse_headers(raw: &[u8]) -> Vec<(String, String)> {
    let end = body_offset(raw);
    let block = &raw[..end];
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
            if out.len() >= super::MAX_HEADERS {
                break;
            }
            let name = decode_lossy(&line[..colon]).trim().to_string();
            if name.is_empty() || name.contains(' ') {
                continue;
            }
            let value = decode_lossy(&line[colon + 1..]);
            out.push((name, value));
        }
    }
    for h in &mut out {
        h.1 = h.1.trim().to_string();
    }
    out
}

/// First header named `name` (case-insensitive), trimmed.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A parsed Content-Type (or Content-Disposition) value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ContentType {
    /// `type/subtype` (or the disposition), lower-cased.
    pub(crate) mime: String,
    /// Parameters with lower-cased names.
    pub(crate) params: Vec<(String, String)>,
}

impl ContentType {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parse `type/subtype; a=b; c="d e"` (quoted strings with backslash escapes).
pub(crate) fn parse_content_type(value: &str) -> ContentType {
    let mut chars = value.chars().peekable();
    let mut mime = String::new();
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
        mime.push(c);
    }
    let mut params = Vec::new();
    loop {
        // name
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            chars.next();
            if c == '=' || c == ';' {
                if c == ';' {
                    name.clear();
                    continue;
                }
                break;
            }
            name.push(c);
        }
        if chars.peek().is_none() && name.trim().is_empty() {
            break;
        }
        // value
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
        if chars.peek().is_none() {
            break;
        }
    }
    ContentType { mime: mime.trim().to_ascii_lowercase(), params }
}

/// The exact bytes of the first part of a top-level `multipart/signed`
/// message: from just after the CRLF of the first boundary line up to (not
/// including) the CRLF that precedes the next boundary line. These are the
/// bytes an S/MIME signature covers. `None` when `raw` is not a well-formed
/// multipart/signed.
pub fn signed_part(raw: &[u8]) -> Option<&[u8]> {
    let headers = parse_headers(raw);
    let ct = parse_content_type(header(&headers, "Content-Type")?);
    if ct.mime != "multipart/signed" {
        return None;
    }
    let boundary = ct.param("boundary")?;
    if boundary.is_empty() {
        return None;
    }
    let delim = [b"--", boundary.as_bytes()].concat();
    let body_start = body_offset(raw);
    let body = raw.get(body_start..)?;

    // The first delimiter line.
    let mut pos = 0usize;
    let first = loop {
        let found = find(&body[pos..], &delim)? + pos;
        let at_line_start = found == 0 || body[found - 1] == b'\n';
        if at_line_start && is_delimiter_end(&body[found + delim.len()..]) {
            break found;
        }
        pos = found + 1;
    };
    let after = first + delim.len();
    let nl = body[after..].iter().position(|&b| b == b'\n')? + after;
    let start = nl + 1;

    // The next delimiter line, preceded by CRLF (or a bare LF).
    let mut pos = start;
    loop {
        let found = find(&body[pos..], &delim)? + pos;
        if found > start && body[found - 1] == b'\n' && is_delimiter_end(&body[found + delim.len()..]) {
            let mut end = found - 1;
            if end > start && body[end - 1] == b'\r' {
                end -= 1;
            }
            return raw.get(body_start + start..body_start + end);
        }
        pos = found + 1;
    }
}

/// The parts of a multipart body, each the exact bytes between the end of a
/// delimiter line (after its CRLF or LF) and the CRLF (or LF) that precedes the
/// next delimiter line. The first part returned is complete (followed by a
/// delimiter); a trailing part without a closing delimiter (truncated message)
/// is returned up to the end of the body. Empty when no delimiter is found.
/// Stops after `max` parts.
pub(crate) fn split_multipart<'a>(body: &'a [u8], boundary: &str, max: usize) -> Vec<&'a [u8]> {
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
                if parts.len() >= max {
                    return parts;
                }
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
        && parts.len() < max
    {
        parts.push(&body[start..]);
    }
    parts
}

/// After `--boundary` a delimiter line continues with `--`, whitespace or
/// the line end.
pub(crate) fn is_delimiter_end(rest: &[u8]) -> bool {
    match rest.first() {
        None => true,
        Some(b'\r' | b'\n' | b' ' | b'\t') => true,
        Some(b'-') => rest.get(1) == Some(&b'-'),
        _ => false,
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decode a transfer encoding (`base64`, `quoted-printable`, anything else
/// as identity). Lenient: invalid input never fails.
pub(crate) fn transfer_decode(body: &[u8], encoding: Option<&str>) -> Vec<u8> {
    let enc = encoding.unwrap_or("").trim().to_ascii_lowercase();
    match enc.as_str() {
        "base64" => base64_decode_lenient(body),
        "quoted-printable" => qp_decode(body),
        _ => body.to_vec(),
    }
}

/// Base64 ignoring anything outside the alphabet; stops at the first `=`.
pub(crate) fn base64_decode_lenient(body: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> =
        body.iter().copied().take_while(|&b| b != b'=').filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/').collect();
    // A single dangling sextet cannot encode a byte.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean).unwrap_or_default()
}

/// Quoted-printable decoding (RFC 2045), lenient.
pub(crate) fn qp_decode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            let rest = &body[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (rest.first().and_then(|c| hex_val(*c)), rest.get(1).and_then(|c| hex_val(*c))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(b);
            i += 1;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable encoding with CRLF line endings and soft breaks at 76.
pub(crate) fn qp_encode(text: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = text.split('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut cur = 0usize;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = (b.is_ascii_graphic() && b != b'=') || ((b == b' ' || b == b'\t') && !last);
            let piece = if literal { (b as char).to_string() } else { format!("={b:02X}") };
            if cur + piece.len() > 75 {
                out.push_str("=\r\n");
                cur = 0;
            }
            cur += piece.len();
            out.push_str(&piece);
        }
        if li + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

/// Base64 with CRLF line breaks every 76 characters (and a final CRLF).
pub(crate) fn base64_lines(data: &[u8]) -> String {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(enc.len() + enc.len() / 38 + 2);
    for chunk in enc.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// An unstructured header value: as is when ASCII, else RFC 2047 encoded
/// words (`=?UTF-8?B?...?=`) folded with CRLF SP.
pub(crate) fn encode_header_text(text: &str) -> String {
    let text: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    if text.is_ascii() {
        return text;
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Normalise line endings to CRLF (bare LF and bare CR become CRLF).
pub(crate) fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 20);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_unfold_and_case() {
        let raw = b"X-Ricevuta: \r\n  avvenuta-consegna\r\nsubject: a\r\n\tb\r\n\r\nbody: x\r\n";
        let h = parse_headers(raw);
        assert_eq!(header(&h, "x-ricevuta"), Some("avvenuta-consegna"));
        assert_eq!(header(&h, "SUBJECT"), Some("a\tb"));
        assert_eq!(header(&h, "body"), None);
    }

    #[test]
    fn content_type_table() {
        type Params<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, &str, Params)] = &[
            ("text/plain", "text/plain", &[]),
            (
                "Multipart/Signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"a;b\"",
                "multipart/signed",
                &[("protocol", "application/pkcs7-signature"), ("micalg", "sha-256"), ("boundary", "a;b")],
            ),
            ("application/xml; NAME=daticert.xml;", "application/xml", &[("name", "daticert.xml")]),
            ("x/y; a=\"q\\\"uote\"", "x/y", &[("a", "q\"uote")]),
            ("", "", &[]),
            ("x/y; ;; =; a", "x/y", &[("a", "")]),
        ];
        for (input, mime, params) in cases {
            let ct = parse_content_type(input);
            assert_eq!(ct.mime, *mime, "{input}");
            for (n, v) in *params {
                assert_eq!(ct.param(n), Some(*v), "{input} {n}");
            }
        }
    }

    #[test]
    fn qp_roundtrip() {
        for s in ["plain", "città è già", "a = b", "trailing space ", &"x".repeat(200), "line1\nline2\r\n"] {
            let enc = qp_encode(s);
            assert!(enc.lines().all(|l| l.len() <= 76), "{enc}");
            let dec = qp_decode(enc.as_bytes());
            assert_eq!(String::from_utf8(dec).unwrap_or_default(), s.replace("\r\n", "\n").replace('\n', "\r\n"));
        }
    }

    #[test]
    fn base64_lenient_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"aGVsbG8=", b"hello"),
            (b"aGVs\r\nbG8=\r\n", b"hello"),
            (b"aGVsbG8", b"hello"),
            (b"!!aGVsbG8=garbage", b"hello"),
            (b"a", b""),
            (b"", b""),
        ];
        for (input, want) in cases {
            assert_eq!(base64_decode_lenient(input), *want);
        }
    }

    #[test]
    fn signed_part_table() {
        let ok = b"Content-Type: multipart/signed; boundary=\"B\"\r\n\r\npreamble\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nsig\r\n--B--\r\n";
        assert_eq!(signed_part(ok), Some(&b"Content-Type: text/plain\r\n\r\nhi"[..]));
        let lf = b"Content-Type: multipart/signed; boundary=B\n\n--B\nA\n\nb\n--B\nsig\n--B--\n";
        assert_eq!(signed_part(lf), Some(&b"A\n\nb"[..]));
        // Boundary-like text inside the part is not a delimiter.
        let tricky = b"Content-Type: multipart/signed; boundary=B\r\n\r\n--B\r\nx --B\r\n--BB\r\n--B\r\n--B--\r\n";
        assert_eq!(signed_part(tricky), Some(&b"x --B\r\n--BB"[..]));
        let none: &[&[u8]] = &[
            b"",
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nx\r\n--B--\r\n",
            b"Content-Type: multipart/signed\r\n\r\n--B\r\nx\r\n--B--\r\n",
            b"Content-Type: multipart/signed; boundary=B\r\n\r\n--B\r\nx",
            b"Content-Type: multipart/signed; boundary=B\r\n\r\nno delimiters",
        ];
        for raw in none {
            assert_eq!(signed_part(raw), None, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn crlf_and_encoded_words() {
        assert_eq!(to_crlf(b"a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd");
        assert_eq!(encode_header_text("plain"), "plain");
        let enc = encode_header_text(&"città ".repeat(20));
        assert!(enc.starts_with("=?UTF-8?B?"));
        assert!(enc.split("\r\n").all(|l| l.len() < 78));
    }
}
