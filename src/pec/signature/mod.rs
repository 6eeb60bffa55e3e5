//! S/MIME (RFC 8551) multipart/signed verification for PEC messages, pure
//! Rust (RustCrypto: `cms`, `x509-cert`, `der`, `rsa`, `sha1`, `sha2`).
//!
//! [`verify`] finds the signed first part byte-for-byte, decodes the detached
//! CMS SignedData of the `smime.p7s` part, checks the messageDigest signed
//! attribute against the content (falling back to the canonical CRLF form for
//! messages stored with bare LF line ends), the RSA PKCS#1 v1.5 signature over
//! the signed attributes, then builds a path from the signer certificate to a
//! [`TrustStore`] CA and checks every certificate's validity at the daticert
//! time. RUSTSEC-2023-0071 (rsa 0.9, Marvin attack) concerns private-key
//! timing (decryption/signing) and does not affect verification.

#[cfg(test)]
mod anchor_tests;
mod ber;
mod chain;
mod constraints;
mod mime;
pub mod revocation;
#[cfg(test)]
mod revocation_tests;
mod sign;
#[cfg(test)]
mod tests;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

pub use chain::{AnchorInfo, TrustStore};
pub use revocation::{CrlSource, NoCrls, Revocation};
pub use sign::{Digest, TestSigner};

use chain::{Chain, HashAlg};

use crate::pec::skeleton::Skeleton;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

/// Errors of the fallible constructors (trust store, test signer).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PEM: {0}")]
    Pem(String),
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    #[error("key: {0}")]
    Key(String),
    #[error("CMS: {0}")]
    Cms(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Outcome of a signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Signature good, signer chains to the trust store, all valid at the time.
    Valid,
    /// Signature good, but no path to a trusted CA.
    ValidUntrustedSigner,
    /// Content altered, bad signature, or a certificate not valid at the time.
    Invalid,
    /// No top-level multipart/signed.
    Unsigned,
    /// multipart/signed that cannot be checked (missing/garbled signature part,
    /// bad DER, no signer, unsupported algorithm).
    Malformed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::ValidUntrustedSigner => "valid-untrusted-signer",
            Verdict::Invalid => "invalid",
            Verdict::Unsigned => "unsigned",
            Verdict::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`verify`] found. The signer fields are filled whenever the signer
/// certificate could be identified, whatever the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureReport {
    pub verdict: Verdict,
    /// Signer certificate subject, RFC 4514 order (`CN=...,O=...`).
    pub signer: Option<String>,
    /// `"sha1"`, `"sha256"` (also `"sha384"`, `"sha512"`).
    pub digest: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    /// DER of the signer certificate, for evidence bundles.
    pub signer_cert_der: Option<Vec<u8>>,
    /// The signer certificate's address (subjectAltName), e.g.
    /// `posta-certificata@sicurezzapostale.it`.
    pub signer_address: Option<String>,
    /// Subjects from the signer up to the trust anchor, when a path was found.
    pub chain: Vec<String>,
    /// The signer certificate's CRL distribution points (what a cache should fetch).
    pub crl_urls: Vec<String>,
    /// The signer certificate's revocation status at the signing time.
    pub revocation: Revocation,
    /// One line: why.
    pub detail: String,
}

impl SignatureReport {
    fn new(verdict: Verdict, detail: impl Into<String>) -> Self {
        SignatureReport {
            verdict,
            signer: None,
            digest: None,
            not_before: None,
            not_after: None,
            signer_cert_der: None,
            signer_address: None,
            chain: Vec::new(),
            crl_urls: Vec::new(),
            revocation: Revocation::NotChecked("revocation not asked".into()),
            detail: detail.into(),
        }
    }
}

type Outcome = std::result::Result<(Verdict, String), (Verdict, String)>;

fn malformed(detail: impl Into<String>) -> (Verdict, String) {
    (Verdict::Malformed, detail.into())
}

