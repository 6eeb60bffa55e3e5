//! POP3 response parsing (`pop3::response`): status, STAT, LIST, UIDL and
//! CAPA lines, and the streaming multi-line (RETR) decoder (`proto::codec`
//! in `Dialect::Pop3`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::pop3::response::{Capabilities, parse_list_line, parse_stat, parse_status, parse_uidl_line, trim_eol, valid_uid};
use pecgate::proto::codec::{Dialect, DotDecoder, dot_stuff, unstuff_line};

/// Decodes `input` split at `at`: (output, bytes consumed when the terminator was seen).
fn decode(input: &[u8], at: usize) -> (Vec<u8>, Option<usize>) {
    let mut d = DotDecoder::new(Dialect::Pop3);
    let mut out = Vec::new();
    let at = at.min(input.len());
    let end = match d.feed(&input[..at], &mut out) {
        Some(n) => Some(n),
        None => d.feed(&input[at..], &mut out).map(|n| n + at),
    };
    assert_eq!(d.is_done(), end.is_some());
    (out, end)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };

    // Single lines, as the client reads them.
    let mut lines = Vec::new();
    for raw in input.split_inclusive(|&b| b == b'\n') {
        let line = trim_eol(raw);
        if let Ok(reply) = parse_status(line) {
            assert!(!reply.text.chars().any(char::is_control), "control character in {:?}", reply.text);
            let _ = reply.code();
            let _ = parse_stat(&reply.text);
        }
        let _ = parse_list_line(line);
        if let Ok((n, uid)) = parse_uidl_line(line) {
            assert!(n >= 1 && valid_uid(uid.as_bytes()), "UIDL {n} {uid:?}");
        }
        if let Some(l) = unstuff_line(line) {
            lines.push(l);
        }
    }
    let caps = Capabilities::parse(&lines);
    let _ = (caps.stls(), caps.sasl("PLAIN"), caps.args("SASL"));

    // The RETR stream: same result however the socket splits it, never more
    // bytes out than in, and the decoder stops right after ".\r\n".
    let (out, end) = decode(input, usize::MAX);
    let split = split as usize * input.len() / 255;
    assert_eq!(decode(input, split), (out.clone(), end), "depends on the split at {split}");
    let consumed = end.unwrap_or(input.len());
    assert!(consumed <= input.len() && out.len() <= consumed);
    if let Some(n) = end {
        let full = [b"\r\n".as_slice(), &input[..n]].concat();
        assert!(full.ends_with(b"\r\n.\r\n"), "ended at {n} without CRLF.CRLF");
    }

    // A CRLF-terminated body survives dot-stuffing and decoding byte for byte
    // (PEC signatures cover the exact bytes).
    if input.is_empty() || input.ends_with(b"\r\n") {
        let mut wire = Vec::new();
        dot_stuff(Dialect::Pop3, input, &mut wire);
        assert_eq!(decode(&wire, split), (input.to_vec(), Some(wire.len())), "body did not round-trip");
    }
});
