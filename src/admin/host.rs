//! Which `Host` (and `Origin`) a request to the admin listener may name.
//!
//! A browser tricked by DNS rebinding sends the attacker's name in `Host`,
//! so only names that really are this listener pass: its address (the one
//! the connection arrived on, or `[admin] listen`), a loopback address or
//! `localhost` with its port, and the names in `[admin] allowed_hosts`.

use std::net::{IpAddr, SocketAddr};

/// Why a host name is not one (for config validation messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHost {
    #[error("is empty")]
    Empty,
    #[error("has a scheme or a path (only the host name, optionally :port)")]
    NotJustAHost,
    #[error("has a port that is not 1 to 65535")]
    Port,
    #[error("has a character a host name cannot have")]
    Character,
}

/// A host name (lowercase, IPv6 without brackets, no trailing dot) and its port if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub name: String,
    pub port: Option<u16>,
}

impl HostPort {
    fn ip(&self) -> Option<IpAddr> {
        self.name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }
}

/// `name`, `name:port`, `1.2.3.4:port`, `[::1]:port`, as in a `Host` header.
pub fn parse(s: &str) -> Result<HostPort, BadHost> {
    let s = s.trim();
    if s.is_empty() {
        return Err(BadHost::Empty);
    }
    if s.contains(['/', '@', '?', '#', '*']) || s.contains(char::is_whitespace) {
        return Err(BadHost::NotJustAHost);
    }
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(BadHost::Character)?;
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(BadHost::Character);
        }
        match after {
            "" => (inside, None),
            p => (inside, Some(p.strip_prefix(':').ok_or(BadHost::Character)?)),
        }
    } else {
        match s.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err(BadHost::Character),
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or(BadHost::Port)?),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return Err(BadHost::Empty);
    }
    if !s.starts_with('[') && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
        return Err(BadHost::Character);
    }
    Ok(HostPort { name, port })
}

/// An `[admin] allowed_hosts` entry (checked by config validation).
pub fn parse_allowed(s: &str) -> Result<HostPort, BadHost> {
    parse(s)
}

/// What a request's `Host` is compared with.
pub struct Listener<'a> {
    /// The address the connection arrived on (unknown without connect info).
    pub local: Option<SocketAddr>,
    /// `[admin] listen` as configured.
    pub listen: &'a str,
    pub allowed_hosts: &'a [String],
}

impl Listener<'_> {
    /// The port the listener answers on (a missing `Host` port means 80).
    fn port(&self) -> Option<u16> {
        self.local.map(|a| a.port()).or_else(|| self.listen.parse::<SocketAddr>().ok().map(|a| a.port()))
    }

    /// Whether `host` (a `Host` header value) names this listener.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(h) = parse(host) else { return false };
        let port = h.port.unwrap_or(80);
        let own_port = self.port() == Some(port);
        let own_ip = |ip: IpAddr| {
            ip.is_loopback()
                || self.local.is_some_and(|a| a.ip().to_canonical() == ip)
                || self.listen.parse::<SocketAddr>().is_ok_and(|a| a.ip().to_canonical() == ip && a.port() == port)
        };
        let own = match h.ip() {
            Some(ip) => own_port && own_ip(ip),
            None => own_port && h.name == "localhost",
        };
        own || self.allowed_hosts.iter().filter_map(|a| parse_allowed(a).ok()).any(|a| a.name == h.name && a.port.is_none_or(|p| p == port))
    }

    /// How the refusal names what would pass.
    pub fn describe(&self) -> String {
        let port = self.port().map(|p| p.to_string()).unwrap_or_else(|| "PORT".into());
        let mut names = vec![format!("localhost:{port}")];
        if let Some(a) = self.local {
            names.push(a.to_string());
        }
        names.extend(self.allowed_hosts.iter().cloned());
        names.join(", ")
    }
}

/// Whether an `Origin` or `Referer` value names the same host and port as `host`.
pub fn same_authority(url: &str, host: &str) -> bool {
    let (default, rest) = if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (443, r)
    } else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match (parse(authority), parse(host)) {
        (Ok(a), Ok(h)) => a.name == h.name && a.port.unwrap_or(default) == h.port.unwrap_or(default),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse("PecGate.Corp.IT."), Ok(HostPort { name: "pecgate.corp.it".into(), port: None }));
        assert_eq!(parse("[::1]:9180"), Ok(HostPort { name: "::1".into(), port: Some(9180) }));
        assert_eq!(parse("127.0.0.1:9180"), Ok(HostPort { name: "127.0.0.1".into(), port: Some(9180) }));
        assert_eq!(parse(""), Err(BadHost::Empty));
        assert_eq!(parse("http://x"), Err(BadHost::NotJustAHost));
        assert_eq!(parse("x/y"), Err(BadHost::NotJustAHost));
        assert_eq!(parse("*.corp.it"), Err(BadHost::NotJustAHost));
        assert_eq!(parse("x:0"), Err(BadHost::Port));
        assert_eq!(parse("x:99999"), Err(BadHost::Port));
        assert_eq!(parse("::1"), Err(BadHost::Character));
        assert_eq!(parse("a\"b"), Err(BadHost::Character));
    }

    #[test]
    fn listener_names() {
        let allowed = vec!["pecgate.corp.it".to_owned(), "proxy.corp.it:8443".to_owned()];
        let l = Listener { local: Some("10.0.0.5:9180".parse().unwrap()), listen: "0.0.0.0:9180", allowed_hosts: &allowed };
        for ok in [
            "10.0.0.5:9180",
            "127.0.0.1:9180",
            "[::1]:9180",
            "localhost:9180",
            "LOCALHOST:9180",
            "pecgate.corp.it",
            "pecgate.corp.it:1",
            "proxy.corp.it:8443",
        ] {
            assert!(l.allows(ok), "{ok}");
        }
        for bad in
            ["evil.example:9180", "10.0.0.5:9181", "10.0.0.6:9180", "localhost:80", "localhost", "proxy.corp.it", "x", "", "10.0.0.5"]
        {
            assert!(!l.allows(bad), "{bad}");
        }
        assert_eq!(l.describe(), "localhost:9180, 10.0.0.5:9180, pecgate.corp.it, proxy.corp.it:8443");
    }

    #[test]
    fn origins() {
        assert!(same_authority("http://127.0.0.1:9180", "127.0.0.1:9180"));
        assert!(same_authority("http://127.0.0.1:9180/queue?x", "127.0.0.1:9180"));
        assert!(same_authority("https://pecgate.corp.it", "pecgate.corp.it"));
        assert!(same_authority("http://pecgate.corp.it", "pecgate.corp.it:80"));
        assert!(!same_authority("http://evil.example", "127.0.0.1:9180"));
        assert!(!same_authority("http://127.0.0.1:9181", "127.0.0.1:9180"));
        assert!(!same_authority("null", "127.0.0.1:9180"));
        assert!(!same_authority("http://127.0.0.1:9180@evil.example", "127.0.0.1:9180"));
    }
}
