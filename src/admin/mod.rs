//! The admin listener: `/healthz` (alive), `/readyz` (store and spool
//! writable, per-mailbox status), `/metrics` (Prometheus), the JSON API under
//! `/api/v1` ([`api`]) and the web page at `/` ([`page`]), both behind
//! [`auth`]; every request first passes [`guard`] (Host, read-only without
//! a token, same-origin forms). Bind it to loopback unless a scraper needs it elsewhere.

pub mod api;
pub mod auth;
pub mod directory;
pub mod display;
pub mod guard;
pub mod host;
pub mod limit;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::fetch::{FetchStatus, Fetchers};
use crate::queue::spool::Spool;
use crate::runtime::{Live, Runtime};
use crate::store::Store;

pub struct AdminState {
    pub live: Arc<Live>,
    pub store: Arc<dyn Store>,
    pub spool: Spool,
    pub metrics: PrometheusHandle,
    pub fetchers: Arc<Fetchers>,
    pub clock: Arc<dyn Clock>,
    pub auth: auth::Auth,
    /// Wakes the delivery dispatcher after an operator retry.
    pub kick: Arc<Notify>,
}

impl AdminState {
    /// The snapshot for one request.
    pub fn rt(&self) -> Arc<Runtime> {
        self.live.get()
    }
}

/// Serves the admin routes on `listener` until `shutdown` turns true.
pub fn spawn(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    if state.auth.is_open() {
        tracing::warn!(listen = %addr, "admin API and page without a token (no admin.token_file): read-only, to anyone on this host");
    }
    let app = router(state);
    let handle = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<guard::Peer>();
        let serve = axum::serve(listener, service).with_graceful_shutdown(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok((addr, handle))
}

/// Every admin route behind [`guard`], with the security headers on every response.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api::router(state.clone()))
        .merge(page::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

const CSP: &str =
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// No inline script or style, no framing, no sniffing, no referrer leaking
/// ids to other sites (same-origin keeps `Origin` on the page's own forms,
/// which [`guard`] checks; `no-referrer` would make browsers send `Origin: null`).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    store: String,
    spool: String,
    mailboxes: Vec<MailboxReadiness>,
}

#[derive(Serialize)]
struct MailboxReadiness {
    id: String,
    active: bool,
    /// The fetcher's status under the protocol's key (`mode`: idling or polling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pop3: Option<FetchStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imap: Option<FetchStatus>,
}

/// Readiness: 200 when the store and the spool are writable (the listener is
/// bound, or the process would not be running); per-mailbox status in the body.
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let spool = match state.spool.probe().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let mailboxes = state
        .rt()
        .mailboxes
        .iter()
        .map(|m| {
            let status = state.fetchers.get(&m.id).map(|f| f.status());
            let (pop3, imap) = if m.imap.is_some() { (None, status) } else { (status, None) };
            MailboxReadiness { id: m.id.clone(), active: m.active, pop3, imap }
        })
        .collect();
    let ready = store == "ok" && spool == "ok";
    let body = Readiness { ready, store, spool, mailboxes };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body)).into_response()
}

/// Prometheus text format; queue and recipient gauges are read from the store at scrape time.
async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    refresh_store_gauges(&state).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn refresh_store_gauges(state: &AdminState) {
    let now = state.clock.now_ms();
    let mut queues: Vec<(&'static str, String)> = vec![("corporate", "-".to_owned())];
    let rt = state.rt();
    queues.extend(rt.mailboxes.iter().map(|m| ("provider", m.id.clone())));
    let stats = state.store.queue_stats().await.unwrap_or_default();
    for (destination, mailbox) in queues {
        let found = stats.iter().find(|(route, mb, _, _)| route == destination && *mb == mailbox);
        let (count, age) = found.map_or((0.0, 0.0), |(_, _, n, oldest)| (*n as f64, ((now - oldest).max(0) as f64) / 1000.0));
        metrics::gauge!("pecgate_queue_size", "destination" => destination, "mailbox" => mailbox.clone()).set(count);
        metrics::gauge!("pecgate_queue_oldest_age_seconds", "destination" => destination, "mailbox" => mailbox).set(age);
    }
    let counts = state.store.recipient_state_counts().await.unwrap_or_default();
    for m in &rt.mailboxes {
        for s in crate::metrics::RECIPIENT_STATES {
            let n = counts.iter().find(|(mb, st, _)| *mb == m.id && st == s).map_or(0, |(_, _, n)| *n);
            metrics::gauge!("pecgate_recipients", "mailbox" => m.id.clone(), "state" => *s).set(n as f64);
        }
    }
}
