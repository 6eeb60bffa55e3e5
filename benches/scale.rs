//! Store at scale: fills a store with N sent PEC messages (3 recipients each,
//! their events, an acceptance and 3 delivery receipts) and N fetched
//! messages, straight into the tables in bulk transactions (not through SMTP),
//! then times what the admin API and `/metrics` read (p50 and p99 of 50 runs
//! each), store open time and size on disk.
//!
//! Run: `cargo bench --bench scale -- [N]` (default 1,000,000; `SCALE_N` works
//! too). SQLite in `/tmp/pecgate-scale-*` (removed at the end unless
//! `SCALE_KEEP=1`); PostgreSQL too when `PECGATE_BENCH_PG_URL` names an empty
//! database.

use std::time::{Duration, Instant};

use pecgate::store::sql::SqlStore;
use pecgate::store::{ListFilter, Store};
use sqlx::{AnyPool, AssertSqlSafe};

const MAILBOXES: usize = 8;
const COMPANIES: &[&str] = &[
    "Rossi",
    "Bianchi",
    "Società Cooperativa Città",
    "Ferrari",
    "Esposito",
    "Romano",
    "Colombo",
    "Ricci",
    "Marino",
    "Greco",
    "Bruno",
    "Gallo",
    "Conti",
    "De Luca",
    "Mancini",
    "Costa",
    "Giordano",
    "Rizzo",
    "Lombardi",
    "Moretti",
    "Barbieri",
    "Fontana",
    "Santoro",
    "Mariani",
    "Rinaldi",
    "Caruso",
    "Ferrara",
    "Galli",
    "Martini",
    "Leone",
    "Longo",
    "Gentile",
    "Martinelli",
    "Vitale",
    "Lombardo",
    "Serra",
    "Coppola",
    "De Santis",
    "D'Angelo",
    "Marchetti",
    "Parisi",
    "Villa",
    "Conte",
    "Ferraro",
    "Ferri",
    "Fabbri",
    "Bianco",
    "Marini",
    "Grasso",
    "Valentini",
];
const SUBJECTS: &[&str] = &[
    "Fattura n. {n} del 2026 - {c}",
    "Diffida e messa in mora pratica {n} - {c}",
    "Trasmissione contratto di fornitura {n} ({c})",
    "Comunicazione ai sensi dell'art. 1219 c.c. rif. {n} {c}",
    "Risposta alla Vostra nota prot. {n} - {c} S.r.l.",
];
const T0: i64 = 1_767_225_600_000; // 2026-01-01

