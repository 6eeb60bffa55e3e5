//! Faults: disk trouble, a corrupt database, session floods, an untrusted
//! provider certificate, and kill -9 of the `pecgate` binary around DATA.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use pecgate::store::MessageState;

fn msg(subject: &str) -> String {
    format!("From: {LUCA}\r\nTo: a@pec.x.it\r\nSubject: [PEC] {subject}\r\nMessage-ID: <{subject}@azienda.it>\r\n\r\nciao\r\n")
}

#[tokio::test]
async fn unwritable_spool_answers_452_and_recovers() {
    let env = TestEnv::start().await;
    let tmp = env.dir.path().join("spool/tmp");
    // Root ignores permissions, so make the spool unusable another way: tmp/ becomes a file.
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    c.cmd("EHLO mx", "250").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "452 4.3.1").await;
    c.cmd("QUIT", "221").await;
    assert!(env.app().store.list_messages(10).await.unwrap().is_empty(), "nothing half-queued");
    // Space comes back: the same process accepts again.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let reply = env.send(LUCA, &["a@pec.x.it"], &msg("di-nuovo")).await;
    assert!(reply.starts_with("250"), "{reply}");
    env.provider_messages(1).await;
}

/// Runs `pecgate run` with a minimal config on `dir/pecgate.db` (the tests
/// below prepare that file), until it exits.
fn run_on_database(dir: &std::path::Path) -> std::process::Output {
    std::fs::write(dir.join("pw"), "x-secret\n").unwrap();
    let config = dir.join("pecgate.toml");
    std::fs::write(
        &config,
        "[smtp]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"pecgate.db\"\nspool_dir = \"spool\"\n[[mailbox]]\nid = \"legal\"\naddress = \"legal@pec.x.it\"\nusername = \"legal\"\npassword_file = \"pw\"\n[mailbox.smtp]\nhost = \"localhost\"\n[[mailbox.user]]\naddress = \"a@x.it\"\nadmin = true\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pecgate")).args(["run", "--config"]).arg(&config).output().unwrap()
}

#[test]
fn corrupt_database_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is not an SQLite database, and it must not be overwritten".repeat(100);
    std::fs::write(dir.path().join("pecgate.db"), &garbage).unwrap();
    let out = run_on_database(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pecgate.db"), "the error names the file: {stderr}");
    assert_eq!(std::fs::read(dir.path().join("pecgate.db")).unwrap(), garbage, "no data overwritten");
}

#[tokio::test]
async fn session_limit_answers_421() {
    let env = TestEnv::start_with(|t| *t = t.replace("command_timeout_secs = 10", "command_timeout_secs = 10\nmax_sessions = 2")).await;
    let mut a = SmtpProbe::connect(env.smtp_addr()).await;
    a.expect("220").await;
    let mut b = SmtpProbe::connect(env.smtp_addr()).await;
    b.expect("220").await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    assert_eq!(c.reply().await, "421 4.7.0 too many connections, try again later\r\n");
    a.cmd("QUIT", "221").await;
    // A slot is free again once a session ends.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut d = SmtpProbe::connect(env.smtp_addr()).await;
        if d.reply().await.starts_with("220") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn untrusted_provider_certificate_is_refused_and_nothing_is_sent() {
    // Trust a different CA than the one that signed the simulator's certificate.
    let mut env =
        TestEnv::prepare(|t| *t = t.replace("ca_file = \"ca.pem\"", "ca_file = \"other-ca.pem\""), pecgate::clock::system(), false).await;
    std::fs::write(env.dir.path().join("other-ca.pem"), pecgate::tls::TestPki::generate(&["localhost"]).unwrap().ca_pem).unwrap();
    env.restart().await;
    let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg("cert")).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    let m = loop {
        let m = env.app().store.message(&qid).await.unwrap().unwrap();
        if m.attempts > 0 {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(m.state, MessageState::Queued, "kept for retry");
    let err = m.last_error.unwrap_or_default();
    assert!(err.contains("TLS with localhost") && err.to_lowercase().contains("certificate"), "{err}");
    assert!(env.provider.bag.is_empty(), "never sent in clear or to an untrusted server");
}

#[tokio::test]
async fn passwords_are_not_in_the_store_or_spool() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg("segreti")).await);
    env.wait_state(&qid, MessageState::Submitted).await;
    env.poll("legal").await;
    env.corporate_messages(2).await;
    let files = common::files_under(env.dir.path(), &["legal.pw", "hr.pw"]);
    assert!(files.iter().any(|p| p.to_string_lossy().ends_with("pecgate.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for pw in [LEGAL_PASSWORD, HR_PASSWORD] {
            assert!(!bytes.windows(pw.len()).any(|w| w == pw.as_bytes()), "{pw} found in {}", f.display());
        }
    }
}

