//! Live configuration: mail keeps flowing while the configuration changes
//! five times (user added, user removed, provider password changed,
//! mailbox deactivated, an invalid change). No SMTP session is dropped,
//! nothing acknowledged is lost or sent twice, and each change shows in
//! behaviour from the next session on.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pecgate::store::MessageState;
use tokio::sync::watch;

const GIULIA: &str = "giulia.neri@azienda.it";
const NEW_HR_PASSWORD: &str = "pw-HR-rotated-never-log-me";
/// Upper bound on messages per traffic loop (the loops also stop when told).
const MAX_LOOP: usize = 400;

fn pec(from: &str, to: &str, subject: &str) -> String {
    let id = subject.replace(['[', ']', ':', ' '], "");
    format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}@azienda.it>\r\n\r\nTesto di prova.\r\n")
}

/// Subjects (tag stripped) acknowledged with 250, by the loop that sent them.
type Acked = Arc<Mutex<Vec<String>>>;

/// One SMTP session held open for the whole test, a message after another.
async fn long_session(env_addr: std::net::SocketAddr, acked: Acked, mut stop: watch::Receiver<bool>) -> usize {
    let mut c = SmtpProbe::connect(env_addr).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    let mut sent = 0;
    for i in 0..MAX_LOOP {
        if *stop.borrow_and_update() {
            break;
        }
        let subject = format!("long-{i}");
        c.cmd(&format!("MAIL FROM:<{MARIO}>"), "250").await;
        c.cmd("RCPT TO:<ufficio@pec.fornitore.it>", "250").await;
        c.cmd("DATA", "354").await;
        let reply = c.data(&pec(MARIO, "ufficio@pec.fornitore.it", &format!("[PEC:legal] {subject}"))).await;
        assert!(reply.starts_with("250 "), "the long session's message {i} was not accepted: {reply:?}");
        acked.lock().unwrap().push(subject);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.cmd("QUIT", "221").await;
    sent
}

/// A new session per message.
async fn short_sessions(env_addr: std::net::SocketAddr, acked: Acked, mut stop: watch::Receiver<bool>) -> usize {
    let mut sent = 0;
    for i in 0..MAX_LOOP {
        if *stop.borrow_and_update() {
            break;
        }
        let subject = format!("short-{i}");
        let mut c = SmtpProbe::connect(env_addr).await;
        c.expect("220").await;
        c.cmd("EHLO mx.azienda.it", "250").await;
        c.cmd(&format!("MAIL FROM:<{MARIO}>"), "250").await;
        c.cmd("RCPT TO:<ufficio@pec.fornitore.it>", "250").await;
        c.cmd("DATA", "354").await;
        let reply = c.data(&pec(MARIO, "ufficio@pec.fornitore.it", &format!("[PEC:legal] {subject}"))).await;
        assert!(reply.starts_with("250 "), "message {i} was not accepted: {reply:?}");
        c.cmd("QUIT", "221").await;
        acked.lock().unwrap().push(subject);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sent
}

/// Waits until `f` holds, polling; panics after [`WAIT`].
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn five_changes_under_load() {
    let mut env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let addr = env.smtp_addr();
    let acked: Acked = Arc::default();
    let (stop, stop_rx) = watch::channel(false);
    let long = tokio::spawn(long_session(addr, acked.clone(), stop_rx.clone()));
    let short = tokio::spawn(short_sessions(addr, acked.clone(), stop_rx));
    // Let traffic start before the first change.
    eventually("traffic flows", async || acked.lock().unwrap().len() >= 5).await;
    let mut checks = Vec::new();

    // 1. A user is added: refused before, accepted after (in new sessions:
    // a session keeps the configuration it started with).
    let mut earlier = SmtpProbe::connect(addr).await;
    earlier.expect("220").await;
    earlier.cmd("EHLO mx.azienda.it", "250").await;
    let before = env.send(GIULIA, &["a@pec.x.it"], &pec(GIULIA, "a@pec.x.it", "[PEC:legal] giulia-before")).await;
    assert!(before.starts_with("550 5.7.1") && before.contains(GIULIA), "{before}");
    let text = env.config_text.replace(
        &format!("[[mailbox.user]]\naddress = \"{LUCA}\"\n"),
        &format!("[[mailbox.user]]\naddress = \"{LUCA}\"\n[[mailbox.user]]\naddress = \"{GIULIA}\"\n"),
    );
    let report = env.reload_with(&text).await.unwrap();
    assert!(report.changes.contains(&"mailbox legal: users changed".to_owned()), "{report:?}");
    let after = env.send(GIULIA, &["a@pec.x.it"], &pec(GIULIA, "a@pec.x.it", "[PEC:legal] giulia-after")).await;
    assert!(after.starts_with("250 "), "{after}");
    checks.push("giulia-after".to_owned());
    earlier.cmd(&format!("MAIL FROM:<{GIULIA}>"), "250").await;
    earlier.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    earlier.cmd("DATA", "354").await;
    let old = earlier.data(&pec(GIULIA, "a@pec.x.it", "[PEC:legal] giulia-old-session")).await;
    assert!(old.starts_with("550 5.7.1"), "the session opened before the reload decides with the old users: {old}");
    earlier.cmd("QUIT", "221").await;

    // 2. A user is removed: accepted before, refused after.
    let before = env.send(LUCA, &["a@pec.x.it"], &pec(LUCA, "a@pec.x.it", "[PEC:legal] luca-before")).await;
    assert!(before.starts_with("250 "), "{before}");
    checks.push("luca-before".to_owned());
    let text = env.config_text.replace(&format!("[[mailbox.user]]\naddress = \"{LUCA}\"\n"), "");
    let report = env.reload_with(&text).await.unwrap();
    assert!(report.changes.contains(&"mailbox legal: users changed".to_owned()), "{report:?}");
    let after = env.send(LUCA, &["a@pec.x.it"], &pec(LUCA, "a@pec.x.it", "[PEC:legal] luca-after")).await;
    assert!(after.starts_with("550 5.7.1") && after.contains(LUCA), "{after}");

    // 3. The provider forces a new password for hr: refused until the password file says it and pecgate reloads.
    env.provider.set_password("hr-login", NEW_HR_PASSWORD);
    let reply = env.send(MARIO, &["b@pec.x.it"], &pec(MARIO, "b@pec.x.it", "[PEC:hr] rotated")).await;
    assert!(reply.starts_with("250 "), "{reply}");
    checks.push("rotated".to_owned());
    let hr_id = queue_id(&reply);
    let store = env.app().store.clone();
    eventually("the old password is refused", async || {
        store.message(&hr_id).await.unwrap().and_then(|m| m.last_error).is_some_and(|e| e.contains("535"))
    })
    .await;
    assert_eq!(store.message(&hr_id).await.unwrap().unwrap().state, MessageState::Queued, "a refused login keeps the message queued");
    write_secret(&env.dir.path().join("hr.pw"), &format!("{NEW_HR_PASSWORD}\n"));
    let text = env.config_text.clone();
    let report = env.reload_with(&text).await.unwrap();
    assert!(report.changes.contains(&"mailbox hr: password changed".to_owned()), "{report:?}");
    env.wait_state(&hr_id, MessageState::Submitted).await;

    // 4. hr is deactivated: its mail is refused and its fetcher stops; legal's goes on.
    assert!(env.app().fetchers.get("hr").is_some());
    let text =
        env.config_text.replace("password_file = \"hr.pw\"\n[mailbox.smtp]", "password_file = \"hr.pw\"\nactive = false\n[mailbox.smtp]");
    let report = env.reload_with(&text).await.unwrap();
    assert!(report.changes.contains(&"mailbox hr: deactivated".to_owned()), "{report:?}");
    let reply = env.send(MARIO, &["b@pec.x.it"], &pec(MARIO, "b@pec.x.it", "[PEC:hr] inactive")).await;
    assert!(reply.starts_with("550 5.7.1") && reply.contains(HR), "{reply}");
    let fetchers = env.app().fetchers.clone();
    eventually("hr's fetcher stops", async || fetchers.get("hr").is_none()).await;
    assert!(fetchers.get("legal").is_some());

    // 5. An invalid change is refused by key; the running configuration stays.
    let admin = env.app().admin_addr;
    let failures = || async move {
        let (_, metrics) = http_get(admin, "/metrics").await;
        metric_value(&metrics, "pecgate_config_reload_total{result=\"failure\"}").unwrap_or(-1.0)
    };
    let failures_before = failures().await;
    let good = env.config_text.clone();
    let bad = good.replace("receipt_type = \"breve\"", "receipt_type = \"breve\"\nmax_recipients = 0");
    let err = env.reload_with(&bad).await.unwrap_err().to_string();
    assert!(err.contains("mailbox[0].max_recipients (legal): must be at least 1"), "{err}");
    assert_eq!(failures().await, failures_before + 1.0, "the refusal is counted");
    env.config_text = good;
    let reply = env.send(GIULIA, &["a@pec.x.it"], &pec(GIULIA, "a@pec.x.it", "[PEC:legal] still-giulia")).await;
    assert!(reply.starts_with("250 "), "the old configuration keeps working: {reply}");
    checks.push("still-giulia".to_owned());
    let reply = env.send(LUCA, &["a@pec.x.it"], &pec(LUCA, "a@pec.x.it", "[PEC:legal] still-not-luca")).await;
    assert!(reply.starts_with("550 "), "{reply}");

    stop.send(true).unwrap();
    let (long_sent, short_sent) = (long.await.unwrap(), short.await.unwrap());
    assert!(long_sent >= 5 && short_sent >= 5, "traffic ran through the changes: {long_sent} + {short_sent}");
    eprintln!("reload under load: {long_sent} messages in one session + {short_sent} in their own sessions during 5 changes");

    // Everything acknowledged reaches the provider, exactly once.
    let mut want: Vec<String> = acked.lock().unwrap().clone();
    want.extend(checks);
    let got = env.provider_messages(want.len()).await;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        *count.entry(m.header("Subject").unwrap_or_default()).or_default() += 1;
    }
    for s in &want {
        assert_eq!(count.get(s), Some(&1), "{s} delivered {:?} times", count.get(s));
    }
    assert_eq!(got.len(), want.len(), "nothing delivered that was not acknowledged");

    // Process-wide counters: the other tests of this file reload too.
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metric_value(&metrics, "pecgate_config_reload_total{result=\"success\"}").unwrap_or(0.0) >= 4.0, "{metrics}");
    assert!(metric_value(&metrics, "pecgate_config_last_reload_success_timestamp_seconds").unwrap_or(0.0) > 1.7e9);
}

