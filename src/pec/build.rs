//! Builder of PEC messages (envelopes and receipts) with the structure real
//! providers use, for the simulated provider and for tests.
//!
//! ```text
//! multipart/signed
//!  +- multipart/mixed                     (bytes reproducible: build_signed_content)
//!  |   +- multipart/alternative (text/plain + text/html)
//!  |   +- application/xml  daticert.xml
//!  |   +- message/rfc822   postacert.eml  (when an original is given)
//!  +- application/pkcs7-signature smime.p7s
//! ```

use chrono::{DateTime, FixedOffset};

use super::daticert::{Recipient, format_zona};
use super::mime::{base64_lines, encode_header_text, find, qp_encode, to_crlf};
use super::{Kind, ReceiptType};

/// Everything needed to generate one PEC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildParams {
    /// The kind to generate (`NotPec` yields an ordinary text/plain message).
    pub kind: Kind,
    /// *gestore emittente*: the provider's name.
    pub gestore: String,
    /// *identificativo*: the provider's message id (also the Message-ID).
    pub identificativo: String,
    /// The original Message-ID, without angle brackets.
    pub msgid: String,
    /// *mittente*: the original sender.
    pub mittente: String,
    /// *destinatari*: the original recipients.
    pub destinatari: Vec<Recipient>,
    /// *oggetto*: the original subject.
    pub oggetto: String,
    /// *consegna*: the recipient a delivery receipt is about.
    pub consegna: Option<String>,
    /// daticert `errore` (`nessuno`, `no-dest`, ...); empty means `nessuno`.
    pub errore: String,
    /// *errore esteso*: extended error text.
    pub errore_esteso: Option<String>,
    /// *tipo ricevuta* of delivery receipts.
    pub receipt_type: ReceiptType,
    /// The event time (Date header and daticert `data`).
    pub date: DateTime<FixedOffset>,
    /// The To header of the generated message.
    pub to: String,
    /// The From header, e.g. `posta-certificata@pec.provider.it`.
    pub from: String,
    /// `postacert.eml` bytes (attached to envelopes and complete receipts;
    /// never to `breve`/`sintetica` delivery receipts).
    pub original: Option<Vec<u8>>,
    /// `application/pkcs7-signature` or `application/x-pkcs7-signature`.
    pub signature_content_type: &'static str,
    /// Placeholder signature bytes, base64-encoded into `smime.p7s`.
    pub signature: Vec<u8>,
}

impl BuildParams {
    /// Plausible parameters for `kind`, for tests and the simulator.
    pub fn sample(kind: Kind) -> BuildParams {
        let date = DateTime::parse_from_rfc3339("2026-11-23T10:15:00+01:00").unwrap_or_else(|_| DateTime::<FixedOffset>::default());
        let consegna = matches!(kind, Kind::AvvenutaConsegna | Kind::ErroreConsegna | Kind::PreavvisoErroreConsegna)
            .then(|| "ufficio@pec.comune.example.it".to_string());
        let (errore, errore_esteso) = match kind {
            Kind::ErroreConsegna => ("no-dest", Some("5.1.1 - utente sconosciuto")),
            Kind::NonAccettazione => ("altro", Some("messaggio non conforme")),
            Kind::RilevazioneVirus => ("virus", Some("virus rilevato nel messaggio")),
            Kind::PreavvisoErroreConsegna => ("altro", Some("superamento tempi massimi")),
            _ => ("nessuno", None),
        };
        let original = matches!(kind, Kind::PostaCertificata | Kind::Anomalia | Kind::AvvenutaConsegna)
            .then(|| {
                b"From: mario.rossi@pec.example.it\r\nTo: ufficio@pec.comune.example.it\r\nSubject: Richiesta documenti\r\nMessage-ID: <abc.123@mail.example.it>\r\nDate: Mon, 23 Nov 2026 10:14:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nBuongiorno,\r\nsi richiedono i documenti.\r\n"
                    .to_vec()
            });
        BuildParams {
            kind,
            gestore: "Gestore Esempio S.p.A.".into(),
            identificativo: "opec210.20261123101500.1234.01.1.1@pec.example.it".into(),
            msgid: "abc.123@mail.example.it".into(),
            mittente: "mario.rossi@pec.example.it".into(),
            destinatari: vec![Recipient::new("ufficio@pec.comune.example.it", "certificato")],
            oggetto: "Richiesta documenti".into(),
            consegna,
            errore: errore.into(),
            errore_esteso: errore_esteso.map(str::to_string),
            receipt_type: ReceiptType::Completa,
            date,
            to: if kind.is_receipt() { "mario.rossi@pec.example.it".into() } else { "ufficio@pec.comune.example.it".into() },
            from: "posta-certificata@pec.example.it".into(),
            original,
            signature_content_type: "application/pkcs7-signature",
            signature: b"placeholder signature".to_vec(),
        }
    }

