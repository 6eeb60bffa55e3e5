//! Configuration: one TOML file plus `PECGATE_` environment overrides.
//!
//! The key names are a contract (DESIGN.md "Configuration shape"): tools and
//! tests outside the repo write configs with them. Every struct denies unknown
//! keys, so a typo is an error that names the key instead of a silently
//! ignored setting. [`Config::validate`] collects *every* problem with its key
//! path and a fix; secrets are resolved there, once, and held as [`Secret`].

mod secret;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

pub use secret::Secret;

/// Longest username or password SMTP AUTH accepts, in bytes (RFC 4616 §2: at least 255).
pub const MAX_AUTH_FIELD: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: cannot read the configuration file: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {} problem(s) in the configuration:\n{}", .problems.len(), format_problems(.problems))]
    Invalid { file: String, problems: Vec<Problem> },
}

pub type Result<T> = std::result::Result<T, Error>;

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub smtp: SmtpConfig,
    pub tag: TagConfig,
    pub store: StoreConfig,
    pub corporate: CorporateConfig,
    pub admin: AdminConfig,
    pub queue: QueueConfig,
    pub watchdog: WatchdogConfig,
    pub pec: PecConfig,
    pub log: LogConfig,
    pub cluster: ClusterConfig,
    /// Accept literal `password = "..."` keys in this file (not recommended).
    pub allow_plaintext_secrets: bool,
    #[serde(rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
}

/// `[smtp]`: the listener the corporate mail server relays PEC mail to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub listen: String,
    /// CIDR list; others get `554` at connect and nothing more.
    pub allowed_clients: Vec<String>,
    /// Bytes; advertised with SIZE (RFC 1870).
    pub max_message_size: u64,
    pub hostname: String,
    /// STARTTLS is offered when both are set.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub max_sessions: usize,
    pub max_recipients: usize,
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    /// `[smtp.auth]`: SMTP AUTH on this listener.
    pub auth: SmtpAuthConfig,
    /// `[[smtp.account]]`: the logins SMTP AUTH accepts.
    #[serde(rename = "account")]
    pub accounts: Vec<SmtpAccountConfig>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:2525".into(),
            allowed_clients: vec!["127.0.0.1/32".into(), "::1/128".into()],
            max_message_size: 100 * 1024 * 1024,
            hostname: default_hostname(),
            tls_cert_file: None,
            tls_key_file: None,
            max_sessions: 100,
            max_recipients: 1000,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            auth: SmtpAuthConfig::default(),
            accounts: Vec::new(),
        }
    }
}

/// `[smtp.auth]`: SMTP AUTH (PLAIN, LOGIN) on the listener. It adds a login
/// to the connect-time `allowed_clients` check, never replaces it: an
/// authenticated session may send only as its account's user
/// (`smtpd_sender_login_maps` in Postfix terms), see `policy::check_sender_login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpAuthConfig {
    /// Offer AUTH PLAIN LOGIN, only after STARTTLS.
    pub enabled: bool,
    /// MAIL before a successful AUTH gets `530 5.7.0`.
    pub required: bool,
    /// Offer AUTH without TLS to clients connecting from a loopback address.
    pub allow_without_tls_on_loopback: bool,
    /// Milliseconds to wait before answering a failed AUTH (slows password guessing).
    pub failure_delay_ms: u64,
}

impl Default for SmtpAuthConfig {
    fn default() -> Self {
        Self { enabled: false, required: false, allow_without_tls_on_loopback: false, failure_delay_ms: 1000 }
    }
}

/// `[[smtp.account]]`: one SMTP AUTH login and the company user it acts as.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpAccountConfig {
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Literal password: refused unless `allow_plaintext_secrets = true`.
    pub password: Option<Secret>,
    /// The `[[mailbox.user]]` address (with `send = true`) this login sends as.
    pub address: String,
    #[serde(skip)]
    pub resolved_password: Secret,
}

pub fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// `[tag]`: the subject markers that route mail to PEC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TagConfig {
    pub markers: Vec<String>,
    pub required: bool,
}

