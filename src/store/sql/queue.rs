//! The delivery queue: messages and their recipients, claims and their
//! recovery after a stop or an expired lease, delivery attempts, events, and
//! the operator's retry and drop.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Ctx, Dialect, SqlStore, query, query_scalar};
use crate::store::{
    Attempt, Error, Event, Message, MessageKind, MessageState, NewMessage, Recipient, RecipientState, Recovered, Result, Route,
};

pub(super) async fn insert_event(
    c: &Ctx,
    tx: &mut Transaction<'_, Any>,
    id: &str,
    rcpt: Option<&str>,
    at: i64,
    kind: &str,
    detail: &str,
) -> Result<()> {
    query(c.d, "INSERT INTO events (message_id, rcpt, at, kind, detail, instance) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(id)
        .bind(rcpt)
        .bind(at)
        .bind(kind)
        .bind(detail)
        .bind(&c.instance)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_message_tx(c: &Ctx, tx: &mut Transaction<'_, Any>, m: &NewMessage) -> Result<()> {
    query(
        c.d,
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
        query(c.d, "INSERT INTO recipients (message_id, address, state, updated_at) VALUES (?, ?, 'queued', ?) ON CONFLICT DO NOTHING")
            .bind(&m.id)
            .bind(rcpt)
            .bind(m.created_at)
            .execute(&mut **tx)
            .await?;
    }
    insert_event(c, tx, &m.id, None, m.created_at, "received", &m.origin).await?;
    let to = match &m.route {
        Route::Provider(mb) => format!("to provider of mailbox {mb}"),
        Route::Corporate => "to corporate server".to_owned(),
    };
    insert_event(c, tx, &m.id, None, m.created_at, "queued", &to).await?;
    Ok(())
}

async fn record_attempt_tx(c: &Ctx, tx: &mut Transaction<'_, Any>, id: &str, a: &Attempt) -> Result<()> {
    for r in &a.recipients {
        query(c.d, "UPDATE recipients SET state = ?, last_reply = ?, updated_at = ? WHERE message_id = ? AND address = ?")
            .bind(r.state.as_str())
            .bind(&r.reply)
            .bind(a.at)
            .bind(id)
            .bind(&r.address)
            .execute(&mut **tx)
            .await?;
        insert_event(c, tx, id, Some(&r.address), a.at, r.state.as_str(), &format!("relay={} reply={}", a.relay, r.reply)).await?;
    }
    query(c.d, "UPDATE messages SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?")
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
    insert_event(c, tx, id, None, a.at, a.state.as_str(), &detail).await?;
    Ok(())
}

pub(super) fn message_from_row(row: &AnyRow) -> Result<Message> {
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

impl SqlStore {
    pub(super) async fn insert_message(&self, m: &NewMessage) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_message_tx(&self.c, &mut tx, m).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn due_messages(&self, now: i64, limit: u32) -> Result<Vec<Message>> {
        let rows = query(
            self.c.d,
            "SELECT * FROM messages WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub(super) async fn next_due(&self) -> Result<Option<i64>> {
        Ok(query_scalar(self.c.d, "SELECT MIN(next_attempt_at) FROM messages WHERE state = 'queued'").fetch_one(&self.pool).await?)
    }

    pub(super) async fn claim_many(&self, ids: &[String], now: i64, lease_until: i64) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self.c.d {
            // Several instances: rows another instance is claiming right now
            // are skipped, not waited for; the state test makes a claim exclusive.
            Dialect::Postgres => {
                let marks = vec!["?"; ids.len()].join(", ");
                let sql = format!(
                    "UPDATE messages SET state = 'sending', claimed_by = ?, lease_until = ?, updated_at = ?
                     WHERE id IN (SELECT id FROM messages WHERE id IN ({marks}) AND state = 'queued' FOR UPDATE SKIP LOCKED)
                     RETURNING id"
                );
                let mut q = query_scalar::<String>(self.c.d, &sql).bind(&self.c.instance).bind(lease_until).bind(now);
                for id in ids {
                    q = q.bind(id);
                }
                Ok(q.fetch_all(&self.pool).await?)
            }
            // One writer at a time in SQLite: the transaction is the lock.
            Dialect::Sqlite => {
                let mut tx = self.begin().await?;
                let mut claimed = Vec::with_capacity(ids.len());
                for id in ids {
                    let done = query(
                        self.c.d,
                        "UPDATE messages SET state = 'sending', claimed_by = ?, lease_until = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                    )
                    .bind(&self.c.instance)
                    .bind(lease_until)
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
        }
    }

    pub(super) async fn record_attempt(&self, id: &str, a: &Attempt) -> Result<()> {
        let mut tx = self.begin().await?;
        record_attempt_tx(&self.c, &mut tx, id, a).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn record_attempts(&self, batch: &[(String, Attempt)]) -> Result<()> {
        let mut tx = self.begin().await?;
        for (id, a) in batch {
            record_attempt_tx(&self.c, &mut tx, id, a).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn recover_sending(&self, now: i64, own: bool) -> Result<Vec<Recovered>> {
        let mut tx = self.begin().await?;
        let rows = query(
            self.c.d,
            // Our own claims only at start-up: while we live, our deliveries are running.
            "SELECT id, claimed_by FROM messages WHERE state = 'sending'
             AND (claimed_by IS NULL
                  OR (claimed_by = ? AND ? = 1)
                  OR (claimed_by <> ? AND (lease_until IS NULL OR lease_until < ?)))",
        )
        .bind(&self.c.instance)
        .bind(i64::from(own))
        .bind(&self.c.instance)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut recovered = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let holder: Option<String> = row.try_get("claimed_by")?;
            let who = holder.clone().unwrap_or_else(|| "an earlier version".into());
            let detail = if holder.as_deref() == Some(self.c.instance.as_str()) {
                "was being sent when this instance stopped; queued again (a duplicate at the provider is possible)".to_owned()
            } else {
                format!("was being sent by instance {who}, whose lease expired; taken over (a duplicate at the provider is possible)")
            };
            // The state test keeps a message another instance just finished.
            let done = query(
                self.c.d,
                "UPDATE messages SET state = 'queued', next_attempt_at = ?, updated_at = ?, claimed_by = NULL, lease_until = NULL
                 WHERE id = ? AND state = 'sending'",
            )
            .bind(now)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                insert_event(&self.c, &mut tx, &id, None, now, "recovered", &detail).await?;
                recovered.push(Recovered { id, holder });
            }
        }
        tx.commit().await?;
        Ok(recovered)
    }

    pub(super) async fn message(&self, id: &str) -> Result<Option<Message>> {
        let row = query(self.c.d, "SELECT * FROM messages WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(message_from_row).transpose()
    }

    pub(super) async fn pending_recipients(&self, id: &str) -> Result<Vec<String>> {
        Ok(query_scalar(self.c.d, "SELECT address FROM recipients WHERE message_id = ? AND state IN ('queued', 'deferred') ORDER BY rowid")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub(super) async fn recipients(&self, id: &str) -> Result<Vec<Recipient>> {
        let rows = query(self.c.d, "SELECT address, state, last_reply, updated_at FROM recipients WHERE message_id = ? ORDER BY rowid")
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

    pub(super) async fn events(&self, id: &str) -> Result<Vec<Event>> {
        let rows = query(self.c.d, "SELECT at, rcpt, kind, detail, instance FROM events WHERE message_id = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    at: r.try_get("at")?,
                    rcpt: r.try_get("rcpt")?,
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                    instance: r.try_get("instance")?,
                })
            })
            .collect()
    }

    pub(super) async fn add_event(&self, id: &str, rcpt: Option<&str>, at: i64, kind: &str, detail: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_event(&self.c, &mut tx, id, rcpt, at, kind, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn message_ids(&self) -> Result<Vec<String>> {
        Ok(query_scalar(self.c.d, "SELECT id FROM messages").fetch_all(&self.pool).await?)
    }

    pub(super) async fn list_messages(&self, limit: u32) -> Result<Vec<Message>> {
        let rows = query(self.c.d, "SELECT * FROM messages ORDER BY created_at DESC, id DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    pub(super) async fn retry_now(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = query(self.c.d, "UPDATE messages SET next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'queued'")
            .bind(at)
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            insert_event(&self.c, &mut tx, id, None, at, "retry", &format!("retry requested by {who}")).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn drop_message(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done =
            query(self.c.d, "UPDATE messages SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ? AND state = 'queued'")
                .bind(format!("dropped by {who}"))
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 1 {
            query(self.c.d, "UPDATE recipients SET state = 'failed', last_reply = ?, updated_at = ? WHERE message_id = ? AND state IN ('queued', 'deferred')")
                .bind(format!("dropped by {who}"))
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_event(&self.c, &mut tx, id, None, at, "dropped", &format!("dropped by {who}")).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
