//! Tables and properties of the framing codecs: the dot codec in both
//! dialects (SMTP DATA's smuggling guard, POP3's byte transparency) and the
//! command line splitter.

use super::*;
use proptest::prelude::*;

/// Decodes `input` in one piece: (body, where the terminator ended).
fn decode(dialect: Dialect, input: &[u8]) -> (Vec<u8>, Option<usize>) {
    decode_in_pieces(dialect, input, &[])
}

/// Decodes `input` fed in pieces cut at `cuts` (any order, clamped to the input).
fn decode_in_pieces(dialect: Dialect, input: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<usize>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| (*c).min(input.len())).collect();
    points.extend([0, input.len()]);
    points.sort_unstable();
    let mut d = DotDecoder::new(dialect);
    let mut out = Vec::new();
    for w in points.windows(2) {
        if let Some(n) = d.feed(&input[w[0]..w[1]], &mut out) {
            assert!(d.is_done());
            return (out, Some(w[0] + n));
        }
    }
    assert!(!d.is_done());
    (out, None)
}

/// Rows of (wire, SMTP DATA result, POP3 result), a result being the body
/// and where the terminator ended.
#[test]
fn decoding() {
    type Decoded<'a> = (&'a [u8], Option<usize>);
    let cases: &[(&[u8], Decoded<'_>, Decoded<'_>)] = &[
        (b".\r\n", (b"", Some(3)), (b"", Some(3))),
        (b"a\r\n.\r\n", (b"a\r\n", Some(6)), (b"a\r\n", Some(6))),
        (b"a\r\n.\r\nMAIL FROM", (b"a\r\n", Some(6)), (b"a\r\n", Some(6))),
        (b"a\r\n.\r\nNEXT", (b"a\r\n", Some(6)), (b"a\r\n", Some(6))),
        (b"\r\n.\r\n", (b"\r\n", Some(5)), (b"\r\n", Some(5))),
        // stuffed dots are removed, one per line
        (b"..a\r\n.\r\n", (b".a\r\n", Some(8)), (b".a\r\n", Some(8))),
        (b"a\r\n..\r\n.\r\n", (b"a\r\n.\r\n", Some(10)), (b"a\r\n.\r\n", Some(10))),
        (b"..\r\n.\r\n", (b".\r\n", Some(7)), (b".\r\n", Some(7))),
        (b"...\r\n.\r\n", (b"..\r\n", Some(8)), (b"..\r\n", Some(8))),
        (b"..x\r\n.\r\n", (b".x\r\n", Some(8)), (b".x\r\n", Some(8))),
        (b".x\r\n.\r\n", (b"x\r\n", Some(7)), (b"x\r\n", Some(7))),
        (b"a\r\n. \r\n.\r\n", (b"a\r\n \r\n", Some(10)), (b"a\r\n \r\n", Some(10))),
        // 8-bit and NUL pass through
        (b"\xe0\x00\r\n.\r\n", (b"\xe0\x00\r\n", Some(7)), (b"\xe0\x00\r\n", Some(7))),
        // a bare LF or CR: SMTP ends the line there (stored as CRLF), POP3 keeps it as data
        (b"a\nb\r\n.\r\n", (b"a\r\nb\r\n", Some(8)), (b"a\nb\r\n", Some(8))),
        (b"a\rb\r\n.\r\n", (b"a\r\nb\r\n", Some(8)), (b"a\rb\r\n", Some(8))),
        (b"a\r\r\n.\r\n", (b"a\r\n\r\n", Some(7)), (b"a\r\r\n", Some(7))),
        (b".\n\r\n.\r\n", (b"\r\n\r\n", Some(7)), (b"\n\r\n", Some(7))),
        // smuggling variants: content in both, never a terminator
        (b"a\n.\nMAIL FROM:<x>\r\n.\r\n", (b"a\r\n\r\nMAIL FROM:<x>\r\n", Some(22)), (b"a\n.\nMAIL FROM:<x>\r\n", Some(22))),
        (b"a\r.\rRCPT\r\n.\r\n", (b"a\r\n\r\nRCPT\r\n", Some(13)), (b"a\r.\rRCPT\r\n", Some(13))),
        (b"a\n.\r\nDATA\r\n.\r\n", (b"a\r\n\r\nDATA\r\n", Some(14)), (b"a\n.\r\nDATA\r\n", Some(14))),
        (b"a\r\n.\nx\r\n.\r\n", (b"a\r\n\r\nx\r\n", Some(11)), (b"a\r\n\nx\r\n", Some(11))),
        (b"a\r.\r\nb\r\n.\r\n", (b"a\r\n\r\nb\r\n", Some(11)), (b"a\r.\r\nb\r\n", Some(11))),
        (b".\r.\r\n.\r\n", (b"\r\n\r\n", Some(8)), (b"\r.\r\n", Some(8))),
        // no terminator yet
        (b"a\r\n", (b"a\r\n", None), (b"a\r\n", None)),
        (b"a\r\n.", (b"a\r\n", None), (b"a\r\n", None)),
        (b"a\r\n.\r", (b"a\r\n", None), (b"a\r\n", None)),
        (b"a\r\n.\n", (b"a\r\n\r\n", None), (b"a\r\n\n", None)),
    ];
    for (wire, smtp, pop3) in cases {
        for (dialect, (body, end)) in [(Dialect::SmtpData, smtp), (Dialect::Pop3, pop3)] {
            let (out, got_end) = decode(dialect, wire);
            let got = (out.escape_ascii().to_string(), got_end);
            assert_eq!(got, (body.escape_ascii().to_string(), *end), "{dialect:?} wire {}", wire.escape_ascii());
        }
    }
}

