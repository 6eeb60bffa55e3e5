//! The store contract, run against every backend: SQLite always, and
//! PostgreSQL on the server `PECGATE_TEST_PG_URL` names. The PostgreSQL
//! tests are `#[ignore]`d (cargo test has no server); the interop script
//! starts a private one and runs them with `-- --ignored`. Each PostgreSQL
//! test gets a fresh database.

mod common;

use std::sync::Arc;

use pecgate::store::sql::SqlStore;
use pecgate::store::{
    Attempt, FetchedRecord, InstanceInfo, ListFilter, MessageKind, MessageState, NewMessage, RecipientOutcome, RecipientState, Route, Store,
};

/// Opens stores of one backend; several per test act as several instances on one database.
#[async_trait::async_trait]
trait Backend: Send + Sync {
    async fn open(&self, instance: &str) -> SqlStore;
}

struct Sqlite(tempfile::TempDir);

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn open(&self, instance: &str) -> SqlStore {
        SqlStore::open_sqlite(&self.0.path().join("t.db"), instance).await.unwrap()
    }
}

struct Postgres(String);

#[async_trait::async_trait]
impl Backend for Postgres {
    async fn open(&self, instance: &str) -> SqlStore {
        SqlStore::open_postgres(&self.0, 5, instance).await.unwrap()
    }
}

fn sqlite() -> Arc<dyn Backend> {
    Arc::new(Sqlite(tempfile::tempdir().unwrap()))
}

/// A fresh database on the test server.
async fn postgres(test: &str) -> Arc<dyn Backend> {
    let (url, password) = common::fresh_pg_database(test).await;
    let mut url = url::Url::parse(&url).unwrap();
    url.set_password(Some(&password)).unwrap();
    Arc::new(Postgres(url.to_string()))
}

/// One `#[tokio::test]` per backend for each contract test.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::sqlite()).await })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: PECGATE_TEST_PG_URL (tests/interop/run.sh starts a private server)"]
            async fn $name() { super::$name(super::postgres(stringify!($name)).await).await })*
        }
    };
}

contract!(
    life_cycle_and_recovery,
    claims_are_exclusive_between_instances,
    expired_lease_is_taken_over,
    named_leases,
    rate_slots_are_shared,
    fetched_is_stored_once,
    newest_fetched_uidl_by_folder,
    admin_list_and_search,
    instances_are_listed,
    search_edge_cases,
    recipient_gauges_match_recount,
    pins_failures_and_alarms,
);

fn new_message(id: &str, rcpts: &[&str]) -> NewMessage {
    NewMessage {
        id: id.into(),
        kind: MessageKind::Pec,
        route: Route::Provider("legal".into()),
        mail_from: "legal@pec.corp.it".into(),
        rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
        original_sender: "mario@corp.it".into(),
        message_id: format!("{id}@corp.it"),
        subject: format!("Contratto {id}"),
        size: 100,
        created_at: 1_000,
        origin: "smtp from 127.0.0.1".into(),
    }
}

fn outcome(address: &str, state: RecipientState, reply: &str) -> RecipientOutcome {
    RecipientOutcome { address: address.into(), state, reply: reply.into() }
}

