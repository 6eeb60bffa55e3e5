//! Accept loop shared by every SMTP server in pecgate (the gateway listener,
//! the simulated provider, the capture server): client allow-list at
//! connect, a session limit answered with 421, optional implicit TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ipnet::IpNet;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::session::{self, Backend, SessionConfig, SessionInfo};
use crate::proto::reply;

/// What does not change while a listener runs.
pub struct ListenerConfig {
    /// SMTPS: TLS from the first byte (the simulated provider).
    pub implicit_tls: Option<TlsAcceptor>,
    /// Name for logs (`smtp`, `sim`, `capture`).
    pub name: &'static str,
}

/// What one new connection gets: its backend, limits and who may connect.
/// The gateway builds it from the runtime snapshot current at connect time,
/// so a reload applies from the next connection on.
pub struct SessionSetup<B> {
    pub backend: Arc<B>,
    pub session: Arc<SessionConfig>,
    /// Empty = everyone (test servers); the gateway always sets it.
    pub allowed_clients: Arc<[IpNet]>,
    pub max_sessions: usize,
}

impl<B> Clone for SessionSetup<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            session: self.session.clone(),
            allowed_clients: self.allowed_clients.clone(),
            max_sessions: self.max_sessions,
        }
    }
}

pub trait SessionSource<B: Backend>: Send + Sync + 'static {
    fn setup(&self) -> SessionSetup<B>;
}

/// A fixed setup (simulators, capture server, tests).
impl<B: Backend> SessionSource<B> for SessionSetup<B> {
    fn setup(&self) -> SessionSetup<B> {
        self.clone()
    }
}

/// Open sessions of one listener, released when the session ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot if fewer than `max` are open.
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok().map(|_| Slot(open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts open sessions of the gateway listener (not the simulators').
struct SessionGauge(bool);

impl SessionGauge {
    fn new(listener: &str) -> Self {
        let counted = listener == "smtp";
        if counted {
            metrics::gauge!("pecgate_smtp_sessions_open").increment(1.0);
        }
        Self(counted)
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        if self.0 {
            metrics::gauge!("pecgate_smtp_sessions_open").decrement(1.0);
        }
    }
}

pub fn spawn<B: Backend>(
    listener: TcpListener,
    source: Arc<dyn SessionSource<B>>,
    config: ListenerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(AtomicU64::new(1));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let (mut stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: do not spin.
                    tracing::warn!(listener = config.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let SessionSetup { backend, session, allowed_clients, max_sessions } = source.setup();
            if !allowed_clients.is_empty() && !allowed_clients.iter().any(|net| net.contains(&peer.ip())) {
                tracing::warn!(listener = config.name, peer = %peer, "client not in smtp.allowed_clients; refused");
                tokio::spawn(async move {
                    let _ = stream.write_all(reply::r554_no_service().to_wire().as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
            let Some(permit) = Slot::take(&open, max_sessions) else {
                tracing::warn!(listener = config.name, peer = %peer, "session limit reached; answered 421");
                tokio::spawn(async move {
                    let _ = stream.write_all(reply::r421_too_many_sessions().to_wire().as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            };
            let info = SessionInfo { id: ids.fetch_add(1, Ordering::Relaxed), peer, helo: None, tls: false, auth: None };
            let shutdown = shutdown.clone();
            let implicit = config.implicit_tls.clone();
            let name = config.name;
            tokio::spawn(async move {
                let _permit = permit;
                let _open = SessionGauge::new(name);
                tracing::debug!(listener = name, session = info.id, peer = %peer, "connected");
                let result = match implicit {
                    Some(acceptor) => match tokio::time::timeout(session.command_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let mut info = info;
                            info.tls = true;
                            session::serve(tls, backend, session, info, shutdown).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(listener = name, peer = %peer, error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    },
                    None => session::serve(stream, backend, session, info, shutdown).await,
                };
                if let Err(e) = result {
                    tracing::debug!(listener = name, peer = %peer, error = %e, "session ended with an I/O error");
                }
            });
        }
    })
}
