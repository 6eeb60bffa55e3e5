//! Hermetic tests: PEC-like multipart/signed messages signed with the
//! committed TEST-ONLY keys (no openssl at test time).

use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;

use super::*;

const OTHER_CA_PEM: &str = include_str!("../testdata/TEST_ONLY_other_ca.crt.pem");
const OTHER_SIGNER_CERT_PEM: &str = include_str!("../testdata/TEST_ONLY_other_signer.crt.pem");
const OTHER_SIGNER_KEY_PEM: &str = include_str!("../testdata/TEST_ONLY_other_signer.key.pem");
const EXPIRED_SIGNER_CERT_PEM: &str = include_str!("../testdata/TEST_ONLY_expired_signer.crt.pem");
const EXPIRED_SIGNER_KEY_PEM: &str = include_str!("../testdata/TEST_ONLY_expired_signer.key.pem");

const PKCS7: &str = "application/pkcs7-signature";
const X_PKCS7: &str = "application/x-pkcs7-signature";

fn signer() -> &'static TestSigner {
    static S: OnceLock<TestSigner> = OnceLock::new();
    S.get_or_init(|| TestSigner::load().expect("test signer"))
}

fn other_signer() -> &'static TestSigner {
    static S: OnceLock<TestSigner> = OnceLock::new();
    S.get_or_init(|| TestSigner::from_pem(OTHER_CA_PEM, OTHER_SIGNER_CERT_PEM, OTHER_SIGNER_KEY_PEM).expect("other signer"))
}

fn expired_signer() -> &'static TestSigner {
    static S: OnceLock<TestSigner> = OnceLock::new();
    S.get_or_init(|| TestSigner::from_pem(sign::CA_PEM, EXPIRED_SIGNER_CERT_PEM, EXPIRED_SIGNER_KEY_PEM).expect("expired signer"))
}

fn trust() -> &'static TrustStore {
    static T: OnceLock<TrustStore> = OnceLock::new();
    T.get_or_init(|| TrustStore::from_pem(signer().ca_pem()).expect("trust store"))
}

fn at(s: &str) -> Option<DateTime<FixedOffset>> {
    Some(DateTime::parse_from_rfc3339(s).expect("rfc3339"))
}

pub(super) const DATICERT_TIME: &str = "2026-11-23T10:15:00+01:00";

