//! The runtime snapshot: everything the running gateway decides with, built
//! once from a validated configuration and swapped whole on reload.
//!
//! A [`Runtime`] holds the configuration as written (`config`), what it
//! points to, resolved (passwords, the parsed trust store, TLS client and
//! server configurations) and the [`Directory`]. It is immutable: [`Live`]
//! holds the current one behind an atomic pointer, and every SMTP session,
//! delivery, poll and watchdog pass takes the snapshot current at its start
//! and keeps it to its end, so a reload never changes a running transaction.
//! [`reload`] re-reads the file, validates, builds, and only then swaps.

mod live;
pub mod reload;

use std::sync::Arc;

pub use live::Live;

use crate::config::DirectoryKind;
use crate::config::{self, Config, Loaded, MailboxConfig, Problem, Secret, Secrets};
use crate::directory::{Directory, LdapDirectory, StaticDirectory};
use crate::pec::signature::TrustStore;

pub struct Runtime {
    /// 1 at start-up, +1 per successful reload.
    pub generation: u64,
    pub config: Config,
    pub secrets: Secrets,
    pub mailboxes: Vec<Mailbox>,
    /// The `[corporate]` server: AUTH password and TLS trust.
    pub corporate_tls: Arc<rustls::ClientConfig>,
    /// The listener's STARTTLS certificate, if configured.
    pub listener_tls: Option<Arc<rustls::ServerConfig>>,
    /// Trusted PEC provider CAs for the signature check.
    pub trust: Arc<TrustStore>,
    pub directory: Arc<dyn Directory>,
    pub warnings: Vec<Problem>,
}

/// One `[[mailbox]]` with what its connections need.
pub struct Mailbox {
    pub config: MailboxConfig,
    pub password: Secret,
    pub smtp_tls: Arc<rustls::ClientConfig>,
    /// For `[mailbox.pop3]`, if set.
    pub pop3_tls: Option<Arc<rustls::ClientConfig>>,
    /// For `[mailbox.imap]`, if set.
    pub imap_tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::ops::Deref for Mailbox {
    type Target = MailboxConfig;
    fn deref(&self) -> &MailboxConfig {
        &self.config
    }
}

impl Runtime {
    /// Builds the snapshot; TLS material that cannot be loaded is reported
    /// as problems by key, like every other configuration error.
    pub fn build(loaded: Loaded, generation: u64, file: &str) -> config::Result<Runtime> {
        let Loaded { config, resolved, warnings } = loaded;
        let mut problems = Vec::new();
        let mut client_tls = |key: String, ca: Option<&std::path::Path>| match crate::tls::client_config(ca) {
            Ok(tls) => Some(tls),
            Err(e) => {
                problems.push(Problem { key, message: format!("{e}; it must be a PEM file of CA certificates") });
                None
            }
        };
        let mut mailboxes = Vec::new();
        for (i, m) in config.mailboxes.iter().enumerate() {
            let smtp_tls = client_tls(format!("mailbox[{i}].smtp.ca_file ({})", m.id), m.smtp.ca_file.as_deref());
            let pop3_tls = match &m.pop3 {
                Some(p) => client_tls(format!("mailbox[{i}].pop3.ca_file ({})", m.id), p.ca_file.as_deref()).map(Some),
                None => Some(None),
            };
            let imap_tls = match &m.imap {
                Some(p) => client_tls(format!("mailbox[{i}].imap.ca_file ({})", m.id), p.ca_file.as_deref()).map(Some),
                None => Some(None),
            };
            if let (Some(smtp_tls), Some(pop3_tls), Some(imap_tls)) = (smtp_tls, pop3_tls, imap_tls) {
                let password = resolved.secrets.mailboxes.get(&m.id).cloned().unwrap_or_default();
                mailboxes.push(Mailbox { config: m.clone(), password, smtp_tls, pop3_tls, imap_tls });
            }
        }
        let corporate_tls = client_tls("corporate.ca_file".into(), config.corporate.ca_file.as_deref());
        let directory_tls = match config.directory.kind {
            DirectoryKind::Static => None,
            _ => client_tls("directory.ca_file".into(), config.directory.ca_file.as_deref()),
        };
        let listener_tls = match (&config.smtp.tls_cert_file, &config.smtp.tls_key_file) {
            (Some(cert), Some(key)) => match crate::tls::server_config(cert, key) {
                Ok(tls) => Some(tls),
                Err(e) => {
                    problems.push(Problem { key: "smtp.tls_cert_file".into(), message: e.to_string() });
                    None
                }
            },
            _ => None,
        };
        let corporate_tls = match corporate_tls {
            Some(tls) if problems.is_empty() => tls,
            _ => return Err(config::Error::Invalid { file: file.to_owned(), problems }),
        };
        let directory: Arc<dyn Directory> = match config.directory.kind {
            DirectoryKind::Static => {
                crate::metrics::directory("static");
                Arc::new(StaticDirectory::new(&config, &resolved.secrets))
            }
            DirectoryKind::Ldap | DirectoryKind::Ad => match directory_tls {
                Some(tls) => Arc::new(LdapDirectory::new(&config, &resolved.secrets, tls, crate::clock::system())),
                None => return Err(config::Error::Invalid { file: file.to_owned(), problems }),
            },
        };
        let trust = resolved.trust_store.unwrap_or_else(|| Arc::new(TrustStore::builtin()));
        Ok(Runtime { generation, config, secrets: resolved.secrets, mailboxes, corporate_tls, listener_tls, trust, directory, warnings })
    }

    pub fn mailbox(&self, id: &str) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.id == id)
    }
}
