//! The JSON API under `/api/v1` (bearer token, see [`super::auth`]): the
//! message list and detail, raw downloads byte-for-byte, an evidence zip,
//! mailbox health and the operator's retry/drop. `openapi.json` describes
//! exactly the routes in [`ROUTES`] (a test compares them).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;

use super::AdminState;
use super::auth::Attempt;
use crate::store::{self, Event, FetchedRecord, ListFilter, ListItem, Message, Recipient};

/// Every API route as (method, path); the router is built from it and the
/// OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/messages"),
    ("get", "/api/v1/messages/{id}"),
    ("get", "/api/v1/messages/{id}/raw"),
    ("get", "/api/v1/messages/{id}/evidence"),
    ("get", "/api/v1/receipts/{id}/raw"),
    ("get", "/api/v1/mailboxes"),
    ("get", "/api/v1/directory"),
    ("get", "/api/v1/cluster"),
    ("get", "/api/v1/skipped"),
    ("post", "/api/v1/queue/{id}/retry"),
    ("post", "/api/v1/queue/{id}/drop"),
    ("get", "/api/v1/openapi.json"),
];

/// The embedded OpenAPI 3.0 document.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Default and largest page of the message list.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("too many wrong tokens from this address; retry in {0} s")]
    TooManyAttempts(u64),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("spool: {0}")]
    Io(#[from] std::io::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status();
        if code == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "admin API request failed");
        }
        let mut resp = (code, axum::Json(json!({ "error": self.to_string() }))).into_response();
        if code == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pecgate\""));
        }
        if let ApiError::TooManyAttempts(secs) = self {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The API router (routes from [`ROUTES`]), behind the token check.
pub fn router(state: Arc<AdminState>) -> Router<Arc<AdminState>> {
    let mut r = Router::new();
    for (method, path) in ROUTES {
        r = r.route(path, handler(method, path));
    }
    r.route_layer(axum::middleware::from_fn_with_state(state, require_token)).fallback(|| async { ApiError::NotFound("route".into()) })
}

fn handler(method: &str, path: &str) -> MethodRouter<Arc<AdminState>> {
    match (method, path) {
        ("get", "/api/v1/messages") => get(list),
        ("get", "/api/v1/messages/{id}") => get(detail),
        ("get", "/api/v1/messages/{id}/raw") => get(message_raw),
        ("get", "/api/v1/messages/{id}/evidence") => get(evidence),
        ("get", "/api/v1/receipts/{id}/raw") => get(receipt_raw),
        ("get", "/api/v1/mailboxes") => get(mailboxes),
        ("get", "/api/v1/directory") => get(directory),
        ("get", "/api/v1/cluster") => get(cluster),
        ("get", "/api/v1/skipped") => get(skipped),
        ("post", "/api/v1/queue/{id}/retry") => post(retry),
        ("post", "/api/v1/queue/{id}/drop") => post(drop_message),
        _ => get(openapi),
    }
}

/// Bearer token; for GET (no bearer) also the page's session cookie, so the
/// page can link downloads. A POST needs the bearer: a browser sends cookies
/// on a cross-site form, never an `Authorization` header.
async fn require_token(State(state): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let now = state.clock.now_ms();
    let headers = req.headers();
    match state.auth.bearer(headers, super::guard::client_ip(req.extensions()), now) {
        Attempt::Ok => next.run(req).await,
        Attempt::Limited(secs) => ApiError::TooManyAttempts(secs).into_response(),
        Attempt::Missing if req.method() == Method::GET && state.auth.session(headers, now).is_some() => next.run(req).await,
        Attempt::Missing | Attempt::Wrong => ApiError::Unauthorized.into_response(),
    }
}

/// `application/x-www-form-urlencoded` pairs (query strings and form bodies).
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (url_decode(k), url_decode(v)))
        .collect()
}

