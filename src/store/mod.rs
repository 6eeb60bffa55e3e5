//! Durable metadata: messages, per-recipient state, events.
//!
//! The [`Store`] trait is what callers see; [`sql::SqlStore`] implements it
//! for SQLite (the default: WAL, `synchronous = FULL`, so a commit is on disk
//! when it returns) and PostgreSQL (several instances sharing one database:
//! claims carry the instance and a lease, see [`Store::claim_many`]).
//! Message bytes live in the spool (`queue::spool`), never here.
//! The message row is the commit marker of the queue: spool files without a
//! row were never acknowledged and are removed at start-up.

pub mod sql;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("unknown state {0:?} in the database")]
    BadState(String),
    #[error("message {0} not found")]
    NotFound(String),
    #[error("the database has schema version {found}, newer than this pecgate knows ({known}); run the newer pecgate or restore a backup")]
    TooNew { found: i64, known: i64 },
}

/// Opens the store the configuration names, as this instance; `url` is
/// `[store] url` with the password joined in (PostgreSQL).
pub async fn open(config: &crate::config::StoreConfig, url: Option<&crate::config::Secret>, instance: &str) -> Result<sql::SqlStore> {
    match config.backend {
        crate::config::StoreBackend::Sqlite => sql::SqlStore::open_sqlite(&config.path, instance).await,
        crate::config::StoreBackend::Postgres => {
            let url = url.map(|u| u.expose().to_owned()).unwrap_or_default();
            sql::SqlStore::open_postgres(&url, config.max_connections, instance).await
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where a queued message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// A PEC provider, with the credentials of this mailbox id.
    Provider(String),
    /// The company mail server.
    Corporate,
}

impl Route {
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Provider(_) => "provider",
            Route::Corporate => "corporate",
        }
    }

    pub fn mailbox(&self) -> Option<&str> {
        match self {
            Route::Provider(m) => Some(m),
            Route::Corporate => None,
        }
    }
}

/// What a queued message is, for reporting and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A PEC message a user sent through the listener.
    Pec,
    /// A message pecgate wrote itself (failure notice, summary).
    Notice,
    /// A fetched PEC message or receipt on its way to company users.
    Injection,
}

impl MessageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageKind::Pec => "pec",
            MessageKind::Notice => "notice",
            MessageKind::Injection => "injection",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "pec" => Ok(MessageKind::Pec),
            "notice" => Ok(MessageKind::Notice),
            "injection" => Ok(MessageKind::Injection),
            other => Err(Error::BadState(other.to_owned())),
        }
    }
}

/// Life cycle of an outbound message (DESIGN.md "Outbound message life cycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Queued,
    Sending,
    /// The destination said 250 for at least one recipient and nothing is pending.
    Submitted,
    /// Every recipient failed permanently (5xx, or retries exhausted).
    Failed,
    /// The provider's acceptance receipt arrived (ricevuta di accettazione).
    Accepted,
    /// The provider refused it after submission (avviso di non accettazione).
    NotAccepted,
}

/// Per-recipient state: delivery to the provider, then what its receipts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    Queued,
    /// Temporary failure; retried.
    Deferred,
    Submitted,
    Failed,
    /// Covered by the acceptance receipt; a delivery receipt is expected.
    Accepted,
    /// Not a PEC address ("esterno"): no delivery receipt will come.
    NoReceiptExpected,
    /// preavviso di mancata consegna: no delivery within 12 h; may still arrive.
    Warned,
    /// ricevuta di avvenuta consegna.
    Delivered,
    /// avviso di mancata consegna (or virus found at the recipient's provider).
    DeliveryError,
    /// avviso di non accettazione.
    NotAccepted,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Result<Self> {
                match s { $($s => Ok(Self::$v),)* other => Err(Error::BadState(other.to_owned())) }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

str_enum!(MessageState { Queued => "queued", Sending => "sending", Submitted => "submitted", Failed => "failed", Accepted => "accepted", NotAccepted => "not_accepted" });
str_enum!(RecipientState {
    Queued => "queued", Deferred => "deferred", Submitted => "submitted", Failed => "failed", Accepted => "accepted",
    NoReceiptExpected => "no_receipt_expected", Warned => "warned", Delivered => "delivered", DeliveryError => "delivery_error",
    NotAccepted => "not_accepted"
});

/// A message to insert (its spool files are already durable).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub kind: MessageKind,
    pub route: Route,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The envelope sender as received (notices go back to it).
    pub original_sender: String,
    pub message_id: String,
    pub subject: String,
    pub size: u64,
    pub created_at: i64,
    /// What the events should say about where it came from.
    pub origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: String,
    pub kind: MessageKind,
    pub route: Route,
    pub mail_from: String,
    pub original_sender: String,
    pub message_id: String,
    pub subject: String,
    pub size: u64,
    pub state: MessageState,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    pub address: String,
    pub state: RecipientState,
    pub last_reply: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: i64,
    pub rcpt: Option<String>,
    pub kind: String,
    pub detail: String,
    /// The pecgate instance that recorded it.
    pub instance: Option<String>,
}

