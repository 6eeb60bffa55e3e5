//! Classification, report and builder tests (table-driven) plus property
//! tests: nothing panics on arbitrary or mutated input.

use super::report::tests::{TOP_KEYS, keys, sorted};
use super::*;
use base64::Engine as _;
use proptest::prelude::*;

const SIG_TYPES: [&str; 2] = ["application/pkcs7-signature", "application/x-pkcs7-signature"];

fn daticert_xml(tipo: &str, oggetto: &str, msgid: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<!DOCTYPE postacert SYSTEM \"Certificazione.dtd\">\r\n<postacert tipo=\"{tipo}\" errore=\"nessuno\"><intestazione><mittente>mario@pec.example.it</mittente><destinatari tipo=\"certificato\">uff@pec.example.it</destinatari><oggetto>{oggetto}</oggetto></intestazione><dati><gestore-emittente>Gestore</gestore-emittente><data zona=\"+0200\"><giorno>01/07/2026</giorno><ora>09:30:00</ora></data><identificativo>id-1@pec.example.it</identificativo><msgid>{msgid}</msgid><ricevuta tipo=\"breve\"/><consegna>uff@pec.example.it</consegna></dati></postacert>\r\n"
    )
}

/// A hand-written multipart/signed PEC message. `daticert_part` is the full
/// MIME part (headers + body) or None; `original` likewise.
fn raw_pec(headers: &str, sig: &str, daticert_part: Option<&str>, original: Option<&str>) -> Vec<u8> {
    let mut s = String::new();
    s.push_str(headers);
    s.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"{sig}\"; micalg=sha1;\r\n boundary=\"SIGNED\"\r\n\r\n--SIGNED\r\nContent-Type: multipart/mixed; boundary=\"MIXED\"\r\n\r\n--MIXED\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nRicevuta.\r\n"
    ));
    if let Some(d) = daticert_part {
        s.push_str("--MIXED\r\n");
        s.push_str(d);
        s.push_str("\r\n");
    }
    if let Some(o) = original {
        s.push_str("--MIXED\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\nContent-Disposition: inline; filename=\"postacert.eml\"\r\n\r\n");
        s.push_str(o);
        s.push_str("\r\n");
    }
    s.push_str(&format!(
        "--MIXED--\r\n\r\n--SIGNED\r\nContent-Type: {sig}; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--SIGNED--\r\n"
    ));
    s.into_bytes()
}

fn xml_part_plain(xml: &str) -> String {
    format!("Content-Type: application/xml; name=\"daticert.xml\"\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n{xml}")
}

fn xml_part_b64(xml: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(xml);
    let lines: Vec<String> = b.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    format!(
        "Content-Type: application/xml\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"daticert.xml\"\r\n\r\n{}",
        lines.join("\r\n")
    )
}

const ORIGINAL: &str = "From: mario@pec.example.it\r\nTo: uff@pec.example.it\r\nSubject: =?UTF-8?Q?Pratica_n=C2=B0_42?=\r\nMessage-ID: <orig-42@mail.example.it>\r\n\r\nTesto.\r\n";

#[test]
fn kind_names_roundtrip() {
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
        assert_eq!(Kind::parse(&format!(" {} ", k.as_str().to_uppercase())), Some(k));
        assert_eq!(serde_json::to_value(k).ok(), Some(serde_json::Value::from(k.as_str())));
        assert_eq!(k.is_receipt(), k.as_str() != "posta-certificata" && k != Kind::Anomalia && k != Kind::NotPec);
    }
    assert_eq!(Kind::parse("errore"), None);
    for r in [ReceiptType::Completa, ReceiptType::Breve, ReceiptType::Sintetica] {
        assert_eq!(ReceiptType::parse(&r.as_str().to_uppercase()), Some(r));
    }
    assert_eq!(ReceiptType::parse("lunga"), None);
}

