//! A big message's skeleton: its bytes with the long bodies of its parts
//! left out, small enough to keep in memory, plus where each left-out run
//! was, so a range of the skeleton maps back to the stored file exactly.
//!
//! What a PEC says is in the top-level headers, the MIME delimiter lines,
//! the part headers, `daticert.xml`, the header section of `postacert.eml`
//! and `smime.p7s`: all near a line that starts with `-` (a delimiter) or
//! at the start of a part. So every line starting with `-` is kept, and of
//! each run of other lines the first [`KEEP_PER_RUN`] bytes and the last
//! line: a delimiter is then preceded by the same line in the skeleton as
//! in the file, and a part's bytes (its range between two delimiters) map
//! back byte for byte. Pure: the caller feeds the stored file in chunks.

/// Bytes kept at the start of each run of lines not starting with `-`:
/// more than a `daticert.xml` (1 MiB) or a header section (1 MiB) takes
/// encoded, so the envelope classification reads what it would in full.
pub const KEEP_PER_RUN: usize = 3 * 1024 * 1024;
/// A longer line makes the skeleton give up (the caller reads the whole
/// message, as for a small one); mail lines are at most 998 bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// A skeleton larger than this gives up too (many parts, each kept).
pub const MAX_SKELETON: usize = 24 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    #[error("a line longer than {MAX_LINE} bytes")]
    Line,
    #[error("more than {MAX_SKELETON} bytes to keep")]
    Size,
}

#[derive(Debug, Clone, Default)]
pub struct Skeleton {
    pub bytes: Vec<u8>,
    /// (position in `bytes`, length left out there), ascending.
    holes: Vec<(usize, u64)>,
}

impl Skeleton {
    /// Nothing was left out.
    pub fn is_whole(&self) -> bool {
        self.holes.is_empty()
    }

    /// Nothing was left out of `bytes[..end]`.
    pub fn whole_up_to(&self, end: usize) -> bool {
        self.holes.first().is_none_or(|(pos, _)| *pos >= end)
    }

    /// The top-level header section is all there.
    pub fn header_whole(&self) -> bool {
        self.whole_up_to(super::mime::body_offset(&self.bytes))
    }

    /// Nothing was left out of the part `bytes[start..end]` (see [`file_range`](Self::file_range)).
    pub fn whole_between(&self, start: usize, end: usize) -> bool {
        !self.holes.iter().any(|(pos, _)| *pos >= start && *pos <= end)
    }

    /// The file range of the part `bytes[start..end]`, as a MIME split
    /// gives one: it starts right after a delimiter line and ends right
    /// before one (less the line end before it). What was left out where
    /// such a range starts belongs to it (the run's first lines), and so
    /// does what was left out where it ends (the run's last line is then
    /// the empty line before the delimiter).
    pub fn file_range(&self, start: usize, end: usize) -> (u64, u64) {
        let left_out = |f: &dyn Fn(usize) -> bool| -> u64 { self.holes.iter().filter(|(pos, _)| f(*pos)).map(|(_, len)| *len).sum() };
        (start as u64 + left_out(&|pos| pos < start), end as u64 + left_out(&|pos| pos <= end))
    }
}

#[derive(Debug)]
pub struct SkeletonBuilder {
    keep_per_run: usize,
    out: Skeleton,
    line: Vec<u8>,
    /// In a run past its kept bytes: the latest line, kept only if it turns out to be the run's last.
    pending: Option<Vec<u8>>,
    run_kept: usize,
    failed: Option<Overflow>,
}

impl Default for SkeletonBuilder {
    fn default() -> Self {
        Self::with_keep(KEEP_PER_RUN)
    }
}

impl SkeletonBuilder {
    /// Keeping `keep_per_run` bytes of each run (tests use small values).
    pub fn with_keep(keep_per_run: usize) -> Self {
        Self { keep_per_run, out: Skeleton::default(), line: Vec::new(), pending: None, run_kept: 0, failed: None }
    }

    pub fn push(&mut self, mut chunk: &[u8]) {
        while self.failed.is_none() && !chunk.is_empty() {
            let (part, rest, complete) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..=i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            if self.line.len() + part.len() > MAX_LINE {
                self.failed = Some(Overflow::Line);
                return;
            }
            self.line.extend_from_slice(part);
            if complete {
                let line = std::mem::take(&mut self.line);
                self.line = self.line_done(line);
            }
            chunk = rest;
        }
    }

    pub fn finish(mut self) -> Result<Skeleton, Overflow> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(line);
        }
        self.flush_pending();
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    /// Handles a complete line; gives back a buffer for the next one (no
    /// allocation per line in a long run).
    fn line_done(&mut self, mut line: Vec<u8>) -> Vec<u8> {
        if line.first() == Some(&b'-') {
            self.flush_pending();
            self.keep(&line);
            self.run_kept = 0;
        } else if self.run_kept < self.keep_per_run {
            self.run_kept += line.len();
            self.keep(&line);
        } else {
            match self.pending.replace(line) {
                Some(previous) => {
                    self.leave_out(previous.len() as u64);
                    line = previous;
                }
                None => return Vec::new(),
            }
        }
        line.clear();
        line
    }

    fn flush_pending(&mut self) {
        if let Some(line) = self.pending.take() {
            self.keep(&line);
        }
    }

    fn keep(&mut self, line: &[u8]) {
        if self.out.bytes.len() + line.len() > MAX_SKELETON {
            self.failed.get_or_insert(Overflow::Size);
            return;
        }
        self.out.bytes.extend_from_slice(line);
    }

    fn leave_out(&mut self, len: u64) {
        let at = self.out.bytes.len();
        match self.out.holes.last_mut() {
            Some((pos, n)) if *pos == at => *n += len,
            _ => self.out.holes.push((at, len)),
        }
    }
}

