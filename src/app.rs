//! Wiring: opens the store and spool, recovers after a crash, starts the
//! SMTP listener, the delivery dispatcher and the admin listener.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;
use crate::cluster::{self, Cluster};
use crate::config::Config;
use crate::enqueue::Enqueue;
use crate::listener::accept::{self, ListenerConfig};
use crate::listener::gateway::Gateway;
use crate::listener::session::SessionConfig;
use crate::outbound::{self, Outbound};
use crate::pop3::fetcher::{Fetcher, PollReport};
use crate::queue::spool::Spool;
use crate::store::{self, Store};
use crate::watchdog::Watchdog;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("spool directory {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
    #[error("smtp TLS certificate: {0}")]
    Tls(#[from] crate::tls::Error),
    #[error("{0}")]
    Outbound(#[from] outbound::Error),
    #[error("fetcher: {0}")]
    Fetch(#[from] crate::pop3::fetcher::Error),
    #[error("{0}")]
    Admin(#[from] crate::admin::auth::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// With a shared spool, files without a store row younger than this may be
/// another instance's message being received or fetched right now.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

pub struct App {
    pub smtp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub enqueue: Arc<Enqueue>,
    pub fetchers: HashMap<String, Arc<Fetcher>>,
    pub watchdog: Arc<Watchdog>,
    pub cluster: Arc<Cluster>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<App> {
        let config = Arc::new(config);
        let metrics_handle = crate::metrics::install();
        crate::metrics::init(&config);
        if config.store.backend == crate::config::StoreBackend::Sqlite
            && let Some(parent) = config.store.path.parent()
        {
            std::fs::create_dir_all(parent).map_err(|source| Error::Spool { path: parent.display().to_string(), source })?;
        }
        let instance = config.cluster.instance_id.clone();
        let store: Arc<dyn Store> = Arc::new(store::open(&config.store, &instance).await?);
        let spool = Spool::open(&config.store.spool_dir)
            .await
            .map_err(|source| Error::Spool { path: config.store.spool_dir.display().to_string(), source })?;

        // Listeners are bound first so the instance can say where it listens;
        // nothing is accepted until their tasks start below.
        let smtp = &config.smtp;
        let listener = TcpListener::bind(&smtp.listen).await.map_err(|source| Error::Bind {
            what: "smtp.listen",
            addr: smtp.listen.clone(),
            source,
        })?;
        let smtp_addr = listener.local_addr().map_err(|source| Error::Bind { what: "smtp.listen", addr: smtp.listen.clone(), source })?;
        let admin = TcpListener::bind(&config.admin.listen).await.map_err(|source| Error::Bind {
            what: "admin.listen",
            addr: config.admin.listen.clone(),
            source,
        })?;
        let admin_addr =
            admin.local_addr().map_err(|source| Error::Bind { what: "admin.listen", addr: config.admin.listen.clone(), source })?;

        // Crash recovery: this instance's deliveries in flight are retried
        // (and any whose instance's lease ran out); files never acknowledged go.
        let now = clock.now_ms();
        let recovered = store.recover_sending(now, true).await?;
        metrics::counter!("pecgate_recovered_deliveries_total").increment(recovered.len() as u64);
        if !recovered.is_empty() {
            tracing::warn!(
                count = recovered.len(),
                "messages were being sent when pecgate stopped; queued again (a duplicate at the provider is possible)"
            );
        }
        let known: HashSet<String> = store.message_ids().await?.into_iter().collect();
        // A shared spool holds other instances' messages in the making: only old orphans are theirs to lose.
        let grace = if store.shared() { Some(ORPHAN_GRACE) } else { None };
        let orphans =
            spool.remove_orphans(&known, grace).await.map_err(|source| Error::Spool { path: spool.dir().display().to_string(), source })?;
        if orphans > 0 {
            tracing::info!(count = orphans, "removed spool files of messages never acknowledged");
        }

        let kick = Arc::new(Notify::new());
        let info = crate::store::InstanceInfo {
            id: instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: now,
            heartbeat_at: now,
            smtp: smtp_addr.to_string(),
            admin: admin_addr.to_string(),
            stopped_at: None,
        };
        let cluster = Arc::new(Cluster::new(store.clone(), clock.clone(), config.cluster.lease_secs, info, kick.clone()));
        cluster.start().await?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let enqueue = Arc::new(Enqueue::new(store.clone(), spool.clone(), clock.clone(), kick.clone()));
        let outbound = Arc::new(Outbound::new(
            config.clone(),
            store.clone(),
            spool.clone(),
            clock.clone(),
            enqueue.clone(),
            kick.clone(),
            cluster.clone(),
        )?);
        let mut tasks = vec![tokio::spawn(outbound.run(shutdown_rx.clone())), tokio::spawn(cluster.clone().run(shutdown_rx.clone()))];

        let mut fetchers = HashMap::new();
        for m in config.mailboxes.iter().filter(|m| m.active) {
            if let Some(f) = Fetcher::new(config.clone(), m, store.clone(), spool.clone(), enqueue.clone(), clock.clone(), cluster.clone())?
            {
                let f = Arc::new(f);
                tasks.push(tokio::spawn(f.clone().run(shutdown_rx.clone())));
                fetchers.insert(m.id.clone(), f);
            }
        }

        let watchdog =
            Arc::new(Watchdog::new(config.clone(), store.clone(), enqueue.clone(), clock.clone(), fetchers.clone(), cluster.clone()));
        tasks.push(tokio::spawn(watchdog.clone().run(shutdown_rx.clone())));

        let mut session = SessionConfig::new(smtp.hostname.clone());
        session.max_message_size = smtp.max_message_size;
        session.max_recipients = smtp.max_recipients;
        session.command_timeout = Duration::from_secs(smtp.command_timeout_secs);
        session.data_timeout = Duration::from_secs(smtp.data_timeout_secs);
        session.auth_without_tls_on_loopback = smtp.auth.allow_without_tls_on_loopback;
        if let (Some(cert), Some(key)) = (&smtp.tls_cert_file, &smtp.tls_key_file) {
            session.tls = Some(TlsAcceptor::from(crate::tls::server_config(cert, key)?));
        }
        let gateway = Arc::new(Gateway::new(config.clone(), enqueue.clone(), clock.clone()));
        tasks.push(accept::spawn(
            listener,
            gateway,
            Arc::new(session),
            ListenerConfig { allowed_clients: config.allowed_clients(), max_sessions: smtp.max_sessions, implicit_tls: None, name: "smtp" },
            shutdown_rx.clone(),
        ));

        let admin_state = Arc::new(crate::admin::AdminState {
            config: config.clone(),
            store: store.clone(),
            spool: spool.clone(),
            metrics: metrics_handle,
            fetchers: fetchers.clone(),
            clock: clock.clone(),
            auth: crate::admin::auth::Auth::load(&config.admin)?,
            kick: kick.clone(),
        });
        let (_, admin_task) = crate::admin::spawn(admin, admin_state, shutdown_rx.clone()).map_err(|source| Error::Bind {
            what: "admin.listen",
            addr: config.admin.listen.clone(),
            source,
        })?;
        tasks.push(admin_task);

        tracing::info!(smtp = %smtp_addr, admin = %admin_addr, mailboxes = config.mailboxes.len(), instance = %instance, "pecgate started");
        Ok(App { smtp_addr, admin_addr, store, spool, enqueue, fetchers, watchdog, cluster, shutdown, tasks })
    }

    /// Polls a mailbox now (waits for a poll already running); `None` if it has no POP3.
    pub async fn poll(&self, mailbox: &str) -> Option<Result<PollReport>> {
        let f = self.fetchers.get(mailbox)?;
        Some(f.poll().await.map_err(Error::Fetch))
    }

    /// Stops listeners and workers; sessions get 421, deliveries get a few
    /// seconds to finish; the rest are retried at the next start.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let mut leases: Vec<String> = self.fetchers.keys().map(|m| cluster::pop3_lease(m)).collect();
        leases.push(cluster::WATCHDOG_LEASE.to_owned());
        self.cluster.stop(&leases).await;
    }

    /// Stops everything at once, as a crash would (tests of recovery).
    /// Sessions and deliveries are dropped mid-way; the store and spool are
    /// left exactly as they were at that instant.
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shutdown.send(true);
    }
}
