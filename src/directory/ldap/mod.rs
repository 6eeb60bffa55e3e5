//! [`LdapDirectory`]: users and group memberships from an LDAP server or
//! Active Directory, served from a cache that a background task refreshes
//! every `refresh_secs`.
//!
//! - `filter`: RFC 4515 filters with escaping; `groups`: nested groupOfNames
//!   resolution; `table`: members per mailbox merged with the static users;
//!   `cache`: the refresh / outage state machine (all pure).
//! - `client`: the ldap3 connections (refresh searches, user bind).
//!
//! Lookups never touch the network: they read the last good table. Only
//! before the first refresh has finished does a lookup wait, for at most
//! `timeout_secs`; if there never was a good answer it is
//! [`Error::Unavailable`] (the gateway answers `451 4.3.0`). During an outage
//! the last good table stays in use, `pecgate_directory_up` is 0 and one
//! warning is logged per outage. Listener AUTH binds as the user, which
//! needs the server: it is bounded by `timeout_secs` too.

mod cache;
mod client;
mod filter;
mod groups;
mod table;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;

pub use cache::{Cache, Event, Snapshot};
pub use filter::is_balanced;

use super::{Directory, Error, Grant, Identity, Member, Result, StaticDirectory, Status};
use crate::clock::Clock;
use crate::config::{Config, MailboxConfig, Secrets};

pub struct LdapDirectory {
    shared: Arc<Shared>,
    /// `[[smtp.account]]` logins are still checked from the file.
    accounts: StaticDirectory,
    task: Option<tokio::task::AbortHandle>,
}

struct Shared {
    settings: client::Settings,
    mailboxes: Vec<MailboxConfig>,
    refresh_ms: u64,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
    /// Bumped after every refresh attempt.
    attempts: tokio::sync::watch::Sender<u64>,
}

impl LdapDirectory {
    /// Builds the directory and, inside a tokio runtime, starts its refresh
    /// task (the first refresh begins at once).
    pub fn new(config: &Config, secrets: &Secrets, tls: Arc<rustls::ClientConfig>, clock: Arc<dyn Clock>) -> Self {
        let password = secrets.directory.clone().unwrap_or_default();
        let shared = Arc::new(Shared {
            settings: client::Settings::new(config, password, tls),
            mailboxes: config.mailboxes.clone(),
            refresh_ms: config.directory.refresh_secs.saturating_mul(1000),
            clock,
            cache: Mutex::new(Cache::default()),
            attempts: tokio::sync::watch::channel(0).0,
        });
        crate::metrics::directory(config.directory.kind.as_str());
        let task = tokio::runtime::Handle::try_current().ok().map(|h| h.spawn(refresh_loop(Arc::downgrade(&shared))).abort_handle());
        Self { shared, accounts: StaticDirectory::new(config, secrets), task }
    }

    /// Runs one refresh now (tests, and `pecgate reload` through the loop).
    pub async fn refresh(&self) -> Event {
        self.shared.refresh().await
    }

    /// The last good table, waiting (bounded) for the first refresh.
    async fn table(&self) -> Result<Arc<table::Table>> {
        let mut rx = self.shared.attempts.subscribe();
        let never_tried = !self.shared.cache().attempted();
        if never_tried {
            let wait = self.shared.settings.timeout * 4 + Duration::from_secs(1);
            let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n > 0)).await;
        }
        let cache = self.shared.cache();
        cache.table().ok_or_else(|| {
            Error::Unavailable(match cache.last_error() {
                Some(e) => format!("no answer from {} since start: {e}", self.shared.settings.url),
                None => format!("{} has not answered yet", self.shared.settings.url),
            })
        })
    }
}