async fn life_cycle_and_recovery(b: Arc<dyn Backend>) {
    let s = b.open("gw1").await;
    s.insert_message(&new_message("Q1", &["a@x.it", "b@x.it"])).await.unwrap();
    assert_eq!(s.due_messages(999, 10).await.unwrap().len(), 0);
    assert_eq!(s.due_messages(1_000, 10).await.unwrap().len(), 1);
    assert_eq!(s.claim_many(&["Q1".into()], 1_001, 61_001).await.unwrap(), ["Q1"]);
    assert!(s.claim_many(&["Q1".into()], 1_001, 61_001).await.unwrap().is_empty(), "a claimed message cannot be claimed twice");
    // Crash while sending: reopen as the same instance and recover its own claims.
    drop(s);
    let s = b.open("gw1").await;
    assert!(s.recover_sending(2_000, false).await.unwrap().is_empty(), "the lease still runs: not taken over");
    let rec = s.recover_sending(2_000, true).await.unwrap();
    assert_eq!(rec.len(), 1);
    assert_eq!((rec[0].id.as_str(), rec[0].holder.as_deref()), ("Q1", Some("gw1")));
    let m = s.message("Q1").await.unwrap().unwrap();
    assert_eq!(m.state, MessageState::Queued);
    assert_eq!(s.claim_many(&["Q1".into()], 2_001, 62_001).await.unwrap(), ["Q1"]);
    let attempt = Attempt {
        at: 2_002,
        recipients: vec![outcome("a@x.it", RecipientState::Submitted, "250 ok"), outcome("b@x.it", RecipientState::Deferred, "451 later")],
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
    let events = s.events("Q1").await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["received", "queued", "recovered", "submitted", "deferred", "queued"]);
    assert!(events.iter().all(|e| e.instance.as_deref() == Some("gw1")), "{events:?}");

    // Group commit: several attempts in one transaction.
    s.insert_message(&new_message("Q2", &["c@x.it"])).await.unwrap();
    let done = |rcpt: &str| Attempt {
        at: 4_000,
        recipients: vec![outcome(rcpt, RecipientState::Submitted, "250 ok")],
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
    assert!(s.claim_many(&["Q1".into(), "Q2".into()], 5_000, 65_000).await.unwrap().is_empty(), "nothing queued to claim");
    let counts = s.count_by_state().await.unwrap();
    assert_eq!(counts, vec![("submitted".to_string(), 2)]);
}

async fn claims_are_exclusive_between_instances(b: Arc<dyn Backend>) {
    let a = Arc::new(b.open("gw-a").await);
    let c = Arc::new(b.open("gw-b").await);
    let ids: Vec<String> = (0..200).map(|i| format!("M{i:03}")).collect();
    for id in &ids {
        a.insert_message(&new_message(id, &["r@x.it"])).await.unwrap();
    }
    // Both instances race for the same due list, in slices, many times.
    let race = |s: Arc<SqlStore>, ids: Vec<String>| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for chunk in ids.chunks(20) {
                got.extend(s.claim_many(chunk, 2_000, 100_000).await.unwrap());
            }
            got
        })
    };
    let mut reversed = ids.clone();
    reversed.reverse();
    let (got_a, got_b) = tokio::join!(race(a.clone(), ids.clone()), race(c.clone(), reversed));
    let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
    let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    all.sort();
    assert_eq!(all, ids, "every message claimed exactly once (a: {}, b: {})", got_a.len(), got_b.len());
}

async fn expired_lease_is_taken_over(b: Arc<dyn Backend>) {
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    a.insert_message(&new_message("L1", &["r@x.it"])).await.unwrap();
    a.insert_message(&new_message("L2", &["r@x.it"])).await.unwrap();
    assert_eq!(a.claim_many(&["L1".into(), "L2".into()], 1_000, 10_000).await.unwrap().len(), 2);
    let info = |id: &str, at: i64| InstanceInfo {
        id: id.into(),
        version: "test".into(),
        started_at: 0,
        heartbeat_at: at,
        smtp: "127.0.0.1:25".into(),
        admin: "127.0.0.1:9180".into(),
        stopped_at: None,
    };
    // Before expiry nobody takes them; B's own start-up recovery leaves A's claims alone.
    assert!(c.recover_sending(9_999, true).await.unwrap().is_empty());
    // A's heartbeat extends the leases of what it is still sending.
    a.heartbeat(&info("gw-a", 9_000), 20_000).await.unwrap();
    assert!(c.recover_sending(15_000, false).await.unwrap().is_empty());
    // A finishes L1, then dies; at 20,001 B takes over L2 only.
    let done = Attempt {
        at: 16_000,
        recipients: vec![outcome("r@x.it", RecipientState::Submitted, "250 ok")],
        state: MessageState::Submitted,
        next_attempt_at: 16_000,
        error: None,
        relay: "p:465".into(),
    };
    a.record_attempt("L1", &done).await.unwrap();
    // A live instance never takes over its own claims (its deliveries are still running).
    assert!(a.recover_sending(30_000, false).await.unwrap().is_empty());
    let rec = c.recover_sending(20_001, false).await.unwrap();
    assert_eq!(rec.iter().map(|r| (r.id.as_str(), r.holder.as_deref())).collect::<Vec<_>>(), [("L2", Some("gw-a"))]);
    let ev = c.events("L2").await.unwrap();
    let last = ev.last().unwrap();
    assert_eq!((last.kind.as_str(), last.instance.as_deref()), ("recovered", Some("gw-b")));
    assert!(last.detail.contains("gw-a"), "{}", last.detail);
    assert_eq!(c.claim_many(&["L2".into()], 20_002, 80_000).await.unwrap(), ["L2"]);
    assert_eq!(c.message("L1").await.unwrap().unwrap().state, MessageState::Submitted);
}

