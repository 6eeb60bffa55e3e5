//! CRL checking against a test PKI made with rcgen: an RSA CA (the test
//! signer's key, so the CMS signature can be made), a leaf that names a CRL
//! distribution point, and CRLs good, revoked, stale and badly signed.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use der::Decode;
use x509_cert::Certificate;

use super::revocation::{CrlSource, NoCrls, Revocation, check_crl, crl_urls};
use super::tests::{DATICERT_TIME, pec_content, signed_message};
use super::{Digest, TestSigner, TrustStore, Verdict, sign, verify_with};

const URL: &str = "http://127.0.0.1:9/ca.crl";
const LEAF_SERIAL: u64 = 4242;

struct Pki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_cert: Certificate,
    ca_pem: String,
    leaf: Certificate,
    leaf_pem: String,
}

fn rsa_key() -> rcgen::KeyPair {
    rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(sign::SIGNER_KEY_PEM, &rcgen::PKCS_RSA_SHA256).expect("test RSA key")
}

fn pki() -> Pki {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "Test CRL CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    ca.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let ca_key = rsa_key();
    let ca_rc = ca.self_signed(&ca_key).unwrap();
    let ca_cert = Certificate::from_der(ca_rc.der()).unwrap();
    let ca_pem = ca_rc.pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    // The leaf carries the same RSA key, so TestSigner can sign with it.
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "Posta Certificata Test");
    leaf.serial_number = Some(LEAF_SERIAL.into());
    leaf.subject_alt_names = vec![rcgen::SanType::Rfc822Name("posta-certificata@pec.example".try_into().unwrap())];
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::EmailProtection];
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::ContentCommitment];
    leaf.crl_distribution_points = vec![rcgen::CrlDistributionPoint { uris: vec![URL.into()] }];
    leaf.not_before = rcgen::date_time_ymd(2025, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let leaf_rc = leaf.signed_by(&rsa_key(), &issuer).unwrap();
    Pki { ca: issuer, ca_cert, ca_pem, leaf: Certificate::from_der(leaf_rc.der()).unwrap(), leaf_pem: leaf_rc.pem() }
}

/// A CRL of `issuer` valid from `this` to `next`, listing `revoked` (serial, date).
fn crl(
    issuer: &rcgen::Issuer<'_, impl rcgen::SigningKey>,
    this: (i32, u8, u8),
    next: (i32, u8, u8),
    revoked: &[(u64, (i32, u8, u8))],
) -> Vec<u8> {
    let params = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(this.0, this.1, this.2),
        next_update: rcgen::date_time_ymd(next.0, next.1, next.2),
        crl_number: 1u64.into(),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, (y, m, d))| rcgen::RevokedCertParams {
                serial_number: (*serial).into(),
                revocation_time: rcgen::date_time_ymd(*y, *m, *d),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).unwrap().der().to_vec()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn the_distribution_point_is_read() {
    assert_eq!(crl_urls(&pki().leaf), [URL]);
}

#[test]
fn a_crl_says_good_revoked_or_unknown_and_never_good_when_in_doubt() {
    let p = pki();
    let (at, now) = (utc("2026-01-15T10:00:00Z"), utc("2026-01-20T00:00:00Z"));
    let check = |crl: &[u8], at, now| check_crl(crl, &p.ca_cert, &p.leaf, at, now, URL);
    let listed = crl(&p.ca, (2026, 1, 1), (2026, 2, 1), &[(7, (2025, 6, 1)), (LEAF_SERIAL, (2026, 1, 10))]);
    let r = check(&listed, at, now);
    assert!(matches!(r, Revocation::Revoked { at, .. } if at == utc("2026-01-10T00:00:00Z")), "{r:?}");
    // Revoked after it signed: it was valid then.
    let r = check(&listed, utc("2026-01-05T00:00:00Z"), now);
    assert!(matches!(&r, Revocation::Good(d) if d.contains("after the signing time")), "{r:?}");
    // Not listed.
    let clean = crl(&p.ca, (2026, 1, 1), (2026, 2, 1), &[(7, (2025, 6, 1))]);
    assert!(matches!(check(&clean, at, now), Revocation::Good(_)));
    // PEM is read too.
    let pem = format!(
        "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &clean)
    );
    assert!(matches!(check(pem.as_bytes(), at, now), Revocation::Good(_)));
    // Past nextUpdate: stale.
    let r = check(&clean, at, utc("2026-03-01T00:00:00Z"));
    assert!(matches!(&r, Revocation::Unknown(d) if d.contains("stale")), "{r:?}");
    // Signed by another key under the same name: never good.
    let mut impostor = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    impostor.distinguished_name = rcgen::DistinguishedName::new();
    impostor.distinguished_name.push(rcgen::DnType::CommonName, "Test CRL CA");
    impostor.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let forged = crl(&rcgen::Issuer::new(impostor, rcgen::KeyPair::generate().unwrap()), (2026, 1, 1), (2026, 2, 1), &[]);
    let r = check(&forged, at, now);
    assert!(
        matches!(&r, Revocation::Unknown(d) if d.contains("unsupported signature algorithm") || d.contains("does not verify")),
        "{r:?}"
    );
    // Garbage and truncation.
    assert!(matches!(check(b"not a crl", at, now), Revocation::Unknown(_)));
    assert!(matches!(check(&clean[..clean.len() / 2], at, now), Revocation::Unknown(_)));
}