/// A pecgate process sharing the store (one row per instance id).
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    pub id: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Listener addresses, as the instance sees them.
    pub smtp: String,
    pub admin: String,
    /// Set by a clean shutdown.
    pub stopped_at: Option<i64>,
}

/// A named lease (`pop3:<mailbox>`, `watchdog`): who holds it, until when.
#[derive(Debug, Clone, Serialize)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub until: i64,
    /// When the current holder took it.
    pub since: i64,
}

/// A delivery that was in flight when its instance stopped, queued again.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub id: String,
    /// The instance that had claimed it.
    pub holder: Option<String>,
}

/// What one delivery attempt did to one recipient.
#[derive(Debug, Clone)]
pub struct RecipientOutcome {
    pub address: String,
    pub state: RecipientState,
    pub reply: String,
}

/// The result of one delivery attempt, recorded atomically.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: i64,
    pub recipients: Vec<RecipientOutcome>,
    /// New message state; with `Queued`, `next_attempt_at` is when to retry.
    pub state: MessageState,
    pub next_attempt_at: i64,
    pub error: Option<String>,
    /// Where it went (e.g. `smtps.pec.example:465`), for the event log.
    pub relay: String,
}

/// A message on a provider's server that pecgate cannot take (larger than
/// its limit, or a transfer that never ends): recorded once, left untouched
/// on the server, skipped by later polls until an operator retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub mailbox_id: String,
    pub uidl: String,
    /// As the server announced it, if it did.
    pub size: Option<u64>,
    pub reason: String,
    pub at: i64,
}

/// A message or receipt fetched from a PEC mailbox; its bytes are in the
/// spool's `fetched/` directory, byte-for-byte as the provider sent them.
#[derive(Debug, Clone, Serialize)]
pub struct FetchedRecord {
    pub id: String,
    pub mailbox_id: String,
    pub uidl: String,
    pub fetched_at: i64,
    pub size: u64,
    /// PEC kind (`accettazione`, `posta-certificata`, ..., `not-pec`).
    pub kind: String,
    pub subject: String,
    pub message_id: Option<String>,
    /// X-Riferimento-Message-ID (receipts).
    pub riferimento: Option<String>,
    pub identificativo: Option<String>,
    /// The recipient a delivery receipt is about.
    pub consegna: Option<String>,
    /// The outbound message it refers to, when correlated.
    pub related_message: Option<String>,
    /// Who it was injected to.
    pub routed_to: Vec<String>,
    /// The queue id of its injection into the corporate server.
    pub injection: Option<String>,
    /// Verdict of the provider's S/MIME signature (`valid`, `invalid`, ...).
    pub signature: Option<String>,
    /// Subject of the signer certificate.
    pub signer: Option<String>,
    /// When it was deleted from the provider, if it was.
    pub deleted_at: Option<i64>,
    /// The instance that fetched it (set by the store).
    pub fetched_by: Option<String>,
}

/// What a receipt changes on the message it refers to (see `correlate`).
#[derive(Debug, Clone, Default)]
pub struct ReceiptUpdate {
    pub message: String,
    pub recipients: Vec<(String, RecipientState)>,
    pub message_state: Option<MessageState>,
    /// The provider's id for the message (from the acceptance), for later matching.
    pub provider_id: Option<String>,
    pub event_kind: String,
    pub event_detail: String,
}

/// Filters of the admin message list (`GET /api/v1/messages`).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub mailbox: Option<String>,
    /// `Some("out")`: PEC messages sent through pecgate; `Some("in")`: fetched records; `None`: both.
    pub direction: Option<String>,
    /// Message or recipient state (out), PEC kind (in).
    pub status: Option<String>,
    /// Substring of subject, addresses or Message-ID.
    pub q: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Resume strictly after this (created_at, id), newest first.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// One row of the admin message list: a sent message or a fetched record.
#[derive(Debug, Clone, Serialize)]
pub struct ListItem {
    pub id: String,
    /// "out" or "in".
    pub direction: String,
    pub mailbox: Option<String>,
    /// Message kind (out) or PEC kind (in).
    pub kind: String,
    /// Message state (out) or PEC kind (in).
    pub state: String,
    pub from: String,
    pub recipients: Vec<String>,
    /// State of each recipient, in the order of `recipients` (out only).
    pub recipient_states: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub size: u64,
    pub created_at: i64,
    /// For fetched records: the sent message it refers to.
    pub related_message: Option<String>,
}

