//! The built-in anchor against the certificates of a real PEC signature
//! (Namirial, 2024), and name constraints on certificates made here.

use chrono::{TimeZone, Utc};
use der::Decode;
use x509_cert::Certificate;

use super::chain::{self, Chain, TrustStore, pem_certificates};
use super::constraints;

const AGID_SHA256: &str = "32:32:2A:E2:E3:1A:74:30:BE:1D:6C:04:BD:8C:AB:FB:D2:40:C7:4D:2C:9D:BE:82:78:0D:B1:F3:F7:36:60:A6";

fn namirial_chain() -> Vec<Certificate> {
    let pem = include_str!("../../../tests/fixtures/pki/namirial-2024-chain.pem");
    pem_certificates(pem).unwrap().iter().map(|der| Certificate::from_der(der).unwrap()).collect()
}

#[test]
fn the_builtin_anchor_is_agid_ca1() {
    let anchors = TrustStore::builtin().anchors();
    assert_eq!(anchors.len(), 1);
    let a = &anchors[0];
    assert!(a.subject.starts_with("CN=AgID CA1,"), "{}", a.subject);
    assert_eq!(a.sha256, AGID_SHA256);
    assert_eq!(a.source, "built-in");
    assert_eq!(a.not_after, Some(Utc.with_ymd_and_hms(2030, 9, 22, 11, 22, 2).unwrap()));
}

#[test]
fn expiry_is_warned_90_days_ahead() {
    let trust = TrustStore::builtin();
    assert!(trust.expiry_warnings(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()).is_empty());
    let soon = trust.expiry_warnings(Utc.with_ymd_and_hms(2030, 7, 1, 0, 0, 0).unwrap());
    assert_eq!(soon.len(), 1);
    assert!(soon[0].contains("expires on 2030-09-22, in 83 days"), "{}", soon[0]);
    let late = trust.expiry_warnings(Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap());
    assert!(late[0].contains("expired on 2030-09-22"), "{}", late[0]);
}

/// The provider certificate of a real Namirial envelope chains to the built-in
/// anchor (the AgID CA1 copy it carries is the anchor itself), its address is
/// inside AgID CA1's name constraints and it is an S/MIME signing certificate.
#[test]
fn a_real_provider_certificate_chains_to_agid_ca1() {
    let certs = namirial_chain();
    let trust = TrustStore::builtin();
    for pool in [&certs[..], &certs[..1]] {
        let Chain::Trusted(path) = chain::build(&certs[0], pool, &trust) else { panic!("no path from the Namirial certificate") };
        assert_eq!(path.len(), 2);
        assert!(chain::subject(path[1]).starts_with("CN=AgID CA1,"));
        assert_eq!(constraints::name_problem(&path), None);
    }
    assert_eq!(constraints::emails(&certs[0]), ["posta-certificata@sicurezzapostale.it"]);
    assert_eq!(constraints::usage_problem(&certs[0]), None);
    let Chain::Untrusted(why) = chain::build(&certs[0], &certs, &TrustStore::empty()) else { panic!("trusted without anchors") };
    assert!(why.contains("not in trust store"), "{why}");
}

/// AgID CA1 lists the providers' domains and organisations: the same subject
/// with an address at another domain, or another organisation, is refused.
#[test]
fn agid_name_constraints_refuse_other_domains_and_organisations() {
    let agid = namirial_chain().remove(1);
    let make = |org: &str, email: &str| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "IT");
        params.distinguished_name.push(rcgen::DnType::StateOrProvinceName, "Ancona");
        params.distinguished_name.push(rcgen::DnType::LocalityName, "Senigallia");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, org);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Posta Certificata");
        params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
        let key = rcgen::KeyPair::generate().unwrap();
        Certificate::from_der(params.self_signed(&key).unwrap().der()).unwrap()
    };
    let good = make("Namirial S.p.A.", "posta-certificata@sicurezzapostale.it");
    assert_eq!(constraints::name_problem(&[&good, &agid]), None);
    let domain = make("Namirial S.p.A.", "posta-certificata@pec.truffa.it");
    let why = constraints::name_problem(&[&domain, &agid]).expect("outside the permitted domains");
    assert!(why.contains("posta-certificata@pec.truffa.it is outside the domains"), "{why}");
    let org = make("Truffa S.r.l.", "posta-certificata@sicurezzapostale.it");
    let why = constraints::name_problem(&[&org, &agid]).expect("outside the permitted organisations");
    assert!(why.contains("outside the organisations"), "{why}");
}

/// A CA whose constraints permit one domain; excluded subtrees win.
#[test]
fn rfc822_constraints_of_a_test_ca() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::Rfc822Name(".pec.example.it".into())],
        excluded_subtrees: vec![rcgen::GeneralSubtree::Rfc822Name("bad.pec.example.it".into())],
    });
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |email: &str, eku: rcgen::ExtendedKeyUsagePurpose| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
        p.extended_key_usages = vec![eku];
        let key = rcgen::KeyPair::generate().unwrap();
        Certificate::from_der(p.signed_by(&key, &issuer).unwrap().der()).unwrap()
    };
    let ca_x509 = Certificate::from_der(ca_cert.der()).unwrap();
    let mail = rcgen::ExtendedKeyUsagePurpose::EmailProtection;
    let ok = leaf("posta@a.pec.example.it", mail.clone());
    assert_eq!(constraints::name_problem(&[&ok, &ca_x509]), None);
    assert_eq!(constraints::usage_problem(&ok), None);
    let excluded = leaf("posta@bad.pec.example.it", mail.clone());
    assert!(constraints::name_problem(&[&excluded, &ca_x509]).is_some_and(|w| w.contains("excluded")));
    let outside = leaf("posta@pec.example.it", mail);
    assert!(constraints::name_problem(&[&outside, &ca_x509]).is_some_and(|w| w.contains("outside")));
    let tls_only = leaf("posta@a.pec.example.it", rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    assert!(constraints::usage_problem(&tls_only).is_some_and(|w| w.contains("e-mail protection")));
}

#[test]
fn the_sender_domain_of_a_from_value() {
    let cases = [
        ("\"Per conto di: altea.l@namirialpec.it\" <posta-certificata@sicurezzapostale.it>", Some("sicurezzapostale.it")),
        ("posta-certificata@PEC.Aruba.it", Some("pec.aruba.it")),
        ("<a@b.it.>", Some("b.it")),
        ("nessuno", None),
        ("", None),
    ];
    for (from, want) in cases {
        assert_eq!(super::sender_domain(from).as_deref(), want, "{from}");
    }
}