#[test]
fn from_header_table() {
    let cases = [
        ("X-Trasporto", "posta-certificata", Some(Kind::PostaCertificata)),
        ("x-trasporto", " ERRORE ", Some(Kind::Anomalia)),
        ("X-Trasporto", "accettazione", None),
        ("X-Ricevuta", "accettazione", Some(Kind::Accettazione)),
        ("X-RICEVUTA", "Non-Accettazione", Some(Kind::NonAccettazione)),
        ("X-Ricevuta", "presa-in-carico", Some(Kind::PresaInCarico)),
        ("X-Ricevuta", "avvenuta-consegna", Some(Kind::AvvenutaConsegna)),
        ("X-Ricevuta", "errore-consegna", Some(Kind::ErroreConsegna)),
        ("X-Ricevuta", "preavviso-errore-consegna", Some(Kind::PreavvisoErroreConsegna)),
        ("X-Ricevuta", "rilevazione-virus", Some(Kind::RilevazioneVirus)),
        ("X-Ricevuta", "posta-certificata", None),
        ("X-Ricevuta", "not-pec", None),
        ("Subject", "accettazione", None),
    ];
    for (n, v, want) in cases {
        assert_eq!(Kind::from_header(n, v), want, "{n}: {v}");
    }
}

/// Every kind built with the builder, with both signature content types and
/// every receipt type, classifies back to what was built.
#[test]
fn builder_roundtrip_every_kind() {
    for kind in Kind::ALL {
        for sig in SIG_TYPES {
            for rt in [ReceiptType::Completa, ReceiptType::Breve, ReceiptType::Sintetica] {
                let mut p = BuildParams::sample(kind);
                p.signature_content_type = sig;
                p.receipt_type = rt;
                p.oggetto = "Pratica n° 42 – città".into();
                let raw = build_message(&p);
                let ctx = format!("{kind} {sig} {rt}");
                assert!(raw.first() != Some(&b'\n') && !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF in {ctx}");
                let c = classify(&raw);
                assert_eq!(c.kind, kind, "{ctx}");
                assert_eq!(c.subject.as_deref(), Some(format!("{}Pratica n° 42 – città", kind.subject_prefix()).as_str()), "{ctx}");
                assert_eq!(c.message_id.as_deref(), Some("opec210.20261123101500.1234.01.1.1@pec.example.it"), "{ctx}");
                if kind == Kind::NotPec {
                    assert_eq!(c, classify(&raw));
                    assert!(c.daticert.is_none() && !c.has_original, "{ctx}");
                    assert_eq!(signed_part(&raw), None);
                    continue;
                }
                assert_eq!(c.signature_content_type.as_deref(), Some(sig), "{ctx}");
                assert_eq!(c.receipt_type, (kind == Kind::AvvenutaConsegna).then_some(rt), "{ctx}");
                assert_eq!(c.riferimento_message_id.as_deref(), kind.is_receipt().then_some("abc.123@mail.example.it"), "{ctx}");
                let want_original = p.original.is_some() && (kind != Kind::AvvenutaConsegna || rt == ReceiptType::Completa);
                assert_eq!(c.has_original, want_original, "{ctx}");
                if want_original {
                    assert_eq!(c.original_subject.as_deref(), Some("Richiesta documenti"));
                    assert_eq!(c.original_message_id.as_deref(), Some("abc.123@mail.example.it"));
                }
                assert_eq!(c.daticert_error, None, "{ctx}");
                let d = c.daticert.as_ref().unwrap_or_else(|| panic!("daticert {ctx}"));
                assert_eq!(d.tipo, kind.as_str());
                assert_eq!(d.oggetto, "Pratica n° 42 – città");
                assert_eq!(d.msgid.as_deref(), Some("abc.123@mail.example.it"));
                assert_eq!(d.gestore, "Gestore Esempio S.p.A.");
                assert_eq!(d.consegna, p.consegna);
                assert_eq!(d.errore_esteso, p.errore_esteso);
                assert_eq!(d.data, Some(p.date));
                assert_eq!(d.destinatari, p.destinatari);
                assert_eq!(d.ricevuta.as_deref(), (kind == Kind::AvvenutaConsegna).then_some(rt.as_str()));
                // The signed part is exactly reproducible.
                assert_eq!(signed_part(&raw), Some(build_signed_content(&p).as_slice()), "{ctx}");
                assert_eq!(build_message(&p), raw, "deterministic {ctx}");
            }
        }
    }
}

#[test]
fn builder_daticert_parses() {
    let mut p = BuildParams::sample(Kind::ErroreConsegna);
    p.oggetto = "a < b & \"c\" 'd'".into();
    p.date = chrono::DateTime::parse_from_rfc3339("2026-07-01T08:00:00+02:00").unwrap_or(p.date);
    let d = parse_daticert(build_daticert(&p).as_bytes()).expect("parse");
    assert_eq!(d.oggetto, "a < b & \"c\" 'd'");
    assert_eq!(d.errore, "no-dest");
    assert_eq!(d.data.map(|t| t.to_rfc3339()).as_deref(), Some("2026-07-01T08:00:00+02:00"));
    assert_eq!(d.risposte.as_deref(), Some("mario.rossi@pec.example.it"));
}

#[test]
fn builder_identificativo_without_domain() {
    let mut p = BuildParams::sample(Kind::Accettazione);
    p.identificativo = "ABC123".into();
    p.from = "Posta Certificata <posta-certificata@pec.gestore.it>".into();
    let c = classify(&build_message(&p));
    assert_eq!(c.message_id.as_deref(), Some("ABC123@pec.gestore.it"));
}

#[test]
fn builder_original_containing_boundary() {
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    let probe = build_signed_content(&p);
    let text = String::from_utf8_lossy(&probe).into_owned();
    let mixed =
        text.lines().find_map(|l| l.trim().strip_prefix("boundary=\"")).and_then(|b| b.strip_suffix('"')).unwrap_or("none").to_string();
    let mut orig = ORIGINAL.as_bytes().to_vec();
    orig.extend_from_slice(format!("--{mixed}\r\n").as_bytes());
    p.original = Some(orig);
    let raw = build_message(&p);
    let c = classify(&raw);
    assert!(c.has_original);
    assert!(c.daticert.is_some());
    assert_eq!(signed_part(&raw), Some(build_signed_content(&p).as_slice()));
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    kind: Kind,
    receipt_type: Option<ReceiptType>,
    riferimento: Option<&'static str>,
    subject: Option<&'static str>,
    has_original: bool,
    original_subject: Option<&'static str>,
    daticert_oggetto: Option<&'static str>,
    daticert_msgid: Option<&'static str>,
    daticert_error: bool,
    verifica_errore: bool,
    signature: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, raw: Vec<u8>, kind: Kind) -> Case {
        Case {
            name,
            raw,
            kind,
            receipt_type: None,
            riferimento: None,
            subject: None,
            has_original: false,
            original_subject: None,
            daticert_oggetto: None,
            daticert_msgid: None,
            daticert_error: false,
            verifica_errore: false,
            signature: None,
        }
    }
}

