//! One bad byte must not cost a whole field: raw 8-bit headers, stray bytes
//! in UTF-8, unescaped `&` and unknown encodings in daticert.xml.

use super::{Kind, Repair, classify, parse_daticert};

#[test]
fn raw_latin1_subject_is_read_as_latin1() {
    let c = classify(b"From: a@b.it\r\nSubject: citt\xe0 perch\xe9\r\n\r\nbody\r\n");
    assert_eq!(c.subject.as_deref(), Some("città perché"));
    // Encoded words are still decoded by mail-parser.
    let c = classify(b"From: a@b.it\r\nSubject: =?ISO-8859-1?Q?citt=E0?=\r\n\r\nbody\r\n");
    assert_eq!(c.subject.as_deref(), Some("città"));
    let c = classify(b"From: a@b.it\r\nSubject: citt\xc3\xa0 \xe8\r\n\r\nbody\r\n");
    assert_eq!(c.subject.as_deref(), Some("città è"), "UTF-8 with one stray Latin-1 byte");
}

#[test]
fn original_with_raw_latin1_subject() {
    let raw = b"From: p@pec.it\r\nSubject: POSTA CERTIFICATA: x\r\nX-Trasporto: posta-certificata\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: message/rfc822; name=postacert.eml\r\n\r\nFrom: a@b.it\r\nSubject: pi\xf9 tardi\r\n\r\nciao\r\n--B--\r\n";
    let c = classify(raw);
    assert_eq!(c.kind, Kind::PostaCertificata);
    assert_eq!(c.original_subject.as_deref(), Some("più tardi"));
}

#[test]
fn daticert_stray_byte_in_utf8() {
    let x = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><postacert tipo=\"a\"><intestazione><oggetto>citt\xc3\xa0 \xe8</oggetto></intestazione><dati/></postacert>";
    assert_eq!(parse_daticert(x).map(|d| d.oggetto), Ok("città è".to_string()));
}

#[test]
fn daticert_bare_ampersand() {
    let x = b"<postacert tipo=\"a\"><intestazione><oggetto>Rossi & Figli</oggetto></intestazione><dati><identificativo>id-1</identificativo></dati></postacert>";
    let d = parse_daticert(x).expect("read");
    assert_eq!(d.oggetto, "Rossi & Figli");
    assert_eq!(d.identificativo, "id-1");
    assert_eq!(d.repairs, vec![Repair::Ampersand { count: 1 }]);
}

#[test]
fn daticert_unknown_encoding_read_as_latin1() {
    let x = b"<?xml version=\"1.0\" encoding=\"ISO-8859-2\"?><postacert tipo=\"accettazione\"><intestazione><mittente>a@pec.it</mittente></intestazione><dati><identificativo>id-2@pec.it</identificativo></dati></postacert>";
    let d = parse_daticert(x).expect("read");
    assert_eq!(d.mittente, "a@pec.it");
    assert_eq!(d.identificativo, "id-2@pec.it");
    assert_eq!(d.repairs, vec![Repair::Encoding { declared: "iso-8859-2".into() }]);
}
