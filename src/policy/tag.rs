//! The subject tag by which a user asks for PEC delivery ("[PEC] Contratto").
//!
//! Users type the tag in their mail client, which may then encode the whole
//! subject (RFC 2047) because of one accented letter, so the tag has to be
//! found in the decoded text; but when it sits in plain text we cut only
//! those bytes, to leave the rest of the subject exactly as the client wrote it.
//!
//! Grammar of a tag, for a marker `[PEC]` (any marker ending in `]`; ASCII case ignored):
//!
//! ```text
//! tag     = "[PEC" [ ":" id ] [ ( ":" / " " ) pin ] "]"   ; or ":" pin alone
//! id      = 1*( ALPHA / DIGIT / "." / "_" / "-" )          ; not all digits (config rule)
//! pin     = 1*64DIGIT                                      ; a valid PIN has 4 to 12
//! ```
//!
//! `[PEC]`, `[PEC:legal]`, `[PEC:legal:482913]`, `[PEC:legal 482913]`, `[PEC 482913]`,
//! `[PEC:482913]`. A field of digits only is always the PIN (mailbox ids may not be all
//! digits), so a PIN of the wrong length is still cut out with the tag, and refused.

use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_parser::parsers::MessageStream;

/// Markers used when the configuration names none.
pub const DEFAULT_MARKERS: [&str; 2] = ["[PEC]", "[GPEC]"];

/// Longest encoded word RFC 2047 §2 allows.
const MAX_WORD_LEN: usize = 75;
/// Bytes per "=?UTF-8?B?...?=" word: 12 chars of framing leave 63, i.e. 60 base64 chars.
const WORD_PAYLOAD: usize = (MAX_WORD_LEN - "=?UTF-8?B??=".len()) / 4 * 3;

/// Most digits taken as a PIN field (a valid PIN has [`PIN_MIN`] to [`PIN_MAX`]).
const PIN_FIELD_MAX: usize = 64;
/// Shortest valid PIN.
pub const PIN_MIN: usize = 4;
/// Longest valid PIN.
pub const PIN_MAX: usize = 12;

/// A PIN typed in the subject tag. Its `Debug` never shows the digits, so a
/// logged [`TagMatch`] or plan cannot leak it; [`Pin::expose`] is for the
/// hash check only.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn new(digits: impl Into<String>) -> Pin {
        Pin(digits.into())
    }

    /// The digits, for verification against the stored hash.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it has the PIN shape: [`PIN_MIN`] to [`PIN_MAX`] ASCII digits.
    pub fn well_formed(&self) -> bool {
        is_pin(&self.0)
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Whether `s` is a valid PIN: [`PIN_MIN`] to [`PIN_MAX`] ASCII digits.
pub fn is_pin(s: &str) -> bool {
    (PIN_MIN..=PIN_MAX).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A tag found in the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMatch {
    /// The configured marker that matched (as configured, not as typed).
    pub marker: String,
    /// Mailbox id from a "[PEC:id]" tag.
    pub mailbox: Option<String>,
    /// PIN from a "[PEC:id:123456]" or "[PEC 123456]" tag.
    pub pin: Option<Pin>,
}

/// [`DEFAULT_MARKERS`] as owned strings, for configuration defaults.
pub fn default_markers() -> Vec<String> {
    DEFAULT_MARKERS.iter().map(|m| m.to_string()).collect()
}

/// The tag that selects mailbox `id` with `marker`: "[PEC]" + "legal" → "[PEC:legal]".
/// A marker that does not end in ']' cannot carry an id and is returned as is.
pub fn tagged_marker(marker: &str, id: &str) -> String {
    match marker.strip_suffix(']') {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}:{id}]"),
        _ => marker.to_string(),
    }
}

