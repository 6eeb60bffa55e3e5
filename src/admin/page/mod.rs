//! The admin web page: server-rendered HTML (no client framework, no CDN, no
//! inline script or style, so the CSP can forbid them), Italian by default.
//! Everything that comes from mail is HTML-escaped by [`esc`]. This file:
//! routes, sessions and the forms; [`views`] renders the pages, [`render`]
//! the shared pieces, [`text`] the words.

mod render;
mod text;
mod users;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AdminState;
use super::api::{self, QueueAction};
use super::auth::{self, Attempt, Session, Via};
use super::guard;
use crate::config::Language;
use render::api_error;
pub(crate) use render::error_page;
pub use render::esc;
use text::t;
use views::{detail_view, list_view, mailboxes_view, queue_view};

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// The login form is one short field; axum's default body limit is 2 MB.
const MAX_FORM: usize = 16 * 1024;

/// Who the audit events name for actions taken from the page.
const PAGE_WHO: &str = "admin page";

pub fn router() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/", get(list_view))
        .route("/messages/{id}", get(detail_view))
        .route("/mailboxes", get(mailboxes_view))
        .route("/queue", get(queue_view))
        .route("/queue/{id}/retry", post(retry_form))
        .route("/queue/{id}/drop", post(drop_form))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(|| async { asset(CSS, "text/css; charset=utf-8") }))
        .route("/assets/app.js", get(|| async { asset(JS, "text/javascript; charset=utf-8") }))
        // Browsers ask for it on every page; an empty answer keeps their consoles clean.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

/// The request's session, language and a cookie to set if the session is new.
pub(super) struct Ctx {
    pub(super) session: Session,
    pub(super) lang: Language,
    pub(super) set_cookie: Option<String>,
    /// No token configured: the views leave out every form (the guard refuses them).
    pub(super) read_only: bool,
}

