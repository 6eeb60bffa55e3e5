//! Revocation of the signer certificate through the CRL of its issuer
//! (RFC 5280 §5), pure: the CRL bytes come from a [`CrlSource`] that the
//! caller fills (a cache on disk, a directory of CRL files for air-gapped
//! hosts); nothing here does I/O.
//!
//! What counts: the CRL's issuer name is the certificate's issuer, its
//! signature verifies with the issuer's key (the key that the chain check
//! already trusted), and it is current (`thisUpdate <= now <= nextUpdate`).
//! A certificate listed with a revocation date at or before the signing
//! (daticert) time is revoked; one revoked later was good when it signed,
//! which is what evidence needs, and the detail says so. Anything that does
//! not let us decide (no distribution point, CRL not fetched, stale, badly
//! signed, unreadable) is `unknown`, never `good`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::CrlDistributionPoints;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

use super::chain::{self, HashAlg};

/// CRL bytes by distribution-point URL, as the caller has them now.
pub trait CrlSource: Send + Sync {
    /// The CRLs (DER or PEM) that may answer for `url`: the one last fetched
    /// from it, or, from a directory of CRL files, every file (those of other
    /// issuers are skipped).
    fn crls(&self, url: &str) -> Vec<Arc<[u8]>>;
}

/// The revocation answer for a signer certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Not asked (`[pec] revocation = "off"`, or no chain to check against).
    NotChecked(String),
    /// Listed nowhere as revoked before the signing time, by a current CRL.
    Good(String),
    /// Revoked at or before the signing time: the signature is not evidence.
    Revoked { at: DateTime<Utc>, detail: String },
    /// The answer could not be known; why.
    Unknown(String),
}

impl Revocation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Revocation::NotChecked(_) => "not-checked",
            Revocation::Good(_) => "good",
            Revocation::Revoked { .. } => "revoked",
            Revocation::Unknown(_) => "unknown",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Revocation::NotChecked(d) | Revocation::Good(d) | Revocation::Unknown(d) => d,
            Revocation::Revoked { detail, .. } => detail,
        }
    }
}

/// The URIs of the CRL distribution points of `cert` (fullName only).
pub fn crl_urls(cert: &Certificate) -> Vec<String> {
    let Ok(Some((_, points))) = cert.tbs_certificate.get::<CrlDistributionPoints>() else { return Vec::new() };
    let mut urls = Vec::new();
    for point in points.0 {
        if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
            for name in names {
                if let GeneralName::UniformResourceIdentifier(uri) = name {
                    urls.push(uri.to_string());
                }
            }
        }
    }
    urls
}