/// The skeleton of `message` (tests, and callers holding it in memory).
pub fn skeleton_of(message: &[u8], keep_per_run: usize) -> Result<Skeleton, Overflow> {
    let mut b = SkeletonBuilder::with_keep(keep_per_run);
    b.push(message);
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a message, each with its offset.
    fn lines(m: &[u8]) -> Vec<(usize, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < m.len() {
            let end = m[at..].iter().position(|&b| b == b'\n').map_or(m.len(), |i| at + i + 1);
            out.push((at, &m[at..end]));
            at = end;
        }
        out
    }

    /// Every part range a MIME split can give (from after a delimiter line,
    /// or the start, to a delimiter line, or the end, with or without the
    /// CRLF before it) maps to exactly the file's range. Delimiter lines are
    /// unique in the test messages, so each is found in the file.
    fn check_ranges(message: &[u8], keep: usize, chunk: usize) {
        let mut b = SkeletonBuilder::with_keep(keep);
        for c in message.chunks(chunk.max(1)) {
            b.push(c);
        }
        let s = b.finish().unwrap();
        let file = lines(message);
        let delimiters: Vec<(usize, usize, usize)> = lines(&s.bytes)
            .into_iter()
            .filter(|(_, l)| l.first() == Some(&b'-'))
            .map(|(o, l)| (o, l.len(), file.iter().find(|(_, f)| *f == l).map(|(fo, _)| *fo).unwrap()))
            .collect();
        let mut starts = vec![(0, 0)];
        starts.extend(delimiters.iter().map(|&(o, len, fo)| (o + len, fo + len)));
        let mut ends: Vec<(usize, usize)> = delimiters.iter().map(|&(o, _, fo)| (o, fo)).collect();
        ends.push((s.bytes.len(), message.len()));
        for &(a, fa) in &starts {
            for &(z, fz) in ends.iter().filter(|(z, _)| *z >= a) {
                assert_eq!(s.file_range(a, z), (fa as u64, fz as u64), "keep {keep} chunk {chunk}: {a}..{z}");
                if z >= a + 2 && s.bytes[z - 2..z] == *b"\r\n" {
                    assert_eq!(message[fz - 2..fz], *b"\r\n");
                    assert_eq!(s.file_range(a, z - 2), (fa as u64, fz as u64 - 2), "keep {keep} chunk {chunk}: {a}..{z}-2");
                }
            }
        }
    }

    #[test]
    fn long_runs_are_left_out_but_delimiters_and_last_lines_kept() {
        let mut m = b"Subject: x\r\n\r\n--B\r\nContent-Type: a/b\r\n\r\n".to_vec();
        for i in 0..100 {
            m.extend_from_slice(format!("line{i:03}\r\n").as_bytes());
        }
        m.extend_from_slice(b"--B\r\nsig\r\n--B--\r\n");
        let s = skeleton_of(&m, 20).unwrap();
        let text = String::from_utf8(s.bytes.clone()).unwrap();
        assert!(text.contains("--B\r\nContent-Type: a/b\r\n") && text.contains("line099\r\n--B\r\nsig\r\n--B--\r\n"), "{text}");
        assert!(!text.contains("line050"));
        assert!(!s.is_whole() && s.whole_up_to(20));
        // The first part, from after "--B\r\n" to before "\r\n--B", maps to the file's bytes.
        let start = text.find("Content-Type").unwrap();
        let end = text.find("\r\n--B\r\nsig").unwrap();
        let (a, z) = s.file_range(start, end);
        let fstart = m.windows(12).position(|w| w == b"Content-Type").unwrap();
        let fend = m.windows(10).position(|w| w == b"\r\n--B\r\nsig").unwrap();
        assert_eq!((a as usize, z as usize), (fstart, fend));
        let whole = skeleton_of(&m, usize::MAX).unwrap();
        assert!(whole.is_whole() && whole.bytes == m);
    }

    #[test]
    fn ranges_map_exactly_whatever_the_keep_and_the_chunks() {
        let messages: [&[u8]; 3] = [
            b"A: 1\r\n\r\npre\r\n--B\r\nH: x\r\n\r\nl1\r\nl2\nl3\r\nl4\r\n--B \r\n\r\ns1\r\ns2\r\n--B--\r\nepi\r\nlast",
            // The run's last line is the empty line before the delimiter.
            b"A: 1\r\n\r\n--B\r\nH: x\r\n\r\nl1\r\nl2\r\nl3\r\n\r\n--B-x\r\n\r\n\r\n\r\n--B--\r\n",
            b"--B\r\n--C\r\nx\r\ny\r\n--D\r\n",
        ];
        for m in messages {
            for keep in [0, 1, 5, 16, 1000] {
                for chunk in [1, 3, 7, 64] {
                    check_ranges(m, keep, chunk);
                }
            }
        }
    }

    #[test]
    fn overflows() {
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(skeleton_of(&long, 10).unwrap_err(), Overflow::Line);
        let mut many = Vec::new();
        while many.len() <= MAX_SKELETON {
            many.extend_from_slice(b"-- a line that is always kept\r\n");
        }
        assert_eq!(skeleton_of(&many, 10).unwrap_err(), Overflow::Size);
    }
}
