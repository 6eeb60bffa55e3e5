//! The schema: the migrations of each backend, and applying the ones a
//! database lacks when it is opened.

use sqlx::AssertSqlSafe;

use super::{Dialect, SqlStore, query, query_scalar};
use crate::store::{Error, Result};

/// SQLite schema versions, applied in order, each once (recorded in `schema_version`).
const SQLITE_MIGRATIONS: &[&str] = &[
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
    // Instances and leases (the same tables as PostgreSQL, so the code is one).
    r#"
ALTER TABLE messages ADD COLUMN claimed_by TEXT;
ALTER TABLE messages ADD COLUMN lease_until INTEGER;
ALTER TABLE events ADD COLUMN instance TEXT;
ALTER TABLE inbound ADD COLUMN fetched_by TEXT;
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until INTEGER NOT NULL, since INTEGER NOT NULL);
CREATE TABLE instances (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, started_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL,
    smtp TEXT NOT NULL, admin TEXT NOT NULL, stopped_at INTEGER
);
CREATE TABLE rate_slots (mailbox_id TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX rate_slots_mailbox ON rate_slots(mailbox_id, at);
"#,
    // Mail fetched from the provider is "fetched", never "inbound" (the SMTP listener's side).
    RENAME_INBOUND_TO_FETCHED,
    SKIPPED,
];

/// PostgreSQL schema versions. Version 1 is the whole SQLite schema up to
/// its version 6; later changes get a version in both lists.
const POSTGRES_MIGRATIONS: &[&str] = &[
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
    size BIGINT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    provider_id TEXT,
    claimed_by TEXT,
    lease_until BIGINT
);
CREATE INDEX messages_due ON messages(state, next_attempt_at);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX messages_provider_id ON messages(provider_id);
CREATE INDEX messages_created ON messages(created_at, id);
CREATE TABLE recipients (
    seq BIGSERIAL,
    message_id TEXT NOT NULL REFERENCES messages(id),
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    last_reply TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, address)
);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL,
    rcpt TEXT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    instance TEXT
);
CREATE INDEX events_message ON events(message_id);
CREATE TABLE inbound (
    id TEXT PRIMARY KEY,
    mailbox_id TEXT NOT NULL,
    uidl TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    size BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT,
    riferimento TEXT,
    identificativo TEXT,
    consegna TEXT,
    related_message TEXT,
    routed_to TEXT NOT NULL,
    deleted_at BIGINT,
    injection TEXT,
    signature TEXT,
    signer TEXT,
    fetched_by TEXT,
    UNIQUE (mailbox_id, uidl)
);
CREATE INDEX inbound_related ON inbound(related_message);
CREATE INDEX inbound_fetched ON inbound(fetched_at, id);
CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until BIGINT NOT NULL, since BIGINT NOT NULL);
CREATE TABLE instances (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL,
    smtp TEXT NOT NULL, admin TEXT NOT NULL, stopped_at BIGINT
);
CREATE TABLE rate_slots (mailbox_id TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX rate_slots_mailbox ON rate_slots(mailbox_id, at);
"#,
    RENAME_INBOUND_TO_FETCHED,
    SKIPPED,
];

/// The same in both dialects: the table and its indexes take the new name.
const RENAME_INBOUND_TO_FETCHED: &str = r#"
ALTER TABLE inbound RENAME TO fetched;
DROP INDEX inbound_related;
DROP INDEX inbound_fetched;
CREATE INDEX fetched_related ON fetched(related_message);
CREATE INDEX fetched_newest ON fetched(fetched_at, id);
"#;

/// Messages a mailbox's server holds that pecgate cannot take (same in both dialects).
const SKIPPED: &str = r#"
CREATE TABLE skipped (
    mailbox_id TEXT NOT NULL,
    uidl TEXT NOT NULL,
    size BIGINT,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uidl)
);
"#;

impl SqlStore {
    /// Applies the schema versions this database lacks, all in one transaction.
    pub(super) async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let migrations = match self.c.d {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => {
                // Instances starting together: one migrates, the others wait for it.
                query(self.c.d, "SELECT 1 AS ok FROM (SELECT pg_advisory_xact_lock(7262730)) AS l").fetch_all(&mut *tx).await?;
                POSTGRES_MIGRATIONS
            }
        };
        let bigint = if self.c.d == Dialect::Postgres { "BIGINT" } else { "INTEGER" };
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE TABLE IF NOT EXISTS schema_version (version {bigint} NOT NULL)")))
            .execute(&mut *tx)
            .await?;
        let current: i64 = query_scalar(self.c.d, "SELECT COALESCE(MAX(version), 0) FROM schema_version").fetch_one(&mut *tx).await?;
        if current > migrations.len() as i64 {
            return Err(Error::TooNew { found: current, known: migrations.len() as i64 });
        }
        for (i, sql) in migrations.iter().enumerate() {
            let version = i as i64 + 1;
            if version > current {
                sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
                query(self.c.d, "INSERT INTO schema_version (version) VALUES (?)").bind(version).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
