//! The `pecgate classify` output contract: JSON keys and values, the table line.

use crate::pec::{BuildParams, Kind, build_message, classify, classify_json, classify_line};

pub(crate) const TOP_KEYS: [&str; 9] = [
    "file",
    "kind",
    "receipt_type",
    "riferimento_message_id",
    "subject",
    "has_original",
    "original_subject",
    "daticert",
    "structure_limit",
];
pub(crate) const DATICERT_KEYS: [&str; 13] = [
    "tipo",
    "errore",
    "mittente",
    "destinatari",
    "oggetto",
    "gestore",
    "data",
    "identificativo",
    "msgid",
    "consegna",
    "errore_esteso",
    "repaired",
    "repairs",
];

pub(crate) fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

pub(crate) fn sorted(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn classify_json_contract() {
    let p = BuildParams::sample(Kind::AvvenutaConsegna);
    let c = classify(&build_message(&p));
    let j = classify_json("dir/a.eml", &c);
    assert_eq!(keys(&j), sorted(&TOP_KEYS));
    assert_eq!(keys(&j["daticert"]), sorted(&DATICERT_KEYS));
    let want = serde_json::json!({
        "file": "dir/a.eml",
        "kind": "avvenuta-consegna",
        "receipt_type": "completa",
        "riferimento_message_id": "abc.123@mail.example.it",
        "subject": "CONSEGNA: Richiesta documenti",
        "has_original": true,
        "original_subject": "Richiesta documenti",
        "daticert": {
            "tipo": "avvenuta-consegna",
            "errore": "nessuno",
            "mittente": "mario.rossi@pec.example.it",
            "destinatari": [{"addr": "ufficio@pec.comune.example.it", "tipo": "certificato"}],
            "oggetto": "Richiesta documenti",
            "gestore": "Gestore Esempio S.p.A.",
            "data": "2026-11-23T10:15:00+01:00",
            "identificativo": "opec210.20261123101500.1234.01.1.1@pec.example.it",
            "msgid": "abc.123@mail.example.it",
            "consegna": "ufficio@pec.comune.example.it",
            "errore_esteso": null,
            "repaired": false,
            "repairs": []
        },
        "structure_limit": null
    });
    assert_eq!(j, want);

    // Nulls for ordinary mail.
    let c = classify(b"Subject: hi\r\n\r\nbody");
    let j = classify_json("b.eml", &c);
    assert_eq!(keys(&j), sorted(&TOP_KEYS));
    assert_eq!(
        j,
        serde_json::json!({
            "file": "b.eml", "kind": "not-pec", "receipt_type": null,
            "riferimento_message_id": null, "subject": "hi", "has_original": false,
            "original_subject": null, "daticert": null, "structure_limit": null
        })
    );
}

#[test]
fn classify_line_table() {
    let mut c = classify(&build_message(&BuildParams::sample(Kind::Accettazione)));
    let line = classify_line("a.eml", &c);
    assert!(line.starts_with("a.eml  accettazione"), "{line}");
    assert!(line.contains("\"ACCETTAZIONE: Richiesta documenti\""), "{line}");
    assert!(line.ends_with("ref=<abc.123@mail.example.it>"), "{line}");
    c.subject = Some(format!("evil\r\nline {}", "x".repeat(200)));
    c.daticert_error = Some("bad\nxml".into());
    let line = classify_line("we\nird.eml", &c);
    assert!(!line.contains('\n') && !line.contains('\r'));
    assert!(line.contains("...\""));
    let c = classify(b"");
    assert_eq!(classify_line("e.eml", &c).trim_end(), format!("e.eml  {:<35} -", "not-pec"));
}
