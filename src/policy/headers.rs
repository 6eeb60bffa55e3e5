//! A header section kept byte-for-byte.
//!
//! PEC providers sign and archive what they receive, and users expect their
//! message to arrive as written, so we only ever touch the few fields the
//! policy rewrites; every other byte (folding, odd spacing, even garbage
//! lines) goes out exactly as it came in.

/// One header field exactly as received: `raw` holds "Name: value\r\n" plus any folded
/// continuation lines, byte-for-byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name as written (case kept); empty for a line that is not a field.
    pub name: String,
    pub raw: Vec<u8>,
}

impl Header {
    /// Whether this field has the given name (case-insensitive, as RFC 5322 says).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The bytes after the colon, line terminator included (the whole line for garbage).
    pub fn value_bytes(&self) -> &[u8] {
        match self.raw.iter().position(|&b| b == b':') {
            Some(colon) if !self.name.is_empty() => &self.raw[colon + 1..],
            _ => &self.raw,
        }
    }

    /// Unfolded value: CR and LF removed, leading whitespace trimmed, lossy UTF-8.
    pub fn value(&self) -> String {
        let bytes: Vec<u8> = self.value_bytes().iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
        String::from_utf8_lossy(&bytes).trim_start_matches([' ', '\t']).to_string()
    }

    /// The value as on the wire, folds kept, without the final line terminator and
    /// without leading whitespace: what a rewrite of the field must start from.
    pub fn raw_value(&self) -> String {
        self.raw_text().text
    }

    /// [`Header::raw_value`] with how it was read: bytes that are not UTF-8 (an old
    /// client writing Latin-1 unencoded) are read as Latin-1, one char per byte, so
    /// that a rewrite can give them back unchanged instead of U+FFFD.
    pub fn raw_text(&self) -> RawText {
        let bytes = self.value_bytes();
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let (text, latin1) = match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_string(), false),
            Err(_) => (bytes.iter().map(|&b| char::from(b)).collect(), true),
        };
        RawText { text: text.trim_start_matches([' ', '\t', '\r', '\n']).to_string(), latin1 }
    }
}

/// A raw header value as text, and whether it was read from Latin-1 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawText {
    pub text: String,
    pub latin1: bool,
}

impl RawText {
    /// A rewritten value as bytes in the encoding the field came in: Latin-1 again
    /// when it was read so and every char fits, else UTF-8.
    pub fn encode(&self, value: &str) -> Vec<u8> {
        match self.latin1 {
            true if value.chars().all(|c| u32::from(c) <= 0xff) => value.chars().map(|c| u32::from(c) as u8).collect(),
            _ => value.as_bytes().to_vec(),
        }
    }
}

/// A parsed header section, fields in their original order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderBlock {
    pub fields: Vec<Header>,
}

impl HeaderBlock {
    /// Parses a header section (lines end in CRLF; input may or may not include the final empty line;
    /// stop at the first empty line). A line that starts with space/tab continues the previous field.
    /// A line without a colon (garbage) must not be lost: keep it as its own field with an empty name
    /// so to_bytes() reproduces the input. Header names compared case-insensitively everywhere.
    ///
    /// Lines end at LF (a bare LF is kept as is); a last line without terminator gets
    /// CRLF appended so that later fields cannot glue onto it.
    pub fn parse(section: &[u8]) -> HeaderBlock {
        let mut fields: Vec<Header> = Vec::new();
        let mut rest = section;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            let (line, tail) = rest.split_at(end);
            rest = tail;
            let mut line = line.to_vec();
            if !line.ends_with(b"\n") {
                if line.ends_with(b"\r") {
                    line.push(b'\n');
                } else {
                    line.extend_from_slice(b"\r\n");
                }
            }
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            let continues = matches!(line.first(), Some(b' ' | b'\t'));
            match fields.last_mut() {
                Some(last) if continues => last.raw.extend_from_slice(&line),
                _ => fields.push(Header { name: field_name(&line).unwrap_or_default(), raw: line }),
            }
        }
        HeaderBlock { fields }
    }

    /// First field with this name, case-insensitive.
    pub fn get(&self, name: &str) -> Option<&Header> {
        self.fields.iter().find(|h| h.is(name))
    }

    /// Unfolded value of the first field with this name (see [`Header::value`]).
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).map(Header::value)
    }

    /// Removes every field with this name; returns how many were removed.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.is(name));
        before - self.fields.len()
    }

    /// Removes every field whose name starts with `prefix` (case-insensitive);
    /// returns the names removed, as written.
    pub fn remove_prefixed(&mut self, prefix: &str) -> Vec<String> {
        let mut removed = Vec::new();
        self.fields.retain(|h| {
            let hit = h.name.len() >= prefix.len() && h.name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
            if hit {
                removed.push(h.name.clone());
            }
            !hit
        });
        removed
    }

    /// Replaces the first occurrence in place (removing the others) or appends at the end.
    ///
    /// The value may be folded ("a\r\n b"); any other CR or LF is turned into a space so
    /// a value can never inject a field. Invalid name characters are dropped; an empty
    /// name leaves the block unchanged.
    pub fn set(&mut self, name: &str, value: &str) {
        self.set_bytes(name, value.as_bytes());
    }

    /// [`HeaderBlock::set`] for a value that need not be UTF-8 (see [`RawText::encode`]).
    pub fn set_bytes(&mut self, name: &str, value: &[u8]) {
        let name: String = name.chars().filter(|&c| is_name_char(c as u32)).collect();
        if name.is_empty() {
            return;
        }
        let mut raw = Vec::with_capacity(name.len() + value.len() + 4);
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(&sanitize_value(value));
        raw.extend_from_slice(b"\r\n");
        let field = Header { name, raw };
        match self.fields.iter().position(|h| h.is(&field.name)) {
            Some(first) => {
                let mut index = 0;
                self.fields.retain(|h| {
                    let keep = index <= first || !h.is(&field.name);
                    index += 1;
                    keep
                });
                self.fields[first] = field;
            }
            None => self.fields.push(field),
        }
    }

    /// The fields, concatenated, followed by the empty line "\r\n".
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = self.fields.iter().map(|h| h.raw.len()).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(len);
        for field in &self.fields {
            out.extend_from_slice(&field.raw);
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// RFC 5322 ftext: printable ASCII except colon.
fn is_name_char(c: u32) -> bool {
    (33..=126).contains(&c) && c != u32::from(b':')
}

/// The name of a field line, or None for garbage. Whitespace before the colon is
/// tolerated (obsolete syntax, RFC 5322 §4.5) and not part of the name.
fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line[..colon].trim_ascii_end();
    if name.is_empty() || !name.iter().all(|&b| is_name_char(u32::from(b))) {
        return None;
    }
    String::from_utf8(name.to_vec()).ok()
}

