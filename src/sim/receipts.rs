//! What the simulated provider sends back after accepting a submission, as
//! a real provider does (PEC.md): an acceptance receipt to the sender, then
//! per certified recipient a delivery receipt (or an error), nothing for
//! "esterno" recipients, and a transport envelope into recipients that are
//! mailboxes of this simulator. Built with `pec::build`, so the structure is
//! the real one, and signed (S/MIME, SHA-256) with the committed TEST-ONLY
//! CA of `pec::signature::TestSigner`, so the signature check sees `valid`
//! when that CA is in `[pec] trust_store`. `Behavior::tamper` alters one
//! byte after signing, as a broken relay would.
//!
//! Recipient local parts steer outcomes in tests and the demo:
//! `errore*` -> errore-consegna, `preavviso*` -> preavviso-errore-consegna,
//! `preavviso541*` -> a preavviso whose errore-esteso is `5.4.1` (Namirial's final one;
//! every preavviso, for a mailbox in the Namirial profile),
//! `virus*` -> rilevazione-virus, `silenzio*` -> no receipt at all.
//! A domain containing "pec" (or a simulator mailbox) is certified.

use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset};

use super::Captured;
use super::provider::SimMailbox;
use crate::pec::signature::{Digest, TestSigner};
use crate::pec::{BuildParams, Kind, ReceiptType, Recipient, build_message, build_signed_content};

/// Knobs for receipts, set from tests or the demo.
#[derive(Debug, Default, Clone)]
pub struct Behavior {
    /// The next N submissions get a non-accettazione instead of receipts.
    pub not_accept_next: u32,
    /// Every receipt is delivered twice.
    pub duplicates: bool,
    /// Delivery receipts arrive before the acceptance.
    pub deliveries_first: bool,
    /// Receipts are kept back until released (slow providers).
    pub hold: bool,
    /// One byte of every generated message is altered after signing.
    pub tamper: bool,
    /// Each preavviso comes twice, as providers send it at 12 h and at 24 h
    /// (the second with its own identifier, dated 12 h later).
    pub preavviso_twice: bool,
    /// Every preavviso carries errore-esteso `5.4.1`, final in fact (Namirial).
    pub preavviso_541: bool,
}

/// The simulator's signer (parsed once).
fn signer() -> Option<&'static TestSigner> {
    static SIGNER: OnceLock<Option<TestSigner>> = OnceLock::new();
    SIGNER
        .get_or_init(|| match TestSigner::load() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "simulator signer unavailable; messages stay unsigned placeholders");
                None
            }
        })
        .as_ref()
}

/// Builds a PEC message signed by the simulator's test CA.
pub fn build_signed(p: &mut BuildParams) -> Vec<u8> {
    if let Some(s) = signer()
        && let Ok(sig) = s.sign_detached(&build_signed_content(p), Digest::Sha256)
    {
        p.signature = sig;
    }
    build_message(p)
}

/// Alters one letter inside the signed part (its last text line), keeping the MIME structure.
pub fn tamper(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(part) = crate::pec::signed_part(&bytes) else { return bytes };
    let start = part.as_ptr() as usize - bytes.as_ptr() as usize;
    let end = start + part.len();
    // The last letter of the signed part: inside a text line, not a boundary or header.
    if let Some(i) = (start..end).rev().find(|&i| bytes[i].is_ascii_alphabetic()) {
        bytes[i] = if bytes[i] == b'X' { b'Y' } else { b'X' };
    }
    bytes
}

pub fn is_certified(address: &str, local: &[SimMailbox]) -> bool {
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
    domain.contains("pec") || local.iter().any(|m| m.address.eq_ignore_ascii_case(address))
}

