//! The network side: ldap3 connections, the service-account searches of a
//! refresh, and the user bind of a listener AUTH.
//!
//! Crate: `ldap3` 0.12.1 with `default-features = false` and
//! `tls-rustls-ring`. It is the maintained async LDAP client for tokio, does
//! LDAPS and StartTLS with a rustls `ClientConfig` we hand it (so the same
//! ring-only TLS stack and `ca_file` handling as everything else; no
//! native-tls/OpenSSL, no aws-lc), and 0.12.1 builds on rustc 1.95.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

use super::filter;
use super::groups::{self, normalize_dn};
use super::table::{DirUser, Fetched};
use crate::config::{Config, DirectoryKind, Secret};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: ldap3::LdapError },
    #[error("the service account bind ({dn}) failed: {detail}")]
    ServiceBind { dn: String, detail: String },
    #[error("search under {base} failed: {detail}")]
    Search { base: String, detail: String },
    #[error("{what} took longer than {secs} s")]
    Timeout { what: &'static str, secs: u64 },
}

/// What the connections need, resolved from `[directory]`.
pub struct Settings {
    pub kind: DirectoryKind,
    pub url: String,
    /// StartTLS on an `ldap://` URL (false only with `allow_plaintext_loopback`).
    pub starttls: bool,
    pub tls: Arc<rustls::ClientConfig>,
    pub bind_dn: String,
    pub password: Secret,
    pub base_dn: String,
    pub user_filter: String,
    pub mail_attribute: String,
    pub login_attribute: String,
    pub pin_attribute: Option<String>,
    pub timeout: Duration,
    /// Every group DN named in a `[mailbox.groups]`, as written.
    pub groups: Vec<String>,
}

impl Settings {
    pub fn new(config: &Config, password: Secret, tls: Arc<rustls::ClientConfig>) -> Self {
        let d = &config.directory;
        let mut groups: Vec<String> =
            config.mailboxes.iter().flat_map(|m| m.groups.by_right()).flat_map(|(_, g)| g.iter().cloned()).collect();
        groups.sort();
        groups.dedup();
        Self {
            kind: d.kind,
            url: d.url.trim().to_owned(),
            starttls: d.url.trim().starts_with("ldap://") && !d.allow_plaintext_loopback,
            tls,
            bind_dn: d.bind_dn.clone(),
            password,
            base_dn: d.base_dn.clone(),
            user_filter: d.effective_user_filter().trim().to_owned(),
            mail_attribute: d.mail_attribute.clone(),
            login_attribute: d.effective_login_attribute().to_owned(),
            pin_attribute: d.pin_attribute.clone(),
            timeout: Duration::from_secs(d.timeout_secs),
            groups,
        }
    }

    fn secs(&self) -> u64 {
        self.timeout.as_secs()
    }

