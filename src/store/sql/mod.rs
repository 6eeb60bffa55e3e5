//! The SQL store, one implementation for both backends through sqlx's `Any`
//! driver: SQLite (default; WAL, `synchronous = FULL`, so a commit survives
//! power loss once it returns) and PostgreSQL (several pecgate instances
//! sharing one database). Queries are written once, in SQLite's spelling with
//! `?` parameters; [`Dialect::sql`] rewrites the few differences for
//! PostgreSQL (numbered parameters, `string_agg`, `ILIKE`, the recipient
//! order column). Only the schema and the claim query differ per backend.
//!
//! This file opens the pool and holds what every query needs ([`SqlStore`],
//! `Ctx`, the query helpers) and the one `impl Store`, which hands each call
//! to the file of its concern: `schema` (migrations), `dialect` (the
//! PostgreSQL spelling), `queue` (messages, recipients, claims, attempts,
//! events), `fetched` (mail fetched from providers), `admin` (the admin list,
//! waiting lists, statistics) and `cluster` (instances, leases, rate slots).

mod admin;
mod cluster;
mod dialect;
mod fetched;
mod pins;
mod queue;
mod schema;

pub use dialect::{Dialect, to_postgres};

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor};

use super::{
    Attempt, Error, Event, FetchedRecord, InstanceInfo, Lease, ListFilter, ListItem, Message, NewMessage, PinEntry, ReceiptUpdate,
    Recipient, Recovered, Result, Skipped, Store,
};

/// What every query needs: the dialect, and who this process is (events and
/// claims name the instance).
#[derive(Debug, Clone)]
struct Ctx {
    d: Dialect,
    instance: String,
}

fn query(d: Dialect, sql: &str) -> Query<'static, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(d.sql(sql)))
}

fn query_scalar<O>(d: Dialect, sql: &str) -> QueryScalar<'static, Any, O, AnyArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, AnyRow>,
{
    sqlx::query_scalar(AssertSqlSafe(d.sql(sql)))
}

pub struct SqlStore {
    pool: AnyPool,
    c: Ctx,
}

/// A PostgreSQL URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

impl SqlStore {
    /// Opens (creating if needed) a SQLite database file and applies migrations.
    pub async fn open_sqlite(path: &Path, instance: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let display = path.display().to_string();
        let open_err = |source| Error::Open { path: display.clone(), source };
        let url = format!("sqlite://{}?mode=rwc", path.display());
        // Per-connection settings; WAL is a property of the file, set once below.
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(open_err)?;
        sqlx::query("PRAGMA journal_mode = WAL").fetch_all(&pool).await.map_err(open_err)?;
        Self::finish(pool, Ctx { d: Dialect::Sqlite, instance: instance.to_owned() }, display).await
    }

    /// Connects to PostgreSQL (`url` may hold the password; it is never shown)
    /// and applies migrations, one instance at a time.
    pub async fn open_postgres(url: &str, max_connections: u32, instance: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let display = redact_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|source| Error::Open { path: display.clone(), source: redact_error(source, url) })?;
        Self::finish(pool, Ctx { d: Dialect::Postgres, instance: instance.to_owned() }, display).await
    }

    async fn finish(pool: AnyPool, c: Ctx, display: String) -> Result<Self> {
        let store = Self { pool, c };
        store.migrate().await.map_err(|e| match e {
            Error::Db(source) => Error::Open { path: display.clone(), source },
            other => other,
        })?;
        Ok(store)
    }

    /// A write transaction. SQLite: IMMEDIATE takes the write lock at BEGIN,
    /// under the busy timeout; a deferred one that read first cannot wait
    /// for it and fails at once with "database is locked".
    async fn begin(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.c.d {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.c.d
    }
}

/// sqlx errors may quote the connection URL; never let the password through.
fn redact_error(e: sqlx::Error, url: &str) -> sqlx::Error {
    let password = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)).filter(|p| !p.is_empty());
    match password {
        Some(p) if e.to_string().contains(&p) => sqlx::Error::Configuration(e.to_string().replace(&p, "***").into()),
        _ => e,
    }
}

