//! Wiring: builds the runtime snapshot, opens the store and spool, recovers
//! after a crash, starts the SMTP listener, the delivery dispatcher, the
//! fetchers, the watchdog, the admin listener and the control socket, and
//! follows reloads.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::cluster::{self, Cluster};
use crate::config::{self, Loaded};
use crate::enqueue::Enqueue;
use crate::fetch::ingest::Ingest;
use crate::fetch::{Fetchers, PollReport};
use crate::listener::accept::{self, ListenerConfig};
use crate::listener::gateway::GatewaySource;
use crate::outbound::Outbound;
use crate::queue::spool::Spool;
use crate::runtime::reload::{self, Reloader};
use crate::runtime::{Live, Runtime};
use crate::store::{self, Store};
use crate::watchdog::Watchdog;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] config::Error),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("spool directory {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: String, source: std::io::Error },
    #[error("{0}")]
    Control(#[from] crate::control::Error),
    #[error("fetcher: {0}")]
    Fetch(#[from] crate::fetch::Error),
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
    pub fetchers: Arc<Fetchers>,
    pub watchdog: Arc<Watchdog>,
    pub outbound: Arc<Outbound>,
    pub cluster: Arc<Cluster>,
    /// The current runtime snapshot.
    pub live: Arc<Live>,
    reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Loads `path` (with `PECGATE_` overrides) and starts; `reload` re-reads it.
    pub async fn start(path: &Path, clock: Arc<dyn Clock>) -> Result<App> {
        let owned = path.to_owned();
        let loaded = tokio::task::spawn_blocking(move || config::load(&owned))
            .await
            .map_err(|e| config::Error::Read { file: path.display().to_string(), source: std::io::Error::other(e.to_string()) })??;
        Self::start_loaded(loaded, Some(path.to_owned()), clock).await
    }

    /// Starts from a configuration already loaded; `file` is what `reload` re-reads (none: no reload).
    pub async fn start_loaded(loaded: Loaded, file: Option<PathBuf>, clock: Arc<dyn Clock>) -> Result<App> {
        let shown = file.as_ref().map_or("<config>".to_owned(), |f| f.display().to_string());
        let secrets_store_url = loaded.resolved.secrets.store_url.clone();
        let rt = Runtime::build(loaded, 1, &shown)?;
        let config = &rt.config;
        let metrics_handle = crate::metrics::install();
        crate::metrics::init(rt.mailboxes.iter().map(|m| m.id.as_str()));
        crate::metrics::trust_anchors(&rt.trust);
        if config.store.backend == crate::config::StoreBackend::Sqlite
            && let Some(parent) = config.store.path.parent()
        {
            std::fs::create_dir_all(parent).map_err(|source| Error::Spool { path: parent.display().to_string(), source })?;
        }
        let instance = config.cluster.instance_id.clone();
        let store: Arc<dyn Store> = Arc::new(store::open(&config.store, secrets_store_url.as_ref(), &instance).await?);
        let spool = Spool::open(&config.store.spool_dir)
            .await
            .map_err(|source| Error::Spool { path: config.store.spool_dir.display().to_string(), source })?;

        // Listeners are bound first so the instance can say where it listens;
        // nothing is accepted until their tasks start below.
        let bind = |what: &'static str, addr: &str| {
            let addr = addr.to_owned();
            async move {
                let l = TcpListener::bind(&addr).await.map_err(|source| Error::Bind { what, addr: addr.clone(), source })?;
                let local = l.local_addr().map_err(|source| Error::Bind { what, addr, source })?;
                Ok::<_, Error>((l, local))
            }
        };
        let (listener, smtp_addr) = bind("smtp.listen", &config.smtp.listen).await?;
        let (admin, admin_addr) = bind("admin.listen", &config.admin.listen).await?;

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

        let control_socket = config.control.socket.clone();
        let admin_token = rt.secrets.admin_token.clone();
        let mailboxes = rt.mailboxes.len();
        let crls = open_crl_cache(config);
        let live = Live::new(rt);
        let reloader = Arc::new(Reloader::new(live.clone(), file, clock.clone()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let enqueue = Arc::new(Enqueue::new(store.clone(), spool.clone(), clock.clone(), kick.clone()));
        let outbound = Arc::new(Outbound::new(
            live.clone(),
            store.clone(),
            spool.clone(),
            clock.clone(),
            enqueue.clone(),
            kick.clone(),
            cluster.clone(),
        ));
        let mut tasks =
            vec![tokio::spawn(outbound.clone().run(shutdown_rx.clone())), tokio::spawn(cluster.clone().run(shutdown_rx.clone()))];
        crate::mailbox_alarms::check_senders(&live.get(), &enqueue, clock.as_ref(), crate::mailbox_alarms::Check::StartOrReload).await;

        if let Some(crls) = &crls {
            tasks.push(tokio::spawn(refresh_crls(crls.clone(), shutdown_rx.clone())));
        }
        let ingest = Arc::new(Ingest::new(store.clone(), spool.clone(), enqueue.clone(), clock.clone(), crls));
        let fetchers = Arc::new(Fetchers::new(live.clone(), ingest, store.clone(), clock.clone(), cluster.clone()));
        fetchers.sync(&live.get()).await;
        tasks.push(fetchers.clone().spawn(shutdown_rx.clone()));

        let watchdog =
            Arc::new(Watchdog::new(live.clone(), store.clone(), enqueue.clone(), clock.clone(), fetchers.clone(), cluster.clone()));
        tasks.push(tokio::spawn(watchdog.clone().run(shutdown_rx.clone())));

        let source = Arc::new(GatewaySource::new(live.clone(), enqueue.clone(), clock.clone()));
        tasks.push(accept::spawn(listener, source, ListenerConfig { implicit_tls: None, name: "smtp" }, shutdown_rx.clone()));

        let admin_state = Arc::new(crate::admin::AdminState {
            live: live.clone(),
            store: store.clone(),
            spool: spool.clone(),
            metrics: metrics_handle,
            fetchers: fetchers.clone(),
            clock: clock.clone(),
            auth: crate::admin::auth::Auth::new(admin_token.as_ref()),
            kick: kick.clone(),
        });
        let (_, admin_task) = crate::admin::spawn(admin, admin_state.clone(), shutdown_rx.clone()).map_err(|source| Error::Bind {
            what: "admin.listen",
            addr: admin_addr.to_string(),
            source,
        })?;
        tasks.push(admin_task);
        let control = Arc::new(crate::control::Targets { reloader: reloader.clone(), fetchers: fetchers.clone() });
        tasks.push(crate::control::spawn(&control_socket, control, shutdown_rx.clone()).await?);
        tasks.push(tokio::spawn(follow_reloads(live.clone(), admin_state, enqueue.clone(), clock.clone(), shutdown_rx.clone())));

        tracing::info!(smtp = %smtp_addr, admin = %admin_addr, control = %control_socket.display(), mailboxes, instance = %instance, "pecgate started");
        Ok(App { smtp_addr, admin_addr, store, spool, enqueue, fetchers, watchdog, outbound, cluster, live, reloader, shutdown, tasks })
    }

    /// Re-reads the configuration file and swaps the snapshot (SIGHUP, `pecgate reload`).
    pub async fn reload(&self) -> std::result::Result<reload::Report, reload::Error> {
        self.reloader.reload().await
    }

    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Polls a mailbox now (waits for a poll already running); `None` if it is not fetched.
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
        // The fetchers gave up their leases as they stopped.
        self.cluster.stop(&[cluster::WATCHDOG_LEASE.to_owned()]).await;
    }

    /// Stops everything at once, as a crash would (tests of recovery).
    /// Sessions and deliveries are dropped mid-way; the store and spool are
    /// left exactly as they were at that instant.
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.fetchers.abort_all();
        let _ = self.shutdown.send(true);
    }
}

/// The CRL cache for revocation checks (`[pec]`); a cache that cannot be
/// opened leaves every revocation answer `unknown`, logged once here.
fn open_crl_cache(config: &config::Config) -> Option<Arc<crate::crl::CrlCache>> {
    let p = &config.pec;
    let mode = match &p.crl_dir {
        Some(dir) => crate::crl::Mode::Offline { dir: dir.clone() },
        None => crate::crl::Mode::Online {
            cache_dir: p.crl_cache_dir.clone().unwrap_or_else(|| config.store.spool_dir.join("crl")),
            timeout: Duration::from_secs(p.crl_timeout_secs),
        },
    };
    match crate::crl::CrlCache::open(mode) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "CRL cache not available: revocation answers will be unknown");
            None
        }
    }
}