    fn includes_original(&self) -> bool {
        self.original.is_some() && !(self.kind == Kind::AvvenutaConsegna && self.receipt_type != ReceiptType::Completa)
    }

    fn message_id(&self) -> String {
        let id = self.identificativo.trim().trim_matches(['<', '>']);
        if id.contains('@') {
            format!("<{id}>")
        } else {
            let domain = self.from.rsplit('@').next().unwrap_or("pec.invalid");
            let domain = domain.trim_matches(|c: char| c == '>' || c.is_whitespace());
            format!("<{id}@{domain}>")
        }
    }
}

/// Escape text for XML content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The `daticert.xml` document for `p` (UTF-8, CRLF line endings).
pub fn build_daticert(p: &BuildParams) -> String {
    let errore = if p.errore.trim().is_empty() { "nessuno" } else { p.errore.trim() };
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n");
    x.push_str("<!DOCTYPE postacert SYSTEM \"Certificazione.dtd\">\r\n");
    x.push_str(&format!("<postacert tipo=\"{}\" errore=\"{}\">\r\n", xml_escape(p.kind.as_str()), xml_escape(errore)));
    x.push_str("  <intestazione>\r\n");
    x.push_str(&format!("    <mittente>{}</mittente>\r\n", xml_escape(&p.mittente)));
    for r in &p.destinatari {
        x.push_str(&format!("    <destinatari tipo=\"{}\">{}</destinatari>\r\n", xml_escape(&r.tipo), xml_escape(&r.addr)));
    }
    x.push_str(&format!("    <risposte>{}</risposte>\r\n", xml_escape(&p.mittente)));
    x.push_str(&format!("    <oggetto>{}</oggetto>\r\n", xml_escape(&p.oggetto)));
    x.push_str("  </intestazione>\r\n");
    x.push_str("  <dati>\r\n");
    x.push_str(&format!("    <gestore-emittente>{}</gestore-emittente>\r\n", xml_escape(&p.gestore)));
    x.push_str(&format!(
        "    <data zona=\"{}\">\r\n      <giorno>{}</giorno>\r\n      <ora>{}</ora>\r\n    </data>\r\n",
        format_zona(p.date.offset()),
        p.date.format("%d/%m/%Y"),
        p.date.format("%H:%M:%S")
    ));
    x.push_str(&format!("    <identificativo>{}</identificativo>\r\n", xml_escape(&p.identificativo)));
    let msgid = p.msgid.trim().trim_matches(['<', '>']);
    if !msgid.is_empty() {
        x.push_str(&format!("    <msgid>{}</msgid>\r\n", xml_escape(&format!("<{msgid}>"))));
    }
    if p.kind == Kind::AvvenutaConsegna {
        x.push_str(&format!("    <ricevuta tipo=\"{}\"/>\r\n", p.receipt_type.as_str()));
    }
    if let Some(c) = &p.consegna {
        x.push_str(&format!("    <consegna>{}</consegna>\r\n", xml_escape(c)));
    }
    if let Some(e) = &p.errore_esteso {
        x.push_str(&format!("    <errore-esteso>{}</errore-esteso>\r\n", xml_escape(e)));
    }
    x.push_str("  </dati>\r\n");
    x.push_str("</postacert>\r\n");
    x
}

