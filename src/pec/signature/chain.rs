//! Trust store and a small certification path check (x509-cert does no path
//! validation): issuer/subject name match, each certificate's signature by its
//! issuer's RSA key, basicConstraints CA on issuers, validity at a given time.
//! Revocation is checked on the path found, in `revocation` (CRL).

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

    /// A hasher fed in pieces (a signed part read back from the spool).
    pub(super) fn hasher(self) -> Box<dyn sha2::digest::DynDigest> {
        match self {
            Self::Sha1 => Box::new(sha1::Sha1::default()),
            Self::Sha256 => Box::new(sha2::Sha256::default()),
            Self::Sha384 => Box::new(sha2::Sha384::default()),
            Self::Sha512 => Box::new(sha2::Sha512::default()),
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
    rsa_verify_digest(key, hash, &hash.digest(msg), sig)
}

/// [`rsa_verify`] of a message already hashed with `hash`.
pub(super) fn rsa_verify_digest(key: &RsaPublicKey, hash: HashAlg, digest: &[u8], sig: &[u8]) -> bool {
    key.verify(hash.scheme(), digest, sig).is_ok()
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
    /// Where it came from: "built-in" or the file it was read from.
    source: String,
}

/// The built-in anchors: AgID CA1 (provenance and fingerprint in the file).
const BUILTIN_PEM: &str = include_str!("anchors/agid-ca1.pem");

/// How long before an anchor's notAfter the admin is warned.
pub const EXPIRY_WARNING_DAYS: i64 = 90;

/// One trust anchor, as `pecgate trust show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorInfo {
    pub subject: String,
    /// SHA-256 of the DER, upper-case hex pairs joined by ':' (as openssl prints it).
    pub sha256: String,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    pub source: String,
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
        Self::from_pem_labelled(pem, "file")
    }

    /// [`TrustStore::from_pem`] with the source shown by [`TrustStore::anchors`].
    pub fn from_pem_labelled(pem: &str, source: &str) -> Result<Self> {
        let mut store = Self::empty();
        for der in pem_certificates(pem)? {
            store.add_der(&der)?;
            if let Some(a) = store.anchors.last_mut() {
                a.source = source.to_string();
            }
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

    /// The anchors built into pecgate, used when `[pec] builtin_anchors` is on
    /// (the default): AgID CA1, which issues every accredited provider's
    /// signing certificate.
    pub fn builtin() -> Self {
        // The PEM is a constant checked by the tests: it cannot fail at run time.
        Self::from_pem_labelled(BUILTIN_PEM, "built-in").unwrap_or_default()
    }

    /// Adds the anchors of `other` not already present (same DER).
    pub fn extend(&mut self, other: TrustStore) {
        for a in other.anchors {
            if !self.anchors.iter().any(|have| have.der == a.der) {
                self.anchors.push(a);
            }
        }
    }

    /// Adds one DER certificate as a trust anchor.
    pub fn add_der(&mut self, der: &[u8]) -> Result<()> {
        let cert = Certificate::from_der(der)?;
        let key = rsa_key(&cert);
        self.anchors.push(Anchor { cert, der: der.to_vec(), key, source: "added".into() });
        Ok(())
    }

    /// One line per anchor that expires within [`EXPIRY_WARNING_DAYS`] of `now`
    /// (or has expired), saying what to do.
    pub fn expiry_warnings(&self, now: DateTime<Utc>) -> Vec<String> {
        self.anchors()
            .into_iter()
            .filter_map(|a| {
                let end = a.not_after?;
                let days = (end - now).num_days();
                let when = end.format("%Y-%m-%d");
                if days < 0 {
                    Some(format!("trust anchor {} ({}) expired on {when}: receipts dated after that read invalid; add its successor to [pec] trust_store (see `pecgate trust show`)", a.subject, a.source))
                } else if days <= EXPIRY_WARNING_DAYS {
                    Some(format!("trust anchor {} ({}) expires on {when}, in {days} days: add its successor to [pec] trust_store, taken from a recent signed receipt (see `pecgate trust show`)", a.subject, a.source))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Every anchor: subject, fingerprint, validity, source.
    pub fn anchors(&self) -> Vec<AnchorInfo> {
        use sha2::Digest as _;
        self.anchors
            .iter()
            .map(|a| {
                let (not_before, not_after) = validity(&a.cert);
                let sha256 = sha2::Sha256::digest(&a.der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
                AnchorInfo { subject: subject(&a.cert), sha256, not_before, not_after, source: a.source.clone() }
            })
            .collect()
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