/// A PEC-like signed first part (multipart/mixed with text and daticert.xml),
/// CRLF line ends, with `extra` lines appended to the text.
pub(super) fn pec_content(extra: &str) -> Vec<u8> {
    let daticert = base64::engine::general_purpose::STANDARD.encode(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<postacert tipo=\"posta-certificata\" errore=\"nessuno\"><dati><data zona=\"+0100\"><giorno>23/11/2026</giorno><ora>10:15:00</ora></data></dati></postacert>\n",
    );
    let mut s = String::new();
    s.push_str("Content-Type: multipart/mixed;\r\n\tboundary=\"----=_mixed_0001\"\r\n\r\n");
    s.push_str("This is a multi-part message in MIME format.\r\n");
    s.push_str("------=_mixed_0001\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
    s.push_str("Messaggio di posta certificata\r\nIl giorno 23/11/2026 alle ore 10:15:00 (+0100) il messaggio\r\n");
    s.push_str(extra);
    s.push_str(
        "\r\n------=_mixed_0001\r\nContent-Type: application/xml; name=\"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    for chunk in daticert.as_bytes().chunks(76) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push_str("\r\n");
    }
    s.push_str("\r\n------=_mixed_0001--");
    s.into_bytes()
}

/// Headers + first part + base64 smime.p7s part, CRLF. `p7s = None` omits
/// the signature part.
fn message(content: &[u8], p7s: Option<&[u8]>, sig_type: &str, micalg: &str) -> Vec<u8> {
    let b = "----=_signed_ABC123";
    let mut m = format!(
        "Date: Mon, 23 Nov 2026 10:15:00 +0100\r\nFrom: \"Per conto di: mittente@pec.example\" <posta-certificata@pec.example>\r\nTo: destinatario@pec.example\r\nSubject: POSTA CERTIFICATA: prova\r\nX-Trasporto: posta-certificata\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"{sig_type}\";\r\n\tmicalg={micalg}; boundary=\"{b}\"\r\n\r\nThis is an S/MIME signed message\r\n--{b}\r\n"
    )
    .into_bytes();
    m.extend_from_slice(content);
    if let Some(p7s) = p7s {
        m.extend_from_slice(
            format!(
                "\r\n--{b}\r\nContent-Type: {sig_type}; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
            )
            .as_bytes(),
        );
        let enc = base64::engine::general_purpose::STANDARD.encode(p7s);
        for chunk in enc.as_bytes().chunks(76) {
            m.extend_from_slice(chunk);
            m.extend_from_slice(b"\r\n");
        }
    }
    m.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    m
}

pub(super) fn signed_message(s: &TestSigner, content: &[u8], digest: Digest, sig_type: &str) -> Vec<u8> {
    let p7s = s.sign_detached(content, digest).expect("sign");
    let micalg = if digest == Digest::Sha1 { "sha1" } else { "sha-256" };
    message(content, Some(&p7s), sig_type, micalg)
}

fn valid_message() -> &'static [u8] {
    static M: OnceLock<Vec<u8>> = OnceLock::new();
    M.get_or_init(|| signed_message(signer(), &pec_content(""), Digest::Sha256, PKCS7))
}

/// The stored message, for [`verify_stored`]: here the bytes in memory.
struct InMemory<'a>(&'a [u8]);

impl StoredBytes for InMemory<'_> {
    fn read_range(&self, start: u64, end: u64, each: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        let range = self.0.get(start as usize..end as usize).ok_or_else(|| std::io::Error::other("out of range"))?;
        // In small pieces, as a file is read: the digests must not depend on where a piece ends.
        range.chunks(7).for_each(each);
        Ok(())
    }
}

/// Checks `raw`, and that the check of its skeleton with the signed part
/// read back from the stored bytes says exactly the same, however much of
/// each run the skeleton keeps.
fn check(raw: &[u8], when: Option<DateTime<FixedOffset>>, want: Verdict) -> SignatureReport {
    let r = verify(raw, trust(), when);
    assert_eq!(r.verdict, want, "detail: {}", r.detail);
    assert!(!r.detail.is_empty() && !r.detail.contains('\n'), "{r:?}");
    for keep in [0, 1, 40, 200, 1000, 8000, crate::pec::skeleton::KEEP_PER_RUN] {
        let skeleton = crate::pec::skeleton::skeleton_of(raw, keep).expect("skeleton");
        if let Some(stored) = verify_stored(&skeleton, &InMemory(raw), trust(), when, None) {
            assert_eq!(stored, r, "keep {keep}");
        }
    }
    r
}

