//! Messages pecgate writes itself: failure notices to senders (more kinds
//! come with receipts and the watchdog). Text in Italian by default,
//! English when `[corporate] language = "en"`.

use crate::queue::spool::Piece;
use mail_builder::MessageBuilder;

use crate::config::Language;

/// One recipient the provider refused, with its full reply.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    pub address: String,
    pub reply: String,
}

/// Facts for a "your PEC was not sent" notice.
#[derive(Debug, Clone)]
pub struct FailureNotice<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub mailbox_address: &'a str,
    pub subject: &'a str,
    pub queue_id: &'a str,
    pub message_id: &'a str,
    pub failed: &'a [FailedRecipient],
    pub hostname: &'a str,
    pub language: Language,
    pub date_unix: i64,
}

/// Builds the notice; returns the message bytes (CRLF) and its Message-ID.
pub fn failure_notice(n: &FailureNotice) -> (Vec<u8>, String) {
    let (subject, intro, rcpt_label, footer) = match n.language {
        Language::It => (
            format!("PEC non inviata: {}", n.subject),
            format!(
                "Il messaggio PEC \"{}\" dalla casella {} non e' stato accettato dal gestore per i destinatari seguenti.",
                n.subject, n.mailbox_address
            ),
            "Destinatario",
            "Il messaggio NON ha valore legale per questi destinatari. Correggere e inviare di nuovo.",
        ),
        Language::En => (
            format!("PEC not sent: {}", n.subject),
            format!(
                "The PEC message \"{}\" from mailbox {} was refused by the provider for these recipients.",
                n.subject, n.mailbox_address
            ),
            "Recipient",
            "The message has NO legal value for these recipients. Fix the problem and send it again.",
        ),
    };
    let mut body = format!("{intro}\r\n\r\n");
    for f in n.failed {
        body.push_str(&format!("{rcpt_label}: {}\r\n  {}\r\n", f.address, f.reply));
    }
    body.push_str(&format!("\r\n{footer}\r\n\r\nqueue id: {}\r\nMessage-ID: <{}>\r\n", n.queue_id, n.message_id));
    simple_notice(&SimpleNotice {
        from: n.from,
        to: n.to,
        subject: &subject,
        body: &body,
        kind: "failure-notice",
        message_id: &format!("{}.notice@{}", n.queue_id, n.hostname),
        date_unix: n.date_unix,
    })
}

/// mail-builder writes CRLF already; make sure of it for the spool contract.
fn normalize_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_names_recipient_and_reply() {
        let failed = [FailedRecipient { address: "bob@x.it".into(), reply: "550 5.1.1 no such user".into() }];
        let n = FailureNotice {
            from: "pecgate@corp.it",
            to: "mario@corp.it",
            mailbox_address: "legal@pec.corp.it",
            subject: "Contratto",
            queue_id: "Q1",
            message_id: "abc@corp.it",
            failed: &failed,
            hostname: "gw.corp.it",
            language: Language::It,
            date_unix: 0,
        };
        let (bytes, id) = failure_notice(&n);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(id, "Q1.notice@gw.corp.it");
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(parsed.subject(), Some("PEC non inviata: Contratto"));
        let body = parsed.body_text(0).unwrap();
        assert!(body.contains("bob@x.it") && body.contains("550 5.1.1 no such user"), "{body}");
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(!text.replace("\r\n", "").contains('\n'));
    }
}

/// Facts for the wrappers around a fetched PEC message or receipt.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub mailbox_id: &'a str,
    pub mailbox_address: &'a str,
    pub fetched_id: &'a str,
    pub classification: &'a crate::pec::Classification,
    /// Per-recipient status of the sent message, for receipts ("addr: state").
    pub status: &'a [String],
    pub hostname: &'a str,
    pub language: Language,
    pub date_unix: i64,
    /// The provider's signature check, if done.
    pub signature: Option<&'a crate::pec::signature::SignatureReport>,
}