impl Ctx {
    pub(super) fn finish(self, mut resp: Response) -> Response {
        if let Some(c) = self.set_cookie
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}

fn parse_lang(s: &str) -> Option<Language> {
    match s {
        "it" => Some(Language::It),
        "en" => Some(Language::En),
        _ => None,
    }
}

/// Session or redirect to the login form; without a token a session is made on the spot.
pub(super) fn context(state: &AdminState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Ctx, Box<Response>> {
    let now = state.clock.now_ms();
    let asked = query.get("lang").and_then(|l| parse_lang(l));
    let (session, set_cookie) = match state.auth.session(headers, now) {
        Some(s) => (s, None),
        None if state.auth.is_open() => match state.auth.create_session(now, asked) {
            Ok(s) => {
                let c = auth::session_cookie(&s.id);
                (s, Some(c))
            }
            Err(e) => {
                return Err(Box::new(error_page(state.rt().config.admin.language, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())));
            }
        },
        None => return Err(Box::new(Redirect::to("/login").into_response())),
    };
    if let Some(l) = asked {
        state.auth.set_language(&session.id, l);
    }
    let lang = asked.or(session.lang).unwrap_or(state.rt().config.admin.language);
    Ok(Ctx { session, lang, set_cookie, read_only: state.auth.is_open() })
}

/// A POST from a page form: session and CSRF checked before anything else.
fn form_ctx(state: &AdminState, headers: &HeaderMap, body: &Bytes) -> Result<(Ctx, HashMap<String, String>), Box<Response>> {
    let form: HashMap<String, String> = api::form_pairs(&String::from_utf8_lossy(body)).into_iter().collect();
    let lang = state.rt().config.admin.language;
    let Some(session) = state.auth.session(headers, state.clock.now_ms()) else {
        return Err(Box::new(error_page(lang, StatusCode::FORBIDDEN, t(lang, "csrf"))));
    };
    if !auth::csrf_ok(&session, form.get("csrf").map(String::as_str)) {
        let lang = session.lang.unwrap_or(lang);
        return Err(Box::new(error_page(lang, StatusCode::FORBIDDEN, t(lang, "csrf"))));
    }
    let lang = session.lang.unwrap_or(lang);
    Ok((Ctx { session, lang, set_cookie: None, read_only: false }, form))
}

async fn queue_form(state: Arc<AdminState>, headers: HeaderMap, id: String, body: Bytes, action: QueueAction) -> Response {
    let (ctx, _) = match form_ctx(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match api::queue_action(&state, &id, action, PAGE_WHO).await {
        Ok(_) => {
            if action == QueueAction::Retry {
                state.kick.notify_one();
            }
            let done = if action == QueueAction::Retry { "retried" } else { "dropped" };
            ctx.finish(Redirect::to(&format!("/queue?done={done}")).into_response())
        }
        Err(e) => api_error(ctx, e),
    }
}

async fn retry_form(State(state): State<Arc<AdminState>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    queue_form(state, headers, id, body, QueueAction::Retry).await
}

async fn drop_form(State(state): State<Arc<AdminState>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Response {
    queue_form(state, headers, id, body, QueueAction::Drop).await
}

fn login_doc(lang: Language, failed: bool) -> String {
    let error = if failed { format!("<p class=\"notice bad\" role=\"alert\">{}</p>", t(lang, "login_failed")) } else { String::new() };
    format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · pecgate</title>\
<link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body class=\"login\"><main id=\"main\"><h1>pecgate</h1>{error}<form method=\"post\" action=\"/login\" class=\"card\">\
<div class=\"field\"><label for=\"token\">{}</label><input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus></div>\
<button type=\"submit\">{}</button></form></main></body></html>\n",
        if lang == Language::En { "en" } else { "it" },
        t(lang, "login"),
        t(lang, "token"),
        t(lang, "login"),
    )
}

async fn login_form(State(state): State<Arc<AdminState>>, uri: Uri) -> Response {
    if state.auth.is_open() {
        return Redirect::to("/").into_response();
    }
    let lang = api::query_map(&uri).get("lang").and_then(|l| parse_lang(l)).unwrap_or(state.rt().config.admin.language);
    ([(header::CACHE_CONTROL, "no-store")], Html(login_doc(lang, false))).into_response()
}

/// Exempt from CSRF (there is no session yet): it needs the token itself,
/// and wrong ones are limited per client. The guard has checked the origin
/// and refused it without a token.
async fn login_submit(State(state): State<Arc<AdminState>>, request: Request) -> Response {
    let client = guard::client_ip(request.extensions());
    let lang = state.rt().config.admin.language;
    let body = match axum::body::to_bytes(request.into_body(), MAX_FORM).await {
        Ok(b) => b,
        Err(_) => return error_page(lang, StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
    };
    let form: HashMap<String, String> = api::form_pairs(&String::from_utf8_lossy(&body)).into_iter().collect();
    let given = form.get("token").map(String::as_str).unwrap_or("");
    let now = state.clock.now_ms();
    match state.auth.attempt(given, client, now, Via::Login) {
        Attempt::Ok => match state.auth.create_session(now, None) {
            Ok(s) => {
                tracing::info!(client = %client, "admin page login");
                ([(header::SET_COOKIE, auth::session_cookie(&s.id))], Redirect::to("/")).into_response()
            }
            Err(e) => error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Attempt::Limited(secs) => {
            let mut resp = error_page(lang, StatusCode::TOO_MANY_REQUESTS, &t(lang, "too_many").replace("{secs}", &secs.to_string()));
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Attempt::Wrong | Attempt::Missing => {
            tracing::warn!(client = %client, "admin page login with a wrong token");
            (StatusCode::UNAUTHORIZED, [(header::CACHE_CONTROL, "no-store")], Html(login_doc(lang, true))).into_response()
        }
    }
}

async fn logout(State(state): State<Arc<AdminState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (ctx, _) = match form_ctx(&state, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    state.auth.end_session(&ctx.session.id);
    ([(header::SET_COOKIE, auth::expired_cookie())], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping() {
        assert_eq!(super::render::esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(super::render::enc("a b/é"), "a%20b%2F%C3%A9");
    }
}