impl Drop for LdapDirectory {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn refresh(&self) -> Event {
        let started = std::time::Instant::now();
        let result = self.settings.fetch().await;
        let now = self.clock.now_ms();
        let url = &self.settings.url;
        let event = match result {
            Ok(fetched) => {
                let t = table::build(&self.mailboxes, &fetched);
                let users = t.users;
                let event = self.cache().succeeded(now, t);
                metrics::counter!("pecgate_directory_refresh_total", "result" => "success").increment(1);
                let ms = started.elapsed().as_millis() as u64;
                match &event {
                    Event::Recovered { since_ms } => {
                        tracing::info!(url = %url, users, down_secs = (now - since_ms) / 1000, "user directory answers again")
                    }
                    _ => tracing::debug!(url = %url, users, ms, "user directory refreshed"),
                }
                event
            }
            Err(e) => {
                let event = self.cache().failed(now, e.to_string());
                metrics::counter!("pecgate_directory_refresh_total", "result" => "failure").increment(1);
                if event == Event::WentDown {
                    let serving = if self.cache().table().is_some() { "the last good answer is used" } else { "mail is deferred (451)" };
                    tracing::warn!(url = %url, error = %e, "user directory refresh failed; {serving} until it answers");
                }
                event
            }
        };
        metrics::gauge!("pecgate_directory_up").set(if self.cache().snapshot().up { 1.0 } else { 0.0 });
        self.attempts.send_modify(|n| *n += 1);
        event
    }
}

/// Refreshes until the directory is dropped (a reload replaces it).
async fn refresh_loop(shared: Weak<Shared>) {
    loop {
        let delay = {
            let Some(s) = shared.upgrade() else { return };
            s.refresh().await;
            s.cache().next_delay_ms(s.refresh_ms)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    fn kind(&self) -> &'static str {
        self.shared.settings.kind.as_str()
    }

    fn refreshes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.shared.attempts.subscribe())
    }

    async fn members(&self, mailbox: &str) -> Result<Arc<[Member]>> {
        Ok(self.table().await?.members.get(mailbox).cloned().unwrap_or_else(|| Arc::from(Vec::new())))
    }

    async fn grants(&self, mailbox: &str) -> Result<Arc<[Grant]>> {
        Ok(self.table().await?.grants.get(mailbox).cloned().unwrap_or_else(|| Arc::from(Vec::new())))
    }

    async fn authenticate(&self, login: &str, password: &str) -> Result<Option<Identity>> {
        if let Some(id) = self.accounts.authenticate(login, password).await? {
            return Ok(Some(id));
        }
        // An empty simple bind is an anonymous bind, which "succeeds": never try it.
        if password.is_empty() || login.is_empty() {
            return Ok(None);
        }
        match self.shared.settings.check_password(login, password).await {
            Ok(Some(address)) => Ok(Some(Identity { login: login.to_owned(), address })),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::Unavailable(e.to_string())),
        }
    }

    async fn identity(&self, login: &str) -> Result<Option<Identity>> {
        if let Some(id) = self.accounts.identity(login).await? {
            return Ok(Some(id));
        }
        let table = self.table().await?;
        Ok(table.logins.get(&login.to_ascii_lowercase()).map(|address| Identity { login: login.to_owned(), address: address.clone() }))
    }

    fn status(&self) -> Status {
        let s = self.shared.cache().snapshot();
        Status {
            kind: self.kind(),
            url: Some(self.shared.settings.url.clone()),
            up: s.up,
            last_attempt_ms: s.last_attempt_ms,
            last_success_ms: s.last_success_ms,
            last_error: s.last_error,
            users: s.users,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory whose server is a closed loopback port.
    fn unreachable() -> LdapDirectory {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut config = Config::default();
        config.directory.kind = crate::config::DirectoryKind::Ldap;
        config.directory.url = format!("ldaps://127.0.0.1:{port}");
        config.directory.timeout_secs = 2;
        let tls = crate::tls::client_config(None).unwrap();
        LdapDirectory::new(&config, &Secrets::default(), tls, crate::clock::system())
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_without_asking_the_server() {
        let d = unreachable();
        // Asking the (unreachable) server would be an error, not a refusal.
        assert_eq!(d.authenticate("paola", "").await.unwrap(), None);
        assert!(matches!(d.authenticate("paola", "pw").await, Err(Error::Unavailable(_))));
    }

    #[tokio::test]
    async fn never_answered_is_unavailable_not_empty() {
        let d = unreachable();
        let e = d.members("legal").await.unwrap_err();
        assert!(e.to_string().contains("no answer from ldaps://127.0.0.1:"), "{e}");
        let s = d.status();
        assert!(!s.up && s.last_attempt_ms.is_some() && s.last_success_ms.is_none());
        assert_eq!(d.refresh().await, Event::StillDown);
    }
}