/// The short Italian text of the human-readable part.
fn body_text(p: &BuildParams) -> String {
    let when = format!("Il giorno {} alle ore {} ({})", p.date.format("%d/%m/%Y"), p.date.format("%H:%M:%S"), format_zona(p.date.offset()));
    let dest = p.destinatari.iter().map(|r| format!("\"{}\" (\"posta {}\")", r.addr, r.tipo)).collect::<Vec<_>>().join(", ");
    let consegna = p.consegna.as_deref().unwrap_or("");
    let errore = p.errore_esteso.as_deref().unwrap_or("");
    let (title, sentence) = match p.kind {
        Kind::PostaCertificata => (
            "Messaggio di posta certificata",
            format!(
                "{when} il messaggio \"{}\" è stato inviato da \"{}\" indirizzato a: {dest}. Il messaggio originale è incluso in allegato.",
                p.oggetto, p.mittente
            ),
        ),
        Kind::Anomalia => (
            "Anomalia nel messaggio",
            format!(
                "{when} è stato ricevuto il messaggio \"{}\" proveniente da \"{}\", che ha presentato anomalie. Il messaggio originale è incluso in allegato.",
                p.oggetto, p.mittente
            ),
        ),
        Kind::Accettazione => (
            "Ricevuta di accettazione",
            format!(
                "{when} il messaggio \"{}\" proveniente da \"{}\" ed indirizzato a: {dest} è stato accettato dal sistema ed inoltrato.",
                p.oggetto, p.mittente
            ),
        ),
        Kind::NonAccettazione => (
            "Avviso di non accettazione",
            format!("{when} il messaggio \"{}\" proveniente da \"{}\" non è stato accettato. Errore: {errore}", p.oggetto, p.mittente),
        ),
        Kind::PresaInCarico => (
            "Ricevuta di presa in carico",
            format!(
                "{when} il messaggio \"{}\" proveniente da \"{}\" è stato preso in carico dal gestore {}.",
                p.oggetto, p.mittente, p.gestore
            ),
        ),
        Kind::AvvenutaConsegna => (
            "Ricevuta di avvenuta consegna",
            format!(
                "{when} il messaggio \"{}\" proveniente da \"{}\" è stato consegnato nella casella di destinazione \"{consegna}\".",
                p.oggetto, p.mittente
            ),
        ),
        Kind::ErroreConsegna => (
            "Avviso di mancata consegna",
            format!(
                "{when} il messaggio \"{}\" proveniente da \"{}\" non è stato consegnato a \"{consegna}\". Errore: {errore}",
                p.oggetto, p.mittente
            ),
        ),
        Kind::PreavvisoErroreConsegna => (
            "Avviso di mancata consegna per superamento tempi massimi",
            format!(
                "{when} il messaggio \"{}\" proveniente da \"{}\" non risulta ancora consegnato a \"{consegna}\".",
                p.oggetto, p.mittente
            ),
        ),
        Kind::RilevazioneVirus => (
            "Problema di sicurezza",
            format!("{when} nel messaggio \"{}\" proveniente da \"{}\" è stato rilevato un virus. Errore: {errore}", p.oggetto, p.mittente),
        ),
        Kind::NotPec => ("", p.oggetto.clone()),
    };
    format!("{title}\r\n\r\n{sentence}\r\nIdentificativo messaggio: {}\r\n", p.identificativo)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// FNV-1a, for deterministic boundaries.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A boundary `----=_{tag}_{hash}` that does not occur in `content`.
fn boundary(tag: &str, p: &BuildParams, content: &[u8]) -> String {
    let seed = fnv(&[p.identificativo.as_bytes(), p.msgid.as_bytes(), p.kind.as_str().as_bytes()]);
    let mut n: u64 = 0;
    loop {
        let b = format!("----=_{tag}_{:016x}", seed.wrapping_add(n));
        if find(content, b.as_bytes()).is_none() {
            return b;
        }
        n += 1;
    }
}

/// The exact bytes of the signed first part (the multipart/mixed entity),
/// as [`signed_part`](super::signed_part) returns them from
/// [`build_message`]'s output. An S/MIME signature covers these bytes.
pub fn build_signed_content(p: &BuildParams) -> Vec<u8> {
    let original = if p.includes_original() { p.original.as_deref().map(to_crlf) } else { None };
    let daticert = build_daticert(p);
    let text = body_text(p);
    let html = format!("<html><body><p>{}</p></body></html>", html_escape(&text).replace("\r\n", "<br/>\r\n"));
    let orig_bytes: &[u8] = original.as_deref().unwrap_or_default();
    let mixed = boundary("mixed", p, orig_bytes);
    let alt = boundary("alt", p, orig_bytes);

    let mut out = Vec::new();
    let mut w = |s: &str| out.extend_from_slice(s.as_bytes());
    w(&format!("Content-Type: multipart/mixed;\r\n\tboundary=\"{mixed}\"\r\n\r\n"));
    w("This is a multi-part message in MIME format.\r\n");
    w(&format!("--{mixed}\r\n"));
    w(&format!("Content-Type: multipart/alternative;\r\n\tboundary=\"{alt}\"\r\n\r\n"));
    w(&format!("--{alt}\r\n"));
    w("Content-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    w(&qp_encode(&text));
    w(&format!("\r\n--{alt}\r\n"));
    w("Content-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    w(&qp_encode(&html));
    w(&format!("\r\n--{alt}--\r\n"));
    w(&format!("\r\n--{mixed}\r\n"));
    w(
        "Content-Type: application/xml; name=\"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n",
    );
    w(&base64_lines(daticert.as_bytes()));
    if let Some(orig) = &original {
        w(&format!("\r\n--{mixed}\r\n"));
        w("Content-Type: message/rfc822; name=\"postacert.eml\"\r\nContent-Disposition: inline; filename=\"postacert.eml\"\r\n");
        if !orig.is_ascii() {
            w("Content-Transfer-Encoding: 8bit\r\n");
        }
        w("\r\n");
        out.extend_from_slice(orig);
        if !orig.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("\r\n--{mixed}--").as_bytes());
    out
}

/// Generate a complete PEC message of kind `p.kind` (CRLF line endings).
/// `Kind::NotPec` yields an ordinary text/plain message.
pub fn build_message(p: &BuildParams) -> Vec<u8> {
    let mut h = String::new();
    h.push_str(&format!("Date: {}\r\n", p.date.to_rfc2822()));
    h.push_str(&format!("From: {}\r\n", one_line(&p.from)));
    h.push_str(&format!("To: {}\r\n", one_line(&p.to)));
    h.push_str(&format!("Subject: {}\r\n", encode_header_text(&format!("{}{}", p.kind.subject_prefix(), p.oggetto))));
    h.push_str(&format!("Message-ID: {}\r\n", one_line(&p.message_id())));
    let msgid = one_line(p.msgid.trim().trim_matches(['<', '>']));

    if p.kind == Kind::NotPec {
        h.push_str("MIME-Version: 1.0\r\n");
        h.push_str("Content-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
        let mut out = h.into_bytes();
        out.extend_from_slice(qp_encode(&body_text(p)).as_bytes());
        return out;
    }

    match p.kind {
        Kind::PostaCertificata => {
            h.push_str(&format!("Reply-To: {}\r\n", one_line(&p.mittente)));
            h.push_str("X-Trasporto: posta-certificata\r\n");
        }
        Kind::Anomalia => {
            h.push_str(&format!("Reply-To: {}\r\n", one_line(&p.mittente)));
            h.push_str("X-Trasporto: errore\r\n");
        }
        k => {
            h.push_str(&format!("X-Ricevuta: {}\r\n", k.as_str()));
            if !msgid.is_empty() {
                h.push_str(&format!("X-Riferimento-Message-ID: <{msgid}>\r\n"));
            }
            if k == Kind::AvvenutaConsegna {
                h.push_str(&format!("X-TipoRicevuta: {}\r\n", p.receipt_type.as_str()));
            }
        }
    }

    let signed = build_signed_content(p);
    let sig = base64_lines(&p.signature);
    let outer = boundary("signed", p, &signed);
    h.push_str("MIME-Version: 1.0\r\n");
    h.push_str(&format!(
        "Content-Type: multipart/signed; protocol=\"{}\";\r\n\tmicalg=\"sha-256\"; boundary=\"{outer}\"\r\n\r\n",
        one_line(p.signature_content_type)
    ));
    h.push_str("This is an S/MIME signed message\r\n");
    h.push_str(&format!("--{outer}\r\n"));

    let mut out = h.into_bytes();
    out.extend_from_slice(&signed);
    out.extend_from_slice(
        format!(
            "\r\n--{outer}\r\nContent-Type: {}; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n{sig}\r\n--{outer}--\r\n",
            one_line(p.signature_content_type)
        )
        .as_bytes(),
    );
    out
}

/// Header values must not smuggle line breaks.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}