/// Checks `cert` (issued by `issuer`) against the CRL bytes `crl`, for a
/// signature made at `at`, the CRL being judged current at `now`.
pub fn check_crl(crl: &[u8], issuer: &Certificate, cert: &Certificate, at: DateTime<Utc>, now: DateTime<Utc>, url: &str) -> Revocation {
    let unknown = |why: String| Revocation::Unknown(format!("CRL {url}: {why}"));
    let der = match pem_or_der(crl) {
        Some(d) => d,
        None => return unknown("not a CRL (neither DER nor PEM X509 CRL)".into()),
    };
    let list = match CertificateList::from_der(&der) {
        Ok(l) => l,
        Err(e) => return unknown(format!("unreadable: {e}")),
    };
    let tbs = &list.tbs_cert_list;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return unknown(format!("issued by {}, not by the certificate's issuer {}", tbs.issuer, chain::subject(issuer)));
    }
    let sig_oid = list.signature_algorithm.oid.to_string();
    let signed = match (HashAlg::from_rsa_sig_oid(&sig_oid), chain::rsa_key(issuer), list.signature.as_bytes(), tbs.to_der()) {
        (Some(hash), Some(key), Some(sig), Ok(tbs_der)) => chain::rsa_verify(&key, hash, &tbs_der, sig),
        (None, ..) => return unknown(format!("unsupported signature algorithm {sig_oid}")),
        _ => false,
    };
    if !signed {
        return unknown(format!("signature does not verify with the key of {}", chain::subject(issuer)));
    }
    let this_update = to_utc(&tbs.this_update);
    if this_update.is_none_or(|t| t > now) {
        return unknown(format!("not yet valid (thisUpdate {})", fmt(this_update)));
    }
    let next_update = tbs.next_update.as_ref().and_then(to_utc);
    match next_update {
        Some(next) if next >= now => {}
        _ => return unknown(format!("stale (nextUpdate {}), a newer one is needed", fmt(next_update))),
    }
    let serial = &cert.tbs_certificate.serial_number;
    let listed = tbs.revoked_certificates.iter().flatten().find(|r| &r.serial_number == serial);
    let issued = format!("CRL {url} of {}, thisUpdate {}", chain::subject(issuer), fmt(this_update));
    match listed.map(|r| to_utc(&r.revocation_date)) {
        None => Revocation::Good(format!("not revoked ({issued})")),
        Some(Some(revoked)) if revoked <= at => Revocation::Revoked {
            at: revoked,
            detail: format!("revoked at {}, before the signing time {} ({issued})", fmt(Some(revoked)), fmt(Some(at))),
        },
        Some(Some(revoked)) => Revocation::Good(format!(
            "revoked at {}, after the signing time {}: it was valid when it signed ({issued})",
            fmt(Some(revoked)),
            fmt(Some(at))
        )),
        Some(None) => unknown("listed with an unreadable revocation date".into()),
    }
}

/// The revocation answer for the signer of a trusted `path` (signer first,
/// then its issuer), from whatever CRLs `source` holds.
pub(super) fn check_path(path: &[&Certificate], source: &dyn CrlSource, at: DateTime<Utc>, now: DateTime<Utc>) -> Revocation {
    let [signer, issuer, ..] = path else {
        return Revocation::NotChecked("the signer certificate is itself a trust anchor".into());
    };
    let urls = crl_urls(signer);
    if urls.is_empty() {
        return Revocation::Unknown("the signer certificate names no CRL distribution point".into());
    }
    let mut reasons = Vec::new();
    for url in &urls {
        let mut candidates = source.crls(url);
        // Only the issuer's own CRLs speak for it (a directory holds others too).
        if candidates.len() > 1 {
            candidates.retain(|c| issued_by(c, issuer));
        }
        if candidates.is_empty() {
            reasons.push(format!("CRL {url}: not fetched yet"));
        }
        for bytes in candidates {
            match check_crl(&bytes, issuer, signer, at, now, url) {
                Revocation::Unknown(why) => reasons.push(why),
                decided => return decided,
            }
        }
    }
    Revocation::Unknown(reasons.join("; "))
}

/// Whether `crl` names `issuer` as its issuer (signature not checked here).
fn issued_by(crl: &[u8], issuer: &Certificate) -> bool {
    pem_or_der(crl)
        .and_then(|der| CertificateList::from_der(&der).ok())
        .is_some_and(|l| l.tbs_cert_list.issuer == issuer.tbs_certificate.subject)
}

fn pem_or_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("-----BEGIN X509 CRL-----")? + "-----BEGIN X509 CRL-----".len();
    let end = start + text[start..].find("-----END X509 CRL-----")?;
    let der = super::mime::base64_decode_lenient(&text.as_bytes()[start..end]);
    (!der.is_empty()).then_some(der)
}

fn to_utc(t: &x509_cert::time::Time) -> Option<DateTime<Utc>> {
    i64::try_from(t.to_unix_duration().as_secs()).ok().and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
}

fn fmt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "unreadable".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// No CRLs at all: every answer is `unknown`.
pub struct NoCrls;

impl CrlSource for NoCrls {
    fn crls(&self, _url: &str) -> Vec<Arc<[u8]>> {
        Vec::new()
    }
}