async fn named_leases(b: Arc<dyn Backend>) {
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    assert!(a.acquire_lease("pop3:legal", 0, 1_000).await.unwrap());
    assert!(!c.acquire_lease("pop3:legal", 500, 1_500).await.unwrap(), "held by a live instance");
    assert!(a.acquire_lease("pop3:legal", 900, 2_000).await.unwrap(), "the holder renews");
    assert!(!c.acquire_lease("pop3:legal", 1_999, 3_000).await.unwrap());
    assert!(c.acquire_lease("pop3:legal", 2_001, 3_000).await.unwrap(), "expired: taken over");
    assert!(!a.acquire_lease("pop3:legal", 2_500, 3_500).await.unwrap(), "the old holder lost it");
    let leases = a.leases().await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].holder.as_str(), leases[0].until, leases[0].since), ("gw-b", 3_000, 2_001));
    a.release_lease("pop3:legal").await.unwrap();
    assert_eq!(a.leases().await.unwrap().len(), 1, "only the holder can give it up");
    c.release_lease("pop3:legal").await.unwrap();
    assert!(a.acquire_lease("pop3:legal", 2_600, 3_600).await.unwrap(), "given up: free at once");
    assert!(c.acquire_lease("watchdog", 2_600, 3_600).await.unwrap(), "leases are independent");
}

async fn rate_slots_are_shared(b: Arc<dyn Backend>) {
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    assert_eq!(a.take_rate_slot("legal", 1_000, 3, 60_000).await.unwrap(), Ok(()));
    assert_eq!(c.take_rate_slot("legal", 2_000, 3, 60_000).await.unwrap(), Ok(()));
    assert_eq!(a.take_rate_slot("legal", 3_000, 3, 60_000).await.unwrap(), Ok(()));
    assert_eq!(c.take_rate_slot("legal", 4_000, 3, 60_000).await.unwrap(), Err(61_000), "three per minute across both");
    assert_eq!(c.take_rate_slot("hr", 4_000, 3, 60_000).await.unwrap(), Ok(()), "per mailbox");
    assert_eq!(a.take_rate_slot("legal", 61_001, 3, 60_000).await.unwrap(), Ok(()), "the first slot left the window");
    assert_eq!(a.take_rate_slot("legal", 61_002, 3, 60_000).await.unwrap(), Err(62_000));
}

fn record(id: &str, uidl: &str) -> FetchedRecord {
    FetchedRecord {
        id: id.into(),
        mailbox_id: "legal".into(),
        uidl: uidl.into(),
        fetched_at: 5_000,
        size: 1234,
        kind: "accettazione".into(),
        subject: "ACCETTAZIONE: Contratto".into(),
        message_id: Some(format!("<{id}@provider>")),
        riferimento: Some("<Q1@corp.it>".into()),
        identificativo: Some("opec-1".into()),
        consegna: None,
        related_message: Some("Q1".into()),
        routed_to: vec!["mario@corp.it".into()],
        injection: Some(format!("J{id}")),
        signature: Some("valid".into()),
        signer: None,
        deleted_at: None,
        fetched_by: None,
    }
}