fn subject(i: usize) -> String {
    SUBJECTS[i % SUBJECTS.len()].replace("{n}", &format!("{}/{}", i % 9973, i)).replace("{c}", COMPANIES[(i / 7) % COMPANIES.len()])
}
fn rcpt(i: usize, k: usize) -> String {
    format!("ufficio.protocollo{}@pec.comune-{}.it", (i * 3 + k) % 50_000, (i * 7 + k) % 7919)
}
fn msgid(i: usize) -> String {
    format!("<{:016x}.{i}@mail.azienda-esempio.it>", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
fn id(i: usize) -> String {
    format!("m{:012x}{i:08}", (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 16)
}
fn created(i: usize) -> i64 {
    T0 + i as i64 * 1_000
}

/// Recipient states as a real store holds them: mostly delivered.
fn rstate(i: usize, k: usize) -> &'static str {
    match (i * 3 + k) % 100 {
        0..=84 => "delivered",
        85..=89 => "accepted",
        90..=93 => "no_receipt_expected",
        94..=95 => "warned",
        96..=97 => "delivery_error",
        _ => "failed",
    }
}

fn values(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}

type Q<'a> = sqlx::query::Query<'a, sqlx::Any, sqlx::any::AnyArguments>;

fn q(pg: bool, sql: String) -> Q<'static> {
    let sql = if pg { pecgate::store::sql::to_postgres(&sql) } else { sql };
    sqlx::query(AssertSqlSafe(sql))
}

/// Bulk insert in batches of 200 messages per multi-row statement, 10,000 per transaction.
async fn fill(pool: &AnyPool, pg: bool, n: usize) {
    let batch = 200;
    let mut tx = pool.begin().await.unwrap();
    let mut start = 0;
    let t = Instant::now();
    while start < n {
        let end = (start + batch).min(n);
        let count = end - start;
        let mut m = q(
            pg,
            format!(
                "INSERT INTO messages (id, kind, route, mailbox_id, mail_from, original_sender, message_id, subject, size, state, attempts,
                 created_at, next_attempt_at, updated_at, provider_id) VALUES {}",
                values(count, 15)
            ),
        );
        let mut r =
            q(pg, format!("INSERT INTO recipients (message_id, address, state, last_reply, updated_at) VALUES {}", values(count * 3, 5)));
        let mut e = q(pg, format!("INSERT INTO events (message_id, rcpt, at, kind, detail, instance) VALUES {}", values(count * 9, 6)));
        let mut f = q(
            pg,
            format!(
                "INSERT INTO fetched (id, mailbox_id, uidl, fetched_at, size, kind, subject, message_id, riferimento, identificativo,
                 consegna, related_message, routed_to, signature, fetched_by) VALUES {}",
                values(count * 5, 15)
            ),
        );
        for i in start..end {
            let at = created(i);
            let mb = format!("mailbox{}", i % MAILBOXES);
            let states: Vec<&str> = (0..3).map(|k| rstate(i, k)).collect();
            let mstate = if i % 1000 == 0 {
                "queued"
            } else if states.iter().all(|s| *s == "failed") {
                "failed"
            } else {
                "accepted"
            };
            let sender = format!("utente{}@azienda-esempio.it", i % 500);
            m = m
                .bind(id(i))
                .bind("pec")
                .bind("provider")
                .bind(mb.clone())
                .bind(format!("{mb}@pec.azienda-esempio.it"))
                .bind(sender)
                .bind(msgid(i))
                .bind(subject(i))
                .bind(20_000 + (i % 50_000) as i64)
                .bind(mstate)
                .bind(1i64)
                .bind(at)
                .bind(at)
                .bind(at + 60_000)
                .bind(format!("opec210.{i}@pec.provider.it"));
            for (k, st) in states.iter().enumerate() {
                r = r.bind(id(i)).bind(rcpt(i, k)).bind(*st).bind("250 2.0.0 Ok: queued as 4F3A2B1C").bind(at + 60_000);
            }
            let mut ev = vec![
                (None, at, "received", "SMTP from 10.0.0.5 as utente@azienda-esempio.it".to_owned()),
                (None, at, "queued", format!("to provider of mailbox {mb}")),
                (None, at + 2_000, "submitted", "relay=smtps.pec.provider.it".to_owned()),
            ];
            for (k, st) in states.iter().enumerate() {
                ev.push((Some(rcpt(i, k)), at + 2_000, "submitted", "relay=smtps.pec.provider.it reply=250 2.0.0 Ok".to_owned()));
                ev.push((Some(rcpt(i, k)), at + 60_000, *st, "ricevuta di avvenuta consegna".to_owned()));
            }
            for (rc, a, kind, detail) in ev {
                e = e.bind(id(i)).bind(rc).bind(a).bind(kind).bind(detail).bind("bench");
            }
            for j in 0..5 {
                let (kind, subj, consegna, related) = match j {
                    0 => ("accettazione", format!("ACCETTAZIONE: {}", subject(i)), None, Some(id(i))),
                    1..=3 => ("avvenuta-consegna", format!("CONSEGNA: {}", subject(i)), Some(rcpt(i, j - 1)), Some(id(i))),
                    _ => (
                        "posta-certificata",
                        format!("POSTA CERTIFICATA: {}", subject(i + n)),
                        Some(format!("{mb}@pec.azienda-esempio.it")),
                        None,
                    ),
                };
                f = f
                    .bind(format!("f{j}{}", id(i)))
                    .bind(mb.clone())
                    .bind(format!("UIDL{j}-{i}"))
                    .bind(at + 30_000 + j as i64)
                    .bind(8_000 + (i % 5_000) as i64)
                    .bind(kind)
                    .bind(subj)
                    .bind(format!("<opec210.{i}.{j}@pec.provider.it>"))
                    .bind(if j < 4 { Some(msgid(i)) } else { None })
                    .bind(format!("opec210.{i}@pec.provider.it"))
                    .bind(consegna)
                    .bind(related)
                    .bind("utente@azienda-esempio.it")
                    .bind("valid")
                    .bind("bench");
            }
        }
        m.execute(&mut *tx).await.unwrap();
        r.execute(&mut *tx).await.unwrap();
        e.execute(&mut *tx).await.unwrap();
        f.execute(&mut *tx).await.unwrap();
        start = end;
        if start % 10_000 == 0 || start == n {
            tx.commit().await.unwrap();
            tx = pool.begin().await.unwrap();
            if start % 100_000 == 0 {
                eprintln!("  {start} messages in {:.0?}", t.elapsed());
            }
        }
    }
    tx.commit().await.unwrap();
}

/// p50 and p99 (ms) of `runs` calls of `f(i)`.
async fn time<F, Fut>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut d: Vec<Duration> = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        f(i).await;
        d.push(t.elapsed());
    }
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    (ms(d[runs / 2]), ms(d[(runs * 99).div_ceil(100) - 1]))
}

fn filter() -> ListFilter {
    ListFilter { limit: 51, ..Default::default() }
}

