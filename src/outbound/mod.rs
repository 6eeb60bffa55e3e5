//! Delivery: takes due messages from the queue and sends them to their
//! destination, a PEC provider (with that mailbox's credentials) or the
//! corporate server. One retry policy for both (`queue::scheduler`).
//!
//! Per destination: at most `max_connections` deliveries at once, idle
//! connections reused for the next message, and for providers the
//! mailbox's `rate_limit_per_minute`. Outcomes are per recipient: 2xx ->
//! submitted, 5xx -> failed (the sender is told by a notice through the
//! corporate server), anything else -> deferred and retried with backoff
//! until the maximum age. A 5xx the `replies` table reads as "too fast"
//! lowers the mailbox's rate and defers; one that says the login does not
//! own the sender defers and tells the mailbox admin once. A session-level failure (connect, TLS, AUTH) never
//! fails a message by itself: it is retried, because the fix (credentials,
//! network) is on our side.
//!
//! Destinations come from the runtime snapshot: after a reload the next
//! dispatch builds them anew (new host, password or CA take effect from the
//! next connection), keeping each mailbox's connection slots and rate-limit
//! window; a delivery in flight finishes with the snapshot it started with.
//! A message whose mailbox is no longer configured stays queued (deferred,
//! like any temporary failure) until it is put back or the message expires.