impl Default for TagConfig {
    fn default() -> Self {
        Self { markers: vec!["[PEC]".into(), "[GPEC]".into()], required: false }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Sqlite,
    Postgres,
}

/// `[store]`: message metadata (database) and message bytes (spool).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    pub path: PathBuf,
    /// PostgreSQL URL without the password (`postgres://user@host:5432/db?sslmode=verify-full`).
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub password: Option<Secret>,
    /// PostgreSQL connection pool size of this instance.
    pub max_connections: u32,
    pub spool_dir: PathBuf,
    /// `url` with the password, built by validation; never printed.
    #[serde(skip)]
    pub resolved_url: Option<Secret>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            path: PathBuf::from("var/pecgate.db"),
            url: None,
            password_file: None,
            password_env: None,
            password: None,
            max_connections: 10,
            spool_dir: PathBuf::from("var/spool"),
            resolved_url: None,
        }
    }
}

/// `[cluster]`: several instances sharing one PostgreSQL store and spool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Unique per instance: names it in claims, leases, events and the admin page.
    pub instance_id: String,
    /// A crashed instance's deliveries and POP3 mailboxes are taken over after this.
    pub lease_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { instance_id: default_hostname(), lease_secs: 60 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP (only for the corporate side on a trusted network).
    None,
    Starttls,
    /// Implicit TLS (SMTPS, port 465).
    Tls,
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Security::None => "none",
            Security::Starttls => "starttls",
            Security::Tls => "tls",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectMode {
    Inline,
    Attach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    It,
    En,
}

/// `[corporate]`: the company mail server pecgate injects into.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorporateConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    pub mode: InjectMode,
    /// Envelope sender (and From) of what pecgate injects.
    pub from: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub password: Option<Secret>,
    pub timeout_secs: u64,
    pub max_connections: usize,
    pub language: Language,
    #[serde(skip)]
    pub resolved_password: Option<Secret>,
}

impl Default for CorporateConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 25,
            security: Security::None,
            ca_file: None,
            mode: InjectMode::Inline,
            from: format!("pecgate@{}", default_hostname()),
            username: None,
            password_file: None,
            password_env: None,
            password: None,
            timeout_secs: 60,
            max_connections: 4,
            language: Language::It,
            resolved_password: None,
        }
    }
}

/// `[admin]`: health, metrics, API and web page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: String,
    /// Bearer token of the API and password of the web page. Without it the
    /// API and page are served only on a loopback listener.
    pub token_file: Option<PathBuf>,
    /// Language of the web page (`?lang=` overrides it per request).
    pub language: Language,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9180".into(), token_file: None, language: Language::It }
    }
}

/// `[queue]`: retry policy shared by every destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// First retry delay; doubles per attempt up to `max_backoff_secs`.
    pub min_backoff_secs: u64,
    pub max_backoff_secs: u64,
    /// After this age a temporary failure becomes permanent.
    pub max_age_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { min_backoff_secs: 60, max_backoff_secs: 3600, max_age_secs: 2 * 24 * 3600 }
    }
}

/// `[pec]`: checks on what the providers send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PecConfig {
    /// PEM bundle of the accredited PEC providers' CA certificates (from
    /// AgID's list). Without it signatures are still checked, but a good
    /// one reads `valid-untrusted-signer`.
    pub trust_store: Option<PathBuf>,
}

