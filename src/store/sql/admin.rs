//! What operators and the watchdog read: the admin list with its filters and
//! search, the messages still waiting (to be sent, for acceptance, for
//! delivery), and the queue's counts and statistics.

use sqlx::Row;

use super::queue::message_from_row;
use super::{Dialect, SqlStore, query};
use crate::store::{ListFilter, ListItem, Message, Result};

/// A value bound to a dynamically built query.
enum Bind {
    S(String),
    I(i64),
}

/// Time window and cursor conditions of the admin list.
fn push_range(w: &mut Vec<String>, binds: &mut Vec<Bind>, at: &str, id: &str, f: &ListFilter) {
    if let Some(since) = f.since {
        w.push(format!("{at} >= ?"));
        binds.push(Bind::I(since));
    }
    if let Some(until) = f.until {
        w.push(format!("{at} < ?"));
        binds.push(Bind::I(until));
    }
    if let Some((c_at, c_id)) = &f.after {
        // A row value, so that both backends start the index walk at the cursor.
        w.push(format!("({at}, {id}) < (?, ?)"));
        binds.extend([Bind::I(*c_at), Bind::S(c_id.clone())]);
    }
}

/// So that `%`, `_` and `\` typed in a search match themselves (LIKE ... ESCAPE '\').
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An FTS5 phrase: the query as one string (its operators and quotes are text).
fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// Searches of fewer characters have no trigram: they scan, as before.
const MIN_INDEXED_CHARS: usize = 3;

