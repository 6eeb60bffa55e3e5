//! PIN for sending (`require_pin`): the right PIN in the tag (plain or RFC
//! 2047) is accepted and leaves no trace anywhere (provider, store, spool,
//! debug log, admin API and page); a wrong, missing or unset PIN gets 550;
//! too many wrong PINs lock the user out and the mailbox admin is told once.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use common::*;
use pecgate::clock::{Clock, ManualClock};
use pecgate::store::{MessageKind, MessageState};

/// Test PINs (CI greps the debug log of the test run for both).
const PIN: &str = "739184620573";
const OTHER_PIN: &str = "481516234200";

/// Every log line of this test binary, at debug (installed before the
/// common test subscriber, which then leaves it in place); with
/// `PECGATE_TEST_LOG` set (CI's secret grep) also copied to stderr.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let tee = std::env::var_os("PECGATE_TEST_LOG").is_some();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone(), tee))
            .try_init();
        buf
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>, bool);

impl Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        if self.1 {
            std::io::stderr().write_all(b)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

/// legal requires a PIN; three wrong ones in 10 minutes lock out for an hour.
async fn start(clock: Arc<dyn Clock>) -> TestEnv {
    log_buffer();
    let env = TestEnv::start_with_clock(
        |t| {
            *t = t.replacen("receipt_type = \"breve\"", "receipt_type = \"breve\"\nrequire_pin = true", 1);
            *t = t.replacen("[[mailbox]]", "[pin]\nmax_failures = 3\nwindow_secs = 600\nlockout_secs = 3600\n\n[[mailbox]]", 1);
        },
        clock,
    )
    .await;
    let hash = pecgate::pin::hash(PIN).unwrap();
    env.app().store.set_pin("legal", MARIO, &hash, 1).await.unwrap();
    env.app().store.set_pin("legal", LUCA, &pecgate::pin::hash(OTHER_PIN).unwrap(), 1).await.unwrap();
    env
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: ufficio@pec.fornitore.it\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTesto.\r\n"
    )
}

async fn send(env: &TestEnv, from: &str, subject: &str) -> String {
    env.send(from, &["ufficio@pec.fornitore.it"], &message(from, subject)).await.trim_end().to_owned()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_pin_is_accepted_and_leaves_no_trace() {
    let env = start(pecgate::clock::system()).await;
    let encoded = format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(format!("[PEC:legal {PIN}] Città")));
    let plain = send(&env, MARIO, &format!("[PEC:legal:{PIN}] Diffida")).await;
    assert!(plain.starts_with("250 "), "{plain}");
    let enc = send(&env, MARIO, &encoded).await;
    assert!(enc.starts_with("250 "), "{enc}");
    let ids = [queue_id(&plain), queue_id(&enc)];
    for id in &ids {
        env.wait_state(id, MessageState::Submitted).await;
    }

    // What the provider received: the tag and PIN are gone, the subjects are right.
    let got = env.provider_messages(2).await;
    let mut subjects: Vec<String> = got.iter().map(|m| m.header("Subject").unwrap_or_default()).collect();
    subjects.sort();
    assert_eq!(subjects, ["=?UTF-8?B?Q2l0dMOg?=", "Diffida"]);
    for m in &got {
        assert!(!contains(&m.data, PIN), "PIN reached the provider: {}", m.text());
    }
    // The store as the admin API shows it, and the page.
    let admin = env.app().admin_addr;
    let mut pages = vec!["/".to_owned(), "/api/v1/messages".to_owned(), "/api/v1/mailboxes".to_owned()];
    for id in &ids {
        pages.push(format!("/api/v1/messages/{id}"));
        pages.push(format!("/api/v1/messages/{id}/raw"));
    }
    for path in &pages {
        let (code, body) = http_get(admin, path).await;
        assert_eq!(code, 200, "{path}");
        assert!(!body.contains(PIN), "PIN on the admin side at {path}");
    }
    let (_, list) = http_get(admin, "/api/v1/messages").await;
    assert!(list.contains("Diffida") && list.contains("Città"), "the admin list shows the stripped subjects: {list}");
    // Every file pecgate wrote: database (with its WAL), spool.
    let files = files_under(env.dir.path(), &[]);
    assert!(files.iter().any(|f| f.to_string_lossy().contains("spool")), "spool files exist: {files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!contains(&bytes, PIN), "PIN in {}", f.display());
    }
    // Every table of the store, row by row.
    let dump = dump_sqlite(&env.dir.path().join("pecgate.db")).await;
    assert!(dump.contains("Diffida") && dump.contains("$argon2id$"), "the dump has the rows");
    assert!(!dump.contains(PIN), "PIN in the store");
    // The debug log of the whole run (it has these sessions: the capture works).
    let log = log_text();
    assert!(log.contains(&ids[0]) && log.contains("received"), "the debug log was captured");
    assert!(!log.contains(PIN) && !log.contains(OTHER_PIN), "a PIN in the debug log");
}

