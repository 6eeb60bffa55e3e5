//! Classification of a raw message as a PEC envelope, a PEC receipt or
//! ordinary mail, by headers (never by subject text).

use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use super::daticert::{Daticert, parse_daticert};
use super::mime;
use super::structure::{self, StructureLimit};
use super::{Kind, ReceiptType, strip_message_id};

/// What [`classify`] learned about one message. Missing or broken parts
/// leave fields empty; classification itself never fails.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Classification {
    /// The kind (from `X-Ricevuta` / `X-Trasporto`, else the daticert `tipo`).
    pub kind: Kind,
    /// *tipo ricevuta* (`X-TipoRicevuta`, else daticert `<ricevuta tipo>`).
    pub receipt_type: Option<ReceiptType>,
    /// `X-Riferimento-Message-ID` without angle brackets: the Message-ID of
    /// the message this receipt refers to, as we sent it.
    pub riferimento_message_id: Option<String>,
    /// The decoded Subject.
    pub subject: Option<String>,
    /// The Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// `X-VerificaSicurezza: errore`: the provider's signature check failed.
    pub verifica_sicurezza_errore: bool,
    /// A `postacert.eml` (the original message) is attached.
    pub has_original: bool,
    /// The decoded Subject of `postacert.eml`.
    pub original_subject: Option<String>,
    /// The Message-ID of `postacert.eml`, without angle brackets.
    pub original_message_id: Option<String>,
    /// The parsed `daticert.xml`.
    pub daticert: Option<Daticert>,
    /// Why a `daticert.xml` part that was found could not be parsed.
    pub daticert_error: Option<String>,
    /// Content type of the signature part (`application/pkcs7-signature` or
    /// `application/x-pkcs7-signature`), else the multipart/signed `protocol`.
    pub signature_content_type: Option<String>,
    /// The MIME structure went over a limit (parts, depth, headers): the
    /// message was classified from its headers and the envelope's own
    /// top-level parts only, without a full parse.
    pub structure_limit: Option<StructureLimit>,
}

/// Above this size a message is classified from its envelope's own parts,
/// as over a structure limit: mail-parser would decode every attachment in
/// memory (70 MB for a 100 MB PEC), while what a PEC says is in its
/// headers, daticert.xml and the header section of postacert.eml.
pub const FULL_PARSE_MAX: usize = 8 * 1024 * 1024;

/// Classify a raw RFC 5322 message. Never panics; broken MIME or XML only
/// leaves fewer fields filled.
pub fn classify(raw: &[u8]) -> Classification {
    classify_as(raw, raw.len() > FULL_PARSE_MAX)
}

/// [`classify`] of a big message's [skeleton](super::skeleton): from the
/// envelope's own parts, which the skeleton holds whole.
pub fn classify_skeleton(skeleton: &[u8]) -> Classification {
    classify_as(skeleton, true)
}

/// [`classify`], from the envelope's own parts only when `shallow`.
pub(super) fn classify_as(raw: &[u8], shallow: bool) -> Classification {
    let headers = mime::parse_headers(raw);
    let mut c = Classification {
        kind: kind_from_headers(&headers).unwrap_or(Kind::NotPec),
        receipt_type: mime::header(&headers, "X-TipoRicevuta").and_then(ReceiptType::parse),
        riferimento_message_id: mime::header(&headers, "X-Riferimento-Message-ID").and_then(strip_message_id),
        subject: mime::header(&headers, "Subject").map(str::to_string).filter(|s| !s.is_empty()),
        message_id: mime::header(&headers, "Message-ID").and_then(strip_message_id),
        verifica_sicurezza_errore: mime::header(&headers, "X-VerificaSicurezza").is_some_and(|v| v.trim().eq_ignore_ascii_case("errore")),
        ..Default::default()
    };
    let header_kind = c.kind != Kind::NotPec;

    if let Some(ct) = mime::header(&headers, "Content-Type").map(mime::parse_content_type)
        && ct.mime == "multipart/signed"
    {
        c.signature_content_type = ct.param("protocol").map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty());
    }

    c.structure_limit = structure::check(raw);
    if c.structure_limit.is_some() || shallow {
        // mail-parser would hold every part in memory: read only what a PEC needs.
        super::shallow::classify_shallow(raw, &mut c, header_kind);
    } else {
        full(raw, &mut c, header_kind);
    }

    if c.receipt_type.is_none() {
        c.receipt_type = c.daticert.as_ref().and_then(|d| d.ricevuta.as_deref()).and_then(ReceiptType::parse);
    }
    c
}

