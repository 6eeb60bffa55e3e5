//! One mailbox's fetcher: polls the provider's server, hands every new
//! message to [`Ingest`], and deletes per `retention` only what is
//! committed. Each poll takes the runtime snapshot current when it starts
//! (server, password, retention, routing) and keeps it to its end.
//!
//! `leave` never deletes, `delete` right away, `delete-after` once the
//! message is older than `delete_after_days`; never before the injection
//! reached the corporate server. Ids already in the store are never fetched
//! twice, across restarts too. One poll at a time per mailbox (a mutex);
//! with several instances one holds the mailbox's lease and polls. Login or
//! network failures back off and tell the mailbox admin once per incident.
//!
//! A message pecgate cannot take (larger than its limit, a transfer that
//! never ends, or three failed transfers in a row while the rest works) is a
//! poison message: recorded once (`Store::skip_fetch`: id, size, reason),
//! left on the server untouched, reported to the mailbox admin once with
//! what to do, and skipped by later polls, so the rest of the mailbox keeps
//! flowing; `pecgate fetch --retry ID` forgets the skip.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::ingest::Ingest;
use super::{Error, FailureKind, FetchSource, Listed, Result, Settings};
use crate::clock::Clock;
use crate::cluster::{self, Cluster};
use crate::config::Retention;
use crate::runtime::{Live, Mailbox, Runtime};
use crate::store::{FetchedRecord, Skipped, Store};

/// Failed transfers of one message, in a row, before it counts as poison.
const POISON_AFTER: u32 = 3;
/// Sessions one poll may open: a poison message found mid-transfer leaves
/// the session unusable, and the poll goes on in a new one.
const SESSIONS_PER_POLL: usize = 5;

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub listed: usize,
    pub fetched: usize,
    pub deleted: usize,
    /// Messages left on the server because pecgate cannot take them (see `pecgate fetch --skipped`).
    pub skipped: usize,
    /// Another instance holds this mailbox's lease and polls it; nothing was done.
    pub standby: Option<String>,
}

/// Health of the mailbox as seen by the fetcher (status, readiness, metrics).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchStatus {
    pub last_poll: Option<i64>,
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// An incident was reported to the admin and has not ended yet.
    pub incident_open: bool,
    /// Another instance polls this mailbox (it holds the lease).
    pub standby: bool,
    /// `idling` (IMAP IDLE on an open session) or `polling` (between polls).
    pub mode: Option<&'static str>,
}

pub struct Fetcher {
    mailbox: String,
    live: Arc<Live>,
    ingest: Arc<Ingest>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Serialises polls: overlapping polls of one mailbox are impossible.
    poll_lock: tokio::sync::Mutex<()>,
    poll_now: Notify,
    status: Mutex<FetchStatus>,
    /// One instance at a time polls a mailbox (its lease).
    cluster: Arc<Cluster>,
    lease: String,
    /// When this instance last took or renewed the lease (ms; 0 = never).
    lease_held_at: AtomicI64,
    /// Failed transfers in a row, per message id (reset when one works).
    transfer_failures: Mutex<HashMap<String, u32>>,
    /// IMAP: the UIDVALIDITY each folder was last listed with, to log and count a reset.
    uidvalidity: Mutex<HashMap<String, u32>>,
    /// The session kept open after a poll to wait on (IMAP IDLE), with the
    /// runtime generation it was opened under: one connection per mailbox.
    session: tokio::sync::Mutex<Option<(u64, Box<dyn FetchSource>)>>,
    /// Messages the last poll left as they were because their injection had
    /// not reached the corporate server yet (`Disposition::Wait`).
    waiting: AtomicUsize,
    /// While some are waiting: how long the next IDLE round lasts before a
    /// re-poll marks them (ms; doubles up to `RECHECK_MAX`, 0 = not waiting).
    recheck_ms: AtomicU64,
}

/// IDLE is re-issued at least this often (RFC 2177: servers may drop it after 30 minutes).
const IDLE_MAX: Duration = Duration::from_secs(29 * 60);
/// A message fetched while idling is injected moments later; it is marked
/// (`\\Seen`, moved or deleted) by a re-poll after this long, then after
/// twice as long while its injection is still pending, up to `RECHECK_MAX`.
const RECHECK_FIRST: Duration = Duration::from_secs(2);
const RECHECK_MAX: Duration = Duration::from_secs(60);