#[tokio::test]
async fn keys_bound_at_start_need_a_restart_and_keep_their_value() {
    let mut env = TestEnv::start().await;
    let addr = env.smtp_addr();
    let text = env
        .config_text
        .replace("listen = \"127.0.0.1:0\"\nhostname", "listen = \"127.0.0.1:1\"\nhostname")
        .replace("spool_dir = \"spool\"", "spool_dir = \"elsewhere\"")
        .replace("min_backoff_secs = 1", "min_backoff_secs = 2");
    let report = env.reload_with(&text).await.unwrap();
    assert_eq!(report.needs_restart, ["smtp.listen", "store.spool_dir"]);
    assert_eq!(report.changes, ["[queue] changed"]);
    let rt = env.app().live.get();
    assert_eq!((rt.config.smtp.listen.as_str(), rt.config.store.spool_dir.ends_with("spool")), ("127.0.0.1:0", true));
    assert_eq!(rt.config.queue.min_backoff_secs, 2, "the live key took its new value");
    let reply = env.send(MARIO, &["a@pec.x.it"], &pec(MARIO, "a@pec.x.it", "[PEC:legal] same listener")).await;
    assert!(reply.starts_with("250 ") && env.smtp_addr() == addr, "{reply}");
}

#[tokio::test]
async fn a_mailbox_added_by_reload_starts_fetching_and_has_metrics() {
    let mut env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let removed = {
        let start = env.config_text.find("[[mailbox]]\nid = \"hr\"").unwrap();
        let end = env.config_text.find("[[mailbox]]\nid = \"old\"").unwrap();
        env.config_text[start..end].to_owned()
    };
    let without_hr = env.config_text.replace(&removed, "");
    let report = env.reload_with(&without_hr).await.unwrap();
    assert_eq!(report.changes, ["mailbox hr: removed"]);
    let fetchers = env.app().fetchers.clone();
    eventually("hr's fetcher stops", async || fetchers.get("hr").is_none()).await;
    let reply = env.send(MARIO, &["b@pec.x.it"], &pec(MARIO, "b@pec.x.it", "[PEC:hr] gone")).await;
    assert!(reply.starts_with("550 ") && reply.contains("hr"), "{reply}");

    let with_hr = format!("{without_hr}\n{removed}");
    let report = env.reload_with(&with_hr).await.unwrap();
    assert_eq!(report.changes, ["mailbox hr: added"]);
    eventually("hr's fetcher polls", async || fetchers.get("hr").is_some_and(|f| f.status().last_poll.is_some())).await;
    let reply = env.send(MARIO, &["b@pec.x.it"], &pec(MARIO, "b@pec.x.it", "[PEC:hr] back")).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metrics.contains("pecgate_pop3_polls_total{mailbox=\"hr\",result=\"ok\"}"), "{metrics}");
}

