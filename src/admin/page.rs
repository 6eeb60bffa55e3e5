//! The admin web page: server-rendered HTML (no client framework, no CDN, no
//! inline script or style, so the CSP can forbid them), Italian by default.
//! Everything that comes from mail is HTML-escaped by [`esc`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AdminState;
use super::api::{self, ApiError, Detail, QueueAction};
use super::auth::{self, Session};
use crate::config::Language;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

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
struct Ctx {
    session: Session,
    lang: Language,
    set_cookie: Option<String>,
}

impl Ctx {
    fn finish(self, mut resp: Response) -> Response {
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
fn context(state: &AdminState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Ctx, Box<Response>> {
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
    Ok(Ctx { session, lang, set_cookie })
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn t(lang: Language, key: &str) -> &'static str {
    let (it, en) = match key {
        "messages" => ("Messaggi", "Messages"),
        "mailboxes" => ("Caselle PEC", "PEC mailboxes"),
        "queue" => ("Coda", "Queue"),
        "logout" => ("Esci", "Log out"),
        "login" => ("Accedi", "Log in"),
        "token" => ("Token di amministrazione", "Admin token"),
        "login_failed" => ("Token non valido.", "Wrong token."),
        "search" => ("Cerca", "Search"),
        "search_hint" => ("Oggetto, indirizzo o Message-ID", "Subject, address or Message-ID"),
        "mailbox" => ("Casella", "Mailbox"),
        "all" => ("Tutte", "All"),
        "direction" => ("Direzione", "Direction"),
        "out" => ("Inviati", "Sent"),
        "in" => ("Ricevuti", "Received"),
        "status" => ("Stato", "Status"),
        "any" => ("Qualsiasi", "Any"),
        "filter" => ("Filtra", "Filter"),
        "date" => ("Data", "Date"),
        "from" => ("Mittente", "From"),
        "to" => ("Destinatari", "Recipients"),
        "subject" => ("Oggetto", "Subject"),
        "next" => ("Pagina successiva", "Next page"),
        "first" => ("Prima pagina", "First page"),
        "no_messages" => ("Nessun messaggio.", "No messages."),
        "original_sender" => ("Mittente originale", "Original sender"),
        "pec_from" => ("Casella PEC mittente", "Sending PEC mailbox"),
        "size" => ("Dimensione", "Size"),
        "created" => ("Ricevuto da pecgate", "Received by pecgate"),
        "timeline" => ("Stato per destinatario", "Status per recipient"),
        "receipts" => ("Ricevute", "Receipts"),
        "download_raw" => ("Scarica il messaggio (.eml)", "Download the message (.eml)"),
        "evidence" => ("Scarica il pacchetto di prova (.zip)", "Download the evidence package (.zip)"),
        "signature" => ("Firma del gestore", "Provider signature"),
        "download" => ("Scarica", "Download"),
        "kind" => ("Tipo", "Type"),
        "time" => ("Ora", "Time"),
        "recipient" => ("Destinatario", "Recipient"),
        "no_receipts" => ("Nessuna ricevuta finora.", "No receipts yet."),
        "events" => ("Eventi del messaggio", "Message events"),
        "address" => ("Indirizzo", "Address"),
        "active" => ("Attiva", "Active"),
        "yes" => ("sì", "yes"),
        "no" => ("no", "no"),
        "last_poll" => ("Ultimo controllo", "Last poll"),
        "last_success" => ("Ultimo controllo riuscito", "Last successful poll"),
        "last_error" => ("Ultimo errore", "Last error"),
        "last_send" => ("Ultimo invio", "Last send"),
        "instances" => ("Istanze di pecgate", "pecgate instances"),
        "instance" => ("Istanza", "Instance"),
        "started" => ("Avviata", "Started"),
        "heartbeat" => ("Ultimo segnale", "Last heartbeat"),
        "leases" => ("Compiti assegnati", "Leases held"),
        "alive" => ("attiva", "alive"),
        "stopped" => ("arrestata", "stopped"),
        "unresponsive" => ("non risponde", "unresponsive"),
        "this_instance" => ("questa", "this one"),
        "queue_size" => ("In coda", "Queued"),
        "pending_receipts" => ("Ricevute attese", "Receipts pending"),
        "never" => ("mai", "never"),
        "no_pop3" => ("nessun POP3", "no POP3"),
        "next_attempt" => ("Prossimo tentativo", "Next attempt"),
        "attempts" => ("Tentativi", "Attempts"),
        "destination" => ("Destinazione", "Destination"),
        "actions" => ("Azioni", "Actions"),
        "retry" => ("Riprova ora", "Retry now"),
        "drop" => ("Scarta", "Drop"),
        "confirm_drop" => (
            "Scartare definitivamente questo messaggio? Il mittente non riceverà altri tentativi.",
            "Drop this message for good? No further attempts will be made.",
        ),
        "queue_empty" => ("La coda è vuota.", "The queue is empty."),
        "retried" => ("Nuovo tentativo richiesto.", "Retry requested."),
        "dropped" => ("Messaggio scartato.", "Message dropped."),
        "csrf" => ("Modulo scaduto o non valido: ricarica la pagina e riprova.", "Form expired or invalid: reload the page and try again."),
        "error" => ("Errore", "Error"),
        "related" => ("Messaggio inviato a cui si riferisce", "Sent message it refers to"),
        "received_record" => ("Messaggio ricevuto dal gestore", "Message fetched from the provider"),
        "fetched" => ("Scaricato", "Fetched"),
        "corporate" => ("server aziendale", "corporate server"),
        "skip" => ("Vai al contenuto", "Skip to content"),
        "other_lang" => ("English", "Italiano"),
        "last_reply" => ("Ultima risposta", "Last reply"),
        "nav" => ("Navigazione", "Navigation"),
        "times_utc" => ("Orari in UTC.", "Times in UTC."),
        _ => ("?", "?"),
    };
    if lang == Language::En { en } else { it }
}

/// Label of a message or recipient state (store names as in the API).
fn state_label(lang: Language, s: &str) -> String {
    let (it, en) = match s {
        "queued" => ("in coda", "queued"),
        "sending" => ("in invio", "sending"),
        "deferred" => ("rinviato", "deferred"),
        "submitted" => ("inviato al gestore", "submitted"),
        "failed" => ("non inviato", "failed"),
        "accepted" => ("accettato", "accepted"),
        "not_accepted" => ("non accettato", "not accepted"),
        "no_receipt_expected" => ("nessuna ricevuta attesa", "no receipt expected"),
        "warned" => ("preavviso di mancata consegna", "delivery warning"),
        "delivered" => ("consegnato", "delivered"),
        "delivery_error" => ("errore di consegna", "delivery error"),
        "received" => ("ricevuto", "received"),
        "retry" => ("nuovo tentativo", "retry"),
        "dropped" => ("scartato", "dropped"),
        "recovered" => ("ripreso dopo un arresto", "recovered after a stop"),
        // PEC kinds are Italian terms in both languages.
        other => return other.to_owned(),
    };
    (if lang == Language::En { en } else { it }).to_owned()
}

/// CSS class of a state: good, bad, warn or wait.
fn tone(s: &str) -> &'static str {
    match s {
        "delivered" | "accepted" | "submitted" | "avvenuta-consegna" | "accettazione" | "posta-certificata" => "good",
        "failed" | "delivery_error" | "not_accepted" | "errore-consegna" | "non-accettazione" | "anomalia" | "dropped" => "bad",
        "warned" | "deferred" | "preavviso-errore-consegna" | "no_receipt_expected" => "warn",
        _ => "wait",
    }
}

fn badge(lang: Language, s: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", tone(s), esc(&state_label(lang, s)))
}

/// Out: the distinct recipient states (what an operator wants to know); in: the PEC kind.
fn list_badges(lang: Language, i: &crate::store::ListItem) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in &i.recipient_states {
        if !seen.contains(&s.as_str()) {
            seen.push(s);
        }
    }
    if seen.is_empty() {
        return badge(lang, &i.state);
    }
    seen.iter().map(|s| badge(lang, s)).collect::<Vec<_>>().join(" ")
}

fn when(lang: Language, ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("<time>{}</time>", esc(&api::utc(ms))),
        None => t(lang, "never").to_owned(),
    }
}

fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{:.1} MB", n as f64 / 1024.0 / 1024.0),
    }
}

/// The whole document around a view's `body`.
fn layout(ctx: &Ctx, active: &str, title: &str, body: &str) -> String {
    let lang = ctx.lang;
    let code = if lang == Language::En { "en" } else { "it" };
    let other = if lang == Language::En { "it" } else { "en" };
    let nav = [("/", "messages"), ("/mailboxes", "mailboxes"), ("/queue", "queue")]
        .iter()
        .map(|(href, key)| {
            let current = if *key == active { " aria-current=\"page\"" } else { "" };
            format!("<a href=\"{href}\"{current}>{}</a>", t(lang, key))
        })
        .collect::<String>();
    let logout = format!(
        "<form method=\"post\" action=\"/logout\" class=\"inline\">{}<button type=\"submit\" class=\"link\">{}</button></form>",
        csrf_field(&ctx.session),
        t(lang, "logout")
    );
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · pecgate</title><link rel=\"stylesheet\" href=\"/assets/app.css\"><script src=\"/assets/app.js\" defer></script></head>\
<body><a class=\"skip\" href=\"#main\">{skip}</a><header><span class=\"brand\">pecgate</span><nav aria-label=\"{navl}\">{nav}</nav>\
<div class=\"tools\"><a href=\"?lang={other}\" lang=\"{other}\">{other_lang}</a>{logout}</div></header>\
<main id=\"main\"><h1>{title}</h1>{body}</main><footer>{utc}</footer></body></html>\n",
        title = esc(title),
        skip = t(lang, "skip"),
        navl = t(lang, "nav"),
        other_lang = t(lang, "other_lang"),
        utc = t(lang, "times_utc"),
    )
}

