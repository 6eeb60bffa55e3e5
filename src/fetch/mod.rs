//! Fetching mail from the providers' mailboxes, protocol-independent.
//!
//! A [`FetchSource`] is one session with a provider's server (POP3 today,
//! [`pop3::Pop3Source`], or IMAP, [`imap::ImapSource`]): it lists messages,
//! streams one into a writer with a size limit and a deadline, marks
//! messages for deletion and commits the deletions. [`connect`] is the one
//! place that picks the implementation from the mailbox's configuration.
//!
//! [`ingest`] does what follows a retrieval, whatever the protocol: store
//! the bytes durably, classify, verify the signature, correlate receipts,
//! route, and commit it all at once. [`worker::Fetcher`] polls one mailbox
//! (lease, backoff, retention, telling the admin), and [`workers::Fetchers`]
//! starts and stops one worker per active mailbox as the configuration
//! changes.
//!
//! Safety order for each message (nothing is lost between fetch and inject):
//! retrieve into `tmp/`, fsync, rename into `fetched/`; then one store commit
//! holding the fetched record, the receipt's effect on the sent message and
//! the injection row (whose spool files were written first). Only after that
//! commit may the message be deleted from the provider, per `retention`.

pub mod imap;
pub mod ingest;
pub mod pop3;
pub mod worker;
pub mod workers;

use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWrite;

use crate::config::{MailboxConfig, Retention};
use crate::runtime::Mailbox;
use crate::store;

pub use worker::{FetchStatus, Fetcher, PollReport};
pub use workers::Fetchers;

/// One message on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Stable across sessions and unique in the mailbox (POP3 UIDL); the store's key.
    pub uid: String,
    /// What the server calls it in this session (POP3 message number).
    pub handle: u32,
    /// As the server announces it (POP3 LIST), if it does.
    pub size: Option<u64>,
}

/// What kind of trouble a source had, for metrics, backoff and notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Credentials refused: the admin must act; told at once.
    Auth,
    /// Connect, TLS, timeouts, dropped connections.
    Network,
    /// The server said something unexpected.
    Protocol,
    /// One message is larger than pecgate takes.
    TooLarge,
    /// One message's transfer did not end within its deadline (a server
    /// trickling bytes): a property of that message, like its size.
    Deadline,
}

/// A source's error, with its kind; the text names the server's reply.
#[derive(Debug, thiserror::Error)]
#[error("{protocol}: {source}")]
pub struct SourceError {
    pub kind: FailureKind,
    pub protocol: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

pub type SourceResult<T> = std::result::Result<T, SourceError>;

/// One session with a provider's mailbox.
#[async_trait]
pub trait FetchSource: Send {
    /// `pop3`, `imap`: for logs and the event history.
    fn protocol(&self) -> &'static str;

    /// The messages on the server now, in the server's order.
    async fn list(&mut self) -> SourceResult<Vec<Listed>>;

    /// Streams one message byte-for-byte into `out`: at most `limit` bytes,
    /// all of it within `deadline`. On error `out` holds a partial message.
    async fn retrieve(
        &mut self,
        item: &Listed,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        limit: u64,
        deadline: Duration,
    ) -> SourceResult<u64>;

    /// Marks a message for deletion; nothing is deleted before [`commit`](Self::commit).
    async fn mark_deleted(&mut self, item: &Listed) -> SourceResult<()>;

    /// A message that stays on the server is committed and injected:
    /// sources that can mark it (IMAP `\\Seen`, or a move to another
    /// folder) do so at [`commit`](Self::commit). POP3 cannot.
    async fn mark_kept(&mut self, _item: &Listed) -> SourceResult<()> {
        Ok(())
    }

    /// Applies the deletions (and marks); ends the session cleanly unless
    /// the source [can wait](Self::can_wait) on it for new mail.
    async fn commit(&mut self) -> SourceResult<()>;

    /// Whether the session stays open after [`commit`](Self::commit) for
    /// [`wait_for_changes`](Self::wait_for_changes) (IMAP with IDLE).
    fn can_wait(&self) -> bool {
        false
    }

