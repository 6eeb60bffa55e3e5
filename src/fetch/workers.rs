//! One fetcher per active mailbox with a retrieval configured, started and
//! stopped as the runtime snapshot changes: a mailbox added or activated by
//! a reload starts polling, one removed or deactivated stops after the poll
//! in progress (and gives up its lease at once, so another instance may
//! take it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Fetcher;
use super::ingest::Ingest;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::runtime::{Live, Runtime};
use crate::store::Store;

struct Running {
    fetcher: Arc<Fetcher>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct Fetchers {
    live: Arc<Live>,
    ingest: Arc<Ingest>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cluster: Arc<Cluster>,
    running: Mutex<HashMap<String, Running>>,
}

impl Fetchers {
    pub fn new(live: Arc<Live>, ingest: Arc<Ingest>, store: Arc<dyn Store>, clock: Arc<dyn Clock>, cluster: Arc<Cluster>) -> Self {
        Self { live, ingest, store, clock, cluster, running: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, mailbox: &str) -> Option<Arc<Fetcher>> {
        self.lock().get(mailbox).map(|r| r.fetcher.clone())
    }

    /// The running fetchers, by mailbox id.
    pub fn all(&self) -> Vec<Arc<Fetcher>> {
        let mut all: Vec<Arc<Fetcher>> = self.lock().values().map(|r| r.fetcher.clone()).collect();
        all.sort_by(|a, b| a.mailbox_id().cmp(b.mailbox_id()));
        all
    }

    /// Starts the fetchers `rt` asks for and stops the others.
    pub async fn sync(&self, rt: &Runtime) {
        let wanted: Vec<&str> = rt.mailboxes.iter().filter(|m| m.active && super::settings(m).is_some()).map(|m| m.id.as_str()).collect();
        let stopped: Vec<Running> = {
            let mut running = self.lock();
            let gone: Vec<String> = running.keys().filter(|id| !wanted.contains(&id.as_str())).cloned().collect();
            let new: Vec<&str> = wanted.iter().copied().filter(|id| !running.contains_key(*id)).collect();
            for id in new {
                let fetcher = Arc::new(Fetcher::new(
                    id,
                    self.live.clone(),
                    self.ingest.clone(),
                    self.store.clone(),
                    self.clock.clone(),
                    self.cluster.clone(),
                ));
                let (stop, stop_rx) = watch::channel(false);
                let task = tokio::spawn(fetcher.clone().run(stop_rx));
                tracing::info!(mailbox = %id, "fetcher started");
                running.insert(id.to_owned(), Running { fetcher, stop, task });
            }
            gone.iter().filter_map(|id| running.remove(id)).collect()
        };
        for r in stopped {
            tracing::info!(mailbox = %r.fetcher.mailbox_id(), "fetcher stopping (mailbox removed or deactivated)");
            self.stop(r).await;
        }
    }

    /// Stops every fetcher at once, mid-poll (a crash, in tests of recovery).
    pub fn abort_all(&self) {
        for (_, r) in self.lock().drain() {
            r.task.abort();
        }
    }

    /// Stops every fetcher (shutdown), each after its poll in progress.
    pub async fn stop_all(&self) {
        let all: Vec<Running> = self.lock().drain().map(|(_, r)| r).collect();
        for r in all {
            self.stop(r).await;
        }
    }

    /// Lets the poll in progress finish (waiting at most 10 s here), then
    /// gives up the lease.
    async fn stop(&self, r: Running) {
        let _ = r.stop.send(true);
        r.fetcher.wake();
        let Running { fetcher, mut task, .. } = r;
        if tokio::time::timeout(Duration::from_secs(10), &mut task).await.is_err() {
            tracing::warn!(mailbox = %fetcher.mailbox_id(), "fetcher still polling after 10 s; it stops when the poll ends");
            let cluster = self.cluster.clone();
            tokio::spawn(async move {
                let _ = task.await;
                cluster.release(fetcher.lease()).await;
            });
            return;
        }
        self.cluster.release(fetcher.lease()).await;
    }

    /// Follows the snapshot: starts and stops fetchers after each reload
    /// until `shutdown`, then stops them all.
    pub fn spawn(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let mut generation = self.live.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = generation.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let rt = self.live.get();
                        self.sync(&rt).await;
                    }
                    _ = shutdown.changed() => break,
                }
            }
            self.stop_all().await;
        })
    }
}