pub fn query_map(uri: &Uri) -> HashMap<String, String> {
    form_pairs(uri.query().unwrap_or("")).into_iter().collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() => {
                out.push((hex(b[i + 1]) << 4) | hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Value of an ASCII hex digit (callers checked `is_ascii_hexdigit`).
fn hex(c: u8) -> u8 {
    char::from(c).to_digit(16).unwrap_or(0) as u8
}

/// Opaque pagination cursor: base64url of `created_at:id`.
pub fn encode_cursor(at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once(':')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// Milliseconds since the epoch, an RFC 3339 time or a `YYYY-MM-DD` date (UTC).
fn parse_time(key: &str, s: &str) -> ApiResult<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(ApiError::BadRequest(format!("{key}={s:?}: expected milliseconds since the epoch, an RFC 3339 time or YYYY-MM-DD")))
}

/// The list filter from query parameters (shared with the page).
pub fn filter_from_query(q: &HashMap<String, String>) -> ApiResult<ListFilter> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
    let direction = get("direction");
    if let Some(d) = &direction
        && d != "in"
        && d != "out"
    {
        return Err(ApiError::BadRequest(format!("direction={d:?}: expected \"out\" or \"in\"")));
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("limit={l:?}: expected 1 to {MAX_LIMIT}")))?,
    };
    let after = match get("cursor") {
        None => None,
        Some(c) => Some(decode_cursor(&c).ok_or_else(|| ApiError::BadRequest("cursor is not one this API returned".into()))?),
    };
    Ok(ListFilter {
        mailbox: get("mailbox"),
        direction,
        status: get("status"),
        q: get("q"),
        since: get("since").map(|s| parse_time("since", &s)).transpose()?,
        until: get("until").map(|s| parse_time("until", &s)).transpose()?,
        after,
        limit,
    })
}

/// One page of the list and the cursor of the next (fetches one extra row to know).
pub async fn list_page(state: &AdminState, mut filter: ListFilter) -> ApiResult<(Vec<ListItem>, Option<String>)> {
    let want = filter.limit as usize;
    filter.limit += 1;
    let mut items = state.store.list_filtered(&filter).await?;
    let next = if items.len() > want {
        items.truncate(want);
        items.last().map(|i| encode_cursor(i.created_at, &i.id))
    } else {
        None
    };
    Ok((items, next))
}

/// A list item with its [`super::display`] state.
#[derive(Debug, Serialize)]
struct ListEntry<'a> {
    #[serde(flatten)]
    item: &'a ListItem,
    display_state: &'static str,
}

/// The display state of a list item (the list holds only PEC sent to providers, and fetched records).
pub fn item_display_state(i: &ListItem) -> &'static str {
    let rcpts: Vec<&str> = i.recipient_states.iter().map(String::as_str).collect();
    super::display::display_state(&i.direction, &i.state, &rcpts, false)
}

async fn list(State(state): State<Arc<AdminState>>, uri: Uri) -> ApiResult<Response> {
    let filter = filter_from_query(&query_map(&uri))?;
    let (items, next_cursor) = list_page(&state, filter).await?;
    let items: Vec<ListEntry> = items.iter().map(|item| ListEntry { item, display_state: item_display_state(item) }).collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": next_cursor })).into_response())
}

/// A recipient with the events about it, oldest first.
#[derive(Debug, Serialize)]
pub struct RecipientView {
    #[serde(flatten)]
    pub recipient: Recipient,
    pub events: Vec<Event>,
}

/// A receipt or message fetched for a sent message.
#[derive(Debug, Serialize)]
pub struct ReceiptView {
    pub id: String,
    pub kind: String,
    pub fetched_at: i64,
    pub consegna: Option<String>,
    pub subject: String,
    pub size: u64,
    pub raw: String,
    /// Verdict of the provider's S/MIME signature (`valid`, `invalid`, ...).
    pub signature: Option<String>,
    /// Subject of the signer certificate.
    pub signer: Option<String>,
}

/// Everything known about a sent message.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub direction: &'static str,
    /// One state for people ([`super::display`]).
    pub display_state: &'static str,
    #[serde(flatten)]
    pub message: Message,
    pub recipients: Vec<RecipientView>,
    /// Events not about one recipient.
    pub events: Vec<Event>,
    pub receipts: Vec<ReceiptView>,
    pub raw: String,
    pub evidence: String,
}

