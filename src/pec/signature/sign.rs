//! Detached CMS signing with the committed TEST-ONLY CA and signer, for the
//! simulated PEC provider and for tests. The keys under `src/testdata/` are
//! test keys: never use them for anything else.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder, create_signing_time_attribute};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::pkcs8::spki::AlgorithmIdentifierOwned;
use sha2::digest::const_oid::AssociatedOid;
use x509_cert::Certificate;

use super::{Error, Result};

pub(super) const CA_PEM: &str = include_str!("../testdata/TEST_ONLY_ca.crt.pem");
const SIGNER_CERT_PEM: &str = include_str!("../testdata/TEST_ONLY_signer.crt.pem");
pub(super) const SIGNER_KEY_PEM: &str = include_str!("../testdata/TEST_ONLY_signer.key.pem");

/// Digest for [`TestSigner::sign_detached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha1,
    Sha256,
}

/// A test CA + signer certificate (RSA 2048) + key.
pub struct TestSigner {
    ca_pem: String,
    cert: Certificate,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSigner").field("subject", &self.cert.tbs_certificate.subject.to_string()).finish_non_exhaustive()
    }
}

impl TestSigner {
    /// The committed TEST-ONLY CA and "CN=Gestore PEC simulato (pecgate sim),O=pecgate test" signer.
    pub fn load() -> Result<Self> {
        Self::from_pem(CA_PEM, SIGNER_CERT_PEM, SIGNER_KEY_PEM)
    }

    /// A signer from PEM strings: the CA certificate (returned by
    /// [`ca_pem`](Self::ca_pem)), the signer certificate and its PKCS#8 key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self> {
        let der = super::chain::pem_certificates(cert_pem)?.into_iter().next().ok_or_else(|| Error::Pem("no signer certificate".into()))?;
        let cert = Certificate::from_der(&der)?;
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem).map_err(|e| Error::Key(e.to_string()))?;
        let cert_key = super::chain::rsa_key(&cert).ok_or_else(|| Error::Key("signer certificate has no RSA key".into()))?;
        if rsa::RsaPublicKey::from(&key) != cert_key {
            return Err(Error::Key("key does not match the signer certificate".into()));
        }
        Ok(TestSigner { ca_pem: ca_pem.to_string(), cert, key })
    }

    /// The CA certificate (PEM), for a [`TrustStore`](super::TrustStore).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// DER of the signer certificate.
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        Ok(self.cert.to_der()?)
    }

    /// The `smime.p7s` DER for `content` (the exact bytes of the first part of
    /// the multipart/signed, CRLF lines): a detached SignedData carrying the
    /// signer certificate, with signedAttrs contentType, signingTime (now) and
    /// messageDigest, RSA PKCS#1 v1.5 with `digest`.
    pub fn sign_detached(&self, content: &[u8], digest: Digest) -> Result<Vec<u8>> {
        match digest {
            Digest::Sha1 => self.sign_with::<sha1::Sha1>(content),
            Digest::Sha256 => self.sign_with::<sha2::Sha256>(content),
        }
    }

    fn sign_with<D>(&self, content: &[u8]) -> Result<Vec<u8>>
    where
        D: sha2::Digest + AssociatedOid + rsa::pkcs1v15::RsaSignatureAssociatedOid,
    {
        let cms_err = |e: cms::builder::Error| Error::Cms(e.to_string());
        // Deterministic PKCS#1 v1.5 signing without blinding: fine for the test
        // key (RUSTSEC-2023-0071 is a private-key timing issue; no real key here).
        let signing_key = SigningKey::<D>::new(self.key.clone());
        let digest_alg = AlgorithmIdentifierOwned { oid: <D as AssociatedOid>::OID, parameters: None };
        let eci = EncapsulatedContentInfo { econtent_type: ObjectIdentifier::new_unwrap(super::ID_DATA), econtent: None };
        let md = D::digest(content).to_vec();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        });
        let mut si = SignerInfoBuilder::new(&signing_key, sid, digest_alg.clone(), &eci, Some(&md)).map_err(cms_err)?;
        si.add_signed_attribute(create_signing_time_attribute().map_err(cms_err)?).map_err(cms_err)?;
        let mut sd = SignedDataBuilder::new(&eci);
        sd.add_digest_algorithm(digest_alg).map_err(cms_err)?;
        sd.add_certificate(CertificateChoices::Certificate(self.cert.clone())).map_err(cms_err)?;
        sd.add_signer_info::<SigningKey<D>, Signature>(si).map_err(cms_err)?;
        let ci = sd.build().map_err(cms_err)?;
        let der = ci.to_der()?;
        // Sanity: what we emit must decode.
        cms::content_info::ContentInfo::from_der(&der)?;
        Ok(der)
    }
}
