//! Classification of a message over a structure limit, without mail-parser's
//! full parse.
//!
//! A hostile sender controls the original a provider wraps (postacert.eml),
//! not the envelope: multipart/signed > multipart/mixed > text, daticert.xml,
//! postacert.eml. So only those two levels are split, at most
//! [`SHALLOW_PARTS`] parts each; the daticert is decoded and parsed (it is
//! bounded by `MAX_DATICERT_LEN`) and of the original only its header
//! section is read. Nothing below is looked at.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::MessageParser;

use super::classify::{Classification, apply_daticert, better_text};
use super::daticert::MAX_DATICERT_LEN;
use super::{Error, Kind, mime, strip_message_id, structure};

/// Parts looked at on each of the two levels: an envelope has 2 and 3 or 4.
const SHALLOW_PARTS: usize = 16;

/// Fill `c` (already holding what the top-level headers say) from the
/// envelope's own parts.
pub(super) fn classify_shallow(raw: &[u8], c: &mut Classification, header_kind: bool) {
    if let Some((subject, message_id)) = decoded_subject_and_id(raw) {
        c.subject = better_text(c.subject.take(), subject);
        c.message_id = message_id.or(c.message_id.take());
    }

    let parts = envelope_parts(raw);
    let mut daticert: Option<(&[u8], bool)> = None;
    let mut named_original: Option<&[u8]> = None;
    let mut any_original: Option<&[u8]> = None;
    for part in &parts {
        let h = mime::parse_headers(part);
        let ct = mime::parse_content_type(mime::header(&h, "Content-Type").unwrap_or_default());
        let disposition = mime::parse_content_type(mime::header(&h, "Content-Disposition").unwrap_or_default());
        let name = disposition.param("filename").or(ct.param("name")).map(str::trim).unwrap_or("");
        if name.eq_ignore_ascii_case("daticert.xml") {
            if daticert.is_none_or(|(_, named)| !named) {
                daticert = Some((part, true));
            }
        } else if matches!(ct.mime.as_str(), "application/xml" | "text/xml") && daticert.is_none() {
            daticert = Some((part, false));
        }
        if name.eq_ignore_ascii_case("postacert.eml") {
            named_original.get_or_insert(part);
        } else if ct.mime == "message/rfc822" {
            any_original.get_or_insert(part);
        }
        if matches!(ct.mime.as_str(), "application/pkcs7-signature" | "application/x-pkcs7-signature") {
            c.signature_content_type = Some(ct.mime.clone());
        }
    }

    if let Some((part, named)) = daticert {
        // Encoded, a daticert is at most 4/3 of its limit plus line breaks: no copy of a bigger part.
        if part.len() > MAX_DATICERT_LEN * 2 {
            if named {
                c.daticert_error = Some(Error::TooLarge(part.len()).to_string());
            }
        } else {
            apply_daticert(c, &decoded_body(part), named, header_kind);
        }
    }
    let original = named_original.or(if c.kind != Kind::NotPec { any_original } else { None });
    if let Some(part) = original {
        c.has_original = true;
        let body = header_prefix(part);
        let h = mime::parse_headers(&body);
        c.original_subject = mime::header(&h, "Subject").map(str::to_string).filter(|s| !s.is_empty());
        c.original_message_id = mime::header(&h, "Message-ID").and_then(strip_message_id);
        if let Some((subject, message_id)) = decoded_subject_and_id(&body) {
            c.original_subject = better_text(c.original_subject.take(), subject);
            c.original_message_id = message_id.or(c.original_message_id.take());
        }
    }
}

/// The parts of the envelope's multipart/mixed (inside a multipart/signed or
/// at the top), at most [`SHALLOW_PARTS`].
fn envelope_parts(raw: &[u8]) -> Vec<&[u8]> {
    let mut level = raw;
    // signed, then mixed: two levels at most.
    for _ in 0..2 {
        let h = mime::parse_headers(level);
        let ct = mime::parse_content_type(mime::header(&h, "Content-Type").unwrap_or_default());
        let Some(boundary) = ct.param("boundary").filter(|b| !b.is_empty() && ct.mime.starts_with("multipart/")) else {
            return Vec::new();
        };
        let body = &level[mime::body_offset(level)..];
        if ct.mime == "multipart/signed" {
            match mime::split_multipart(body, boundary, 1).first() {
                Some(first) => level = first,
                None => return Vec::new(),
            }
        } else {
            return mime::split_multipart(body, boundary, SHALLOW_PARTS);
        }
    }
    Vec::new()
}

/// A part's transfer-decoded body.
fn decoded_body(part: &[u8]) -> Vec<u8> {
    let h = mime::parse_headers(part);
    mime::transfer_decode(&part[mime::body_offset(part)..], mime::header(&h, "Content-Transfer-Encoding"))
}

/// The start of a part's decoded body, enough for its header section: the
/// original can be as big as the message and only its headers are read.
fn header_prefix(part: &[u8]) -> Cow<'_, [u8]> {
    let h = mime::parse_headers(part);
    let body = &part[mime::body_offset(part)..];
    let enc = mime::header(&h, "Content-Transfer-Encoding").unwrap_or("").trim().to_ascii_lowercase();
    // Encoded input longer than this decodes to more than a header section may hold.
    let want = structure::MAX_HEADER_BYTES / 3 * 4 + 4;
    match enc.as_str() {
        "base64" => {
            let mut clean: Vec<u8> =
                body.iter().copied().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')).take(want).collect();
            // Whole quanta only: a cut quantum would not decode.
            clean.truncate(clean.len() / 4 * 4);
            Cow::Owned(mime::base64_decode_lenient(&clean))
        }
        "quoted-printable" => Cow::Owned(mime::qp_decode(&body[..body.len().min(want * 3)])),
        _ => Cow::Borrowed(&body[..mime::body_offset(body)]),
    }
}

/// Subject (RFC 2047 decoded) and Message-ID from the header section at the
/// start of `data`, by mail-parser when that section alone is within the
/// header limits.
fn decoded_subject_and_id(data: &[u8]) -> Option<(Option<String>, Option<String>)> {
    if !structure::headers_within_limits(data) {
        return None;
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        MessageParser::default()
            .parse_headers(data)
            .map(|m| (m.subject().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()), m.message_id().and_then(strip_message_id)))
    }));
    parsed.ok().flatten()
}