#[test]
fn decoder_after_done_consumes_nothing() {
    for dialect in [Dialect::SmtpData, Dialect::Pop3] {
        let mut d = DotDecoder::new(dialect);
        let mut out = Vec::new();
        assert_eq!(d.feed(b".\r\n", &mut out), Some(3));
        assert!(d.is_done());
        assert_eq!(d.feed(b"more", &mut out), Some(0));
        assert_eq!(d.feed(b"", &mut out), Some(0));
        assert!(out.is_empty(), "{dialect:?}");
    }
}

/// Stuffing whole bodies and in pieces: (body, wire form) rows where the
/// dialects agree, then (body, SMTP DATA wire form, POP3 wire form) rows
/// where a bare CR or LF makes them differ.
#[test]
fn stuffing() {
    let same: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b".a\r\n.\r\n", b"..a\r\n..\r\n.\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        // a missing final CRLF is added
        (b"a", b"a\r\n.\r\n"),
        (b"no eol", b"no eol\r\n.\r\n"),
    ];
    // SMTP ends the line at a bare LF or CR (and stuffs what follows), POP3 keeps it as data.
    let differ: &[(&[u8], &[u8], &[u8])] = &[
        (b"a\n.b\n", b"a\r\n..b\r\n.\r\n", b"a\n.b\n\r\n.\r\n"),
        (b"a\n.b\r\n", b"a\r\n..b\r\n.\r\n", b"a\n.b\r\n.\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n.\r\n", b"a\r.b\r\n.\r\n"),
        (b"a\r.b\r\n", b"a\r\n..b\r\n.\r\n", b"a\r.b\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n", b"a\r\r\n.\r\n"),
    ];
    let rows = same.iter().map(|(body, wire)| (*body, *wire, *wire)).chain(differ.iter().copied());
    for (body, smtp, pop3) in rows {
        for (dialect, wire) in [(Dialect::SmtpData, smtp), (Dialect::Pop3, pop3)] {
            let mut out = Vec::new();
            dot_stuff(dialect, body, &mut out);
            assert_eq!(out.escape_ascii().to_string(), wire.escape_ascii().to_string(), "{dialect:?} body {}", body.escape_ascii());
            // The streaming encoder gives the same whatever the split.
            for at in 0..=body.len() {
                let mut s = DotStuffer::new(dialect);
                let mut split = Vec::new();
                s.encode(&body[..at], &mut split);
                s.encode(&body[at..], &mut split);
                s.finish(&mut split);
                assert_eq!(split, out, "{dialect:?} body {} split at {at}", body.escape_ascii());
            }
        }
    }
}

#[test]
fn listing_lines() {
    let cases: &[(&[u8], Option<&[u8]>)] =
        &[(b".", None), (b"..", Some(b".")), (b".x", Some(b"x")), (b"1 a", Some(b"1 a")), (b"", Some(b""))];
    for (line, want) in cases {
        assert_eq!(unstuff_line(line), *want, "{}", line.escape_ascii());
    }
}

