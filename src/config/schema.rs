//! The configuration file's shape: one serde struct per section, each with
//! the documented defaults and `deny_unknown_fields`. Only what the file
//! says lives here; resolved values (passwords read from files, parsed
//! certificates) are in `runtime`.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Secret;

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
    pub control: ControlConfig,
    /// `[pin]`: the lockout of mailboxes with `require_pin = true`.
    pub pin: PinConfig,
    pub directory: DirectoryConfig,
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
    /// Milliseconds to wait before the 220 greeting; a client that talks first
    /// is refused with 554. 0 still refuses one whose data is already there.
    pub greet_pause_ms: u64,
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
            greet_pause_ms: 0,
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
        }
    }
}

/// `[control]`: the local socket `pecgate reload` talks to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket (mode 0600) for `pecgate reload`; relative to the config file's directory.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self { socket: PathBuf::from("var/pecgate.sock") }
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
    /// Names besides the listener's own address that a request's `Host` may
    /// carry (a reverse proxy's name, a container's service name): `name`
    /// (any port) or `name:port`. Anything else gets 421, which stops DNS
    /// rebinding from reaching the API through a browser.
    pub allowed_hosts: Vec<String>,
    /// Language of the web page (`?lang=` overrides it per request).
    pub language: Language,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9180".into(), token_file: None, allowed_hosts: Vec::new(), language: Language::It }
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PecConfig {
    /// PEM bundle of CA certificates trusted for provider signatures, on top
    /// of the built-in AgID CA1 (or instead of it, with `builtin_anchors = false`).
    pub trust_store: Option<PathBuf>,
    /// Trust the anchors built into pecgate (AgID CA1): `pecgate trust show`.
    pub builtin_anchors: bool,
    /// Check the provider signer's revocation: `crl` (default) or `off`.
    pub revocation: RevocationMode,
    /// Air-gapped hosts: read CRL files from this directory instead of
    /// fetching them (read at start).
    pub crl_dir: Option<PathBuf>,
    /// Where fetched CRLs are kept until their nextUpdate; default
    /// `<store.spool_dir>/crl` (read at start).
    pub crl_cache_dir: Option<PathBuf>,
    /// Bound on one CRL download.
    pub crl_timeout_secs: u64,
}

impl Default for PecConfig {
    fn default() -> Self {
        Self {
            trust_store: None,
            builtin_anchors: true,
            revocation: RevocationMode::Crl,
            crl_dir: None,
            crl_cache_dir: None,
            crl_timeout_secs: 10,
        }
    }
}

/// `[pec] revocation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationMode {
    /// The CRL of the signer's issuer, from its distribution point (or `crl_dir`).
    Crl,
    /// Not checked: every verdict says `revocation: not-checked`.
    Off,
}

/// `[pin]`: wrong PINs on a `require_pin` mailbox lock the user out of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinConfig {
    /// This many wrong PINs ...
    pub max_failures: u32,
    /// ... within this many seconds ...
    pub window_secs: u64,
    /// ... lock the user out of the mailbox for this long.
    pub lockout_secs: u64,
}

impl Default for PinConfig {
    fn default() -> Self {
        Self { max_failures: 5, window_secs: 900, lockout_secs: 1800 }
    }
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
    /// The provider whose defaults fill what this table leaves unset (see `profiles`).
    pub provider: Option<super::profiles::Provider>,
    /// What the provider profile filled in (not a key of the file).
    #[serde(skip)]
    pub profile_filled: Vec<super::profiles::Filled>,
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
    /// The day the provider password stops working (`2027-05-31`), for
    /// warnings 14 and 3 days ahead; or give `password_max_age_days` and
    /// `password_changed`.
    pub password_expires: Option<String>,
    /// The provider's maximum password age (Aruba app passwords: 180 days;
    /// others: 90), counted from `password_changed`.
    pub password_max_age_days: Option<u32>,
    /// The day the password was last changed (`2026-12-02`).
    pub password_changed: Option<String>,
    /// A preavviso di mancata consegna whose errore-esteso is `5.x.x` is final
    /// (an errore-consegna): some providers (Namirial) send no other receipt.
    pub final_preavviso_5xx: bool,
    /// The provider's size limit for this mailbox, checked at end of DATA.
    pub max_message_bytes: Option<u64>,
    /// `max_message_bytes` is divided by the number of recipients (Aruba).
    pub size_per_recipient: bool,
    /// Each sender must write its PIN in the subject tag (`[PEC:legal:482913]`).
    pub require_pin: bool,
    pub smtp: MailboxSmtpConfig,
    pub pop3: Option<MailboxPop3Config>,
    /// `[mailbox.imap]`: the alternative to `[mailbox.pop3]` (one of the two).
    pub imap: Option<MailboxImapConfig>,
    #[serde(rename = "user")]
    pub users: Vec<UserConfig>,
    /// Directory groups whose members get each right (with `[directory]`).
    pub groups: GroupsConfig,
}