fn hand_written_cases() -> Vec<Case> {
    let x = |s: &str| xml_part_plain(&daticert_xml("avvenuta-consegna", s, "&lt;m-1@x.it&gt;"));
    let mut v = Vec::new();

    let mut c = Case::new(
        "accettazione, lower-case header names, folded headers",
        raw_pec(
            "Subject: ACCETTAZIONE:\r\n Prova\r\nx-ricevuta:\r\n\taccettazione\r\nx-riferimento-message-id:\r\n <m-1@x.it>\r\n",
            SIG_TYPES[0],
            Some(&xml_part_plain(&daticert_xml("accettazione", "Prova", "m-1@x.it"))),
            None,
        ),
        Kind::Accettazione,
    );
    c.subject = Some("ACCETTAZIONE: Prova");
    c.riferimento = Some("m-1@x.it");
    c.daticert_oggetto = Some("Prova");
    c.daticert_msgid = Some("m-1@x.it");
    c.receipt_type = Some(ReceiptType::Breve); // from daticert <ricevuta tipo>
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "avvenuta-consegna, X-TIPORICEVUTA upper-case, x-pkcs7, encoded subject",
        raw_pec(
            "Subject: =?ISO-8859-1?Q?CONSEGNA:_citt=E0?=\r\nX-RICEVUTA: AVVENUTA-CONSEGNA \r\nX-TIPORICEVUTA: Completa\r\nX-Riferimento-Message-ID: m-1@x.it\r\n",
            SIG_TYPES[1],
            Some(&x("città")),
            Some(ORIGINAL),
        ),
        Kind::AvvenutaConsegna,
    );
    c.subject = Some("CONSEGNA: città");
    c.receipt_type = Some(ReceiptType::Completa);
    c.riferimento = Some("m-1@x.it");
    c.has_original = true;
    c.original_subject = Some("Pratica n° 42");
    c.daticert_oggetto = Some("città");
    c.daticert_msgid = Some("m-1@x.it");
    c.signature = Some(SIG_TYPES[1]);
    v.push(c);

    let mut c = Case::new(
        "avvenuta-consegna sintetica, X-Tiporicevuta, missing daticert",
        raw_pec(
            "X-Ricevuta: avvenuta-consegna\r\nX-Tiporicevuta: sintetica\r\nX-Riferimento-Message-ID: <<m-2@x.it>>\r\n",
            SIG_TYPES[0],
            None,
            None,
        ),
        Kind::AvvenutaConsegna,
    );
    c.receipt_type = Some(ReceiptType::Sintetica);
    c.riferimento = Some("<m-2@x.it>");
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "errore-consegna with broken daticert XML",
        raw_pec(
            "X-Ricevuta: errore-consegna\r\n",
            SIG_TYPES[0],
            Some(&xml_part_plain("<postacert tipo=\"errore-consegna\"><intestazione>")),
            None,
        ),
        Kind::ErroreConsegna,
    );
    c.daticert_error = true;
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "posta-certificata, daticert base64 ISO-8859-1 with accented oggetto",
        raw_pec(
            "Subject: POSTA CERTIFICATA: Pratica\r\nX-Trasporto: posta-certificata\r\n",
            SIG_TYPES[0],
            Some(&xml_part_b64(
                &daticert_xml("posta-certificata", "Comunicazione urgente: è già città", "m-3@x.it")
                    .replace("UTF-8", "ISO-8859-1")
                    .chars()
                    .map(|ch| ch as u32 as u8)
                    .collect::<Vec<u8>>(),
            )),
            Some(ORIGINAL),
        ),
        Kind::PostaCertificata,
    );
    c.subject = Some("POSTA CERTIFICATA: Pratica");
    c.has_original = true;
    c.original_subject = Some("Pratica n° 42");
    c.daticert_oggetto = Some("Comunicazione urgente: è già città");
    c.receipt_type = Some(ReceiptType::Breve); // from daticert <ricevuta tipo>
    c.daticert_msgid = Some("m-3@x.it");
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let latin1_qp = {
        let xml = daticert_xml("presa-in-carico", "perché sì", "m-4@x.it").replace("UTF-8", "iso-8859-1");
        let mut qp = String::new();
        for ch in xml.chars() {
            let b = ch as u32 as u8;
            if b == b'=' || b >= 0x80 {
                qp.push_str(&format!("={b:02X}"));
            } else {
                qp.push(ch);
            }
        }
        format!("Content-Type: text/xml; name=\"daticert.xml\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}")
    };
    let mut c = Case::new(
        "presa-in-carico, daticert quoted-printable text/xml named via Content-Type name",
        raw_pec("X-Ricevuta: presa-in-carico\r\n", SIG_TYPES[1], Some(&latin1_qp), None),
        Kind::PresaInCarico,
    );
    c.daticert_oggetto = Some("perché sì");
    c.daticert_msgid = Some("m-4@x.it");
    c.receipt_type = Some(ReceiptType::Breve);
    c.signature = Some(SIG_TYPES[1]);
    v.push(c);

    let mut c = Case::new(
        "anomalia with X-VerificaSicurezza: errore",
        raw_pec(
            "Subject: ANOMALIA MESSAGGIO: x\r\nX-Trasporto: errore\r\nx-verificasicurezza: Errore\r\n",
            SIG_TYPES[0],
            None,
            Some(ORIGINAL),
        ),
        Kind::Anomalia,
    );
    c.subject = Some("ANOMALIA MESSAGGIO: x");
    c.verifica_errore = true;
    c.has_original = true;
    c.original_subject = Some("Pratica n° 42");
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "not-pec plain message (a PEC-looking subject is ignored)",
        b"From: a@b.it\r\nTo: c@d.it\r\nSubject: ACCETTAZIONE: finta\r\nMessage-ID: <p@b.it>\r\n\r\nciao\r\n".to_vec(),
        Kind::NotPec,
    );
    c.subject = Some("ACCETTAZIONE: finta");
    v.push(c);

    let mut c = Case::new(
        "multipart/mixed without signature: kind from daticert",
        format!(
            "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nciao\r\n--M\r\n{}\r\n--M--\r\n",
            x("senza firma")
        )
        .into_bytes(),
        Kind::AvvenutaConsegna,
    );
    c.subject = Some("x");
    c.daticert_oggetto = Some("senza firma");
    c.daticert_msgid = Some("m-1@x.it");
    c.receipt_type = Some(ReceiptType::Breve);
    v.push(c);

    let mut c = Case::new(
        "non-accettazione, LF-only line endings",
        String::from_utf8_lossy(&raw_pec(
            "X-Ricevuta: non-accettazione\r\nX-Riferimento-Message-ID: <m-5@x.it>\r\n",
            SIG_TYPES[0],
            Some(&xml_part_plain(&daticert_xml("non-accettazione", "lf", "m-5@x.it"))),
            None,
        ))
        .replace("\r\n", "\n")
        .into_bytes(),
        Kind::NonAccettazione,
    );
    c.riferimento = Some("m-5@x.it");
    c.daticert_oggetto = Some("lf");
    c.daticert_msgid = Some("m-5@x.it");
    c.receipt_type = Some(ReceiptType::Breve);
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "header beats daticert tipo; unknown X-Trasporto ignored",
        raw_pec("X-Trasporto: boh\r\nX-Ricevuta: rilevazione-virus\r\n", SIG_TYPES[0], Some(&x("v")), None),
        Kind::RilevazioneVirus,
    );
    c.daticert_oggetto = Some("v");
    c.daticert_msgid = Some("m-1@x.it");
    c.receipt_type = Some(ReceiptType::Breve);
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new(
        "preavviso, daticert with entity bomb is an error, not a hang",
        raw_pec(
            "X-Ricevuta: preavviso-errore-consegna\r\n",
            SIG_TYPES[0],
            Some(&xml_part_plain(
                "<!DOCTYPE postacert [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><postacert tipo=\"x\">&b;</postacert>",
            )),
            None,
        ),
        Kind::PreavvisoErroreConsegna,
    );
    c.daticert_error = true;
    c.signature = Some(SIG_TYPES[0]);
    v.push(c);

    let mut c = Case::new("empty input", Vec::new(), Kind::NotPec);
    c.subject = None;
    v.push(c);

    v
}