/// What happens to a committed message on the provider's server.
enum Disposition {
    Delete,
    /// Stays; marked as handled where the protocol can (IMAP `\\Seen` or a move).
    Keep,
    /// Not injected yet: left exactly as it is.
    Wait,
}

/// How a poll's session ended.
enum SessionEnd {
    Done,
    /// A poison message broke the session; the poll goes on in a new one.
    Interrupted,
}

impl Fetcher {
    pub fn new(
        mailbox: &str,
        live: Arc<Live>,
        ingest: Arc<Ingest>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        cluster: Arc<Cluster>,
    ) -> Self {
        Self {
            mailbox: mailbox.to_owned(),
            live,
            ingest,
            store,
            clock,
            poll_lock: tokio::sync::Mutex::new(()),
            poll_now: Notify::new(),
            status: Mutex::new(FetchStatus::default()),
            lease: cluster::pop3_lease(mailbox),
            lease_held_at: AtomicI64::new(0),
            transfer_failures: Mutex::new(HashMap::new()),
            uidvalidity: Mutex::new(HashMap::new()),
            session: tokio::sync::Mutex::new(None),
            waiting: AtomicUsize::new(0),
            recheck_ms: AtomicU64::new(0),
            cluster,
        }
    }

    pub fn mailbox_id(&self) -> &str {
        &self.mailbox
    }

    pub fn lease(&self) -> &str {
        &self.lease
    }

    pub fn status(&self) -> FetchStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the background loop to poll now.
    pub fn wake(&self) {
        self.poll_now.notify_one();
    }

    /// The background loop: poll, wait the interval (longer while failing),
    /// repeat, until `stop` turns true; a poll in progress is finished first.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let _ = self.poll().await;
            if self.status().consecutive_failures == 0 && self.idle_until_change(&mut stop).await {
                continue;
            }
            self.set_mode("polling");
            let failures = self.status().consecutive_failures;
            let rt = self.live.get();
            let base = rt.mailbox(&self.mailbox).and_then(|m| super::settings(m)).map_or(60, |s| s.interval.as_secs().max(1));
            let wait = if failures == 0 { base } else { base.saturating_mul(1 << failures.min(6)).min(3600) };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = self.poll_now.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// A folder listed with a new UIDVALIDITY is fetched again under new ids;
    /// the store's duplicate protection keeps receipts from applying twice.
    /// The first listing after a start compares with the stored ids, so a
    /// reset while pecgate was stopped is seen too.
    async fn note_uidvalidity(&self, list: &[Listed]) -> Result<()> {
        let mut listed: Vec<(&str, u32)> = list.iter().filter_map(|l| super::imap::folder_validity(&l.uid)).collect();
        listed.dedup();
        for (folder, validity) in listed {
            let known = self.uidvalidity.lock().unwrap_or_else(|p| p.into_inner()).get(folder).copied();
            let old = match known {
                Some(old) => Some(old),
                None => self
                    .store
                    .newest_fetched_uidl(&self.mailbox, &format!("{folder}/"))
                    .await?
                    .and_then(|uid| super::imap::folder_validity(&uid).filter(|(f, _)| *f == folder).map(|(_, v)| v)),
            };
            self.uidvalidity.lock().unwrap_or_else(|p| p.into_inner()).insert(folder.to_owned(), validity);
            if let Some(old) = old.filter(|old| *old != validity) {
                tracing::warn!(mailbox = %self.mailbox, folder, old, new = validity, "IMAP UIDVALIDITY changed: folder re-listed");
                metrics::counter!("pecgate_imap_uidvalidity_changes_total", "mailbox" => self.mailbox.clone()).increment(1);
            }
        }
        Ok(())
    }

