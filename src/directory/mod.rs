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
pub mod ldap;

use std::sync::Arc;

use async_trait::async_trait;

pub use config::StaticDirectory;
pub use ldap::LdapDirectory;
pub use ldap::is_balanced as filter_is_balanced;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("the user directory cannot answer: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a user may do with one mailbox (`[[mailbox.user]]` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
    /// The user's sending PIN as an Argon2 PHC string, when the directory
    /// holds it (an LDAP attribute); None: the store's `pecgate pin set` hash.
    pub pin_hash: Option<String>,
}

/// Where a right comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", content = "group", rename_all = "lowercase")]
pub enum Source {
    /// A `[[mailbox.user]]` entry of the configuration file.
    Config,
    /// Membership (direct or nested) of this directory group, as configured.
    Group(String),
}

/// A member with the origin of each of its rights (the admin page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    pub address: String,
    pub rights: Rights,
    /// `(right, source)`: `("send", Group("cn=PEC-Legale-Invio,..."))`.
    pub sources: Vec<(&'static str, Source)>,
}

/// The directory's state for the admin page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub kind: &'static str,
    pub url: Option<String>,
    pub up: bool,
    /// Unix ms of the last refresh attempt and of the last good one.
    pub last_attempt_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Users read by the last good refresh.
    pub users: Option<usize>,
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

    /// The members of `mailbox` with where each right comes from.
    async fn grants(&self, mailbox: &str) -> Result<Arc<[Grant]>> {
        let members = self.members(mailbox).await?;
        Ok(members.iter().map(config_grant).collect())
    }

    /// Kind and refresh state.
    fn status(&self) -> Status {
        Status { kind: self.kind(), url: None, up: true, last_attempt_ms: None, last_success_ms: None, last_error: None, users: None }
    }

    /// Bumped after each refresh, for a directory whose answers change
    /// without a reload (LDAP); `None` when only a reload changes them.
    fn refreshes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// A member whose rights all come from the configuration file.
fn config_grant(m: &Member) -> Grant {
    let r = m.rights;
    let sources = [("send", r.send), ("receive", r.receive), ("anomalies", r.anomalies), ("admin", r.admin)]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(right, _)| (right, Source::Config))
        .collect();
    Grant { address: m.address.clone(), rights: r, sources }
}

/// The members of `mailbox` with right `pick`, addresses only.
pub fn with_right(members: &[Member], pick: fn(&Rights) -> bool) -> Vec<String> {
    members.iter().filter(|m| pick(&m.rights)).map(|m| m.address.clone()).collect()
}

/// The mailbox admin of a member list.
pub fn admin(members: &[Member]) -> Option<&Member> {
    members.iter().find(|m| m.rights.admin)
}
