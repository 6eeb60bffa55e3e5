//! Who may use the admin API and page: one bearer token (`[admin] token_file`)
//! for the API, the same token typed into `/login` for the page, which then
//! holds a server-side session (random id in an `HttpOnly; SameSite=Strict`
//! cookie) with its own CSRF token for every form. Without a token the
//! listener is loopback-only (config validation) and everyone on this host
//! gets a session without logging in, to read only ([`super::guard`]
//! refuses every change). The token is kept only as its
//! SHA-256 and compared in constant time, so timing leaks neither a common
//! prefix nor its length; a reload replaces it without ending sessions.
//! Wrong tokens are limited per client ([`super::limit`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

use axum::http::HeaderMap;
use axum::http::header;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use super::limit::Limiter;
use crate::config::{Language, Secret};
use crate::util::constant_time_eq;

/// Name of the session cookie.
pub const COOKIE: &str = "pecgate_session";
/// A session lasts this long after login (no sliding renewal: a stolen cookie expires).
pub const SESSION_TTL_MS: i64 = 8 * 3600 * 1000;
/// Bound on live sessions, so that a login loop cannot grow memory without limit.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the system random generator failed")]
    Random,
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    pub expires_at: i64,
    /// Chosen with `?lang=`; overrides `[admin] language` for this session.
    pub lang: Option<Language>,
}

pub struct Auth {
    /// SHA-256 of the token; `None` without `token_file`.
    token: RwLock<Option<Vec<u8>>>,
    sessions: Mutex<HashMap<String, Session>>,
    rng: SystemRandom,
    failures: Limiter,
}

/// Where a token was presented (the `via` label of `pecgate_admin_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Login,
    Bearer,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Login => "login",
            Via::Bearer => "bearer",
        }
    }
}

/// The outcome of presenting a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Ok,
    /// No token presented (not counted as a failure).
    Missing,
    Wrong,
    /// Too many wrong tokens from this client: retry after this many seconds.
    Limited(u64),
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

impl Auth {
    /// `token` as read from `[admin] token_file` by the configuration.
    pub fn new(token: Option<&Secret>) -> Auth {
        Auth {
            token: RwLock::new(token.map(|t| sha256(t.expose().as_bytes()))),
            sessions: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
            failures: Limiter::default(),
        }
    }

    /// After a reload: the new token counts from the next request.
    pub fn set_token(&self, token: Option<&Secret>) {
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = token.map(|t| sha256(t.expose().as_bytes()));
    }

    /// No token configured: loopback-only, read-only, no login.
    pub fn is_open(&self) -> bool {
        self.token.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Compares hashes in constant time, so response timing does not leak the token.
    pub fn token_matches(&self, given: &str) -> bool {
        match &*self.token.read().unwrap_or_else(|p| p.into_inner()) {
            Some(t) => constant_time_eq(t, &sha256(given.as_bytes())),
            None => true,
        }
    }

    /// `Authorization: Bearer <token>`, counted against `client`'s attempts.
    pub fn bearer(&self, headers: &HeaderMap, client: IpAddr, now: i64) -> Attempt {
        if self.is_open() {
            return Attempt::Ok;
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else { return Attempt::Missing };
        let token = match value.to_str().ok().and_then(|v| v.split_once(' ')) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            // Another scheme, or bytes that are not text: a wrong credential all the same.
            _ => "",
        };
        self.attempt(token, client, now, Via::Bearer)
    }

    /// A token typed into the login form (or sent as a bearer), limited per client.
    /// The limit is checked first, so while it holds even the right token is refused.
    pub fn attempt(&self, given: &str, client: IpAddr, now: i64, via: Via) -> Attempt {
        if let Some(secs) = self.failures.blocked(client, now) {
            return Attempt::Limited(secs);
        }
        if !given.is_empty() && self.token_matches(given) {
            self.failures.succeeded(client);
            return Attempt::Ok;
        }
        metrics::counter!("pecgate_admin_auth_failures_total", "via" => via.as_str()).increment(1);
        if self.failures.failed(client, now) {
            tracing::warn!(client = %client, via = via.as_str(), "admin: too many wrong tokens from this client; refused for a minute");
        }
        Attempt::Wrong
    }

    /// A new session with fresh random id and CSRF token; expired ones are purged.
    pub fn create_session(&self, now: i64, lang: Option<Language>) -> Result<Session, Error> {
        let session = Session { id: self.random_hex()?, csrf: self.random_hex()?, expires_at: now + SESSION_TTL_MS, lang };
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires_at > now);
        if map.len() >= MAX_SESSIONS {
            // Drop the session closest to expiry rather than refusing a legitimate login.
            if let Some(oldest) = map.values().min_by_key(|s| s.expires_at).map(|s| s.id.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The live session named by the request's cookie.
    pub fn session(&self, headers: &HeaderMap, now: i64) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    pub fn set_language(&self, id: &str, lang: Language) {
        if let Some(s) = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            s.lang = Some(lang);
        }
    }

    pub fn end_session(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    fn random_hex(&self) -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes).map_err(|_| Error::Random)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The CSRF field of a form matches the session's token.
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| constant_time_eq(session.csrf.as_bytes(), g.as_bytes()))
}

/// `Set-Cookie` value for a session (`Secure` is left out: the listener is plain HTTP, usually on loopback).
pub fn session_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_TTL_MS / 1000)
}

/// `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_sessions_and_csrf() {
        let auth = Auth::new(Some(&Secret::new("s3cret")));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(auth.bearer(&h, ip, 0), Attempt::Missing);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert_eq!(auth.bearer(&h, ip, 0), Attempt::Wrong);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert_eq!(auth.bearer(&h, ip, 0), Attempt::Wrong);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer s3cret"));
        assert_eq!(auth.bearer(&h, ip, 0), Attempt::Ok);
        for _ in 0..super::super::limit::MAX_FAILURES {
            assert_eq!(auth.attempt("nope", ip, 10, Via::Login), Attempt::Wrong);
        }
        assert_eq!(auth.attempt("s3cret", ip, 11, Via::Login), Attempt::Limited(60), "even the right token waits");
        assert_eq!(auth.bearer(&h, ip, 11), Attempt::Limited(60), "one count for login and bearer");
        assert_eq!(auth.bearer(&h, ip, 10 + 60_000), Attempt::Ok);
        assert_eq!(Auth::new(None).bearer(&HeaderMap::new(), ip, 0), Attempt::Ok, "no token configured");
        assert_eq!(crate::metrics::ADMIN_AUTH_VIA, [Via::Login.as_str(), Via::Bearer.as_str()], "registered at zero");

        let s = auth.create_session(1_000, None).unwrap();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let mut c = HeaderMap::new();
        c.insert(header::COOKIE, HeaderValue::from_str(&format!("a=b; {COOKIE}={}", s.id)).unwrap());
        assert_eq!(auth.session(&c, 2_000).map(|x| x.csrf), Some(s.csrf.clone()));
        assert!(auth.session(&c, 1_000 + SESSION_TTL_MS).is_none(), "expired");
        assert!(auth.session(&c, 2_000).is_none(), "an expired session is gone");
        assert!(csrf_ok(&s, Some(&s.csrf)));
        assert!(!csrf_ok(&s, Some("x")));
        assert!(!csrf_ok(&s, None));
    }
}
