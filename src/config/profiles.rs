//! Provider profiles: `provider = "aruba"` on a `[[mailbox]]` fills the
//! provider's servers, login form, rate limit and size rule, so an admin
//! writes only the address and the password file.
//!
//! A profile value fills a key only where the file (or a `PECGATE_`
//! variable) leaves it unset, so every value stays overridable. It works on
//! the configuration tree before it is typed: "unset" is then visible, which
//! serde defaults would hide. The fetch servers are filled only into a
//! `[mailbox.pop3]` / `[mailbox.imap]` table the admin wrote (possibly
//! empty): choosing POP3 or IMAP stays the admin's decision.
//!
//! Each value carries where it comes from. `confirmed` means it was read
//! in the provider's own public guide or help pages (the URL is given);
//! the others come from other PEC integrations or from reports of the
//! providers' behaviour, and `pecgate test-mailbox` should confirm them.
//! Where no source was found, the profile leaves the key unset (Register:
//! no server names) and validation asks for it.

use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

/// `[[mailbox]] provider`: which provider's defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aruba,
    Legalmail,
    Namirial,
    Postecert,
    Register,
    /// Nothing filled: every key as written.
    Custom,
}

impl Provider {
    pub const ALL: [Provider; 6] =
        [Provider::Aruba, Provider::Legalmail, Provider::Namirial, Provider::Postecert, Provider::Register, Provider::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aruba => "aruba",
            Provider::Legalmail => "legalmail",
            Provider::Namirial => "namirial",
            Provider::Postecert => "postecert",
            Provider::Register => "register",
            Provider::Custom => "custom",
        }
    }

    fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// How the provider's login is formed.
    pub fn login(self) -> Option<(Login, Source)> {
        match self {
            Provider::Aruba => Some((Login::Address, Source::Integrations)),
            Provider::Legalmail => Some((Login::UserId, Source::Guide(LEGALMAIL_LOGIN))),
            Provider::Namirial | Provider::Postecert => Some((Login::Address, Source::Integrations)),
            Provider::Register | Provider::Custom => None,
        }
    }

    /// The values this profile fills, as `(key under the mailbox, value, source)`.
    pub fn values(self) -> &'static [Entry] {
        match self {
            Provider::Aruba => ARUBA,
            Provider::Legalmail => LEGALMAIL,
            Provider::Namirial => NAMIRIAL,
            Provider::Postecert => POSTECERT,
            Provider::Register | Provider::Custom => &[],
        }
    }
}

/// The login a provider expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// The PEC address itself: `username` defaults to `address`.
    Address,
    /// An account id the provider assigned (InfoCert's User ID): `username` must be given.
    UserId,
}