    /// `Some(round)` while the last poll left messages waiting for their
    /// injection: the IDLE round after which to poll again and mark them.
    fn next_recheck(&self) -> Option<Duration> {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            self.recheck_ms.store(0, Ordering::Relaxed);
            return None;
        }
        let first = u64::try_from(RECHECK_FIRST.as_millis()).unwrap_or(2000);
        let max = u64::try_from(RECHECK_MAX.as_millis()).unwrap_or(60_000);
        let previous = self.recheck_ms.load(Ordering::Relaxed);
        let next = if previous == 0 { first } else { previous.saturating_mul(2).min(max) };
        self.recheck_ms.store(next, Ordering::Relaxed);
        Some(Duration::from_millis(next))
    }

    fn set_mode(&self, mode: &'static str) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).mode = Some(mode);
    }

    /// Waits on the session the last poll kept (IMAP IDLE) until the server
    /// announces new mail (`true`: poll now), renewing the lease between
    /// IDLE rounds. `false`: no session to wait on, or the lease was lost;
    /// the caller polls on its interval. A dropped session counts as a
    /// change: the next poll reconnects (and backs off if that fails).
    async fn idle_until_change(&self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            let Some((generation, mut source)) = self.session.lock().await.take() else { return false };
            let rt = self.live.get();
            let Some(settings) = rt.mailbox(&self.mailbox).and_then(|m| super::settings(m)) else { return false };
            if generation != rt.generation || *stop.borrow() {
                return false;
            }
            self.set_mode("idling");
            let round = IDLE_MAX.min(Duration::from_millis(u64::try_from(self.cluster.lease_ms() / 2).unwrap_or(30_000).max(1000)));
            let recheck = self.next_recheck();
            let round = recheck.map_or(round, |r| r.min(round));
            tokio::select! {
                r = source.wait_for_changes(round) => match r {
                    Ok(true) => {
                        metrics::counter!("pecgate_imap_idle_wakeups_total", "mailbox" => self.mailbox.clone()).increment(1);
                        *self.session.lock().await = Some((generation, source));
                        return true;
                    }
                    Ok(false) => {
                        if !self.hold_lease(settings.interval).await {
                            return false;
                        }
                        *self.session.lock().await = Some((generation, source));
                        if recheck.is_some() {
                            return true;
                        }
                    }
                    Err(e) => {
                        tracing::info!(mailbox = %self.mailbox, error = %e, "IDLE session ended; reconnecting");
                        metrics::counter!("pecgate_imap_idle_errors_total", "mailbox" => self.mailbox.clone()).increment(1);
                        return true;
                    }
                },
                _ = self.poll_now.notified() => return true,
                _ = stop.changed() => return false,
            }
        }
    }

    /// One poll, serialised with any other poll of this mailbox.
    pub async fn poll(&self) -> Result<PollReport> {
        let _guard = self.poll_lock.lock().await;
        let rt = self.live.get();
        let Some((mailbox, settings)) = rt.mailbox(&self.mailbox).and_then(|m| Some((m, super::settings(m)?))) else {
            return Err(Error::Gone(self.mailbox.clone()));
        };
        let now = self.clock.now_ms();
        if !self.hold_lease(settings.interval).await {
            let holder = self.store.leases().await.ok().and_then(|l| l.into_iter().find(|l| l.name == self.lease)).map(|l| l.holder);
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if !s.standby {
                tracing::info!(mailbox = %self.mailbox, holder = holder.as_deref().unwrap_or("-"), "another instance polls this mailbox; standing by");
                // The holder reports the mailbox's health; a failure seen here before is not current.
                crate::metrics::mailbox_health(&self.mailbox, crate::metrics::Part::Poll, true);
                s.last_error = None;
                s.consecutive_failures = 0;
                s.incident_open = false;
            }
            s.standby = true;
            return Ok(PollReport { standby: Some(holder.unwrap_or_default()), ..Default::default() });
        }
        if std::mem::take(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()).standby) {
            tracing::info!(mailbox = %self.mailbox, "this instance now polls the mailbox");
        }
        let result = self.poll_locked(&rt, mailbox, &settings).await;
        self.record_outcome(&rt, mailbox, now, &result).await;
        result
    }

    async fn record_outcome(&self, rt: &Runtime, mailbox: &Mailbox, now: i64, result: &Result<PollReport>) {
        let mb = self.mailbox.clone();
        let (polls, errors) = match super::protocol(mailbox) {
            "imap" => ("pecgate_imap_polls_total", "pecgate_imap_errors_total"),
            _ => ("pecgate_pop3_polls_total", "pecgate_pop3_errors_total"),
        };
        match result {
            Ok(_) => {
                metrics::counter!(polls, "mailbox" => mb.clone(), "result" => "ok").increment(1);
                metrics::gauge!("pecgate_last_poll_success_timestamp_seconds", "mailbox" => mb.clone()).set((now / 1000) as f64);
            }
            Err(e) => {
                metrics::counter!(polls, "mailbox" => mb.clone(), "result" => "error").increment(1);
                metrics::counter!(errors, "mailbox" => mb.clone(), "kind" => e.metric_kind()).increment(1);
            }
        }
        crate::metrics::mailbox_health(&mb, crate::metrics::Part::Poll, result.is_ok());
        let notify_admin = {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.last_poll = Some(now);
            match result {
                Ok(report) => {
                    if s.incident_open {
                        tracing::info!(mailbox = %self.mailbox, "retrieval works again");
                    }
                    s.last_success = Some(now);
                    s.last_error = None;
                    s.consecutive_failures = 0;
                    s.incident_open = false;
                    if report.fetched > 0 || report.deleted > 0 {
                        tracing::info!(mailbox = %self.mailbox, listed = report.listed, fetched = report.fetched, deleted = report.deleted, "poll done");
                    }
                    None
                }
                Err(e) => {
                    s.consecutive_failures += 1;
                    s.last_error = Some(e.to_string());
                    tracing::warn!(mailbox = %self.mailbox, failures = s.consecutive_failures, error = %e, "poll failed");
                    // Auth failures are reported at once; network trouble after a few tries.
                    let report = !s.incident_open && (e.is_auth() || s.consecutive_failures >= 3);
                    if report {
                        s.incident_open = true;
                        let hint = e.is_auth().then(|| crate::watchdog::expired_password_hint(mailbox, self.clock.now_ms())).flatten();
                        Some(match hint {
                            Some(hint) => format!("{e}; {hint}"),
                            None => e.to_string(),
                        })
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(problem) = notify_admin {
            self.ingest.tell_admin(rt, mailbox, &problem).await;
        }
    }

    /// Takes or renews the mailbox lease, for a poll interval beyond the lease.
    async fn hold_lease(&self, interval: Duration) -> bool {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX / 4);
        let held = self.cluster.hold(&self.lease, interval_ms).await;
        let at = if held { self.clock.now_ms() } else { 0 };
        self.lease_held_at.store(at, Ordering::Relaxed);
        held
    }

    /// During a poll: renews the lease once a quarter of it has passed, not
    /// for every message (each renewal is a database commit).
    async fn keep_lease(&self, interval: Duration) -> bool {
        let since = self.clock.now_ms() - self.lease_held_at.load(Ordering::Relaxed);
        since < self.cluster.lease_ms() / 4 || self.hold_lease(interval).await
    }

    async fn poll_locked(&self, rt: &Runtime, mailbox: &Mailbox, settings: &Settings) -> Result<PollReport> {
        let mut report = PollReport::default();
        let mut kept = self.session.lock().await.take().filter(|(g, _)| *g == rt.generation).map(|(_, s)| s);
        for _ in 0..SESSIONS_PER_POLL {
            let reused = kept.is_some();
            // On any error the session is dropped without a commit: nothing marked is deleted.
            let mut source = match kept.take() {
                Some(s) => s,
                None => super::connect(mailbox).await?,
            };
            // Fetched counts over the sessions; skipped and deleted are the last session's.
            report.skipped = 0;
            report.deleted = 0;
            match self.poll_session(rt, mailbox, settings, source.as_mut(), &mut report).await {
                Ok(SessionEnd::Done) => {
                    if source.can_wait() {
                        *self.session.lock().await = Some((rt.generation, source));
                    }
                    break;
                }
                Ok(SessionEnd::Interrupted) => {}
                // A kept session may have died while idle: once more on a new one.
                Err(Error::Source(e)) if reused => {
                    tracing::debug!(mailbox = %self.mailbox, error = %e, "kept session unusable; reconnecting")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn poll_session(
        &self,
        rt: &Runtime,
        mailbox: &Mailbox,
        settings: &Settings,
        source: &mut dyn FetchSource,
        report: &mut PollReport,
    ) -> Result<SessionEnd> {
        let list = source.list().await?;
        report.listed = list.len();
        if source.protocol() == "imap" {
            self.note_uidvalidity(&list).await?;
        }
        let skipped: HashSet<String> = self.store.skipped(Some(&mailbox.id)).await?.into_iter().map(|s| s.uidl).collect();
        let limit = super::size_limit(&rt.config);
        let mut deleted = Vec::new();
        let mut waiting = 0;
        for item in list {
            let record = match self.store.fetched_by_uidl(&mailbox.id, &item.uid).await? {
                Some(r) => r,
                None if skipped.contains(&item.uid) => {
                    report.skipped += 1;
                    continue;
                }
                None if item.size.is_some_and(|size| size > limit) => {
                    let reason = format!("it is {} bytes, more than pecgate takes ({limit} bytes)", item.size.unwrap_or_default());
                    self.poison(rt, mailbox, &item, reason).await?;
                    report.skipped += 1;
                    continue;
                }
                None => {
                    // A long poll keeps its lease; if it was lost, the new holder carries on.
                    if !self.keep_lease(settings.interval).await {
                        tracing::warn!(mailbox = %self.mailbox, "mailbox lease lost during the poll; stopping here");
                        break;
                    }
                    let origin = format!("{} mailbox {} uidl {}", source.protocol(), mailbox.id, item.uid);
                    match self.ingest.fetch(rt, mailbox, source, &item, &origin, settings.timeout).await {
                        Ok(r) => {
                            self.failures().remove(&item.uid);
                            report.fetched += 1;
                            r
                        }
                        Err(Error::Source(e)) => {
                            let failures = {
                                let mut all = self.failures();
                                let n = all.entry(item.uid.clone()).or_default();
                                *n += 1;
                                *n
                            };
                            let reason = match e.kind {
                                FailureKind::TooLarge => Some(format!("it is larger than pecgate takes ({limit} bytes)")),
                                FailureKind::Deadline => Some(format!(
                                    "its transfer did not end within {} seconds",
                                    super::transfer_deadline(&item, settings.timeout).as_secs()
                                )),
                                FailureKind::Network | FailureKind::Protocol if failures >= POISON_AFTER => {
                                    Some(format!("its transfer failed {failures} times in a row (last: {e})"))
                                }
                                _ => None,
                            };
                            let Some(reason) = reason else { return Err(e.into()) };
                            self.failures().remove(&item.uid);
                            self.poison(rt, mailbox, &item, reason).await?;
                            report.skipped += 1;
                            return Ok(SessionEnd::Interrupted);
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            match self.disposition(settings, &record).await? {
                Disposition::Delete => {
                    source.mark_deleted(&item).await?;
                    deleted.push(item.uid);
                }
                Disposition::Keep => source.mark_kept(&item).await?,
                Disposition::Wait => waiting += 1,
            }
        }
        self.waiting.store(waiting, Ordering::Relaxed);
        // The commit applies the deletions; only then are they recorded.
        source.commit().await?;
        if !deleted.is_empty() {
            self.store.mark_fetched_deleted(&mailbox.id, &deleted, self.clock.now_ms()).await?;
            report.deleted = deleted.len();
        }
        Ok(SessionEnd::Done)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.transfer_failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a message pecgate cannot take, once, and tells the mailbox admin what to do.
    async fn poison(&self, rt: &Runtime, mailbox: &Mailbox, item: &Listed, reason: String) -> Result<()> {
        let skipped = Skipped { mailbox_id: mailbox.id.clone(), uidl: item.uid.clone(), size: item.size, reason, at: self.clock.now_ms() };
        self.store.skip_fetch(&skipped).await?;
        metrics::counter!("pecgate_fetch_skipped_total", "mailbox" => mailbox.id.clone()).increment(1);
        tracing::warn!(mailbox = %mailbox.id, uidl = %item.uid, size = ?item.size, reason = %skipped.reason, "message left on the provider's server and skipped");
        let problem = format!(
            "The message with id {} on the provider's server ({}) cannot be fetched: {}. It was left on the server untouched, and the rest of the mailbox keeps flowing. \
             Read it in the provider's webmail; or, if a limit was too low, raise it (e.g. [smtp] max_message_size), run `pecgate reload`, then `pecgate fetch --retry {} --mailbox {}` to fetch it again.",
            item.uid,
            item.size.map_or("size unknown".to_owned(), |s| format!("{s} bytes")),
            skipped.reason,
            item.uid,
            mailbox.id
        );
        self.ingest.tell_admin(rt, mailbox, &problem).await;
        Ok(())
    }

    /// Retention, and never before the injection reached the corporate
    /// server: while that server is down the provider's copy stays as it is.
    async fn disposition(&self, settings: &Settings, r: &FetchedRecord) -> Result<Disposition> {
        let injected = match &r.injection {
            None => true,
            Some(injection) => self.store.message(injection).await?.is_some_and(|m| m.state == crate::store::MessageState::Submitted),
        };
        if !injected {
            return Ok(Disposition::Wait);
        }
        let due = match settings.retention {
            Retention::Leave => false,
            Retention::Delete => true,
            Retention::DeleteAfter => self.clock.now_ms() - r.fetched_at >= i64::from(settings.delete_after_days) * 86_400_000,
        };
        Ok(if due { Disposition::Delete } else { Disposition::Keep })
    }
}