/// Inline mode: the original bytes with a few `X-Pecgate-*` headers prepended
/// above them (outside the signed structure, so the provider's signature still
/// verifies). The only change to the original: an `X-Pecgate-*` field in its own
/// header section, which a sender could forge to pass a corporate filter that
/// trusts our marks, is renamed `X-Original-Pecgate-*` (see [`own_marks`]); the
/// stored original keeps the bytes as they came.
pub fn inline_wrap<'a>(d: &Delivery<'_>, original: Original<'a>) -> Wrapped<'a> {
    let raw = original.view;
    let mut out = format!("X-Pecgate-Mailbox: {}\r\nX-Pecgate-Kind: {}\r\n", d.mailbox_id, d.classification.kind.as_str()).into_bytes();
    // A failed signature check is flagged to the reader, above the untouched original.
    if let Some(s) =
        d.signature.filter(|s| matches!(s.verdict, crate::pec::signature::Verdict::Invalid | crate::pec::signature::Verdict::Malformed))
    {
        out.extend_from_slice(format!("X-Pecgate-Signature: {}\r\n", s.verdict.as_str()).as_bytes());
    }
    out.extend_from_slice(format!("X-Pecgate-Id: {}\r\n", d.fetched_id).as_bytes());
    let mut copied = 0;
    for start in own_marks(raw) {
        out.extend_from_slice(&raw[copied..start]);
        out.extend_from_slice(b"X-Original-Pecgate-");
        copied = start + OWN_PREFIX.len();
    }
    // The header section is copied (it may have been rewritten); the body is the original's own bytes.
    let body = crate::queue::spool::split_header_section(raw).0.len().max(copied);
    out.extend_from_slice(&raw[copied..body]);
    Wrapped { prefix: out, original: original.from(body), suffix: Vec::new() }
}

/// A fetched original to wrap: its bytes, or, for a big one, its skeleton
/// (whose header section and last line are whole) and its stored file.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// The message, or its skeleton: what the wrappers read.
    pub view: &'a [u8],
    /// The stored file and its size, when `view` is a skeleton.
    pub stored: Option<(&'a std::path::Path, u64)>,
}

impl<'a> Original<'a> {
    pub fn bytes(raw: &'a [u8]) -> Self {
        Self { view: raw, stored: None }
    }

    /// The original's bytes from `at` to its end (`at` within the header section).
    fn from(&self, at: usize) -> Piece<'a> {
        match self.stored {
            None => Piece::Bytes(&self.view[at.min(self.view.len())..]),
            Some((path, size)) => Piece::File { path, offset: at as u64, len: size.saturating_sub(at as u64) },
        }
    }
}

/// A message pecgate writes around a fetched one: `prefix`, then bytes of
/// the original as they are, then `suffix`. It goes to the spool piece by
/// piece ([`pieces`](Self::pieces)), so a 100 MB original is never copied
/// in memory.
#[derive(Debug)]
pub struct Wrapped<'a> {
    pub prefix: Vec<u8>,
    pub original: Piece<'a>,
    pub suffix: Vec<u8>,
}

impl Wrapped<'_> {
    pub fn pieces(&self) -> [Piece<'_>; 3] {
        [Piece::Bytes(&self.prefix), self.original, Piece::Bytes(&self.suffix)]
    }

    /// The whole message in one buffer, when the original is in memory (tests).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let Piece::Bytes(original) = self.original else { panic!("the original is in a file") };
        [&self.prefix[..], original, &self.suffix].concat()
    }
}

/// The prefix of the fields pecgate writes on what it injects.
const OWN_PREFIX: &[u8] = b"X-Pecgate-";

/// Where the fields named `X-Pecgate-*` (any case) start in a message's top-level
/// header section: a fetched message carrying one claims to be marked by us.
pub fn own_marks(raw: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let end = raw[at..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| at + i + 1);
        let line = &raw[at..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if line.len() > OWN_PREFIX.len() && line[..OWN_PREFIX.len()].eq_ignore_ascii_case(OWN_PREFIX) {
            starts.push(at);
        }
        at = end;
    }
    starts
}

