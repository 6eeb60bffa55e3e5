//! The per-mailbox fetcher: polls the provider's POP3 server, stores every
//! new message byte-for-byte, classifies it, correlates receipts with what
//! was sent, routes it and queues its injection into the corporate server.
//!
//! Safety order for each message (nothing is lost between fetch and inject):
//! RETR into `tmp/`, fsync, rename into `fetched/`; then one store commit
//! holding the fetched record, the receipt's effect on the sent message and
//! the injection row (whose spool files were written first). Only after that
//! commit may the message be deleted from the provider, per `retention`:
//! `leave` never, `delete` right away, `delete-after` once it is older than
//! `delete_after_days`. DELE takes effect at QUIT (RFC 1939 UPDATE state), so
//! a crash before QUIT deletes nothing. UIDLs already in the store are never
//! fetched twice, across restarts too. One poll at a time per mailbox (a
//! mutex), and login or network failures back off and tell the mailbox admin
//! once per incident.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{Notify, watch};

use super::client::{self as pop3, Client, Endpoint};
use crate::clock::Clock;
use crate::cluster::{self, Cluster};
use crate::config::{Config, InjectMode, MailboxConfig, MailboxPop3Config, Retention, Security};
use crate::correlate::correlate;
use crate::enqueue::{self, Enqueue};
use crate::notify::{self, Delivery};
use crate::pec::{self, Classification};
use crate::queue::spool::Spool;
use crate::route::route;
use crate::store::{self, FetchedRecord, MessageKind, Route, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("POP3: {0}")]
    Pop3(#[from] pop3::Error),
    #[error("storing a fetched message: {0}")]
    Spool(#[source] io::Error),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("queueing the injection: {0}")]
    Enqueue(#[from] enqueue::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] crate::tls::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `kind` label of `pecgate_pop3_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            Error::Pop3(e) if e.is_auth() => "auth",
            Error::Pop3(pop3::Error::Connect { .. } | pop3::Error::Tls { .. } | pop3::Error::Timeout { .. } | pop3::Error::Io { .. }) => {
                "network"
            }
            Error::Pop3(_) => "protocol",
            Error::Spool(_) | Error::Store(_) | Error::Enqueue(_) | Error::Tls(_) => "storage",
        }
    }
}

/// The configured trust store (validated at load; empty if none).
fn load_trust_store(config: &Config) -> pec::signature::TrustStore {
    config
        .pec
        .trust_store
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|pem| pec::signature::TrustStore::from_pem(&pem).ok())
        .unwrap_or_else(pec::signature::TrustStore::empty)
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PollReport {
    pub listed: usize,
    pub fetched: usize,
    pub deleted: usize,
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
}

pub struct Fetcher {
    config: Arc<Config>,
    mailbox: MailboxConfig,
    pop3: MailboxPop3Config,
    endpoint: Endpoint,
    store: Arc<dyn Store>,
    spool: Spool,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
    /// Serialises polls: overlapping polls of one mailbox are impossible.
    poll_lock: tokio::sync::Mutex<()>,
    poll_now: Notify,
    status: Mutex<FetchStatus>,
    /// Trusted PEC provider CAs for the signature check (`[pec] trust_store`).
    trust: pec::signature::TrustStore,
    /// One instance at a time polls a mailbox (its lease).
    cluster: Arc<Cluster>,
    lease: String,
    /// When this instance last took or renewed the lease (ms; 0 = never).
    lease_held_at: std::sync::atomic::AtomicI64,
}

impl Fetcher {
    pub fn new(
        config: Arc<Config>,
        mailbox: &MailboxConfig,
        store: Arc<dyn Store>,
        spool: Spool,
        enqueue: Arc<Enqueue>,
        clock: Arc<dyn Clock>,
        cluster: Arc<Cluster>,
    ) -> Result<Option<Self>> {
        let Some(p) = mailbox.pop3.clone() else { return Ok(None) };
        let endpoint = Endpoint {
            host: p.host.clone(),
            port: p.port,
            security: if p.security == Security::Starttls { pop3::Security::StartTls } else { pop3::Security::Tls },
            tls: crate::tls::client_config(p.ca_file.as_deref())?,
            timeout: Duration::from_secs(p.timeout_secs.max(1)),
        };
        Ok(Some(Self {
            mailbox: mailbox.clone(),
            pop3: p,
            endpoint,
            store,
            spool,
            enqueue,
            clock,
            poll_lock: tokio::sync::Mutex::new(()),
            poll_now: Notify::new(),
            status: Mutex::new(FetchStatus::default()),
            trust: load_trust_store(&config),
            config,
            lease: cluster::pop3_lease(&mailbox.id),
            lease_held_at: std::sync::atomic::AtomicI64::new(0),
            cluster,
        }))
    }

