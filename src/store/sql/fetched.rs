//! Mail fetched from the providers: the fetched rows (one per mailbox and
//! UIDL), committing one with the receipt's effect on the queue and the
//! messages it injects, marking them deleted, and finding the sent message
//! a receipt is about; the messages a server holds that cannot be fetched
//! (skipped).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::queue::{insert_event, insert_message_tx, message_from_row};
use super::{SqlStore, query, query_scalar};
use crate::store::{FetchedRecord, Message, NewMessage, ReceiptUpdate, Result, Skipped};

fn fetched_from_row(row: &AnyRow) -> Result<FetchedRecord> {
    let size: i64 = row.try_get("size")?;
    let routed: String = row.try_get("routed_to")?;
    Ok(FetchedRecord {
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
        fetched_by: row.try_get("fetched_by")?,
    })
}

impl SqlStore {
    pub(super) async fn fetched_by_uidl(&self, mailbox: &str, uidl: &str) -> Result<Option<FetchedRecord>> {
        let row = query(self.c.d, "SELECT * FROM fetched WHERE mailbox_id = ? AND uidl = ?")
            .bind(mailbox)
            .bind(uidl)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(fetched_from_row).transpose()
    }

    pub(super) async fn fetched_by_message_id(&self, mailbox: &str, message_id: &str) -> Result<Vec<FetchedRecord>> {
        let rows = query(self.c.d, "SELECT * FROM fetched WHERE mailbox_id = ? AND message_id = ? ORDER BY fetched_at, id LIMIT 20")
            .bind(mailbox)
            .bind(message_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(fetched_from_row).collect()
    }

    pub(super) async fn newest_fetched_uidl(&self, mailbox: &str, prefix: &str) -> Result<Option<String>> {
        // substr, not LIKE: a folder name may hold `%` or `_`.
        let len = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        Ok(query_scalar(
            self.c.d,
            "SELECT uidl FROM fetched WHERE mailbox_id = ? AND substr(uidl, 1, ?) = ? ORDER BY fetched_at DESC, id DESC LIMIT 1",
        )
        .bind(mailbox)
        .bind(len)
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub(super) async fn commit_fetched(&self, r: &FetchedRecord, update: Option<&ReceiptUpdate>, injections: &[NewMessage]) -> Result<()> {
        let mut tx = self.begin().await?;
        query(
            self.c.d,
            "INSERT INTO fetched (id, mailbox_id, uidl, fetched_at, size, kind, subject, message_id, riferimento, identificativo, consegna, related_message, routed_to, injection, signature, signer, deleted_at, fetched_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
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
        .bind(&self.c.instance)
        .execute(&mut *tx)
        .await?;
        if let Some(u) = update {
            for (address, state) in &u.recipients {
                query(self.c.d, "UPDATE recipients SET state = ?, updated_at = ? WHERE message_id = ? AND lower(address) = lower(?)")
                    .bind(state.as_str())
                    .bind(r.fetched_at)
                    .bind(&u.message)
                    .bind(address)
                    .execute(&mut *tx)
                    .await?;
                insert_event(
                    &self.c,
                    &mut tx,
                    &u.message,
                    Some(address),
                    r.fetched_at,
                    state.as_str(),
                    &format!("{} (fetched {})", u.event_kind, r.id),
                )
                .await?;
            }
            if let Some(state) = u.message_state {
                query(self.c.d, "UPDATE messages SET state = ?, updated_at = ? WHERE id = ?")
                    .bind(state.as_str())
                    .bind(r.fetched_at)
                    .bind(&u.message)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(pid) = &u.provider_id {
                query(self.c.d, "UPDATE messages SET provider_id = ? WHERE id = ? AND provider_id IS NULL")
                    .bind(pid)
                    .bind(&u.message)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event(&self.c, &mut tx, &u.message, None, r.fetched_at, &u.event_kind, &u.event_detail).await?;
        }
        for m in injections {
            insert_message_tx(&self.c, &mut tx, m).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn mark_fetched_deleted(&self, mailbox: &str, uidls: &[String], at: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        for uidl in uidls {
            query(self.c.d, "UPDATE fetched SET deleted_at = ? WHERE mailbox_id = ? AND uidl = ?")
                .bind(at)
                .bind(mailbox)
                .bind(uidl)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn skip_fetch(&self, s: &Skipped) -> Result<()> {
        query(self.c.d, "INSERT INTO skipped (mailbox_id, uidl, size, reason, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(&s.mailbox_id)
            .bind(&s.uidl)
            .bind(s.size.map(|n| n as i64))
            .bind(&s.reason)
            .bind(s.at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn skipped(&self, mailbox: Option<&str>) -> Result<Vec<Skipped>> {
        let rows = match mailbox {
            Some(m) => {
                query(self.c.d, "SELECT * FROM skipped WHERE mailbox_id = ? ORDER BY at, uidl").bind(m).fetch_all(&self.pool).await?
            }
            None => query(self.c.d, "SELECT * FROM skipped ORDER BY at, mailbox_id, uidl").fetch_all(&self.pool).await?,
        };
        rows.iter()
            .map(|row| {
                let size: Option<i64> = row.try_get("size")?;
                Ok(Skipped {
                    mailbox_id: row.try_get("mailbox_id")?,
                    uidl: row.try_get("uidl")?,
                    size: size.map(|n| n.max(0) as u64),
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    pub(super) async fn unskip(&self, mailbox: &str, uidl: &str) -> Result<bool> {
        let done =
            query(self.c.d, "DELETE FROM skipped WHERE mailbox_id = ? AND uidl = ?").bind(mailbox).bind(uidl).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn find_sent(&self, mailbox: &str, message_ids: &[&str], provider_id: Option<&str>) -> Result<Option<Message>> {
        for id in message_ids {
            let row = query(
                self.c.d,
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
            let row = query(self.c.d, "SELECT * FROM messages WHERE mailbox_id = ? AND route = 'provider' AND provider_id = ? LIMIT 1")
                .bind(mailbox)
                .bind(pid)
                .fetch_optional(&self.pool)
                .await?;
            return row.as_ref().map(message_from_row).transpose();
        }
        Ok(None)
    }

    pub(super) async fn fetched_ids(&self) -> Result<Vec<String>> {
        Ok(query_scalar(self.c.d, "SELECT id FROM fetched").fetch_all(&self.pool).await?)
    }

    pub(super) async fn fetched_for(&self, message: &str) -> Result<Vec<FetchedRecord>> {
        let rows = query(self.c.d, "SELECT * FROM fetched WHERE related_message = ? ORDER BY fetched_at, id")
            .bind(message)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(fetched_from_row).collect()
    }

    pub(super) async fn fetched(&self, id: &str) -> Result<Option<FetchedRecord>> {
        let row = query(self.c.d, "SELECT * FROM fetched WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(fetched_from_row).transpose()
    }
}