/// Attach mode (Microsoft 365 and clients that mangle PEC envelopes): a new
/// message with a readable summary and the original attached as
/// `message/rfc822`, byte-for-byte (8bit, never re-encoded).
pub fn attach_wrap<'a>(d: &Delivery<'_>, original: Original<'a>) -> Wrapped<'a> {
    // A skeleton keeps every line starting with `-` and the last line: enough for the boundary and the end.
    let raw = original.view;
    let c = d.classification;
    let it = d.language == Language::It;
    let kind_label = kind_label(c.kind, d.language);
    let subject_text = c
        .daticert
        .as_ref()
        .map(|x| x.oggetto.clone())
        .or_else(|| c.original_subject.clone())
        .or_else(|| c.subject.clone())
        .unwrap_or_default();
    let mut summary = String::new();
    let line = |s: &mut String, label_it: &str, label_en: &str, value: &str| {
        if !value.is_empty() {
            s.push_str(&format!("{}: {}\r\n", if it { label_it } else { label_en }, value));
        }
    };
    line(&mut summary, "Tipo", "Kind", kind_label);
    line(&mut summary, "Casella PEC", "PEC mailbox", d.mailbox_address);
    if let Some(dc) = &c.daticert {
        line(&mut summary, "Mittente", "From", &dc.mittente);
        let to: Vec<String> = dc.destinatari.iter().map(|r| format!("{} ({})", r.addr, r.tipo)).collect();
        line(&mut summary, "Destinatari", "To", &to.join(", "));
        line(&mut summary, "Oggetto", "Subject", &dc.oggetto);
        line(&mut summary, "Data", "Date", &dc.data.map(|t| t.to_rfc3339()).unwrap_or_default());
        line(&mut summary, "Gestore", "Provider", &dc.gestore);
        line(&mut summary, "Consegna a", "Delivered to", dc.consegna.as_deref().unwrap_or(""));
        if dc.errore != "nessuno" {
            line(&mut summary, "Errore", "Error", &format!("{} {}", dc.errore, dc.errore_esteso.as_deref().unwrap_or("")));
        }
        line(&mut summary, "Identificativo", "Provider id", &dc.identificativo);
    } else {
        line(&mut summary, "Oggetto", "Subject", c.subject.as_deref().unwrap_or(""));
    }
    if let Some(sig) = d.signature {
        let verdict = match (sig.verdict, it) {
            (crate::pec::signature::Verdict::Valid, true) => "valida, firmata da un gestore accreditato",
            (crate::pec::signature::Verdict::Valid, false) => "valid, signed by an accredited provider",
            (crate::pec::signature::Verdict::ValidUntrustedSigner, true) => {
                "integra, ma il firmatario non e' nell'elenco dei gestori fidati"
            }
            (crate::pec::signature::Verdict::ValidUntrustedSigner, false) => "intact, but the signer is not in the trusted providers list",
            (crate::pec::signature::Verdict::Invalid, true) => "NON VALIDA: il messaggio e' stato alterato o il certificato non era valido",
            (crate::pec::signature::Verdict::Invalid, false) => "INVALID: the message was altered or the certificate was not valid",
            (crate::pec::signature::Verdict::Unsigned, true) => "assente",
            (crate::pec::signature::Verdict::Unsigned, false) => "none",
            (crate::pec::signature::Verdict::Malformed, true) => "NON LEGGIBILE",
            (crate::pec::signature::Verdict::Malformed, false) => "UNREADABLE",
        };
        line(&mut summary, "Firma del gestore", "Provider signature", verdict);
        line(&mut summary, "Firmatario", "Signer", sig.signer.as_deref().unwrap_or(""));
    }
    if !d.status.is_empty() {
        summary.push_str(if it { "\r\nStato per destinatario:\r\n" } else { "\r\nStatus per recipient:\r\n" });
        for s in d.status {
            summary.push_str(&format!("  {s}\r\n"));
        }
    }
    summary.push_str(if it {
        "\r\nIl messaggio originale, con la firma del gestore, e' allegato senza modifiche.\r\n"
    } else {
        "\r\nThe original message, with the provider's signature, is attached unchanged.\r\n"
    });
    let boundary = unique_boundary(raw, d.fetched_id);
    let subject = encode_header_text(&format!("[PEC {kind_label}] {subject_text}"));
    let prefix = format!(
        "From: pecgate <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}.attach@{host}>\r\nAuto-Submitted: auto-generated\r\nX-Pecgate-Mailbox: {mb}\r\nX-Pecgate-Kind: {kind}\r\nX-Pecgate-Id: {id}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{summary}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"postacert-{id}.eml\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        from = d.from,
        to = d.to.join(", "),
        date = chrono::DateTime::from_timestamp(d.date_unix, 0).unwrap_or_default().to_rfc2822(),
        id = d.fetched_id,
        host = d.hostname,
        mb = d.mailbox_id,
        kind = c.kind.as_str(),
    )
    .into_bytes();
    let mut suffix = Vec::new();
    if !raw.ends_with(b"\r\n") {
        suffix.extend_from_slice(b"\r\n");
    }
    suffix.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Wrapped { prefix, original: original.from(0), suffix }
}