struct Gateway {
    child: Child,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the binary on a free port; another port is tried if a parallel
/// test took the one picked (the binary then exits at once).
async fn spawn_gateway(env: &TestEnv) -> (Gateway, std::net::SocketAddr) {
    for _ in 0..5 {
        let port = free_port();
        let config = env.dir.path().join("pecgate.toml");
        let text = env.config_text.replace("listen = \"127.0.0.1:0\"\nhostname", &format!("listen = \"127.0.0.1:{port}\"\nhostname"));
        std::fs::write(&config, text).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pecgate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut gw = Gateway { child };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                // Make sure it is our gateway, not a server of a parallel test.
                let mut probe = SmtpProbe::connect(addr).await;
                if probe.reply().await.contains("pecgate.test ESMTP pecgate") {
                    return (gw, addr);
                }
                break;
            }
            if gw.child.try_wait().unwrap().is_some() || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("gateway did not start");
}

#[tokio::test]
async fn kill_9_around_data_loses_only_what_was_not_acknowledged() {
    let env = TestEnv::prepare(|_| {}, pecgate::clock::system(), false).await;

    // (a) killed during DATA, before the reply: the client never got 250.
    let (mut gw, addr) = spawn_gateway(&env).await;
    let mut c = SmtpProbe::connect(addr).await;
    c.expect("220").await;
    c.cmd("EHLO mx", "250").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    c.write(format!("From: {LUCA}\r\nTo: a@pec.x.it\r\nSubject: [PEC] a-meta\r\n\r\nmeta del messaggio\r\n").as_bytes()).await;
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();
    assert_eq!(c.reply().await, "", "no reply: the connection died with the process");

    // (b) killed right after 250: the message must be delivered after restart.
    let (mut gw, addr) = spawn_gateway(&env).await;
    // The provider is slow, so the message is still queued when the process dies.
    env.provider.faults.add(pecgate::sim::provider::Stage::Mail, pecgate::sim::provider::FaultAction::Delay(Duration::from_secs(3600)), 1);
    let mut c = SmtpProbe::connect(addr).await;
    c.expect("220").await;
    c.cmd("EHLO mx", "250").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&msg("dopo-250")).await;
    assert!(reply.starts_with("250"), "{reply}");
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();

    let _gw = spawn_gateway(&env).await;
    let got = env.provider_messages(1).await;
    assert_eq!(got[0].header("Subject").as_deref(), Some("dopo-250"));
    assert!(!got.iter().any(|m| m.text().contains("meta del messaggio")), "the unacknowledged message was not half-queued");
    // Only one submission (the one stalled before the crash never completed).
    assert_eq!(env.provider.bag.len(), 1);
    let spool: Vec<_> = std::fs::read_dir(env.dir.path().join("spool/tmp")).unwrap().collect();
    assert!(spool.is_empty(), "the partial DATA file was removed at restart");
}

/// Waits for a message state, then returns how many attempts it took.
async fn attempts_until(env: &TestEnv, qid: &str, state: MessageState) -> u32 {
    env.wait_state(qid, state).await.attempts
}

