//! Validation: every problem with its key path and a fix, collected in one
//! pass; secrets and the trust store are read here, once, into [`Resolved`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::profiles::{Login, Provider};
use super::schema::*;
use super::{Error, Loaded, MAX_AUTH_FIELD, Problem, Resolved, Result, Secret};
use directory::looks_like_dn;

mod directory;

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
                        v.secret(&Scope::new("store"), &st.password_file, &st.password_env, &st.password, allow_plain, None)
                    } else {
                        None
                    };
                    if let Some(p) = password
                        && u.set_password(Some(p.expose())).is_err()
                    {
                        v.error("store.url", "cannot carry a password (no host in the URL)");
                    }
                    v.resolved.secrets.store_url = Some(Secret::new(u.to_string()));
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

    /// Checks everything, resolves relative paths against `base`, reads the
    /// secrets and the trust store; every problem is reported, not just the first.
    pub fn validated(mut self, file: &str, base: Option<&Path>) -> Result<Loaded> {
        let mut v = Validator::default();
        self.resolve_relative_paths(base);
        self.check(&mut v);
        if v.errors.is_empty() {
            Ok(Loaded { config: self, resolved: v.resolved, warnings: v.warnings })
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
        fix_opt(&mut self.pec.crl_dir);
        fix_opt(&mut self.pec.crl_cache_dir);
        fix(&mut self.control.socket);
        fix_opt(&mut self.directory.ca_file);
        fix_opt(&mut self.directory.password_file);
        for a in &mut self.smtp.accounts {
            fix_opt(&mut a.password_file);
        }
        for m in &mut self.mailboxes {
            fix_opt(&mut m.password_file);
            fix_opt(&mut m.smtp.ca_file);
            if let Some(p) = &mut m.pop3 {
                fix_opt(&mut p.ca_file);
            }
            if let Some(p) = &mut m.imap {
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
        if s.greet_pause_ms > 30_000 {
            v.error(
                "smtp.greet_pause_ms",
                format!(
                    "is {} ms; at most 30000 (Postfix uses 6000 on the open Internet, a hop inside the company needs 0)",
                    s.greet_pause_ms
                ),
            );
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
        self.check_directory(v, allow_plain);

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
            v.resolved.secrets.corporate =
                v.secret(&Scope::new("corporate"), &c.password_file, &c.password_env, &c.password, allow_plain, Some(MAX_AUTH_FIELD));
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
        for (i, h) in self.admin.allowed_hosts.iter().enumerate() {
            if let Err(why) = crate::admin::host::parse_allowed(h) {
                v.error(
                    format!("admin.allowed_hosts[{i}]"),
                    format!(
                        "{h:?} {why}; write a host name as a browser sends it in Host, e.g. \"pecgate.corp.it\" or \"pecgate.corp.it:8443\""
                    ),
                );
            }
        }
        if let Some(t) = &self.admin.token_file {
            match read_secret_file(t) {
                Ok(token) => {
                    warn_if_readable_by_others(v, "admin.token_file", t);
                    v.resolved.secrets.admin_token = Some(token);
                }
                Err(message) => {
                    v.error("admin.token_file", message.replace("the password", "the token").replace("a password file", "a token file"))
                }
            }
        }
        if self.queue.min_backoff_secs == 0 || self.queue.max_backoff_secs < self.queue.min_backoff_secs {
            v.error("queue.min_backoff_secs", "must be at least 1 and not above queue.max_backoff_secs");
        }
        let mut trust = if self.pec.builtin_anchors {
            crate::pec::signature::TrustStore::builtin()
        } else {
            crate::pec::signature::TrustStore::empty()
        };
        if let Some(ts) = &self.pec.trust_store {
            match std::fs::read_to_string(ts) {
                Ok(pem) => match crate::pec::signature::TrustStore::from_pem_labelled(&pem, &ts.display().to_string()) {
                    Ok(file) => trust.extend(file),
                    Err(e) => v.error("pec.trust_store", format!("{}: {e}; it must be a PEM bundle of CA certificates", ts.display())),
                },
                Err(e) => v.error("pec.trust_store", format!("cannot read {}: {e}", ts.display())),
            }
        }
        if trust.is_empty() {
            v.warning(
                "pec.builtin_anchors",
                "is false and there is no trust_store: every good provider signature will read valid-untrusted-signer",
            );
        }
        for w in trust.expiry_warnings(chrono::Utc::now()) {
            v.warning("pec.trust_store", w);
        }
        v.resolved.trust_store = Some(std::sync::Arc::new(trust));
        if let Some(dir) = &self.pec.crl_dir
            && !dir.is_dir()
        {
            v.error(
                "pec.crl_dir",
                format!("{} is not a directory; put the CA's CRL files there, or remove the key to fetch them", dir.display()),
            );
        }
        if self.pec.crl_timeout_secs == 0 {
            v.error("pec.crl_timeout_secs", "must be at least 1 (seconds for one CRL download)");
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

        if self.pin.max_failures == 0 {
            v.error("pin.max_failures", "must be at least 1 (e.g. 5 wrong PINs before a lockout)");
        }
        if self.pin.window_secs == 0 {
            v.error("pin.window_secs", "must be at least 1 (e.g. 900: 5 wrong PINs in 15 minutes)");
        }
        if self.pin.lockout_secs == 0 {
            v.error("pin.lockout_secs", "must be at least 1 (e.g. 1800: locked out for 30 minutes)");
        }
        if self.mailboxes.is_empty() {
            v.warning("mailbox", "no [[mailbox]] is configured: every message will be refused");
        }
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, m) in self.mailboxes.iter_mut().enumerate() {
            let key = Scope::new(format!("mailbox[{i}]"));
            if m.id.is_empty() || !m.id.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)) {
                v.error(
                    key.at("id"),
                    format!("{:?} must be a short name of letters, digits, '.', '_' or '-' (used in [PEC:id] tags and metrics)", m.id),
                );
            } else if m.id.bytes().all(|b| b.is_ascii_digit()) {
                v.error(
                    key.at("id"),
                    format!(
                        "{:?} is all digits, which a subject tag reads as a PIN ([PEC:123456]); add a letter, e.g. \"m{}\"",
                        m.id, m.id
                    ),
                );
            } else if !ids.insert(m.id.clone()) {
                v.error(key.at("id"), format!("{:?} is used by two mailboxes; ids must be unique", m.id));
            }
            let key = key.named(&m.id);
            if !is_address(&m.address) {
                v.error(key.at("address"), format!("{:?} is not an e-mail address", m.address));
            } else if !addresses.insert(m.address.to_ascii_lowercase()) {
                v.error(key.at("address"), format!("{:?} belongs to two mailboxes", m.address));
            }
            let login = m.provider.and_then(|p| p.login()).map(|(login, _)| login);
            if m.username.is_empty() {
                match login {
                    Some(Login::UserId) => v.error(
                        key.at("username"),
                        "is empty; this provider logs in with the User ID it assigned (InfoCert Legalmail), not the address: write it here",
                    ),
                    _ => v.error(key.at("username"), "is empty; set the provider login (often the PEC address)"),
                }
            } else if login == Some(Login::UserId) && m.username.contains('@') {
                v.warning(
                    key.at("username"),
                    "looks like an address, but this provider logs in with the User ID it assigned (InfoCert Legalmail); check it with pecgate test-mailbox",
                );
            }
            if let Some(p) = v.secret(&key, &m.password_file, &m.password_env, &m.password, allow_plain, Some(MAX_AUTH_FIELD)) {
                v.resolved.secrets.mailboxes.insert(m.id.clone(), p);
            }
            if m.max_recipients == 0 {
                v.error(key.at("max_recipients"), "must be at least 1 (providers allow about 50)");
            }
            let bad_day =
                |s: &Option<String>| s.as_deref().is_some_and(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").is_err());
            for (field, value) in [("password_expires", &m.password_expires), ("password_changed", &m.password_changed)] {
                if bad_day(value) {
                    v.error(key.at(field), format!("{:?} is not a day; write it as \"2027-05-31\"", value.as_deref().unwrap_or_default()));
                }
            }
            match (&m.password_expires, m.password_max_age_days, &m.password_changed) {
                (Some(_), Some(_), _) => {
                    v.error(key.at("password_max_age_days"), "is set together with password_expires; keep one of the two")
                }
                (None, Some(0), _) => v.error(key.at("password_max_age_days"), "must be at least 1"),
                (None, Some(_), None) => v.error(
                    key.at("password_changed"),
                    "is missing: password_max_age_days counts from it, e.g. password_changed = \"2026-12-02\"",
                ),
                _ => {}
            }
            // A profile that knows no server says so, instead of the generic hint.
            let no_server = |what: &str| match m.provider {
                Some(p) if p != Provider::Custom => {
                    format!("is empty; provider profile {:?} has no confirmed {what} server: set it from the provider's guide", p.as_str())
                }
                _ => format!(
                    "is empty; set the provider's {what} server, e.g. \"smtps.pec.aruba.it\" (or set provider = \"aruba\" and friends)"
                ),
            };
            if m.smtp.host.trim().is_empty() {
                v.error(key.at("smtp.host"), no_server("SMTP"));
            }
            if m.smtp.port == 0 {
                v.error(key.at("smtp.port"), "must be a TCP port (465 for tls, 587 for starttls)");
            }
            if m.smtp.security == Security::None {
                v.error(key.at("smtp.security"), "\"none\" is not allowed for a PEC provider; use \"tls\" or \"starttls\"");
            }
            if m.smtp.timeout_secs == 0 || m.smtp.max_connections == 0 {
                v.error(key.at("smtp"), "timeout_secs and max_connections must be at least 1");
            }
            if let Some(ca) = &m.smtp.ca_file {
                v.file_exists(&key.at("smtp.ca_file"), ca);
            }
            if let Some(p) = &m.pop3 {
                if p.host.trim().is_empty() {
                    v.error(key.at("pop3.host"), no_server("POP3").replace("\"smtps.pec.aruba.it\"", "\"pop3s.pec.aruba.it\""));
                }
                if p.security == Security::None {
                    v.error(key.at("pop3.security"), "\"none\" is not allowed for a PEC provider; use \"tls\" or \"starttls\"");
                }
                if let Some(ca) = &p.ca_file {
                    v.file_exists(&key.at("pop3.ca_file"), ca);
                }
            }
            if let Some(p) = &m.imap {
                if m.pop3.is_some() {
                    v.error(
                        key.at("imap"),
                        "and [mailbox.pop3] are both set; a mailbox is fetched one way: keep [mailbox.imap] or [mailbox.pop3]",
                    );
                }
                if p.host.trim().is_empty() {
                    v.error(key.at("imap.host"), no_server("IMAP").replace("\"smtps.pec.aruba.it\"", "\"imaps.pec.aruba.it\""));
                }
                if p.security == Security::None {
                    v.error(key.at("imap.security"), "\"none\" is not allowed for a PEC provider; use \"tls\" or \"starttls\"");
                }
                if let Some(ca) = &p.ca_file {
                    v.file_exists(&key.at("imap.ca_file"), ca);
                }
                if p.folders.is_empty() {
                    v.error(key.at("imap.folders"), "is empty, so nothing would be fetched; write e.g. [\"INBOX\"]");
                }
                for (j, f) in p.folders.iter().enumerate() {
                    if !crate::imap::valid_folder(f) {
                        v.error(
                            key.at(&format!("imap.folders[{j}]")),
                            format!("{f:?} is not a folder name (no control characters, quotes or backslashes)"),
                        );
                    }
                }
                if let Some(f) = &p.move_to {
                    if p.retention != Retention::Leave {
                        v.error(key.at("imap.move_to"), "only applies with retention = \"leave\"; remove it or set retention = \"leave\"");
                    } else if !crate::imap::valid_folder(f) || p.folders.contains(f) {
                        v.error(
                            key.at("imap.move_to"),
                            format!("{f:?} must be a folder name that is not one of the folders fetched, e.g. \"INBOX.pecgate\""),
                        );
                    }
                }
            }
            let mut seen = HashSet::new();
            for (j, u) in m.users.iter().enumerate() {
                if !is_address(&u.address) {
                    v.error(key.at(&format!("user[{j}].address")), format!("{:?} is not an e-mail address", u.address));
                } else if !seen.insert(u.address.to_ascii_lowercase()) {
                    v.error(key.at(&format!("user[{j}].address")), format!("{:?} is listed twice in this mailbox", u.address));
                }
            }
            let directory = self.directory.kind != DirectoryKind::Static;
            if !m.groups.is_empty() && !directory {
                v.error(
                    key.at("groups"),
                    "lists directory groups but [directory] kind is \"static\"; set [directory] kind = \"ldap\" or \"ad\" (with url, bind_dn, base_dn), or remove [mailbox.groups]",
                );
            }
            for (right, groups) in m.groups.by_right() {
                for (j, g) in groups.iter().enumerate() {
                    if !looks_like_dn(g) {
                        v.error(
                            key.at(&format!("groups.{right}[{j}]")),
                            format!(
                                "{g:?} is not a DN; write the group's full DN, e.g. \"cn=PEC-Legale-Invio,ou=groups,dc=azienda,dc=it\""
                            ),
                        );
                    }
                }
            }
            if !m.users.iter().any(|u| u.receive) && m.groups.receive.is_empty() {
                v.error(
                    key.at("user"),
                    "no user has receive = true, so incoming PEC would reach nobody; add a [[mailbox.user]] with receive = true (or a [mailbox.groups] receive group)",
                );
            }
            if !m.users.iter().any(|u| u.send) && m.groups.send.is_empty() {
                v.warning(key.at("user"), "no user has send = true: this mailbox can only receive");
            }
            if m.max_message_bytes == Some(0) {
                v.error(key.at("max_message_bytes"), "must be greater than 0 (leave it out for no mailbox limit)");
            }
            if m.size_per_recipient && m.max_message_bytes.is_none() {
                v.error(key.at("size_per_recipient"), "needs max_message_bytes (the size to divide by the recipients)");
            }
            if m.final_preavviso_5xx && m.pop3.is_none() && m.imap.is_none() {
                v.warning(
                    key.at("final_preavviso_5xx"),
                    "has no effect without [mailbox.pop3] or [mailbox.imap]: receipts are not fetched",
                );
            }
            match m.users.iter().filter(|u| u.admin).count() {
                1 => {}
                0 if !m.groups.admin.is_empty() => {}
                0 => v.error(key.at("user"), "no user has admin = true; mark exactly one user as the mailbox admin (gets error notices)"),
                n => v.error(key.at("user"), format!("{n} users have admin = true; mark exactly one")),
            }
        }
        self.check_smtp_auth(v);
    }

    /// `[smtp.auth]` and `[[smtp.account]]`; after the mailboxes, whose users the accounts name.
    fn check_smtp_auth(&mut self, v: &mut Validator) {
        let allow_plain = self.allow_plaintext_secrets;
        let smtp = &mut self.smtp;
        let auth = &smtp.auth;
        let directory_logins = self.directory.kind != DirectoryKind::Static;
        if auth.enabled && smtp.accounts.is_empty() && !directory_logins {
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
            let key = Scope::new(format!("smtp.account[{i}]"));
            if a.username.is_empty() || a.username.len() > MAX_AUTH_FIELD || a.username.chars().any(char::is_control) {
                v.error(key.at("username"), format!("{:?} must be 1 to {MAX_AUTH_FIELD} bytes without control characters", a.username));
            } else if !names.insert(a.username.to_lowercase()) {
                v.error(key.at("username"), format!("{:?} is used by two accounts; usernames must be unique", a.username));
            }
            let key = key.named(&a.username);
            if let Some(p) = v.secret(&key, &a.password_file, &a.password_env, &a.password, allow_plain, Some(MAX_AUTH_FIELD)) {
                v.resolved.secrets.accounts.insert(a.username.clone(), p);
            }
            if !is_address(&a.address) {
                v.error(key.at("address"), format!("{:?} is not an e-mail address", a.address));
            } else if !senders.contains(&a.address.to_ascii_lowercase()) && !directory_logins {
                v.error(
                    key.at("address"),
                    format!(
                        "{:?} is not a [[mailbox.user]] with send = true in any mailbox; add it to the mailbox this login sends from, or fix the address",
                        a.address
                    ),
                );
            }
        }
    }
}

fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !s.chars().any(|c| c.is_whitespace() || "<>,;\"".contains(c)),
        None => false,
    }
}