#[test]
fn classify_hand_written_table() {
    for case in hand_written_cases() {
        let c = classify(&case.raw);
        let n = case.name;
        assert_eq!(c.kind, case.kind, "{n}");
        assert_eq!(c.receipt_type, case.receipt_type, "{n}");
        assert_eq!(c.riferimento_message_id.as_deref(), case.riferimento, "{n}");
        if case.subject.is_some() {
            assert_eq!(c.subject.as_deref(), case.subject, "{n}");
        }
        assert_eq!(c.has_original, case.has_original, "{n}");
        assert_eq!(c.original_subject.as_deref(), case.original_subject, "{n}");
        if case.has_original {
            assert_eq!(c.original_message_id.as_deref(), Some("orig-42@mail.example.it"), "{n}");
        }
        assert_eq!(c.daticert.as_ref().map(|d| d.oggetto.as_str()), case.daticert_oggetto, "{n}: {:?}", c.daticert_error);
        assert_eq!(c.daticert.as_ref().and_then(|d| d.msgid.as_deref()), case.daticert_msgid, "{n}");
        assert_eq!(c.daticert_error.is_some(), case.daticert_error, "{n}");
        assert_eq!(c.verifica_sicurezza_errore, case.verifica_errore, "{n}");
        assert_eq!(c.signature_content_type.as_deref(), case.signature, "{n}");
        // Report output never fails and stays on one line.
        let line = classify_line("f.eml", &c);
        assert!(!line.contains('\n') && line.contains(c.kind.as_str()), "{n}");
        let j = classify_json("f.eml", &c);
        assert_eq!(j["kind"], c.kind.as_str(), "{n}");
    }
}

