//! Golden PEC fixtures (`tests/fixtures/pec/*.eml`): each file classifies as
//! its name says. They are also the messages the interop suite puts into a
//! real Dovecot mailbox. Regenerate with
//! `cargo test --test fixtures -- --ignored regenerate`.

use pecgate::pec::{BuildParams, Kind, Recipient, build_message, classify};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pec");
/// The Message-ID the interop suite sends with, so receipts correlate.
const MSGID: &str = "interop-1@azienda.example";
const MAILBOX: &str = "legal@pec.azienda.example";

fn fixtures() -> Vec<(&'static str, Kind, Vec<u8>)> {
    let base = |kind: Kind| {
        let mut p = BuildParams::sample(kind);
        p.msgid = MSGID.into();
        p.mittente = MAILBOX.into();
        p.to = MAILBOX.into();
        p.oggetto = "Interop contratto".into();
        p.destinatari = vec![Recipient::new("ufficio@pec.fornitore.example", "certificato")];
        if p.consegna.is_some() {
            p.consegna = Some("ufficio@pec.fornitore.example".into());
        }
        p
    };
    let mut envelope = BuildParams::sample(Kind::PostaCertificata);
    envelope.to = MAILBOX.into();
    envelope.destinatari = vec![Recipient::new(MAILBOX, "certificato")];
    let mut x_sig = base(Kind::AvvenutaConsegna);
    x_sig.signature_content_type = "application/x-pkcs7-signature";
    vec![
        ("accettazione", Kind::Accettazione, build_message(&base(Kind::Accettazione))),
        ("avvenuta-consegna", Kind::AvvenutaConsegna, build_message(&x_sig)),
        ("posta-certificata", Kind::PostaCertificata, build_message(&envelope)),
        ("anomalia", Kind::Anomalia, build_message(&base(Kind::Anomalia))),
    ]
}

#[test]
fn fixtures_classify_as_named() {
    for (name, kind, bytes) in fixtures() {
        let stored =
            std::fs::read(format!("{DIR}/{name}.eml")).unwrap_or_else(|e| panic!("{name}.eml: {e} (regenerate, see the module doc)"));
        assert_eq!(stored, bytes, "{name}.eml differs from what the builder makes; regenerate if intended");
        let c = classify(&stored);
        assert_eq!(c.kind, kind, "{name}");
        if kind.is_receipt() {
            assert_eq!(c.riferimento_message_id.as_deref(), Some(MSGID));
        }
    }
}

#[test]
#[ignore]
fn regenerate() {
    for (name, _, bytes) in fixtures() {
        std::fs::write(format!("{DIR}/{name}.eml"), bytes).unwrap();
    }
}