// Each `self.name(..)` below is the inherent method of that name in the
// concern's file (inherent methods come before trait methods), not a
// recursive call; only the methods about the connection itself stay here.
#[async_trait]
impl Store for SqlStore {
    async fn insert_message(&self, m: &NewMessage) -> Result<()> {
        self.insert_message(m).await
    }

    async fn due_messages(&self, now: i64, limit: u32) -> Result<Vec<Message>> {
        self.due_messages(now, limit).await
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        self.next_due().await
    }

    async fn claim_many(&self, ids: &[String], now: i64, lease_until: i64) -> Result<Vec<String>> {
        self.claim_many(ids, now, lease_until).await
    }

    async fn record_attempt(&self, id: &str, a: &Attempt) -> Result<()> {
        self.record_attempt(id, a).await
    }

    async fn record_attempts(&self, batch: &[(String, Attempt)]) -> Result<()> {
        self.record_attempts(batch).await
    }

    async fn recover_sending(&self, now: i64, own: bool) -> Result<Vec<Recovered>> {
        self.recover_sending(now, own).await
    }

    async fn message(&self, id: &str) -> Result<Option<Message>> {
        self.message(id).await
    }

    async fn pending_recipients(&self, id: &str) -> Result<Vec<String>> {
        self.pending_recipients(id).await
    }

    async fn recipients(&self, id: &str) -> Result<Vec<Recipient>> {
        self.recipients(id).await
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        self.events(id).await
    }

    async fn add_event(&self, id: &str, rcpt: Option<&str>, at: i64, kind: &str, detail: &str) -> Result<()> {
        self.add_event(id, rcpt, at, kind, detail).await
    }

    async fn message_ids(&self) -> Result<Vec<String>> {
        self.message_ids().await
    }