/// Where a problem is: a key path such as `mailbox[0]`, and the name the
/// admin knows it by (`legal`), printed as `mailbox[0].password_file (legal)`.
pub(super) struct Scope {
    path: String,
    name: Option<String>,
}

impl Scope {
    pub(super) fn new(path: impl Into<String>) -> Self {
        Self { path: path.into(), name: None }
    }

    fn named(self, name: &str) -> Self {
        Self { name: (!name.is_empty()).then(|| name.to_owned()), ..self }
    }

    /// The full key of `field` in this scope.
    pub(super) fn at(&self, field: &str) -> String {
        match &self.name {
            Some(n) => format!("{}.{field} ({n})", self.path),
            None => format!("{}.{field}", self.path),
        }
    }
}

#[derive(Default)]
pub(super) struct Validator {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
    resolved: Resolved,
}

impl Validator {
    pub(super) fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem { key: key.into(), message: message.into() });
    }

    pub(super) fn warning(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem { key: key.into(), message: message.into() });
    }

    fn file_exists(&mut self, key: &str, path: &Path) {
        if !path.is_file() {
            self.error(key, format!("file {} does not exist or is not readable", path.display()));
        }
    }

    /// Resolves exactly one of `password_file`, `password_env`, `password`;
    /// `max_len` is the longest value the protocol takes (AUTH: 255 bytes).
    fn secret(
        &mut self,
        key: &Scope,
        file: &Option<PathBuf>,
        env: &Option<String>,
        literal: &Option<Secret>,
        allow_plain: bool,
        max_len: Option<usize>,
    ) -> Option<Secret> {
        let given = [file.is_some(), env.is_some(), literal.is_some()].iter().filter(|b| **b).count();
        if given == 0 {
            self.error(key.at("password_file"), "no password: set password_file (a file readable only by pecgate) or password_env");
            return None;
        }
        if given > 1 {
            self.error(key.at("password_file"), "set only one of password_file, password_env, password");
            return None;
        }
        let (field, value) = if let Some(path) = file {
            match read_secret_file(path) {
                Ok(s) => {
                    warn_if_readable_by_others(self, &key.at("password_file"), path);
                    ("password_file", s)
                }
                Err(message) => {
                    self.error(key.at("password_file"), message);
                    return None;
                }
            }
        } else if let Some(var) = env {
            match std::env::var(var) {
                Ok(value) if !value.is_empty() => ("password_env", Secret::new(value)),
                _ => {
                    self.error(key.at("password_env"), format!("environment variable {var} is not set or empty"));
                    return None;
                }
            }
        } else if !allow_plain {
            self.error(
                key.at("password"),
                "a literal password in the config file is refused; use password_file or password_env (or set allow_plaintext_secrets = true)",
            );
            return None;
        } else {
            self.warning(key.at("password"), "literal password in the config file; prefer password_file");
            ("password", literal.clone().unwrap_or_default())
        };
        if let Some(max) = max_len
            && value.expose().len() > max
        {
            self.error(key.at(field), format!("the password is longer than {max} bytes, more than SMTP AUTH accepts"));
            return None;
        }
        if value.expose().chars().any(char::is_control) {
            self.error(key.at(field), "the password contains control characters (a line break inside?); it must be one line");
            return None;
        }
        Some(value)
    }
}