/// Every row of every table of a SQLite database, as text.
async fn dump_sqlite(path: &std::path::Path) -> String {
    use sqlx::{Column, Row};
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetch_all(&pool).await.unwrap();
    assert!(tables.iter().any(|t| t == "pins"), "{tables:?}");
    let mut out = String::new();
    for t in tables {
        let sql = format!("SELECT * FROM \"{t}\"");
        let Ok(rows) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await else { continue };
        for r in rows {
            for (i, c) in r.columns().iter().enumerate() {
                let v = r.try_get::<String, _>(i).or_else(|_| r.try_get::<i64, _>(i).map(|n| n.to_string())).unwrap_or_default();
                out.push_str(&format!("{t}.{}={v}\n", c.name()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_missing_and_unset_pins_are_refused() {
    let env = start(pecgate::clock::system()).await;
    let wrong = send(&env, MARIO, &format!("[PEC:legal:{OTHER_PIN}] Diffida")).await;
    assert_eq!(wrong, format!("550 5.7.1 wrong PIN for {MARIO} on PEC mailbox {LEGAL}"));
    let malformed = send(&env, MARIO, "[PEC:legal:12] Diffida").await;
    assert_eq!(malformed, format!("550 5.7.1 wrong PIN for {MARIO} on PEC mailbox {LEGAL}"));
    let missing = send(&env, MARIO, "[PEC:legal] Diffida").await;
    assert_eq!(missing, format!("550 5.7.1 PEC mailbox {LEGAL} requires your PIN in the subject tag, e.g. [PEC:legal:PIN]"));
    env.app().store.remove_pin("legal", LUCA).await.unwrap();
    let unset = send(&env, LUCA, &format!("[PEC:legal:{OTHER_PIN}] Diffida")).await;
    assert_eq!(
        unset,
        format!(
            "550 5.7.1 no PIN is set for {LUCA} on PEC mailbox {LEGAL}; the admin must run: pecgate pin set --mailbox legal --user {LUCA}"
        )
    );
    // hr does not require a PIN.
    let hr = send(&env, MARIO, "[PEC:hr] Diffida").await;
    assert!(hr.starts_with("250 "), "{hr}");
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    for reason in ["wrong", "missing", "locked"] {
        let series = format!("pecgate_pin_failures_total{{mailbox=\"legal\",reason=\"{reason}\"}}");
        assert!(metric_value(&metrics, &series).is_some(), "{series} in {metrics}");
    }
    let wrong_count = metric_value(&metrics, "pecgate_pin_failures_total{mailbox=\"legal\",reason=\"wrong\"}").unwrap();
    assert!(wrong_count >= 2.0, "{wrong_count}");
    // Nothing was queued for legal, the first accepted message is hr's.
    let queued = env.app().store.list_messages(10).await.unwrap();
    assert_eq!(queued.iter().filter(|m| m.kind == MessageKind::Pec).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_max_failures_and_admin_told_once() {
    let clock = ManualClock::new(1_800_000_000_000);
    let env = start(clock.clone()).await;
    let subject = |pin: &str| format!("[PEC:legal:{pin}] Diffida");
    for _ in 0..2 {
        let r = send(&env, LUCA, &subject(PIN)).await;
        assert_eq!(r, format!("550 5.7.1 wrong PIN for {LUCA} on PEC mailbox {LEGAL}"));
        clock.advance(60_000);
    }
    // The third wrong PIN within 10 minutes: locked out for an hour from it.
    let third = send(&env, LUCA, &subject(PIN)).await;
    let until = "2027-01-15 09:02:00 UTC"; // 1_800_000_120_000 + 3_600_000 ms
    assert_eq!(third, format!("550 5.7.1 {LUCA} is locked out of PEC mailbox {LEGAL} until {until} after too many wrong PINs"));
    // Even the right PIN is refused while locked out; nothing new is recorded.
    clock.advance(60_000);
    let locked = send(&env, LUCA, &subject(OTHER_PIN)).await;
    assert!(locked.contains("is locked out") && locked.contains(until), "{locked}");
    // Other users are not locked out.
    let mario = send(&env, MARIO, &subject(PIN)).await;
    assert!(mario.starts_with("250 "), "{mario}");

    // The admin (Mario) is told once, queued for the corporate server.
    let notices: Vec<_> = env.app().store.list_messages(20).await.unwrap().into_iter().filter(|m| m.kind == MessageKind::Notice).collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let got = env.corporate_messages(1).await;
    assert_eq!(got[0].rcpts, [MARIO]);
    let text = got[0].text();
    assert!(text.contains(LUCA) && text.contains(until) && !text.contains(PIN) && !text.contains(OTHER_PIN), "{text}");

    // After the lockout, the right PIN works and the failures are forgotten.
    clock.advance(3_600_000);
    let after = send(&env, LUCA, &subject(OTHER_PIN)).await;
    assert!(after.starts_with("250 "), "{after}");
    assert_eq!(env.app().store.pin_failures("legal", LUCA, 0).await.unwrap(), Vec::<i64>::new());
    let notices = env.app().store.list_messages(20).await.unwrap().into_iter().filter(|m| m.kind == MessageKind::Notice).count();
    assert_eq!(notices, 1, "told once");
}

/// `pecgate pin set|list|remove` on the store of a configuration: the PIN
/// comes from standard input (no terminal), never an argument, and neither
/// it nor its hash is printed.
#[test]
fn pin_commands() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "x\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.path().join("pecgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"pecgate.db\"\nspool_dir = \"spool\"\n\n[[mailbox]]\nid = \"legal\"\naddress = \"{LEGAL}\"\nusername = \"{LEGAL}\"\npassword_file = \"pw\"\nrequire_pin = true\n[mailbox.smtp]\nhost = \"smtps.pec.example.it\"\n[[mailbox.user]]\naddress = \"{MARIO}\"\nadmin = true\n[[mailbox.user]]\naddress = \"{LUCA}\"\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pecgate"))
            .args(["pin"])
            .args(args)
            .arg("--config")
            .arg(&config)
            .env_remove("PECGATE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains(PIN) && !text.contains("$argon2"), "{text}");
        (out.status.code(), text)
    };
    let (code, text) = run(&["set", "--mailbox", "legal", "--user", "Mario.Rossi@azienda.it"], &format!("{PIN}\n"));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("PIN set for {MARIO} on mailbox legal")), "{text}");
    let (code, text) = run(&["set", "--mailbox", "legal", "--user", LUCA], "12ab\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("a PIN is 4 to 12 digits"), "{text}");
    let (code, text) = run(&["set", "--mailbox", "nope", "--user", LUCA], "123456\n");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no mailbox \"nope\""), "{text}");
    let (code, text) = run(&["list"], "");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(MARIO) && text.contains(&format!("mailbox legal requires a PIN; without one: {LUCA}")), "{text}");
    let (code, text) = run(&["remove", "--mailbox", "legal", "--user", MARIO], "");
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["remove", "--mailbox", "legal", "--user", MARIO], "");
    assert_eq!(code, Some(2), "{text}");
    let (_, text) = run(&["list", "--mailbox", "legal"], "");
    assert!(!text.contains(&format!("legal            {MARIO}")), "{text}");
}
