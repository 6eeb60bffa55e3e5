//! The one dot codec, for SMTP DATA (RFC 5321 §4.5.2) and POP3 multi-line
//! responses (RFC 1939 §3): a line starting with "." gets another "." on the
//! wire, and a line that is exactly "." ends the body. Both protocols share
//! these rules and differ in one, what a CR or LF outside a CRLF pair is;
//! [`Dialect`] names that difference, so each side's strictness is stated
//! where its codec is made.
//!
//! In both dialects the body ends *only* at `<CRLF>.<CRLF>` (or at a `.<CRLF>`
//! that starts the body, the command or status line before it having ended
//! in CRLF).

/// How a codec treats a CR or LF that is not part of a CRLF pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SMTP DATA, received and sent. Against SMTP smuggling, a bare LF or a
    /// bare CR ends a content line (as Postfix's `smtpd_forbid_bare_newline =
    /// normalize` does) and is written as CRLF, and a line it starts is never
    /// the terminator: `<LF>.<LF>`, `<CR>.<CR>` and `<LF>.<CR><LF>` are
    /// content. What we store has CRLF line ends only and is stuffed again on
    /// sending, so nothing that followed a fake terminator can turn into
    /// commands downstream.
    SmtpData,
    /// POP3 multi-line responses (RETR and the listings). PEC messages carry
    /// an S/MIME signature over their exact bytes, so only CRLF ends a line
    /// and every other byte (8-bit, NUL, bare CR, bare LF) passes unchanged:
    /// the codec changes nothing but the stuffing.
    Pop3,
}

impl Dialect {
    /// Writes a CR or LF (`byte`) that is not part of a CRLF; true if it
    /// ended the line.
    fn bare_eol(self, byte: u8, out: &mut Vec<u8>) -> bool {
        match self {
            Dialect::SmtpData => {
                out.extend_from_slice(b"\r\n");
                true
            }
            Dialect::Pop3 => {
                out.push(byte);
                false
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line; `strict` = the previous line ended in CRLF,
    /// so this line may be the terminator.
    Start { strict: bool },
    /// Saw a leading "."; not yet known whether stuffing or terminator.
    Dot { strict: bool },
    /// Saw ".\r" at the start of a line, neither byte written yet.
    DotCr { strict: bool },
    /// Inside a line.
    Mid,
    /// Inside a line, saw a CR (not yet written) that may start a CRLF.
    MidCr,
    /// The terminator has been consumed.
    Done,
}

/// Incremental decoder of a dot-stuffed body: feed it socket bytes, it
/// appends the unstuffed body to `out` and tells where the terminator ended.
/// It holds back at most ".\r" between calls, so arbitrarily long lines
/// stream through a fixed buffer.
#[derive(Debug, Clone)]
pub struct DotDecoder {
    dialect: Dialect,
    state: State,
}

impl DotDecoder {
    pub fn new(dialect: Dialect) -> Self {
        // The DATA command or the +OK line ended in CRLF, so an immediate ".\r\n" ends an empty body.
        Self { dialect, state: State::Start { strict: true } }
    }

    /// Whether the terminator has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`; returns `Some(n)` when the terminator ended after
    /// `n` bytes of `input` (later bytes belong to the next command or
    /// response; once done, every call returns `Some(0)`), `None` if all of
    /// `input` was consumed and more is needed. In [`Dialect::Pop3`] it never
    /// writes more bytes than it consumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Mid {
                // Fast path: copy up to the next CR or LF in one go.
                let rest = &input[i..];
                let n = rest.iter().position(|b| *b == b'\r' || *b == b'\n').unwrap_or(rest.len());
                out.extend_from_slice(&rest[..n]);
                i += n;
                if i == input.len() {
                    break;
                }
            }
            self.state = self.step(input[i], out);
            i += 1;
        }
        self.is_done().then_some(i)
    }

    fn step(&self, b: u8, out: &mut Vec<u8>) -> State {
        use State::*;
        match (self.state, b) {
            (Start { strict }, b'.') => Dot { strict },
            (Dot { strict }, b'\r') => DotCr { strict },
            (DotCr { strict: true }, b'\n') => Done,
            // ".\r" then anything else: the dot was stuffing, the CR is pending as in any line.
            (DotCr { .. } | MidCr, b) => self.after_cr(b, out),
            // After a leading dot the dot is dropped (transparency) and the byte kept.
            (Start { .. } | Dot { .. } | Mid, b) => self.in_line(b, out),
            (Done, _) => Done,
        }
    }

    /// A byte inside a line, no CR pending.
    fn in_line(&self, b: u8, out: &mut Vec<u8>) -> State {
        match b {
            b'\r' => State::MidCr,
            b'\n' => self.bare_eol(b'\n', out),
            b => {
                out.push(b);
                State::Mid
            }
        }
    }

    /// The byte after a pending CR.
    fn after_cr(&self, b: u8, out: &mut Vec<u8>) -> State {
        if b == b'\n' {
            out.extend_from_slice(b"\r\n");
            return State::Start { strict: true };
        }
        match self.bare_eol(b'\r', out) {
            State::Start { strict } if b == b'.' => State::Dot { strict },
            _ => self.in_line(b, out),
        }
    }

    fn bare_eol(&self, byte: u8, out: &mut Vec<u8>) -> State {
        if self.dialect.bare_eol(byte, out) { State::Start { strict: false } } else { State::Mid }
    }
}

/// Streaming encoder for the sending side: dot-stuffs every line that starts
/// with "." (line ends as the [`Dialect`] defines them; in
/// [`Dialect::SmtpData`] bare CR and LF become CRLF). [`DotStuffer::finish`]
/// adds the terminator, with a CRLF first if the content did not end in one,
/// so only CRLF-terminated content round-trips exactly, as RFC 5322 messages
/// are.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    dialect: Dialect,
    at_line_start: bool,
    pending_cr: bool,
}

impl DotStuffer {
    pub fn new(dialect: Dialect) -> Self {
        Self { dialect, at_line_start: true, pending_cr: false }
    }

    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64);
        for &b in input {
            if std::mem::take(&mut self.pending_cr) {
                if b == b'\n' {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    continue;
                }
                self.at_line_start = self.dialect.bare_eol(b'\r', out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.at_line_start = self.dialect.bare_eol(b'\n', out),
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
        if std::mem::take(&mut self.pending_cr) {
            self.at_line_start = self.dialect.bare_eol(b'\r', out);
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Stuffs a whole body held in memory and appends the terminator.
pub fn dot_stuff(dialect: Dialect, body: &[u8], out: &mut Vec<u8>) {
    let mut s = DotStuffer::new(dialect);
    s.encode(body, out);
    s.finish(out);
}

/// One line of a multi-line listing already split at its CRLF (POP3 CAPA,
/// LIST, UIDL): `None` for the terminating ".", otherwise the line with its
/// stuffed dot removed.
pub fn unstuff_line(line: &[u8]) -> Option<&[u8]> {
    if line == b"." {
        return None;
    }
    Some(line.strip_prefix(b".").unwrap_or(line))
}
