//! The CRLs that revocation checking reads ([`pec::signature::revocation`]
//! is pure): fetched over HTTP(S) from the signer certificate's
//! distribution points, kept on disk until their `nextUpdate`, or read from
//! a directory of CRL files on hosts without Internet access.
//!
//! Fetching never blocks ingest: a verification asks only what is in
//! memory, and [`CrlCache::want`] fetches what was missing in the
//! background, so the next message from that provider gets an answer.
//!
//! The HTTP client is hyper's (already in the build through axum) over
//! tokio-rustls: one GET, a bounded time and size, no redirects, no system
//! OpenSSL. A CRL is signed by its CA, so plain `http://` (what AgID CA1
//! publishes) is as safe as HTTPS for its content.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::pec::signature::CrlSource;

/// A CRL larger than this is refused (AgID CA1's is well under 1 MiB).
pub const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: only http:// and https:// distribution points are fetched")]
    Scheme(String),
    #[error("{0}: bad URL: {1}")]
    Url(String, String),
    #[error("{0}: {1}")]
    Connect(String, String),
    #[error("{0}: no answer within {1} s")]
    Timeout(String, u64),
    #[error("{0}: HTTP {1}")]
    Status(String, u16),
    #[error("{0}: {1}")]
    Http(String, String),
    #[error("CRL cache {0}: {1}")]
    Disk(PathBuf, std::io::Error),
    #[error("TLS client: {0}")]
    Tls(String),
}

impl Error {
    /// For `pecgate_crl_fetch_total{result}`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            Error::Scheme(..) | Error::Url(..) => "bad_url",
            Error::Connect(..) => "connect",
            Error::Timeout(..) => "timeout",
            Error::Status(..) | Error::Http(..) => "http",
            Error::Disk(..) | Error::Tls(..) => "disk",
        }
    }
}

/// Where CRLs come from.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Fetched from the distribution points, cached in `cache_dir`.
    Online { cache_dir: PathBuf, timeout: Duration },
    /// Read from the files in this directory; nothing is fetched.
    Offline { dir: PathBuf },
}

pub struct CrlCache {
    mode: Mode,
    /// URL -> CRL bytes (online), or "" -> every file (offline).
    mem: RwLock<HashMap<String, Arc<[u8]>>>,
    pending: Mutex<HashSet<String>>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for CrlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlCache").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl CrlSource for CrlCache {
    fn crls(&self, url: &str) -> Vec<Arc<[u8]>> {
        let mem = self.mem.read().unwrap_or_else(|p| p.into_inner());
        match self.mode {
            Mode::Online { .. } => mem.get(url).cloned().into_iter().collect(),
            Mode::Offline { .. } => mem.values().cloned().collect(),
        }
    }
}