pub enum Detail {
    Out(Box<MessageView>),
    In(Box<FetchedRecord>),
}

/// A sent message or, failing that, a fetched record with this id.
pub async fn load_detail(state: &AdminState, id: &str) -> ApiResult<Detail> {
    if let Some(message) = state.store.message(id).await? {
        return Ok(Detail::Out(Box::new(message_view(state, message).await?)));
    }
    match state.store.fetched(id).await? {
        Some(r) => Ok(Detail::In(Box::new(r))),
        None => Err(ApiError::NotFound(format!("message {id}"))),
    }
}

async fn message_view(state: &AdminState, message: Message) -> ApiResult<MessageView> {
    let id = message.id.clone();
    let events = state.store.events(&id).await?;
    let recipients: Vec<RecipientView> = state
        .store
        .recipients(&id)
        .await?
        .into_iter()
        .map(|r| {
            let mine = events.iter().filter(|e| e.rcpt.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(&r.address))).cloned().collect();
            RecipientView { recipient: r, events: mine }
        })
        .collect();
    let receipts = state
        .store
        .fetched_for(&id)
        .await?
        .into_iter()
        .map(|r| ReceiptView {
            raw: format!("/api/v1/receipts/{}/raw", r.id),
            id: r.id,
            kind: r.kind,
            fetched_at: r.fetched_at,
            consegna: r.consegna,
            subject: r.subject,
            size: r.size,
            signature: r.signature,
            signer: r.signer,
        })
        .collect();
    let rcpt_states: Vec<&str> = recipients.iter().map(|r| r.recipient.state.as_str()).collect();
    let display_state = super::display::display_state("out", message.state.as_str(), &rcpt_states, message.route.mailbox().is_none());
    Ok(MessageView {
        direction: "out",
        display_state,
        raw: format!("/api/v1/messages/{id}/raw"),
        evidence: format!("/api/v1/messages/{id}/evidence"),
        events: events.into_iter().filter(|e| e.rcpt.is_none()).collect(),
        message,
        recipients,
        receipts,
    })
}

async fn detail(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(match load_detail(&state, &id).await? {
        Detail::Out(v) => axum::Json(v).into_response(),
        Detail::In(r) => {
            let raw = format!("/api/v1/receipts/{}/raw", r.id);
            axum::Json(json!({ "direction": "in", "display_state": "received", "record": r, "raw": raw })).into_response()
        }
    })
}

/// The stored bytes of a queued message (head ++ tail), byte-for-byte.
pub async fn message_bytes(state: &AdminState, id: &str) -> ApiResult<Vec<u8>> {
    if state.store.message(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("message {id}")));
    }
    // The id comes from the store, so it is a safe file name.
    state.spool.read_message(id).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::NotFound(format!("stored copy of message {id}")),
        _ => ApiError::Io(e),
    })
}

/// A fetched message or receipt, byte-for-byte as the provider sent it.
pub async fn receipt_bytes(state: &AdminState, id: &str) -> ApiResult<Vec<u8>> {
    if state.store.fetched(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("receipt {id}")));
    }
    tokio::fs::read(state.spool.fetched_path(id)).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::NotFound(format!("stored copy of receipt {id}")),
        _ => ApiError::Io(e),
    })
}