fn kind_label(kind: crate::pec::Kind, lang: Language) -> &'static str {
    use crate::pec::Kind::*;
    match (kind, lang) {
        (PostaCertificata, Language::It) => "posta certificata",
        (PostaCertificata, Language::En) => "certified mail",
        (Anomalia, Language::It) => "anomalia",
        (Anomalia, Language::En) => "anomaly",
        (Accettazione, Language::It) => "accettazione",
        (Accettazione, Language::En) => "acceptance",
        (NonAccettazione, Language::It) => "non accettazione",
        (NonAccettazione, Language::En) => "not accepted",
        (PresaInCarico, Language::It) => "presa in carico",
        (PresaInCarico, Language::En) => "taken in charge",
        (AvvenutaConsegna, Language::It) => "consegna",
        (AvvenutaConsegna, Language::En) => "delivered",
        (ErroreConsegna, Language::It) => "mancata consegna",
        (ErroreConsegna, Language::En) => "not delivered",
        (PreavvisoErroreConsegna, Language::It) => "preavviso di mancata consegna",
        (PreavvisoErroreConsegna, Language::En) => "delivery warning",
        (RilevazioneVirus, Language::It) => "virus",
        (RilevazioneVirus, Language::En) => "virus found",
        (NotPec, Language::It) => "posta ordinaria",
        (NotPec, Language::En) => "ordinary mail",
    }
}

/// A boundary that does not occur in the attached bytes.
fn unique_boundary(raw: &[u8], seed: &str) -> String {
    let mut n = 0u32;
    loop {
        let b = format!("pecgate-{seed}-{n}");
        if !raw.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
        n += 1;
    }
}

/// RFC 2047 B-encoding when the text is not plain ASCII.
fn encode_header_text(s: &str) -> String {
    if s.is_ascii() && !s.contains("=?") && !s.contains(['\r', '\n']) {
        return s.to_owned();
    }
    use base64::Engine as _;
    let clean: String = s.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
    // 45 bytes of UTF-8 per word keeps each encoded word under 75 characters.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for ch in clean.chars() {
        if chunk.len() + ch.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(ch);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words.iter().map(|w| format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(w))).collect::<Vec<_>>().join("\r\n ")
}

/// Facts for a notice to the mailbox admin about a problem with the mailbox
/// itself (login refused, server unreachable, a message that cannot be fetched).
#[derive(Debug, Clone)]
pub struct MailboxNotice<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub mailbox_address: &'a str,
    pub problem: &'a str,
    pub hostname: &'a str,
    pub language: Language,
    pub date_unix: i64,
    pub id: &'a str,
}

pub fn mailbox_notice(n: &MailboxNotice<'_>) -> (Vec<u8>, String) {
    let MailboxNotice { mailbox_address, problem, language, .. } = *n;
    let (subject, body) = match language {
        Language::It => (
            format!("Problema con la casella PEC {mailbox_address}"),
            format!(
                "pecgate non riesce a scaricare la posta della casella PEC {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nRiprovera' automaticamente; questo avviso non viene ripetuto finche' il problema persiste.\r\n"
            ),
        ),
        Language::En => (
            format!("Problem with PEC mailbox {mailbox_address}"),
            format!(
                "pecgate cannot fetch mail for PEC mailbox {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nIt keeps retrying; this notice is not repeated while the problem lasts.\r\n"
            ),
        ),
    };
    mailbox_message(n, &subject, &body)
}