impl CrlCache {
    /// Loads what the cache directory (or the offline directory) holds.
    pub fn open(mode: Mode) -> Result<Arc<CrlCache>, Error> {
        let mut mem = HashMap::new();
        match &mode {
            Mode::Online { cache_dir, .. } => {
                std::fs::create_dir_all(cache_dir).map_err(|e| Error::Disk(cache_dir.clone(), e))?;
                for (path, bytes) in files(cache_dir, "crl")? {
                    // Each CRL has its URL next to it, written when it was fetched.
                    if let Ok(url) = std::fs::read_to_string(path.with_extension("url")) {
                        mem.insert(url.trim().to_string(), Arc::from(bytes));
                    }
                }
            }
            Mode::Offline { dir } => {
                for (path, bytes) in files(dir, "")? {
                    mem.insert(path.display().to_string(), Arc::from(bytes));
                }
            }
        }
        let tls = crate::tls::client_config(None).map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Arc::new(CrlCache { mode, mem: RwLock::new(mem), pending: Mutex::new(HashSet::new()), tls }))
    }

    /// How many CRLs are held.
    pub fn len(&self) -> usize {
        self.mem.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fetches in the background each of `urls` not held yet (online mode).
    pub fn want(self: &Arc<Self>, urls: &[String]) {
        if !matches!(self.mode, Mode::Online { .. }) {
            return;
        }
        for url in urls {
            if !self.crls(url).is_empty() || !self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(url.clone()) {
                continue;
            }
            let this = self.clone();
            let url = url.clone();
            tokio::spawn(async move {
                if let Err(e) = this.refresh(&url).await {
                    tracing::warn!(error = %e, "CRL not fetched; revocation stays unknown until it is");
                }
                this.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&url);
            });
        }
    }

    /// Fetches every CRL held again (a newer one replaces it), and those
    /// of `urls`: for `pecgate classify` and a periodic refresh.
    pub async fn refresh_all(&self, urls: &[String]) -> Vec<Error> {
        let mut all: Vec<String> = self.mem.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        all.extend(urls.iter().cloned());
        all.sort();
        all.dedup();
        let mut errors = Vec::new();
        for url in all {
            if let Err(e) = self.refresh(&url).await {
                errors.push(e);
            }
        }
        errors
    }

    /// Fetches `url` now and keeps it (memory and disk) if it arrived.
    pub async fn refresh(&self, url: &str) -> Result<(), Error> {
        let Mode::Online { cache_dir, timeout } = &self.mode else { return Ok(()) };
        let result = fetch(url, *timeout, &self.tls).await;
        metrics::counter!("pecgate_crl_fetch_total", "result" => match &result { Ok(_) => "ok", Err(e) => e.metric_kind() }).increment(1);
        let bytes = result?;
        let name: String = {
            use sha2::Digest as _;
            sha2::Sha256::digest(url.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        };
        let base = cache_dir.join(name);
        write_atomic(&base.with_extension("crl"), &bytes)?;
        write_atomic(&base.with_extension("url"), url.as_bytes())?;
        self.mem.write().unwrap_or_else(|p| p.into_inner()).insert(url.to_string(), Arc::from(bytes));
        tracing::info!(url, "CRL fetched");
        Ok(())
    }
}

/// The regular files of `dir` (with extension `ext`, or all when empty).
fn files(dir: &Path, ext: &str) -> Result<Vec<(PathBuf, Vec<u8>)>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Disk(dir.to_path_buf(), e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let wanted = ext.is_empty() || path.extension().is_some_and(|e| e == ext);
        let small = entry.metadata().is_ok_and(|m| m.is_file() && m.len() <= MAX_CRL_BYTES as u64);
        if wanted && small {
            let bytes = std::fs::read(&path).map_err(|e| Error::Disk(path.clone(), e))?;
            out.push((path, bytes));
        }
    }
    out.sort();
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let disk = |e| Error::Disk(path.to_path_buf(), e);
    std::fs::write(&tmp, bytes).map_err(disk)?;
    std::fs::rename(&tmp, path).map_err(disk)
}

/// One GET of `url`, the body at most [`MAX_CRL_BYTES`], within `timeout`.
pub async fn fetch(url: &str, timeout: Duration, tls: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, Error> {
    match tokio::time::timeout(timeout, fetch_unbounded(url, tls)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(url.into(), timeout.as_secs())),
    }
}

async fn fetch_unbounded(url: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, Error> {
    let parsed = url::Url::parse(url).map_err(|e| Error::Url(url.into(), e.to_string()))?;
    let https = match parsed.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(Error::Scheme(url.into())),
    };
    let host = parsed.host_str().ok_or_else(|| Error::Url(url.into(), "no host".into()))?.to_string();
    let port = parsed.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| Error::Connect(url.into(), e.to_string()))?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    if https {
        let name = rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|e| Error::Url(url.into(), e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| Error::Connect(url.into(), format!("TLS: {e}")))?;
        get(url, stream, &authority, &path).await
    } else {
        get(url, tcp, &authority, &path).await
    }
}

async fn get<S>(url: &str, io: S, authority: &str, path: &str) -> Result<Vec<u8>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: &dyn std::fmt::Display| Error::Http(url.into(), e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await.map_err(|e| http(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, concat!("pecgate/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    if !response.status().is_success() {
        return Err(Error::Status(url.into(), response.status().as_u16()));
    }
    let body = Limited::new(response.into_body(), MAX_CRL_BYTES)
        .collect()
        .await
        .map_err(|e| Error::Http(url.into(), format!("body: {e} (limit {MAX_CRL_BYTES} bytes)")))?;
    Ok(body.to_bytes().to_vec())
}