/// Verifies the S/MIME signature of a raw RFC 5322 message. `at` is the time
/// at which certificate validity is checked (the daticert time); `None`
/// means now. Never panics. Revocation is not checked (see [`verify_with`]).
pub fn verify(raw: &[u8], trust: &TrustStore, at: Option<DateTime<FixedOffset>>) -> SignatureReport {
    verify_with(raw, trust, at, None)
}

/// [`verify`], and with `crls` the signer's revocation from the CRLs it
/// holds: revoked at or before `at` makes the verdict `invalid`; a CRL
/// missing, stale or badly signed leaves the verdict and says `unknown`.
pub fn verify_with(raw: &[u8], trust: &TrustStore, at: Option<DateTime<FixedOffset>>, crls: Option<&dyn CrlSource>) -> SignatureReport {
    verify_in(raw, Signed::InMemory, trust, at, crls)
}

/// Reads bytes of the stored message, for [`verify_stored`].
pub trait StoredBytes {
    /// Calls `each` with the bytes `start..end` of the stored message, in order.
    fn read_range(&self, start: u64, end: u64, each: &mut dyn FnMut(&[u8])) -> std::io::Result<()>;
}

/// [`verify_with`] for a big message held as a [`Skeleton`]: the CMS and
/// the MIME structure are read from the skeleton, and the signed part's
/// digest from the stored message, in chunks.
/// `None` when the skeleton lacks bytes the check reads itself (the
/// top-level headers or the signature part, each far below what a skeleton
/// keeps): the caller checks the whole message instead.
pub fn verify_stored(
    skeleton: &Skeleton,
    stored: &dyn StoredBytes,
    trust: &TrustStore,
    at: Option<DateTime<FixedOffset>>,
    crls: Option<&dyn CrlSource>,
) -> Option<SignatureReport> {
    if !skeleton.header_whole() {
        return None;
    }
    let report = verify_in(&skeleton.bytes, Signed::Stored { skeleton, stored }, trust, at, crls);
    (report.detail != SKELETON_SHORT).then_some(report)
}

/// The detail of a check that found part of the signature left out of the skeleton.
const SKELETON_SHORT: &str = "the skeleton lacks the signature part";

/// Where the signed content's bytes are.
#[derive(Clone, Copy)]
enum Signed<'a> {
    /// In the message given.
    InMemory,
    /// The message given is this skeleton; the bytes are in `stored`.
    Stored { skeleton: &'a Skeleton, stored: &'a dyn StoredBytes },
}

/// The signed content: digests over its bytes and over their CRLF canonical form.
enum Content<'a> {
    Bytes(&'a [u8]),
    Stored { stored: &'a dyn StoredBytes, start: u64, end: u64 },
}

impl Content<'_> {
    fn each(&self, f: &mut dyn FnMut(&[u8])) -> std::result::Result<(), (Verdict, String)> {
        match self {
            Content::Bytes(b) => {
                f(b);
                Ok(())
            }
            Content::Stored { stored, start, end } => {
                stored.read_range(*start, *end, f).map_err(|e| malformed(format!("cannot read the stored message: {e}")))
            }
        }
    }

    /// The digest of the bytes as they are, and whether they hold a bare LF
    /// (then the canonical form may be what was signed): one pass.
    fn digest(&self, alg: HashAlg) -> std::result::Result<(Vec<u8>, bool), (Verdict, String)> {
        let mut h = alg.hasher();
        let mut prev = None;
        let mut bare_lf = false;
        self.each(&mut |b| {
            h.update(b);
            bare_lf = bare_lf || mime::has_bare_lf_after(prev, b);
            prev = b.last().copied().or(prev);
        })?;
        Ok((h.finalize().to_vec(), bare_lf))
    }

    /// The digest of the canonical form (every bare LF as CRLF).
    fn canonical_digest(&self, alg: HashAlg) -> std::result::Result<Vec<u8>, (Verdict, String)> {
        let mut h = alg.hasher();
        let mut prev = None;
        self.each(&mut |b| {
            mime::bare_lf_to_crlf_after(prev, b, &mut |piece| h.update(piece));
            prev = b.last().copied().or(prev);
        })?;
        Ok(h.finalize().to_vec())
    }
}

