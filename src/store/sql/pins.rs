//! Sending PINs (hashes only), the wrong PINs of the lockout, and alarms told once.

use sqlx::Row;

use super::{SqlStore, query, query_scalar};
use crate::store::{PinEntry, Result};

fn norm(user: &str) -> String {
    user.trim().to_ascii_lowercase()
}

impl SqlStore {
    pub(super) async fn set_pin(&self, mailbox: &str, user: &str, phc: &str, at: i64) -> Result<()> {
        let user = norm(user);
        let mut tx = self.begin().await?;
        query(
            self.c.d,
            "INSERT INTO pins (mailbox_id, user_address, hash, set_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (mailbox_id, user_address) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
        )
        .bind(mailbox)
        .bind(&user)
        .bind(phc)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        query(self.c.d, "DELETE FROM pin_failures WHERE mailbox_id = ? AND user_address = ?")
            .bind(mailbox)
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn remove_pin(&self, mailbox: &str, user: &str) -> Result<bool> {
        let done = query(self.c.d, "DELETE FROM pins WHERE mailbox_id = ? AND user_address = ?")
            .bind(mailbox)
            .bind(norm(user))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn pin_hash(&self, mailbox: &str, user: &str) -> Result<Option<String>> {
        Ok(query_scalar(self.c.d, "SELECT hash FROM pins WHERE mailbox_id = ? AND user_address = ?")
            .bind(mailbox)
            .bind(norm(user))
            .fetch_optional(&self.pool)
            .await?)
    }

    pub(super) async fn pins(&self, mailbox: Option<&str>) -> Result<Vec<PinEntry>> {
        let rows = match mailbox {
            Some(m) => {
                query(self.c.d, "SELECT mailbox_id, user_address, set_at FROM pins WHERE mailbox_id = ? ORDER BY mailbox_id, user_address")
                    .bind(m)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                query(self.c.d, "SELECT mailbox_id, user_address, set_at FROM pins ORDER BY mailbox_id, user_address")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| Ok(PinEntry { mailbox: r.try_get("mailbox_id")?, user: r.try_get("user_address")?, set_at: r.try_get("set_at")? }))
            .collect()
    }

    pub(super) async fn pin_failures(&self, mailbox: &str, user: &str, since: i64) -> Result<Vec<i64>> {
        Ok(query_scalar(self.c.d, "SELECT at FROM pin_failures WHERE mailbox_id = ? AND user_address = ? AND at >= ? ORDER BY at")
            .bind(mailbox)
            .bind(norm(user))
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }

    pub(super) async fn add_pin_failure(&self, mailbox: &str, user: &str, at: i64, keep_since: i64) -> Result<Vec<i64>> {
        let user = norm(user);
        let mut tx = self.begin().await?;
        query(self.c.d, "DELETE FROM pin_failures WHERE mailbox_id = ? AND user_address = ? AND at < ?")
            .bind(mailbox)
            .bind(&user)
            .bind(keep_since)
            .execute(&mut *tx)
            .await?;
        query(self.c.d, "INSERT INTO pin_failures (mailbox_id, user_address, at) VALUES (?, ?, ?)")
            .bind(mailbox)
            .bind(&user)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let kept: Vec<i64> = query_scalar(self.c.d, "SELECT at FROM pin_failures WHERE mailbox_id = ? AND user_address = ? ORDER BY at")
            .bind(mailbox)
            .bind(&user)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(kept)
    }

    pub(super) async fn clear_pin_failures(&self, mailbox: &str, user: &str) -> Result<()> {
        query(self.c.d, "DELETE FROM pin_failures WHERE mailbox_id = ? AND user_address = ?")
            .bind(mailbox)
            .bind(norm(user))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn raise_alarm(&self, name: &str, at: i64) -> Result<bool> {
        let done = query(self.c.d, "INSERT INTO alarms (name, raised_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn clear_alarm(&self, name: &str) -> Result<bool> {
        let done = query(self.c.d, "DELETE FROM alarms WHERE name = ?").bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn alarms(&self) -> Result<Vec<(String, i64)>> {
        let rows = query(self.c.d, "SELECT name, raised_at FROM alarms ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("raised_at")?))).collect()
    }
}