    /// Waits on the open session for new mail, at most `max`: `Ok(true)` if
    /// some may have arrived. Sources that cannot wait (POP3) say `Ok(false)`
    /// at once, and the worker reconnects after its interval.
    async fn wait_for_changes(&mut self, _max: Duration) -> SourceResult<bool> {
        Ok(false)
    }
}

/// How a mailbox is fetched, whatever the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Between polls (without IDLE).
    pub interval: Duration,
    pub timeout: Duration,
    pub retention: Retention,
    pub delete_after_days: u32,
}

/// The fetch settings of a mailbox, `None` if it is not fetched.
pub fn settings(m: &MailboxConfig) -> Option<Settings> {
    if let Some(p) = &m.imap {
        return Some(Settings {
            interval: Duration::from_secs(p.interval_secs.max(1)),
            timeout: Duration::from_secs(p.timeout_secs.max(1)),
            retention: p.retention,
            delete_after_days: p.delete_after_days,
        });
    }
    m.pop3.as_ref().map(|p| Settings {
        interval: Duration::from_secs(p.interval_secs.max(1)),
        timeout: Duration::from_secs(p.timeout_secs.max(1)),
        retention: p.retention,
        delete_after_days: p.delete_after_days,
    })
}

/// `pop3` or `imap`: the metric names' protocol part.
pub fn protocol(m: &MailboxConfig) -> &'static str {
    if m.imap.is_some() { "imap" } else { "pop3" }
}

/// The largest fetched message pecgate stores: a PEC envelope wraps what the
/// sender's listener accepted, so twice `[smtp] max_message_size` plus 10 MB.
pub fn size_limit(config: &crate::config::Config) -> u64 {
    config.smtp.max_message_size.saturating_mul(2).saturating_add(10 * 1024 * 1024)
}

/// How long one message's transfer may take in all (a server trickling
/// bytes defeats per-read timeouts): the read timeout plus the announced size
/// at 16 KiB/s, the slowest a provider's link can reasonably be; without a
/// size, 20 read timeouts.
pub fn transfer_deadline(item: &Listed, timeout: Duration) -> Duration {
    match item.size {
        Some(size) => timeout.saturating_add(Duration::from_secs(size / (16 * 1024))),
        None => timeout.saturating_mul(20),
    }
}

/// Opens a session to the mailbox's server with the protocol it is configured for.
pub async fn connect(m: &Mailbox) -> SourceResult<Box<dyn FetchSource>> {
    if let (Some(i), Some(tls)) = (&m.imap, &m.imap_tls) {
        return Ok(Box::new(imap::ImapSource::connect(&m.username, &m.password, i, tls.clone()).await?));
    }
    match (&m.pop3, &m.pop3_tls) {
        (Some(p), Some(tls)) => Ok(Box::new(pop3::Pop3Source::connect(&m.username, &m.password, p, tls.clone()).await?)),
        _ => Err(SourceError {
            kind: FailureKind::Protocol,
            protocol: "fetch",
            source: format!("mailbox {} has no retrieval configured", m.id).into(),
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("storing a fetched message: {0}")]
    Spool(#[source] std::io::Error),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("queueing the injection: {0}")]
    Enqueue(#[from] crate::enqueue::Error),
    #[error("{0}")]
    Directory(#[from] crate::directory::Error),
    #[error("mailbox {0} is no longer configured for fetching")]
    Gone(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `kind` label of `pecgate_pop3_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            Error::Source(s) => match s.kind {
                FailureKind::Auth => "auth",
                FailureKind::Network => "network",
                FailureKind::Protocol | FailureKind::TooLarge | FailureKind::Deadline => "protocol",
            },
            Error::Directory(_) => "directory",
            Error::Spool(_) | Error::Store(_) | Error::Enqueue(_) | Error::Gone(_) => "storage",
        }
    }

    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Source(s) if s.kind == FailureKind::Auth)
    }
}
