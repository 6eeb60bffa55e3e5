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
    SQLITE_SEARCH,
    LIST_FILTER_INDEXES,
    SQLITE_RECIPIENT_COUNTS,
    PINS_AND_ALARMS,
    FETCHED_BY_MESSAGE_ID,
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
    POSTGRES_SEARCH,
    LIST_FILTER_INDEXES,
    PINS_AND_ALARMS,
    FETCHED_BY_MESSAGE_ID,
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

/// Admin search is a substring match (`LIKE '%q%'`), so the index must find
/// any part of a word: of an address, of a Message-ID. FTS5's trigram
/// tokenizer indexes every 3 characters, which is exactly that (a word
/// tokenizer would not find `legale@pec` in `ufficio.legale@pec.it`). The
/// search tables hold their own copy of the text (the source rows' rowids are
/// not stable across a VACUUM, their ids are); triggers keep them in the
/// writing transaction. The query re-checks the LIKE on the source row, so
/// the index only narrows (it folds case beyond ASCII, LIKE does not).
const SQLITE_SEARCH: &str = r#"
CREATE VIRTUAL TABLE messages_search USING fts5(id UNINDEXED, subject, original_sender, mail_from, message_id, tokenize = 'trigram');
CREATE VIRTUAL TABLE recipients_search USING fts5(message_id UNINDEXED, address, tokenize = 'trigram');
CREATE VIRTUAL TABLE fetched_search USING fts5(id UNINDEXED, subject, message_id, consegna, riferimento, identificativo, tokenize = 'trigram');
INSERT INTO messages_search (rowid, id, subject, original_sender, mail_from, message_id)
    SELECT rowid, id, subject, original_sender, mail_from, message_id FROM messages;
INSERT INTO recipients_search (rowid, message_id, address) SELECT rowid, message_id, address FROM recipients;
INSERT INTO fetched_search (rowid, id, subject, message_id, consegna, riferimento, identificativo)
    SELECT rowid, id, subject, message_id, consegna, riferimento, identificativo FROM fetched;
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_search (rowid, id, subject, original_sender, mail_from, message_id)
    VALUES (NEW.rowid, NEW.id, NEW.subject, NEW.original_sender, NEW.mail_from, NEW.message_id);
END;
CREATE TRIGGER messages_search_update AFTER UPDATE OF id, subject, original_sender, mail_from, message_id ON messages BEGIN
    DELETE FROM messages_search WHERE rowid = OLD.rowid AND id = OLD.id;
    INSERT INTO messages_search (rowid, id, subject, original_sender, mail_from, message_id)
    VALUES (NEW.rowid, NEW.id, NEW.subject, NEW.original_sender, NEW.mail_from, NEW.message_id);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_search WHERE rowid = OLD.rowid AND id = OLD.id;
END;
CREATE TRIGGER recipients_search_insert AFTER INSERT ON recipients BEGIN
    INSERT INTO recipients_search (rowid, message_id, address) VALUES (NEW.rowid, NEW.message_id, NEW.address);
END;
CREATE TRIGGER recipients_search_update AFTER UPDATE OF message_id, address ON recipients BEGIN
    DELETE FROM recipients_search WHERE rowid = OLD.rowid AND message_id = OLD.message_id;
    INSERT INTO recipients_search (rowid, message_id, address) VALUES (NEW.rowid, NEW.message_id, NEW.address);
END;
CREATE TRIGGER recipients_search_delete AFTER DELETE ON recipients BEGIN
    DELETE FROM recipients_search WHERE rowid = OLD.rowid AND message_id = OLD.message_id;
END;
CREATE TRIGGER fetched_search_insert AFTER INSERT ON fetched BEGIN
    INSERT INTO fetched_search (rowid, id, subject, message_id, consegna, riferimento, identificativo)
    VALUES (NEW.rowid, NEW.id, NEW.subject, NEW.message_id, NEW.consegna, NEW.riferimento, NEW.identificativo);
