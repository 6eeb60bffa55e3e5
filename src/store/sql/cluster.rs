//! Several instances on one database: each instance's heartbeat (which also
//! renews the claims of its running deliveries), named leases, and the
//! per-mailbox sending rate slots.

use sqlx::Row;

use super::{Dialect, SqlStore, query, query_scalar};
use crate::store::{InstanceInfo, Lease, Result};

impl SqlStore {
    pub(super) async fn heartbeat(&self, info: &InstanceInfo, lease_until: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        query(
            self.c.d,
            "INSERT INTO instances (id, version, started_at, heartbeat_at, smtp, admin, stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, started_at = excluded.started_at,
               heartbeat_at = excluded.heartbeat_at, smtp = excluded.smtp, admin = excluded.admin, stopped_at = excluded.stopped_at",
        )
        .bind(&self.c.instance)
        .bind(&info.version)
        .bind(info.started_at)
        .bind(info.heartbeat_at)
        .bind(&info.smtp)
        .bind(&info.admin)
        .bind(info.stopped_at)
        .execute(&mut *tx)
        .await?;
        // Deliveries still running keep their claim.
        query(self.c.d, "UPDATE messages SET lease_until = ? WHERE state = 'sending' AND claimed_by = ?")
            .bind(lease_until)
            .bind(&self.c.instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let rows = query(self.c.d, "SELECT * FROM instances ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceInfo {
                    id: r.try_get("id")?,
                    version: r.try_get("version")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    smtp: r.try_get("smtp")?,
                    admin: r.try_get("admin")?,
                    stopped_at: r.try_get("stopped_at")?,
                })
            })
            .collect()
    }

    pub(super) async fn acquire_lease(&self, name: &str, now: i64, until: i64) -> Result<bool> {
        // Insert, renew our own, or take over an expired one; anything else is held by a live instance.
        let done = query(
            self.c.d,
            "INSERT INTO leases (name, holder, until, since) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until,
               since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END
             WHERE leases.holder = excluded.holder OR leases.until < ?",
        )
        .bind(name)
        .bind(&self.c.instance)
        .bind(until)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn release_lease(&self, name: &str) -> Result<()> {
        query(self.c.d, "DELETE FROM leases WHERE name = ? AND holder = ?").bind(name).bind(&self.c.instance).execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn leases(&self) -> Result<Vec<Lease>> {
        let rows = query(self.c.d, "SELECT name, holder, until, since FROM leases ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Lease { name: r.try_get("name")?, holder: r.try_get("holder")?, until: r.try_get("until")?, since: r.try_get("since")? })
            })
            .collect()
    }

    pub(super) async fn take_rate_slot(
        &self,
        mailbox: &str,
        now: i64,
        per_minute: u32,
        hold_ms: i64,
    ) -> Result<std::result::Result<(), i64>> {
        let mut tx = self.begin().await?;
        if self.c.d == Dialect::Postgres {
            // Serialises the count-then-insert of this mailbox across instances.
            query(self.c.d, "SELECT 1 AS ok FROM (SELECT pg_advisory_xact_lock(hashtext(?))) AS l")
                .bind(format!("pecgate-rate:{mailbox}"))
                .fetch_all(&mut *tx)
                .await?;
        }
        query(self.c.d, "DELETE FROM rate_slots WHERE mailbox_id = ? AND at <= ?")
            .bind(mailbox)
            .bind(now - hold_ms)
            .execute(&mut *tx)
            .await?;
        let taken: Vec<i64> =
            query_scalar(self.c.d, "SELECT at FROM rate_slots WHERE mailbox_id = ? ORDER BY at").bind(mailbox).fetch_all(&mut *tx).await?;
        let result = if (taken.len() as u64) < u64::from(per_minute) {
            query(self.c.d, "INSERT INTO rate_slots (mailbox_id, at) VALUES (?, ?)").bind(mailbox).bind(now).execute(&mut *tx).await?;
            Ok(())
        } else {
            Err(taken.first().map_or(now, |t| t + hold_ms))
        };
        tx.commit().await?;
        Ok(result)
    }
}