#[test]
fn daticert_data_in_classification() {
    let raw = raw_pec(
        "X-Ricevuta: avvenuta-consegna\r\n",
        SIG_TYPES[0],
        Some(&xml_part_plain(&daticert_xml("avvenuta-consegna", "d", "m@x"))),
        None,
    );
    let c = classify(&raw);
    let d = c.daticert.expect("daticert");
    assert_eq!(d.data.map(|t| t.to_rfc3339()).as_deref(), Some("2026-07-01T09:30:00+02:00"));
    assert_eq!(d.consegna.as_deref(), Some("uff@pec.example.it"));
}

fn mutate(mut data: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, pos, byte) in ops {
        if data.is_empty() {
            data.push(byte);
            continue;
        }
        let i = pos % data.len();
        match op % 5 {
            0 => data[i] = byte,
            1 => data.insert(i, byte),
            2 => {
                data.remove(i);
            }
            3 => data.truncate(i),
            _ => {
                let end = (i + usize::from(byte)).min(data.len());
                let chunk = data[i..end].to_vec();
                data.splice(i..i, chunk);
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn classify_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let c = classify(&raw);
        let _ = classify_json("x", &c);
        let _ = classify_line("x", &c);
        let _ = signed_part(&raw);
    }

    #[test]
    fn parse_daticert_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_daticert(&raw);
    }

    #[test]
    fn parse_daticert_mutated_never_panics(
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let xml = build_daticert(&BuildParams::sample(Kind::AvvenutaConsegna)).into_bytes();
        let _ = parse_daticert(&mutate(xml, &ops));
    }

    #[test]
    fn classify_mutated_builder_output(
        kind_idx in 0usize..Kind::ALL.len(),
        sig in 0usize..2,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut p = BuildParams::sample(Kind::ALL[kind_idx]);
        p.signature_content_type = SIG_TYPES[sig];
        let raw = mutate(build_message(&p), &ops);
        let c = classify(&raw);
        let j = classify_json("m", &c);
        prop_assert_eq!(keys(&j), sorted(&TOP_KEYS));
        let _ = classify_line("m", &c);
        let _ = signed_part(&raw);
    }

    #[test]
    fn builder_text_fields_roundtrip(
        oggetto in "[ -~àèéìòù€°\t]{0,120}",
        mittente in "[a-z0-9.]{1,20}@[a-z]{1,10}\\.it",
    ) {
        let mut p = BuildParams::sample(Kind::AvvenutaConsegna);
        p.oggetto = oggetto.clone();
        p.mittente = mittente.clone();
        let raw = build_message(&p);
        let c = classify(&raw);
        prop_assert_eq!(c.kind, Kind::AvvenutaConsegna);
        let d = c.daticert.clone().unwrap_or_default();
        prop_assert_eq!(d.oggetto, oggetto.trim().to_string());
        prop_assert_eq!(d.mittente, mittente);
        let signed = build_signed_content(&p);
        prop_assert_eq!(signed_part(&raw), Some(signed.as_slice()));
    }
}