/// A big signed part, mostly left out of the skeleton: the digest read
/// back from the stored bytes gives the same verdicts, and one byte altered
/// where the skeleton has nothing is still found.
#[test]
fn a_skeleton_with_most_of_the_signed_part_left_out_verifies_the_same() {
    let extra: String = (0..2000).map(|i| format!("riga {i:05} del testo allegato, lunga quanto basta\r\n")).collect();
    let raw = signed_message(signer(), &pec_content(&extra), Digest::Sha256, PKCS7);
    let skeleton = crate::pec::skeleton::skeleton_of(&raw, 8000).unwrap();
    assert!(skeleton.bytes.len() * 4 < raw.len(), "{} of {} kept", skeleton.bytes.len(), raw.len());
    let stored = verify_stored(&skeleton, &InMemory(&raw), trust(), at(DATICERT_TIME), None).expect("complete enough");
    assert_eq!(stored.verdict, Verdict::Valid, "{}", stored.detail);
    assert_eq!(stored, verify(&raw, trust(), at(DATICERT_TIME)));
    let mut altered = raw.clone();
    let at_line = altered.windows(10).position(|w| w == b"riga 01000").unwrap();
    altered[at_line + 5] = b'9';
    assert!(!skeleton.bytes.windows(10).any(|w| w == b"riga 01000"), "the altered line is left out");
    let skeleton = crate::pec::skeleton::skeleton_of(&altered, 8000).unwrap();
    let stored = verify_stored(&skeleton, &InMemory(&altered), trust(), at(DATICERT_TIME), None).expect("complete enough");
    assert_eq!(stored.verdict, Verdict::Invalid, "{}", stored.detail);
    // With bare LFs in the signed part the canonical form is digested from the pieces too.
    let lf_raw = String::from_utf8(raw.clone()).unwrap().replace("\r\n", "\n").into_bytes();
    let whole = verify(&lf_raw, trust(), at(DATICERT_TIME));
    let skeleton = crate::pec::skeleton::skeleton_of(&lf_raw, 8000).unwrap();
    assert!(!skeleton.is_whole());
    assert_eq!(verify_stored(&skeleton, &InMemory(&lf_raw), trust(), at(DATICERT_TIME), None), Some(whole));
}

#[test]
fn verdict_strings() {
    let all = [Verdict::Valid, Verdict::ValidUntrustedSigner, Verdict::Invalid, Verdict::Unsigned, Verdict::Malformed];
    let names: Vec<&str> = all.iter().map(|v| v.as_str()).collect();
    assert_eq!(names, ["valid", "valid-untrusted-signer", "invalid", "unsigned", "malformed"]);
    assert_eq!(Verdict::Valid.to_string(), "valid");
}

