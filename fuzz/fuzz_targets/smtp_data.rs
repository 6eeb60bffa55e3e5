//! The DATA stream (`proto::codec::DotDecoder` in `Dialect::SmtpData`, the
//! SMTP smuggling guard) and its sending-side counterpart `DotStuffer`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::proto::codec::{Dialect, DotDecoder, DotStuffer};

/// Decodes `input` split at `at`; returns the output and where the terminator ended.
fn decode(input: &[u8], at: usize) -> (Vec<u8>, Option<usize>) {
    let mut d = DotDecoder::new(Dialect::SmtpData);
    let mut out = Vec::new();
    let at = at.min(input.len());
    let end = match d.feed(&input[..at], &mut out) {
        Some(n) => Some(n),
        None => d.feed(&input[at..], &mut out).map(|n| n + at),
    };
    (out, end)
}

fn stuff(content: &[u8]) -> Vec<u8> {
    let mut s = DotStuffer::new(Dialect::SmtpData);
    let mut wire = Vec::new();
    s.encode(content, &mut wire);
    s.finish(&mut wire);
    wire
}

fn assert_crlf_only(out: &[u8]) {
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };

    // Client bytes: the result does not depend on how the socket split them,
    // data ends only at CRLF.CRLF, and what is stored has CRLF line ends only.
    let (out, end) = decode(input, usize::MAX);
    let split = split as usize * input.len() / 255;
    assert_eq!(decode(input, split), (out.clone(), end), "depends on the split at {split}");
    if let Some(n) = end {
        assert!(n <= input.len());
        let full = [b"\r\n".as_slice(), &input[..n]].concat();
        assert!(full.ends_with(b"\r\n.\r\n"), "ended at {n} without CRLF.CRLF");
    }
    assert_crlf_only(&out);

    // Sending side: stuffing any content gives a wire form the decoder ends
    // exactly at its terminator, and normalised content survives unchanged.
    let wire = stuff(input);
    let (once, end) = decode(&wire, usize::MAX);
    assert_eq!(end, Some(wire.len()), "stuffed content ended early or never");
    assert_crlf_only(&once);
    let rewire = stuff(&once);
    assert_eq!(decode(&rewire, split), (once.clone(), Some(rewire.len())), "normalised content did not round-trip");
});