/// Finds the first PEC tag in a raw Subject value (as on the wire: possibly folded, possibly RFC 2047
/// encoded words such as =?UTF-8?B?...?= or =?iso-8859-1?Q?...?=, possibly several words, possibly mixed
/// with plain text). Markers come from config, default ["[PEC]", "[GPEC]"]; matching is ASCII
/// case-insensitive. A marker "[PEC]" also matches "[PEC:legal]" (mailbox id selected, chars
/// [A-Za-z0-9._-]+), giving mailbox = Some("legal"). The tag may be anywhere (often first, or after "Re: ").
/// Returns the match and the new raw Subject value with the tag and ONE adjacent space removed.
/// If the tag sits in plain (non-encoded) text, only those bytes are removed, every encoded word stays as is.
/// If the tag sits inside encoded words, decode the whole subject, strip, and re-encode:
/// plain if the result is printable ASCII without "=?", otherwise as "=?UTF-8?B?...?=" words, each at
/// most 75 chars, joined by CRLF + SPACE (folding), never splitting a UTF-8 character across words.
pub fn strip_tag(raw_subject: &str, markers: &[String]) -> Option<(TagMatch, String)> {
    let decoded = Decoded::new(raw_subject);
    let (range, tag) = find_tag(&decoded.text, markers)?;
    let wanted = remove_with_space(&decoded.text, range.clone());
    let in_plain = decoded.segments.iter().find(|s| s.plain && s.dec.start <= range.start && range.end <= s.dec.end);
    if let Some(segment) = in_plain
        && let Some(candidate) = strip_plain(raw_subject, segment, &range)
        // Removing bytes can change how neighbours decode (e.g. two encoded words
        // that become adjacent lose the space between them): only keep the cut if
        // it reads exactly as intended.
        && Decoded::new(&candidate).text == wanted
    {
        return Some((tag, candidate));
    }
    Some((tag, encode_subject(&wanted)))
}

/// Decoded, unfolded subject for display/logs.
pub fn decode_subject(raw_subject: &str) -> String {
    Decoded::new(raw_subject).text.trim().to_string()
}

/// A subject value for the wire: as is if it is plain printable ASCII that cannot be
/// mistaken for an encoded word, else RFC 2047 UTF-8 B words folded onto lines.
pub fn encode_subject(text: &str) -> String {
    if text.bytes().all(|b| (0x20..=0x7e).contains(&b)) && !text.contains("=?") {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if i + c.len_utf8() - start > WORD_PAYLOAD {
            words.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        words.push(&text[start..]);
    }
    words.iter().map(|w| format!("=?UTF-8?B?{}?=", STANDARD.encode(w.as_bytes()))).collect::<Vec<_>>().join("\r\n ")
}

/// One run of the raw subject: an encoded word or plain text between them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    plain: bool,
    /// Bytes of the raw value.
    raw: Range<usize>,
    /// Bytes of the decoded text (empty for dropped whitespace between encoded words).
    dec: Range<usize>,
}

/// A subject decoded segment by segment, so a position in the text maps back to raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decoded {
    text: String,
    segments: Vec<Segment>,
}

impl Decoded {
    fn new(raw: &str) -> Decoded {
        // Pass 1: split into encoded words and the plain runs between them.
        let bytes = raw.as_bytes();
        let mut parts: Vec<(bool, Range<usize>, String)> = Vec::new();
        let mut plain_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && let Some(end) = encoded_word_end(bytes, i)
                && let Some(text) = decode_word(&bytes[i + 1..end])
            {
                if plain_start < i {
                    parts.push((true, plain_start..i, unfold(&raw[plain_start..i])));
                }
                parts.push((false, i..end, text));
                i = end;
                plain_start = end;
            } else {
                i += 1;
            }
        }
        if plain_start < bytes.len() {
            parts.push((true, plain_start..bytes.len(), unfold(&raw[plain_start..])));
        }