    /// A connection, not yet bound; the driver runs until the handle is dropped.
    async fn connect(&self) -> Result<Ldap, Error> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout).set_starttls(self.starttls).set_config(self.tls.clone());
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(settings, &self.url).await.map_err(|source| Error::Connect { url: self.url.clone(), source })?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        Ok(ldap)
    }

    async fn service(&self) -> Result<Ldap, Error> {
        let mut ldap = self.connect().await?;
        let bound = ldap.simple_bind(&self.bind_dn, self.password.expose()).await.and_then(|r| r.success());
        if let Err(e) = bound {
            return Err(Error::ServiceBind { dn: self.bind_dn.clone(), detail: e.to_string() });
        }
        Ok(ldap)
    }

    fn user_attributes(&self) -> Vec<String> {
        let mut attrs = vec![self.mail_attribute.clone(), self.login_attribute.clone()];
        if self.kind == DirectoryKind::Ad {
            attrs.push("proxyAddresses".into());
        }
        attrs.extend(self.pin_attribute.clone());
        attrs
    }

    async fn search(&self, ldap: &mut Ldap, filter: &str, attrs: Vec<String>) -> Result<Vec<SearchEntry>, Error> {
        let base = self.base_dn.clone();
        let err = |e: ldap3::LdapError| Error::Search { base: base.clone(), detail: e.to_string() };
        let (entries, _) = ldap.search(&self.base_dn, Scope::Subtree, filter, attrs).await.and_then(|r| r.success()).map_err(err)?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    /// One whole refresh: users, then each configured group's members.
    pub async fn fetch(&self) -> Result<Fetched, Error> {
        tokio::time::timeout(self.timeout * 4, self.fetch_inner())
            .await
            .map_err(|_| Error::Timeout { what: "a directory refresh", secs: self.secs() * 4 })?
    }

    async fn fetch_inner(&self) -> Result<Fetched, Error> {
        let mut ldap = self.service().await?;
        let entries = self.search(&mut ldap, &self.user_filter, self.user_attributes()).await?;
        let users: Vec<DirUser> = entries.iter().filter_map(|e| self.user(e)).collect();
        let mut members = HashMap::new();
        match self.kind {
            DirectoryKind::Ad => {
                for g in &self.groups {
                    let found = self.search(&mut ldap, &filter::ad_members_in_chain(&self.user_filter, g), vec!["1.1".into()]).await?;
                    members.insert(normalize_dn(g), found.iter().map(|e| normalize_dn(&e.dn)).collect::<BTreeSet<_>>());
                }
            }
            _ => {
                let found = self.search(&mut ldap, filter::GROUPS, vec!["member".into(), "uniqueMember".into()]).await?;
                let graph: HashMap<String, Vec<String>> = found
                    .iter()
                    .map(|e| {
                        let list = e.attrs.iter().filter(|(k, _)| is("member", k) || is("uniqueMember", k)).flat_map(|(_, v)| v);
                        (normalize_dn(&e.dn), list.map(|m| normalize_dn(m)).collect())
                    })
                    .collect();
                let user_dns: HashSet<String> = users.iter().map(|u| u.dn.clone()).collect();
                for g in &self.groups {
                    let r = groups::resolve(g, &graph, &user_dns);
                    if r.truncated {
                        tracing::warn!(group = %g, "groups nested deeper than {} levels are ignored", groups::MAX_DEPTH);
                    }
                    members.insert(normalize_dn(g), r.users);
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok(Fetched { users, members })
    }

    /// A user entry, if it has an address.
    fn user(&self, e: &SearchEntry) -> Option<DirUser> {
        let values = |name: &str| -> Vec<String> { e.attrs.iter().filter(|(k, _)| is(name, k)).flat_map(|(_, v)| v.clone()).collect() };
        let proxies = if self.kind == DirectoryKind::Ad { values("proxyAddresses") } else { Vec::new() };
        let (primary, aliases) = proxy_addresses(&proxies);
        // A multi-valued mail attribute: the first value is the address, the others aliases.
        let mut mails = values(&self.mail_attribute).into_iter();
        let mail = mails.next().or_else(|| primary.clone())?;
        let mut aliases: Vec<String> = mails.chain(primary).chain(aliases).filter(|a| !a.eq_ignore_ascii_case(&mail)).collect();
        aliases.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        Some(DirUser {
            dn: normalize_dn(&e.dn),
            mail,
            aliases,
            logins: values(&self.login_attribute),
            pin_hash: self.pin_attribute.as_deref().and_then(|a| values(a).into_iter().next()),
        })
    }

    /// Listener AUTH: find the login's entry with the service account, then
    /// bind as it on a connection of its own. `Ok(None)`: no such user, or
    /// the directory refused the password.
    pub async fn check_password(&self, login: &str, password: &str) -> Result<Option<String>, Error> {
        tokio::time::timeout(self.timeout * 2, self.check_password_inner(login, password))
            .await
            .map_err(|_| Error::Timeout { what: "a directory login check", secs: self.secs() * 2 })?
    }

    async fn check_password_inner(&self, login: &str, password: &str) -> Result<Option<String>, Error> {
        let mut ldap = self.service().await?;
        let f = filter::user_by_login(&self.user_filter, &self.mail_attribute, &self.login_attribute, login);
        let found = self.search(&mut ldap, &f, self.user_attributes()).await?;
        let _ = ldap.unbind().await;
        let [entry] = found.as_slice() else { return Ok(None) };
        let Some(user) = self.user(entry) else { return Ok(None) };
        let mut as_user = self.connect().await?;
        let ok = as_user.simple_bind(&entry.dn, password).await.and_then(|r| r.success()).is_ok();
        let _ = as_user.unbind().await;
        Ok(ok.then_some(user.mail))
    }
}

fn is(name: &str, key: &str) -> bool {
    name.eq_ignore_ascii_case(key)
}

/// AD `proxyAddresses`: `SMTP:` is the primary address, `smtp:` the others;
/// `X500:`, `SIP:` and the like are not mail addresses.
pub fn proxy_addresses(values: &[String]) -> (Option<String>, Vec<String>) {
    let mut primary = None;
    let mut others = Vec::new();
    for v in values {
        match v.split_once(':') {
            Some(("SMTP", a)) if primary.is_none() => primary = Some(a.to_owned()),
            Some((p, a)) if p.eq_ignore_ascii_case("smtp") => others.push(a.to_owned()),
            _ => {}
        }
    }
    (primary, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses_primary_and_aliases() {
        let v: Vec<String> =
            ["X500:/o=x", "smtp:m.rossi@x.it", "SMTP:mario@x.it", "sip:mario@x.it", "smtp:mr@x.it"].map(String::from).into();
        assert_eq!(proxy_addresses(&v), (Some("mario@x.it".into()), vec!["m.rossi@x.it".into(), "mr@x.it".into()]));
        assert_eq!(proxy_addresses(&[]), (None, vec![]));
    }
}
