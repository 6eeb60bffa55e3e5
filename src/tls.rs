//! TLS configuration for every connection pecgate makes or accepts.
//!
//! Client side: TLS 1.2+ only (rustls has nothing older), certificate and
//! hostname verification always on, trust = the Mozilla roots plus an
//! optional `ca_file` (private CAs, tests). There is deliberately no switch
//! to turn verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read certificates from {path}: {message}")]
    Certs { path: String, message: String },
    #[error("cannot read the private key from {path}: {message}")]
    Key { path: String, message: String },
    #[error("{path}: holds no certificate")]
    NoCerts { path: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client config trusting the web PKI roots plus `ca_file` (PEM, one or more certs).
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| Error::Certs { path: path.display().to_string(), message: e.to_string() })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Client config trusting only the given PEM text (simulator and tests).
pub fn client_config_from_pem(pem: &str) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Certs { path: "<pem>".into(), message: e.to_string() })?;
        roots.add(cert).map_err(|e| Error::Certs { path: "<pem>".into(), message: e.to_string() })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Server config from a PEM certificate chain and key file.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>> {
    let certs = load_certs(cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| Error::Key { path: key_file.display().to_string(), message: e.to_string() })?;
    server_config_from(certs, key)
}

pub fn server_config_from(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<ServerConfig>> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Certs { path: path.display().to_string(), message: e.to_string() })?
        .collect();
    let certs = certs.map_err(|e| Error::Certs { path: path.display().to_string(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(Error::NoCerts { path: path.display().to_string() });
    }
    Ok(certs)
}

/// A private CA and a server certificate it signed, generated at start-up
/// (simulated provider, demo, tests). The CA PEM goes into `ca_file`.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Arc<ServerConfig>,
}

impl TestPki {
    pub fn generate(names: &[&str]) -> std::result::Result<Self, rcgen::Error> {
        use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "pecgate simulated provider CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        let server_cert = params.signed_by(&server_key, &issuer)?;
        let key = PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
        let server = server_config_from(vec![server_cert.der().clone(), ca_cert.der().clone()], key)
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        Ok(Self { ca_pem: ca_cert.pem(), server })
    }
}