/// Secret files hold one short line: anything bigger is a mistake (or
/// `/dev/zero`), never read whole.
pub const MAX_SECRET_FILE: u64 = 4096;

/// Reads a password or token file: a regular file (after following
/// symlinks, whose target is named in errors), at most [`MAX_SECRET_FILE`]
/// bytes, exactly one non-empty line (one trailing newline is dropped).
/// The error is the message for the key, with the fix.
pub fn read_secret_file(path: &Path) -> std::result::Result<Secret, String> {
    use std::io::Read;
    let shown = match std::fs::canonicalize(path) {
        Ok(real) if real != path => format!("{} (a symlink to {})", path.display(), real.display()),
        Ok(_) => path.display().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} does not exist; create it readable only by pecgate, e.g. `install -m 600 -o pecgate /dev/null {}`, then write the password in it as one line with an editor",
                path.display(),
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file; point it to a file holding only the password"));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!("{shown} is {} bytes; a password file holds one line (at most {MAX_SECRET_FILE} bytes)", meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!("{shown} is longer than {MAX_SECRET_FILE} bytes; a password file holds one line"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text; it must hold the password as one line"))?;
    let secret = Secret::from_file_contents(&text);
    if secret.is_empty() {
        return Err(format!("{shown} is empty; write the password in it as one line"));
    }
    let lines = secret.expose().split('\n').count();
    if lines > 1 {
        return Err(format!("{shown} has {lines} lines; it must hold only the password, on one line"));
    }
    Ok(secret)
}

#[cfg(unix)]
fn warn_if_readable_by_others(v: &mut Validator, key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        v.warning(
            key,
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