impl MailboxConfig {
    /// The day the provider password expires, from `password_expires` or
    /// `password_changed` + `password_max_age_days` (validated at load).
    pub fn password_expiry(&self) -> Option<chrono::NaiveDate> {
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
        match (&self.password_expires, self.password_max_age_days, &self.password_changed) {
            (Some(date), _, _) => day(date),
            (None, Some(days), Some(changed)) => day(changed)?.checked_add_days(chrono::Days::new(u64::from(days))),
            _ => None,
        }
    }
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            address: String::new(),
            provider: None,
            profile_filled: Vec::new(),
            username: String::new(),
            password_file: None,
            password_env: None,
            password: None,
            receipt_type: ReceiptType::Completa,
            receipts_to: ReceiptsTo::Sender,
            max_recipients: 50,
            rate_limit_per_minute: 0,
            active: true,
            password_expires: None,
            password_max_age_days: None,
            password_changed: None,
            final_preavviso_5xx: false,
            max_message_bytes: None,
            size_per_recipient: false,
            require_pin: false,
            smtp: MailboxSmtpConfig::default(),
            pop3: None,
            imap: None,
            users: Vec::new(),
            groups: GroupsConfig::default(),
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

/// `[mailbox.groups]`: the directory groups (DNs) whose members get each
/// right on the mailbox, in addition to the `[[mailbox.user]]` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsConfig {
    pub send: Vec<String>,
    pub receive: Vec<String>,
    pub anomalies: Vec<String>,
    pub admin: Vec<String>,
}

impl GroupsConfig {
    pub fn is_empty(&self) -> bool {
        self.send.is_empty() && self.receive.is_empty() && self.anomalies.is_empty() && self.admin.is_empty()
    }

    /// `(right, group DNs)` in a fixed order.
    pub fn by_right(&self) -> [(&'static str, &[String]); 4] {
        [("send", &self.send), ("receive", &self.receive), ("anomalies", &self.anomalies), ("admin", &self.admin)]
    }
}

/// `[directory] kind`: where users and groups come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// Only `[[mailbox.user]]` and `[[smtp.account]]`.
    #[default]
    Static,
    /// OpenLDAP and friends: groupOfNames groups, nested groups resolved by pecgate.
    Ldap,
    /// Active Directory: nested groups through the matching rule 1.2.840.113556.1.4.1941.
    Ad,
}

impl DirectoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::Static => "static",
            DirectoryKind::Ldap => "ldap",
            DirectoryKind::Ad => "ad",
        }
    }
}

/// `[directory]`: an LDAP / Active Directory server holding the users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    pub kind: DirectoryKind,
    /// `ldaps://host:636` or `ldap://host:389` (StartTLS).
    pub url: String,
    /// Plain LDAP without StartTLS, allowed only to a loopback address.
    pub allow_plaintext_loopback: bool,
    pub ca_file: Option<PathBuf>,
    /// The service account pecgate searches with.
    pub bind_dn: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Literal password: refused unless `allow_plaintext_secrets = true`.
    pub password: Option<Secret>,
    pub base_dn: String,
    /// Which entries are users; empty = a default per kind.
    pub user_filter: String,
    pub mail_attribute: String,
    /// The attribute a listener AUTH login may also be (besides the mail address); empty = `uid` (ldap) or `sAMAccountName` (ad).
    pub login_attribute: String,
    /// An attribute holding the user's sending PIN as an Argon2 PHC hash.
    pub pin_attribute: Option<String>,
    pub refresh_secs: u64,
    pub timeout_secs: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            kind: DirectoryKind::Static,
            url: String::new(),
            allow_plaintext_loopback: false,
            ca_file: None,
            bind_dn: String::new(),
            password_file: None,
            password_env: None,
            password: None,
            base_dn: String::new(),
            user_filter: String::new(),
            mail_attribute: "mail".into(),
            login_attribute: String::new(),
            pin_attribute: None,
            refresh_secs: 300,
            timeout_secs: 10,
        }
    }
}

impl DirectoryConfig {
    /// `user_filter`, or the default of the kind.
    pub fn effective_user_filter(&self) -> &str {
        match (self.user_filter.trim(), self.kind) {
            ("", DirectoryKind::Ad) => "(&(objectCategory=person)(objectClass=user))",
            ("", _) => "(objectClass=inetOrgPerson)",
            (f, _) => f,
        }
    }

    /// `login_attribute`, or the default of the kind.
    pub fn effective_login_attribute(&self) -> &str {
        match (self.login_attribute.trim(), self.kind) {
            ("", DirectoryKind::Ad) => "sAMAccountName",
            ("", _) => "uid",
            (a, _) => a,
        }
    }
}

/// `[mailbox.imap]`: the provider's IMAP server (used by the fetcher
/// instead of POP3): IDLE where offered, polling otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxImapConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub timeout_secs: u64,
    pub ca_file: Option<PathBuf>,
    /// Folders fetched, in order.
    pub folders: Vec<String>,
    /// Wait for new mail with IDLE (RFC 2177) when the server offers it.
    pub idle: bool,
    /// Poll interval without IDLE (and the lease's renewal bound with it).
    pub interval_secs: u64,
    /// `leave`: flag `\Seen` (or move to `move_to`); `delete`: `\Deleted` and expunge.
    pub retention: Retention,
    /// With `retention = "leave"`: move each injected message to this folder.
    pub move_to: Option<String>,
    pub delete_after_days: u32,
}

impl Default for MailboxImapConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 993,
            security: Security::Tls,
            timeout_secs: 60,
            ca_file: None,
            folders: vec!["INBOX".into()],
            idle: true,
            interval_secs: 60,
            retention: Retention::Leave,
            move_to: None,
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

impl Config {
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