#[test]
fn builder_original_8bit_and_lf() {
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    p.original = Some(
        "Subject: =?UTF-8?Q?citt=C3=A0?=\nMessage-ID: <o@x>\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\ncittà\n"
            .as_bytes()
            .to_vec(),
    );
    let raw = build_message(&p);
    assert!(raw.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r'), "CRLF only");
    assert!(raw.windows(25).any(|w| w == b"Content-Transfer-Encoding"));
    let c = classify(&raw);
    assert!(c.has_original);
    assert_eq!(c.original_subject.as_deref(), Some("città"));
    assert_eq!(c.original_message_id.as_deref(), Some("o@x"));
}

/// A message above [`classify::FULL_PARSE_MAX`] is classified from the
/// envelope's own parts: on every golden and lenient fixture and on every
/// kind the builder makes, that gives what mail-parser's full parse gives.
#[test]
fn the_shallow_classification_of_big_messages_matches_the_full_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut samples: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in ["tests/fixtures/pec", "tests/fixtures/pec-lenient", "src/pec/testdata"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                samples.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    for kind in Kind::ALL {
        for rt in [ReceiptType::Completa, ReceiptType::Breve, ReceiptType::Sintetica] {
            let mut p = BuildParams::sample(kind);
            p.receipt_type = rt;
            samples.push((format!("{kind:?} {rt:?}"), build_message(&p)));
        }
    }
    assert!(samples.len() > 20, "{} samples", samples.len());
    for (name, raw) in &samples {
        let (full, shallow) = (classify::classify_as(raw, false), classify::classify_as(raw, true));
        assert_eq!(shallow, full, "{name}");
    }
    // And the size rule picks it: the same message padded past the limit.
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    let mut original = b"Subject: Fattura\r\nMessage-ID: <big@x.it>\r\n\r\n".to_vec();
    original.resize(classify::FULL_PARSE_MAX + 1, b'x');
    p.original = Some(original);
    let big = build_message(&p);
    let c = classify(&big);
    assert_eq!((c.kind, c.original_subject.as_deref(), c.structure_limit), (Kind::PostaCertificata, Some("Fattura"), None));
    assert!(c.daticert.is_some());
}