pub mod client;
pub mod rate;
pub mod replies;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use self::client::{ClientError, Endpoint, Scope, Severity, SmtpClient, Stage};
use self::rate::RateLimiter;
use self::replies::Meaning;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::enqueue::Enqueue;
use crate::notify::{self, FailedRecipient};
use crate::queue::scheduler::RetryPolicy;
use crate::queue::spool::Spool;
use crate::runtime::{Live, Runtime};
use crate::store::{Attempt, Message, MessageKind, MessageState, RecipientOutcome, RecipientState, Route, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS configuration for {what}: {source}")]
    Tls { what: String, source: crate::tls::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long deliveries may finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a message refused as "too fast" waits at least (providers count per minute).
const THROTTLE_BACKOFF_MS: i64 = 60_000;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Destination {
    endpoint: Endpoint,
    slots: Arc<Semaphore>,
    max_connections: usize,
    /// The provider's limit is per mailbox: with a shared store it is counted
    /// in the store, across instances; otherwise here.
    rate: Arc<Mutex<RateLimiter>>,
    idle: Mutex<Vec<(SmtpClient, Instant)>>,
}

/// The destinations of one runtime generation.
struct Destinations {
    generation: u64,
    map: HashMap<String, Arc<Destination>>,
}

impl Destinations {
    /// Everything the snapshot names; slots and rate windows carry over from `old`.
    fn build(rt: &Runtime, old: &HashMap<String, Arc<Destination>>) -> Self {
        let helo = rt.config.smtp.hostname.clone();
        let mut map = HashMap::new();
        let mut add = |key: String, endpoint: Endpoint, max_connections: usize, rate_per_minute: u32| {
            let prev = old.get(&key);
            let slots = match prev {
                Some(p) if p.max_connections == max_connections => p.slots.clone(),
                _ => Arc::new(Semaphore::new(max_connections)),
            };
            let rate = match prev {
                Some(p) => {
                    lock(&p.rate).set_limit(rate_per_minute);
                    p.rate.clone()
                }
                None => Arc::new(Mutex::new(RateLimiter::new(rate_per_minute))),
            };
            let d = Destination { endpoint, slots, max_connections, rate, idle: Mutex::new(Vec::new()) };
            map.insert(key, Arc::new(d));
        };
        for m in &rt.mailboxes {
            let endpoint = Endpoint {
                host: m.smtp.host.clone(),
                port: m.smtp.port,
                security: m.smtp.security,
                tls: m.smtp_tls.clone(),
                timeout: Duration::from_secs(m.smtp.timeout_secs),
                credentials: Some((m.username.clone(), m.password.clone())),
                helo: helo.clone(),
            };
            add(route_key(&Route::Provider(m.id.clone())), endpoint, m.smtp.max_connections, m.rate_limit_per_minute);
        }
        let c = &rt.config.corporate;
        let endpoint = Endpoint {
            host: c.host.clone(),
            port: c.port,
            security: c.security,
            tls: rt.corporate_tls.clone(),
            timeout: Duration::from_secs(c.timeout_secs),
            credentials: match (&c.username, &rt.secrets.corporate) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                _ => None,
            },
            helo,
        };
        add(route_key(&Route::Corporate), endpoint, c.max_connections.max(1), 0);
        Self { generation: rt.generation, map }
    }
}

impl Destination {
    fn take_idle(&self) -> Option<SmtpClient> {
        let mut idle = lock(&self.idle);
        while let Some((c, since)) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && c.is_healthy() {
                return Some(c);
            }
        }
        None
    }

    fn put_idle(&self, c: SmtpClient) {
        if c.is_healthy() {
            lock(&self.idle).push((c, Instant::now()));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn route_key(route: &Route) -> String {
    match route {
        Route::Provider(id) => format!("provider:{id}"),
        Route::Corporate => "corporate".into(),
    }
}

pub struct Outbound {
    store: Arc<dyn Store>,
    spool: Spool,
    clock: Arc<dyn Clock>,
    live: Arc<Live>,
    destinations: Mutex<Destinations>,
    enqueue: Arc<Enqueue>,
    kick: Arc<Notify>,
    /// Group commit of delivery results (see [`GroupCommit`]).
    results: mpsc::Sender<PendingResult>,
    /// Claim leases and the instance name.
    cluster: Arc<Cluster>,
    /// Mailboxes whose login does not own their address, admin already told
    /// (cleared by the next submission that goes through).
    misconfigured: Mutex<HashSet<String>>,
    /// The clock time the last dispatch pass ran with (tests stepping a manual clock wait on it).
    last_pass: std::sync::atomic::AtomicI64,
}

type PendingResult = (String, Attempt, oneshot::Sender<std::result::Result<(), String>>);

/// Group commit: deliveries finishing while a commit is running are written
/// together in the next one, so 20 parallel deliveries cost one fsync
/// instead of twenty. Each delivery still waits for its own result to be
/// durable before it logs, notifies or reports.
struct GroupCommit;

impl GroupCommit {
    const MAX_BATCH: usize = 128;

    fn spawn(store: Arc<dyn Store>) -> mpsc::Sender<PendingResult> {
        let (tx, mut rx) = mpsc::channel::<PendingResult>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < Self::MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let items: Vec<(String, Attempt)> = batch.iter().map(|(id, a, _)| (id.clone(), a.clone())).collect();
                let result = store.record_attempts(&items).await.map_err(|e| e.to_string());
                for (_, _, reply) in batch {
                    let _ = reply.send(result.clone());
                }
            }
        });
        tx
    }
}

impl Outbound {
    pub fn new(
        live: Arc<Live>,
        store: Arc<dyn Store>,
        spool: Spool,
        clock: Arc<dyn Clock>,
        enqueue: Arc<Enqueue>,
        kick: Arc<Notify>,
        cluster: Arc<Cluster>,
    ) -> Self {
        let destinations = Mutex::new(Destinations::build(&live.get(), &HashMap::new()));
        let results = GroupCommit::spawn(store.clone());
        Self {
            store,
            spool,
            clock,
            live,
            destinations,
            enqueue,
            kick,
            results,
            cluster,
            misconfigured: Mutex::new(HashSet::new()),
            last_pass: Default::default(),
        }
    }

    /// The snapshot for this dispatch and its destinations (rebuilt after a reload).
    fn current(&self) -> (Arc<Runtime>, HashMap<String, Arc<Destination>>) {
        let rt = self.live.get();
        let mut d = lock(&self.destinations);
        if d.generation != rt.generation {
            *d = Destinations::build(&rt, &d.map);
        }
        (rt, d.map.clone())
    }