#[tokio::test]
async fn provider_faults_are_retried_and_delivered_once() {
    use pecgate::sim::provider::{FaultAction, Stage};
    let cases: Vec<(&str, Stage, FaultAction, u32)> = vec![
        // unreachable for a while: the connection drops at once, three times
        ("giu", Stage::Auth, FaultAction::Disconnect, 4),
        // dropped in the middle of the transaction
        ("caduta", Stage::Data, FaultAction::Disconnect, 2),
        // slower than timeout_secs
        ("lento", Stage::Mail, FaultAction::Delay(Duration::from_secs(3)), 2),
    ];
    // A fresh gateway per case: no pooled connection blurs the attempt count.
    for (subject, stage, action, attempts) in cases {
        let env = TestEnv::start_with(|t| *t = t.replacen("timeout_secs = 5", "timeout_secs = 1", 1)).await;
        env.provider.faults.add(stage, action, (attempts - 1) as usize);
        let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg(subject)).await);
        assert_eq!(attempts_until(&env, &qid, MessageState::Submitted).await, attempts, "{subject}");
        let got = env.provider_messages(1).await;
        assert_eq!(got.len(), 1, "{subject}: delivered exactly once");
        let deferred = env.app().store.events(&qid).await.unwrap().iter().filter(|e| e.kind == "deferred").count();
        assert_eq!(deferred as u32, attempts - 1, "{subject}: each failed attempt is in the history");
    }
}

#[tokio::test]
async fn pop3_retr_failure_loses_nothing() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg("retr")).await);
    env.wait_state(&qid, MessageState::Submitted).await;
    // The server lists the messages, then refuses to RETR one.
    env.provider.pop3_faults.arm(pecgate::sim::pop3::Fault::RetrError, 1);
    assert!(env.app().poll("legal").await.unwrap().is_err());
    assert_eq!(env.poll("legal").await.fetched, 2, "fetched on the next poll");
    env.corporate_messages(2).await;
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(env.capture.bag.len(), 2, "nothing lost, nothing twice");
}

#[test]
fn locked_database_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pecgate.db");
    // Another process holds an exclusive lock for as long as the test needs.
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('CREATE TABLE IF NOT EXISTS other(x)')\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\ntime.sleep(120)")
        .arg(&db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let before = std::fs::read(&db).unwrap();
    let out = run_on_database(dir.path());
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pecgate.db") && stderr.contains("locked"), "{stderr}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing written while locked");
}

#[tokio::test]
async fn kill_9_after_injection_before_dele_injects_once_and_deletes_later() {
    // retention = delete: the provider's copy goes only after the injection
    // reached the corporate server, at a later poll. The gateway dies in between.
    let env =
        TestEnv::prepare(|t| *t = t.replacen("retention = \"leave\"", "retention = \"delete\"", 1), pecgate::clock::system(), true).await;
    let mut webmail = pecgate::pec::BuildParams::sample(pecgate::pec::Kind::Accettazione);
    webmail.to = LEGAL.into();
    env.provider.retrieval.deliver(LEGAL, pecgate::sim::receipts::build_signed(&mut webmail));
    let (mut gw, _) = spawn_gateway(&env).await;
    // The start-up poll fetches it; the injection then reaches the corporate server.
    let got = env.corporate_messages(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(env.provider.retrieval.mailstore.len(LEGAL), 1, "not deleted in the poll that fetched it");
    // Kill once the injection's 250 is committed (before that, it is the documented
    // at-least-once window and the injection would be sent again).
    let store = pecgate::store::sql::SqlStore::open_sqlite(&env.dir.path().join("pecgate.db"), "test").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        use pecgate::store::Store;
        let done = store
            .list_messages(10)
            .await
            .unwrap()
            .iter()
            .any(|m| m.kind == pecgate::store::MessageKind::Injection && m.state == MessageState::Submitted);
        if done {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "injection never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    // Restart: the start-up poll sees a committed, injected message: DELE, no second injection.
    let _gw = spawn_gateway(&env).await;
    let store = &env.provider.retrieval.mailstore;
    assert!(store.wait_for(WAIT, |s| s.len(LEGAL) == 0).await, "deleted after the restart");
    assert_eq!(env.capture.bag.len(), 1, "injected exactly once");
}