/// Where a profile value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read in the provider's own public guide or help pages (URL).
    Guide(&'static str),
    /// Used by other PEC integrations and client set-up pages, not found in
    /// the provider's own guide: check it with `pecgate test-mailbox`.
    Integrations,
    /// The provider's behaviour as PEC integrators report it (e.g. pagoPA's
    /// handling of Namirial's final preavviso), not a published setting.
    Reported(&'static str),
}

impl Source {
    pub fn confirmed(self) -> bool {
        matches!(self, Source::Guide(_))
    }

    pub fn describe(self) -> String {
        match self {
            Source::Guide(url) => format!("confirmed: {url}"),
            Source::Integrations => "from other PEC integrations; check with pecgate test-mailbox".into(),
            Source::Reported(what) => format!("reported behaviour: {what}"),
        }
    }
}

/// One profile value.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Dotted key under the mailbox: `smtp.host`, `rate_limit_per_minute`.
    pub key: &'static str,
    pub value: Val,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    Str(&'static str),
    Int(u64),
    Bool(bool),
}

impl Val {
    fn to_value(self) -> Value {
        match self {
            Val::Str(s) => Value::from(s),
            Val::Int(n) => Value::from(n),
            Val::Bool(b) => Value::from(b),
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Int(n) => write!(f, "{n}"),
            Val::Bool(b) => write!(f, "{b}"),
        }
    }
}

const ARUBA_GUIDE: &str = "https://guide.pec.it/posta-pec/configurare-casella-pec/ (outgoing server smtps.pec.aruba.it)";
const LEGALMAIL_HOSTS: &str = "https://help.infocert.it/ (Legalmail servers mbox.cert.legalmail.it and sendm.cert.legalmail.it)";
const LEGALMAIL_RATE: &str =
    "https://help.infocert.it/ (\"Class Of Service\" 550: at most 6 messages per minute; contract art. 5: 6 messages a minute)";
const LEGALMAIL_LOGIN: &str = "https://help.infocert.digital/ (client set-up guides: the User ID in the Username field)";

macro_rules! entry {
    ($key:literal, $v:expr, $src:expr) => {
        Entry { key: $key, value: $v, source: $src }
    };
}

static ARUBA: &[Entry] = &[
    entry!("smtp.host", Val::Str("smtps.pec.aruba.it"), Source::Guide(ARUBA_GUIDE)),
    entry!("smtp.port", Val::Int(465), Source::Integrations),
    entry!("smtp.security", Val::Str("tls"), Source::Integrations),
    entry!("pop3.host", Val::Str("pop3s.pec.aruba.it"), Source::Integrations),
    entry!("pop3.port", Val::Int(995), Source::Integrations),
    entry!("pop3.security", Val::Str("tls"), Source::Integrations),
    entry!("imap.host", Val::Str("imaps.pec.aruba.it"), Source::Integrations),
    entry!("imap.port", Val::Int(993), Source::Integrations),
    entry!("imap.security", Val::Str("tls"), Source::Integrations),
    // 100 MB with attachments, divided by the recipients; decimal megabytes,
    // the smaller reading, so a message refused here would have been refused there.
    entry!(
        "max_message_bytes",
        Val::Int(100_000_000),
        Source::Reported("Aruba caps a message at 100 MB including attachments, divided by the number of recipients")
    ),
    entry!("size_per_recipient", Val::Bool(true), Source::Reported("Aruba divides its 100 MB limit by the number of recipients")),
];

static LEGALMAIL: &[Entry] = &[
    entry!("smtp.host", Val::Str("sendm.cert.legalmail.it"), Source::Guide(LEGALMAIL_HOSTS)),
    entry!("smtp.port", Val::Int(465), Source::Integrations),
    entry!("smtp.security", Val::Str("tls"), Source::Integrations),
    entry!("pop3.host", Val::Str("mbox.cert.legalmail.it"), Source::Guide(LEGALMAIL_HOSTS)),
    entry!("pop3.port", Val::Int(995), Source::Integrations),
    entry!("pop3.security", Val::Str("tls"), Source::Integrations),
    entry!("imap.host", Val::Str("mbox.cert.legalmail.it"), Source::Guide(LEGALMAIL_HOSTS)),
    entry!("imap.port", Val::Int(993), Source::Integrations),
    entry!("imap.security", Val::Str("tls"), Source::Integrations),
    entry!("rate_limit_per_minute", Val::Int(6), Source::Guide(LEGALMAIL_RATE)),
];

// Namirial's POP3 server name differs between the integrations we found;
// it is left unset (validation asks for it when [mailbox.pop3] is used).
static NAMIRIAL: &[Entry] = &[
    entry!("smtp.host", Val::Str("smtps.sicurezzapostale.it"), Source::Integrations),
    entry!("smtp.port", Val::Int(465), Source::Integrations),
    entry!("smtp.security", Val::Str("tls"), Source::Integrations),
    entry!("imap.host", Val::Str("imaps.sicurezzapostale.it"), Source::Integrations),
    entry!("imap.port", Val::Int(993), Source::Integrations),
    entry!("imap.security", Val::Str("tls"), Source::Integrations),
    entry!(
        "final_preavviso_5xx",
        Val::Bool(true),
        Source::Reported("Namirial sends a preavviso whose errore-esteso 5.4.1 is final (as pagoPA's integration handles it)")
    ),
];

static POSTECERT: &[Entry] = &[
    entry!("smtp.host", Val::Str("mail.postecert.it"), Source::Integrations),
    entry!("smtp.port", Val::Int(465), Source::Integrations),
    entry!("smtp.security", Val::Str("tls"), Source::Integrations),
    entry!("pop3.host", Val::Str("mail.postecert.it"), Source::Integrations),
    entry!("pop3.port", Val::Int(995), Source::Integrations),
    entry!("pop3.security", Val::Str("tls"), Source::Integrations),
    entry!("imap.host", Val::Str("mail.postecert.it"), Source::Integrations),
    entry!("imap.port", Val::Int(993), Source::Integrations),
    entry!("imap.security", Val::Str("tls"), Source::Integrations),
];

/// A value a profile put into a mailbox, for `check-config` and the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    pub key: String,
    pub value: String,
    pub source: Source,
}

