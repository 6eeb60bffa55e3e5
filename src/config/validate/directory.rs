//! The `[directory]` table: URL and TLS rule, DNs, filter, attributes,
//! refresh and the service account's password.

use super::{Scope, Validator};
use crate::config::schema::{Config, DirectoryKind};

/// `cn=x,dc=y`: at least one `attribute=value` and no empty component.
pub(super) fn looks_like_dn(s: &str) -> bool {
    !s.trim().is_empty() && s.split(',').all(|rdn| rdn.split_once('=').is_some_and(|(a, v)| !a.trim().is_empty() && !v.trim().is_empty()))
}

impl Config {
    /// `[directory]`: only checked (and its password read) when kind is not static.
    pub(super) fn check_directory(&mut self, v: &mut Validator, allow_plain: bool) {
        let d = &self.directory;
        if d.kind == DirectoryKind::Static {
            return;
        }
        let example = "e.g. \"ldaps://ldap.azienda.it\" or \"ldap://ldap.azienda.it\" (StartTLS)";
        match url::Url::parse(d.url.trim()) {
            _ if d.url.trim().is_empty() => v.error("directory.url", format!("is not set; write the directory server, {example}")),
            Err(e) => v.error("directory.url", format!("{:?} is not a URL ({e}); {example}", d.url)),
            Ok(u) if !matches!(u.scheme(), "ldap" | "ldaps") => {
                v.error("directory.url", format!("scheme {:?} is not ldaps:// or ldap://; {example}", u.scheme()))
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => v.error("directory.url", format!("{:?} names no host; {example}", d.url)),
            Ok(u) if d.allow_plaintext_loopback && !(u.scheme() == "ldap" && is_loopback_host(&u)) => v.error(
                "directory.allow_plaintext_loopback",
                format!(
                    "is true but {:?} is not ldap:// to a loopback address; plain LDAP would send passwords in clear: remove the key",
                    d.url
                ),
            ),
            Ok(u) if u.password().is_some() || !u.username().is_empty() => {
                v.error("directory.url", "contains credentials; use directory.bind_dn and directory.password_file")
            }
            Ok(_) => {}
        }
        if let Some(ca) = &d.ca_file {
            v.file_exists("directory.ca_file", ca);
        }
        if !looks_like_dn(&d.bind_dn) {
            v.error(
                "directory.bind_dn",
                format!("{:?} is not a DN; write the service account, e.g. \"cn=pecgate,ou=services,dc=azienda,dc=it\"", d.bind_dn),
            );
        }
        if !looks_like_dn(&d.base_dn) {
            v.error(
                "directory.base_dn",
                format!("{:?} is not a DN; write where users and groups are searched, e.g. \"dc=azienda,dc=it\"", d.base_dn),
            );
        }
        let filter = d.effective_user_filter();
        if !crate::directory::filter_is_balanced(filter) {
            v.error(
                "directory.user_filter",
                format!("{filter:?} is not an LDAP filter; write it in parentheses, e.g. \"(objectClass=inetOrgPerson)\""),
            );
        }
        for (key, attr) in
            [("directory.mail_attribute", d.mail_attribute.as_str()), ("directory.login_attribute", d.effective_login_attribute())]
                .into_iter()
                .chain(d.pin_attribute.as_deref().map(|a| ("directory.pin_attribute", a)))
        {
            if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';') {
                v.error(key, format!("{attr:?} is not an attribute name; write e.g. \"mail\""));
            }
        }
        if d.refresh_secs == 0 {
            v.error("directory.refresh_secs", "must be at least 1 second (default 300)");
        } else if d.refresh_secs < 30 {
            v.warning(
                "directory.refresh_secs",
                format!("{} s is very short: every refresh reads every user; 300 is usual", d.refresh_secs),
            );
        }
        if d.timeout_secs == 0 || d.timeout_secs > 120 {
            v.error("directory.timeout_secs", format!("{} must be from 1 to 120 seconds (default 10)", d.timeout_secs));
        }
        let scope = Scope::new("directory");
        let (file, env, literal) = (d.password_file.clone(), d.password_env.clone(), d.password.clone());
        v.resolved.secrets.directory = v.secret(&scope, &file, &env, &literal, allow_plain, None);
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // ldap:// is not a "special" scheme to the url crate: an IP literal comes as a domain.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}