END;
CREATE TRIGGER fetched_search_update AFTER UPDATE OF id, subject, message_id, consegna, riferimento, identificativo ON fetched BEGIN
    DELETE FROM fetched_search WHERE rowid = OLD.rowid AND id = OLD.id;
    INSERT INTO fetched_search (rowid, id, subject, message_id, consegna, riferimento, identificativo)
    VALUES (NEW.rowid, NEW.id, NEW.subject, NEW.message_id, NEW.consegna, NEW.riferimento, NEW.identificativo);
END;
CREATE TRIGGER fetched_search_delete AFTER DELETE ON fetched BEGIN
    DELETE FROM fetched_search WHERE rowid = OLD.rowid AND id = OLD.id;
END;
"#;

/// PostgreSQL: `pg_trgm` GIN indexes serve `ILIKE '%q%'` as it is written
/// (the planner re-checks every candidate), so the search keeps its exact
/// meaning and needs no second copy of the text; `tsvector` matches words
/// and stems, not substrings. One index per table over its searched
/// columns joined by a newline; the query re-checks each column.
/// pg_trgm is a trusted extension: the database owner may create it.
const POSTGRES_SEARCH: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_search ON messages
    USING gin ((subject || E'\n' || original_sender || E'\n' || mail_from || E'\n' || message_id) gin_trgm_ops);
CREATE INDEX recipients_search ON recipients USING gin (address gin_trgm_ops);
CREATE INDEX fetched_search ON fetched USING gin ((subject || E'\n' || COALESCE(message_id, '') || E'\n' || COALESCE(consegna, '')
    || E'\n' || COALESCE(riferimento, '') || E'\n' || COALESCE(identificativo, '')) gin_trgm_ops);
"#;

/// Recipients by (mailbox, state) of PEC sent to providers, for the
/// `pecgate_recipients` gauge: kept by triggers in the transaction that
/// changes a state, so a scrape reads a few rows instead of counting every
/// recipient. Counted once from the existing rows.
const SQLITE_RECIPIENT_COUNTS: &str = r#"
CREATE TABLE recipient_counts (mailbox_id TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (mailbox_id, state));
INSERT INTO recipient_counts (mailbox_id, state, n)
    SELECT m.mailbox_id, r.state, COUNT(*) FROM recipients r JOIN messages m ON m.id = r.message_id
    WHERE m.route = 'provider' AND m.mailbox_id IS NOT NULL GROUP BY m.mailbox_id, r.state;
