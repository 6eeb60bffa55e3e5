//! Trust store and a small certification path check (x509-cert does no path
//! validation): issuer/subject name match, each certificate's signature by its
//! issuer's RSA key, basicConstraints CA on issuers, validity at a given time.
//! No revocation (CRL/OCSP) checking.

use chrono::{DateTime, Utc};
use der::{Decode, Encode};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::DecodePublicKey;
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use super::{Error, Result};

/// Longest chain followed from the signer to a trust anchor.
const MAX_CHAIN: usize = 8;

pub(super) const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Hash algorithms accepted for digests and RSA PKCS#1 v1.5 signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// From a digest algorithm OID.
    pub(super) fn from_digest_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.3.14.3.2.26" => Some(Self::Sha1),
            "2.16.840.1.101.3.4.2.1" => Some(Self::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(Self::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// From a `*WithRSAEncryption` signature algorithm OID.
    pub(super) fn from_rsa_sig_oid(oid: &str) -> Option<Self> {
        match oid {
            "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => Some(Self::Sha1),
            "1.2.840.113549.1.1.11" => Some(Self::Sha256),
            "1.2.840.113549.1.1.12" => Some(Self::Sha384),
            "1.2.840.113549.1.1.13" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    pub(super) fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn scheme(self) -> Pkcs1v15Sign {
        match self {
            Self::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            Self::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            Self::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            Self::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }
}

/// RSA PKCS#1 v1.5 verification of `sig` over `msg`.
///
/// rsa 0.9 carries RUSTSEC-2023-0071 (Marvin attack): a timing side channel
/// in private-key operations (decryption, signing). Verification uses only
/// the public key and is not affected.
pub(super) fn rsa_verify(key: &RsaPublicKey, hash: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
    key.verify(hash.scheme(), &hash.digest(msg), sig).is_ok()
}

/// The RSA public key of `cert`, if it has one (rsa rejects moduli over 4096
/// bits, so hostile keys cannot make verification slow).
pub(super) fn rsa_key(cert: &Certificate) -> Option<RsaPublicKey> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
        return None;
    }
    RsaPublicKey::from_public_key_der(&spki.to_der().ok()?).ok()
}

/// Whether `cert`'s signature verifies with `issuer_key`.
fn signed_by(cert: &Certificate, issuer_key: &RsaPublicKey) -> bool {
    let Some(hash) = HashAlg::from_rsa_sig_oid(&cert.signature_algorithm.oid.to_string()) else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    match cert.tbs_certificate.to_der() {
        Ok(tbs) => rsa_verify(issuer_key, hash, &tbs, sig),
        Err(_) => false,
    }
}

fn is_ca(cert: &Certificate) -> bool {
    matches!(cert.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca)
}

pub(super) fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// `(notBefore, notAfter)` of `cert`.
pub(super) fn validity(cert: &Certificate) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let v = &cert.tbs_certificate.validity;
    let conv = |t: &x509_cert::time::Time| {
        let d = t.to_unix_duration();
        i64::try_from(d.as_secs()).ok().and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    };
    (conv(&v.not_before), conv(&v.not_after))
}

struct Anchor {
    cert: Certificate,
    der: Vec<u8>,
    key: Option<RsaPublicKey>,
}

/// Trusted CA certificates (trust anchors).
#[derive(Default)]
pub struct TrustStore {
    anchors: Vec<Anchor>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.anchors.iter().map(|a| subject(&a.cert))).finish()
    }
}

impl TrustStore {
    /// Every `CERTIFICATE` PEM block in `pem` (other blocks and text between
    /// blocks are ignored). Fails when a block does not decode or none is found.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let mut store = Self::empty();
        for der in pem_certificates(pem)? {
            store.add_der(&der)?;
        }
        if store.anchors.is_empty() {
            return Err(Error::Pem("no CERTIFICATE block found".into()));
        }
        Ok(store)
    }

    /// A store that trusts nothing: every good signature is `ValidUntrustedSigner`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds one DER certificate as a trust anchor.
    pub fn add_der(&mut self, der: &[u8]) -> Result<()> {
        let cert = Certificate::from_der(der)?;
        let key = rsa_key(&cert);
        self.anchors.push(Anchor { cert, der: der.to_vec(), key });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// The DER of every `CERTIFICATE` block in `pem` (x509-cert's
/// `load_pem_chain` panics on empty input, so this is done here).
pub(super) fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(b) = rest.find(BEGIN) {
        let after = &rest[b + BEGIN.len()..];
        let e = after.find(END).ok_or_else(|| Error::Pem("unterminated CERTIFICATE block".into()))?;
        let clean: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        let der =
            base64::engine::general_purpose::STANDARD.decode(clean).map_err(|_| Error::Pem("bad base64 in CERTIFICATE block".into()))?;
        out.push(der);
        rest = &after[e + END.len()..];
    }
    Ok(out)
}

/// Outcome of building a path from the signer to the trust store.
pub(super) enum Chain<'a> {
    /// Certificates from the signer up to and including the trust anchor.
    Trusted(Vec<&'a Certificate>),
    /// Why no path was found.
    Untrusted(String),
}

/// Builds a path from `signer` through the `pool` (certificates carried in the
/// message) to a trust anchor of `trust`.
pub(super) fn build<'a>(signer: &'a Certificate, pool: &'a [Certificate], trust: &'a TrustStore) -> Chain<'a> {
    if let Ok(der) = signer.to_der()
        && trust.anchors.iter().any(|a| a.der == der)
    {
        return Chain::Trusted(vec![signer]);
    }
    let mut path = vec![signer];
    let mut current = signer;
    let mut why = None;
    for _ in 0..MAX_CHAIN {
        let issuer = &current.tbs_certificate.issuer;
        // A trust anchor that issued `current`?
        let mut named = false;
        for a in trust.anchors.iter().filter(|a| &a.cert.tbs_certificate.subject == issuer) {
            named = true;
            if !is_ca(&a.cert) {
                why.get_or_insert_with(|| format!("trusted certificate {} is not a CA (basicConstraints)", subject(&a.cert)));
                continue;
            }
            if a.key.as_ref().is_some_and(|k| signed_by(current, k)) {
                path.push(&a.cert);
                return Chain::Trusted(path);
            }
            why.get_or_insert_with(|| format!("signature of {} by trusted CA {} does not verify", subject(current), subject(&a.cert)));
        }
        // An intermediate CA carried in the message?
        let next = pool.iter().find(|c| {
            &c.tbs_certificate.subject == issuer
                && !path.iter().any(|p| std::ptr::eq(*p, *c))
                && is_ca(c)
                && rsa_key(c).is_some_and(|k| signed_by(current, &k))
        });
        match next {
            Some(c) => {
                path.push(c);
                current = c;
            }
            None => {
                return Chain::Untrusted(why.unwrap_or_else(|| {
                    if named {
                        format!("no valid issuer for {}", subject(current))
                    } else {
                        format!("signer CA not in trust store (issuer {issuer})")
                    }
                }));
            }
        }
    }
    Chain::Untrusted(format!("certificate chain longer than {MAX_CHAIN}"))
}