/// Fetches the CRLs held again every hour, so they are current before their
/// nextUpdate (CAs publish well before it).
async fn refresh_crls(crls: Arc<crate::crl::CrlCache>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
        for e in crls.refresh_all(&[]).await {
            tracing::warn!(error = %e, "CRL refresh failed; the copy held stays until its nextUpdate");
        }
    }
}

/// The next directory refresh: `false` once the directory is gone (a
/// reload replaced it); never, for a directory without refreshes.
async fn next_refresh(refreshes: Option<&mut watch::Receiver<u64>>) -> bool {
    match refreshes {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// What a new snapshot needs besides the subsystems that read it per
/// session, delivery or poll: metrics series for new mailboxes, the admin token.
async fn follow_reloads(
    live: Arc<Live>,
    admin: Arc<crate::admin::AdminState>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut generation = live.subscribe();
    let mut registered: HashSet<String> = live.get().mailboxes.iter().map(|m| m.id.clone()).collect();
    // A directory that changes between reloads (LDAP) may lose a mailbox's last sender at any refresh.
    let mut refreshes = live.get().directory.refreshes();
    loop {
        tokio::select! {
            changed = generation.changed() => {
                if changed.is_err() {
                    return;
                }
                let rt = live.get();
                for m in &rt.mailboxes {
                    if registered.insert(m.id.clone()) {
                        crate::metrics::init_mailbox(&m.id);
                    }
                }
                admin.auth.set_token(rt.secrets.admin_token.as_ref());
                refreshes = rt.directory.refreshes();
                crate::mailbox_alarms::check_senders(&rt, &enqueue, clock.as_ref(), crate::mailbox_alarms::Check::StartOrReload).await;
            }
            refreshed = next_refresh(refreshes.as_mut()) => {
                if refreshed {
                    crate::mailbox_alarms::check_senders(&live.get(), &enqueue, clock.as_ref(), crate::mailbox_alarms::Check::DirectoryRefresh).await;
                } else {
                    refreshes = None;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