fn download(bytes: Vec<u8>, content_type: &'static str, name: &str) -> Response {
    let disposition =
        format!("attachment; filename=\"{}\"", name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-', "_"));
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn message_raw(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let bytes = message_bytes(&state, &id).await?;
    Ok(download(bytes, "message/rfc822", &format!("{id}.eml")))
}

async fn receipt_raw(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let bytes = receipt_bytes(&state, &id).await?;
    Ok(download(bytes, "message/rfc822", &format!("{id}.eml")))
}

/// Zip for a dispute or an audit: the sent message, every receipt, and a summary (JSON and CSV).
async fn evidence(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let view = match load_detail(&state, &id).await? {
        Detail::Out(v) => v,
        Detail::In(_) => return Err(ApiError::NotFound(format!("sent message {id}"))),
    };
    let mut zip = zip::Writer::default();
    zip.add(&format!("message-{id}.eml"), &message_bytes(&state, &id).await?);
    for (n, r) in view.receipts.iter().enumerate() {
        let raw = receipt_bytes(&state, &r.id).await?;
        let name = format!("receipts/{:02}-{}-{}", n + 1, safe_name(&r.kind), r.id);
        // The provider's signer certificate, as evidence next to the receipt (verdict in summary.json).
        let c = crate::pec::classify(&raw);
        let report =
            crate::pec::signature::verify(&raw, &crate::pec::signature::TrustStore::empty(), c.daticert.as_ref().and_then(|d| d.data));
        if let Some(der) = &report.signer_cert_der {
            zip.add(&format!("{name}.signer.pem"), pem_certificate(der).as_bytes());
        }
        zip.add(&format!("{name}.eml"), &raw);
    }
    let summary = serde_json::to_vec_pretty(&view).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    zip.add("summary.json", &summary);
    zip.add("summary.csv", summary_csv(&view).as_bytes());
    Ok(download(zip.finish(), "application/zip", &format!("pecgate-evidence-{id}.zip")))
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn safe_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// One row per recipient state and per receipt; times in UTC.
fn summary_csv(v: &MessageView) -> String {
    let mut out = String::from("record,id,recipient,state_or_kind,time_utc,detail\r\n");
    let m = &v.message;
    let row = |out: &mut String, cols: [&str; 6]| {
        let line: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    };
    row(&mut out, ["message", &m.id, "", m.state.as_str(), &utc(m.created_at), &format!("{} | {}", m.subject, m.message_id)]);
    for r in &v.recipients {
        let rr = &r.recipient;
        row(&mut out, ["recipient", &m.id, &rr.address, rr.state.as_str(), &utc(rr.updated_at), rr.last_reply.as_deref().unwrap_or("")]);
    }
    for r in &v.receipts {
        let detail = format!("{} | signature {}", r.subject, r.signature.as_deref().unwrap_or("not checked"));
        row(&mut out, ["receipt", &r.id, r.consegna.as_deref().unwrap_or(""), &r.kind, &utc(r.fetched_at), &detail]);
    }
    out
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be a formula in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

/// `2025-01-31 09:30:00 UTC`.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
}

/// Health of one PEC mailbox.
#[derive(Debug, Serialize)]
pub struct MailboxView {
    pub id: String,
    pub address: String,
    pub active: bool,
    pub pop3: bool,
    pub imap: bool,
    /// `idling` (IMAP IDLE) or `polling`; `None` before the first poll or without retrieval.
    pub fetch_mode: Option<&'static str>,
    pub last_poll: Option<i64>,
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    pub last_send: Option<i64>,
    pub queue_size: i64,
    /// Recipients still expecting a receipt (submitted, accepted, warned).
    pub pending_receipts: i64,
}

pub async fn mailbox_views(state: &AdminState) -> ApiResult<Vec<MailboxView>> {
    let sends = state.store.last_sends().await?;
    let queues = state.store.queue_stats().await?;
    let counts = state.store.recipient_state_counts().await?;
    Ok(state
        .rt()
        .mailboxes
        .iter()
        .map(|m| {
            let status = state.fetchers.get(&m.id).map(|f| f.status());
            MailboxView {
                id: m.id.clone(),
                address: m.address.clone(),
                active: m.active,
                pop3: m.pop3.is_some(),
                imap: m.imap.is_some(),
                fetch_mode: status.as_ref().and_then(|s| s.mode),
                last_poll: status.as_ref().and_then(|s| s.last_poll),
                last_success: status.as_ref().and_then(|s| s.last_success),
                last_error: status.and_then(|s| s.last_error),
                last_send: sends.iter().find(|(mb, _)| *mb == m.id).map(|(_, at)| *at),
                queue_size: queues.iter().filter(|(route, mb, _, _)| route == "provider" && *mb == m.id).map(|(_, _, n, _)| n).sum(),
                pending_receipts: counts
                    .iter()
                    .filter(|(mb, st, _)| *mb == m.id && matches!(st.as_str(), "submitted" | "accepted" | "warned"))
                    .map(|(_, _, n)| n)
                    .sum(),
            }
        })
        .collect())
}

/// Messages left on a provider's server because pecgate cannot take them.
async fn skipped(State(state): State<Arc<AdminState>>) -> ApiResult<Response> {
    Ok(axum::Json(json!({ "items": state.store.skipped(None).await? })).into_response())
}

async fn mailboxes(State(state): State<Arc<AdminState>>) -> ApiResult<Response> {
    Ok(axum::Json(json!({ "items": mailbox_views(&state).await? })).into_response())
}

/// Per mailbox, who may send, receive, get anomalies or is admin, and from
/// which configuration entry or directory group; the directory's refresh state.
async fn directory(State(state): State<Arc<AdminState>>) -> Response {
    axum::Json(super::directory::directory_view(&state).await).into_response()
}

/// One instance as the admin page and API show it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    #[serde(flatten)]
    pub info: crate::store::InstanceInfo,
    /// "alive" (beating), "stopped" (clean shutdown) or "unresponsive" (no heartbeat within the lease: crashed or cut off).
    pub status: &'static str,
    /// Leases it holds now (`pop3:<mailbox>`, `watchdog`).
    pub leases: Vec<String>,
    /// The instance answering this request.
    pub this: bool,
}

/// Every instance sharing the store, and who holds which lease.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The instance answering this request.
    pub instance: String,
    /// True with PostgreSQL (several instances may share the store).
    pub shared: bool,
    pub lease_secs: u64,
    pub instances: Vec<InstanceView>,
    pub leases: Vec<crate::store::Lease>,
}

pub async fn cluster_view(state: &AdminState) -> ApiResult<ClusterView> {
    let now = state.clock.now_ms();
    let lease_ms = crate::cluster::lease_ms(state.rt().config.cluster.lease_secs);
    let leases = state.store.leases().await?;
    let me = state.store.instance().to_owned();
    let instances = state
        .store
        .instances()
        .await?
        .into_iter()
        .map(|info| {
            let status = crate::cluster::instance_status(&info, now, lease_ms);
            let held = crate::cluster::held_leases(&leases, &info.id, now).into_iter().map(str::to_owned).collect();
            InstanceView { this: info.id == me, status, leases: held, info }
        })
        .collect();
    Ok(ClusterView { instance: me, shared: state.store.shared(), lease_secs: state.rt().config.cluster.lease_secs, instances, leases })
}

async fn cluster(State(state): State<Arc<AdminState>>) -> ApiResult<Response> {
    Ok(axum::Json(cluster_view(&state).await?).into_response())
}

/// What an operator can do to a waiting message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAction {
    Retry,
    Drop,
}

