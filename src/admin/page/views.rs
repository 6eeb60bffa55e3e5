//! The read-only views: message list, message detail, mailboxes, queue.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use super::context;
use super::render::{api_error, badge, csrf_field, enc, esc, html, layout, select, size, when};
use super::text::{state_label, t, tone};
use crate::admin::AdminState;
use crate::admin::api::{self, Detail};
use crate::config::Language;

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

pub(super) async fn list_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
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
                // Fetched records keep their PEC kind, which says more than "received".
                badge(lang, if i.direction == "in" { &i.state } else { api::item_display_state(i) }),
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

pub(super) async fn detail_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
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
                badge(lang, v.display_state),
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

pub(super) async fn mailboxes_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
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
        let health = match (&m.last_error, m.active, m.pop3 || m.imap) {
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
        let poll = match (m.pop3 || m.imap, m.fetch_mode) {
            (false, _) => t(lang, "no_pop3").to_owned(),
            (true, Some("idling")) => format!("{} ({})", when(lang, m.last_poll), t(lang, "idling")),
            (true, _) => when(lang, m.last_poll),
        };
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
    match state.store.skipped(None).await {
        Ok(list) => body.push_str(&skipped_table(lang, &list)),
        Err(e) => return api_error(ctx, e.into()),
    }
    body.push_str(&super::users::users_section(lang, &crate::admin::directory::directory_view(&state).await));
    match api::cluster_view(&state).await {
        Ok(c) => body.push_str(&instances_table(lang, &c)),
        Err(e) => return api_error(ctx, e),
    }
    let doc = layout(&ctx, "mailboxes", t(lang, "mailboxes"), &body);
    html(ctx, StatusCode::OK, doc)
}

/// Fetched messages pecgate left on the server, with the command that takes one back.
fn skipped_table(lang: Language, list: &[crate::store::Skipped]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<h2>{}</h2><p>{} <code>pecgate fetch --config FILE --mailbox ID --retry UIDL</code></p><div class=\"table-wrap\"><table class=\"skipped\"><thead><tr><th>{}</th><th>UIDL</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t(lang, "skipped"),
        t(lang, "skipped_help"),
        t(lang, "mailbox"),
        t(lang, "size"),
        t(lang, "reason"),
        t(lang, "since"),
    );
    for s in list {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.mailbox_id),
            esc(&s.uidl),
            s.size.map(size).unwrap_or_default(),
            esc(&s.reason),
            when(lang, Some(s.at)),
        );
    }
    out.push_str("</tbody></table></div>");
    out
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

pub(super) async fn queue_view(State(state): State<Arc<AdminState>>, headers: HeaderMap, uri: Uri) -> Response {
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
    if ctx.read_only {
        let _ = write!(body, "<p class=\"notice warn\" role=\"status\">{}</p>", t(lang, "read_only"));
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
            let actions = if ctx.read_only {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/queue/{id}/retry\">{csrf}<button type=\"submit\">{}</button></form>\
<form method=\"post\" action=\"/queue/{id}/drop\" data-confirm=\"{}\">{csrf}<button type=\"submit\" class=\"danger\">{}</button></form>",
                    t(lang, "retry"),
                    esc(t(lang, "confirm_drop")),
                    t(lang, "drop"),
                )
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"/messages/{id}\">{}</a> {}</td><td>{dest}</td><td>{} ({} {})</td><td class=\"wide detail\">{}</td>\
<td class=\"row-actions\">{actions}</td></tr>",
                when(lang, Some(m.created_at)),
                esc(if m.subject.is_empty() { &m.id } else { &m.subject }),
                badge(lang, m.state.as_str()),
                when(lang, Some(m.next_attempt_at)),
                m.attempts,
                t(lang, "attempts").to_lowercase(),
                esc(m.last_error.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    let doc = layout(&ctx, "queue", t(lang, "queue"), &body);
    html(ctx, StatusCode::OK, doc)
}