#[test]
fn trust_store_pem() {
    assert_eq!(trust().len(), 1);
    assert_eq!(TrustStore::empty().len(), 0);
    let two = format!("# bundle\n{}\nsome text\n{}", signer().ca_pem(), OTHER_CA_PEM);
    assert_eq!(TrustStore::from_pem(&two).map(|t| t.len()).ok(), Some(2));
    assert!(TrustStore::from_pem("").is_err());
    assert!(TrustStore::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    assert!(TrustStore::from_pem("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n").is_err());
}

#[test]
fn valid_sha256() {
    let r = check(valid_message(), at(DATICERT_TIME), Verdict::Valid);
    assert_eq!(r.signer.as_deref(), Some("CN=Gestore PEC simulato (pecgate sim),O=pecgate test"));
    assert_eq!(r.digest.as_deref(), Some("sha256"));
    assert!(r.not_before.is_some() && r.not_after.is_some());
    assert_eq!(r.signer_cert_der, signer().cert_der().ok());
    assert!(r.detail.contains("2026-11-23T10:15:00+01:00"), "{}", r.detail);
    // at = None: now.
    check(valid_message(), None, Verdict::Valid);
}

#[test]
fn valid_sha1() {
    let m = signed_message(signer(), &pec_content(""), Digest::Sha1, PKCS7);
    let r = check(&m, at(DATICERT_TIME), Verdict::Valid);
    assert_eq!(r.digest.as_deref(), Some("sha1"));
}

#[test]
fn both_signature_content_types() {
    for ct in [PKCS7, X_PKCS7] {
        for d in [Digest::Sha1, Digest::Sha256] {
            let m = signed_message(signer(), &pec_content("altro testo"), d, ct);
            check(&m, at(DATICERT_TIME), Verdict::Valid);
        }
    }
}

#[test]
fn one_altered_byte_is_invalid() {
    let m = valid_message().to_vec();
    let pos = m.windows(10).position(|w| w == b"Messaggio ").expect("text");
    let mut altered = m.clone();
    altered[pos] = b'm';
    let r = check(&altered, at(DATICERT_TIME), Verdict::Invalid);
    assert_eq!(r.detail, "message digest mismatch: content altered");
    // Signer info is still reported.
    assert!(r.signer.is_some() && r.signer_cert_der.is_some());
}

#[test]
fn leading_dots_and_smtp_unstuffing_mistake() {
    let one = pec_content(".riga che inizia con un punto");
    check(&signed_message(signer(), &one, Digest::Sha256, PKCS7), at(DATICERT_TIME), Verdict::Valid);

    let two = pec_content("..riga che inizia con due punti");
    let good = signed_message(signer(), &two, Digest::Sha256, PKCS7);
    check(&good, at(DATICERT_TIME), Verdict::Valid);
    // A relay un-stuffed the line twice: one dot lost.
    let bad = {
        let pos = good.windows(3).position(|w| w == b"\n..").expect("dots");
        let mut b = good.clone();
        b.remove(pos + 1);
        b
    };
    let r = check(&bad, at(DATICERT_TIME), Verdict::Invalid);
    assert!(r.detail.contains("content altered"), "{}", r.detail);
}

#[test]
fn other_ca_is_untrusted() {
    let m = signed_message(other_signer(), &pec_content(""), Digest::Sha256, PKCS7);
    let r = check(&m, at(DATICERT_TIME), Verdict::ValidUntrustedSigner);
    assert!(r.detail.contains("signer CA not in trust store"), "{}", r.detail);
    assert_eq!(r.signer.as_deref(), Some("CN=Gestore PEC non fidato (pecgate test),O=pecgate test other"));
    // Empty store: even our own signer is untrusted.
    let r = verify(valid_message(), &TrustStore::empty(), at(DATICERT_TIME));
    assert_eq!(r.verdict, Verdict::ValidUntrustedSigner);
    // Trusting both CAs makes it valid.
    let both = TrustStore::from_pem(&format!("{}{}", signer().ca_pem(), OTHER_CA_PEM)).expect("store");
    // (The other CA was issued on 2026-11-23 12:33Z: check at now.)
    assert_eq!(verify(&m, &both, None).verdict, Verdict::Valid);
}

#[test]
fn expired_signer_depends_on_time() {
    let m = signed_message(expired_signer(), &pec_content(""), Digest::Sha256, PKCS7);
    let r = check(&m, at(DATICERT_TIME), Verdict::Invalid);
    assert!(r.detail.contains("expired"), "{}", r.detail);
    assert!(r.detail.contains("the daticert time 2026-11-23T10:15:00+01:00"), "{}", r.detail);
    let r = check(&m, None, Verdict::Invalid);
    assert!(r.detail.contains("expired at the verification time"), "{}", r.detail);
    // Inside its validity (2018-01-01 .. 2020-01-01): valid.
    check(&m, at("2019-06-01T12:00:00+02:00"), Verdict::Valid);
    // Before it: not yet valid.
    let r = check(&m, at("2017-06-01T12:00:00+02:00"), Verdict::Invalid);
    assert!(r.detail.contains("not yet valid"), "{}", r.detail);
    // The CA itself (valid from 2016) is checked too.
    let r = check(valid_message(), at("2015-01-01T00:00:00Z"), Verdict::Invalid);
    assert!(r.detail.contains("not yet valid"), "{}", r.detail);
}

#[test]
fn missing_signature_part() {
    let m = message(&pec_content(""), None, PKCS7, "sha-256");
    let r = check(&m, at(DATICERT_TIME), Verdict::Malformed);
    assert!(r.detail.contains("signature part missing"), "{}", r.detail);
    // Second part of another type.
    let m = String::from_utf8_lossy(valid_message()).replacen(
        "Content-Type: application/pkcs7-signature; name",
        "Content-Type: text/plain; name",
        1,
    );
    check(m.as_bytes(), at(DATICERT_TIME), Verdict::Malformed);
}

#[test]
fn garbage_signature_is_malformed() {
    for garbage in [&b"this is not DER at all"[..], &[0x30, 0x03, 0x02, 0x01, 0x01], &[0x30, 0x80, 0x06, 0x01], &[0xff; 64]] {
        let m = message(&pec_content(""), Some(garbage), PKCS7, "sha-256");
        check(&m, at(DATICERT_TIME), Verdict::Malformed);
    }
    // Not base64 at all.
    let mut m = message(&pec_content(""), None, PKCS7, "sha-256");
    let b = "----=_signed_ABC123";
    let end = format!("\r\n--{b}--\r\n");
    m.truncate(m.len() - end.len());
    m.extend_from_slice(
        format!("\r\n--{b}\r\nContent-Type: {PKCS7}\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!! ????\r\n{end}").as_bytes(),
    );
    check(&m, at(DATICERT_TIME), Verdict::Malformed);
}

#[test]
fn plain_message_is_unsigned() {
    let plain = b"From: a@example.it\r\nTo: b@example.it\r\nSubject: ciao\r\nContent-Type: text/plain\r\n\r\nciao\r\n";
    check(plain, None, Verdict::Unsigned);
    check(b"Subject: no content type\r\n\r\nx", None, Verdict::Unsigned);
    check(b"", None, Verdict::Unsigned);
    let mixed = b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nx\r\n--B--\r\n";
    check(mixed, None, Verdict::Unsigned);
}

#[test]
fn lf_only_message_is_still_valid() {
    let lf: Vec<u8> = valid_message().iter().copied().filter(|&b| b != b'\r').collect();
    assert!(!lf.contains(&b'\r'));
    let r = check(&lf, at(DATICERT_TIME), Verdict::Valid);
    assert!(r.detail.contains("canonical"), "{}", r.detail);
    // And altered in LF form: still caught.
    let mut bad = lf.clone();
    let pos = bad.windows(10).position(|w| w == b"Messaggio ").expect("text");
    bad[pos + 1] = b'E';
    check(&bad, at(DATICERT_TIME), Verdict::Invalid);
}

#[test]
fn header_variants() {
    // Lower-case names, unquoted boundary on a folded line, x-pkcs7 protocol.
    let m = String::from_utf8_lossy(valid_message()).replacen(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\tmicalg=sha-256; boundary=\"----=_signed_ABC123\"",
        "content-type: Multipart/Signed;\r\n protocol=\"application/x-pkcs7-signature\";\r\n micalg=sha-256;\r\n boundary=----=_signed_ABC123",
        1,
    );
    assert!(m.contains("content-type: Multipart/Signed"));
    check(m.as_bytes(), at(DATICERT_TIME), Verdict::Valid);
    // PGP is not S/MIME.
    let pgp = String::from_utf8_lossy(valid_message()).replacen(
        "protocol=\"application/pkcs7-signature\"",
        "protocol=\"application/pgp-signature\"",
        1,
    );
    check(pgp.as_bytes(), None, Verdict::Malformed);
}

#[test]
fn signature_bytes_tampered_is_invalid() {
    // Re-sign, then flip one bit inside the RSA signature value (its last byte).
    let content = pec_content("");
    let mut p7s = signer().sign_detached(&content, Digest::Sha256).expect("sign");
    let last = p7s.len() - 1;
    p7s[last] ^= 1;
    let m = message(&content, Some(&p7s), PKCS7, "sha-256");
    let r = check(&m, at(DATICERT_TIME), Verdict::Invalid);
    assert!(r.detail.contains("does not verify"), "{}", r.detail);
}

#[test]
fn ber_indefinite_length_is_accepted() {
    // Wrap the DER ContentInfo's outer SEQUENCE and [0] in indefinite lengths
    // as a streaming BER encoder (openssl smime -sign) would.
    let content = pec_content("");
    let der = signer().sign_detached(&content, Digest::Sha256).expect("sign");
    let strip = |d: &[u8]| -> Vec<u8> {
        let l = d[1];
        let hdr = if l < 0x80 { 2 } else { 2 + (l & 0x7f) as usize };
        d[hdr..].to_vec()
    };
    let inner = strip(&der); // OID + [0]{SignedData}
    let oid_len = 2 + inner[1] as usize;
    let (oid, explicit) = inner.split_at(oid_len);
    let sd = strip(explicit);
    let mut ber = vec![0x30, 0x80];
    ber.extend_from_slice(oid);
    ber.extend_from_slice(&[0xa0, 0x80]);
    ber.extend_from_slice(&sd);
    ber.extend_from_slice(&[0, 0, 0, 0]);
    let m = message(&content, Some(&ber), PKCS7, "sha-256");
    check(&m, at(DATICERT_TIME), Verdict::Valid);
}

#[test]
fn test_signer_rejects_mismatched_key() {
    assert!(TestSigner::from_pem(sign::CA_PEM, OTHER_SIGNER_CERT_PEM, EXPIRED_SIGNER_KEY_PEM).is_err());
    assert!(TestSigner::from_pem(sign::CA_PEM, "", EXPIRED_SIGNER_KEY_PEM).is_err());
}

/// Writes a signed message for checking by hand with
/// `openssl smime -verify -noverify -in msg.eml -inform SMIME`.
#[test]
#[ignore]
fn write_sample_for_openssl() {
    let dir = std::env::var("SMIME_SAMPLE_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    for (name, d) in [("sha256", Digest::Sha256), ("sha1", Digest::Sha1)] {
        let path = format!("{dir}/pecgate-sample-{name}.eml");
        std::fs::write(&path, signed_message(signer(), &pec_content(""), d, PKCS7)).expect("write");
        println!("{path}");
    }
}

/// `cargo test --release -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    let n = 1000;
    let msgs: Vec<Vec<u8>> =
        (0..n).map(|i| signed_message(signer(), &pec_content(&format!("messaggio numero {i}")), Digest::Sha256, PKCS7)).collect();
    let when = at(DATICERT_TIME);
    let start = std::time::Instant::now();
    for m in &msgs {
        assert_eq!(verify(m, trust(), when).verdict, Verdict::Valid);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("verified {n} messages in {secs:.3} s: {:.0} messages/s (one thread)", n as f64 / secs);
}

proptest! {
    // 256 cases each by default; PROPTEST_CASES=N for a longer run.

    #[test]
    fn never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = verify(&raw, trust(), None);
    }

    #[test]
    fn never_panics_on_arbitrary_multipart_signed(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut raw = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=B\r\n\r\n--B\r\nx\r\n--B\r\nContent-Type: application/pkcs7-signature\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        let r = verify(&raw, trust(), None);
        prop_assert_eq!(r.verdict, Verdict::Malformed);
    }

    #[test]
    fn mutated_valid_messages(ops in proptest::collection::vec((0usize..4, any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut m = valid_message().to_vec();
        for (op, idx, byte) in ops {
            if m.is_empty() {
                break;
            }
            let i = idx.index(m.len());
            match op {
                0 => m[i] = byte,
                1 => { m.remove(i); }
                2 => m.insert(i, byte),
                _ => m.truncate(i),
            }
        }
        let r = verify(&m, trust(), at(DATICERT_TIME));
        // Valid only if the signed bytes survived (possibly as bare LF).
        if r.verdict == Verdict::Valid {
            let content = pec_content("");
            let found = |hay: &[u8]| hay.windows(content.len()).any(|w| w == content.as_slice());
            prop_assert!(found(&m) || found(&mime::bare_lf_to_crlf(&m)), "{}", r.detail);
        }
    }

    #[test]
    fn mutated_p7s(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
        static P7S: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
        let (content, p7s) = P7S.get_or_init(|| {
            let c = pec_content("");
            let p = signer().sign_detached(&c, Digest::Sha256).expect("sign");
            (c, p)
        });
        let mut p = p7s.clone();
        let i = idx.index(p.len());
        p[i] = byte;
        let r = verify(&message(content, Some(&p), PKCS7, "sha-256"), trust(), at(DATICERT_TIME));
        if p != *p7s {
            // A changed signature blob may still decode (e.g. unsigned fields),
            // but must never panic; most changes are Invalid or Malformed.
            prop_assert!(!r.detail.is_empty());
        }
    }
}

/// Messages written once by `openssl smime -sign` (OpenSSL 3.0) with the
/// TEST-ONLY signer, stored as openssl writes them (LF line ends): checks
/// interoperability without running openssl at test time.
#[test]
fn openssl_signed_fixtures() {
    let sha256 = include_bytes!("../testdata/TEST_ONLY_openssl_smime_sign_sha256_binary.eml");
    let sha1 = include_bytes!("../testdata/TEST_ONLY_openssl_smime_sign_sha1.eml");
    for (raw, digest) in [(&sha256[..], "sha256"), (&sha1[..], "sha1")] {
        let r = check(raw, at(DATICERT_TIME), Verdict::Valid);
        assert_eq!(r.digest.as_deref(), Some(digest));
        let mut bad = raw.to_vec();
        let pos = bad.windows(5).position(|w| w == b".riga").expect("dot line");
        bad.remove(pos);
        check(&bad, at(DATICERT_TIME), Verdict::Invalid);
    }
}

#[test]
fn unsupported_algorithms_are_malformed() {
    let content = pec_content("");
    let p7s = signer().sign_detached(&content, Digest::Sha256).expect("sign");
    let replace_all = |data: &[u8], from: &[u8], to: &[u8]| -> Vec<u8> {
        let mut out = data.to_vec();
        let mut i = 0;
        while i + from.len() <= out.len() {
            if &out[i..i + from.len()] == from {
                out[i..i + from.len()].copy_from_slice(to);
                i += from.len();
            } else {
                i += 1;
            }
        }
        out
    };
    // sha256 (2.16.840.1.101.3.4.2.1) -> sha224 (...2.4) as digest algorithm.
    let sha256 = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    let sha224 = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    let m = message(&content, Some(&replace_all(&p7s, &sha256, &sha224)), PKCS7, "sha-256");
    let r = check(&m, at(DATICERT_TIME), Verdict::Malformed);
    assert!(r.detail.contains("unsupported digest algorithm"), "{}", r.detail);
    // sha256WithRSAEncryption (1.2.840.113549.1.1.11) -> RSASSA-PSS (...1.1.10).
    let rsa_sha256 = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    let pss = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    let m = message(&content, Some(&replace_all(&p7s, &rsa_sha256, &pss)), PKCS7, "sha-256");
    let r = check(&m, at(DATICERT_TIME), Verdict::Malformed);
    assert!(r.detail.contains("unsupported signature algorithm"), "{}", r.detail);
}

/// The signer's address is compared with the sender's domain (the top-level
/// From, outside the signature): a mismatch is told, the verdict stands.
#[test]
fn a_signer_at_another_domain_is_noted() {
    let r = check(valid_message(), at(DATICERT_TIME), Verdict::Valid);
    assert!(
        r.detail.ends_with("; note: the signer's address posta-certificata@pec.sim.invalid is not at the sender's domain pec.example"),
        "{}",
        r.detail
    );
    let own =
        String::from_utf8_lossy(valid_message()).replacen("<posta-certificata@pec.example>", "<posta-certificata@pec.sim.invalid>", 1);
    let r = check(own.as_bytes(), at(DATICERT_TIME), Verdict::Valid);
    assert!(!r.detail.contains("note:"), "{}", r.detail);
    assert_eq!(r.signer_address.as_deref(), Some("posta-certificata@pec.sim.invalid"));
}