fn csrf_field(s: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&s.csrf))
}

fn html(ctx: Ctx, code: StatusCode, doc: String) -> Response {
    ctx.finish((code, [(header::CACHE_CONTROL, "no-store")], Html(doc)).into_response())
}

fn error_page(lang: Language, code: StatusCode, message: &str) -> Response {
    let doc = format!(
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main id=\"main\"><h1>{} {}</h1><p>{}</p><p><a href=\"/\">pecgate</a></p></main></body></html>\n",
        if lang == Language::En { "en" } else { "it" },
        code.as_u16(),
        t(lang, "error"),
        code.as_u16(),
        esc(message)
    );
    (code, Html(doc)).into_response()
}

fn api_error(ctx: Ctx, e: ApiError) -> Response {
    let code = e.status();
    let lang = ctx.lang;
    ctx.finish(error_page(lang, code, &e.to_string()))
}

fn select(name: &str, label: &str, current: Option<&str>, options: &[(String, String)]) -> String {
    let mut s =
        format!("<div class=\"field\"><label for=\"f-{name}\">{label}</label><select id=\"f-{name}\" name=\"{name}\" data-autosubmit>");
    for (value, text) in options {
        let sel = if current == Some(value.as_str()) || (current.is_none() && value.is_empty()) { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", esc(value), esc(text));
    }
    s.push_str("</select></div>");
    s
}

const OUT_STATES: &[&str] =
    &["queued", "submitted", "accepted", "delivered", "warned", "delivery_error", "not_accepted", "failed", "no_receipt_expected"];
const IN_KINDS: &[&str] = &[
    "posta-certificata",
    "accettazione",
    "avvenuta-consegna",
    "errore-consegna",
    "preavviso-errore-consegna",
    "non-accettazione",
    "anomalia",
];

async fn list_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = api::query_map(&uri);
    let ctx = match context(&state, &headers, &query) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let lang = ctx.lang;
    let filter = match api::filter_from_query(&query) {
        Ok(f) => f,
        Err(e) => return api_error(ctx, e),
    };
    let (items, next) = match api::list_page(&state, filter.clone()).await {
        Ok(x) => x,
        Err(e) => return api_error(ctx, e),
    };
    let mut body = String::new();
    let mut mailboxes = vec![(String::new(), t(lang, "all").to_owned())];
    mailboxes.extend(state.rt().config.mailboxes.iter().map(|m| (m.id.clone(), format!("{} ({})", m.id, m.address))));
    let directions =
        [(String::new(), t(lang, "all").to_owned()), ("out".into(), t(lang, "out").into()), ("in".into(), t(lang, "in").into())];
    let mut statuses = vec![(String::new(), t(lang, "any").to_owned())];
    statuses.extend(OUT_STATES.iter().map(|s| (s.to_string(), state_label(lang, s))));
    statuses.extend(IN_KINDS.iter().map(|s| (s.to_string(), s.to_string())));
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/\" class=\"filters\" role=\"search\"><div class=\"field grow\"><label for=\"f-q\">{}</label>\
<input type=\"search\" id=\"f-q\" name=\"q\" value=\"{}\" placeholder=\"{}\"></div>{}{}{}<div class=\"field\"><button type=\"submit\">{}</button></div></form>",
        t(lang, "search"),
        esc(filter.q.as_deref().unwrap_or("")),
        t(lang, "search_hint"),
        select("mailbox", t(lang, "mailbox"), filter.mailbox.as_deref(), &mailboxes),
        select("direction", t(lang, "direction"), filter.direction.as_deref(), &directions),
        select("status", t(lang, "status"), filter.status.as_deref(), &statuses),
        t(lang, "filter"),
    );
    if items.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", t(lang, "no_messages"));
    } else {
        let _ = write!(
            body,
            "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"wide\">{}</th><th scope=\"col\" class=\"wide\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(lang, "date"),
            t(lang, "subject"),
            t(lang, "from"),
            t(lang, "to"),
            t(lang, "mailbox"),
            t(lang, "status"),
        );
        for i in &items {
            let dir = if i.direction == "in" { t(lang, "in") } else { t(lang, "out") };
            let subject = if i.subject.is_empty() { "—".to_owned() } else { esc(&i.subject) };
            let _ = write!(
                body,
                "<tr><td data-label=\"{}\">{}</td><td data-label=\"{}\"><a href=\"/messages/{}\">{subject}</a> <span class=\"dir\">{dir}</span></td><td class=\"wide\">{}</td><td class=\"wide\">{}</td><td data-label=\"{}\">{}</td><td data-label=\"{}\">{}</td></tr>",
                t(lang, "date"),
                when(lang, Some(i.created_at)),
                t(lang, "subject"),
                enc(&i.id),
                esc(&i.from),
                esc(&i.recipients.join(", ")),
                t(lang, "mailbox"),
                esc(i.mailbox.as_deref().unwrap_or("")),
                t(lang, "status"),
                list_badges(lang, i),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let mut keep: Vec<String> = ["q", "mailbox", "direction", "status", "since", "until", "limit"]
        .iter()
        .filter_map(|k| query.get(*k).filter(|v| !v.is_empty()).map(|v| format!("{k}={}", enc(v))))
        .collect();
    body.push_str("<nav class=\"pager\" aria-label=\"pagination\">");
    if query.contains_key("cursor") {
        let _ = write!(body, "<a href=\"/?{}\">{}</a>", esc(&keep.join("&")), t(lang, "first"));
    }
    if let Some(c) = next {
        keep.push(format!("cursor={}", enc(&c)));
        let _ = write!(body, "<a href=\"/?{}\" rel=\"next\">{}</a>", esc(&keep.join("&")), t(lang, "next"));
    }
    body.push_str("</nav>");
    let doc = layout(&ctx, "messages", t(lang, "messages"), &body);
    html(ctx, StatusCode::OK, doc)
}

async fn detail_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    let query = api::query_map(&uri);
    let ctx = match context(&state, &headers, &query) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let lang = ctx.lang;
    let detail = match api::load_detail(&state, &id).await {
        Ok(d) => d,
        Err(e) => return api_error(ctx, e),
    };
    let mut body = String::new();
    let title = match detail {
        Detail::Out(v) => {
            let m = &v.message;
            let _ = write!(
                body,
                "<section class=\"card\"><dl class=\"summary\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>\
<dt>Message-ID</dt><dd><code>{}</code></dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>\
<p class=\"actions\"><a class=\"button\" href=\"/api/v1/messages/{id}/raw\">{}</a> <a class=\"button\" href=\"/api/v1/messages/{id}/evidence\">{}</a></p></section>",
                t(lang, "subject"),
                esc(&m.subject),
                t(lang, "original_sender"),
                esc(&m.original_sender),
                t(lang, "pec_from"),
                esc(&m.mail_from),
                esc(&m.message_id),
                t(lang, "size"),
                size(m.size),
                t(lang, "created"),
                when(lang, Some(m.created_at)),
                t(lang, "status"),
                badge(lang, m.state.as_str()),
                t(lang, "mailbox"),
                esc(m.route.mailbox().unwrap_or(t(lang, "corporate"))),
                t(lang, "download_raw"),
                t(lang, "evidence"),
                id = enc(&m.id),
            );
            let _ = write!(body, "<h2>{}</h2><div class=\"recipients\">", t(lang, "timeline"));
            for r in &v.recipients {
                let rr = &r.recipient;
                let _ = write!(
                    body,
                    "<section class=\"card recipient\"><h3>{} {}</h3><ol class=\"timeline\">",
                    esc(&rr.address),
                    badge(lang, rr.state.as_str())
                );
                for e in &r.events {
                    let _ = write!(
                        body,
                        "<li class=\"{}\"><time>{}</time> <strong>{}</strong> <span class=\"detail\">{}</span></li>",
                        tone(&e.kind),
                        esc(&api::utc(e.at)),
                        esc(&state_label(lang, &e.kind)),
                        esc(&e.detail)
                    );
                }
                body.push_str("</ol>");
                if let Some(reply) = &rr.last_reply {
                    let _ = write!(body, "<p class=\"detail\">{}: <code>{}</code></p>", t(lang, "last_reply"), esc(reply));
                }
                body.push_str("</section>");
            }
            body.push_str("</div>");
            let _ = write!(body, "<h2>{}</h2>", t(lang, "receipts"));
            if v.receipts.is_empty() {
                let _ = write!(body, "<p class=\"empty\">{}</p>", t(lang, "no_receipts"));
            } else {
                let _ = write!(
                    body,
                    "<div class=\"table-wrap\"><table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
                    t(lang, "kind"),
                    t(lang, "time"),
                    t(lang, "recipient"),
                    t(lang, "signature"),
                    t(lang, "download")
                );
                for r in &v.receipts {
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td><span title=\"{}\">{}</span></td><td><a href=\"/api/v1/receipts/{}/raw\">.eml ({})</a></td></tr>",
                        badge(lang, &r.kind),
                        when(lang, Some(r.fetched_at)),
                        esc(r.consegna.as_deref().unwrap_or("")),
                        esc(r.signer.as_deref().unwrap_or("")),
                        esc(r.signature.as_deref().unwrap_or("-")),
                        enc(&r.id),
                        size(r.size)
                    );
                }
                body.push_str("</tbody></table></div>");
            }
            let _ = write!(body, "<h2>{}</h2><ol class=\"timeline\">", t(lang, "events"));
            for e in &v.events {
                let _ = write!(
                    body,
                    "<li class=\"{}\"><time>{}</time> <strong>{}</strong> <span class=\"detail\">{}</span>{}</li>",
                    tone(&e.kind),
                    esc(&api::utc(e.at)),
                    esc(&state_label(lang, &e.kind)),
                    esc(&e.detail),
                    e.instance.as_deref().map(|i| format!(" <span class=\"muted\">@{}</span>", esc(i))).unwrap_or_default()
                );
            }
            body.push_str("</ol>");
            if m.subject.is_empty() { m.id.clone() } else { m.subject.clone() }
        }
        Detail::In(r) => {
            let related = r
                .related_message
                .as_deref()
                .map(|m| format!("<dt>{}</dt><dd><a href=\"/messages/{}\">{}</a></dd>", t(lang, "related"), enc(m), esc(m)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<section class=\"card\"><p>{}</p><dl class=\"summary\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>Message-ID</dt><dd><code>{}</code></dd>\
<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd>{related}</dl><p class=\"actions\"><a class=\"button\" href=\"/api/v1/receipts/{}/raw\">{}</a></p></section>",
                t(lang, "received_record"),
                t(lang, "subject"),
                esc(&r.subject),
                t(lang, "kind"),
                badge(lang, &r.kind),
                t(lang, "mailbox"),
                esc(&r.mailbox_id),
                esc(r.message_id.as_deref().unwrap_or("")),
                t(lang, "recipient"),
                esc(r.consegna.as_deref().unwrap_or("")),
                t(lang, "fetched"),
                match &r.fetched_by {
                    Some(by) => format!("{} <span class=\"muted\">@{}</span>", when(lang, Some(r.fetched_at)), esc(by)),
                    None => when(lang, Some(r.fetched_at)),
                },
                t(lang, "size"),
                size(r.size),
                enc(&r.id),
                t(lang, "download_raw"),
            );
            if r.subject.is_empty() { r.id.clone() } else { r.subject.clone() }
        }
    };
    let doc = layout(&ctx, "messages", &title, &body);
    html(ctx, StatusCode::OK, doc)
}

async fn mailboxes_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = api::query_map(&uri);
    let ctx = match context(&state, &headers, &query) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let lang = ctx.lang;
    let views = match api::mailbox_views(&state).await {
        Ok(v) => v,
        Err(e) => return api_error(ctx, e),
    };
    let mut body = String::from("<div class=\"cards\">");
    for m in &views {
        let health = match (&m.last_error, m.active, m.pop3) {
            (_, false, _) => "wait",
            (Some(_), _, _) => "bad",
            (None, _, true) if m.last_success.is_some() => "good",
            _ => "wait",
        };
        let error = m
            .last_error
            .as_deref()
            .map(|e| format!("<dt>{}</dt><dd class=\"bad-text\">{}</dd>", t(lang, "last_error"), esc(e)))
            .unwrap_or_default();
        let poll = if m.pop3 { when(lang, m.last_poll) } else { t(lang, "no_pop3").to_owned() };
        let _ = write!(
            body,
            "<section class=\"card mailbox {health}\"><h2>{} <span class=\"muted\">{}</span></h2><dl class=\"summary\"><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{poll}</dd><dt>{}</dt><dd>{}</dd>{error}\
<dt>{}</dt><dd>{}</dd><dt>{}</dt><dd><a href=\"/queue\">{}</a></dd><dt>{}</dt><dd>{}</dd></dl></section>",
            esc(&m.id),
            esc(&m.address),
            t(lang, "active"),
            if m.active { t(lang, "yes") } else { t(lang, "no") },
            t(lang, "last_poll"),
            t(lang, "last_success"),
            when(lang, m.last_success),
            t(lang, "last_send"),
            when(lang, m.last_send),
            t(lang, "queue_size"),
            m.queue_size,
            t(lang, "pending_receipts"),
            m.pending_receipts,
        );
    }
    body.push_str("</div>");
    match api::cluster_view(&state).await {
        Ok(c) => body.push_str(&instances_table(lang, &c)),
        Err(e) => return api_error(ctx, e),
    }
    let doc = layout(&ctx, "mailboxes", t(lang, "mailboxes"), &body);
    html(ctx, StatusCode::OK, doc)
}