async fn measure(store: &SqlStore, n: usize, label: &str, open: Duration, size: Option<u64>) {
    let runs = 50;
    let pick = |i: usize| (i * 7919 + 13) % n;
    let mut rows: Vec<(String, (f64, f64))> = Vec::new();
    rows.push((
        "list, first page".into(),
        time(runs, |_| async { assert!(!store.list_filtered(&filter()).await.unwrap().is_empty()) }).await,
    ));
    rows.push((
        "list, mailbox + status=failed".into(),
        time(runs, |i| async move {
            let f = ListFilter { mailbox: Some(format!("mailbox{}", i % MAILBOXES)), status: Some("failed".into()), ..filter() };
            store.list_filtered(&f).await.unwrap();
        })
        .await,
    ));
    rows.push((
        "list, mailbox, direction=in".into(),
        time(runs, |i| async move {
            let f = ListFilter { mailbox: Some(format!("mailbox{}", i % MAILBOXES)), direction: Some("in".into()), ..filter() };
            assert!(!store.list_filtered(&f).await.unwrap().is_empty());
        })
        .await,
    ));
    rows.push((
        "list, deep cursor page".into(),
        time(runs, |i| async move {
            let at = created(pick(i));
            let f = ListFilter { after: Some((at, "m".into())), ..filter() };
            store.list_filtered(&f).await.unwrap();
        })
        .await,
    ));
    rows.push((
        "detail".into(),
        time(runs, |i| async move {
            let mid = id(pick(i));
            store.message(&mid).await.unwrap().unwrap();
            store.events(&mid).await.unwrap();
            store.recipients(&mid).await.unwrap();
            assert_eq!(store.fetched_for(&mid).await.unwrap().len(), 4);
        })
        .await,
    ));
    rows.push((
        "search, subject word".into(),
        time(runs, |i| async move {
            let c = COMPANIES[i % COMPANIES.len()];
            let word = c.split(' ').next_back().unwrap();
            assert!(!store.list_filtered(&ListFilter { q: Some(word.into()), ..filter() }).await.unwrap().is_empty());
        })
        .await,
    ));
    rows.push((
        "search, address".into(),
        time(runs, |i| async move {
            let a = rcpt(pick(i), 1);
            assert!(!store.list_filtered(&ListFilter { q: Some(a), ..filter() }).await.unwrap().is_empty());
        })
        .await,
    ));
    rows.push((
        "search, Message-ID".into(),
        time(runs, |i| async move {
            let m = msgid(pick(i));
            let m = m.trim_matches(['<', '>']);
            assert!(!store.list_filtered(&ListFilter { q: Some(m.into()), ..filter() }).await.unwrap().is_empty());
        })
        .await,
    ));
    rows.push((
        "search, no match".into(),
        time(runs, |i| async move {
            let q = format!("nessuno{i}@altrove.example");
            assert!(store.list_filtered(&ListFilter { q: Some(q), ..filter() }).await.unwrap().is_empty());
        })
        .await,
    ));
    // What refresh_store_gauges reads at each scrape.
    rows.push((
        "/metrics store gauges".into(),
        time(runs, |_| async {
            store.queue_stats().await.unwrap();
            store.recipient_state_counts().await.unwrap();
        })
        .await,
    ));
    println!("\n{label}, N = {n}");
    println!("| query | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: |");
    for (name, (p50, p99)) in rows {
        println!("| {name} | {p50:.2} | {p99:.2} |");
    }
    println!("| store open (start-up) | {:.0} ms | |", open.as_secs_f64() * 1000.0);
    if let Some(s) = size {
        println!("| size on disk | {:.0} MiB | |", s as f64 / 1048576.0);
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p).unwrap().filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
}

#[tokio::main]
async fn main() {
    sqlx::any::install_default_drivers();
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace(['_', ','], "").parse().ok())
        .or_else(|| std::env::var("SCALE_N").ok()?.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::Builder::new().prefix("pecgate-scale-").tempdir_in("/tmp").unwrap();
    let path = dir.path().join("scale.db");
    drop(SqlStore::open_sqlite(&path, "bench").await.unwrap());
    {
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql("PRAGMA synchronous = OFF").execute(&pool).await.unwrap();
        let t = Instant::now();
        fill(&pool, false, n).await;
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE").execute(&pool).await.unwrap();
        eprintln!("sqlite: filled {n} in {:.1?}", t.elapsed());
        pool.close().await;
    }
    let t = Instant::now();
    let store = SqlStore::open_sqlite(&path, "bench").await.unwrap();
    let open = t.elapsed();
    measure(&store, n, "SQLite", open, Some(dir_size(dir.path()))).await;
    drop(store);
    if std::env::var("SCALE_KEEP").is_ok() {
        eprintln!("kept {}", dir.keep().display());
    }

    if let Ok(url) = std::env::var("PECGATE_BENCH_PG_URL") {
        drop(SqlStore::open_postgres(&url, 4, "bench").await.unwrap());
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let t = Instant::now();
        fill(&pool, true, n).await;
        sqlx::raw_sql("ANALYZE").execute(&pool).await.unwrap();
        eprintln!("postgres: filled {n} in {:.1?}", t.elapsed());
        let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&pool).await.unwrap();
        pool.close().await;
        let t = Instant::now();
        let store = SqlStore::open_postgres(&url, 4, "bench").await.unwrap();
        measure(&store, n, "PostgreSQL", t.elapsed(), Some(size as u64)).await;
    }
}
