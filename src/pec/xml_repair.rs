//! Lenient reading of daticert.xml: characters XML 1.0 forbids are replaced
//! before parsing.
//!
//! Some providers copy the original subject into `<oggetto>` unfiltered, so a
//! subject holding U+0012 or U+0016 makes the whole daticert ill-formed and a
//! genuine PEC would lose its sender, recipients, identifier and time. Such
//! characters, raw or as character references (`&#x12;`, `&#18;`), become
//! U+FFFD: a visible mark that the text was altered (a space would pass for
//! the provider's own), which keeps the other characters' positions. The
//! document is otherwise untouched, so the DTD and entity checks still apply.

use serde::Serialize;

/// What a lenient read replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The forbidden code point (`0x12`).
    pub code_point: u32,
    /// It was written as a character reference (`&#x12;`), not as the raw character.
    pub reference: bool,
    /// How many times it occurred.
    pub count: usize,
}

impl std::fmt::Display for Repair {
    /// `U+0012 x2` for raw characters, `&#x12; x1` for references.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reference {
            write!(f, "&#x{:X}; x{}", self.code_point, self.count)
        } else {
            write!(f, "U+{:04X} x{}", self.code_point, self.count)
        }
    }
}

/// The replacement for a forbidden character.
const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// XML 1.0 `Char`: tab, LF, CR and everything from U+0020 except the
/// surrogates, U+FFFE and U+FFFF.
fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// `text` with forbidden characters and references to them replaced by
/// U+FFFD, and what was replaced; `None` when nothing was.
pub(crate) fn repair(text: &str) -> Option<(String, Vec<Repair>)> {
    if text.chars().all(|c| is_xml_char(u32::from(c))) && !text.contains("&#") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut repairs: Vec<Repair> = Vec::new();
    let mut note =
        |code_point: u32, reference: bool| match repairs.iter_mut().find(|r| r.code_point == code_point && r.reference == reference) {
            Some(r) => r.count += 1,
            None => repairs.push(Repair { code_point, reference, count: 1 }),
        };
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '&'
            && let Some((cp, len)) = char_reference(rest)
            && !is_xml_char(cp)
        {
            note(cp, true);
            out.push(REPLACEMENT);
            rest = &rest[len..];
            continue;
        }
        if is_xml_char(u32::from(c)) {
            out.push(c);
        } else {
            note(u32::from(c), false);
            out.push(REPLACEMENT);
        }
        rest = &rest[c.len_utf8()..];
    }
    if repairs.is_empty() { None } else { Some((out, repairs)) }
}

/// A character reference at the start of `s` (`&#18;` or `&#x12;`): its code
/// point and length in bytes.
fn char_reference(s: &str) -> Option<(u32, usize)> {
    let body = s.strip_prefix("&#")?;
    let (radix, digits) = match body.strip_prefix('x') {
        Some(hex) => (16, hex),
        None => (10, body),
    };
    // Look a few bytes ahead only: a stray `&#` must not cost a scan of the rest.
    let end = digits.bytes().take(16).position(|b| b == b';')?;
    let num = &digits[..end];
    // 8 significant digits hold any code point; longer ones are not ours to judge.
    if num.is_empty() || num.trim_start_matches('0').len() > 8 || !num.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let cp = u32::from_str_radix(num, radix).ok()?;
    Some((cp, s.len() - digits.len() + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_table() {
        let r = |cp, reference, count| Repair { code_point: cp, reference, count };
        type Want<'a> = Option<(&'a str, Vec<Repair>)>;
        let cases: &[(&str, Want)] = &[
            ("plain text, tab\tCR\rLF\n", None),
            ("&#x41; &#65; &amp; &#x20AC;", None),
            ("a\u{12}b\u{16}c\u{12}", Some(("a\u{fffd}b\u{fffd}c\u{fffd}", vec![r(0x12, false, 2), r(0x16, false, 1)]))),
            ("x&#x12;y&#22;z&#x0;", Some(("x\u{fffd}y\u{fffd}z\u{fffd}", vec![r(0x12, true, 1), r(0x16, true, 1), r(0, true, 1)]))),
            (
                "\u{0}\u{1f}\u{fffe}\u{ffff}",
                Some((
                    "\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
                    vec![r(0, false, 1), r(0x1f, false, 1), r(0xfffe, false, 1), r(0xffff, false, 1)],
                )),
            ),
            ("&#xD800;&#1114112;", Some(("\u{fffd}\u{fffd}", vec![r(0xd800, true, 1), r(0x110000, true, 1)]))),
            // Not references: left for the parser to judge.
            ("&#x; &#xZZ; &#12 &#X12; &#x1000000000;", None),
            ("&#x00000012;", Some(("\u{fffd}", vec![r(0x12, true, 1)]))),
            ("à\u{7f}\u{85}", None),
        ];
        for (input, want) in cases {
            let got = repair(input);
            let want = want.as_ref().map(|(s, r)| (s.to_string(), r.clone()));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn strict_parser_refuses_what_is_repaired() {
        // Why the repair exists: one such character loses the whole daticert.
        for xml in ["<a>x\u{12}y</a>", "<a>x&#x12;y</a>", "<a b=\"&#22;\"/>"] {
            assert!(roxmltree::Document::parse(xml).is_err(), "{xml:?}");
            let (fixed, _) = repair(xml).expect("repaired");
            assert!(roxmltree::Document::parse(&fixed).is_ok(), "{fixed:?}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(Repair { code_point: 0x12, reference: false, count: 2 }.to_string(), "U+0012 x2");
        assert_eq!(Repair { code_point: 0x16, reference: true, count: 1 }.to_string(), "&#x16; x1");
    }
}