struct Map(HashMap<String, Arc<[u8]>>);

impl CrlSource for Map {
    fn crls(&self, url: &str) -> Vec<Arc<[u8]>> {
        self.0.get(url).cloned().into_iter().collect()
    }
}

#[test]
fn a_revoked_signer_makes_the_verdict_invalid_and_a_missing_crl_leaves_it() {
    let p = pki();
    let signer = TestSigner::from_pem(&p.ca_pem, &p.leaf_pem, sign::SIGNER_KEY_PEM).expect("signer");
    let trust = TrustStore::from_pem(&p.ca_pem).unwrap();
    let raw = signed_message(&signer, &pec_content(""), Digest::Sha256, "application/pkcs7-signature");
    let daticert = DateTime::parse_from_rfc3339(DATICERT_TIME).unwrap();
    let (at, signed_at) = (Some(daticert), daticert.with_timezone(&Utc));
    // The CRL must be current now: a window around the test run.
    let today = Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        (d.year(), d.month() as u8, d.day() as u8)
    };
    let (from, to) = (ymd(today - chrono::Days::new(2)), ymd(today + chrono::Days::new(5)));
    let revoked_before = crl(&p.ca, from, to, &[(LEAF_SERIAL, ymd(signed_at.date_naive() - chrono::Days::new(1)))]);
    let clean = crl(&p.ca, from, to, &[]);

    let good = verify_with(&raw, &trust, at, Some(&Map(HashMap::from([(URL.to_string(), Arc::from(clean))]))));
    assert_eq!((good.verdict, good.revocation.as_str()), (Verdict::Valid, "good"), "{good:?}");
    assert_eq!(good.crl_urls, [URL]);

    let bad = verify_with(&raw, &trust, at, Some(&Map(HashMap::from([(URL.to_string(), Arc::from(revoked_before))]))));
    assert_eq!((bad.verdict, bad.revocation.as_str()), (Verdict::Invalid, "revoked"), "{bad:?}");
    assert!(bad.detail.contains("revoked at"), "{}", bad.detail);

    let unknown = verify_with(&raw, &trust, at, Some(&NoCrls));
    assert_eq!((unknown.verdict, unknown.revocation.as_str()), (Verdict::Valid, "unknown"), "{unknown:?}");
    assert!(unknown.revocation.detail().contains("not fetched yet"), "{unknown:?}");

    let off = verify_with(&raw, &trust, at, None);
    assert_eq!((off.verdict, off.revocation.as_str()), (Verdict::Valid, "not-checked"));
}

proptest::proptest! {
    #[test]
    fn crl_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        let p = pki_cached();
        let now = utc("2026-01-20T00:00:00Z");
        let r = check_crl(&bytes, &p.0, &p.1, now, now, URL);
        proptest::prop_assert!(matches!(r, Revocation::Unknown(_)));
    }
}

fn pki_cached() -> &'static (Certificate, Certificate) {
    static P: std::sync::OnceLock<(Certificate, Certificate)> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let p = pki();
        (p.ca_cert, p.leaf)
    })
}

/// The cost of the chain and CRL check per message, for the README:
/// `cargo test --release --lib measure_verifications -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_verifications_per_second() {
    let p = pki();
    let signer = TestSigner::from_pem(&p.ca_pem, &p.leaf_pem, sign::SIGNER_KEY_PEM).expect("signer");
    let trust = TrustStore::from_pem(&p.ca_pem).unwrap();
    let raw = signed_message(&signer, &pec_content(""), Digest::Sha256, "application/pkcs7-signature");
    let at = Some(DateTime::parse_from_rfc3339(DATICERT_TIME).unwrap());
    let today = Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        (d.year(), d.month() as u8, d.day() as u8)
    };
    // A CRL of 1,000 revoked serials: a CA's real list is of that order.
    let revoked: Vec<(u64, (i32, u8, u8))> = (1..=1000).map(|s| (s, ymd(today - chrono::Days::new(30)))).collect();
    let list = crl(&p.ca, ymd(today - chrono::Days::new(1)), ymd(today + chrono::Days::new(5)), &revoked);
    let warm = Map(HashMap::from([(URL.to_string(), Arc::from(list))]));
    let n = 300;
    let rate = |source: Option<&dyn CrlSource>| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(verify_with(&raw, &trust, at, source).verdict, Verdict::Valid);
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let (off, with_crl) = (rate(None), rate(Some(&warm)));
    println!("verifications/s on one core: {off:.0} without revocation, {with_crl:.0} with a warm 1,000-entry CRL");
}