/// Keeps CRLF + WSP folds, turns every other CR or LF into a space: the value
/// bytes [`HeaderBlock::set`] writes.
pub(super) fn sanitize_value(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') && matches!(bytes.get(i + 2), Some(b' ' | b'\t')) => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(block: &HeaderBlock) -> Vec<&str> {
        block.fields.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn parse_table() {
        // (input, expected names, expected to_bytes)
        let cases: &[(&[u8], &[&str], &[u8])] = &[
            (b"", &[], b"\r\n"),
            (b"\r\n", &[], b"\r\n"),
            (b"From: a@x\r\n", &["From"], b"From: a@x\r\n\r\n"),
            (b"From: a@x\r\n\r\n", &["From"], b"From: a@x\r\n\r\n"),
            (b"From: a@x", &["From"], b"From: a@x\r\n\r\n"),
            (b"From: a@x\r", &["From"], b"From: a@x\r\n\r\n"),
            // Everything after the empty line is the body, not ours.
            (b"A: 1\r\n\r\nB: 2\r\n", &["A"], b"A: 1\r\n\r\n"),
            // Folding, with space and tab.
            (b"Subject: a\r\n b\r\n\tc\r\nTo: x@y\r\n\r\n", &["Subject", "To"], b"Subject: a\r\n b\r\n\tc\r\nTo: x@y\r\n\r\n"),
            // Garbage lines are kept as nameless fields.
            (
                b"From mario@x.it Sat Jan  1 10:00:00 2024\r\nA: 1\r\nno colon here\r\nB: 2\r\n\r\n",
                &["", "A", "", "B"],
                b"From mario@x.it Sat Jan  1 10:00:00 2024\r\nA: 1\r\nno colon here\r\nB: 2\r\n\r\n",
            ),
            // A leading continuation line has nothing to continue: garbage.
            (b" lead\r\nA: 1\r\n\r\n", &["", "A"], b" lead\r\nA: 1\r\n\r\n"),
            // Obsolete space before colon; the name excludes it.
            (b"Subject : hi\r\n\r\n", &["Subject"], b"Subject : hi\r\n\r\n"),
            (b": no name\r\n\r\n", &[""], b": no name\r\n\r\n"),
            // Bare LF kept as received.
            (b"A: 1\nB: 2\n\n", &["A", "B"], b"A: 1\nB: 2\n\r\n"),
            // Non-ASCII bytes survive.
            (b"X-Y: \xe0\xff\r\n\r\n", &["X-Y"], b"X-Y: \xe0\xff\r\n\r\n"),
        ];
        for (input, want_names, want_bytes) in cases {
            let block = HeaderBlock::parse(input);
            assert_eq!(names(&block), *want_names, "names of {:?}", String::from_utf8_lossy(input));
            assert_eq!(block.to_bytes(), *want_bytes, "bytes of {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn value_and_get() {
        let block = HeaderBlock::parse(b"subject:   Hello\r\n world \r\nTO: a@x\r\nTo: b@x\r\nEmpty:\r\n\r\n");
        let cases =
            [("Subject", Some("Hello world ")), ("SUBJECT", Some("Hello world ")), ("to", Some("a@x")), ("empty", Some("")), ("cc", None)];
        for (name, want) in cases {
            assert_eq!(block.value(name).as_deref(), want, "{name}");
        }
        assert_eq!(block.get("to").map(|h| h.name.as_str()), Some("TO"));
        let subject = block.get("subject").map(Header::raw_value);
        assert_eq!(subject.as_deref(), Some("Hello\r\n world "));
    }

    #[test]
    fn raw_value_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"Subject: x\r\n", "x"),
            (b"Subject:x\r\n", "x"),
            (b"Subject:\r\n =?UTF-8?B?eA==?=\r\n", "=?UTF-8?B?eA==?="),
            (b"Subject: a\r\n b\r\n", "a\r\n b"),
            (b"Subject: a\n", "a"),
        ];
        for (input, want) in cases {
            let block = HeaderBlock::parse(input);
            assert_eq!(block.get("subject").map(Header::raw_value).as_deref(), Some(*want));
        }
    }

    #[test]
    fn remove_and_set() {
        let input = b"A: 1\r\nBcc: x\r\nB: 2\r\nBCC: y\r\n z\r\nC: 3\r\n\r\n";
        let mut block = HeaderBlock::parse(input);
        assert_eq!(block.remove_all("bcc"), 2);
        assert_eq!(block.remove_all("bcc"), 0);
        assert_eq!(block.to_bytes(), b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n");

        // (start, name, value, expected)
        let cases: &[(&[u8], &str, &str, &[u8])] = &[
            (b"A: 1\r\nB: 2\r\n", "a", "9", b"a: 9\r\nB: 2\r\n\r\n"),
            (b"A: 1\r\nB: 2\r\nA: 3\r\n", "A", "9", b"A: 9\r\nB: 2\r\n\r\n"),
            (b"B: 2\r\nA: 1\r\nA: 3\r\n", "A", "9", b"B: 2\r\nA: 9\r\n\r\n"),
            (b"A: 1\r\n", "C", "x", b"A: 1\r\nC: x\r\n\r\n"),
            (b"", "C", "a\r\n b", b"C: a\r\n b\r\n\r\n"),
            // No header injection through the value.
            (b"", "C", "a\r\nBcc: evil", b"C: a  Bcc: evil\r\n\r\n"),
            (b"", "C", "a\nb\rc", b"C: a b c\r\n\r\n"),
            // No injection through the name either.
            (b"", "C\r\nX", "v", b"CX: v\r\n\r\n"),
            (b"A: 1\r\n", "", "v", b"A: 1\r\n\r\n"),
        ];
        for (start, name, value, want) in cases {
            let mut block = HeaderBlock::parse(start);
            block.set(name, value);
            assert_eq!(String::from_utf8_lossy(&block.to_bytes()), String::from_utf8_lossy(want), "set({name:?}, {value:?})");
        }
    }

    fn well_formed_section() -> impl Strategy<Value = Vec<u8>> {
        let name = "[A-Za-z][A-Za-z0-9-]{0,12}";
        let value = "[ -~]{0,30}";
        let cont = prop::collection::vec("[ \t][ -~]{0,20}", 0..3);
        let field = (name, value, cont).prop_map(|(n, v, c)| {
            let mut s = format!("{n}:{v}\r\n");
            for line in c {
                s.push_str(&line);
                s.push_str("\r\n");
            }
            s
        });
        let garbage = "[!-9;-~][ -9;-~]{0,20}".prop_map(|g| format!("{g}\r\n"));
        prop::collection::vec(prop_oneof![4 => field, 1 => garbage], 0..8).prop_map(|fields| {
            let mut s = fields.concat();
            s.push_str("\r\n");
            s.into_bytes()
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut block = HeaderBlock::parse(&input);
            let bytes = block.to_bytes();
            prop_assert!(bytes.ends_with(b"\r\n"));
            for h in &block.fields {
                let _ = h.value();
                let _ = h.raw_value();
            }
            block.set("Subject", "x");
            let _ = block.remove_all("from");
        }

        #[test]
        fn round_trip(section in well_formed_section()) {
            prop_assert_eq!(HeaderBlock::parse(&section).to_bytes(), section);
        }

        #[test]
        fn reparse_is_stable(input in prop::collection::vec(any::<u8>(), 0..300)) {
            let once = HeaderBlock::parse(&input).to_bytes();
            prop_assert_eq!(HeaderBlock::parse(&once).to_bytes(), once.clone());
        }
    }
}