/// The `pecgate` binary: `pecgate reload` over the control socket, SIGHUP,
/// and the exit codes an admin (or systemd's ExecReload) sees.
#[tokio::test]
async fn reload_command_and_sighup_on_the_binary() {
    use std::process::{Command, Stdio};
    let env = TestEnv::prepare(|_| {}, pecgate::clock::system(), false).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = env.config_text.replace("listen = \"127.0.0.1:0\"\nhostname", &format!("listen = \"127.0.0.1:{port}\"\nhostname"));
    let config = env.config_path();
    std::fs::write(&config, &text).unwrap();
    let log = env.dir.path().join("pecgate.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pecgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let smtp: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // "started" is logged once every listener, the control socket included, is up.
    eventually("the gateway has started", async || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("pecgate started"))).await;
    let reload = || Command::new(env!("CARGO_BIN_EXE_pecgate")).args(["reload", "--config"]).arg(&config).output().unwrap();

    // A user added, applied by `pecgate reload` (exit 0, the change printed).
    let added = text.replace(
        &format!("[[mailbox.user]]\naddress = \"{LUCA}\"\n"),
        &format!("[[mailbox.user]]\naddress = \"{LUCA}\"\n[[mailbox.user]]\naddress = \"{GIULIA}\"\n"),
    );
    std::fs::write(&config, &added).unwrap();
    let out = reload();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("mailbox legal: users changed"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let mut c = SmtpProbe::connect(smtp).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    c.cmd(&format!("MAIL FROM:<{GIULIA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&pec(GIULIA, "a@pec.x.it", "[PEC:legal] via reload")).await;
    assert!(reply.starts_with("250 "), "{reply}");

    // An invalid file: exit 1, the key named, the old configuration kept.
    std::fs::write(&config, added.replace("receipt_type = \"breve\"", "receipt_type = \"lunga\"")).unwrap();
    let out = reload();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused, the running configuration stays") && stderr.contains("mailbox[0].receipt_type"), "{stderr}");
    c.cmd(&format!("MAIL FROM:<{GIULIA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&pec(GIULIA, "a@pec.x.it", "[PEC:legal] still there")).await;
    assert!(reply.starts_with("250 "), "the session outlived both reloads: {reply}");
    c.cmd("QUIT", "221").await;

    // SIGHUP does the same as `pecgate reload` (sent to the child by its PID).
    std::fs::write(&config, &text).unwrap();
    let hup = Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    eventually("SIGHUP reloads", async || std::fs::read_to_string(&log).unwrap_or_default().matches("configuration reloaded").count() >= 2)
        .await;
    assert_eq!(env.provider_messages(2).await.len(), 2);

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean stop: {status:?} {}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(!env.dir.path().join("var/pecgate.sock").exists(), "the control socket is removed at shutdown");
}

/// GPec's non-blocking alarm: a mailbox nobody may send from is a warning
/// and one notice to its admin, not repeated by a restart, and told anew
/// when the mailbox loses its senders again after it had one.
#[tokio::test]
async fn a_mailbox_nobody_may_send_from_tells_its_admin_once() {
    // hr has one user, Mario, its admin; take away (and give back) his send right.
    let sender = format!("address = \"{MARIO}\"\nadmin = true\n\n[[mailbox]]\nid = \"old\"");
    let no_sender = format!("address = \"{MARIO}\"\nadmin = true\nsend = false\n\n[[mailbox]]\nid = \"old\"");
    let mut env = TestEnv::start_with(|t| *t = t.replacen(&sender, &no_sender, 1)).await;
    assert!(env.config_text.contains(&no_sender), "the tweak applied");
    let first = env.corporate_messages(1).await;
    let text = String::from_utf8_lossy(&first[0].data).into_owned();
    assert_eq!(first[0].rcpts, [MARIO]);
    assert!(text.contains(&format!("Subject: Nessun utente puo' inviare dalla casella PEC {HR}")), "{text}");
    assert!(text.contains(&format!("Nessun utente ha il permesso di invio sulla casella PEC {HR}:")), "{text}");
    let alarms = env.app().store.alarms().await.unwrap();
    assert_eq!(alarms.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["no-sender:hr"]);

    // A restart finds the alarm raised: no new notice (the store says so before any delivery).
    env.stop().await;
    env.restart().await;
    assert_eq!(env.app().store.alarms().await.unwrap(), alarms, "the same alarm, not raised again");

    // Mario may send again: the alarm clears; losing him again tells the admin anew.
    let with_sender = env.config_text.replacen(&no_sender, &sender, 1);
    env.reload_with(&with_sender).await.unwrap();
    wait_until(|| async { env.app().store.alarms().await.unwrap().is_empty() }).await;
    env.reload_with(&with_sender.replacen(&sender, &no_sender, 1)).await.unwrap();
    let both = env.corporate_messages(2).await;
    assert_eq!(both.len(), 2, "one notice per loss of every sender");
    assert!(String::from_utf8_lossy(&both[1].data).contains(&format!("dalla casella PEC {HR}")));
    env.stop().await;
}

async fn wait_until<F: std::future::Future<Output = bool>>(mut cond: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "condition not met in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
