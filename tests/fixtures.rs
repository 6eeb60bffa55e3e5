//! Golden PEC fixtures (`tests/fixtures/pec/*.eml`): each file classifies as
//! its name says. They are also the messages the interop suite puts into a
//! real Dovecot mailbox. Regenerate with
//! `cargo test --test fixtures -- --ignored regenerate`.

use pecgate::pec::{BuildParams, Kind, Recipient, Repair, build_message, classify, classify_json, classify_line};

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

/// Hand-made provider messages whose daticert.xml is not well-formed XML
/// (`tests/fixtures/pec-lenient/`, not regenerated): control characters
/// copied from the subject, raw or as character references.
const LENIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pec-lenient");

fn lenient(name: &str) -> Vec<u8> {
    std::fs::read(format!("{LENIENT}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn daticert_with_raw_control_characters_is_read_and_marked_repaired() {
    let c = classify(&lenient("avvenuta-consegna-raw-controls.eml"));
    assert_eq!(c.daticert_error, None);
    let d = c.daticert.clone().expect("daticert read despite U+0012 and U+0016");
    assert_eq!(d.tipo, "avvenuta-consegna");
    assert_eq!(d.mittente, MAILBOX);
    assert_eq!(d.destinatari, vec![Recipient::new("ufficio@pec.fornitore.example", "certificato")]);
    assert_eq!(d.identificativo, "opec210.20261123101500.1234.01.1.1@pec.example.it");
    assert_eq!(d.data.map(|t| t.to_rfc3339()).as_deref(), Some("2026-11-23T10:15:00+01:00"));
    assert_eq!(d.msgid.as_deref(), Some(MSGID));
    assert_eq!(d.consegna.as_deref(), Some("ufficio@pec.fornitore.example"));
    assert_eq!(d.oggetto, "Interop\u{fffd} contratto \u{fffd}n. 7");
    assert!(d.repaired());
    assert_eq!(d.repairs, vec![Repair::Char { code_point: 0x12, count: 1 }, Repair::Char { code_point: 0x16, count: 1 }]);
    assert_eq!(c.kind, Kind::AvvenutaConsegna);
    assert_eq!(c.riferimento_message_id.as_deref(), Some(MSGID));

    let j = classify_json("f.eml", &c);
    assert_eq!(j["daticert"]["repaired"], serde_json::json!(true));
    assert_eq!(j["daticert"]["repairs"], serde_json::json!(["U+0012 x1", "U+0016 x1"]));
    let line = classify_line("f.eml", &c);
    assert!(line.contains("daticert-repaired=\"U+0012 x1, U+0016 x1\""), "{line}");
}

#[test]
fn daticert_with_character_references_is_read_and_marked_repaired() {
    // ISO-8859-1, quoted-printable, &#x12; and &#22; in <oggetto>.
    let c = classify(&lenient("accettazione-char-references.eml"));
    assert_eq!(c.daticert_error, None);
    let d = c.daticert.expect("daticert read despite &#x12; and &#22;");
    assert_eq!(d.tipo, "accettazione");
    assert_eq!(d.mittente, MAILBOX);
    assert_eq!(d.destinatari, vec![Recipient::new("ufficio@pec.fornitore.example", "certificato")]);
    assert_eq!(d.identificativo, "opec210.20261123101500.1234.01.1.1@pec.example.it");
    assert_eq!(d.data.map(|t| t.to_rfc3339()).as_deref(), Some("2026-11-23T10:15:00+01:00"));
    assert_eq!(d.oggetto, "Interop\u{fffd} contratto \u{fffd}città");
    assert_eq!(d.repairs, vec![Repair::Reference { code_point: 0x12, count: 1 }, Repair::Reference { code_point: 0x16, count: 1 }]);
}

#[test]
fn entity_bomb_is_still_refused_when_repairing() {
    let c = classify(&lenient("entity-bomb-with-controls.eml"));
    assert_eq!(c.daticert, None);
    assert_eq!(c.daticert_error.as_deref(), Some("daticert.xml: DTD entity declarations are not allowed"));
    assert_eq!(c.kind, Kind::AvvenutaConsegna, "the headers still classify it");
}

#[test]
fn well_formed_fixtures_are_not_marked_repaired() {
    for (name, _, bytes) in fixtures() {
        let d = classify(&bytes).daticert.unwrap_or_else(|| panic!("{name}: no daticert"));
        assert!(!d.repaired(), "{name}");
    }
}
