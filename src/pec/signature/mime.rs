//! Exact MIME helpers for multipart/signed: header block, Content-Type
//! parameters, the exact bytes of each part, lenient base64.

// Header block, Content-Type and lenient base64 are the classifier's own
// helpers: one MIME reading for both.
pub(super) use crate::pec::mime::{base64_decode_lenient, body_offset, header, parse_content_type, parse_headers, split_multipart};

/// True when `data` has a LF not preceded by CR.
#[cfg(test)]
pub(super) fn has_bare_lf(data: &[u8]) -> bool {
    has_bare_lf_after(None, data)
}

/// [`has_bare_lf`] for a piece of a longer text whose byte before it was `prev`.
pub(super) fn has_bare_lf_after(prev: Option<u8>, data: &[u8]) -> bool {
    data.iter().enumerate().any(|(i, &b)| b == b'\n' && (if i == 0 { prev } else { Some(data[i - 1]) }) != Some(b'\r'))
}

/// [`bare_lf_to_crlf`] for a piece of a longer text whose byte before it
/// was `prev`: the canonical form goes to `out` in pieces.
pub(super) fn bare_lf_to_crlf_after(prev: Option<u8>, data: &[u8], out: &mut dyn FnMut(&[u8])) {
    let mut from = 0;
    for (i, &b) in data.iter().enumerate() {
        let before = if i == 0 { prev } else { Some(data[i - 1]) };
        if b == b'\n' && before != Some(b'\r') {
            out(&data[from..i]);
            out(b"\r");
            from = i;
        }
    }
    out(&data[from..]);
}

/// The canonical (RFC 8551 §3.1.1) form: every bare LF becomes CRLF.
#[cfg(test)]
pub(super) fn bare_lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    bare_lf_to_crlf_after(None, data, &mut |piece| out.extend_from_slice(piece));
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
        assert_eq!(split_multipart(body, "B", usize::MAX), vec![&b"A: 1\r\n\r\nhi"[..], &b"sig"[..]]);
        let lf = b"--B\nA\n\nb\n--B\nsig\n--B--\n";
        assert_eq!(split_multipart(lf, "B", usize::MAX), vec![&b"A\n\nb"[..], &b"sig"[..]]);
        let tricky = b"--B\r\nx --B\r\n--BB\r\n--B\r\n--B--\r\n";
        assert_eq!(split_multipart(tricky, "B", usize::MAX), vec![&b"x --B\r\n--BB"[..], &b""[..]]);
        let truncated = b"--B\r\nx\r\n--B\r\nsig";
        assert_eq!(split_multipart(truncated, "B", usize::MAX), vec![&b"x"[..], &b"sig"[..]]);
        assert!(split_multipart(b"no delimiters", "B", usize::MAX).is_empty());
        assert_eq!(split_multipart(b"--B\r\nonly", "B", usize::MAX), vec![&b"only"[..]]);
        // At most `max` parts: a hostile multipart costs no more than a real one.
        assert_eq!(split_multipart(b"--B\r\n1\r\n--B\r\n2\r\n--B\r\n3\r\n--B--\r\n", "B", 2), vec![&b"1"[..], &b"2"[..]]);
    }

    /// In pieces, cut anywhere, as in one: the signed part read back in chunks.
    #[test]
    fn canonical_form_in_pieces() {
        for text in [&b"\na\r\nb\nc\r"[..], b"\r\n\r\n", b"\n\n", b"x\r", b"\r\nx\ny"] {
            for cut in 0..=text.len() {
                let (a, b) = text.split_at(cut);
                let mut out = Vec::new();
                bare_lf_to_crlf_after(None, a, &mut |p| out.extend_from_slice(p));
                bare_lf_to_crlf_after(a.last().copied(), b, &mut |p| out.extend_from_slice(p));
                assert_eq!(out, bare_lf_to_crlf(text), "{text:?} cut {cut}");
                let found = has_bare_lf_after(None, a) || has_bare_lf_after(a.last().copied(), b);
                assert_eq!(found, has_bare_lf(text), "{text:?} cut {cut}");
            }
        }
    }

    #[test]
    fn canonical_form() {
        assert!(has_bare_lf(b"a\nb"));
        assert!(!has_bare_lf(b"a\r\nb\r"));
        assert_eq!(bare_lf_to_crlf(b"\na\r\nb\nc\r"), b"\r\na\r\nb\r\nc\r");
        assert_eq!(base64_decode_lenient(b"aGVs\r\nbG8=\r\n"), b"hello");
    }
}
