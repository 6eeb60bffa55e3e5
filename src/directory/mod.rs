//! Who may do what with which PEC mailbox, and who a listener AUTH login is.
//!
//! Everything that needs a user list asks a [`Directory`]: the gateway (may
//! this sender use this mailbox; which user does this login act as), the
//! fetcher's routing (who receives mail and receipts, who the admin is) and
//! the watchdog (whom to tell). The first implementation, [`StaticDirectory`],
//! serves `[[mailbox.user]]` and `[[smtp.account]]` from the configuration;
//! an LDAP / Active Directory one plugs in behind the same trait. The runtime
//! snapshot holds the directory, so a reload swaps it like everything else.
//!
//! A directory that cannot answer says [`Error::Unavailable`]; callers defer
//! (SMTP `451 4.3.0`) rather than guess: mail is never accepted without a
//! permission check, and never refused for good because of an outage.

mod config;

use std::sync::Arc;

use async_trait::async_trait;

pub use config::StaticDirectory;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("the user directory cannot answer: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a user may do with one mailbox (`[[mailbox.user]]` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Send PEC from the mailbox.
    pub send: bool,
    /// Receive its PEC messages and receipts.
    pub receive: bool,
    /// Receive its anomaly envelopes (anomalia).
    pub anomalies: bool,
    /// The mailbox admin: gets error notices.
    pub admin: bool,
}

/// A company address with its rights on one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub address: String,
    pub rights: Rights,
    pub pin_hash: Option<String>,
}

/// The company user a listener AUTH login acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub login: String,
    /// A member address (with `send`) of at least one mailbox.
    pub address: String,
}

#[async_trait]
pub trait Directory: Send + Sync {
    /// `static`, `ldap`, ...: for logs and the admin page.
    fn kind(&self) -> &'static str;

    /// The members of mailbox `mailbox` (its id), in a stable order; empty
    /// for an unknown mailbox.
    async fn members(&self, mailbox: &str) -> Result<Arc<[Member]>>;

    /// Checks a listener AUTH login: `Ok(None)` for wrong credentials.
    async fn authenticate(&self, login: &str, password: &str) -> Result<Option<Identity>>;

    /// The identity of a login that authenticated earlier in the session.
    async fn identity(&self, login: &str) -> Result<Option<Identity>>;
}

/// The members of `mailbox` with right `pick`, addresses only.
pub fn with_right(members: &[Member], pick: fn(&Rights) -> bool) -> Vec<String> {
    members.iter().filter(|m| pick(&m.rights)).map(|m| m.address.clone()).collect()
}

/// The mailbox admin of a member list.
pub fn admin(members: &[Member]) -> Option<&Member> {
    members.iter().find(|m| m.rights.admin)
}
