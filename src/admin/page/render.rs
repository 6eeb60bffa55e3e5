//! HTML building blocks shared by the views: escaping, badges, times, the
//! layout around every view and the error page.

use std::fmt::Write as _;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Ctx;
use super::text::{state_label, t, tone};
use crate::admin::api::{self, ApiError};
use crate::admin::auth::Session;
use crate::config::Language;

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
pub(super) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

pub(super) fn badge(lang: Language, s: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", tone(s), esc(&state_label(lang, s)))
}

pub(super) fn when(lang: Language, ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("<time>{}</time>", esc(&api::utc(ms))),
        None => t(lang, "never").to_owned(),
    }
}

pub(super) fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{:.1} MB", n as f64 / 1024.0 / 1024.0),
    }
}

/// The whole document around a view's `body`.
pub(super) fn layout(ctx: &Ctx, active: &str, title: &str, body: &str) -> String {
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
    let logout = if ctx.read_only {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/logout\" class=\"inline\">{}<button type=\"submit\" class=\"link\">{}</button></form>",
            csrf_field(&ctx.session),
            t(lang, "logout")
        )
    };
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

pub(super) fn csrf_field(s: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&s.csrf))
}

pub(super) fn html(ctx: Ctx, code: StatusCode, doc: String) -> Response {
    ctx.finish((code, [(header::CACHE_CONTROL, "no-store")], Html(doc)).into_response())
}

pub(crate) fn error_page(lang: Language, code: StatusCode, message: &str) -> Response {
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

pub(super) fn api_error(ctx: Ctx, e: ApiError) -> Response {
    let code = e.status();
    let lang = ctx.lang;
    ctx.finish(error_page(lang, code, &e.to_string()))
}

pub(super) fn select(name: &str, label: &str, current: Option<&str>, options: &[(String, String)]) -> String {
    let mut s =
        format!("<div class=\"field\"><label for=\"f-{name}\">{label}</label><select id=\"f-{name}\" name=\"{name}\" data-autosubmit>");
    for (value, text) in options {
        let sel = if current == Some(value.as_str()) || (current.is_none() && value.is_empty()) { " selected" } else { "" };
        let _ = write!(s, "<option value=\"{}\"{sel}>{}</option>", esc(value), esc(text));
    }
    s.push_str("</select></div>");
    s
}