/// A stored sending PIN, without its hash (`pecgate pin list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinEntry {
    pub mailbox: String,
    /// Lower case.
    pub user: String,
    pub set_at: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a queued message with its recipients and `received`/`queued` events, in one commit.
    async fn insert_message(&self, m: &NewMessage) -> Result<()>;
    /// Queued messages due at `now`, oldest first.
    async fn due_messages(&self, now: i64, limit: u32) -> Result<Vec<Message>>;
    /// Earliest `next_attempt_at` of queued messages.
    async fn next_due(&self) -> Result<Option<i64>>;
    /// queued -> sending for this instance until `lease_until`, several in
    /// one commit; returns the ids it got (another instance may hold the rest).
    async fn claim_many(&self, ids: &[String], now: i64, lease_until: i64) -> Result<Vec<String>>;
    /// Records a delivery attempt (recipients, message state, events) in one commit.
    async fn record_attempt(&self, id: &str, attempt: &Attempt) -> Result<()>;
    /// Records several attempts in one commit (group commit of concurrent deliveries).
    async fn record_attempts(&self, batch: &[(String, Attempt)]) -> Result<()>;
    /// `sending` messages whose lease expired (their instance died) go back
    /// to `queued`; with `own`, also this instance's own claims (at start-up,
    /// after a crash). Each gets a `recovered` event.
    async fn recover_sending(&self, now: i64, own: bool) -> Result<Vec<Recovered>>;
    async fn message(&self, id: &str) -> Result<Option<Message>>;
    /// Recipients still to deliver (queued or deferred).
    async fn pending_recipients(&self, id: &str) -> Result<Vec<String>>;
    async fn recipients(&self, id: &str) -> Result<Vec<Recipient>>;
    async fn events(&self, id: &str) -> Result<Vec<Event>>;
    async fn add_event(&self, id: &str, rcpt: Option<&str>, at: i64, kind: &str, detail: &str) -> Result<()>;
    /// Every message id (spool orphan check at start-up).
    async fn message_ids(&self) -> Result<Vec<String>>;
    /// Messages by state, for status and metrics.
    async fn count_by_state(&self) -> Result<Vec<(String, i64)>>;
    /// Recent messages, newest first.
    async fn list_messages(&self, limit: u32) -> Result<Vec<Message>>;
    /// A trivial write, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// The stored copy of a mailbox's message by its POP3 unique id.
    async fn fetched_by_uidl(&self, mailbox: &str, uidl: &str) -> Result<Option<FetchedRecord>>;
    /// The uidl of the mailbox's most recently fetched message whose uidl
    /// starts with `prefix` (IMAP: `folder/`, whose UIDVALIDITY it holds).
    async fn newest_fetched_uidl(&self, mailbox: &str, prefix: &str) -> Result<Option<String>>;
    /// The mailbox's fetched messages with this Message-ID (bare), oldest first, at most 20.
    async fn fetched_by_message_id(&self, mailbox: &str, message_id: &str) -> Result<Vec<FetchedRecord>>;
    /// Commits a fetched message in one transaction: its record, what it
    /// changes on the sent message, and the injections that route it. After
    /// this returns the POP3 copy may be deleted.
    async fn commit_fetched(&self, record: &FetchedRecord, update: Option<&ReceiptUpdate>, injections: &[NewMessage]) -> Result<()>;
    /// Records that these messages were deleted from the provider.
    async fn mark_fetched_deleted(&self, mailbox: &str, uidls: &[String], at: i64) -> Result<()>;
    /// Records a message that cannot be fetched (once; a second record keeps the first).
    async fn skip_fetch(&self, skipped: &Skipped) -> Result<()>;
    /// The skipped messages of one mailbox, or of all (`None`), oldest first.
    async fn skipped(&self, mailbox: Option<&str>) -> Result<Vec<Skipped>>;
    /// Forgets a skip so the next poll tries the message again; false if there was none.
    async fn unskip(&self, mailbox: &str, uidl: &str) -> Result<bool>;
    /// The sent message a receipt refers to: by our Message-ID (X-Riferimento-Message-ID,
    /// then daticert msgid), then by the provider's identificativo.
    async fn find_sent(&self, mailbox: &str, message_ids: &[&str], provider_id: Option<&str>) -> Result<Option<Message>>;
    /// Receipts and messages fetched for a sent message.
    async fn fetched_for(&self, message: &str) -> Result<Vec<FetchedRecord>>;
    /// Every fetched id (spool orphan check at start-up).
    async fn fetched_ids(&self) -> Result<Vec<String>>;
    /// Waiting messages per destination: (route kind, mailbox id or "-", count, oldest created_at).
    async fn queue_stats(&self) -> Result<Vec<(String, String, i64, i64)>>;
    /// Makes a waiting message due now (operator retry); false if it is not waiting.
    async fn retry_now(&self, id: &str, at: i64, who: &str) -> Result<bool>;
    /// Gives up a waiting message (operator drop): state failed, pending recipients failed.
    async fn drop_message(&self, id: &str, at: i64, who: &str) -> Result<bool>;
    /// PEC messages submitted before `before` with no acceptance yet; with
    /// `unnotified`, only those without an event of kind `notice_kind`.
    async fn awaiting_acceptance(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<Message>>;
    /// (message, recipient) accepted before `before` without a delivery
    /// receipt; with `unnotified`, only pairs without a `notice_kind` event.
    async fn awaiting_delivery(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<(Message, String)>>;
    /// Recipients of provider-bound messages by (mailbox id, state).
    async fn recipient_state_counts(&self) -> Result<Vec<(String, String, i64)>>;

    /// The admin list: sent PEC messages and fetched records, newest first, filtered.
    async fn list_filtered(&self, filter: &ListFilter) -> Result<Vec<ListItem>>;
    /// One fetched record by id.
    async fn fetched(&self, id: &str) -> Result<Option<FetchedRecord>>;
    /// Per mailbox id: when a message was last submitted to its provider.
    async fn last_sends(&self) -> Result<Vec<(String, i64)>>;
    /// Messages waiting in the queue (queued or sending, every kind), oldest first.
    async fn waiting_messages(&self, limit: u32) -> Result<Vec<Message>>;

    /// The instance id this store writes into events and claims.
    fn instance(&self) -> &str;
    /// True when several instances may share this store (PostgreSQL).
    fn shared(&self) -> bool;
    /// Records that this instance is alive and extends the leases of its deliveries in flight.
    async fn heartbeat(&self, info: &InstanceInfo, lease_until: i64) -> Result<()>;
    /// Every instance that ever ran on this store.
    async fn instances(&self) -> Result<Vec<InstanceInfo>>;
    /// Takes or renews the named lease for this instance; false if another
    /// instance holds it and it has not expired at `now`.
    async fn acquire_lease(&self, name: &str, now: i64, until: i64) -> Result<bool>;
    /// Gives a lease up (clean shutdown), if this instance holds it.
    async fn release_lease(&self, name: &str) -> Result<()>;
    async fn leases(&self) -> Result<Vec<Lease>>;
    /// A submission slot in the mailbox's window, shared by every instance:
    /// at most `per_minute` slots taken within `hold_ms` (a minute plus a
    /// margin); `Err(t)`: none free until `t` (ms).
    async fn take_rate_slot(&self, mailbox: &str, now: i64, per_minute: u32, hold_ms: i64) -> Result<std::result::Result<(), i64>>;

    // PINs for sending (`require_pin` mailboxes); `user` is compared in lower case.
    /// Sets (or replaces) a user's PIN hash (a PHC string) and forgets its wrong PINs.
    async fn set_pin(&self, mailbox: &str, user: &str, phc: &str, at: i64) -> Result<()>;
    /// Removes a user's PIN; false if there was none.
    async fn remove_pin(&self, mailbox: &str, user: &str) -> Result<bool>;
    async fn pin_hash(&self, mailbox: &str, user: &str) -> Result<Option<String>>;
    /// The PINs set, of one mailbox or all, by mailbox and user.
    async fn pins(&self, mailbox: Option<&str>) -> Result<Vec<PinEntry>>;
    /// Times of a user's wrong PINs at or after `since`.
    async fn pin_failures(&self, mailbox: &str, user: &str, since: i64) -> Result<Vec<i64>>;
    /// Records a wrong PIN at `at`, forgets those before `keep_since`, returns the times kept.
    async fn add_pin_failure(&self, mailbox: &str, user: &str, at: i64, keep_since: i64) -> Result<Vec<i64>>;
    async fn clear_pin_failures(&self, mailbox: &str, user: &str) -> Result<()>;

    // Alarms told once: a notice is sent only by the caller whose raise inserted the row.
    /// Raises alarm `name`; true if it was not raised yet (the caller tells someone).
    async fn raise_alarm(&self, name: &str, at: i64) -> Result<bool>;
    /// Clears alarm `name`; true if it was raised.
    async fn clear_alarm(&self, name: &str) -> Result<bool>;
    /// Raised alarms, by name, with when.
    async fn alarms(&self) -> Result<Vec<(String, i64)>>;
}