/// What `check-config` prints for a mailbox with a provider: each profile
/// value, filled or kept from the file, with its source.
pub fn report(m: &super::MailboxConfig) -> Vec<String> {
    let Some(provider) = m.provider else { return Vec::new() };
    let mut lines = vec![format!("mailbox {}: provider profile {:?}", m.id, provider.as_str())];
    for f in &m.profile_filled {
        lines.push(format!("  {} = {}  (from the profile; {})", f.key, f.value, f.source.describe()));
    }
    let section_present = |key: &str| match key.split_once('.') {
        Some(("pop3", _)) => m.pop3.is_some(),
        Some(("imap", _)) => m.imap.is_some(),
        _ => true,
    };
    for e in provider.values() {
        if section_present(e.key) && !m.profile_filled.iter().any(|f| f.key == e.key) {
            lines.push(format!("  {}: the file's value is kept (the profile says {})", e.key, e.value));
        }
    }
    if provider.values().is_empty() && provider != Provider::Custom {
        lines.push("  no confirmed values for this provider: every server key is as written".into());
    }
    lines
}

/// Fills every `[[mailbox]]` that names a provider; returns, per mailbox
/// index, what was filled. Unknown provider names are left for the typed
/// parse to report with the list of known ones.
pub fn apply(root: &mut Dict) -> Vec<(usize, Provider, Vec<Filled>)> {
    let mut out = Vec::new();
    let Some(Value::Array(_, mailboxes)) = root.get_mut("mailbox") else { return out };
    for (i, mailbox) in mailboxes.iter_mut().enumerate() {
        let Value::Dict(_, m) = mailbox else { continue };
        let Some(provider) = m.get("provider").and_then(|v| v.as_str()).and_then(Provider::parse) else { continue };
        out.push((i, provider, fill(m, provider)));
    }
    out
}