/// Which instances share the store, whether they beat, and what each holds.
fn instances_table(lang: Language, c: &api::ClusterView) -> String {
    let mut out = format!(
        "<h2>{}</h2><div class=\"table-wrap\"><table class=\"instances\"><thead><tr><th>{}</th><th>{}</th><th>SMTP</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t(lang, "instances"),
        t(lang, "instance"),
        t(lang, "status"),
        t(lang, "started"),
        t(lang, "heartbeat"),
        t(lang, "leases"),
    );
    for i in &c.instances {
        let (label, tone) = match i.status {
            "alive" => (t(lang, "alive"), "good"),
            "stopped" => (t(lang, "stopped"), "wait"),
            _ => (t(lang, "unresponsive"), "bad"),
        };
        let _ = write!(
            out,
            "<tr><td>{}{}</td><td><span class=\"badge {tone}\">{label}</span></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.info.id),
            if i.this { format!(" <span class=\"muted\">({})</span>", t(lang, "this_instance")) } else { String::new() },
            esc(&i.info.smtp),
            when(lang, Some(i.info.started_at)),
            when(lang, Some(i.info.heartbeat_at)),
            esc(&i.leases.join(", ")),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

async fn queue_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = api::query_map(&uri);
    let ctx = match context(&state, &headers, &query) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let lang = ctx.lang;
    let waiting = match state.store.waiting_messages(500).await {
        Ok(w) => w,
        Err(e) => return api_error(ctx, e.into()),
    };
    let mut body = String::new();
    match query.get("done").map(String::as_str) {
        Some("retried") => {
            let _ = write!(body, "<p class=\"notice good\" role=\"status\">{}</p>", t(lang, "retried"));
        }
        Some("dropped") => {
            let _ = write!(body, "<p class=\"notice good\" role=\"status\">{}</p>", t(lang, "dropped"));
        }
        _ => {}
    }
    if waiting.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", t(lang, "queue_empty"));
    } else {
        let _ = write!(
            body,
            "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\" class=\"wide\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
            t(lang, "date"),
            t(lang, "subject"),
            t(lang, "destination"),
            t(lang, "next_attempt"),
            t(lang, "last_error"),
            t(lang, "actions"),
        );
        for m in &waiting {
            let dest = match m.route.mailbox() {
                Some(mb) => format!("PEC {}", esc(mb)),
                None => t(lang, "corporate").to_owned(),
            };
            let id = enc(&m.id);
            let csrf = csrf_field(&ctx.session);
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"/messages/{id}\">{}</a> {}</td><td>{dest}</td><td>{} ({} {})</td><td class=\"wide detail\">{}</td>\
<td class=\"row-actions\"><form method=\"post\" action=\"/queue/{id}/retry\">{csrf}<button type=\"submit\">{}</button></form>\
<form method=\"post\" action=\"/queue/{id}/drop\" data-confirm=\"{}\">{csrf}<button type=\"submit\" class=\"danger\">{}</button></form></td></tr>",
                when(lang, Some(m.created_at)),
                esc(if m.subject.is_empty() { &m.id } else { &m.subject }),
                badge(lang, m.state.as_str()),
                when(lang, Some(m.next_attempt_at)),
                m.attempts,
                t(lang, "attempts").to_lowercase(),
                esc(m.last_error.as_deref().unwrap_or("")),
                t(lang, "retry"),
                esc(t(lang, "confirm_drop")),
                t(lang, "drop"),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let doc = layout(&ctx, "queue", t(lang, "queue"), &body);
    html(ctx, StatusCode::OK, doc)
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
    Ok((Ctx { session, lang, set_cookie: None }, form))
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

/// Exempt from CSRF (there is no session yet); it needs the token itself.
async fn login_submit(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = api::form_pairs(&String::from_utf8_lossy(&body)).into_iter().collect();
    let lang = state.rt().config.admin.language;
    let given = form.get("token").map(String::as_str).unwrap_or("");
    if state.auth.is_open() || (!given.is_empty() && state.auth.token_matches(given)) {
        return match state.auth.create_session(state.clock.now_ms(), None) {
            Ok(s) => {
                tracing::info!("admin page login");
                ([(header::SET_COOKIE, auth::session_cookie(&s.id))], Redirect::to("/")).into_response()
            }
            Err(e) => error_page(lang, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    tracing::warn!("admin page login with a wrong token");
    (StatusCode::UNAUTHORIZED, [(header::CACHE_CONTROL, "no-store")], Html(login_doc(lang, true))).into_response()
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
        assert_eq!(super::esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(super::enc("a b/é"), "a%20b%2F%C3%A9");
    }
}