/// Retry or drop a waiting message; the store records who did it.
pub async fn queue_action(state: &AdminState, id: &str, action: QueueAction, who: &str) -> ApiResult<Message> {
    let Some(m) = state.store.message(id).await? else { return Err(ApiError::NotFound(format!("message {id}"))) };
    let now = state.clock.now_ms();
    let done = match action {
        QueueAction::Retry => state.store.retry_now(id, now, who).await?,
        QueueAction::Drop => state.store.drop_message(id, now, who).await?,
    };
    if !done {
        return Err(ApiError::Conflict(format!("message {id} is not waiting in the queue (state {})", m.state)));
    }
    tracing::info!(id, who, action = ?action, kind = m.kind.as_str(), "operator queue action");
    let m = state.store.message(id).await?.ok_or_else(|| ApiError::NotFound(format!("message {id}")))?;
    Ok(m)
}

async fn retry(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = queue_action(&state, &id, QueueAction::Retry, "admin token").await?;
    state.kick.notify_one();
    Ok(axum::Json(json!({ "id": m.id, "state": m.state, "next_attempt_at": m.next_attempt_at })).into_response())
}

async fn drop_message(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = queue_action(&state, &id, QueueAction::Drop, "admin token").await?;
    Ok(axum::Json(json!({ "id": m.id, "state": m.state })).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Whether a message is one an operator sees in the queue view.
pub fn is_waiting(m: &Message) -> bool {
    matches!(m.state, store::MessageState::Queued | store::MessageState::Sending)
}

/// A minimal zip writer (STORE only, no compression): mail and receipts are
/// already compact, and it avoids a dependency. Sizes and offsets are 32-bit,
/// so an archive must stay under 4 GiB (messages are limited far below that).
pub mod zip {
    /// CRC-32 (IEEE 802.3, as zip requires).
    pub fn crc32(data: &[u8]) -> u32 {
        static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut t = [0u32; 256];
            for (i, slot) in t.iter_mut().enumerate() {
                let mut c = i as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                }
                *slot = c;
            }
            t
        });
        !data.iter().fold(!0u32, |c, b| table[((c ^ u32::from(*b)) & 0xFF) as usize] ^ (c >> 8))
    }

    #[derive(Default)]
    pub struct Writer {
        out: Vec<u8>,
        central: Vec<u8>,
        count: u16,
    }

    /// 1980-01-01 00:00 in DOS format: the content, not the archive time, is the evidence.
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (1 << 5) | 1;

    impl Writer {
        pub fn add(&mut self, name: &str, data: &[u8]) {
            let crc = crc32(data);
            let offset = self.out.len() as u32;
            let size = data.len() as u32;
            let name_len = name.len() as u16;
            // Local file header; flag bit 11: names are UTF-8.
            self.out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            for v in [20u16, 0x0800, 0, DOS_TIME, DOS_DATE] {
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc, size, size] {
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            self.out.extend_from_slice(&name_len.to_le_bytes());
            self.out.extend_from_slice(&0u16.to_le_bytes());
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(data);
            // Central directory entry.
            self.central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            for v in [20u16, 20, 0x0800, 0, DOS_TIME, DOS_DATE] {
                self.central.extend_from_slice(&v.to_le_bytes());
            }
            for v in [crc, size, size] {
                self.central.extend_from_slice(&v.to_le_bytes());
            }
            for v in [name_len, 0, 0, 0, 0] {
                self.central.extend_from_slice(&v.to_le_bytes());
            }
            self.central.extend_from_slice(&0u32.to_le_bytes());
            self.central.extend_from_slice(&offset.to_le_bytes());
            self.central.extend_from_slice(name.as_bytes());
            self.count += 1;
        }

        pub fn finish(mut self) -> Vec<u8> {
            let cd_offset = self.out.len() as u32;
            let cd_size = self.central.len() as u32;
            self.out.extend_from_slice(&self.central);
            self.out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
            for v in [0u16, 0, self.count, self.count] {
                self.out.extend_from_slice(&v.to_le_bytes());
            }
            self.out.extend_from_slice(&cd_size.to_le_bytes());
            self.out.extend_from_slice(&cd_offset.to_le_bytes());
            self.out.extend_from_slice(&0u16.to_le_bytes());
            self.out
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn crc_and_layout() {
            assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
            let mut w = super::Writer::default();
            w.add("a.txt", b"hello");
            let z = w.finish();
            assert_eq!(&z[..4], b"PK\x03\x04");
            assert_eq!(&z[30..35], b"a.txt");
            assert_eq!(&z[35..40], b"hello");
            assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_query_decoding() {
        let c = encode_cursor(1_700_000_000_123, "19A4F3C2B1D00A7E3");
        assert_eq!(decode_cursor(&c), Some((1_700_000_000_123, "19A4F3C2B1D00A7E3".to_owned())));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(
            form_pairs("q=a%40b.it+x&lang=en&x"),
            vec![("q".into(), "a@b.it x".into()), ("lang".into(), "en".into()), ("x".into(), "".into())]
        );
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_field("=cmd"), "'=cmd");
    }
}