async fn fetched_is_stored_once(b: Arc<dyn Backend>) {
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    a.insert_message(&new_message("Q1", &["r@x.it"])).await.unwrap();
    let injection = |id: &str| NewMessage { kind: MessageKind::Injection, route: Route::Corporate, ..new_message(id, &["mario@corp.it"]) };
    let update = pecgate::store::ReceiptUpdate {
        message: "Q1".into(),
        recipients: vec![("R@X.IT".into(), RecipientState::Accepted)],
        message_state: Some(MessageState::Accepted),
        provider_id: Some("opec-1".into()),
        event_kind: "accettazione".into(),
        event_detail: "accepted".into(),
    };
    a.commit_fetched(&record("I1", "u-1"), Some(&update), &[injection("JI1")]).await.unwrap();
    // The other instance fetched the same UIDL during a lease handover: refused whole.
    assert!(c.commit_fetched(&record("I2", "u-1"), Some(&update), &[injection("JI2")]).await.is_err());
    assert!(c.message("JI2").await.unwrap().is_none(), "the loser's injection is not queued");
    let got = c.fetched_by_uidl("legal", "u-1").await.unwrap().unwrap();
    assert_eq!((got.id.as_str(), got.fetched_by.as_deref()), ("I1", Some("gw-a")));
    assert_eq!(c.fetched_ids().await.unwrap(), ["I1"]);
    assert_eq!(c.recipients("Q1").await.unwrap()[0].state, RecipientState::Accepted, "recipients match case-insensitively");
    assert_eq!(c.message("Q1").await.unwrap().unwrap().state, MessageState::Accepted);
    assert_eq!(c.find_sent("legal", &[], Some("opec-1")).await.unwrap().map(|m| m.id), Some("Q1".into()));
    assert_eq!(c.find_sent("legal", &["Q1@corp.it"], None).await.unwrap().map(|m| m.id), Some("Q1".into()));
    assert_eq!(c.fetched_for("Q1").await.unwrap().len(), 1);
    c.mark_fetched_deleted("legal", &["u-1".into()], 9_000).await.unwrap();
    assert_eq!(a.fetched("I1").await.unwrap().unwrap().deleted_at, Some(9_000));
}

/// IMAP keeps a folder's UIDVALIDITY in its ids (`folder/validity/uid`):
/// the newest id of a folder, even one whose name holds `%`, `_`, `/` or
/// non-ASCII letters, and never another folder's or mailbox's.
async fn newest_fetched_uidl_by_folder(b: Arc<dyn Backend>) {
    let s = b.open("gw-a").await;
    for (n, (mailbox, uidl)) in [
        ("legal", "IN%X/7/1"),
        ("legal", "IN%X/7/2"),
        ("legal", "IN%X/8/1"),
        ("legal", "IN_X/9/1"),
        ("hr", "IN%X/5/1"),
        ("legal", "Posta è/4/1"),
    ]
    .into_iter()
    .enumerate()
    {
        let n = i64::try_from(n).unwrap();
        let r = FetchedRecord { mailbox_id: mailbox.into(), fetched_at: 5_000 + n, injection: None, ..record(&format!("F{n}"), uidl) };
        s.commit_fetched(&r, None, &[]).await.unwrap();
    }
    assert_eq!(s.newest_fetched_uidl("legal", "IN%X/").await.unwrap().as_deref(), Some("IN%X/8/1"));
    assert_eq!(s.newest_fetched_uidl("legal", "IN_X/").await.unwrap().as_deref(), Some("IN_X/9/1"));
    assert_eq!(s.newest_fetched_uidl("hr", "IN%X/").await.unwrap().as_deref(), Some("IN%X/5/1"));
    assert_eq!(s.newest_fetched_uidl("legal", "Posta è/").await.unwrap().as_deref(), Some("Posta è/4/1"));
    assert_eq!(s.newest_fetched_uidl("legal", "INBOX/").await.unwrap(), None);
    assert_eq!(s.newest_fetched_uidl("legal", "IN").await.unwrap().as_deref(), Some("IN_X/9/1"), "a plain prefix");
    // And by Message-ID, within the mailbox only, oldest first.
    let again = FetchedRecord { fetched_at: 9_000, injection: None, message_id: Some("<F1@provider>".into()), ..record("F9", "IN%X/8/7") };
    s.commit_fetched(&again, None, &[]).await.unwrap();
    let ids = |v: Vec<FetchedRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.fetched_by_message_id("legal", "<F1@provider>").await.unwrap()), ["F1", "F9"]);
    assert!(s.fetched_by_message_id("hr", "<F1@provider>").await.unwrap().is_empty());
    assert!(s.fetched_by_message_id("legal", "<nope@provider>").await.unwrap().is_empty());
}