/// The message of a mailbox notice (either kind), from its texts.
fn mailbox_message(n: &MailboxNotice<'_>, subject: &str, body: &str) -> (Vec<u8>, String) {
    simple_notice(&SimpleNotice {
        from: n.from,
        to: n.to,
        subject,
        body,
        kind: "mailbox-notice",
        message_id: &format!("{}.mailbox@{}", n.id, n.hostname),
        date_unix: n.date_unix,
    })
}

/// To the mailbox admin, once per lockout: `user` typed too many wrong PINs
/// (`problem` says how many and until when). Never contains a PIN.
pub fn pin_lockout_notice(n: &MailboxNotice<'_>, user: &str) -> (Vec<u8>, String) {
    let MailboxNotice { mailbox_address, problem, language, .. } = *n;
    let (subject, body) = match language {
        Language::It => (
            format!("PIN errati per la casella PEC {mailbox_address}"),
            format!(
                "{user} ha scritto troppi PIN errati per inviare dalla casella PEC {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nSe non e' stato {user}, qualcuno prova a indovinare il PIN. Per un nuovo PIN: pecgate pin set.\r\n"
            ),
        ),
        Language::En => (
            format!("Wrong PINs for PEC mailbox {mailbox_address}"),
            format!(
                "{user} typed too many wrong PINs to send from PEC mailbox {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nIf it was not {user}, someone is guessing the PIN. For a new PIN: pecgate pin set.\r\n"
            ),
        ),
    };
    mailbox_message(n, &subject, &body)
}

/// To the mailbox admin, once until it changes: nobody may send from the
/// mailbox (GPec's non-blocking alarm; `problem` says why).
pub fn no_sender_notice(n: &MailboxNotice<'_>) -> (Vec<u8>, String) {
    let MailboxNotice { mailbox_address, problem, language, .. } = *n;
    let (subject, body) = match language {
        Language::It => (
            format!("Nessun utente puo' inviare dalla casella PEC {mailbox_address}"),
            format!(
                "Nessun utente ha il permesso di invio sulla casella PEC {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nLa casella riceve normalmente; questo avviso non viene ripetuto finche' la situazione non cambia.\r\n"
            ),
        ),
        Language::En => (
            format!("Nobody may send from PEC mailbox {mailbox_address}"),
            format!(
                "No user has the send permission on PEC mailbox {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nThe mailbox still receives; this notice is not repeated until that changes.\r\n"
            ),
        ),
    };
    mailbox_message(n, &subject, &body)
}

/// Like [`mailbox_notice`], for a mailbox that cannot send: the messages wait in the queue.
pub fn mailbox_send_notice(n: &MailboxNotice<'_>) -> (Vec<u8>, String) {
    let MailboxNotice { mailbox_address, problem, language, .. } = *n;
    let (subject, body) = match language {
        Language::It => (
            format!("Problema di invio dalla casella PEC {mailbox_address}"),
            format!(
                "Il gestore rifiuta gli invii dalla casella PEC {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nI messaggi restano in coda e partono quando il problema e' risolto; questo avviso non viene ripetuto finche' il problema persiste.\r\n"
            ),
        ),
        Language::En => (
            format!("Cannot send from PEC mailbox {mailbox_address}"),
            format!(
                "The provider refuses to send from PEC mailbox {mailbox_address}:\r\n\r\n  {problem}\r\n\r\nThe messages stay in the queue and go out once it is fixed; this notice is not repeated while the problem lasts.\r\n"
            ),
        ),
    };
    mailbox_message(n, &subject, &body)
}

#[cfg(test)]
mod wrap_tests {
    use super::*;
    use crate::pec::{BuildParams, Kind, build_message, classify};

