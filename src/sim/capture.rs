//! A stand-in corporate mail server: plain SMTP on loopback, accepts
//! everything and keeps it in a [`Mailbag`] (and optionally a directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Captured, Mailbag};
use crate::listener::accept::{self, ListenerConfig, SessionSetup};
use crate::listener::session::{Backend, Envelope, Response, SessionConfig, SessionInfo};
use crate::proto::reply;

struct CaptureBackend {
    bag: Arc<Mailbag>,
}

impl Backend for CaptureBackend {
    type Sink = Vec<u8>;

    async fn mail(&self, _info: &SessionInfo, _from: &str) -> Result<(), Response> {
        Ok(())
    }

    async fn rcpt(&self, _info: &SessionInfo, _envelope: &Envelope, _to: &str) -> Result<(), Response> {
        Ok(())
    }

    async fn data_start(&self, _info: &SessionInfo, _envelope: &Envelope) -> Result<Vec<u8>, Response> {
        Ok(Vec::new())
    }

    async fn data_end(&self, info: &SessionInfo, envelope: &Envelope, data: Vec<u8>, _size: u64) -> Response {
        self.bag.push(Captured { mail_from: envelope.mail_from.clone(), rcpts: envelope.rcpts.clone(), data, auth: info.auth.clone() });
        reply::r250_ok().into()
    }
}

pub struct CaptureServer {
    pub addr: SocketAddr,
    pub bag: Arc<Mailbag>,
    _shutdown: watch::Sender<bool>,
}

impl CaptureServer {
    /// Listens on `bind` (use `127.0.0.1:0` in tests).
    pub async fn start(bind: &str, dir: Option<PathBuf>) -> std::io::Result<Self> {
        Self::start_on(TcpListener::bind(bind).await?, dir)
    }

    /// Serves on a listener the caller already holds (a port that must not change).
    pub fn start_on(listener: TcpListener, dir: Option<PathBuf>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let bag = Arc::new(Mailbag::new(dir));
        let (tx, rx) = watch::channel(false);
        let session = Arc::new(SessionConfig::new("capture.localhost"));
        let setup = SessionSetup {
            backend: Arc::new(CaptureBackend { bag: bag.clone() }),
            session,
            allowed_clients: Arc::from(Vec::new()),
            max_sessions: 100,
        };
        accept::spawn(listener, Arc::new(setup), ListenerConfig { implicit_tls: None, name: "capture" }, rx);
        Ok(Self { addr, bag, _shutdown: tx })
    }
}
