//! Lenient reading of daticert.xml: characters XML 1.0 forbids are replaced
//! before parsing.
//!
//! Some providers copy the original subject into `<oggetto>` unfiltered, so a
//! subject holding U+0012 or U+0016 makes the whole daticert ill-formed and a
//! genuine PEC would lose its sender, recipients, identifier and time. Such
//! characters, raw or as character references (`&#x12;`, `&#18;`), become
//! U+FFFD: a visible mark that the text was altered (a space would pass for
//! the provider's own), which keeps the other characters' positions. The
//! A bare `&` (a subject's "A & B" not escaped) is read as `&amp;`. The
//! document is otherwise untouched, so the DTD and entity checks still apply.

use serde::Serialize;

/// What a lenient read changed to make a daticert parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "repair")]
pub enum Repair {
    /// A character XML 1.0 forbids (`0x12`), replaced by U+FFFD.
    Char { code_point: u32, count: usize },
    /// A character reference to one (`&#x12;`), replaced by U+FFFD.
    Reference { code_point: u32, count: usize },
    /// A bare `&` (a subject's "A & B" copied unescaped), read as `&amp;`.
    Ampersand { count: usize },
    /// An encoding we cannot decode, read as ISO-8859-1: the ASCII fields
    /// (addresses, identifier, time) are exact, other letters may not be.
    Encoding { declared: String },
}

impl std::fmt::Display for Repair {
    /// `U+0012 x2`, `&#x12; x1`, `bare & x1`, `encoding iso-8859-2 read as ISO-8859-1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repair::Char { code_point, count } => write!(f, "U+{code_point:04X} x{count}"),
            Repair::Reference { code_point, count } => write!(f, "&#x{code_point:X}; x{count}"),
            Repair::Ampersand { count } => write!(f, "bare & x{count}"),
            Repair::Encoding { declared } => write!(f, "encoding {declared} read as ISO-8859-1"),
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
/// U+FFFD and bare `&` escaped, and what was changed; `None` when nothing was.
pub(crate) fn repair(text: &str) -> Option<(String, Vec<Repair>)> {
    if text.chars().all(|c| is_xml_char(u32::from(c))) && !text.contains('&') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut repairs: Vec<Repair> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // In CDATA and comments `&` is text: only forbidden characters there.
        if c == '<'
            && let Some(close) =
                [("<![CDATA[", "]]>"), ("<!--", "-->")].iter().find(|(open, _)| rest.starts_with(open)).map(|(_, close)| close)
        {
            let end = rest.find(close).map_or(rest.len(), |p| p + close.len());
            for c in rest[..end].chars() {
                if is_xml_char(u32::from(c)) {
                    out.push(c);
                } else {
                    note(&mut repairs, Repair::Char { code_point: u32::from(c), count: 1 });
                    out.push(REPLACEMENT);
                }
            }
            rest = &rest[end..];
            continue;
        }
        if c == '&' {
            match char_reference(rest) {
                Some((code_point, len)) if !is_xml_char(code_point) => {
                    note(&mut repairs, Repair::Reference { code_point, count: 1 });
                    out.push(REPLACEMENT);
                    rest = &rest[len..];
                    continue;
                }
                None if !is_entity_reference(rest) => {
                    note(&mut repairs, Repair::Ampersand { count: 1 });
                    out.push_str("&amp;");
                    rest = &rest[1..];
                    continue;
                }
                _ => {}
            }
        }
        if is_xml_char(u32::from(c)) {
            out.push(c);
        } else {
            note(&mut repairs, Repair::Char { code_point: u32::from(c), count: 1 });
            out.push(REPLACEMENT);
        }
        rest = &rest[c.len_utf8()..];
    }
    if repairs.is_empty() { None } else { Some((out, repairs)) }
}

/// Count `new` with an earlier repair of the same thing, else add it.
fn note(repairs: &mut Vec<Repair>, new: Repair) {
    for r in repairs.iter_mut() {
        match (r, &new) {
            (Repair::Char { code_point: a, count }, Repair::Char { code_point: b, .. })
            | (Repair::Reference { code_point: a, count }, Repair::Reference { code_point: b, .. })
                if *a == *b =>
            {
                *count += 1;
                return;
            }
            (Repair::Ampersand { count }, Repair::Ampersand { .. }) => {
                *count += 1;
                return;
            }
            _ => {}
        }
    }
    repairs.push(new);
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

/// `&name;` at the start of `s` (`&amp;`, or one the parser will judge).
fn is_entity_reference(s: &str) -> bool {
    let Some(name) = s.strip_prefix('&') else { return false };
    let Some(end) = name.bytes().take(64).position(|b| b == b';') else { return false };
    let name = &name[..end];
    name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == ':')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_table() {
        let r = |code_point, reference, count| {
            if reference { Repair::Reference { code_point, count } } else { Repair::Char { code_point, count } }
        };
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
            // Not references: escaped, so the parser reads them as text.
            (
                "&#x; &#xZZ; &#12 &#X12; &#x1000000000;",
                Some(("&amp;#x; &amp;#xZZ; &amp;#12 &amp;#X12; &amp;#x1000000000;", vec![Repair::Ampersand { count: 5 }])),
            ),
            (
                "A & B &amp; C &città; &undefined; &lt",
                Some(("A &amp; B &amp; C &città; &undefined; &amp;lt", vec![Repair::Ampersand { count: 2 }])),
            ),
            ("&#x00000012;", Some(("\u{fffd}", vec![r(0x12, true, 1)]))),
            ("à\u{7f}\u{85}", None),
            (
                "<![CDATA[A & B\u{12}]]> & <!-- & -->",
                Some((
                    "<![CDATA[A & B\u{fffd}]]> &amp; <!-- & -->",
                    vec![Repair::Char { code_point: 0x12, count: 1 }, Repair::Ampersand { count: 1 }],
                )),
            ),
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
        for xml in ["<a>x\u{12}y</a>", "<a>x&#x12;y</a>", "<a b=\"&#22;\"/>", "<a>A & B</a>"] {
            assert!(roxmltree::Document::parse(xml).is_err(), "{xml:?}");
            let (fixed, _) = repair(xml).expect("repaired");
            assert!(roxmltree::Document::parse(&fixed).is_ok(), "{fixed:?}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(Repair::Char { code_point: 0x12, count: 2 }.to_string(), "U+0012 x2");
        assert_eq!(Repair::Reference { code_point: 0x16, count: 1 }.to_string(), "&#x16; x1");
        assert_eq!(Repair::Ampersand { count: 3 }.to_string(), "bare & x3");
        assert_eq!(Repair::Encoding { declared: "iso-8859-2".into() }.to_string(), "encoding iso-8859-2 read as ISO-8859-1");
    }
}