    #[test]
    fn inline_keeps_bytes_and_attach_embeds_them_unchanged() {
        let raw = build_message(&BuildParams::sample(Kind::AvvenutaConsegna));
        let c = classify(&raw);
        let to = vec!["mario@x.it".to_string()];
        let status = vec!["ufficio@pec.comune.example.it: delivered".to_string()];
        let d = Delivery {
            from: "pecgate@x.it",
            to: &to,
            mailbox_id: "legal",
            mailbox_address: "legal@pec.x.it",
            fetched_id: "I1",
            classification: &c,
            status: &status,
            hostname: "gw",
            language: Language::It,
            date_unix: 0,
            signature: None,
        };
        let inline = inline_wrap(&d, Original::bytes(&raw)).to_vec();
        assert!(inline.ends_with(&raw));
        assert!(inline.starts_with(b"X-Pecgate-Mailbox: legal\r\nX-Pecgate-Kind: avvenuta-consegna\r\n"));

        let attached = attach_wrap(&d, Original::bytes(&raw)).to_vec();
        let start = attached.windows(raw.len()).position(|w| w == raw.as_slice()).expect("original embedded byte-for-byte");
        assert!(start > 0);
        let parsed = mail_parser::MessageParser::default().parse(&attached).unwrap();
        assert!(parsed.subject().unwrap().starts_with("[PEC consegna] Richiesta documenti"), "{:?}", parsed.subject());
        let summary = parsed.body_text(0).unwrap();
        assert!(summary.contains("Consegna a: ufficio@pec.comune.example.it"), "{summary}");
        assert!(summary.contains("ufficio@pec.comune.example.it: delivered"));
        let part = parsed.attachment(0).expect("message/rfc822 part");
        assert!(part.message().is_some());
    }

    /// A sender's own `X-Pecgate-Kind` must not reach the corporate side as ours:
    /// renamed in the header section only, every other byte kept.
    #[test]
    fn forged_marks_are_renamed_in_the_header_only() {
        let raw = b"From: x@y.it\r\nx-pecgate-kind: avvenuta-consegna\r\nX-PECGATE-Id:\r\n I9\r\nX-Pecgate: no dash-suffix\r\n\
                    Subject: s\r\n\r\nX-Pecgate-Kind: in the body stays\r\n";
        assert_eq!(own_marks(raw).len(), 2);
        let c = classify(raw);
        let d = Delivery {
            from: "pecgate@x.it",
            to: &[],
            mailbox_id: "legal",
            mailbox_address: "legal@pec.x.it",
            fetched_id: "I1",
            classification: &c,
            status: &[],
            hostname: "gw",
            language: Language::It,
            date_unix: 0,
            signature: None,
        };
        let wrapped = inline_wrap(&d, Original::bytes(raw)).to_vec();
        let want: &[u8] = b"From: x@y.it\r\nX-Original-Pecgate-kind: avvenuta-consegna\r\nX-Original-Pecgate-Id:\r\n I9\r\n\
                            X-Pecgate: no dash-suffix\r\nSubject: s\r\n\r\nX-Pecgate-Kind: in the body stays\r\n";
        let head = b"X-Pecgate-Mailbox: legal\r\nX-Pecgate-Kind: ";
        assert!(wrapped.starts_with(head) && wrapped.ends_with(want), "{}", String::from_utf8_lossy(&wrapped));
        let parsed = mail_parser::MessageParser::default().parse(&wrapped).unwrap();
        let kinds: Vec<_> = parsed.headers().iter().filter(|h| h.name().eq_ignore_ascii_case("X-Pecgate-Kind")).collect();
        assert_eq!(kinds.len(), 1, "only our own mark is left");
        assert_eq!(own_marks(b"X-Pecgate-Kind: x\r\n").len(), 1, "a section without a body");
    }

    #[test]
    fn boundary_avoids_content() {
        assert_eq!(unique_boundary(b"x pecgate-A-0 y", "A"), "pecgate-A-1");
        assert_eq!(encode_header_text("plain"), "plain");
        assert!(encode_header_text("Città").starts_with("=?UTF-8?B?"));
    }
}

/// A plain-text notice pecgate writes to one person.
#[derive(Debug, Clone)]
pub struct SimpleNotice<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// `X-Pecgate-Kind` value, e.g. `acceptance-overdue`.
    pub kind: &'a str,
    /// Without angle brackets.
    pub message_id: &'a str,
    pub date_unix: i64,
}

