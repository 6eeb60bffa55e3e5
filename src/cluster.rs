//! Several pecgate instances on one store (PostgreSQL, shared spool).
//!
//! Each instance has an id (`[cluster] instance_id`) written into its claims,
//! leases and events. A heartbeat every quarter lease records the instance
//! as alive and extends the lease of every delivery it has in flight; the
//! same beat takes over deliveries whose lease expired (their instance died)
//! and kicks the dispatcher. Named leases (`pop3:<mailbox>`, `watchdog`) give
//! one instance at a time the right to poll a mailbox or run the watchdog;
//! a clean shutdown gives them up at once, a crash after `lease_secs`.
//! With SQLite there is one instance and every lease is simply its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::store::{InstanceInfo, Lease, Store};

pub struct Cluster {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    lease_ms: i64,
    info: InstanceInfo,
    kick: Arc<Notify>,
}

impl Cluster {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, lease_secs: u64, info: InstanceInfo, kick: Arc<Notify>) -> Self {
        Self { store, clock, lease_ms: lease_ms(lease_secs), info, kick }
    }

    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// How often the heartbeat runs: a quarter lease, between 1 s and 15 s.
    pub fn beat_interval(&self) -> Duration {
        Duration::from_millis((self.lease_ms / 4).clamp(1_000, 15_000) as u64)
    }

    /// At start-up: warns if this id looks alive elsewhere, then beats once.
    pub async fn start(&self) -> Result<(), crate::store::Error> {
        let now = self.clock.now_ms();
        let me = self.store.instances().await?.into_iter().find(|i| i.id == self.info.id);
        if let Some(prev) = me.filter(|i| i.stopped_at.is_none() && now - i.heartbeat_at < self.lease_ms) {
            tracing::warn!(
                instance = %self.info.id,
                seconds_ago = (now - prev.heartbeat_at) / 1000,
                "this instance id was alive moments ago: fine after a crash, but if another process runs with it, give each instance its own cluster.instance_id"
            );
        }
        self.beat().await
    }

    /// One heartbeat: alive, leases of our deliveries extended, dead instances' deliveries taken over.
    pub async fn beat(&self) -> Result<(), crate::store::Error> {
        let now = self.clock.now_ms();
        let info = InstanceInfo { heartbeat_at: now, ..self.info.clone() };
        self.store.heartbeat(&info, now + self.lease_ms).await?;
        let recovered = self.store.recover_sending(now, false).await?;
        if !recovered.is_empty() {
            metrics::counter!("pecgate_recovered_deliveries_total").increment(recovered.len() as u64);
            for r in &recovered {
                tracing::warn!(
                    queue_id = %r.id,
                    from_instance = r.holder.as_deref().unwrap_or("-"),
                    "delivery taken over: its instance stopped beating (a duplicate at the provider is possible)"
                );
            }
            self.kick.notify_one();
        }
        Ok(())
    }

    /// Takes or renews a named lease for `extra_ms` beyond the lease length.
    pub async fn hold(&self, name: &str, extra_ms: i64) -> bool {
        let now = self.clock.now_ms();
        match self.store.acquire_lease(name, now, now + self.lease_ms + extra_ms.max(0)).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "cannot take the lease; standing by");
                false
            }
        }
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = self.beat_interval();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "heartbeat failed; deliveries keep their claims until the lease runs out");
            }
        }
    }

    /// Gives up one lease held by this instance (a mailbox no longer polled here).
    pub async fn release(&self, name: &str) {
        if let Err(e) = self.store.release_lease(name).await {
            tracing::warn!(lease = name, error = %e, "cannot give up the lease; it runs out by itself");
        }
    }

    /// Clean shutdown: leases given up so another instance takes over now.
    pub async fn stop(&self, leases: &[String]) {
        for name in leases {
            let _ = self.store.release_lease(name).await;
        }
        let now = self.clock.now_ms();
        let info = InstanceInfo { heartbeat_at: now, stopped_at: Some(now), ..self.info.clone() };
        let _ = self.store.heartbeat(&info, now).await;
    }
}

/// The lease that lets one instance poll a mailbox.
pub fn pop3_lease(mailbox: &str) -> String {
    format!("pop3:{mailbox}")
}

pub const WATCHDOG_LEASE: &str = "watchdog";

/// `lease_secs` in milliseconds (bounded so that `now + lease` cannot overflow).
pub fn lease_ms(lease_secs: u64) -> i64 {
    i64::try_from(lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

/// "alive" (beating), "stopped" (clean shutdown) or "unresponsive" (no
/// heartbeat within the lease: crashed or cut off).
pub fn instance_status(info: &InstanceInfo, now: i64, lease_ms: i64) -> &'static str {
    match info.stopped_at {
        Some(_) => "stopped",
        None if now - info.heartbeat_at <= lease_ms => "alive",
        None => "unresponsive",
    }
}

/// The names of the leases `holder` holds at `now`.
pub fn held_leases<'a>(leases: &'a [Lease], holder: &str, now: i64) -> Vec<&'a str> {
    leases.iter().filter(|l| l.holder == holder && l.until >= now).map(|l| l.name.as_str()).collect()
}