CREATE TRIGGER recipient_counts_insert AFTER INSERT ON recipients BEGIN
    INSERT INTO recipient_counts (mailbox_id, state, n)
    SELECT mailbox_id, NEW.state, 1 FROM messages WHERE id = NEW.message_id AND route = 'provider' AND mailbox_id IS NOT NULL
    ON CONFLICT (mailbox_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER recipient_counts_update AFTER UPDATE OF state, message_id ON recipients
WHEN OLD.state IS NOT NEW.state OR OLD.message_id IS NOT NEW.message_id BEGIN
    UPDATE recipient_counts SET n = n - 1 WHERE state = OLD.state
        AND mailbox_id = (SELECT mailbox_id FROM messages WHERE id = OLD.message_id AND route = 'provider');
    INSERT INTO recipient_counts (mailbox_id, state, n)
    SELECT mailbox_id, NEW.state, 1 FROM messages WHERE id = NEW.message_id AND route = 'provider' AND mailbox_id IS NOT NULL
    ON CONFLICT (mailbox_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER recipient_counts_delete AFTER DELETE ON recipients BEGIN
    UPDATE recipient_counts SET n = n - 1 WHERE state = OLD.state
        AND mailbox_id = (SELECT mailbox_id FROM messages WHERE id = OLD.message_id AND route = 'provider');
END;
"#;

/// Sending PINs (Argon2 PHC strings, never the PIN), the wrong PINs kept for
/// the lockout, and alarms told once (a restart does not repeat them); the
/// same in both dialects.
const PINS_AND_ALARMS: &str = r#"
CREATE TABLE pins (
    mailbox_id TEXT NOT NULL,
    user_address TEXT NOT NULL,
    hash TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, user_address)
);
CREATE TABLE pin_failures (mailbox_id TEXT NOT NULL, user_address TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX pin_failures_user ON pin_failures(mailbox_id, user_address, at);
CREATE TABLE alarms (name TEXT PRIMARY KEY, raised_at BIGINT NOT NULL);
"#;

/// A message fetched again under a new id (a folder's UIDVALIDITY reset)
/// is found by its Message-ID; the same in both dialects.
const FETCHED_BY_MESSAGE_ID: &str = r#"
CREATE INDEX fetched_mailbox_message_id ON fetched(mailbox_id, message_id);
"#;

/// Every filter of the admin list walks an index newest first; the status
/// filter finds recipients by state; the same in both dialects.
const LIST_FILTER_INDEXES: &str = r#"
CREATE INDEX messages_mailbox_created ON messages(mailbox_id, created_at, id);
CREATE INDEX recipients_state ON recipients(state, message_id);
CREATE INDEX fetched_mailbox_newest ON fetched(mailbox_id, fetched_at, id);
CREATE INDEX fetched_kind_newest ON fetched(kind, fetched_at, id);
"#;

impl SqlStore {
    /// Applies the schema versions this database lacks, all in one transaction.
    pub(super) async fn migrate(&self) -> Result<()> {
        self.migrate_upto(i64::MAX).await
    }

    /// Applies the missing versions up to `last` (tests: a database of an older schema).
    async fn migrate_upto(&self, last: i64) -> Result<()> {
        let mut tx = self.begin().await?;
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
            if version > current && version <= last {
                sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
                query(self.c.d, "INSERT INTO schema_version (version) VALUES (?)").bind(version).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FetchedRecord, ListFilter, MessageKind, NewMessage, Route};

    fn message(id: &str, subject: &str, rcpts: &[&str]) -> NewMessage {
        NewMessage {
            id: id.into(),
            kind: MessageKind::Pec,
            route: Route::Provider("legal".into()),
            mail_from: "legal@pec.corp.it".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            original_sender: "mario@corp.it".into(),
            message_id: format!("<{id}@corp.it>"),
            subject: subject.into(),
            size: 1,
            created_at: 1_000,
            origin: "test".into(),
        }
    }

    /// A database of the schema before the search index (version 8), with
    /// rows, upgrades in place: the new indexes cover the old rows.
    #[tokio::test]
    async fn upgrade_covers_existing_rows() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let store = SqlStore { pool, c: super::super::Ctx { d: Dialect::Sqlite, instance: "t".into() } };
        store.migrate_upto(8).await.unwrap();
        store.insert_message(&message("OLD1", "Diffida pratica 4711", &["protocollo@pec.comune.it"])).await.unwrap();
        let fetched = FetchedRecord {
            id: "F1".into(),
            mailbox_id: "legal".into(),
            uidl: "u1".into(),
            fetched_at: 2_000,
            size: 1,
            kind: "posta-certificata".into(),
            subject: "POSTA CERTIFICATA: Sollecito".into(),
            message_id: None,
            riferimento: None,
            identificativo: Some("opec.42@pec.provider.it".into()),
            consegna: None,
            related_message: None,
            routed_to: vec![],
            injection: None,
            signature: None,
            signer: None,
            deleted_at: None,
            fetched_by: None,
        };
        store.commit_fetched(&fetched, None, &[]).await.unwrap();
        store.migrate().await.unwrap();
        let search = |q: &str| ListFilter { q: Some(q.into()), limit: 10, ..Default::default() };
        let ids = |v: Vec<crate::store::ListItem>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list_filtered(&search("pratica 47")).await.unwrap()), ["OLD1"]);
        assert_eq!(ids(store.list_filtered(&search("comune.it")).await.unwrap()), ["OLD1"]);
        assert_eq!(ids(store.list_filtered(&search("opec.42")).await.unwrap()), ["F1"]);
        store.insert_message(&NewMessage { created_at: 3_000, ..message("NEW1", "Diffida pratica 4712", &["a@b.it"]) }).await.unwrap();
        assert_eq!(ids(store.list_filtered(&search("pratica 471")).await.unwrap()), ["NEW1", "OLD1"]);
        let counts = store.recipient_state_counts().await.unwrap();
        assert_eq!(counts, [("legal".to_owned(), "queued".to_owned(), 2)], "old recipients counted once, new ones by the trigger");
    }
}