        // Pass 2: concatenate; whitespace between two encoded words is not text (RFC 2047 §6.2).
        let mut text = String::with_capacity(raw.len());
        let mut segments = Vec::with_capacity(parts.len());
        for (k, (plain, range, part)) in parts.iter().enumerate() {
            let between_words =
                *plain && k > 0 && parts.get(k + 1).is_some_and(|next| !next.0) && part.chars().all(|c| c == ' ' || c == '\t');
            let start = text.len();
            if !between_words {
                text.push_str(part);
            }
            segments.push(Segment { plain: *plain, raw: range.clone(), dec: start..text.len() });
        }
        Decoded { text, segments }
    }
}

/// Plain text unfolded: line breaks removed, the whitespace after them kept.
fn unfold(raw: &str) -> String {
    raw.chars().filter(|&c| c != '\r' && c != '\n').collect()
}

/// End (exclusive) of a strictly formed encoded word starting at `start`
/// ("=?charset?B|Q?text?=" with no whitespace or '?' inside the parts).
fn encoded_word_end(bytes: &[u8], start: usize) -> Option<usize> {
    let rest = bytes.get(start..)?;
    let rest = rest.strip_prefix(b"=?")?;
    let token = |b: &u8| (0x21..=0x7e).contains(b) && *b != b'?';
    let charset = rest.iter().take_while(|b| token(b)).count();
    if charset == 0 {
        return None;
    }
    let rest = &rest[charset..];
    let (&[b'?', enc, b'?'], rest) = rest.split_first_chunk::<3>()? else {
        return None;
    };
    if !matches!(enc, b'B' | b'b' | b'Q' | b'q') {
        return None;
    }
    let text = rest.iter().take_while(|b| token(b)).count();
    if !rest[text..].starts_with(b"?=") {
        return None;
    }
    Some(start + 2 + charset + 3 + text + 2)
}

/// Decodes one encoded word (without its leading '=') with mail-parser's RFC 2047 decoder.
fn decode_word(word: &[u8]) -> Option<String> {
    MessageStream::new(word).decode_rfc2047()
}

/// What a marker matched at one position: its length, mailbox id and PIN.
type Matched = (usize, Option<String>, Option<Pin>);

/// Bytes of `text` (ASCII-insensitively) matching a marker at `at` (grammar in the module doc).
fn match_at(text: &[u8], at: usize, marker: &[u8]) -> Option<Matched> {
    let rest = text.get(at..)?;
    if marker.is_empty() {
        return None;
    }
    if rest.get(..marker.len())?.eq_ignore_ascii_case(marker) {
        return Some((marker.len(), None, None));
    }
    let prefix = marker.strip_suffix(b"]")?;
    if prefix.is_empty() || !rest.get(..prefix.len())?.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let field = |from: usize| {
        rest.get(from..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')).count())
    };
    let digits = |from: usize| rest.get(from..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_digit()).count());
    let text_of = |r: Range<usize>| String::from_utf8_lossy(&rest[r]).into_owned();
    let mut at = prefix.len();
    let (mut mailbox, mut pin) = (None, None);
    match rest.get(at) {
        Some(b':') => {
            let len = field(at + 1);
            if len == 0 {
                return None;
            }
            let value = text_of(at + 1..at + 1 + len);
            if value.bytes().all(|b| b.is_ascii_digit()) {
                if len > PIN_FIELD_MAX {
                    return None;
                }
                pin = Some(Pin(value));
            } else {
                mailbox = Some(value);
            }
            at += 1 + len;
            if mailbox.is_some() && matches!(rest.get(at), Some(b':' | b' ')) {
                let len = digits(at + 1);
                if len == 0 || len > PIN_FIELD_MAX {
                    return None;
                }
                pin = Some(Pin(text_of(at + 1..at + 1 + len)));
                at += 1 + len;
            }
        }
        Some(b' ') => {
            let len = digits(at + 1);
            if len == 0 || len > PIN_FIELD_MAX {
                return None;
            }
            pin = Some(Pin(text_of(at + 1..at + 1 + len)));
            at += 1 + len;
        }
        _ => return None,
    }
    if rest.get(at) != Some(&b']') {
        return None;
    }
    Some((at + 1, mailbox, pin))
}

