//! Structure limits: the scan stops at the first limit (bounded work), a
//! message over a limit is classified from its headers and envelope parts,
//! and the scan counts parts as mail-parser does.

use super::*;
use crate::pec::{BuildParams, Kind, build_message, classify};
use mail_parser::{Message, MessageParser, PartType};
use proptest::prelude::*;

const TOP: &str = "From: a@example.com\r\nTo: b@example.com\r\nSubject: =?UTF-8?Q?citt=C3=A0?=\r\nMessage-ID: <hostile@example.com>\r\nMIME-Version: 1.0\r\n";

/// A multipart/mixed of `parts` text parts.
fn flat(parts: usize) -> Vec<u8> {
    let mut m = format!("{TOP}Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n").into_bytes();
    for i in 0..parts {
        m.extend_from_slice(format!("--B\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes());
    }
    m.extend_from_slice(b"--B--\r\n");
    m
}

/// `levels` multiparts inside each other around one text part.
fn nested(levels: usize) -> Vec<u8> {
    let mut m = TOP.as_bytes().to_vec();
    for i in 0..levels {
        m.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n").as_bytes());
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in (0..levels).rev() {
        m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    m
}

fn unlimited() -> Limits {
    Limits { parts: usize::MAX, depth: usize::MAX, headers: usize::MAX, header_bytes: usize::MAX }
}

/// Every part mail-parser keeps, nested messages included.
fn parser_parts(m: &Message) -> usize {
    m.parts.len() + m.parts.iter().map(|p| if let PartType::Message(n) = &p.body { parser_parts(n) } else { 0 }).sum::<usize>()
}

#[test]
fn hundred_thousand_parts_stop_at_the_part_limit() {
    let raw = flat(100_000);
    let (shape, limit) = scan(&raw, &LIMITS);
    assert_eq!(limit, Some(StructureLimit::Parts));
    // Bounded work: the scan stopped at the first part over the limit.
    assert_eq!(shape.parts, MAX_PARTS + 1);
    assert_eq!(shape.depth, 1);

    let c = classify(&raw);
    assert_eq!(c.structure_limit, Some(StructureLimit::Parts));
    assert_eq!(c.kind, Kind::NotPec);
    assert_eq!(c.subject.as_deref(), Some("città"), "the top-level header is still decoded");
    assert_eq!(c.message_id.as_deref(), Some("hostile@example.com"));
    assert_eq!(c.daticert, None);
    assert!(!c.has_original);
}

#[test]
fn hundred_thousand_nested_parts_stop_at_the_depth_limit() {
    let raw = nested(100_000);
    let (shape, limit) = scan(&raw, &LIMITS);
    assert_eq!(limit, Some(StructureLimit::Depth));
    assert_eq!(shape.depth, MAX_DEPTH + 1);
    assert_eq!(shape.parts, MAX_DEPTH + 1);
    assert_eq!(classify(&raw).structure_limit, Some(StructureLimit::Depth));
}

#[test]
fn at_the_limits_is_a_full_parse() {
    // The top-level multipart is a part too.
    let raw = flat(MAX_PARTS - 1);
    assert_eq!(scan(&raw, &LIMITS), (Shape { parts: MAX_PARTS, depth: 1, header_bytes: scan(&raw, &unlimited()).0.header_bytes }, None));
    assert_eq!(classify(&raw).structure_limit, None);
    assert_eq!(check(&flat(MAX_PARTS)), Some(StructureLimit::Parts));
    assert_eq!(check(&nested(MAX_DEPTH)), None);
    assert_eq!(check(&nested(MAX_DEPTH + 1)), Some(StructureLimit::Depth));
}

#[test]
fn header_limits() {
    let many = |n: usize| format!("{TOP}{}\r\nbody\r\n", "X-A: 1\r\n".repeat(n)).into_bytes();
    assert_eq!(check(&many(MAX_HEADERS - 5)), None, "TOP has 5 lines");
    assert_eq!(check(&many(MAX_HEADERS - 4)), Some(StructureLimit::Headers));
    // Within the line count, over the bytes: one huge folded To: list.
    let list = format!("{TOP}To: {}\r\n\r\nbody\r\n", "a@example.com,\r\n ".repeat(MAX_HEADER_BYTES / 17 + 1));
    assert_eq!(check(list.as_bytes()), Some(StructureLimit::Headers));
    let long = format!("{TOP}To: {}\r\n\r\nbody\r\n", "a@example.com, ".repeat(MAX_HEADER_BYTES / 15 + 1));
    assert_eq!(check(long.as_bytes()), Some(StructureLimit::HeaderBytes));
    let c = classify(long.as_bytes());
    assert_eq!(c.structure_limit, Some(StructureLimit::HeaderBytes));
    assert_eq!(c.subject.as_deref(), Some("=?UTF-8?Q?citt=C3=A0?="), "over the header limits the subject stays undecoded");
    // mime::parse_headers keeps at most MAX_HEADERS.
    assert_eq!(mime::parse_headers(&many(5000)).len(), MAX_HEADERS);
}

#[test]
fn encoded_nested_messages_are_counted() {
    use base64::Engine as _;
    let inner = flat(600);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&inner);
    let raw = format!(
        "{TOP}Content-Type: multipart/mixed; boundary=\"O\"\r\n\r\n--O\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--O\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--O--\r\n"
    );
    let (shape, limit) = scan(raw.as_bytes(), &unlimited());
    assert_eq!(limit, None);
    assert_eq!(shape.parts, 3 + 2 * 601);
    assert_eq!(check(raw.as_bytes()), Some(StructureLimit::Parts));
}

#[test]
fn envelope_around_a_hostile_original_keeps_its_pec_data() {
    // The provider's envelope is fine; the original (postacert.eml) is not.
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    let benign = classify(&build_message(&p));
    assert_eq!(benign.structure_limit, None);
    p.original = Some([b"Subject: Pratica 42\r\nMessage-ID: <orig@example.it>\r\n".as_slice(), &flat(100_000)[TOP.len()..]].concat());
    let c = classify(&build_message(&p));
    assert_eq!(c.structure_limit, Some(StructureLimit::Parts));
    assert_eq!(c.kind, Kind::PostaCertificata);
    assert_eq!(c.subject, benign.subject);
    assert_eq!(c.message_id, benign.message_id);
    assert_eq!(c.daticert, benign.daticert);
    assert!(c.daticert.is_some());
    assert_eq!(c.signature_content_type, benign.signature_content_type);
    assert!(c.has_original);
    assert_eq!(c.original_subject.as_deref(), Some("Pratica 42"));
    assert_eq!(c.original_message_id.as_deref(), Some("orig@example.it"));
}

#[test]
fn huge_part_named_daticert_is_not_copied() {
    let part = format!(
        "Content-Type: application/xml; name=\"daticert.xml\"\r\n\r\n{}",
        "x".repeat(crate::pec::daticert::MAX_DATICERT_LEN * 2 + 1)
    );
    // First of the top-level parts, then enough parts to go over the limit.
    let flat = flat(MAX_PARTS);
    let body = flat.windows(3).position(|w| w == b"--B").unwrap_or(0);
    let raw = [&flat[..body], b"--B\r\n", part.as_bytes(), b"\r\n", &flat[body..]].concat();
    let c = classify(&raw);
    assert_eq!(c.structure_limit, Some(StructureLimit::Parts));
    assert_eq!(c.daticert, None);
    assert_eq!(c.daticert_error, Some(format!("daticert.xml too large: {} bytes", part.len())));
}

#[test]
fn every_built_kind_is_within_the_limits() {
    for k in Kind::ALL {
        let raw = build_message(&BuildParams::sample(k));
        let (shape, limit) = scan(&raw, &LIMITS);
        assert_eq!(limit, None, "{k}");
        let parsed = MessageParser::default().parse(&raw).map(|m| parser_parts(&m));
        assert_eq!(Some(shape.parts), parsed, "{k}");
    }
}

/// A random MIME tree: multiparts (some digest), messages, leaves.
fn tree() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("Content-Type: text/plain\r\n\r\nhello\r\n".to_string()),
        Just("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n".to_string()),
        Just("\r\nno headers\r\n".to_string()),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 1..4), 0u32..1000, any::<bool>()).prop_map(|(kids, n, digest)| {
                let sub = if digest { "digest" } else { "mixed" };
                let mut s = format!("Content-Type: multipart/{sub}; boundary=\"z{n}\"\r\n\r\npreamble\r\n");
                for k in kids {
                    s.push_str(&format!("--z{n}\r\n{k}"));
                }
                s.push_str(&format!("--z{n}--\r\n"));
                s
            }),
            inner.prop_map(|k| format!("Content-Type: message/rfc822\r\n\r\nSubject: nested\r\n{k}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The scan never counts fewer parts than mail-parser keeps (it may count
    /// more on odd input, such as a boundary reused by a nested multipart).
    #[test]
    fn scan_counts_at_least_what_mail_parser_keeps(body in tree()) {
        let raw = format!("From: a@example.com\r\nMIME-Version: 1.0\r\n{body}");
        let (shape, limit) = scan(raw.as_bytes(), &unlimited());
        prop_assert_eq!(limit, None);
        // mail-parser debug-asserts on some odd trees (release builds carry on).
        let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw.as_bytes()).map_or(0, |m| parser_parts(&m)));
        prop_assume!(parsed.is_ok());
        let parsed = parsed.unwrap_or_default();
        prop_assert!(shape.parts >= parsed, "scan {} < mail-parser {parsed}", shape.parts);
    }
}