    pub fn mailbox_id(&self) -> &str {
        &self.mailbox.id
    }

    pub fn status(&self) -> FetchStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the background loop to poll now.
    pub fn wake(&self) {
        self.poll_now.notify_one();
    }

    /// The background loop: poll, wait `interval_secs` (longer while failing), repeat.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let _ = self.poll().await;
            let failures = self.status().consecutive_failures;
            let base = self.pop3.interval_secs.max(1);
            let wait = if failures == 0 { base } else { base.saturating_mul(1 << failures.min(6)).min(3600) };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = self.poll_now.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One poll, serialised with any other poll of this mailbox.
    pub async fn poll(&self) -> Result<PollReport> {
        let _guard = self.poll_lock.lock().await;
        let now = self.clock.now_ms();
        if !self.hold_lease().await {
            let holder = self.store.leases().await.ok().and_then(|l| l.into_iter().find(|l| l.name == self.lease)).map(|l| l.holder);
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if !s.standby {
                tracing::info!(mailbox = %self.mailbox.id, holder = holder.as_deref().unwrap_or("-"), "another instance polls this mailbox; standing by");
                // The holder reports the mailbox's health; a failure seen here before is not current.
                crate::metrics::mailbox_health(&self.mailbox.id, crate::metrics::Part::Poll, true);
                s.last_error = None;
                s.consecutive_failures = 0;
                s.incident_open = false;
            }
            s.standby = true;
            return Ok(PollReport { standby: Some(holder.unwrap_or_default()), ..Default::default() });
        }
        if std::mem::take(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()).standby) {
            tracing::info!(mailbox = %self.mailbox.id, "this instance now polls the mailbox");
        }
        let result = self.poll_locked().await;
        self.record_outcome(now, &result).await;
        result
    }

    async fn record_outcome(&self, now: i64, result: &Result<PollReport>) {
        let mb = self.mailbox.id.clone();
        match result {
            Ok(_) => {
                metrics::counter!("pecgate_pop3_polls_total", "mailbox" => mb.clone(), "result" => "ok").increment(1);
                metrics::gauge!("pecgate_last_poll_success_timestamp_seconds", "mailbox" => mb.clone()).set((now / 1000) as f64);
            }
            Err(e) => {
                metrics::counter!("pecgate_pop3_polls_total", "mailbox" => mb.clone(), "result" => "error").increment(1);
                metrics::counter!("pecgate_pop3_errors_total", "mailbox" => mb.clone(), "kind" => e.metric_kind()).increment(1);
            }
        }
        crate::metrics::mailbox_health(&mb, crate::metrics::Part::Poll, result.is_ok());
        let notify_admin = {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.last_poll = Some(now);
            match result {
                Ok(report) => {
                    if s.incident_open {
                        tracing::info!(mailbox = %self.mailbox.id, "POP3 works again");
                    }
                    s.last_success = Some(now);
                    s.last_error = None;
                    s.consecutive_failures = 0;
                    s.incident_open = false;
                    if report.fetched > 0 || report.deleted > 0 {
                        tracing::info!(mailbox = %self.mailbox.id, listed = report.listed, fetched = report.fetched, deleted = report.deleted, "poll done");
                    }
                    None
                }
                Err(e) => {
                    s.consecutive_failures += 1;
                    s.last_error = Some(e.to_string());
                    tracing::warn!(mailbox = %self.mailbox.id, failures = s.consecutive_failures, error = %e, "poll failed");
                    // Auth failures are reported at once; network trouble after a few tries.
                    let report = !s.incident_open && (matches!(e, Error::Pop3(p) if p.is_auth()) || s.consecutive_failures >= 3);
                    if report {
                        s.incident_open = true;
                        Some(e.to_string())
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(problem) = notify_admin {
            self.notify_admin(&problem).await;
        }
    }

    async fn notify_admin(&self, problem: &str) {
        let Some(admin) = self.mailbox.admin() else { return };
        let now = self.clock.now_ms();
        let id = crate::queue::new_queue_id(now);
        let c = &self.config.corporate;
        let (bytes, message_id) = notify::mailbox_notice(&notify::MailboxNotice {
            from: &c.from,
            to: &admin.address,
            mailbox_address: &self.mailbox.address,
            problem,
            hostname: &self.config.smtp.hostname,
            language: c.language,
            date_unix: now / 1000,
            id: &id,
        });
        let env = enqueue::Envelope {
            kind: MessageKind::Notice,
            route: Route::Corporate,
            mail_from: c.from.clone(),
            rcpts: vec![admin.address.clone()],
            original_sender: c.from.clone(),
            message_id,
            subject: format!("mailbox {} problem", self.mailbox.id),
            origin: format!("fetcher of mailbox {}", self.mailbox.id),
        };
        match self.enqueue.submit_bytes(&bytes, env).await {
            Ok(qid) => tracing::warn!(mailbox = %self.mailbox.id, notice = %qid, to = %admin.address, "mailbox admin notified"),
            Err(e) => tracing::error!(mailbox = %self.mailbox.id, error = %e, "cannot queue the admin notice"),
        }
    }

    /// Takes or renews the mailbox lease, for a poll interval beyond the lease.
    async fn hold_lease(&self) -> bool {
        let interval_ms = i64::try_from(self.pop3.interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let held = self.cluster.hold(&self.lease, interval_ms).await;
        let at = if held { self.clock.now_ms() } else { 0 };
        self.lease_held_at.store(at, std::sync::atomic::Ordering::Relaxed);
        held
    }

    /// During a poll: renews the lease once a quarter of it has passed, not
    /// for every message (each renewal is a database commit).
    async fn keep_lease(&self) -> bool {
        let since = self.clock.now_ms() - self.lease_held_at.load(std::sync::atomic::Ordering::Relaxed);
        since < self.cluster.lease_ms() / 4 || self.hold_lease().await
    }

    async fn poll_locked(&self) -> Result<PollReport> {
        let mut client = Client::connect(&self.endpoint).await?;
        client.login(&self.mailbox.username, &self.mailbox.resolved_password).await?;
        let list = client.uidl().await?;
        let mut report = PollReport { listed: list.len(), ..Default::default() };
        let mut deleted = Vec::new();
        let limit = self.config.smtp.max_message_size.saturating_mul(2).saturating_add(10 * 1024 * 1024);
        let deadline = Duration::from_secs(self.pop3.timeout_secs.max(1).saturating_mul(20));
        for (n, uidl) in list {
            let record = match self.store.fetched_by_uidl(&self.mailbox.id, &uidl).await? {
                Some(r) => r,
                None => {
                    // A long poll keeps its lease; if it was lost, the new holder carries on.
                    if !self.keep_lease().await {
                        tracing::warn!(mailbox = %self.mailbox.id, "mailbox lease lost during the poll; stopping here");
                        break;
                    }
                    let r = self.fetch_one(&mut client, n, &uidl, limit, deadline).await?;
                    report.fetched += 1;
                    r
                }
            };
            if self.should_delete(&record).await? {
                client.dele(n).await?;
                deleted.push(uidl);
            }
        }
        // QUIT commits the DELEs; only then are they recorded.
        client.quit().await?;
        if !deleted.is_empty() {
            self.store.mark_fetched_deleted(&self.mailbox.id, &deleted, self.clock.now_ms()).await?;
            report.deleted = deleted.len();
        }
        Ok(report)
    }

    fn record_fetch_metrics(&self, c: &Classification, sent: Option<&crate::store::Message>) {
        let mb = self.mailbox.id.clone();
        metrics::counter!("pecgate_pop3_messages_fetched_total", "mailbox" => mb.clone()).increment(1);
        let kind = c.kind.as_str();
        if !c.kind.is_receipt() {
            metrics::counter!("pecgate_inbound_messages_total", "mailbox" => mb, "kind" => kind).increment(1);
            return;
        }
        metrics::counter!("pecgate_receipts_total", "mailbox" => mb.clone(), "kind" => kind).increment(1);
        let Some(m) = sent else {
            metrics::counter!("pecgate_receipts_unmatched_total", "mailbox" => mb).increment(1);
            return;
        };
        // From acceptance by pecgate to the provider's time in daticert.
        if matches!(c.kind, pec::Kind::Accettazione | pec::Kind::AvvenutaConsegna)
            && let Some(at) = c.daticert.as_ref().and_then(|d| d.data)
        {
            // daticert times have whole seconds: a fast receipt may look up to 1 s early.
            let secs = (at.timestamp_millis() - m.created_at) as f64 / 1000.0;
            if secs > -2.0 {
                metrics::histogram!("pecgate_receipt_latency_seconds", "mailbox" => mb, "kind" => kind).record(secs.max(0.0));
            }
        }
    }

    /// Retention, and never before the injection reached the corporate
    /// server: while that server is down the provider's copy stays.
    async fn should_delete(&self, r: &FetchedRecord) -> Result<bool> {
        let due = match self.pop3.retention {
            Retention::Leave => false,
            Retention::Delete => true,
            Retention::DeleteAfter => self.clock.now_ms() - r.fetched_at >= i64::from(self.pop3.delete_after_days) * 86_400_000,
        };
        if !due {
            return Ok(false);
        }
        let Some(injection) = &r.injection else { return Ok(true) };
        Ok(self.store.message(injection).await?.is_some_and(|m| m.state == crate::store::MessageState::Submitted))
    }

    /// RETR to a durable file, then classify, correlate, route and commit.
    async fn fetch_one(&self, client: &mut Client, n: u32, uidl: &str, limit: u64, deadline: Duration) -> Result<FetchedRecord> {
        let now = self.clock.now_ms();
        let id = crate::queue::new_queue_id(now);
        let tmp = self.spool.fetched_tmp(&id);
        let size = {
            let file = tokio::fs::File::create(&tmp).await.map_err(Error::Spool)?;
            let mut out = BufWriter::with_capacity(64 * 1024, file);
            let size = match client.retr(n, &mut out, limit, deadline).await {
                Ok(size) => size,
                Err(e) => {
                    drop(out);
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(e.into());
                }
            };
            out.flush().await.map_err(Error::Spool)?;
            out.get_mut().sync_all().await.map_err(Error::Spool)?;
            size
        };
        self.spool.commit_fetched(&id).await.map_err(Error::Spool)?;
        // Classification works on a copy in memory; the stored file is never touched again.
        let raw = tokio::fs::read(self.spool.fetched_path(&id)).await.map_err(Error::Spool)?;
        let c = pec::classify(&raw);
        let sig = pec::signature::verify(&raw, &self.trust, c.daticert.as_ref().and_then(|d| d.data));
        match self.route_and_commit(&id, uidl, size, now, &c, &sig, &raw).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // Not committed: the POP3 copy stays and is fetched again next time.
                let _ = tokio::fs::remove_file(self.spool.fetched_path(&id)).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn route_and_commit(
        &self,
        id: &str,
        uidl: &str,
        size: u64,
        now: i64,
        c: &Classification,
        sig: &pec::signature::SignatureReport,
        raw: &[u8],
    ) -> Result<FetchedRecord> {
        let daticert = c.daticert.as_ref();
        let identificativo = daticert.map(|d| d.identificativo.clone()).filter(|s| !s.is_empty());
        let (sent, update, status) = if c.kind.is_receipt() {
            let mut ids: Vec<&str> = Vec::new();
            if let Some(r) = c.riferimento_message_id.as_deref() {
                ids.push(r);
            }
            if let Some(m) = daticert.and_then(|d| d.msgid.as_deref()) {
                ids.push(m);
            }
            match self.store.find_sent(&self.mailbox.id, &ids, identificativo.as_deref()).await? {
                Some(m) => {
                    let recipients = self.store.recipients(&m.id).await?;
                    let update = correlate(c, &m.id, m.state, &recipients);
                    let status: Vec<String> = recipients
                        .iter()
                        .map(|r| {
                            let state = update
                                .as_ref()
                                .and_then(|u| u.recipients.iter().find(|(a, _)| a == &r.address))
                                .map(|(_, s)| *s)
                                .unwrap_or(r.state);
                            format!("{}: {state}", r.address)
                        })
                        .collect();
                    (Some(m), update, status)
                }
                None => (None, None, Vec::new()),
            }
        } else {
            (None, None, Vec::new())
        };
        let to = route(c.kind, &self.mailbox, sent.as_ref().map(|m| m.original_sender.as_str()));
        let corp = &self.config.corporate;
        let delivery = Delivery {
            from: &corp.from,
            to: &to,
            mailbox_id: &self.mailbox.id,
            mailbox_address: &self.mailbox.address,
            fetched_id: id,
            classification: c,
            status: &status,
            hostname: &self.config.smtp.hostname,
            language: corp.language,
            date_unix: now / 1000,
            signature: Some(sig),
        };
        let wrapped = match corp.mode {
            InjectMode::Inline => notify::inline_wrap(&delivery, raw),
            InjectMode::Attach => notify::attach_wrap(&delivery, raw),
        };
        let subject = c.subject.clone().unwrap_or_default();
        let env = enqueue::Envelope {
            kind: MessageKind::Injection,
            route: Route::Corporate,
            mail_from: corp.from.clone(),
            rcpts: to.clone(),
            original_sender: c.daticert.as_ref().map(|d| d.mittente.clone()).unwrap_or_default(),
            message_id: c.message_id.clone().unwrap_or_default(),
            subject: subject.clone(),
            origin: format!("pop3 mailbox {} uidl {uidl} ({})", self.mailbox.id, c.kind.as_str()),
        };
        let injection = self.enqueue.prepare_bytes(&wrapped, env).await?;
        let record = FetchedRecord {
            id: id.to_owned(),
            mailbox_id: self.mailbox.id.clone(),
            uidl: uidl.to_owned(),
            fetched_at: now,
            size,
            kind: c.kind.as_str().to_owned(),
            subject,
            message_id: c.message_id.clone(),
            riferimento: c.riferimento_message_id.clone(),
            identificativo,
            consegna: daticert.and_then(|d| d.consegna.clone()),
            related_message: sent.as_ref().map(|m| m.id.clone()),
            routed_to: to.clone(),
            injection: Some(injection.id.clone()),
            signature: Some(sig.verdict.as_str().to_owned()),
            signer: sig.signer.clone(),
            deleted_at: None,
            fetched_by: None,
        };
        if let Err(e) = self.store.commit_fetched(&record, update.as_ref(), std::slice::from_ref(&injection)).await {
            self.spool.remove(&injection.id).await;
            // Another instance stored it first (lease handover): its copy counts, ours goes.
            if let Ok(Some(theirs)) = self.store.fetched_by_uidl(&self.mailbox.id, uidl).await {
                let _ = tokio::fs::remove_file(self.spool.fetched_path(id)).await;
                tracing::info!(mailbox = %self.mailbox.id, uidl = %uidl, by = theirs.fetched_by.as_deref().unwrap_or("-"), "already stored by another instance");
                return Ok(theirs);
            }
            return Err(e.into());
        }
        self.enqueue.kick();
        self.record_fetch_metrics(c, sent.as_ref());
        metrics::counter!("pecgate_signature_verdicts_total", "mailbox" => self.mailbox.id.clone(), "verdict" => sig.verdict.as_str())
            .increment(1);
        if matches!(sig.verdict, pec::signature::Verdict::Invalid | pec::signature::Verdict::Malformed) {
            let problem = format!(
                "message {id} ({}, \"{}\") has a {} provider signature: {}. It was delivered marked X-Pecgate-Signature; keep the stored original as evidence.",
                c.kind.as_str(),
                c.subject.as_deref().unwrap_or(""),
                sig.verdict.as_str(),
                sig.detail
            );
            tracing::warn!(mailbox = %self.mailbox.id, fetched_id = %id, verdict = sig.verdict.as_str(), detail = %sig.detail, "signature check failed");
            self.notify_admin(&problem).await;
        }
        tracing::info!(
            mailbox = %self.mailbox.id,
            fetched_id = %id,
            uidl = %uidl,
            kind = %c.kind.as_str(),
            related = %sent.as_ref().map(|m| m.id.as_str()).unwrap_or("-"),
            to = %to.join(","),
            queue_id = %injection.id,
            "fetched"
        );
        if sent.is_none() && c.kind.is_receipt() {
            tracing::info!(mailbox = %self.mailbox.id, fetched_id = %id, "receipt for a message not sent through pecgate (webmail or unknown id); routed to the receivers");
        }
        Ok(record)
    }
}