/// The first tag in decoded text; at equal positions the first configured marker wins.
fn find_tag(text: &str, markers: &[String]) -> Option<(Range<usize>, TagMatch)> {
    let bytes = text.as_bytes();
    (0..bytes.len()).filter(|&i| text.is_char_boundary(i)).find_map(|i| {
        markers.iter().find_map(|marker| {
            let (len, mailbox, pin) = match_at(bytes, i, marker.as_bytes())?;
            let tag = TagMatch { marker: marker.clone(), mailbox, pin };
            Some((i..i + len, tag))
        })
    })
}

/// `text` without `range` and one adjacent space (the following one, else the preceding one).
fn remove_with_space(text: &str, range: Range<usize>) -> String {
    let bytes = text.as_bytes();
    let is_space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    let (mut start, mut end) = (range.start, range.end);
    if is_space(bytes.get(end)) {
        end += 1;
    } else if start > 0 && is_space(bytes.get(start - 1)) {
        start -= 1;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..start).unwrap_or_default());
    out.push_str(text.get(end..).unwrap_or_default());
    out
}

/// Cuts a tag found in a plain segment out of the raw value, with one adjacent space
/// (a fold next to the tag counts as that space and goes with it).
fn strip_plain(raw: &str, segment: &Segment, range: &Range<usize>) -> Option<String> {
    let bytes = raw.as_bytes();
    // Raw index of each decoded byte of this segment (unfolding drops CR and LF only).
    let map: Vec<usize> = segment.raw.clone().filter(|&i| !matches!(bytes.get(i), Some(b'\r' | b'\n'))).collect();
    let mut start = *map.get(range.start.checked_sub(segment.dec.start)?)?;
    let mut end = *map.get(range.end.checked_sub(segment.dec.start)?.checked_sub(1)?)? + 1;
    let wsp = |i: usize| matches!(bytes.get(i), Some(b' ' | b'\t'));
    let after = bytes.get(end..).unwrap_or_default();
    if wsp(end) {
        end += 1;
    } else if after.starts_with(b"\r\n") && wsp(end + 2) {
        end += 3;
    } else if after.starts_with(b"\n") && wsp(end + 1) {
        end += 2;
    } else if start > 0 && wsp(start - 1) {
        start -= 1;
        let before = bytes.get(..start).unwrap_or_default();
        if before.ends_with(b"\r\n") {
            start -= 2;
        } else if before.ends_with(b"\n") {
            start -= 1;
        }
    }
    let mut out = String::with_capacity(raw.len());
    out.push_str(raw.get(..start)?);
    out.push_str(raw.get(end..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(marker: &str, mailbox: Option<&str>) -> TagMatch {
        TagMatch { marker: marker.to_string(), mailbox: mailbox.map(str::to_string), pin: None }
    }

    fn pin_tag(marker: &str, mailbox: Option<&str>, pin: &str) -> TagMatch {
        TagMatch { pin: Some(Pin::new(pin)), ..tag(marker, mailbox) }
    }

    #[test]
    fn pin_grammar() {
        let markers = default_markers();
        let cases: &[(&str, Option<TagMatch>, &str)] = &[
            ("[PEC:legal:739184620573] Diffida", Some(pin_tag("[PEC]", Some("legal"), "739184620573")), "Diffida"),
            ("[PEC:legal 739184620573] Diffida", Some(pin_tag("[PEC]", Some("legal"), "739184620573")), "Diffida"),
            ("[PEC 739184620573] Diffida", Some(pin_tag("[PEC]", None, "739184620573")), "Diffida"),
            ("[PEC:739184620573] Diffida", Some(pin_tag("[PEC]", None, "739184620573")), "Diffida"),
            ("Re: [gpec:hr 481516234200]", Some(pin_tag("[GPEC]", Some("hr"), "481516234200")), "Re:"),
            // Any run of digits is the PIN field, even of the wrong length: it is cut out, and refused later.
            ("[PEC 12] x", Some(pin_tag("[PEC]", None, "12")), "x"),
            ("[PEC:legal:1234567890123] x", Some(pin_tag("[PEC]", Some("legal"), "1234567890123")), "x"),
            // Encoded subject: "[PEC:legal:739184620573] Città".
            (
                "=?UTF-8?B?W1BFQzpsZWdhbDo3MzkxODQ2MjA1NzNdIENpdHTDoA==?=",
                Some(pin_tag("[PEC]", Some("legal"), "739184620573")),
                "=?UTF-8?B?Q2l0dMOg?=",
            ),
            // Not tags: letters in the PIN, two PINs, a space before the id, nothing after the space.
            ("[PEC:legal:12ab] x", None, ""),
            ("[PEC:legal:1234:5678] x", None, ""),
            ("[PEC legal] x", None, ""),
            ("[PEC ] x", None, ""),
            ("[PEC:legal  1234] x", None, ""),
        ];
        for (raw, want_tag, want_raw) in cases {
            let got = strip_tag(raw, &markers);
            match want_tag {
                None => assert_eq!(got, None, "{raw:?}"),
                Some(want) => assert_eq!(got, Some((want.clone(), want_raw.to_string())), "{raw:?}"),
            }
        }
        // The PIN leaves no trace in the stripped subject, plain or encoded.
        for raw in ["[PEC:legal:739184620573] x", "=?UTF-8?B?W1BFQzpsZWdhbDo3MzkxODQ2MjA1NzNdIENpdHTDoA==?="] {
            let (_, stripped) = strip_tag(raw, &markers).unwrap();
            assert!(!decode_subject(&stripped).contains("739184620573"), "{raw:?}");
        }
    }

    #[test]
    fn pin_shape_and_debug() {
        assert!(is_pin("1234") && is_pin("739184620573"));
        assert!(!is_pin("123") && !is_pin("1234567890123") && !is_pin("12a4") && !is_pin(""));
        assert!(Pin::new("739184620573").well_formed());
        let shown = format!("{:?}", pin_tag("[PEC]", Some("legal"), "739184620573"));
        assert!(!shown.contains("739184620573"), "{shown}");
    }

    #[test]
    fn strip_table() {
        let markers = default_markers();
        // (raw subject, expected tag, expected new raw subject)
        let cases: &[(&str, Option<TagMatch>, &str)] = &[
            ("[PEC] Contratto", Some(tag("[PEC]", None)), "Contratto"),
            ("Re: [PEC] x", Some(tag("[PEC]", None)), "Re: x"),
            ("[pec] x", Some(tag("[PEC]", None)), "x"),
            ("[PEC:legal] x", Some(tag("[PEC]", Some("legal"))), "x"),
            ("[pec:Legal-2.b_c] x", Some(tag("[PEC]", Some("Legal-2.b_c"))), "x"),
            ("[GPEC]x", Some(tag("[GPEC]", None)), "x"),
            ("x [PEC]", Some(tag("[PEC]", None)), "x"),
            ("[PEC]", Some(tag("[PEC]", None)), ""),
            ("a[PEC]b", Some(tag("[PEC]", None)), "ab"),
            // First tag wins, the second stays.
            ("[GPEC] [PEC] x", Some(tag("[GPEC]", None)), "[PEC] x"),
            // Not tags.
            ("[PEC:] x", None, ""),
            ("[PEC:le gal] x", None, ""),
            ("[PEC x", None, ""),
            ("PEC x", None, ""),
            ("", None, ""),
            ("Contratto di fornitura", None, ""),
            // Encoded: "[PEC] Fattura n. € 12".
            ("=?UTF-8?B?W1BFQ10gRmF0dHVyYSBuLiDigqwgMTI=?=", Some(tag("[PEC]", None)), "=?UTF-8?B?RmF0dHVyYSBuLiDigqwgMTI=?="),
            // Latin-1 Q word: re-encoded as UTF-8.
            ("=?iso-8859-1?Q?[PEC]_Citt=E0?=", Some(tag("[PEC]", None)), "=?UTF-8?B?Q2l0dMOg?="),
            // Encoded, ASCII result: plain.
            ("=?utf-8?q?[PEC]_Contratto?=", Some(tag("[PEC]", None)), "Contratto"),
            // Tag split across two encoded words.
            ("=?UTF-8?Q?[PE?= =?UTF-8?Q?C]_x?=", Some(tag("[PEC]", None)), "x"),
            // Folded plain subject.
            ("Re: Contratto\r\n [PEC:hr] firmato", Some(tag("[PEC]", Some("hr"))), "Re: Contratto\r\n firmato"),
            ("[PEC]\r\n Contratto", Some(tag("[PEC]", None)), "Contratto"),
            ("Re:\r\n [PEC]", Some(tag("[PEC]", None)), "Re:"),
            // Plain tag next to encoded word: the word is kept byte-for-byte.
            ("[PEC] =?UTF-8?B?RmF0dHVyYSBuLiDigqwgMTI=?=", Some(tag("[PEC]", None)), "=?UTF-8?B?RmF0dHVyYSBuLiDigqwgMTI=?="),
            (
                "Re: [PEC]\r\n =?iso-8859-1?Q?Citt=E0?= =?utf-8?b?4oKs?=",
                Some(tag("[PEC]", None)),
                "Re: =?iso-8859-1?Q?Citt=E0?= =?utf-8?b?4oKs?=",
            ),
            // Removing the plain tag would glue two encoded words: re-encode instead.
            ("=?UTF-8?Q?a?= [PEC] =?UTF-8?Q?=C3=A0?=", Some(tag("[PEC]", None)), "=?UTF-8?B?YSDDoA==?="),
            // Tag inside an encoded word, plain text around it: everything decoded and re-encoded.
            ("Re: =?UTF-8?B?W1BFQ10gw6A=?=", Some(tag("[PEC]", None)), "=?UTF-8?B?UmU6IMOg?="),
            // Encoded tag but "=?" left in the plain result: must be encoded.
            ("=?UTF-8?Q?[PEC]_a_=3D=3F_b?=", Some(tag("[PEC]", None)), "=?UTF-8?B?YSA9PyBi?="),
        ];
        for (raw, want_tag, want_raw) in cases {
            let got = strip_tag(raw, &markers);
            match want_tag {
                None => assert_eq!(got, None, "{raw:?}"),
                Some(want) => {
                    assert_eq!(got, Some((want.clone(), want_raw.to_string())), "{raw:?}");
                }
            }
        }
    }

    #[test]
    fn custom_markers() {
        let markers = vec!["PEC:".to_string(), "".to_string(), "{{certificata}}".to_string()];
        let cases = [
            ("PEC: x", Some(("PEC:", "x"))),
            ("pec:x", Some(("PEC:", "x"))),
            ("Re: {{CERTIFICATA}} y", Some(("{{certificata}}", "Re: y"))),
            ("nothing", None),
        ];
        for (raw, want) in cases {
            let got = strip_tag(raw, &markers).map(|(t, s)| (t.marker, s));
            assert_eq!(got, want.map(|(m, s)| (m.to_string(), s.to_string())), "{raw:?}");
        }
        assert_eq!(strip_tag("[PEC] x", &[]), None);
    }

    #[test]
    fn decode_table() {
        let cases = [
            ("plain", "plain"),
            ("  Re: x \r\n y ", "Re: x  y"),
            ("=?UTF-8?B?W1BFQ10gRmF0dHVyYSBuLiDigqwgMTI=?=", "[PEC] Fattura n. € 12"),
            ("=?iso-8859-1?Q?[PEC]_Citt=E0?=", "[PEC] Città"),
            ("=?UTF-8?Q?a?= \r\n =?UTF-8?Q?b?=", "ab"),
            ("x =?UTF-8?Q?a?= y", "x a y"),
            // Not well formed: left as text.
            ("=?UTF-8?X?a?=", "=?UTF-8?X?a?="),
            ("=?UTF-8?Q?a b?=", "=?UTF-8?Q?a b?="),
            ("=?", "=?"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_subject(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn encode_table() {
        assert_eq!(encode_subject("Contratto"), "Contratto");
        assert_eq!(encode_subject(""), "");
        assert_eq!(encode_subject("Città"), "=?UTF-8?B?Q2l0dMOg?=");
        assert_eq!(encode_subject("a\tb"), "=?UTF-8?B?YQli?=");
        // 45 bytes fit one word, the 46th starts a new one; "€" (3 bytes) is never split.
        let long = format!("{}€", "a".repeat(44));
        let encoded = encode_subject(&long);
        let words: Vec<&str> = encoded.split("\r\n ").collect();
        assert_eq!(words.len(), 2);
        assert!(words.iter().all(|w| w.len() <= MAX_WORD_LEN));
        assert_eq!(decode_subject(&encoded), long);
    }

    #[test]
    fn tagged_marker_table() {
        let cases = [("[PEC]", "legal", "[PEC:legal]"), ("[GPEC]", "hr", "[GPEC:hr]"), ("PEC:", "x", "PEC:"), ("]", "x", "]")];
        for (marker, id, want) in cases {
            assert_eq!(tagged_marker(marker, id), want);
        }
    }

    /// Subjects assembled from the pieces that matter, so properties hit the interesting paths.
    fn subject_pieces() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("[PEC]".to_string()),
            Just("[pec:legal]".to_string()),
            Just("[PEC:legal 4815]".to_string()),
            Just("[GPEC]".to_string()),
            Just(" ".to_string()),
            Just("\r\n ".to_string()),
            Just("=?UTF-8?B?W1BFQ10gRmF0dHVyYSBuLiDigqwgMTI=?=".to_string()),
            Just("=?iso-8859-1?Q?[PEC]_Citt=E0?=".to_string()),
            Just("=?UTF-8?Q?[PE?=".to_string()),
            Just("=?UTF-8?Q?C]?=".to_string()),
            Just("=?".to_string()),
            "[ -~]{0,6}",
            "\\PC{0,4}",
        ];
        prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn never_panics(raw in any::<String>(), marker in any::<String>()) {
            let markers = vec![marker, "[PEC]".to_string()];
            let _ = strip_tag(&raw, &markers);
            let _ = decode_subject(&raw);
        }

        #[test]
        fn strip_reads_as_intended(raw in subject_pieces()) {
            let markers = default_markers();
            if let Some((_, new_raw)) = strip_tag(&raw, &markers) {
                let decoded = Decoded::new(&raw);
                let (range, _) = find_tag(&decoded.text, &markers).expect("tag was found once");
                let wanted = remove_with_space(&decoded.text, range);
                prop_assert_eq!(Decoded::new(&new_raw).text, wanted);
                // Words we generated (the re-encode path) respect the RFC 2047 length.
                let ours = |w: &str| w.starts_with("=?UTF-8?B?") && w.find("?=") == Some(w.len() - 2);
                if new_raw.split("\r\n ").all(ours) {
                    prop_assert!(new_raw.split("\r\n ").all(|w| w.len() <= MAX_WORD_LEN));
                }
            } else {
                prop_assert!(find_tag(&decode_subject(&raw), &markers).is_none());
            }
        }

        #[test]
        fn encode_round_trips(text in "\\PC{0,200}") {
            let encoded = encode_subject(&text);
            prop_assert_eq!(Decoded::new(&encoded).text, text);
        }
    }
}