fn fill(m: &mut Dict, provider: Provider) -> Vec<Filled> {
    let mut filled = Vec::new();
    for e in provider.values() {
        let (table, field) = match e.key.split_once('.') {
            Some((t, f)) => (Some(t), f),
            None => (None, e.key),
        };
        let target = match table {
            None => &mut *m,
            // The submission server always; the fetch servers only where the admin chose that protocol.
            Some("smtp") => match m.entry("smtp".to_owned()).or_insert_with(|| Value::from(Dict::new())) {
                Value::Dict(_, d) => d,
                _ => continue,
            },
            Some(t) => match m.get_mut(t) {
                Some(Value::Dict(_, d)) => d,
                _ => continue,
            },
        };
        if !target.contains_key(field) {
            target.insert(field.to_owned(), e.value.to_value());
            filled.push(Filled { key: e.key.to_owned(), value: e.value.to_string(), source: e.source });
        }
    }
    if let Some((Login::Address, source)) = provider.login()
        && !m.contains_key("username")
        && let Some(address) = m.get("address").and_then(|v| v.as_str()).map(str::to_owned)
    {
        filled.push(Filled { key: "username".into(), value: format!("{address:?}"), source });
        m.insert("username".into(), Value::from(address));
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn base(extra: &str) -> String {
        format!(
            "allow_plaintext_secrets = true\n[corporate]\nhost = \"127.0.0.1\"\nfrom = \"pecgate@azienda.it\"\n\
             [[mailbox]]\nid = \"legal\"\naddress = \"legal@pec.azienda.it\"\npassword = \"x\"\n{extra}\
             [[mailbox.user]]\naddress = \"mario@azienda.it\"\nadmin = true\n"
        )
    }

    #[test]
    fn a_profile_fills_what_the_file_leaves_unset() {
        let text = base("provider = \"legalmail\"\nusername = \"M1234567\"\n[mailbox.pop3]\nretention = \"leave\"\n");
        let loaded = load_str(&text, None).unwrap();
        let m = &loaded.config.mailboxes[0];
        assert_eq!(m.smtp.host, "sendm.cert.legalmail.it");
        assert_eq!(m.smtp.port, 465);
        assert_eq!(m.rate_limit_per_minute, 6);
        assert_eq!(m.username, "M1234567", "the file's login stays");
        let pop3 = m.pop3.as_ref().unwrap();
        assert_eq!((pop3.host.as_str(), pop3.port), ("mbox.cert.legalmail.it", 995));
        let keys: Vec<&str> = m.profile_filled.iter().map(|f| f.key.as_str()).collect();
        assert!(keys.contains(&"rate_limit_per_minute") && !keys.contains(&"username"), "{keys:?}");
        assert!(m.profile_filled.iter().find(|f| f.key == "rate_limit_per_minute").unwrap().source.confirmed());
    }

    #[test]
    fn an_empty_imap_table_gets_the_legalmail_imap_server() {
        let text = base("provider = \"legalmail\"\nusername = \"M1234567\"\n[mailbox.imap]\n");
        let m = load_str(&text, None).unwrap().config.mailboxes.remove(0);
        let imap = m.imap.as_ref().unwrap();
        assert_eq!((imap.host.as_str(), imap.port, imap.security), ("mbox.cert.legalmail.it", 993, crate::config::Security::Tls));
        assert!(m.pop3.is_none());
        let report = report(&m).join("\n");
        assert!(report.contains("imap.host = \"mbox.cert.legalmail.it\"  (from the profile"), "{report}");
        let own = base("provider = \"legalmail\"\nusername = \"M1234567\"\n[mailbox.imap]\nhost = \"imap.relay.local\"\n");
        let m = load_str(&own, None).unwrap().config.mailboxes.remove(0);
        assert_eq!(m.imap.as_ref().unwrap().host, "imap.relay.local");
        let report = super::report(&m).join("\n");
        assert!(report.contains("imap.host: the file's value is kept"), "{report}");
    }

    #[test]
    fn every_value_is_overridable() {
        let text = base("provider = \"aruba\"\nmax_message_bytes = 50000000\n[mailbox.smtp]\nhost = \"smtp.relay.local\"\nport = 10465\n");
        let m = load_str(&text, None).unwrap().config.mailboxes.remove(0);
        assert_eq!((m.smtp.host.as_str(), m.smtp.port), ("smtp.relay.local", 10465));
        assert_eq!(m.max_message_bytes, Some(50_000_000));
        assert!(m.size_per_recipient, "the rest of the profile still applies");
        assert_eq!(m.username, "legal@pec.azienda.it", "Aruba logs in with the address");
        assert!(m.pop3.is_none(), "no fetch protocol is chosen for the admin");
    }

    #[test]
    fn a_user_id_login_must_be_given() {
        let err = load_str(&base("provider = \"legalmail\"\n"), None).unwrap_err();
        let problems = err.problems();
        assert!(problems.iter().any(|p| p.key.starts_with("mailbox[0].username") && p.message.contains("User ID")), "{problems:?}");
        let warned = load_str(&base("provider = \"legalmail\"\nusername = \"legal@pec.azienda.it\"\n"), None).unwrap();
        assert!(warned.warnings.iter().any(|w| w.key.starts_with("mailbox[0].username")), "{:?}", warned.warnings);
    }

    #[test]
    fn a_profile_without_servers_asks_for_them_and_unknown_names_are_listed() {
        let err = load_str(&base("provider = \"register\"\nusername = \"u\"\n"), None).unwrap_err();
        assert!(err.problems().iter().any(|p| p.key.starts_with("mailbox[0].smtp.host") && p.message.contains("register")), "{err}");
        let err = load_str(&base("provider = \"arubba\"\n"), None).unwrap_err();
        assert!(err.to_string().contains("aruba") && err.to_string().contains("legalmail"), "{err}");
    }

    #[test]
    fn the_table_has_no_key_twice_and_only_known_sections() {
        for p in Provider::ALL {
            let mut seen = std::collections::HashSet::new();
            for e in p.values() {
                assert!(seen.insert(e.key), "{} fills {} twice", p.as_str(), e.key);
                let section = e.key.split_once('.').map(|(s, _)| s);
                assert!(matches!(section, None | Some("smtp" | "pop3" | "imap")), "{}", e.key);
            }
        }
    }
}