async fn admin_list_and_search(b: Arc<dyn Backend>) {
    let s = b.open("gw-a").await;
    for (i, id) in ["A1", "A2", "A3"].iter().enumerate() {
        let mut m = new_message(id, &["zeta@x.it", "alfa@x.it", "mid@x.it"]);
        m.created_at = 1_000 + i as i64;
        s.insert_message(&m).await.unwrap();
    }
    s.commit_fetched(&record("I1", "u-1"), None, &[]).await.unwrap();
    let all = s.list_filtered(&ListFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["I1", "A3", "A2", "A1"], "newest first, both directions");
    assert_eq!(all[1].recipients, ["zeta@x.it", "alfa@x.it", "mid@x.it"], "recipients in the order given");
    assert_eq!(all[1].recipient_states, ["queued", "queued", "queued"]);
    // Search ignores case, and % _ \ match themselves.
    let q = |q: &str| ListFilter { q: Some(q.into()), limit: 10, ..Default::default() };
    let hits = s.list_filtered(&q("CONTRATTO a2")).await.unwrap();
    assert_eq!(hits.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["A2"]);
    assert!(s.list_filtered(&q("50%")).await.unwrap().is_empty());
    let cursor = ListFilter { direction: Some("out".into()), after: Some((1_002, "A3".into())), limit: 1, ..Default::default() };
    assert_eq!(s.list_filtered(&cursor).await.unwrap().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["A2"], "cursor");
    let stats = s.queue_stats().await.unwrap();
    assert_eq!(stats, vec![("provider".into(), "legal".into(), 3, 1_000)]);
    assert_eq!(s.waiting_messages(2).await.unwrap().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["A1", "A2"]);
    assert!(s.retry_now("A1", 5_000, "ops").await.unwrap());
    assert!(s.drop_message("A2", 5_000, "ops").await.unwrap());
    assert_eq!(s.message("A2").await.unwrap().unwrap().state, MessageState::Failed);
    s.ping().await.unwrap();
}

async fn instances_are_listed(b: Arc<dyn Backend>) {
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    let info = |id: &str, at: i64, stopped: Option<i64>| InstanceInfo {
        id: id.into(),
        version: "0.1.0".into(),
        started_at: 100,
        heartbeat_at: at,
        smtp: "127.0.0.1:2525".into(),
        admin: "127.0.0.1:9180".into(),
        stopped_at: stopped,
    };
    a.heartbeat(&info("gw-a", 1_000, None), 61_000).await.unwrap();
    c.heartbeat(&info("gw-b", 1_500, None), 61_500).await.unwrap();
    a.heartbeat(&info("gw-a", 2_000, Some(2_000)), 2_000).await.unwrap();
    let all = c.instances().await.unwrap();
    assert_eq!(
        all.iter().map(|i| (i.id.as_str(), i.heartbeat_at, i.stopped_at)).collect::<Vec<_>>(),
        [("gw-a", 2_000, Some(2_000)), ("gw-b", 1_500, None)]
    );
    assert!(c.shared() == (c.dialect() == pecgate::store::sql::Dialect::Postgres));
    assert_eq!(c.instance(), "gw-b");
}

/// Ids the admin search returns for `q`, newest first.
async fn search(s: &SqlStore, q: &str) -> Vec<String> {
    let f = ListFilter { q: Some(q.into()), limit: 10, ..Default::default() };
    s.list_filtered(&f).await.unwrap().into_iter().map(|i| i.id).collect()
}

