//! The users table of the mailboxes page: per mailbox, who holds which
//! right and where it comes from, and the directory's refresh state.

use std::fmt::Write as _;

use super::render::{esc, when};
use super::text::t;
use crate::admin::directory::DirectoryView;
use crate::config::Language;
use crate::directory::Source;

pub(super) fn users_section(lang: Language, view: &DirectoryView) -> String {
    let d = &view.directory;
    let mut out = format!("<h2>{}</h2><dl class=\"summary\"><dt>{}</dt><dd>{}", t(lang, "users"), t(lang, "directory"), esc(d.kind));
    if let Some(url) = &d.url {
        let _ = write!(out, " <code>{}</code>", esc(url));
    }
    out.push_str("</dd>");
    if d.kind != "static" {
        let state = if d.up { t(lang, "directory_up") } else { t(lang, "directory_down") };
        let _ = write!(
            out,
            "<dt>{}</dt><dd class=\"{}\">{state}</dd><dt>{}</dt><dd>{}</dd>",
            t(lang, "state"),
            if d.up { "" } else { "bad-text" },
            t(lang, "last_refresh"),
            when(lang, d.last_success_ms),
        );
        if let Some(e) = &d.last_error {
            let _ = write!(out, "<dt>{}</dt><dd class=\"bad-text\">{}</dd>", t(lang, "last_error"), esc(e));
        }
    }
    out.push_str("</dl>");
    let _ = write!(
        out,
        "<div class=\"table-wrap\"><table class=\"users\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t(lang, "mailbox"),
        t(lang, "user"),
        t(lang, "right"),
        t(lang, "granted_by"),
    );
    for m in &view.mailboxes {
        if let Some(e) = &m.error {
            let _ = write!(out, "<tr><td>{}</td><td colspan=\"3\" class=\"bad-text\">{}</td></tr>", esc(&m.id), esc(e));
        }
        for u in &m.users {
            for (right, source) in &u.sources {
                let from = match source {
                    Source::Config => t(lang, "from_config").to_owned(),
                    Source::Group(g) => format!("<code>{}</code>", esc(g)),
                };
                let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{right}</td><td>{from}</td></tr>", esc(&m.id), esc(&u.address));
            }
        }
    }
    out.push_str("</tbody></table></div>");
    out
}
