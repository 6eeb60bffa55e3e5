//! The single funnel into the queue (Postfix's cleanup role): the SMTP
//! listener, the fetcher, the delivery workers' notices and the watchdog
//! all come here.
//! A message is durable when these functions return `Ok`: spool files
//! fsynced and renamed, then the store row committed. Only then may the
//! caller acknowledge (250) or delete the source (POP3 DELE).

use std::io;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::queue::spool::{Received, Spool};
use crate::store::{self, MessageKind, NewMessage, Route, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("spool write failed: {0}")]
    Spool(#[source] io::Error),
    #[error("store commit failed: {0}")]
    Store(#[source] store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What to queue, besides the bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: MessageKind,
    pub route: Route,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub original_sender: String,
    pub message_id: String,
    pub subject: String,
    /// Where it came from, for the event log (e.g. `smtp from 10.0.0.5`).
    pub origin: String,
}

pub struct Enqueue {
    store: Arc<dyn Store>,
    spool: Spool,
    clock: Arc<dyn Clock>,
    /// Wakes the delivery dispatcher.
    kick: Arc<Notify>,
}

impl Enqueue {
    pub fn new(store: Arc<dyn Store>, spool: Spool, clock: Arc<dyn Clock>, kick: Arc<Notify>) -> Self {
        Self { store, spool, clock, kick }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Commits a message received over SMTP with its rewritten header section.
    pub async fn commit_received(&self, received: &Received, head: &[u8], env: Envelope) -> Result<()> {
        self.spool.commit(received, head).await.map_err(Error::Spool)?;
        let size = head.len() as u64 + received.tail_len;
        self.insert(&received.id, size, env).await
    }

    /// Queues a message pecgate wrote itself; returns its queue id.
    pub async fn submit_bytes(&self, message: &[u8], env: Envelope) -> Result<String> {
        let id = crate::queue::new_queue_id(self.clock.now_ms());
        self.spool.store_bytes(&id, message).await.map_err(Error::Spool)?;
        self.insert(&id, message.len() as u64, env).await?;
        Ok(id)
    }

    /// Queues a notice pecgate wrote (failure notice, mailbox problem,
    /// watchdog alarm) for one company address, through the corporate
    /// server; returns its queue id. `what` names it in the event log.
    pub async fn notice(&self, from: &str, to: &str, message: &[u8], message_id: String, what: &str) -> Result<String> {
        let env = Envelope {
            kind: MessageKind::Notice,
            route: Route::Corporate,
            mail_from: from.to_owned(),
            rcpts: vec![to.to_owned()],
            original_sender: from.to_owned(),
            message_id,
            subject: what.to_owned(),
            origin: what.to_owned(),
        };
        self.submit_bytes(message, env).await
    }

    /// Writes a message's spool files without queuing it: the caller commits
    /// the returned row together with other changes (`Store::commit_fetched`),
    /// then calls [`Enqueue::kick`]. On failure it must call `Spool::remove`.
    pub async fn prepare_bytes(&self, message: &[u8], env: Envelope) -> Result<NewMessage> {
        self.prepare_pieces(&[crate::queue::spool::Piece::Bytes(message)], env).await
    }

    /// [`prepare_bytes`](Self::prepare_bytes) for a message given as
    /// consecutive pieces (a wrapper around a fetched original, not copied).
    pub async fn prepare_pieces(&self, pieces: &[crate::queue::spool::Piece<'_>], env: Envelope) -> Result<NewMessage> {
        let id = crate::queue::new_queue_id(self.clock.now_ms());
        self.spool.store_pieces(&id, pieces).await.map_err(Error::Spool)?;
        Ok(self.new_message(&id, pieces.iter().map(|p| p.len()).sum(), env))
    }

    /// Wakes the delivery dispatcher (after a commit made elsewhere).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    fn new_message(&self, id: &str, size: u64, env: Envelope) -> NewMessage {
        NewMessage {
            id: id.to_owned(),
            kind: env.kind,
            route: env.route,
            mail_from: env.mail_from,
            rcpts: env.rcpts,
            original_sender: env.original_sender,
            message_id: env.message_id,
            subject: env.subject,
            size,
            created_at: self.clock.now_ms(),
            origin: env.origin,
        }
    }

    async fn insert(&self, id: &str, size: u64, env: Envelope) -> Result<()> {
        let m = self.new_message(id, size, env);
        if let Err(e) = self.store.insert_message(&m).await {
            // Not acknowledged: the files must not linger as a half-queued message.
            self.spool.remove(id).await;
            return Err(Error::Store(e));
        }
        self.kick.notify_one();
        Ok(())
    }
}