async fn search_edge_cases(b: Arc<dyn Backend>) {
    let s = b.open("gw-a").await;
    let mut m = new_message("S1", &["protocollo@pec.comune-città.it", "ufficio.legale@pec.esempio.it"]);
    m.subject = "Diffida pratica n. 4711 - Società Cooperativa Città".into();
    m.message_id = "<20260101.a-b_c+d$7@mail.corp.it>".into();
    s.insert_message(&m).await.unwrap();
    let mut m = new_message("S2", &["altro@pec.esempio.it"]);
    m.subject = "Perché il contratto al 50% è scaduto".into();
    m.created_at = 2_000;
    s.insert_message(&m).await.unwrap();
    let mut r = record("F1", "u-1");
    r.subject = "CONSEGNA: Diffida pratica".into();
    r.consegna = Some("protocollo@pec.comune-città.it".into());
    r.identificativo = Some("opec210.20260101.xyz@pec.provider.it".into());
    s.commit_fetched(&r, None, &[]).await.unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("ratica n. 47", &["S1"]),
        ("pratica", &["F1", "S1"]),
        ("DIFFIDA", &["F1", "S1"]),
        ("Soc", &["S1"]),
        ("47", &["S1"]),
        ("ufficio.legale@pec", &["S1"]),
        ("comune-città.it", &["F1", "S1"]),
        ("mario@corp.it", &["S2", "S1"]),
        ("a-b_c+d$7@mail", &["S1"]),
        ("<20260101.a-b_c+d$7@mail.corp.it>", &["S1"]),
        ("a-b%c", &[]),
        ("xyz@pec.provider", &["F1"]),
        ("Società", &["S1"]),
        ("perché", &["S2"]),
        ("perche", &[]),
        ("à", &["F1", "S1"]),
        ("50% è", &["S2"]),
        ("\"contratto\"", &[]),
        ("contratto OR diffida", &[]),
        ("NEAR(contratto", &[]),
        ("contratto*", &[]),
        ("inesistente", &[]),
    ];
    for (q, want) in cases {
        assert_eq!(search(&s, q).await, *want, "search {q:?}");
    }
    let out = ListFilter { q: Some("pratica".into()), direction: Some("out".into()), limit: 10, ..Default::default() };
    assert_eq!(s.list_filtered(&out).await.unwrap().iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["S1"]);
}

/// The recipient counts by (mailbox, state) of PEC sent to providers, recounted through the store's own reads.
async fn recount(s: &SqlStore) -> Vec<(String, String, i64)> {
    let mut n = std::collections::BTreeMap::<(String, String), i64>::new();
    for id in s.message_ids().await.unwrap() {
        if let Route::Provider(mb) = s.message(&id).await.unwrap().unwrap().route {
            for r in s.recipients(&id).await.unwrap() {
                *n.entry((mb.clone(), r.state.as_str().to_owned())).or_default() += 1;
            }
        }
    }
    n.into_iter().map(|((mb, st), n)| (mb, st, n)).collect()
}

async fn recipient_gauges_match_recount(b: Arc<dyn Backend>) {
    let s = b.open("gw-a").await;
    s.insert_message(&new_message("G1", &["a@x.it", "b@x.it", "c@x.it"])).await.unwrap();
    s.insert_message(&new_message("G2", &["a@x.it", "d@x.it"])).await.unwrap();
    s.insert_message(&NewMessage { route: Route::Provider("hr".into()), ..new_message("G3", &["e@x.it"]) }).await.unwrap();
    let corporate = NewMessage { kind: MessageKind::Injection, route: Route::Corporate, ..new_message("J1", &["mario@corp.it"]) };
    s.insert_message(&corporate).await.unwrap();
    let mut counts = s.recipient_state_counts().await.unwrap();
    counts.sort();
    assert_eq!(counts, [("hr".into(), "queued".into(), 1), ("legal".into(), "queued".into(), 5)], "corporate mail is not counted");
    let attempt = Attempt {
        at: 2_000,
        recipients: vec![
            outcome("a@x.it", RecipientState::Submitted, "250 ok"),
            outcome("b@x.it", RecipientState::Submitted, "250 ok"),
            outcome("c@x.it", RecipientState::Failed, "550 no"),
        ],
        state: MessageState::Submitted,
        next_attempt_at: 2_000,
        error: None,
        relay: "sim:465".into(),
    };
    s.record_attempt("G1", &attempt).await.unwrap();
    // The same state again changes nothing.
    s.record_attempt("G1", &attempt).await.unwrap();
    let update = pecgate::store::ReceiptUpdate {
        message: "G1".into(),
        recipients: vec![("A@X.IT".into(), RecipientState::Accepted), ("b@x.it".into(), RecipientState::Accepted)],
        message_state: Some(MessageState::Accepted),
        provider_id: None,
        event_kind: "accettazione".into(),
        event_detail: "accepted".into(),
    };
    s.commit_fetched(&record("R1", "u-1"), Some(&update), &[]).await.unwrap();
    let delivered = pecgate::store::ReceiptUpdate {
        recipients: vec![("a@x.it".into(), RecipientState::Delivered)],
        message_state: None,
        ..update.clone()
    };
    s.commit_fetched(&record("R2", "u-2"), Some(&delivered), &[]).await.unwrap();
    assert!(s.drop_message("G2", 3_000, "ops").await.unwrap());
    let mut counts = s.recipient_state_counts().await.unwrap();
    counts.sort();
    let want: Vec<(String, String, i64)> =
        [("hr", "queued", 1), ("legal", "accepted", 1), ("legal", "delivered", 1), ("legal", "failed", 3)]
            .iter()
            .map(|(m, st, n)| (m.to_string(), st.to_string(), *n))
            .collect();
    assert_eq!(counts, want);
    assert_eq!(counts, recount(&s).await, "incremental counts equal a full recount");
    // Another instance on the same database reads the same counts.
    let mut other = b.open("gw-b").await.recipient_state_counts().await.unwrap();
    other.sort();
    assert_eq!(other, want);
}