/// The messages to put into POP3 mailboxes: (username, bytes), in delivery order.
pub fn receipts_for(
    submission: &Captured,
    sender: &SimMailbox,
    local: &[SimMailbox],
    behavior: &Behavior,
    not_accepted: Option<&str>,
    now: DateTime<FixedOffset>,
    seq: u64,
) -> Vec<(String, Vec<u8>)> {
    let msgid =
        submission.header("Message-ID").map(|m| m.trim().trim_start_matches('<').trim_end_matches('>').to_owned()).unwrap_or_default();
    let subject = submission.header("Subject").map(|s| crate::policy::tag::decode_subject(&s)).unwrap_or_default();
    let receipt_type = submission.header("X-TipoRicevuta").and_then(|t| ReceiptType::parse(&t)).unwrap_or(ReceiptType::Completa);
    let destinatari: Vec<Recipient> =
        submission.rcpts.iter().map(|r| Recipient::new(r, if is_certified(r, local) { "certificato" } else { "esterno" })).collect();
    let params = |kind: Kind, to: &str, consegna: Option<&str>, n: u32| BuildParams {
        kind,
        gestore: "Gestore PEC simulato (pecgate sim)".into(),
        identificativo: format!("opec-sim.{seq}.{n}@sim-pec.localhost"),
        msgid: msgid.clone(),
        mittente: sender.address.clone(),
        destinatari: destinatari.clone(),
        oggetto: subject.clone(),
        consegna: consegna.map(str::to_owned),
        errore: "nessuno".into(),
        errore_esteso: None,
        receipt_type,
        date: now,
        to: to.to_owned(),
        from: "posta-certificata@sim-pec.localhost".into(),
        original: None,
        signature_content_type: "application/pkcs7-signature",
        signature: b"placeholder: the pecgate simulator does not sign".to_vec(),
    };
    if let Some(why) = not_accepted {
        let mut p = params(Kind::NonAccettazione, &sender.address, None, 0);
        p.errore = "altro".into();
        p.errore_esteso = Some(why.to_owned());
        return vec![(sender.username.clone(), finish(&mut p, behavior))];
    }
    let acceptance = (sender.username.clone(), finish(&mut params(Kind::Accettazione, &sender.address, None, 0), behavior));
    let mut deliveries = Vec::new();
    let mut envelopes = Vec::new();
    for (i, r) in submission.rcpts.iter().enumerate() {
        if !is_certified(r, local) {
            continue;
        }
        let n = i as u32 + 1;
        let local_part = r.split('@').next().unwrap_or("").to_ascii_lowercase();
        let mut p = params(Kind::AvvenutaConsegna, &sender.address, Some(r), n);
        let mut later = None;
        if local_part.starts_with("silenzio") {
            continue;
        } else if local_part.starts_with("errore") {
            p.kind = Kind::ErroreConsegna;
            p.errore = "no-dest".into();
            p.errore_esteso = Some("5.1.1 - casella inesistente (simulato)".into());
        } else if local_part.starts_with("preavviso") {
            p.kind = Kind::PreavvisoErroreConsegna;
            p.errore = "altro".into();
            p.errore_esteso = Some(if behavior.preavviso_541 || local_part.starts_with("preavviso541") {
                "5.4.1 - host di destinazione non raggiungibile (simulato)".into()
            } else {
                "superamento dei tempi massimi (simulato)".into()
            });
            if behavior.preavviso_twice {
                let mut second = p.clone();
                second.identificativo = format!("opec-sim.{seq}.{}@sim-pec.localhost", n + 500);
                second.date = now + chrono::Duration::hours(12);
                later = Some(second);
            }
        } else if local_part.starts_with("virus") {
            p.kind = Kind::RilevazioneVirus;
            p.errore = "virus".into();
            p.errore_esteso = Some("virus rilevato (simulato)".into());
        } else if receipt_type == ReceiptType::Completa {
            p.original = Some(submission.data.clone());
        }
        deliveries.push((sender.username.clone(), finish(&mut p, behavior)));
        if let Some(mut second) = later {
            deliveries.push((sender.username.clone(), finish(&mut second, behavior)));
        }
        if let Some(target) = local.iter().find(|m| m.address.eq_ignore_ascii_case(r)) {
            let mut e = params(Kind::PostaCertificata, r, None, n + 1000);
            e.original = Some(submission.data.clone());
            envelopes.push((target.username.clone(), finish(&mut e, behavior)));
        }
    }
    let mut out = Vec::new();
    if behavior.deliveries_first {
        out.extend(deliveries);
        out.push(acceptance);
    } else {
        out.push(acceptance);
        out.extend(deliveries);
    }
    out.extend(envelopes);
    if behavior.duplicates {
        out = out.into_iter().flat_map(|m| [m.clone(), m]).collect();
    }
    out
}

fn finish(p: &mut BuildParams, behavior: &Behavior) -> Vec<u8> {
    let signed = build_signed(p);
    if behavior.tamper { tamper(signed) } else { signed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pec::classify;

    #[test]
    fn receipts_per_recipient() {
        let sender = SimMailbox { username: "legal-login".into(), password: "x".into(), address: "legal@pec.a.it".into() };
        let other = SimMailbox { username: "hr-login".into(), password: "y".into(), address: "hr@pec.a.it".into() };
        let data = b"From: legal@pec.a.it\r\nTo: ok@pec.b.it, errore@pec.b.it, ext@gmail.example, hr@pec.a.it\r\nSubject: Offerta\r\nMessage-ID: <m1@a.it>\r\nX-TipoRicevuta: completa\r\n\r\nbody\r\n".to_vec();
        let sub = Captured {
            mail_from: sender.address.clone(),
            rcpts: vec!["ok@pec.b.it".into(), "errore@pec.b.it".into(), "ext@gmail.example".into(), "hr@pec.a.it".into()],
            data,
            auth: None,
        };
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+01:00").unwrap();
        let local = [sender.clone(), other.clone()];
        let out = receipts_for(&sub, &sender, &local, &Behavior::default(), None, now, 7);
        let kinds: Vec<(String, Kind)> = out.iter().map(|(u, b)| (u.clone(), classify(b).kind)).collect();
        assert_eq!(
            kinds,
            [
                ("legal-login".to_string(), Kind::Accettazione),
                ("legal-login".to_string(), Kind::AvvenutaConsegna),
                ("legal-login".to_string(), Kind::ErroreConsegna),
                ("legal-login".to_string(), Kind::AvvenutaConsegna),
                ("hr-login".to_string(), Kind::PostaCertificata),
            ]
        );
        let acc = classify(&out[0].1);
        assert_eq!(acc.riferimento_message_id.as_deref(), Some("m1@a.it"));
        let d = acc.daticert.clone().unwrap();
        assert_eq!(d.destinatari.iter().filter(|r| r.tipo == "esterno").count(), 1);
        // Signed by the simulator's test CA; a tampered copy no longer verifies.
        let trust = crate::pec::signature::TrustStore::from_pem(TestSigner::load().unwrap().ca_pem()).unwrap();
        let at = acc.daticert.as_ref().and_then(|d| d.data);
        assert_eq!(crate::pec::signature::verify(&out[0].1, &trust, at).verdict.as_str(), "valid");
        let bad = tamper(out[0].1.clone());
        assert_ne!(bad, out[0].1);
        assert_eq!(crate::pec::signature::verify(&bad, &trust, at).verdict.as_str(), "invalid");
        let refused = receipts_for(&sub, &sender, &local, &Behavior::default(), Some("messaggio non conforme (simulato)"), now, 8);
        assert_eq!(refused.len(), 1);
        assert_eq!(classify(&refused[0].1).kind, Kind::NonAccettazione);
    }
}
