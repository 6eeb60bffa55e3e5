//! Wire framing shared by the SMTP and POP3 speakers, no I/O: command lines
//! (here) and the one dot codec for SMTP DATA and POP3 multi-line responses
//! (`dot.rs`: [`DotDecoder`], [`DotStuffer`], [`Dialect`] for what each
//! protocol makes of a bare CR or LF). Tests are in `tests.rs`.

mod dot;
#[cfg(test)]
mod tests;

pub use dot::{Dialect, DotDecoder, DotStuffer, dot_stuff, unstuff_line};

/// Maximum command line length, CRLF included (RFC 5321 §4.5.3.1.4 says 512;
/// we allow 1000 octets like the text line limit, for long ESMTP parameters).
pub const MAX_COMMAND_LINE: usize = 1000;

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