/// `[watchdog]`: what nobody watches by hand (PEC.md: 12 h / 24 h timeouts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// No acceptance receipt this long after submission: tell the sender.
    pub acceptance_timeout_minutes: u64,
    /// No delivery receipt this long after acceptance: warn the sender (providers warn at 12 h).
    pub delivery_warning_hours: u64,
    /// ...and this long: final notice (providers give up at 24 h).
    pub delivery_final_hours: u64,
    /// A message waiting this long in the queue: tell the mailbox admin.
    pub queue_stuck_minutes: u64,
    /// No successful POP3 poll for this long: tell the mailbox admin.
    pub poll_stale_minutes: u64,
    /// How often the watchdog looks.
    pub interval_secs: u64,
    /// At most this many notices per pass (a burst of alarms must not flood users).
    pub max_notices_per_pass: usize,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            acceptance_timeout_minutes: 30,
            delivery_warning_hours: 12,
            delivery_final_hours: 24,
            queue_stuck_minutes: 30,
            poll_stale_minutes: 30,
            interval_secs: 60,
            max_notices_per_pass: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`: tracing filter (RUST_LOG syntax) and format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// `receipt_type`: the same type the PEC classifier reads back from receipts.
pub use crate::pec::ReceiptType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptsTo {
    Sender,
    Receivers,
}

/// `[[mailbox]]`: one PEC mailbox at a provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxConfig {
    pub id: String,
    pub address: String,
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Literal password: refused unless `allow_plaintext_secrets = true`.
    pub password: Option<Secret>,
    pub receipt_type: ReceiptType,
    pub receipts_to: ReceiptsTo,
    pub max_recipients: usize,
    /// Submissions per minute to the provider; 0 = no limit.
    pub rate_limit_per_minute: u32,
    pub active: bool,
    pub smtp: MailboxSmtpConfig,
    pub pop3: Option<MailboxPop3Config>,
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(skip)]
    pub resolved_password: Secret,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            address: String::new(),
            username: String::new(),
            password_file: None,
            password_env: None,
            password: None,
            receipt_type: ReceiptType::Completa,
            receipts_to: ReceiptsTo::Sender,
            max_recipients: 50,
            rate_limit_per_minute: 0,
            active: true,
            smtp: MailboxSmtpConfig::default(),
            pop3: None,
            users: Vec::new(),
            resolved_password: Secret::default(),
        }
    }
}

/// `[mailbox.smtp]`: the provider's submission server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxSmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub timeout_secs: u64,
    pub ca_file: Option<PathBuf>,
    /// Parallel connections to the provider for this mailbox.
    pub max_connections: usize,
}

impl Default for MailboxSmtpConfig {
    fn default() -> Self {
        Self { host: String::new(), port: 465, security: Security::Tls, timeout_secs: 60, ca_file: None, max_connections: 4 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    Leave,
    Delete,
    DeleteAfter,
}

/// `[mailbox.pop3]`: the provider's POP3 server (used by the fetcher).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxPop3Config {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub timeout_secs: u64,
    pub ca_file: Option<PathBuf>,
    pub interval_secs: u64,
    pub retention: Retention,
    pub delete_after_days: u32,
}

impl Default for MailboxPop3Config {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 995,
            security: Security::Tls,
            timeout_secs: 60,
            ca_file: None,
            interval_secs: 60,
            retention: Retention::Leave,
            delete_after_days: 30,
        }
    }
}

/// `[[mailbox.user]]`: a company address and what it may do with the mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub address: String,
    pub send: bool,
    pub receive: bool,
    pub anomalies: bool,
    pub admin: bool,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self { address: String::new(), send: true, receive: true, anomalies: true, admin: false }
    }
}

impl MailboxConfig {
    pub fn admin(&self) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.admin)
    }
}

/// A validated configuration and what deserves a warning.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Loads `path`, applies `PECGATE_*` overrides (`PECGATE_SMTP__LISTEN=...`),
/// validates, and resolves secrets.
pub fn load(path: &Path) -> Result<Loaded> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { file: file.clone(), source })?;
    let figment = Figment::new().merge(Toml::string(&text)).merge(env_overrides());
    finish(figment, &file, path.parent())
}

/// `PECGATE_SECTION__KEY=value` overrides. Only names with a section (or the
/// one top-level key) count, so `PECGATE_CONFIG` and other variables of the
/// same prefix are not mistaken for unknown keys.
fn env_overrides() -> Env {
    Env::prefixed("PECGATE_").filter(|k| k.as_str().contains("__") || k == "allow_plaintext_secrets").split("__")
}

/// Reads the file and overrides without validating (the simulator needs the
/// paths before the files they name exist).
pub fn load_unvalidated(path: &Path) -> Result<Config> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { file: file.clone(), source })?;
    Figment::new()
        .merge(Toml::string(&text))
        .merge(env_overrides())
        .extract()
        .map_err(|e| Error::Parse { file, message: describe_figment(e) })
}

/// Like [`load`] but from a string (tests, demo); relative paths resolve from `base`.
pub fn load_str(text: &str, base: Option<&Path>) -> Result<Loaded> {
    finish(Figment::new().merge(Toml::string(text)), "<config>", base)
}

fn finish(figment: Figment, file: &str, base: Option<&Path>) -> Result<Loaded> {
    let config: Config = figment.extract().map_err(|e| Error::Parse { file: file.to_owned(), message: describe_figment(e) })?;
    config.validated(file, base)
}

fn describe_figment(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let what = e.kind.to_string();
            if key.is_empty() { what } else { format!("{key}: {what}") }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Validates and resolves secrets; every problem is reported, not just the first.
    fn validate_store(&mut self, v: &mut Validator, allow_plain: bool) {
        let st = &mut self.store;
        let password_given = st.password_file.is_some() || st.password_env.is_some() || st.password.is_some();
        match st.backend {
            StoreBackend::Sqlite => {
                if password_given || st.url.is_some() {
                    v.warning("store.url", "ignored with backend = \"sqlite\" (url and password are for \"postgres\")");
                }
            }
            StoreBackend::Postgres => match st.url.as_deref().map(url::Url::parse) {
                None => v.error("store.url", "is not set; write e.g. \"postgres://pecgate@db.azienda.it:5432/pecgate\""),
                Some(Err(e)) => {
                    v.error("store.url", format!("is not a URL ({e}); write e.g. \"postgres://pecgate@db.azienda.it:5432/pecgate\""))
                }
                Some(Ok(u)) if !matches!(u.scheme(), "postgres" | "postgresql") => {
                    v.error("store.url", format!("scheme {:?} is not postgres://", u.scheme()))
                }
                Some(Ok(u)) if u.password().is_some() => {
                    v.error("store.url", "contains a password; remove it from the URL and use store.password_file or store.password_env")
                }
                Some(Ok(mut u)) => {
                    let password = if password_given {
                        v.secret("store", &st.password_file, &st.password_env, &st.password, allow_plain)
                    } else {
                        None
                    };
                    if let Some(p) = password
                        && u.set_password(Some(p.expose())).is_err()
                    {
                        v.error("store.url", "cannot carry a password (no host in the URL)");
                    }
                    st.resolved_url = Some(Secret::new(u.to_string()));
                }
            },
        }
        if st.max_connections == 0 {
            v.error("store.max_connections", "must be at least 1 (e.g. 10)");
        }
        let c = &self.cluster;
        if c.instance_id.trim().is_empty() || c.instance_id.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            v.error(
                "cluster.instance_id",
                format!("{:?} must be a non-empty name without spaces, unique per instance (default: the host name)", c.instance_id),
            );
        }
        if c.lease_secs < 5 {
            v.error("cluster.lease_secs", format!("{} is too short; use at least 5 (default 60)", c.lease_secs));
        }
    }

    pub fn validated(mut self, file: &str, base: Option<&Path>) -> Result<Loaded> {
        let mut v = Validator::default();
        self.resolve_relative_paths(base);
        self.check(&mut v);
        if v.errors.is_empty() {
            Ok(Loaded { config: self, warnings: v.warnings })
        } else {
            Err(Error::Invalid { file: file.to_owned(), problems: v.errors })
        }
    }

    fn resolve_relative_paths(&mut self, base: Option<&Path>) {
        let Some(base) = base else { return };
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        let fix_opt = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                fix(p)
            }
        };
        fix(&mut self.store.path);
        fix(&mut self.store.spool_dir);
        fix_opt(&mut self.smtp.tls_cert_file);
        fix_opt(&mut self.smtp.tls_key_file);
        fix_opt(&mut self.corporate.ca_file);
        fix_opt(&mut self.corporate.password_file);
        fix_opt(&mut self.store.password_file);
        fix_opt(&mut self.admin.token_file);
        fix_opt(&mut self.pec.trust_store);
        for a in &mut self.smtp.accounts {
            fix_opt(&mut a.password_file);
        }
        for m in &mut self.mailboxes {
            fix_opt(&mut m.password_file);
            fix_opt(&mut m.smtp.ca_file);
            if let Some(p) = &mut m.pop3 {
                fix_opt(&mut p.ca_file);
            }
        }
    }

    fn check(&mut self, v: &mut Validator) {
        let allow_plain = self.allow_plaintext_secrets;
        let s = &self.smtp;
        if s.listen.parse::<SocketAddr>().is_err() {
            v.error("smtp.listen", format!("{:?} is not an address:port; write e.g. \"127.0.0.1:2525\"", s.listen));
        }
        if s.allowed_clients.is_empty() {
            v.error("smtp.allowed_clients", "is empty, so no client could connect; list your mail server, e.g. [\"192.0.2.10/32\"]");
        }
        for (i, c) in s.allowed_clients.iter().enumerate() {
            if parse_cidr(c).is_none() {
                v.error(format!("smtp.allowed_clients[{i}]"), format!("{c:?} is not an IP address or CIDR block such as \"10.0.0.0/8\""));
            }
        }
        if s.max_message_size == 0 {
            v.error("smtp.max_message_size", "must be a positive number of bytes, e.g. 104857600");
        }
        if s.hostname.trim().is_empty() {
            v.error("smtp.hostname", "is empty; set the name this gateway greets with");
        }
        match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(_), None) => v.error("smtp.tls_key_file", "is missing while smtp.tls_cert_file is set; set both or neither"),
            (None, Some(_)) => v.error("smtp.tls_cert_file", "is missing while smtp.tls_key_file is set; set both or neither"),
            (Some(c), Some(k)) => {
                v.file_exists("smtp.tls_cert_file", c);
                v.file_exists("smtp.tls_key_file", k);
            }
            (None, None) => {}
        }
        if s.max_sessions == 0 {
            v.error("smtp.max_sessions", "must be at least 1");
        }
        if s.command_timeout_secs == 0 || s.data_timeout_secs == 0 {
            v.error("smtp.command_timeout_secs", "timeouts must be at least 1 second");
        }

        if self.tag.markers.is_empty() {
            v.error("tag.markers", "is empty; use e.g. [\"[PEC]\"]");
        }
        for (i, m) in self.tag.markers.iter().enumerate() {
            if !(m.len() >= 3 && m.starts_with('[') && m.ends_with(']')) {
                v.error(format!("tag.markers[{i}]"), format!("{m:?} must look like \"[PEC]\" (brackets around a word)"));
            }
        }

        self.validate_store(v, allow_plain);

        let c = &mut self.corporate;
        if c.host.trim().is_empty() {
            v.error("corporate.host", "is empty; set your mail server's address");
        }
        if c.port == 0 {
            v.error("corporate.port", "must be a TCP port (e.g. 25)");
        }
        if !c.from.contains('@') {
            v.error("corporate.from", format!("{:?} is not an e-mail address; pecgate sends as this address", c.from));
        }
        if let Some(ca) = &c.ca_file {
            v.file_exists("corporate.ca_file", ca);
        }
        if c.username.is_some() {
            c.resolved_password = v.secret("corporate", &c.password_file, &c.password_env, &c.password, allow_plain);
        } else if c.password_file.is_some() || c.password_env.is_some() || c.password.is_some() {
            v.error("corporate.username", "is missing while a corporate password is set; set both for SMTP AUTH or neither");
        }

        match self.admin.listen.parse::<SocketAddr>() {
            Err(_) => v.error("admin.listen", format!("{:?} is not an address:port; write e.g. \"127.0.0.1:9180\"", self.admin.listen)),
            // The API can retry and drop mail: never serve it unauthenticated beyond this host.
            Ok(addr) if !addr.ip().is_loopback() && self.admin.token_file.is_none() => v.error(
                "admin.token_file",
                format!(
                    "is not set while admin.listen {} is not a loopback address; set token_file (a file with a long random token) or listen on 127.0.0.1",
                    self.admin.listen
                ),
            ),
            Ok(_) => {}
        }
        if let Some(t) = &self.admin.token_file {
            v.file_exists("admin.token_file", t);
            warn_if_readable_by_others(v, "admin.token_file", t);
        }
        if self.queue.min_backoff_secs == 0 || self.queue.max_backoff_secs < self.queue.min_backoff_secs {
            v.error("queue.min_backoff_secs", "must be at least 1 and not above queue.max_backoff_secs");
        }
        if let Some(ts) = &self.pec.trust_store {
            match std::fs::read_to_string(ts) {
                Ok(pem) => {
                    if let Err(e) = crate::pec::signature::TrustStore::from_pem(&pem) {
                        v.error("pec.trust_store", format!("{}: {e}; it must be a PEM bundle of CA certificates", ts.display()));
                    }
                }
                Err(e) => v.error("pec.trust_store", format!("cannot read {}: {e}", ts.display())),
            }
        }
        let w = &self.watchdog;
        if w.interval_secs == 0 || w.acceptance_timeout_minutes == 0 || w.queue_stuck_minutes == 0 || w.poll_stale_minutes == 0 {
            v.error("watchdog", "times must be at least 1");
        }
        if w.delivery_final_hours <= w.delivery_warning_hours {
            v.error("watchdog.delivery_final_hours", "must be greater than delivery_warning_hours (providers: 12 and 24)");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            v.error("log.level", format!("{:?} is not a filter such as \"info\" or \"pecgate=debug,info\"", self.log.level));
        }

        if self.mailboxes.is_empty() {
            v.warning("mailbox", "no [[mailbox]] is configured: every message will be refused");
        }
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, m) in self.mailboxes.iter_mut().enumerate() {
            let key = format!("mailbox[{i}]");
            if m.id.is_empty() || !m.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)) {
                v.error(
                    format!("{key}.id"),
                    format!("{:?} must be a short name of letters, digits, '.', '_' or '-' (used in [PEC:id] tags and metrics)", m.id),
                );
            } else if !ids.insert(m.id.clone()) {
                v.error(format!("{key}.id"), format!("{:?} is used by two mailboxes; ids must be unique", m.id));
            }
            let key = if m.id.is_empty() { key } else { format!("{key} ({})", m.id) };
            if !is_address(&m.address) {
                v.error(format!("{key}.address"), format!("{:?} is not an e-mail address", m.address));
            } else if !addresses.insert(m.address.to_ascii_lowercase()) {
                v.error(format!("{key}.address"), format!("{:?} belongs to two mailboxes", m.address));
            }
            if m.username.is_empty() {
                v.error(format!("{key}.username"), "is empty; set the provider login (often the PEC address)");
            }
            m.resolved_password = v.secret(&key, &m.password_file, &m.password_env, &m.password, allow_plain).unwrap_or_default();
            if m.max_recipients == 0 {
                v.error(format!("{key}.max_recipients"), "must be at least 1 (providers allow about 50)");
            }
            if m.smtp.host.trim().is_empty() {
                v.error(format!("{key}.smtp.host"), "is empty; set the provider's SMTP server, e.g. \"smtps.pec.aruba.it\"");
            }
            if m.smtp.port == 0 {
                v.error(format!("{key}.smtp.port"), "must be a TCP port (465 for tls, 587 for starttls)");
            }
            if m.smtp.security == Security::None {
                v.error(format!("{key}.smtp.security"), "\"none\" is not allowed for a PEC provider; use \"tls\" or \"starttls\"");
            }
            if m.smtp.timeout_secs == 0 || m.smtp.max_connections == 0 {
                v.error(format!("{key}.smtp"), "timeout_secs and max_connections must be at least 1");
            }
            if let Some(ca) = &m.smtp.ca_file {
                v.file_exists(&format!("{key}.smtp.ca_file"), ca);
            }
            if let Some(p) = &m.pop3 {
                if p.host.trim().is_empty() {
                    v.error(format!("{key}.pop3.host"), "is empty; set the provider's POP3 server");
                }
                if p.security == Security::None {
                    v.error(format!("{key}.pop3.security"), "\"none\" is not allowed for a PEC provider; use \"tls\" or \"starttls\"");
                }
                if let Some(ca) = &p.ca_file {
                    v.file_exists(&format!("{key}.pop3.ca_file"), ca);
                }
            }
            let mut seen = HashSet::new();
            for (j, u) in m.users.iter().enumerate() {
                if !is_address(&u.address) {
                    v.error(format!("{key}.user[{j}].address"), format!("{:?} is not an e-mail address", u.address));
                } else if !seen.insert(u.address.to_ascii_lowercase()) {
                    v.error(format!("{key}.user[{j}].address"), format!("{:?} is listed twice in this mailbox", u.address));
                }
            }
            if !m.users.iter().any(|u| u.receive) {
                v.error(
                    format!("{key}.user"),
                    "no user has receive = true, so incoming PEC would reach nobody; add a [[mailbox.user]] with receive = true",
                );
            }
            if !m.users.iter().any(|u| u.send) {
                v.warning(format!("{key}.user"), "no user has send = true: this mailbox can only receive");
            }
            match m.users.iter().filter(|u| u.admin).count() {
                1 => {}
                0 => v.error(
                    format!("{key}.user"),
                    "no user has admin = true; mark exactly one user as the mailbox admin (gets error notices)",
                ),
                n => v.error(format!("{key}.user"), format!("{n} users have admin = true; mark exactly one")),
            }
        }
        self.check_smtp_auth(v);
    }

    /// `[smtp.auth]` and `[[smtp.account]]`; after the mailboxes, whose users the accounts name.
    fn check_smtp_auth(&mut self, v: &mut Validator) {
        let allow_plain = self.allow_plaintext_secrets;
        let smtp = &mut self.smtp;
        let auth = &smtp.auth;
        if auth.enabled && smtp.accounts.is_empty() {
            v.error(
                "smtp.auth.enabled",
                "is true but no [[smtp.account]] is configured; add an account (username, password_file, address) or set enabled = false",
            );
        }
        if auth.required && !auth.enabled {
            v.error(
                "smtp.auth.required",
                "is true while smtp.auth.enabled is false, so every MAIL would be refused; enable AUTH or set required = false",
            );
        }
        if !auth.enabled && !smtp.accounts.is_empty() {
            v.warning("smtp.account", "accounts are configured but smtp.auth.enabled is false: nobody can log in");
        }
        if auth.enabled && smtp.tls_cert_file.is_none() {
            let loopback_listen = smtp.listen.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
            if !(auth.allow_without_tls_on_loopback && loopback_listen) {
                v.error(
                    "smtp.auth.enabled",
                    "AUTH is only offered after STARTTLS, but smtp.tls_cert_file is not set; set smtp.tls_cert_file and smtp.tls_key_file, \
                     or listen on a loopback address with smtp.auth.allow_without_tls_on_loopback = true",
                );
            }
        }
        let senders: HashSet<String> =
            self.mailboxes.iter().flat_map(|m| m.users.iter()).filter(|u| u.send).map(|u| u.address.to_ascii_lowercase()).collect();
        let mut names = HashSet::new();
        for (i, a) in smtp.accounts.iter_mut().enumerate() {
            let key = format!("smtp.account[{i}]");
            if a.username.is_empty() || a.username.len() > MAX_AUTH_FIELD || a.username.chars().any(char::is_control) {
                v.error(
                    format!("{key}.username"),
                    format!("{:?} must be 1 to {MAX_AUTH_FIELD} bytes without control characters", a.username),
                );
            } else if !names.insert(a.username.to_lowercase()) {
                v.error(format!("{key}.username"), format!("{:?} is used by two accounts; usernames must be unique", a.username));
            }
            let key = if a.username.is_empty() { key } else { format!("{key} ({})", a.username) };
            a.resolved_password = v.secret(&key, &a.password_file, &a.password_env, &a.password, allow_plain).unwrap_or_default();
            if a.resolved_password.expose().len() > MAX_AUTH_FIELD {
                v.error(
                    format!("{key}.password_file"),
                    format!("the password is longer than {MAX_AUTH_FIELD} bytes, more than AUTH accepts"),
                );
            }
            if !is_address(&a.address) {
                v.error(format!("{key}.address"), format!("{:?} is not an e-mail address", a.address));
            } else if !senders.contains(&a.address.to_ascii_lowercase()) {
                v.error(
                    format!("{key}.address"),
                    format!(
                        "{:?} is not a [[mailbox.user]] with send = true in any mailbox; add it to the mailbox this login sends from, or fix the address",
                        a.address
                    ),
                );
            }
        }
    }

    pub fn mailbox(&self, id: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.id == id)
    }

    pub fn allowed_clients(&self) -> Vec<IpNet> {
        self.smtp.allowed_clients.iter().filter_map(|c| parse_cidr(c)).collect()
    }

    /// The effective configuration, secrets masked (for `check-config`).
    /// JSON rather than TOML: the toml crate is not a direct dependency, and
    /// JSON shows the same keys and values just as plainly.
    pub fn to_masked_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("<cannot render: {e}>"))
    }
}

/// `10.0.0.0/8`, or a bare address meaning a single host.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !s.chars().any(|c| c.is_whitespace() || "<>,;\"".contains(c)),
        None => false,
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem { key: key.into(), message: message.into() });
    }

    fn warning(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem { key: key.into(), message: message.into() });
    }

    fn file_exists(&mut self, key: &str, path: &Path) {
        if !path.is_file() {
            self.error(key, format!("file {} does not exist or is not readable", path.display()));
        }
    }

    /// Resolves exactly one of `password_file`, `password_env`, `password`.
    fn secret(
        &mut self,
        key: &str,
        file: &Option<PathBuf>,
        env: &Option<String>,
        literal: &Option<Secret>,
        allow_plain: bool,
    ) -> Option<Secret> {
        let given = [file.is_some(), env.is_some(), literal.is_some()].iter().filter(|b| **b).count();
        if given == 0 {
            self.error(format!("{key}.password_file"), "no password: set password_file (a file readable only by pecgate) or password_env");
            return None;
        }
        if given > 1 {
            self.error(format!("{key}.password_file"), "set only one of password_file, password_env, password");
            return None;
        }
        if let Some(path) = file {
            return match std::fs::read_to_string(path) {
                Ok(text) => {
                    warn_if_readable_by_others(self, key, path);
                    let s = Secret::from_file_contents(&text);
                    if s.is_empty() {
                        self.error(format!("{key}.password_file"), format!("{} is empty", path.display()));
                    }
                    Some(s)
                }
                Err(e) => {
                    self.error(format!("{key}.password_file"), format!("cannot read {}: {e}", path.display()));
                    None
                }
            };
        }
        if let Some(var) = env {
            return match std::env::var(var) {
                Ok(value) if !value.is_empty() => Some(Secret::new(value)),
                _ => {
                    self.error(format!("{key}.password_env"), format!("environment variable {var} is not set or empty"));
                    None
                }
            };
        }
        if !allow_plain {
            self.error(
                format!("{key}.password"),
                "a literal password in the config file is refused; use password_file or password_env (or set allow_plaintext_secrets = true)",
            );
            return None;
        }
        self.warning(format!("{key}.password"), "literal password in the config file; prefer password_file");
        literal.clone()
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(v: &mut Validator, key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        v.warning(
            format!("{key}.password_file"),
            format!("{} is readable by group or others (mode {:o}); chmod 600 it", path.display(), meta.permissions().mode() & 0o777),
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &mut Validator, _: &str, _: &Path) {}

/// Accepts `"..."` strings for secrets in TOML.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests;
