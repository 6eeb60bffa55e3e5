//! SQLite backend: WAL journal, `synchronous = FULL` (a commit survives power
//! loss once it returns), foreign keys on, migrations applied at open.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    Attempt, Error, Event, InboundRecord, ListFilter, ListItem, Message, MessageKind, MessageState, NewMessage, ReceiptUpdate, Recipient,
    RecipientState, Result, Route, Store,
};

/// Schema versions, applied in order, each once (recorded in `schema_version`).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    route TEXT NOT NULL,
    mailbox_id TEXT,
    mail_from TEXT NOT NULL,
    original_sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX messages_due ON messages(state, next_attempt_at);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE TABLE recipients (
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    last_reply TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, address)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    rcpt TEXT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_message ON events(message_id);
"#,
    r#"
ALTER TABLE messages ADD COLUMN provider_id TEXT;
CREATE INDEX messages_provider_id ON messages(provider_id);
CREATE TABLE inbound (
    id TEXT PRIMARY KEY,
    mailbox_id TEXT NOT NULL,
    uidl TEXT NOT NULL,
    fetched_at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT,
    riferimento TEXT,
    identificativo TEXT,
    consegna TEXT,
    related_message TEXT,
    routed_to TEXT NOT NULL,
    deleted_at INTEGER,
    UNIQUE (mailbox_id, uidl)
);
CREATE INDEX inbound_related ON inbound(related_message);
"#,
    r#"
ALTER TABLE inbound ADD COLUMN injection TEXT;
"#,
    // Admin list: newest first without sorting the whole table.
    r#"
CREATE INDEX messages_created ON messages(created_at, id);
CREATE INDEX inbound_fetched ON inbound(fetched_at, id);
"#,
    // Provider signature verdict of fetched messages.
    r#"