#[test]
fn split_lines() {
    assert_eq!(split_line(b"EHLO x\r\nrest"), Some((&b"EHLO x"[..], 8)));
    assert_eq!(split_line(b"EHLO x\nrest"), Some((&b"EHLO x"[..], 7)));
    assert_eq!(split_line(b"EHLO x"), None);
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::SmtpData), Just(Dialect::Pop3)]
}

/// Bytes weighted towards the ones the codec cares about.
fn tricky_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..max)
}

/// Content with CRLF line ends only (no bare CR or LF), ending in CRLF.
fn crlf_content() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            proptest::collection::vec(any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'), 0..20)
        ],
        0..40,
    )
    .prop_map(|parts| {
        let mut v: Vec<u8> = parts.concat();
        if !v.is_empty() && !v.ends_with(b"\r\n") {
            v.extend_from_slice(b"\r\n");
        }
        v
    })
}

/// Bodies as POP3 serves them: CRLF-terminated lines of any bytes, bare CR
/// and LF included.
fn pop3_body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()];
    proptest::collection::vec(proptest::collection::vec(byte, 0..12), 0..12).prop_map(|lines| {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(&l);
            body.extend_from_slice(b"\r\n");
        }
        body
    })
}

fn stuffed(dialect: Dialect, body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    dot_stuff(dialect, body, &mut wire);
    wire
}

proptest! {
    /// CRLF content survives stuff -> decode byte for byte in both dialects,
    /// wherever the stream is split.
    #[test]
    fn crlf_content_round_trips(dialect in dialect(), content in crlf_content(), cuts in proptest::collection::vec(0usize..2000, 0..4)) {
        let wire = stuffed(dialect, &content);
        prop_assert_eq!(decode_in_pieces(dialect, &wire, &cuts), (content, Some(wire.len())));
    }

    /// POP3 keeps a body's exact bytes (PEC signatures cover them), bare CR
    /// and LF included, and stops right after the terminator.
    #[test]
    fn pop3_body_round_trips(body in pop3_body(), cuts in proptest::collection::vec(0usize..400, 0..4), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut wire = stuffed(Dialect::Pop3, &body);
        let end = wire.len();
        wire.extend_from_slice(&tail);
        prop_assert_eq!(decode_in_pieces(Dialect::Pop3, &wire, &cuts), (body, Some(end)));
    }

    /// Without bare CR or LF on the wire the dialects cannot be told apart:
    /// the stuffing rules really are the same.
    #[test]
    fn dialects_agree_without_bare_eol(wire in crlf_content(), at in 0usize..2000) {
        prop_assert_eq!(decode_in_pieces(Dialect::SmtpData, &wire, &[at]), decode_in_pieces(Dialect::Pop3, &wire, &[at]));
    }

    /// Any bytes: no panic, the result does not depend on the split, and an
    /// end is reported only right after a CRLF.CRLF (or a .CRLF at the start).
    #[test]
    fn ends_only_on_strict_terminator(dialect in dialect(), input in tricky_bytes(300), at in 0usize..300) {
        let (out, end) = decode(dialect, &input);
        prop_assert_eq!(decode_in_pieces(dialect, &input, &[at]), (out, end));
        if let Some(n) = end {
            let full = [b"\r\n".as_slice(), &input[..n]].concat();
            prop_assert!(full.ends_with(b"\r\n.\r\n"));
        }
    }

    /// SMTP DATA stores CRLF line ends only, whatever the client sent.
    #[test]
    fn smtp_data_output_is_crlf_only(input in tricky_bytes(300)) {
        let (out, _) = decode(Dialect::SmtpData, &input);
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' { prop_assert!(i > 0 && out[i - 1] == b'\r'); }
            if b == b'\r' { prop_assert!(out.get(i + 1) == Some(&b'\n')); }
        }
    }

    /// POP3 never writes more than it consumed (the body streams through a
    /// fixed buffer, and nothing is added to it).
    #[test]
    fn pop3_never_grows(input in proptest::collection::vec(any::<u8>(), 0..256), at in 0usize..256) {
        let (out, end) = decode_in_pieces(Dialect::Pop3, &input, &[at]);
        let consumed = end.unwrap_or(input.len());
        prop_assert!(consumed <= input.len());
        prop_assert!(out.len() <= consumed);
    }
}