fn verify_in(
    raw: &[u8],
    signed: Signed<'_>,
    trust: &TrustStore,
    at: Option<DateTime<FixedOffset>>,
    crls: Option<&dyn CrlSource>,
) -> SignatureReport {
    // The checks below are written not to panic (and are fuzzed); the
    // catch_unwind is defence in depth against a panic inside a dependency's
    // decoder (with panic = "abort" it does nothing).
    let run = std::panic::AssertUnwindSafe(|| {
        let mut report = SignatureReport::new(Verdict::Malformed, "");
        let (verdict, detail) = match check(raw, signed, trust, at, crls, &mut report) {
            Ok(v) | Err(v) => v,
        };
        report.verdict = verdict;
        report.detail = detail;
        report
    });
    std::panic::catch_unwind(run)
        .unwrap_or_else(|_| SignatureReport::new(Verdict::Malformed, "internal error while decoding the signature"))
}

fn check(
    raw: &[u8],
    signed: Signed<'_>,
    trust: &TrustStore,
    at: Option<DateTime<FixedOffset>>,
    crls: Option<&dyn CrlSource>,
    report: &mut SignatureReport,
) -> Outcome {
    // --- MIME: the exact signed bytes and the signature part.
    let headers = mime::parse_headers(raw);
    let ct = mime::parse_content_type(mime::header(&headers, "Content-Type").unwrap_or_default());
    if ct.mime != "multipart/signed" {
        let what = if ct.mime.is_empty() { "no Content-Type".to_string() } else { ct.mime.clone() };
        return Err((Verdict::Unsigned, format!("not multipart/signed ({what})")));
    }
    if let Some(protocol) = ct.param("protocol") {
        let p = protocol.trim().to_ascii_lowercase();
        if p != "application/pkcs7-signature" && p != "application/x-pkcs7-signature" {
            return Err(malformed(format!("unsupported multipart/signed protocol {protocol}")));
        }
    }
    let boundary = ct.param("boundary").filter(|b| !b.is_empty()).ok_or_else(|| malformed("multipart/signed without boundary"))?;
    let body = &raw[mime::body_offset(raw)..];
    let parts = mime::split_multipart(body, boundary, 2);
    let (content, sig_part) = match parts.as_slice() {
        [] => return Err(malformed("multipart/signed without parts")),
        [_] => return Err(malformed("signature part missing")),
        [c, s, ..] => (*c, *s),
    };
    if let Signed::Stored { skeleton, .. } = signed {
        let start = sig_part.as_ptr() as usize - raw.as_ptr() as usize;
        if !skeleton.whole_between(start, start + sig_part.len()) {
            return Err((Verdict::Malformed, SKELETON_SHORT.into()));
        }
    }
    let sig_headers = mime::parse_headers(sig_part);
    let sig_ct = mime::parse_content_type(mime::header(&sig_headers, "Content-Type").unwrap_or_default());
    if sig_ct.mime != "application/pkcs7-signature" && sig_ct.mime != "application/x-pkcs7-signature" {
        let what = if sig_ct.mime.is_empty() { "no Content-Type" } else { sig_ct.mime.as_str() };
        return Err(malformed(format!("signature part missing (second part is {what})")));
    }
    let sig_body = &sig_part[mime::body_offset(sig_part)..];
    let cte = mime::header(&sig_headers, "Content-Transfer-Encoding").unwrap_or_default().trim().to_ascii_lowercase();
    let p7s = if cte == "base64" { mime::base64_decode_lenient(sig_body) } else { sig_body.to_vec() };
    if p7s.is_empty() {
        return Err(malformed("empty or undecodable smime.p7s"));
    }

    // --- CMS decoding.
    let der = ber::normalize(&p7s).ok_or_else(|| malformed("smime.p7s is not valid BER/DER"))?;
    let ci = ContentInfo::from_der(&der).map_err(|e| malformed(format!("smime.p7s ContentInfo: {e}")))?;
    if ci.content_type.to_string() != ID_SIGNED_DATA {
        return Err(malformed(format!("smime.p7s is not SignedData ({})", ci.content_type)));
    }
    let sd: SignedData = ci.content.decode_as().map_err(|e| malformed(format!("SignedData: {e}")))?;
    if sd.encap_content_info.econtent.is_some() {
        return Err(malformed("SignedData is not detached (eContent present)"));
    }
    let signer_info = sd.signer_infos.0.iter().next().ok_or_else(|| malformed("no SignerInfo"))?;
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect();

    // --- The signer certificate.
    let signer = certs.iter().find(|c| matches_sid(c, &signer_info.sid)).ok_or_else(|| malformed("signer certificate not in smime.p7s"))?;
    let (not_before, not_after) = chain::validity(signer);
    report.signer = Some(chain::subject(signer));
    report.not_before = not_before;
    report.not_after = not_after;
    report.signer_cert_der = signer.to_der().ok();
    report.signer_address = constraints::emails(signer).into_iter().next();
    report.crl_urls = revocation::crl_urls(signer);

    // --- Algorithms.
    let digest_oid = signer_info.digest_alg.oid.to_string();
    let digest = HashAlg::from_digest_oid(&digest_oid).ok_or_else(|| malformed(format!("unsupported digest algorithm {digest_oid}")))?;
    report.digest = Some(digest.name().to_string());
    let sig_oid = signer_info.signature_algorithm.oid.to_string();
    let sig_hash = if sig_oid == chain::RSA_ENCRYPTION {
        digest
    } else {
        HashAlg::from_rsa_sig_oid(&sig_oid).ok_or_else(|| malformed(format!("unsupported signature algorithm {sig_oid}")))?
    };
    let key = chain::rsa_key(signer).ok_or_else(|| malformed("unsupported signer key (RSA up to 4096 bits only)"))?;
    let signature = signer_info.signature.as_bytes();

    // --- Content digest and signature.
    let content = match signed {
        Signed::InMemory => Content::Bytes(content),
        Signed::Stored { skeleton, stored } => {
            let start = content.as_ptr() as usize - raw.as_ptr() as usize;
            let (start, end) = skeleton.file_range(start, start + content.len());
            Content::Stored { stored, start, end }
        }
    };
    let mut note = "";
    match &signer_info.signed_attrs {
        Some(attrs) => {
            let md = message_digest(signer_info).ok_or_else(|| malformed("messageDigest signed attribute missing"))?;
            if let Some(ct) = attrs.iter().find(|a| a.oid.to_string() == ID_CONTENT_TYPE) {
                let ok = ct
                    .values
                    .get(0)
                    .and_then(|v| v.decode_as::<der::asn1::ObjectIdentifier>().ok())
                    .is_some_and(|o| o.to_string() == ID_DATA);
                if !ok {
                    return Err(malformed("contentType signed attribute is not id-data"));
                }
            }
            let (exact, bare_lf) = content.digest(digest)?;
            if exact != md {
                if bare_lf && content.canonical_digest(digest)? == md {
                    note = " (over the CRLF canonical form)";
                } else {
                    return Err((Verdict::Invalid, "message digest mismatch: content altered".into()));
                }
            }
            let encoded = attrs.to_der().map_err(|e| malformed(format!("signedAttrs: {e}")))?;
            let good = chain::rsa_verify(&key, sig_hash, &encoded, signature)
                || ber::raw_signed_attrs(&der).iter().any(|raw| raw != &encoded && chain::rsa_verify(&key, sig_hash, raw, signature));
            if !good {
                return Err((Verdict::Invalid, "RSA signature over the signed attributes does not verify".into()));
            }
        }
        None => {
            let (exact, bare_lf) = content.digest(sig_hash)?;
            if !chain::rsa_verify_digest(&key, sig_hash, &exact, signature) {
                if bare_lf && chain::rsa_verify_digest(&key, sig_hash, &content.canonical_digest(sig_hash)?, signature) {
                    note = " (over the CRLF canonical form)";
                } else {
                    return Err((Verdict::Invalid, "RSA signature over the content does not verify: content altered".into()));
                }
            }
        }
    }

    // --- Certificate path and validity.
    let now = Utc::now();
    let at_utc = at.map_or(now, |t| t.with_timezone(&Utc));
    let at_label = match at {
        Some(t) => format!("the daticert time {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => format!("the verification time {}", now.to_rfc3339_opts(SecondsFormat::Secs, true)),
    };
    match chain::build(signer, &certs, trust) {
        Chain::Trusted(path) => {
            report.chain = path.iter().map(|c| chain::subject(c)).collect();
            for (i, cert) in path.iter().enumerate() {
                let role = if i == 0 { "signer certificate" } else { "CA certificate" };
                if let Some(problem) = validity_problem(cert, at_utc, &at_label) {
                    return Err((Verdict::Invalid, format!("{role} {} {problem}", chain::subject(cert))));
                }
            }
            if let Some(problem) = constraints::usage_problem(signer).or_else(|| constraints::name_problem(&path)) {
                return Err((Verdict::Invalid, problem));
            }
            report.revocation = match crls {
                Some(source) => revocation::check_path(&path, source, at_utc, now),
                None => Revocation::NotChecked("revocation checking is off".into()),
            };
            if let Revocation::Revoked { detail, .. } = &report.revocation {
                return Err((Verdict::Invalid, format!("signer certificate {} {detail}", chain::subject(signer))));
            }
            let anchor = path.last().map(|c| chain::subject(c)).unwrap_or_default();
            // A provider's own certificate over mail that claims another provider as its sender: still the provider's
            // signature, so the verdict stands, but the reader is told.
            let mismatch = sender_domain(mime::header(&headers, "From").unwrap_or_default())
                .filter(|d| {
                    let emails = constraints::emails(signer);
                    !emails.is_empty() && !emails.iter().any(|e| e.rsplit_once('@').is_some_and(|(_, h)| h.eq_ignore_ascii_case(d)))
                })
                .map(|d| {
                    format!(
                        "; note: the signer's address {} is not at the sender's domain {d}",
                        report.signer_address.as_deref().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            Ok((
                Verdict::Valid,
                format!("signature valid{note}, signer chains to trusted CA {anchor}, certificates valid at {at_label}{mismatch}"),
            ))
        }
        Chain::Untrusted(why) => {
            report.revocation = Revocation::NotChecked("no chain to a trust anchor".into());
            let extra = validity_problem(signer, at_utc, &at_label).map(|p| format!("; signer certificate also {p}")).unwrap_or_default();
            Ok((Verdict::ValidUntrustedSigner, format!("signature valid{note}, but {why}{extra}")))
        }
    }
}

/// The domain of the address in a From value (`"Per conto di: x@y" <posta-certificata@z>` → `z`).
fn sender_domain(from: &str) -> Option<String> {
    let addr = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => &from[open + 1..close],
        _ => from,
    };
    let (_, domain) = addr.trim().rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// `"expired at ..."` / `"not yet valid at ..."` when `cert` is not valid at `at`.
fn validity_problem(cert: &Certificate, at: DateTime<Utc>, at_label: &str) -> Option<String> {
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    match chain::validity(cert) {
        (Some(nb), _) if at < nb => Some(format!("not yet valid at {at_label} (notBefore {})", fmt(nb))),
        (_, Some(na)) if at > na => Some(format!("expired at {at_label} (notAfter {})", fmt(na))),
        (Some(_), Some(_)) => None,
        _ => Some("has an unreadable validity period".into()),
    }
}

fn matches_sid(cert: &Certificate, sid: &SignerIdentifier) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            cert.tbs_certificate.serial_number == ias.serial_number && cert.tbs_certificate.issuer == ias.issuer
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(cert.tbs_certificate.get::<SubjectKeyIdentifier>(), Ok(Some((_, own))) if own == *ski)
        }
    }
}

/// The value of the messageDigest signed attribute.
fn message_digest(si: &SignerInfo) -> Option<Vec<u8>> {
    let attrs = si.signed_attrs.as_ref()?;
    let attr = attrs.iter().find(|a| a.oid.to_string() == ID_MESSAGE_DIGEST)?;
    let value = attr.values.get(0)?;
    if value.tag() != Tag::OctetString {
        return None;
    }
    Some(value.value().to_vec())
}