    async fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        self.count_by_state().await
    }

    async fn list_messages(&self, limit: u32) -> Result<Vec<Message>> {
        self.list_messages(limit).await
    }

    async fn ping(&self) -> Result<()> {
        let sql = match self.c.d {
            Dialect::Sqlite => "CREATE TABLE IF NOT EXISTS ping (x INTEGER)",
            Dialect::Postgres => "UPDATE schema_version SET version = version WHERE version < 0",
        };
        query(self.c.d, sql).execute(&self.pool).await?;
        Ok(())
    }

    async fn fetched_by_uidl(&self, mailbox: &str, uidl: &str) -> Result<Option<FetchedRecord>> {
        self.fetched_by_uidl(mailbox, uidl).await
    }

    async fn newest_fetched_uidl(&self, mailbox: &str, prefix: &str) -> Result<Option<String>> {
        self.newest_fetched_uidl(mailbox, prefix).await
    }

    async fn fetched_by_message_id(&self, mailbox: &str, message_id: &str) -> Result<Vec<FetchedRecord>> {
        self.fetched_by_message_id(mailbox, message_id).await
    }

    async fn commit_fetched(&self, r: &FetchedRecord, update: Option<&ReceiptUpdate>, injections: &[NewMessage]) -> Result<()> {
        self.commit_fetched(r, update, injections).await
    }

    async fn mark_fetched_deleted(&self, mailbox: &str, uidls: &[String], at: i64) -> Result<()> {
        self.mark_fetched_deleted(mailbox, uidls, at).await
    }

    async fn skip_fetch(&self, skipped: &Skipped) -> Result<()> {
        self.skip_fetch(skipped).await
    }

    async fn skipped(&self, mailbox: Option<&str>) -> Result<Vec<Skipped>> {
        self.skipped(mailbox).await
    }

    async fn unskip(&self, mailbox: &str, uidl: &str) -> Result<bool> {
        self.unskip(mailbox, uidl).await
    }

    async fn find_sent(&self, mailbox: &str, message_ids: &[&str], provider_id: Option<&str>) -> Result<Option<Message>> {
        self.find_sent(mailbox, message_ids, provider_id).await
    }

    async fn retry_now(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        self.retry_now(id, at, who).await
    }

    async fn drop_message(&self, id: &str, at: i64, who: &str) -> Result<bool> {
        self.drop_message(id, at, who).await
    }

    async fn awaiting_acceptance(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<Message>> {
        self.awaiting_acceptance(before, notice_kind, unnotified).await
    }

    async fn awaiting_delivery(&self, before: i64, notice_kind: &str, unnotified: bool) -> Result<Vec<(Message, String)>> {
        self.awaiting_delivery(before, notice_kind, unnotified).await
    }

    async fn queue_stats(&self) -> Result<Vec<(String, String, i64, i64)>> {
        self.queue_stats().await
    }

    async fn recipient_state_counts(&self) -> Result<Vec<(String, String, i64)>> {
        self.recipient_state_counts().await
    }

    async fn fetched_ids(&self) -> Result<Vec<String>> {
        self.fetched_ids().await
    }

    async fn fetched_for(&self, message: &str) -> Result<Vec<FetchedRecord>> {
        self.fetched_for(message).await
    }

    async fn list_filtered(&self, f: &ListFilter) -> Result<Vec<ListItem>> {
        self.list_filtered(f).await
    }

    async fn fetched(&self, id: &str) -> Result<Option<FetchedRecord>> {
        self.fetched(id).await
    }

    async fn last_sends(&self) -> Result<Vec<(String, i64)>> {
        self.last_sends().await
    }

    async fn waiting_messages(&self, limit: u32) -> Result<Vec<Message>> {
        self.waiting_messages(limit).await
    }

    fn instance(&self) -> &str {
        &self.c.instance
    }

    fn shared(&self) -> bool {
        self.c.d == Dialect::Postgres
    }

    async fn heartbeat(&self, info: &InstanceInfo, lease_until: i64) -> Result<()> {
        self.heartbeat(info, lease_until).await
    }

    async fn instances(&self) -> Result<Vec<InstanceInfo>> {
        self.instances().await
    }

    async fn acquire_lease(&self, name: &str, now: i64, until: i64) -> Result<bool> {
        self.acquire_lease(name, now, until).await
    }

    async fn release_lease(&self, name: &str) -> Result<()> {
        self.release_lease(name).await
    }

    async fn leases(&self) -> Result<Vec<Lease>> {
        self.leases().await
    }

    async fn take_rate_slot(&self, mailbox: &str, now: i64, per_minute: u32, hold_ms: i64) -> Result<std::result::Result<(), i64>> {
        self.take_rate_slot(mailbox, now, per_minute, hold_ms).await
    }

    async fn set_pin(&self, mailbox: &str, user: &str, phc: &str, at: i64) -> Result<()> {
        self.set_pin(mailbox, user, phc, at).await
    }

    async fn remove_pin(&self, mailbox: &str, user: &str) -> Result<bool> {
        self.remove_pin(mailbox, user).await
    }

    async fn pin_hash(&self, mailbox: &str, user: &str) -> Result<Option<String>> {
        self.pin_hash(mailbox, user).await
    }

    async fn pins(&self, mailbox: Option<&str>) -> Result<Vec<PinEntry>> {
        self.pins(mailbox).await
    }

    async fn pin_failures(&self, mailbox: &str, user: &str, since: i64) -> Result<Vec<i64>> {
        self.pin_failures(mailbox, user, since).await
    }

    async fn add_pin_failure(&self, mailbox: &str, user: &str, at: i64, keep_since: i64) -> Result<Vec<i64>> {
        self.add_pin_failure(mailbox, user, at, keep_since).await
    }

    async fn clear_pin_failures(&self, mailbox: &str, user: &str) -> Result<()> {
        self.clear_pin_failures(mailbox, user).await
    }

    async fn raise_alarm(&self, name: &str, at: i64) -> Result<bool> {
        self.raise_alarm(name, at).await
    }

    async fn clear_alarm(&self, name: &str) -> Result<bool> {
        self.clear_alarm(name).await
    }

    async fn alarms(&self) -> Result<Vec<(String, i64)>> {
        self.alarms().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(redact_url("postgres://pecgate:s3cr%40t@db.example:5432/pec"), "postgres://pecgate:***@db.example:5432/pec");
        assert_eq!(redact_url("postgres://pecgate@db.example/pec"), "postgres://pecgate@db.example/pec");
    }
}