    /// The dispatcher loop: runs until `shutdown` turns true, then gives
    /// in-flight deliveries a few seconds and abandons the rest (they are
    /// `sending` in the store and retried at the next start).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut inflight = JoinSet::new();
        loop {
            while inflight.try_join_next().is_some() {}
            if *shutdown.borrow() {
                let drain = async { while inflight.join_next().await.is_some() {} };
                if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
                    tracing::warn!("deliveries still running at shutdown were abandoned; they are retried at the next start");
                }
                return;
            }
            let wait = match self.dispatch_due(&mut inflight).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "queue scan failed; retrying in 5s");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The clock time (ms) of the last finished dispatch pass.
    pub fn last_pass(&self) -> i64 {
        self.last_pass.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts every due delivery that has a free slot; returns how long to wait.
    async fn dispatch_due(self: &Arc<Self>, inflight: &mut JoinSet<()>) -> std::result::Result<Duration, crate::store::Error> {
        let now = self.clock.now_ms();
        let (rt, destinations) = self.current();
        let due = self.store.due_messages(now, 500).await?;
        let mut wait_until = now + 30_000;
        let mut ready = Vec::new();
        let mut rate_limited = HashSet::new();
        for m in due {
            let key = route_key(&m.route);
            if rate_limited.contains(&key) {
                continue;
            }
            let Some(dest) = destinations.get(&key).cloned() else {
                self.defer_unroutable(&rt, &m, now).await;
                continue;
            };
            let Ok(permit) = dest.slots.clone().try_acquire_owned() else {
                // Busy: a finishing delivery kicks us; poll anyway as a safety net.
                wait_until = wait_until.min(now + 1_000);
                continue;
            };
            // The limit in force may have been lowered by a provider's "too fast" reply.
            let limit = lock(&dest.rate).limit();
            let slot = match m.route.mailbox() {
                Some(mb) if limit > 0 && self.store.shared() => self.store.take_rate_slot(mb, now, limit, rate::SLOT_MS).await?,
                _ => lock(&dest.rate).try_take(now),
            };
            if let Err(free_at) = slot {
                wait_until = wait_until.min(free_at);
                rate_limited.insert(key);
                continue;
            }
            ready.push((m, dest, permit));
        }
        // One commit claims the whole batch (a commit per message cost an fsync each).
        let ids: Vec<String> = ready.iter().map(|(m, _, _)| m.id.clone()).collect();
        let claimed = if ids.is_empty() { Vec::new() } else { self.store.claim_many(&ids, now, now + self.cluster.lease_ms()).await? };
        for (m, dest, permit) in ready {
            if !claimed.contains(&m.id) {
                continue;
            }
            let this = self.clone();
            let rt = rt.clone();
            inflight.spawn(async move {
                this.deliver(&rt, m, dest, permit).await;
                this.kick.notify_one();
            });
        }
        if let Some(next) = self.store.next_due().await? {
            wait_until = wait_until.min(next);
        }
        self.last_pass.store(now, std::sync::atomic::Ordering::SeqCst);
        Ok(Duration::from_millis((wait_until - now).clamp(10, 30_000) as u64))
    }

    /// A message for a mailbox the configuration no longer has (removed by
    /// a reload) waits like a temporary failure, so nothing is lost while the
    /// admin puts the mailbox back or drops the message; it fails at max age.
    async fn defer_unroutable(&self, rt: &Runtime, m: &Message, now: i64) {
        let retry = RetryPolicy::from_config(&rt.config.queue);
        let expired = retry.expired(now, m.created_at);
        let reason = format!(
            "{} is not in the configuration (removed?); kept in the queue until it is configured again, dropped with `pecgate queue drop {}`, or too old",
            match &m.route {
                Route::Provider(id) => format!("mailbox {id}"),
                Route::Corporate => "the corporate server".to_owned(),
            },
            m.id
        );
        tracing::warn!(queue_id = %m.id, expired, "{reason}");
        let state = if expired { RecipientState::Failed } else { RecipientState::Deferred };
        let rcpts = self.store.pending_recipients(&m.id).await.unwrap_or_default();
        let attempt = Attempt {
            at: now,
            recipients: rcpts.into_iter().map(|address| RecipientOutcome { address, state, reply: reason.clone() }).collect(),
            state: if expired { MessageState::Failed } else { MessageState::Queued },
            next_attempt_at: if expired { now } else { retry.next_attempt(now, m.attempts + 1) },
            error: Some(reason),
            relay: "none".into(),
        };
        if let Err(e) = self.store.record_attempt(&m.id, &attempt).await {
            tracing::error!(queue_id = %m.id, error = %e, "cannot record the deferral");
        }
    }

    async fn deliver(&self, rt: &Runtime, m: Message, dest: Arc<Destination>, _permit: OwnedSemaphorePermit) {
        let retry = RetryPolicy::from_config(&rt.config.queue);
        let relay = dest.endpoint.label();
        let rcpts = match self.store.pending_recipients(&m.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(queue_id = %m.id, error = %e, "cannot read recipients");
                return;
            }
        };
        let started = std::time::Instant::now();
        let outcome = self.transact(&m, &dest, &rcpts).await;
        record_attempt_metrics(&m, &outcome, started.elapsed().as_secs_f64());
        let now = self.clock.now_ms();
        let meaning = if m.route.mailbox().is_some() { provider_meaning(&outcome) } else { None };
        let expired = retry.expired(now, m.created_at);
        let mut outcomes = Vec::new();
        let mut error = None;
        let mut login_refused: Option<String> = None;
        match outcome {
            Ok(result) => {
                let data = result.data;
                for (rcpt, r) in result.rcpts {
                    let (state, reply) = match (&r, &data) {
                        (Ok(_), Some(Ok(d))) => (RecipientState::Submitted, d.to_string()),
                        (Ok(_), Some(Err(e))) | (Err(e), _) => (state_for(e, expired), describe(e)),
                        (Ok(_), None) => (RecipientState::Deferred, "no data reply".into()),
                    };
                    if state != RecipientState::Submitted {
                        error = Some(reply.clone());
                    }
                    outcomes.push(RecipientOutcome { address: rcpt, state, reply });
                }
            }
            Err(e) => {
                let (severity, scope) = e.classify();
                let text = describe(&e);
                if matches!(e, ClientError::Rejected { command: Stage::Auth, .. }) {
                    login_refused = Some(text.clone());
                }
                // Session trouble (connect, TLS, AUTH) never fails a message while it may be retried.
                let state = match (scope, severity) {
                    (Scope::Session, _) if !expired => RecipientState::Deferred,
                    _ => state_for(&e, expired),
                };
                if scope == Scope::Session && severity == Severity::Permanent {
                    tracing::error!(queue_id = %m.id, relay = %relay, error = %text, "destination refused the session (check credentials and settings)");
                }
                outcomes = rcpts.iter().map(|r| RecipientOutcome { address: r.clone(), state, reply: text.clone() }).collect();
                error = Some(text);
            }
        }
        let deferred = outcomes.iter().any(|o| o.state == RecipientState::Deferred);
        let submitted = outcomes.iter().any(|o| o.state == RecipientState::Submitted);
        let state = if deferred {
            MessageState::Queued
        } else if submitted || self.already_submitted(&m.id).await {
            MessageState::Submitted
        } else {
            MessageState::Failed
        };
        let mut next_attempt_at = if deferred { retry.next_attempt(now, m.attempts + 1) } else { now };
        if let Some(mb) = m.route.mailbox() {
            match meaning {
                Some(Meaning::Throttled) => {
                    let mut rate = lock(&dest.rate);
                    rate.throttled(now);
                    tracing::warn!(queue_id = %m.id, mailbox = %mb, limit = rate.limit(), "provider says too fast; per-minute limit lowered, message kept");
                    metrics::counter!("pecgate_provider_throttled_total", "mailbox" => mb.to_owned()).increment(1);
                    // The provider counts a minute: trying before it is over only earns the same reply.
                    next_attempt_at = next_attempt_at.max(now + THROTTLE_BACKOFF_MS);
                }
                Some(Meaning::SenderNotOwned) => self.sender_not_owned(rt, mb, &m.id).await,
                None if login_refused.is_some() => self.login_refused(rt, mb, &m.id, login_refused.as_deref().unwrap_or_default()).await,
                None if submitted => {
                    lock(&dest.rate).succeeded();
                    if lock(&self.misconfigured).remove(mb) {
                        tracing::info!(mailbox = %mb, "sending from this mailbox works again");
                    }
                }
                None => {}
            }
        }
        let attempt = Attempt { at: now, recipients: outcomes.clone(), state, next_attempt_at, error: error.clone(), relay: relay.clone() };
        if let Err(e) = self.record(&m.id, attempt).await {
            // The provider has the message but our record does not say so: the
            // documented at-least-once window; it will be sent again after restart.
            tracing::error!(queue_id = %m.id, error = %e, "cannot record the delivery attempt");
            return;
        }
        // Postfix-style delay: from arrival to this outcome.
        let delay = (now - m.created_at).max(0) as f64 / 1000.0;
        for o in &outcomes {
            let status = match o.state {
                RecipientState::Submitted => "sent",
                RecipientState::Failed => "bounced",
                _ => "deferred",
            };
            tracing::info!(
                queue_id = %m.id,
                mailbox = %m.route.mailbox().unwrap_or("corporate"),
                to = %o.address,
                status = %status,
                relay = %relay,
                delay = %format!("{delay:.1}s"),
                reply = %o.reply,
            );
        }
        record_outcome_metrics(&m, &outcomes, state, now);
        let failed: Vec<FailedRecipient> = outcomes
            .iter()
            .filter(|o| o.state == RecipientState::Failed)
            .map(|o| FailedRecipient { address: o.address.clone(), reply: o.reply.clone() })
            .collect();
        if !failed.is_empty() && m.kind == MessageKind::Pec {
            self.notify_sender(rt, &m, &failed).await;
        }
    }

    /// Makes a delivery result durable through the group commit.
    async fn record(&self, id: &str, attempt: Attempt) -> std::result::Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.results.send((id.to_owned(), attempt, tx)).await.map_err(|_| "result writer stopped".to_owned())?;
        rx.await.map_err(|_| "result writer stopped".to_owned())?
    }

    async fn already_submitted(&self, id: &str) -> bool {
        self.store.recipients(id).await.map(|rs| rs.iter().any(|r| r.state == RecipientState::Submitted)).unwrap_or(false)
    }

    /// One transaction on a reused or new connection; a reused connection
    /// that turns out dead is replaced once.
    async fn transact(
        &self,
        m: &Message,
        dest: &Destination,
        rcpts: &[String],
    ) -> std::result::Result<client::TransactionResult, ClientError> {
        let mut reused = dest.take_idle();
        loop {
            let was_reused = reused.is_some();
            let mut c = match reused.take() {
                Some(c) => c,
                None => SmtpClient::connect(&dest.endpoint).await?,
            };
            let reader = self.spool.open_message(&m.id).await.map_err(|source| ClientError::Io {
                endpoint: dest.endpoint.label(),
                stage: Stage::OpeningSpool,
                source,
            })?;
            match c.send(&m.mail_from, rcpts, reader).await {
                Ok(r) => {
                    dest.put_idle(c);
                    return Ok(r);
                }
                // A pooled connection the server closed fails at the first command; only
                // then is an immediate retry safe (after DATA it could duplicate the message).
                Err(e @ (ClientError::Io { stage: Stage::MailFrom, .. } | ClientError::Timeout { stage: Stage::MailFrom, .. }))
                    if was_reused =>
                {
                    tracing::debug!(error = %e, "reused connection failed; reconnecting");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The provider says this mailbox's login does not own its address: the
    /// mailbox admin is told once per incident; the messages wait in the queue.
    async fn sender_not_owned(&self, rt: &Runtime, mailbox_id: &str, queue_id: &str) {
        let Some(mailbox) = rt.mailbox(mailbox_id) else { return };
        let problem = format!(
            "the provider login {} does not own address {}: check username and address of mailbox {}",
            mailbox.username, mailbox.address, mailbox.id
        );
        self.tell_admin_once(rt, mailbox_id, queue_id, &problem).await;
    }

    /// The provider refused the mailbox's login (a send-only mailbox learns
    /// it only here): the admin is told once per incident, with the expiry
    /// hint when the password's date has passed; the messages wait.
    async fn login_refused(&self, rt: &Runtime, mailbox_id: &str, queue_id: &str, reply: &str) {
        let Some(mailbox) = rt.mailbox(mailbox_id) else { return };
        let mut problem = format!(
            "the provider refused the login {} of mailbox {} ({reply}): check its password (password_file or password_env)",
            mailbox.username, mailbox.id
        );
        if let Some(hint) = crate::watchdog::expired_password_hint(mailbox, self.clock.now_ms()) {
            problem.push_str("; ");
            problem.push_str(&hint);
        }
        self.tell_admin_once(rt, mailbox_id, queue_id, &problem).await;
    }

    /// Tells the mailbox admin about a sending problem, once per incident
    /// (it ends with the next submission that goes through).
    async fn tell_admin_once(&self, rt: &Runtime, mailbox_id: &str, queue_id: &str, problem: &str) {
        let Some(mailbox) = rt.mailbox(mailbox_id) else { return };
        if !lock(&self.misconfigured).insert(mailbox_id.to_owned()) {
            return;
        }
        tracing::error!(queue_id = %queue_id, mailbox = %mailbox_id, "{problem}");
        let admin = match rt.directory.members(mailbox_id).await {
            Ok(members) => crate::directory::admin(&members).map(|a| a.address.clone()),
            Err(e) => {
                tracing::error!(mailbox = %mailbox_id, error = %e, "cannot find the mailbox admin to notify");
                None
            }
        };
        let Some(admin) = admin else {
            // Nobody told: try again with the next refusal.
            lock(&self.misconfigured).remove(mailbox_id);
            return;
        };
        let now = self.clock.now_ms();
        let c = &rt.config.corporate;
        let (bytes, message_id) = notify::mailbox_send_notice(&notify::MailboxNotice {
            from: &c.from,
            to: &admin,
            mailbox_address: &mailbox.address,
            problem,
            hostname: &rt.config.smtp.hostname,
            language: c.language,
            date_unix: now / 1000,
            id: &crate::queue::new_queue_id(now),
        });
        match self.enqueue.notice(&c.from, &admin, &bytes, message_id, &format!("sender of mailbox {mailbox_id}")).await {
            Ok(id) => tracing::warn!(mailbox = %mailbox_id, notice = %id, to = %admin, "mailbox admin notified"),
            Err(e) => {
                lock(&self.misconfigured).remove(mailbox_id);
                tracing::error!(mailbox = %mailbox_id, error = %e, "cannot queue the admin notice");
            }
        }
    }

    async fn notify_sender(&self, rt: &Runtime, m: &Message, failed: &[FailedRecipient]) {
        let Route::Provider(mailbox_id) = &m.route else { return };
        let mailbox_address = rt.mailbox(mailbox_id).map(|mb| mb.address.as_str()).unwrap_or(mailbox_id);
        if m.original_sender.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let c = &rt.config.corporate;
        let (bytes, message_id) = notify::failure_notice(&notify::FailureNotice {
            from: &c.from,
            to: &m.original_sender,
            mailbox_address,
            subject: &m.subject,
            queue_id: &m.id,
            message_id: &m.message_id,
            failed,
            hostname: &rt.config.smtp.hostname,
            language: c.language,
            date_unix: now / 1000,
        });
        match self.enqueue.notice(&c.from, &m.original_sender, &bytes, message_id, &format!("failure notice for {}", m.id)).await {
            Ok(id) => {
                tracing::info!(queue_id = %m.id, notice = %id, to = %m.original_sender, "failure notice queued");
                let _ = self.store.add_event(&m.id, None, now, "notified", &format!("failure notice {id} to {}", m.original_sender)).await;
            }
            Err(e) => tracing::error!(queue_id = %m.id, error = %e, "cannot queue the failure notice"),
        }
    }
}

fn destination(route: &Route) -> (&'static str, String) {
    match route {
        Route::Provider(mb) => ("provider", mb.clone()),
        Route::Corporate => ("corporate", "-".to_owned()),
    }
}

fn record_attempt_metrics(m: &Message, outcome: &std::result::Result<client::TransactionResult, ClientError>, secs: f64) {
    let (destination, mailbox) = destination(&m.route);
    let result = match outcome {
        Ok(r) => match (&r.data, r.rcpts.first()) {
            (Some(Ok(reply)), _) => crate::metrics::class(reply.code),
            (Some(Err(e)), _) | (None, Some((_, Err(e)))) => e.reply().map_or("error", |r| crate::metrics::class(r.code)),
            (None, _) => "error",
        },
        Err(e) => e.reply().map_or("error", |r| crate::metrics::class(r.code)),
    };
    metrics::counter!("pecgate_delivery_attempts_total", "destination" => destination, "mailbox" => mailbox.clone(), "result" => result)
        .increment(1);
    if let Route::Provider(mb) = &m.route {
        metrics::histogram!("pecgate_provider_submission_duration_seconds", "mailbox" => mb.clone()).record(secs);
        // Session trouble (connect, TLS, AUTH) means the mailbox cannot send.
        let session_failed = matches!(outcome, Err(e) if e.classify().1 == Scope::Session);
        crate::metrics::mailbox_health(mb, crate::metrics::Part::Send, !session_failed);
    }
}

fn record_outcome_metrics(m: &Message, outcomes: &[RecipientOutcome], state: MessageState, now: i64) {
    match &m.route {
        Route::Provider(mb) => {
            let sent = outcomes.iter().filter(|o| o.state == RecipientState::Submitted).count() as u64;
            let failed = outcomes.iter().filter(|o| o.state == RecipientState::Failed).count() as u64;
            metrics::counter!("pecgate_provider_submitted_total", "mailbox" => mb.clone()).increment(sent);
            metrics::counter!("pecgate_provider_failed_total", "mailbox" => mb.clone()).increment(failed);
            if sent > 0 {
                metrics::gauge!("pecgate_last_send_timestamp_seconds", "mailbox" => mb.clone()).set((now / 1000) as f64);
            }
        }
        Route::Corporate => match state {
            MessageState::Submitted => metrics::counter!("pecgate_injections_total", "result" => "ok").increment(1),
            MessageState::Failed => metrics::counter!("pecgate_injections_total", "result" => "failed").increment(1),
            _ => {}
        },
    }
}

/// The first provider reply of an attempt that the `replies` table reads otherwise than its code.
fn provider_meaning(outcome: &std::result::Result<client::TransactionResult, ClientError>) -> Option<Meaning> {
    match outcome {
        Err(e) => e.reply().and_then(replies::classify),
        Ok(r) => r
            .data
            .iter()
            .filter_map(|d| d.as_ref().err())
            .chain(r.rcpts.iter().filter_map(|(_, o)| o.as_ref().err()))
            .find_map(|e| e.reply().and_then(replies::classify)),
    }
}

/// Recipient state for a failed step: permanent -> failed, else deferred
/// (failed too once the message is past its maximum age).
fn state_for(e: &ClientError, expired: bool) -> RecipientState {
    match e.classify().0 {
        Severity::Permanent => RecipientState::Failed,
        Severity::Temporary if expired => RecipientState::Failed,
        Severity::Temporary => RecipientState::Deferred,
    }
}

/// The evidence we keep: the remote reply in full, or the local error.
fn describe(e: &ClientError) -> String {
    match e.reply() {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}
