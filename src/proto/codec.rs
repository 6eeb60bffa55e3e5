//! SMTP wire framing, no I/O: command lines and the DATA stream.
//!
//! DATA decoding follows RFC 5321 §4.5.2 (dot-unstuffing) with one rule
//! against SMTP smuggling: the end of data is *only* `<CRLF>.<CRLF>`. A bare
//! LF or a bare CR still ends a content line (as Postfix's
//! `smtpd_forbid_bare_newline = normalize` does), and is stored as CRLF, so
//! `<LF>.<LF>`, `<CR>.<CR>` and `<LF>.<CR><LF>` are message content, never a
//! terminator. Because what we store has CRLF line ends only and the client
//! side dot-stuffs it again ([`DotStuffer`]), nothing that followed a fake
//! terminator can turn into commands downstream.

/// Maximum command line length, CRLF included (RFC 5321 §4.5.3.1.4 says 512;
/// we allow 1000 octets like the text line limit, for long ESMTP parameters).
pub const MAX_COMMAND_LINE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line; `strict` = the previous line ended in CRLF.
    Start { strict: bool },
    /// Saw a leading "." on a line.
    Dot { strict: bool },
    /// Saw ".\r" at the start of a line.
    DotCr { strict: bool },
    /// Inside a line.
    Mid,
    /// Inside a line, saw a CR not yet known to be part of CRLF.
    MidCr,
}

/// Incremental DATA decoder: feed it socket bytes, it appends the unstuffed,
/// CRLF-normalised message to `out` and tells where the terminator ended.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    pub fn new() -> Self {
        // The DATA command line ended in CRLF, so an immediate ".\r\n" ends an empty message.
        Self { state: State::Start { strict: true } }
    }

    /// Decodes `input`; returns `Some(n)` when the terminator ends at `input[n-1]`
    /// (bytes after it belong to the next command), `None` if more data is needed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        for (i, &b) in input.iter().enumerate() {
            if self.step(b, out) {
                return Some(i + 1);
            }
        }
        None
    }

    /// One byte; true at the end of data.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        use State::*;
        self.state = match (self.state, b) {
            (Start { strict }, b'.') => Dot { strict },
            (Start { .. }, b'\r') => MidCr,
            (Start { .. }, b'\n') => {
                out.extend_from_slice(b"\r\n");
                Start { strict: false }
            }
            (Start { .. }, b) => {
                out.push(b);
                Mid
            }
            (Dot { strict }, b'\r') => DotCr { strict },
            (Dot { .. }, b'\n') => {
                // "." ended by a bare LF: content (an empty line once unstuffed), never the end.
                out.extend_from_slice(b"\r\n");
                Start { strict: false }
            }
            (Dot { .. }, b) => {
                // Transparency: the leading dot is dropped, the byte after it kept.
                out.push(b);
                Mid
            }
            (DotCr { strict: true }, b'\n') => return true,
            (DotCr { strict: false }, b'\n') => {
                out.extend_from_slice(b"\r\n");
                Start { strict: true }
            }
            (DotCr { .. }, b'\r') => {
                out.extend_from_slice(b"\r\n");
                MidCr
            }
            (DotCr { .. }, b'.') => {
                out.extend_from_slice(b"\r\n");
                Dot { strict: false }
            }
            (DotCr { .. }, b) => {
                out.extend_from_slice(b"\r\n");
                out.push(b);
                Mid
            }
            (Mid, b'\r') => MidCr,
            (Mid, b'\n') => {
                out.extend_from_slice(b"\r\n");
                Start { strict: false }
            }
            (Mid, b) => {
                out.push(b);
                Mid
            }
            (MidCr, b'\n') => {
                out.extend_from_slice(b"\r\n");
                Start { strict: true }
            }
            (MidCr, b'\r') => {
                out.extend_from_slice(b"\r\n");
                MidCr
            }
            (MidCr, b'.') => {
                out.extend_from_slice(b"\r\n");
                Dot { strict: false }
            }
            (MidCr, b) => {
                out.extend_from_slice(b"\r\n");
                out.push(b);
                Mid
            }
        };
        false
    }
}

