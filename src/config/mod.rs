//! Configuration: one TOML file plus `PECGATE_` environment overrides.
//!
//! The key names are a contract (tools and tests outside the repo write
//! configs with them). Every struct denies unknown keys, so a typo is an
//! error that names the key instead of a silently ignored setting.
//! `schema` is the file's shape, `load` reads it, `validate` collects
//! *every* problem with its key path and a fix and reads the secrets once
//! into [`Resolved`], kept apart from the serde types. `runtime` turns a
//! [`Loaded`] configuration into what the running gateway uses.

mod load;
pub mod profiles;
mod schema;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

pub use load::{control_socket, load, load_str, load_unvalidated};
pub use schema::*;
pub use secret::Secret;
pub use validate::{MAX_SECRET_FILE, read_secret_file};

/// Longest username or password SMTP AUTH accepts, in bytes (RFC 4616 §2: at least 255).
pub const MAX_AUTH_FIELD: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: cannot read the configuration file: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: the configuration cannot be read:\n{}", format_problems(.problems))]
    Parse { file: String, problems: Vec<Problem> },
    #[error("{file}: {} problem(s) in the configuration:\n{}", .problems.len(), format_problems(.problems))]
    Invalid { file: String, problems: Vec<Problem> },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Every problem (one for an unreadable file).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Error::Read { source, .. } => vec![Problem { key: "(file)".into(), message: source.to_string() }],
            Error::Parse { problems, .. } | Error::Invalid { problems, .. } => problems.clone(),
        }
    }
}

/// One configuration problem: the key path, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn format_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// A validated configuration, what validation read for it, and what deserves a warning.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub resolved: Resolved,
    pub warnings: Vec<Problem>,
}

/// Values the file only points to, read once by validation.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub secrets: Secrets,
    /// `[pec] trust_store`, parsed.
    pub trust_store: Option<std::sync::Arc<crate::pec::signature::TrustStore>>,
}

/// Passwords and tokens, as [`Secret`]s (they never print).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// By mailbox id: the provider password.
    pub mailboxes: BTreeMap<String, Secret>,
    /// By `[[smtp.account]]` username: the listener AUTH password.
    pub accounts: BTreeMap<String, Secret>,
    /// `[corporate]` AUTH password.
    pub corporate: Option<Secret>,
    /// `[store] url` with the password joined in (PostgreSQL).
    pub store_url: Option<Secret>,
    /// `[admin] token_file`.
    pub admin_token: Option<Secret>,
    /// `[directory]` service account password.
    pub directory: Option<Secret>,
}

#[cfg(test)]
mod tests;