/// Every notice pecgate writes goes through here: same headers, CRLF text.
pub fn simple_notice(n: &SimpleNotice<'_>) -> (Vec<u8>, String) {
    let message_id = n.message_id.to_owned();
    let bytes = MessageBuilder::new()
        .from(("pecgate", n.from))
        .to(n.to)
        .subject(n.subject)
        .message_id(message_id.as_str())
        .date(n.date_unix)
        .header("Auto-Submitted", mail_builder::headers::raw::Raw::new("auto-generated"))
        .header("X-Pecgate-Kind", mail_builder::headers::raw::Raw::new(n.kind))
        .text_body(n.body)
        .write_to_vec()
        .unwrap_or_default();
    (normalize_crlf(&bytes), message_id)
}

/// What the watchdog tells a sender about a message it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// No acceptance receipt (ricevuta di accettazione) after the configured time.
    Acceptance,
    /// No delivery receipt for a recipient after 12 h (the provider's own warning time).
    DeliveryWarning,
    /// No delivery receipt after 24 h: the provider considers it not delivered.
    DeliveryFinal,
}

impl Overdue {
    pub fn kind(&self) -> &'static str {
        match self {
            Overdue::Acceptance => "acceptance-overdue",
            Overdue::DeliveryWarning => "delivery-warning",
            Overdue::DeliveryFinal => "delivery-overdue",
        }
    }

    /// Subject and body for the sender.
    pub fn text(&self, language: Language, subject: &str, mailbox: &str, rcpt: Option<&str>, hours: u64) -> (String, String) {
        let rcpt = rcpt.unwrap_or("");
        match (self, language) {
            (Overdue::Acceptance, Language::It) => (
                format!("PEC senza accettazione: {subject}"),
                format!(
                    "Il gestore non ha ancora inviato la ricevuta di accettazione per la PEC \"{subject}\" inviata dalla casella {mailbox}.\r\nFinche' non arriva, l'invio non e' certificato. Se entro breve non arriva, contattare l'amministratore della posta.\r\n"
                ),
            ),
            (Overdue::Acceptance, Language::En) => (
                format!("PEC not accepted yet: {subject}"),
                format!(
                    "The provider has not sent the acceptance receipt for the PEC \"{subject}\" sent from mailbox {mailbox}.\r\nUntil it arrives the sending is not certified. If it does not arrive soon, contact your mail administrator.\r\n"
                ),
            ),
            (Overdue::DeliveryWarning, Language::It) => (
                format!("PEC non ancora consegnata a {rcpt}: {subject}"),
                format!(
                    "Da {hours} ore non arriva la ricevuta di consegna per {rcpt} della PEC \"{subject}\" (casella {mailbox}).\r\nLa ricevuta puo' ancora arrivare; dopo 24 ore il messaggio si considera non consegnato.\r\n"
                ),
            ),
            (Overdue::DeliveryWarning, Language::En) => (
                format!("PEC not yet delivered to {rcpt}: {subject}"),
                format!(
                    "For {hours} hours no delivery receipt has come for {rcpt} of the PEC \"{subject}\" (mailbox {mailbox}).\r\nIt may still arrive; after 24 hours the message counts as not delivered.\r\n"
                ),
            ),
            (Overdue::DeliveryFinal, Language::It) => (
                format!("PEC non consegnata a {rcpt}: {subject}"),
                format!(
                    "Dopo {hours} ore non e' arrivata la ricevuta di consegna per {rcpt} della PEC \"{subject}\" (casella {mailbox}).\r\nIl messaggio si considera NON consegnato a questo destinatario.\r\n"
                ),
            ),
            (Overdue::DeliveryFinal, Language::En) => (
                format!("PEC not delivered to {rcpt}: {subject}"),
                format!(
                    "After {hours} hours no delivery receipt has come for {rcpt} of the PEC \"{subject}\" (mailbox {mailbox}).\r\nThe message counts as NOT delivered to this recipient.\r\n"
                ),
            ),
        }
    }
}
