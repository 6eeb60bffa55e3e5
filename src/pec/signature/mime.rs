//! Exact MIME helpers for multipart/signed: header block, Content-Type
//! parameters, the exact bytes of each part, lenient base64.

// Header block, Content-Type and lenient base64 are the classifier's own
// helpers: one MIME reading for both.
pub(super) use crate::pec::mime::{base64_decode_lenient, body_offset, header, is_delimiter_end, parse_content_type, parse_headers};

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