/// PIN hashes per (mailbox, user), shared by every instance; wrong PINs kept
/// for the lockout; alarms raised once across instances until cleared.
async fn pins_failures_and_alarms(b: Arc<dyn Backend>) {
    use pecgate::store::PinEntry;
    let a = b.open("gw-a").await;
    let c = b.open("gw-b").await;
    assert_eq!(a.pin_hash("legal", "mario@corp.it").await.unwrap(), None);
    a.set_pin("legal", "Mario@Corp.it", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", 1_000).await.unwrap();
    a.set_pin("hr", "anna@corp.it", "$argon2id$second", 2_000).await.unwrap();
    assert_eq!(
        c.pin_hash("legal", "mario@corp.it").await.unwrap().as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        "another instance sees it; the user is compared in lower case"
    );
    assert_eq!(c.pin_hash("hr", "mario@corp.it").await.unwrap(), None, "per mailbox");
    let entry = |m: &str, u: &str, at| PinEntry { mailbox: m.into(), user: u.into(), set_at: at };
    assert_eq!(c.pins(None).await.unwrap(), [entry("hr", "anna@corp.it", 2_000), entry("legal", "mario@corp.it", 1_000)]);
    assert_eq!(c.pins(Some("legal")).await.unwrap(), [entry("legal", "mario@corp.it", 1_000)]);

    assert_eq!(a.add_pin_failure("legal", "mario@corp.it", 10_000, 0).await.unwrap(), [10_000]);
    assert_eq!(c.add_pin_failure("legal", "MARIO@corp.it", 11_000, 0).await.unwrap(), [10_000, 11_000]);
    assert_eq!(a.add_pin_failure("hr", "mario@corp.it", 11_500, 0).await.unwrap(), [11_500], "per mailbox");
    assert_eq!(a.add_pin_failure("legal", "mario@corp.it", 20_000, 10_500).await.unwrap(), [11_000, 20_000], "old ones forgotten");
    assert_eq!(c.pin_failures("legal", "mario@corp.it", 15_000).await.unwrap(), [20_000]);
    a.clear_pin_failures("legal", "mario@corp.it").await.unwrap();
    assert_eq!(c.pin_failures("legal", "mario@corp.it", 0).await.unwrap(), Vec::<i64>::new());
    a.add_pin_failure("legal", "mario@corp.it", 30_000, 0).await.unwrap();
    a.set_pin("legal", "mario@corp.it", "$argon2id$new", 31_000).await.unwrap();
    assert_eq!(c.pin_failures("legal", "mario@corp.it", 0).await.unwrap(), Vec::<i64>::new(), "a new PIN starts afresh");
    assert_eq!(c.pin_hash("legal", "mario@corp.it").await.unwrap().as_deref(), Some("$argon2id$new"));
    assert!(c.remove_pin("legal", "mario@corp.it").await.unwrap());
    assert!(!a.remove_pin("legal", "mario@corp.it").await.unwrap());
    assert_eq!(a.pins(None).await.unwrap(), [entry("hr", "anna@corp.it", 2_000)]);

    assert!(a.raise_alarm("no-sender:legal", 5_000).await.unwrap(), "first raise tells");
    assert!(!c.raise_alarm("no-sender:legal", 6_000).await.unwrap(), "raised already, by another instance");
    assert_eq!(c.alarms().await.unwrap(), [("no-sender:legal".to_owned(), 5_000)]);
    assert!(c.clear_alarm("no-sender:legal").await.unwrap());
    assert!(!a.clear_alarm("no-sender:legal").await.unwrap());
    assert!(a.raise_alarm("no-sender:legal", 7_000).await.unwrap(), "raised again after it cleared");
}
