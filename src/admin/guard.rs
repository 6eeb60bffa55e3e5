//! Checks every admin request passes before any handler runs:
//!
//! * `Host` must name this listener ([`super::host`]), or 421: a page on
//!   another site cannot reach the listener through DNS rebinding. Only
//!   `/healthz` is exempt (it answers "ok" and nothing else, for load
//!   balancers that probe with any name).
//! * Without a token every state-changing request is 403: anyone on the
//!   host, and any web page the admin's browser opens, could send one.
//! * A state-changing page request must come from a page of this listener
//!   (`Sec-Fetch-Site`, `Origin` or `Referer`) and be a form, on top of the
//!   session and CSRF token its handler checks. API requests need the bearer
//!   token ([`super::api`]), which another site cannot make a browser send.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use serde_json::json;
use tokio::net::TcpListener;

use super::AdminState;
use super::host::{self, Listener};

/// Both ends of an admin connection: the client (for the attempt limit)
/// and the address it connected to (a name the `Host` may use).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub remote: SocketAddr,
    pub local: Option<SocketAddr>,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer { remote: *stream.remote_addr(), local: stream.io().local_addr().ok() }
    }
}

/// The connection of a request (absent when a test drives the router directly).
pub fn peer(ext: &axum::http::Extensions) -> Option<Peer> {
    ext.get::<ConnectInfo<Peer>>().map(|c| c.0)
}

/// The client's address; unknown clients share one entry of the attempt limit.
pub fn client_ip(ext: &axum::http::Extensions) -> IpAddr {
    peer(ext).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.remote.ip())
}

/// Said by every refusal of a state-changing request without a token.
pub const READ_ONLY: &str =
    "the admin listener is read-only without a token: set [admin] token_file to retry or drop messages from the API or the page";

/// GET, HEAD and OPTIONS change nothing; everything else may.
pub fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn guard(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let rt = state.rt();
    let admin = &rt.config.admin;
    let listener =
        Listener { local: peer(req.extensions()).and_then(|p| p.local), listen: &admin.listen, allowed_hosts: &admin.allowed_hosts };
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    if path != "/healthz" && !listener.allows(&host) {
        let shown: String = host.chars().take(100).collect();
        let msg = format!(
            "421 Misdirected Request: Host {shown:?} does not name this admin listener; allowed: {} (add other names to [admin] allowed_hosts)\n",
            listener.describe()
        );
        return (StatusCode::MISDIRECTED_REQUEST, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response();
    }
    if changes_state(req.method()) {
        let api = path.starts_with("/api/");
        if state.auth.is_open() {
            return refuse(api, StatusCode::FORBIDDEN, READ_ONLY, admin.language);
        }
        if !api {
            if let Err(why) = same_origin(req.headers(), &host) {
                return refuse(false, StatusCode::FORBIDDEN, &format!("cross-site request refused ({why})"), admin.language);
            }
            if !is_form(req.headers()) {
                return refuse(
                    false,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a page form is sent as application/x-www-form-urlencoded",
                    admin.language,
                );
            }
        }
    }
    next.run(req).await
}

fn refuse(api: bool, code: StatusCode, message: &str, lang: crate::config::Language) -> Response {
    if api { (code, axum::Json(json!({ "error": message }))).into_response() } else { super::page::error_page(lang, code, message) }
}

/// A page form POST comes from a page of this listener: `Sec-Fetch-Site` says
/// so, or `Origin` (else `Referer`) names `host`. Every header present must
/// agree, and at least one must be present.
fn same_origin(headers: &HeaderMap, host: &str) -> Result<(), &'static str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut vouched = false;
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" {
            return Err("Sec-Fetch-Site is not same-origin");
        }
        vouched = true;
    }
    if let Some(origin) = get("origin") {
        if !host::same_authority(origin, host) {
            return Err("Origin is another site");
        }
        vouched = true;
    } else if let Some(referer) = get("referer") {
        if !host::same_authority(referer, host) {
            return Err("Referer is another site");
        }
        vouched = true;
    }
    if vouched { Ok(()) } else { Err("no Origin, Sec-Fetch-Site or Referer header") }
}

/// `application/x-www-form-urlencoded`, parameters aside: a `text/plain`
/// body (what a cross-site form or `fetch` can send without asking) is not a form.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_needs_one_agreeing_header_and_no_disagreeing_one() {
        let host = "127.0.0.1:9180";
        assert_eq!(same_origin(&headers(&[]), host), Err("no Origin, Sec-Fetch-Site or Referer header"));
        assert!(same_origin(&headers(&[("origin", "http://127.0.0.1:9180")]), host).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), host).is_ok());
        assert!(same_origin(&headers(&[("referer", "http://127.0.0.1:9180/queue")]), host).is_ok());
        assert!(same_origin(&headers(&[("origin", "null")]), host).is_err());
        assert!(same_origin(&headers(&[("origin", "http://evil.example")]), host).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")]), host).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "http://evil.example")]), host).is_err());
        assert!(same_origin(&headers(&[("referer", "http://evil.example/")]), host).is_err());
    }

    #[test]
    fn only_urlencoded_is_a_form() {
        assert!(is_form(&headers(&[("content-type", "application/x-www-form-urlencoded")])));
        assert!(is_form(&headers(&[("content-type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")])));
        assert!(!is_form(&headers(&[("content-type", "text/plain")])));
        assert!(!is_form(&headers(&[("content-type", "multipart/form-data; boundary=x")])));
        assert!(!is_form(&headers(&[])));
    }
}