/// Encoder for the sending side: CRLF-normalises line ends and dot-stuffs
/// lines that start with "." (RFC 5321 §4.5.2). [`DotStuffer::finish`] adds
/// the terminator, with a CRLF first if the content did not end in one.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
    empty: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    pub fn new() -> Self {
        Self { at_line_start: true, pending_cr: false, empty: true }
    }

    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64);
        for &b in input {
            self.empty = false;
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                b => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        if !self.at_line_start && !self.empty {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Result of reading one command line.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// The line without its CRLF (or bare LF).
    Line(Vec<u8>),
    /// Longer than the limit; the rest up to the line end was discarded.
    TooLong,
}

/// Splits a complete line from `buf`: returns the line (without terminator)
/// and how many bytes it used, or `None` if no LF is present yet.
pub fn split_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let lf = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, lf + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let mut out = Vec::new();
        let mut d = DataDecoder::new();
        let end = d.feed(input, &mut out);
        (out, end)
    }

    #[test]
    fn decoding_table() {
        let cases: &[(&[u8], &[u8], Option<usize>)] = &[
            (b".\r\n", b"", Some(3)),
            (b"a\r\n.\r\n", b"a\r\n", Some(6)),
            (b"a\r\n.\r\nMAIL FROM", b"a\r\n", Some(6)),
            (b"..a\r\n.\r\n", b".a\r\n", Some(8)),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", Some(10)),
            // bare LF lines are normalised
            (b"a\nb\r\n.\r\n", b"a\r\nb\r\n", Some(8)),
            // smuggling variants are content, not terminators
            (b"a\n.\nMAIL FROM:<x>\r\n.\r\n", b"a\r\n\r\nMAIL FROM:<x>\r\n", Some(22)),
            (b"a\r.\rRCPT\r\n.\r\n", b"a\r\n\r\nRCPT\r\n", Some(13)),
            (b"a\n.\r\nDATA\r\n.\r\n", b"a\r\n\r\nDATA\r\n", Some(14)),
            (b"a\r\n.\nx\r\n.\r\n", b"a\r\n\r\nx\r\n", Some(11)),
            // bare CR inside a line becomes a line end
            (b"a\rb\r\n.\r\n", b"a\r\nb\r\n", Some(8)),
            (b"a\r\r\n.\r\n", b"a\r\n\r\n", Some(7)),
            // no terminator yet
            (b"a\r\n.", b"a\r\n", None),
            (b"a\r\n.\r", b"a\r\n", None),
            (b"\r\n.\r\n", b"\r\n", Some(5)),
            // 8-bit and NUL pass through
            (b"\xe0\x00\r\n.\r\n", b"\xe0\x00\r\n", Some(7)),
        ];
        for (input, want, end) in cases {
            let (out, got_end) = decode(input);
            assert_eq!((out.as_slice(), got_end), (*want, *end), "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn stuffing_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".a\r\n.\r\n", b"..a\r\n..\r\n.\r\n"),
            (b"a\n.b\n", b"a\r\n..b\r\n.\r\n"),
            (b"a\r.b", b"a\r\n..b\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
        ];
        for (input, want) in cases {
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            s.encode(input, &mut out);
            s.finish(&mut out);
            assert_eq!(out, *want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn split_lines() {
        assert_eq!(split_line(b"EHLO x\r\nrest"), Some((&b"EHLO x"[..], 8)));
        assert_eq!(split_line(b"EHLO x\nrest"), Some((&b"EHLO x"[..], 7)));
        assert_eq!(split_line(b"EHLO x"), None);
    }

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

    proptest! {
        /// CRLF content survives stuff -> decode byte-for-byte, wherever the stream is split.
        #[test]
        fn roundtrip(content in crlf_content(), split in 0usize..2000) {
            let mut wire = Vec::new();
            let mut s = DotStuffer::new();
            s.encode(&content, &mut wire);
            s.finish(&mut wire);
            let at = split.min(wire.len());
            let mut d = DataDecoder::new();
            let mut out = Vec::new();
            let first = d.feed(&wire[..at], &mut out);
            let end = match first { Some(n) => Some(n), None => d.feed(&wire[at..], &mut out).map(|n| n + at) };
            prop_assert_eq!(end, Some(wire.len()));
            prop_assert_eq!(out, content);
        }

        /// Any bytes: the decoder never panics, and if it ends, the input really contained CRLF.CRLF
        /// (or started with .CRLF) right there.
        #[test]
        fn ends_only_on_strict_terminator(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..300)) {
            let (_, end) = decode(&input);
            if let Some(n) = end {
                let full = [b"\r\n".as_slice(), &input[..n]].concat();
                prop_assert!(full.ends_with(b"\r\n.\r\n"));
            }
        }

        /// Output of the decoder has no bare CR or LF: every line ends in CRLF.
        #[test]
        fn output_is_crlf_only(input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..300)) {
            let (out, _) = decode(&input);
            for (i, &b) in out.iter().enumerate() {
                if b == b'\n' { prop_assert!(i > 0 && out[i - 1] == b'\r'); }
                if b == b'\r' { prop_assert!(out.get(i + 1) == Some(&b'\n')); }
            }
        }
    }
}