ALTER TABLE inbound ADD COLUMN signature TEXT;
ALTER TABLE inbound ADD COLUMN signer TEXT;
"#,
];

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let display = path.display().to_string();
        let open_err = |source| Error::Open { path: display.clone(), source };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(open_err)?;
        let store = Self { pool };
        store.migrate().await.map_err(|e| match e {
            Error::Db(source) => Error::Open { path: display.clone(), source },
            other => other,
        })?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)").execute(&mut *tx).await?;
        let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetch_one(&mut *tx).await?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version > current {
                sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_version (version) VALUES (?)").bind(version).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_event(tx: &mut Transaction<'_, Sqlite>, id: &str, rcpt: Option<&str>, at: i64, kind: &str, detail: &str) -> Result<()> {
    sqlx::query("INSERT INTO events (message_id, rcpt, at, kind, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(id)
        .bind(rcpt)
        .bind(at)
        .bind(kind)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_message_tx(tx: &mut Transaction<'_, Sqlite>, m: &NewMessage) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, kind, route, mailbox_id, mail_from, original_sender, message_id, subject, size, state, attempts, created_at, next_attempt_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
    )
    .bind(&m.id)
    .bind(m.kind.as_str())
    .bind(m.route.kind())
    .bind(m.route.mailbox())
    .bind(&m.mail_from)
    .bind(&m.original_sender)
    .bind(&m.message_id)
    .bind(&m.subject)
    .bind(m.size as i64)
    .bind(m.created_at)
    .bind(m.created_at)
    .bind(m.created_at)
    .execute(&mut **tx)
    .await?;
    for rcpt in &m.rcpts {
        sqlx::query("INSERT OR IGNORE INTO recipients (message_id, address, state, updated_at) VALUES (?, ?, 'queued', ?)")
            .bind(&m.id)
            .bind(rcpt)
            .bind(m.created_at)
            .execute(&mut **tx)
            .await?;
    }
    insert_event(tx, &m.id, None, m.created_at, "received", &m.origin).await?;
    let to = match &m.route {
        Route::Provider(mb) => format!("to provider of mailbox {mb}"),
        Route::Corporate => "to corporate server".to_owned(),
    };
    insert_event(tx, &m.id, None, m.created_at, "queued", &to).await?;
    Ok(())
}

async fn record_attempt_tx(tx: &mut Transaction<'_, Sqlite>, id: &str, a: &Attempt) -> Result<()> {
    for r in &a.recipients {
        sqlx::query("UPDATE recipients SET state = ?, last_reply = ?, updated_at = ? WHERE message_id = ? AND address = ?")
            .bind(r.state.as_str())
            .bind(&r.reply)
            .bind(a.at)
            .bind(id)
            .bind(&r.address)
            .execute(&mut **tx)
            .await?;
        insert_event(tx, id, Some(&r.address), a.at, r.state.as_str(), &format!("relay={} reply={}", a.relay, r.reply)).await?;
    }
    sqlx::query("UPDATE messages SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?")
        .bind(a.state.as_str())
        .bind(a.next_attempt_at)
        .bind(&a.error)
        .bind(a.at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let detail = match (&a.error, a.state) {
        (Some(e), MessageState::Queued) => format!("retry at {} after: {e}", a.next_attempt_at),
        (Some(e), _) => e.clone(),
        (None, _) => format!("relay={}", a.relay),
    };
    insert_event(tx, id, None, a.at, a.state.as_str(), &detail).await?;
    Ok(())
}

fn message_from_row(row: &SqliteRow) -> Result<Message> {
    let route: String = row.try_get("route")?;
    let mailbox: Option<String> = row.try_get("mailbox_id")?;
    let route = match (route.as_str(), mailbox) {
        ("provider", Some(m)) => Route::Provider(m),
        ("corporate", _) => Route::Corporate,
        (other, _) => return Err(Error::BadState(other.to_owned())),
    };
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let size: i64 = row.try_get("size")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Message {
        id: row.try_get("id")?,
        kind: MessageKind::parse(&kind)?,
        route,
        mail_from: row.try_get("mail_from")?,
        original_sender: row.try_get("original_sender")?,
        message_id: row.try_get("message_id")?,
        subject: row.try_get("subject")?,
        size: size.max(0) as u64,
        state: MessageState::parse(&state)?,
        attempts: attempts.max(0) as u32,
        created_at: row.try_get("created_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_message(&self, m: &NewMessage) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_message_tx(&mut tx, m).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_messages(&self, now: i64, limit: u32) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM messages WHERE state = 'queued'").fetch_one(&self.pool).await?)
    }

    async fn claim(&self, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE messages SET state = 'sending', updated_at = ? WHERE id = ? AND state = 'queued'")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_many(&self, ids: &[String], now: i64) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let done = sqlx::query("UPDATE messages SET state = 'sending', updated_at = ? WHERE id = ? AND state = 'queued'")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                claimed.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record_attempt(&self, id: &str, a: &Attempt) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        record_attempt_tx(&mut tx, id, a).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_attempts(&self, batch: &[(String, Attempt)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (id, a) in batch {
            record_attempt_tx(&mut tx, id, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recover_sending(&self, now: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM messages WHERE state = 'sending'").fetch_all(&mut *tx).await?;
        for id in &ids {
            insert_event(&mut tx, id, None, now, "recovered", "was being sent when pecgate stopped; queued again").await?;
        }
        sqlx::query("UPDATE messages SET state = 'queued', next_attempt_at = ?, updated_at = ? WHERE state = 'sending'")
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        let row = sqlx::query("SELECT * FROM messages WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn pending_recipients(&self, id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT address FROM recipients WHERE message_id = ? AND state IN ('queued', 'deferred') ORDER BY rowid")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn recipients(&self, id: &str) -> Result<Vec<Recipient>> {
        let rows = sqlx::query("SELECT address, state, last_reply, updated_at FROM recipients WHERE message_id = ? ORDER BY rowid")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(Recipient {
                    address: r.try_get("address")?,
                    state: RecipientState::parse(&state)?,
                    last_reply: r.try_get("last_reply")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        let rows = sqlx::query("SELECT at, rcpt, kind, detail FROM events WHERE message_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(Event { at: r.try_get("at")?, rcpt: r.try_get("rcpt")?, kind: r.try_get("kind")?, detail: r.try_get("detail")? }))
            .collect()
    }

    async fn add_event(&self, id: &str, rcpt: Option<&str>, at: i64, kind: &str, detail: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, id, rcpt, at, kind, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn message_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM messages").fetch_all(&self.pool).await?)
    }

    async fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM messages GROUP BY state ORDER BY state").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect()
    }

    async fn list_messages(&self, limit: u32) -> Result<Vec<Message>> {
        let rows = sqlx::query("SELECT * FROM messages ORDER BY created_at DESC, id DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS ping (x INTEGER)").execute(&self.pool).await?;
        Ok(())
    }

    async fn inbound_by_uidl(&self, mailbox: &str, uidl: &str) -> Result<Option<InboundRecord>> {
        let row = sqlx::query("SELECT * FROM inbound WHERE mailbox_id = ? AND uidl = ?")
            .bind(mailbox)
            .bind(uidl)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(inbound_from_row).transpose()
    }

    async fn commit_inbound(&self, r: &InboundRecord, update: Option<&ReceiptUpdate>, injections: &[NewMessage]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO inbound (id, mailbox_id, uidl, fetched_at, size, kind, subject, message_id, riferimento, identificativo, consegna, related_message, routed_to, injection, signature, signer, deleted_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        )
        .bind(&r.id)
        .bind(&r.mailbox_id)
        .bind(&r.uidl)
        .bind(r.fetched_at)
        .bind(r.size as i64)
        .bind(&r.kind)
        .bind(&r.subject)
        .bind(&r.message_id)
        .bind(&r.riferimento)
        .bind(&r.identificativo)
        .bind(&r.consegna)
        .bind(&r.related_message)
        .bind(r.routed_to.join(","))
        .bind(&r.injection)
        .bind(&r.signature)
        .bind(&r.signer)
        .execute(&mut *tx)
        .await?;
        if let Some(u) = update {
            for (address, state) in &u.recipients {
                sqlx::query("UPDATE recipients SET state = ?, updated_at = ? WHERE message_id = ? AND lower(address) = lower(?)")
                    .bind(state.as_str())
                    .bind(r.fetched_at)
                    .bind(&u.message)
                    .bind(address)
                    .execute(&mut *tx)
                    .await?;
                insert_event(
                    &mut tx,
                    &u.message,
                    Some(address),
                    r.fetched_at,
                    state.as_str(),
                    &format!("{} (inbound {})", u.event_kind, r.id),
                )
                .await?;
            }
            if let Some(state) = u.message_state {
                sqlx::query("UPDATE messages SET state = ?, updated_at = ? WHERE id = ?")
                    .bind(state.as_str())
                    .bind(r.fetched_at)
                    .bind(&u.message)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(pid) = &u.provider_id {
                sqlx::query("UPDATE messages SET provider_id = ? WHERE id = ? AND provider_id IS NULL")
                    .bind(pid)
                    .bind(&u.message)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event(&mut tx, &u.message, None, r.fetched_at, &u.event_kind, &u.event_detail).await?;
        }
        for m in injections {
            insert_message_tx(&mut tx, m).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_inbound_deleted(&self, mailbox: &str, uidls: &[String], at: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for uidl in uidls {
            sqlx::query("UPDATE inbound SET deleted_at = ? WHERE mailbox_id = ? AND uidl = ?")
                .bind(at)
                .bind(mailbox)
                .bind(uidl)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_sent(&self, mailbox: &str, message_ids: &[&str], provider_id: Option<&str>) -> Result<Option<Message>> {
        for id in message_ids {
            let row = sqlx::query(
                "SELECT * FROM messages WHERE mailbox_id = ? AND route = 'provider' AND message_id = ? ORDER BY created_at DESC LIMIT 1",
            )
            .bind(mailbox)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return message_from_row(&row).map(Some);
            }
        }
        if let Some(pid) = provider_id {
            let row = sqlx::query("SELECT * FROM messages WHERE mailbox_id = ? AND route = 'provider' AND provider_id = ? LIMIT 1")
                .bind(mailbox)
                .bind(pid)
                .fetch_optional(&self.pool)
                .await?;
            return row.as_ref().map(message_from_row).transpose();
        }
        Ok(None)
    }

    async fn retry_now(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE messages SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'")
            .bind(at)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            insert_event(&mut tx, id, None, at, "retry", &format!("retry requested by {who}")).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn drop_message(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE messages SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND state = 'queued'")
            .bind(format!("dropped by {who}"))
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            sqlx::query("UPDATE recipients SET state = 'failed', last_reply = ?, updated_at = ? WHERE message_id = ? AND state IN ('queued', 'deferred')")
                .bind(format!("dropped by {who}"))
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_event(&mut tx, id, None, at, "dropped", &format!("dropped by {who}")).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn awaiting_acceptance(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<Message>> {
        let rows = sqlx::query(
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

    async fn awaiting_delivery(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<(Message, String)>> {
        let rows = sqlx::query(
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

    async fn queue_stats(&self) -> Result<Vec<(String, String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT route, COALESCE(mailbox_id, '-') AS mb, COUNT(*) AS n, MIN(created_at) AS oldest FROM messages
             WHERE state IN ('queued', 'sending') GROUP BY route, mailbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("route")?, r.try_get("mb")?, r.try_get("n")?, r.try_get("oldest")?))).collect()
    }

    async fn recipient_state_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT m.mailbox_id AS mb, r.state AS state, COUNT(*) AS n FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE m.route = 'provider' GROUP BY m.mailbox_id, r.state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("mb")?, r.try_get("state")?, r.try_get("n")?))).collect()
    }

    async fn inbound_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM inbound").fetch_all(&self.pool).await?)
    }

    async fn inbound_for(&self, message: &str) -> Result<Vec<InboundRecord>> {
        let rows = sqlx::query("SELECT * FROM inbound WHERE related_message = ? ORDER BY fetched_at, id")
            .bind(message)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(inbound_from_row).collect()
    }
    async fn list_filtered(&self, f: &ListFilter) -> Result<Vec<ListItem>> {
        let limit = i64::from(f.limit.clamp(1, 1000));
        let like = f.q.as_deref().filter(|q| !q.is_empty()).map(|q| format!("%{}%", escape_like(q)));
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
                   m.original_sender AS sender, (SELECT group_concat(address, ',') FROM (SELECT address FROM recipients r WHERE r.message_id = m.id ORDER BY rowid)) AS rcpts,
                   (SELECT group_concat(state, ',') FROM (SELECT state FROM recipients r WHERE r.message_id = m.id ORDER BY rowid)) AS rstates,
                   m.subject AS subject, m.message_id AS message_id, m.size AS size, m.created_at AS created_at, NULL AS related
                 FROM messages m WHERE {} ORDER BY m.created_at DESC, m.id DESC LIMIT {limit})",
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
                 FROM inbound i WHERE {} ORDER BY i.fetched_at DESC, i.id DESC LIMIT {limit})",
                w.join(" AND ")
            ));
        }
        let sql = format!("SELECT * FROM ({}) ORDER BY created_at DESC, id DESC LIMIT {limit}", branches.join(" UNION ALL "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
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

    async fn inbound(&self, id: &str) -> Result<Option<InboundRecord>> {
        let row = sqlx::query("SELECT * FROM inbound WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(inbound_from_row).transpose()
    }

    async fn last_sends(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT m.mailbox_id AS mb, MAX(e.at) AS at FROM events e JOIN messages m ON m.id = e.message_id
             WHERE e.kind = 'submitted' AND e.rcpt IS NULL AND m.route = 'provider' GROUP BY m.mailbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("mb")?, r.try_get("at")?))).collect()
    }

    async fn waiting_messages(&self, limit: u32) -> Result<Vec<Message>> {
        let rows = sqlx::query("SELECT * FROM messages WHERE state IN ('queued', 'sending') ORDER BY created_at, id LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }
}

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
        w.push(format!("({at} < ? OR ({at} = ? AND {id} < ?))"));
        binds.extend([Bind::I(*c_at), Bind::I(*c_at), Bind::S(c_id.clone())]);
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

fn inbound_from_row(row: &SqliteRow) -> Result<InboundRecord> {
    let size: i64 = row.try_get("size")?;
    let routed: String = row.try_get("routed_to")?;
    Ok(InboundRecord {
        id: row.try_get("id")?,
        mailbox_id: row.try_get("mailbox_id")?,
        uidl: row.try_get("uidl")?,
        fetched_at: row.try_get("fetched_at")?,
        size: size.max(0) as u64,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        message_id: row.try_get("message_id")?,
        riferimento: row.try_get("riferimento")?,
        identificativo: row.try_get("identificativo")?,
        consegna: row.try_get("consegna")?,
        related_message: row.try_get("related_message")?,
        routed_to: routed.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        injection: row.try_get("injection")?,
        signature: row.try_get("signature")?,
        signer: row.try_get("signer")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(id: &str, rcpts: &[&str]) -> NewMessage {
        NewMessage {
            id: id.into(),
            kind: MessageKind::Pec,
            route: Route::Provider("legal".into()),
            mail_from: "legal@pec.corp.it".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            original_sender: "mario@corp.it".into(),
            message_id: format!("{id}@corp.it"),
            subject: "Contratto".into(),
            size: 100,
            created_at: 1_000,
            origin: "smtp from 127.0.0.1".into(),
        }
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn life_cycle_and_recovery() {
        let (dir, s) = store().await;
        s.insert_message(&new_message("Q1", &["a@x.it", "b@x.it"])).await.unwrap();
        assert_eq!(s.due_messages(999, 10).await.unwrap().len(), 0);
        assert_eq!(s.due_messages(1_000, 10).await.unwrap().len(), 1);
        assert!(s.claim("Q1", 1_001).await.unwrap());
        assert!(!s.claim("Q1", 1_001).await.unwrap(), "a claimed message cannot be claimed twice");
        // crash while sending: reopen and recover
        drop(s);
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        assert_eq!(s.recover_sending(2_000).await.unwrap(), 1);
        let m = s.message("Q1").await.unwrap().unwrap();
        assert_eq!(m.state, MessageState::Queued);
        assert!(s.claim("Q1", 2_001).await.unwrap());
        let attempt = Attempt {
            at: 2_002,
            recipients: vec![
                super::super::RecipientOutcome { address: "a@x.it".into(), state: RecipientState::Submitted, reply: "250 ok".into() },
                super::super::RecipientOutcome { address: "b@x.it".into(), state: RecipientState::Deferred, reply: "451 later".into() },
            ],
            state: MessageState::Queued,
            next_attempt_at: 3_000,
            error: Some("451 later".into()),
            relay: "sim:465".into(),
        };
        s.record_attempt("Q1", &attempt).await.unwrap();
        assert_eq!(s.pending_recipients("Q1").await.unwrap(), vec!["b@x.it".to_string()]);
        assert_eq!(s.next_due().await.unwrap(), Some(3_000));
        let m = s.message("Q1").await.unwrap().unwrap();
        assert_eq!((m.state, m.attempts), (MessageState::Queued, 1));
        let kinds: Vec<String> = s.events("Q1").await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["received", "queued", "recovered", "submitted", "deferred", "queued"]);

        // Group commit: several attempts in one transaction.
        s.insert_message(&new_message("Q2", &["c@x.it"])).await.unwrap();
        let done = |rcpt: &str| Attempt {
            at: 4_000,
            recipients: vec![super::super::RecipientOutcome {
                address: rcpt.into(),
                state: RecipientState::Submitted,
                reply: "250 ok".into(),
            }],
            state: MessageState::Submitted,
            next_attempt_at: 4_000,
            error: None,
            relay: "sim:465".into(),
        };
        s.record_attempts(&[("Q1".into(), done("b@x.it")), ("Q2".into(), done("c@x.it"))]).await.unwrap();
        for id in ["Q1", "Q2"] {
            assert_eq!(s.message(id).await.unwrap().unwrap().state, MessageState::Submitted);
            assert!(s.pending_recipients(id).await.unwrap().is_empty());
        }
        assert_eq!(s.claim_many(&["Q1".into(), "Q2".into()], 5_000).await.unwrap(), Vec::<String>::new(), "nothing queued to claim");
    }
}