/// Classification from mail-parser's full parse of a message within the
/// structure limits.
fn full(raw: &[u8], c: &mut Classification, header_kind: bool) {
    // mail-parser is defensive, but a panic in a dependency must not take the
    // gateway down: degrade to header-only classification instead.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw));
    let Ok(Some(msg)) = parsed else { return };
    {
        let parsed = msg.subject().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        c.subject = better_text(c.subject.take(), parsed);
        if let Some(id) = msg.message_id() {
            c.message_id = strip_message_id(id);
        }

        let mut daticert_part: Option<&MessagePart> = None;
        let mut xml_part: Option<&MessagePart> = None;
        let mut named_original: Option<&MessagePart> = None;
        let mut any_original: Option<&MessagePart> = None;
        for part in &msg.parts {
            let name = part.attachment_name().map(str::trim).unwrap_or("");
            let ctype = part_mime(part);
            if name.eq_ignore_ascii_case("daticert.xml") {
                daticert_part.get_or_insert(part);
            } else if ctype == "application/xml" || ctype == "text/xml" {
                xml_part.get_or_insert(part);
            }
            if name.eq_ignore_ascii_case("postacert.eml") {
                named_original.get_or_insert(part);
            } else if ctype == "message/rfc822" || matches!(part.body, PartType::Message(_)) {
                any_original.get_or_insert(part);
            }
            if matches!(ctype.as_str(), "application/pkcs7-signature" | "application/x-pkcs7-signature") {
                c.signature_content_type = Some(ctype);
            }
        }

        if let Some(part) = daticert_part.or(xml_part) {
            apply_daticert(c, &part_bytes(raw, part), daticert_part.is_some(), header_kind);
        }

        let original = named_original.or(if c.kind != Kind::NotPec { any_original } else { None });
        if let Some(part) = original {
            c.has_original = true;
            match &part.body {
                PartType::Message(m) => {
                    // The nested message's own header section (its raw_message is the outer message).
                    let nested = raw.get(part.offset_body as usize..).unwrap_or_default();
                    let ours = mime::header(&mime::parse_headers(nested), "Subject").map(str::to_string).filter(|s| !s.is_empty());
                    c.original_subject = better_text(ours, m.subject().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
                    c.original_message_id = m.message_id().and_then(strip_message_id);
                }
                _ => {
                    let bytes = part_bytes(raw, part);
                    let h = mime::parse_headers(&bytes);
                    c.original_subject = mime::header(&h, "Subject").map(str::to_string).filter(|s| !s.is_empty());
                    c.original_message_id = mime::header(&h, "Message-ID").and_then(strip_message_id);
                }
            }
        }
    }
}

/// mail-parser's decoded header text, unless it replaced raw 8-bit bytes with
/// U+FFFD where ours (read as ISO-8859-1, no encoded words to decode) did not.
pub(super) fn better_text(ours: Option<String>, parsed: Option<String>) -> Option<String> {
    match parsed {
        Some(p) if p.contains('\u{fffd}') && ours.as_deref().is_some_and(|o| !o.contains('\u{fffd}') && !o.contains("=?")) => ours,
        Some(p) => Some(p),
        None => ours,
    }
}

/// Parse a daticert found in a message; without a PEC header its `tipo`
/// gives the kind. `named`: the part is called daticert.xml (an unnamed XML
/// part that is not a daticert is not an error).
pub(super) fn apply_daticert(c: &mut Classification, xml: &[u8], named: bool, header_kind: bool) {
    match parse_daticert(xml) {
        Ok(d) => c.daticert = Some(d),
        Err(e) => {
            if named {
                c.daticert_error = Some(e.to_string());
            }
        }
    }
    if !header_kind && let Some(k) = c.daticert.as_ref().and_then(|d| Kind::parse(&d.tipo)).filter(|k| *k != Kind::NotPec) {
        c.kind = k;
    }
}

/// The kind named by `X-Ricevuta`, else by `X-Trasporto`.
fn kind_from_headers(headers: &[(String, String)]) -> Option<Kind> {
    let by = |name: &str| headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).find_map(|(n, v)| Kind::from_header(n, v));
    by("X-Ricevuta").or_else(|| by("X-Trasporto"))
}

fn part_mime(part: &MessagePart) -> String {
    part.content_type()
        .map(|ct| format!("{}/{}", ct.ctype().trim(), ct.subtype().unwrap_or("").trim()).to_ascii_lowercase())
        .unwrap_or_default()
}

/// The transfer-decoded body of a part, without charset conversion (the XML
/// declaration decides the charset of a daticert).
fn part_bytes(raw: &[u8], part: &MessagePart) -> Vec<u8> {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        PartType::Message(m) => m.raw_message.to_vec(),
        PartType::Text(_) | PartType::Html(_) | PartType::Multipart(_) => {
            let start = part.offset_body as usize;
            let end = part.offset_end as usize;
            let body = raw.get(start..end.max(start)).unwrap_or_default();
            mime::transfer_decode(body, part.content_transfer_encoding())
        }
    }
}