impl SqlStore {
    pub(super) async fn list_filtered(&self, f: &ListFilter) -> Result<Vec<ListItem>> {
        let limit = i64::from(f.limit.clamp(1, 1000));
        let q = f.q.as_deref().filter(|q| !q.is_empty());
        let like = q.map(|q| format!("%{}%", escape_like(q)));
        // The search index gives candidates; the LIKE below decides, as it always did.
        let indexed = q.filter(|q| q.chars().count() >= MIN_INDEXED_CHARS);
        let mut binds: Vec<Bind> = Vec::new();
        let mut branches = Vec::new();
        if f.direction.as_deref() != Some("in") {
            let mut w = vec!["m.kind = 'pec'".to_owned(), "m.route = 'provider'".to_owned()];
            if let Some(mb) = &f.mailbox {
                w.push("m.mailbox_id = ?".into());
                binds.push(Bind::S(mb.clone()));
            }
            if let Some(st) = &f.status {
                w.push("(m.state = ? OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.state = ?))".into());
                binds.extend([Bind::S(st.clone()), Bind::S(st.clone())]);
            }
            if let (Some(q), Some(l)) = (indexed, &like) {
                match self.c.d {
                    Dialect::Sqlite => {
                        w.push(
                            "m.id IN (SELECT id FROM messages_search WHERE messages_search MATCH ?
                              UNION ALL SELECT message_id FROM recipients_search WHERE recipients_search MATCH ?)"
                                .into(),
                        );
                        binds.extend([Bind::S(fts_phrase(q)), Bind::S(fts_phrase(q))]);
                    }
                    // The expression of the pg_trgm index (schema.rs).
                    Dialect::Postgres => {
                        w.push(
                            "m.id IN (SELECT id FROM messages
                                WHERE (subject || E'\\n' || original_sender || E'\\n' || mail_from || E'\\n' || message_id) LIKE ? ESCAPE '\\'
                              UNION ALL SELECT message_id FROM recipients WHERE address LIKE ? ESCAPE '\\')"
                                .into(),
                        );
                        binds.extend([Bind::S(l.clone()), Bind::S(l.clone())]);
                    }
                }
            }
            if let Some(l) = &like {
                w.push(
                    "(m.subject LIKE ? ESCAPE '\\' OR m.original_sender LIKE ? ESCAPE '\\' OR m.mail_from LIKE ? ESCAPE '\\'
                      OR m.message_id LIKE ? ESCAPE '\\'
                      OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.address LIKE ? ESCAPE '\\'))"
                        .into(),
                );
                binds.extend((0..5).map(|_| Bind::S(l.clone())));
            }
            push_range(&mut w, &mut binds, "m.created_at", "m.id", f);
            branches.push(format!(
                "SELECT * FROM (SELECT m.id AS id, 'out' AS direction, m.mailbox_id AS mailbox, m.kind AS kind, m.state AS state,
                   m.original_sender AS sender, (SELECT group_concat(address, ',') FROM (SELECT address FROM recipients r WHERE r.message_id = m.id ORDER BY rowid) AS ra) AS rcpts,
                   (SELECT group_concat(state, ',') FROM (SELECT state FROM recipients r WHERE r.message_id = m.id ORDER BY rowid) AS rs) AS rstates,
                   m.subject AS subject, m.message_id AS message_id, m.size AS size, m.created_at AS created_at, NULL AS related
                 FROM messages m WHERE {} ORDER BY m.created_at DESC, m.id DESC LIMIT {limit}) AS o",
                w.join(" AND ")
            ));
        }
        if f.direction.as_deref() != Some("out") {
            let mut w = vec!["1 = 1".to_owned()];
            if let Some(mb) = &f.mailbox {
                w.push("i.mailbox_id = ?".into());
                binds.push(Bind::S(mb.clone()));
            }
            if let Some(st) = &f.status {
                w.push("i.kind = ?".into());
                binds.push(Bind::S(st.clone()));
            }
            if let (Some(q), Some(l)) = (indexed, &like) {
                match self.c.d {
                    Dialect::Sqlite => {
                        w.push("i.id IN (SELECT id FROM fetched_search WHERE fetched_search MATCH ?)".into());
                        binds.push(Bind::S(fts_phrase(q)));
                    }
                    Dialect::Postgres => {
                        w.push(
                            "(i.subject || E'\\n' || COALESCE(i.message_id, '') || E'\\n' || COALESCE(i.consegna, '') || E'\\n'
                              || COALESCE(i.riferimento, '') || E'\\n' || COALESCE(i.identificativo, '')) LIKE ? ESCAPE '\\'"
                                .into(),
                        );
                        binds.push(Bind::S(l.clone()));
                    }
                }
            }
            if let Some(l) = &like {
                w.push(
                    "(i.subject LIKE ? ESCAPE '\\' OR i.message_id LIKE ? ESCAPE '\\' OR i.consegna LIKE ? ESCAPE '\\'
                      OR i.riferimento LIKE ? ESCAPE '\\' OR i.identificativo LIKE ? ESCAPE '\\')"
                        .into(),
                );
                binds.extend((0..5).map(|_| Bind::S(l.clone())));
            }
            push_range(&mut w, &mut binds, "i.fetched_at", "i.id", f);
            branches.push(format!(
                "SELECT * FROM (SELECT i.id AS id, 'in' AS direction, i.mailbox_id AS mailbox, i.kind AS kind, i.kind AS state,
                   '' AS sender, i.consegna AS rcpts, NULL AS rstates, i.subject AS subject, i.message_id AS message_id, i.size AS size,
                   i.fetched_at AS created_at, i.related_message AS related
                 FROM fetched i WHERE {} ORDER BY i.fetched_at DESC, i.id DESC LIMIT {limit}) AS n",
                w.join(" AND ")
            ));
        }
        let sql = format!("SELECT * FROM ({}) AS u ORDER BY created_at DESC, id DESC LIMIT {limit}", branches.join(" UNION ALL "));
        let mut query = query(self.c.d, &sql);
        for b in binds {
            query = match b {
                Bind::S(s) => query.bind(s),
                Bind::I(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let rcpts: Option<String> = r.try_get("rcpts")?;
                let states: Option<String> = r.try_get("rstates")?;
                let size: i64 = r.try_get("size")?;
                Ok(ListItem {
                    id: r.try_get("id")?,
                    direction: r.try_get("direction")?,
                    mailbox: r.try_get("mailbox")?,
                    kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    from: r.try_get("sender")?,
                    recipients: rcpts.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                    recipient_states: states.unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                    subject: r.try_get("subject")?,
                    message_id: r.try_get("message_id")?,
                    size: size.max(0) as u64,
                    created_at: r.try_get("created_at")?,
                    related_message: r.try_get("related")?,
                })
            })
            .collect()
    }

    pub(super) async fn waiting_messages(&self, limit: u32) -> Result<Vec<Message>> {
        let rows = query(self.c.d, "SELECT * FROM messages WHERE state IN ('queued', 'sending') ORDER BY created_at, id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub(super) async fn awaiting_acceptance(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<Message>> {
        let rows = query(
            self.c.d,
            "SELECT m.* FROM messages m WHERE m.state = 'submitted' AND m.route = 'provider' AND m.kind = 'pec' AND m.updated_at < ?
             AND (? = 0 OR NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.kind = ?))
             ORDER BY m.updated_at LIMIT 1000",
        )
        .bind(before)
        .bind(unnotified as i64)
        .bind(notice_kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub(super) async fn awaiting_delivery(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<(Message, String)>> {
        let rows = query(
            self.c.d,
            "SELECT m.*, r.address AS rcpt FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.state = 'accepted' AND m.route = 'provider' AND m.kind = 'pec' AND r.updated_at < ?
             AND (? = 0 OR NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id AND e.rcpt = r.address AND e.kind = ?))
             ORDER BY r.updated_at LIMIT 1000",
        )
        .bind(before)
        .bind(unnotified as i64)
        .bind(notice_kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((message_from_row(r)?, r.try_get("rcpt")?))).collect()
    }

    pub(super) async fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows = query(self.c.d, "SELECT state, COUNT(*) AS n FROM messages GROUP BY state ORDER BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }

    pub(super) async fn queue_stats(&self) -> Result<Vec<(String, String, i64, i64)>> {
        let rows = query(
            self.c.d,
            "SELECT route, COALESCE(mailbox_id, '-') AS mb, COUNT(*) AS n, MIN(created_at) AS oldest FROM messages
             WHERE state IN ('queued', 'sending') GROUP BY route, mailbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("route")?, r.try_get("mb")?, r.try_get("n")?, r.try_get("oldest")?))).collect()
    }

    pub(super) async fn recipient_state_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let sql = match self.c.d {
            // Kept by triggers (schema.rs).
            Dialect::Sqlite => "SELECT mailbox_id AS mb, state, n FROM recipient_counts WHERE n > 0 ORDER BY mailbox_id, state",
            // Counter rows shared by every instance would be hot rows locked
            // in varying order by concurrent receipts (deadlocks): counted here.
            Dialect::Postgres => {
                "SELECT m.mailbox_id AS mb, r.state AS state, COUNT(*) AS n FROM recipients r JOIN messages m ON m.id = r.message_id
                 WHERE m.route = 'provider' GROUP BY m.mailbox_id, r.state"
            }
        };
        let rows = query(self.c.d, sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("mb")?, r.try_get("state")?, r.try_get("n")?))).collect()
    }

    pub(super) async fn last_sends(&self) -> Result<Vec<(String, i64)>> {
        let rows = query(
            self.c.d,
            "SELECT m.mailbox_id AS mb, MAX(e.at) AS at FROM events e JOIN messages m ON m.id = e.message_id
             WHERE e.kind = 'submitted' AND e.rcpt IS NULL AND m.route = 'provider' GROUP BY m.mailbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("mb")?, r.try_get("at")?))).collect()
    }
}
