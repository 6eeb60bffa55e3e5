//! Operator commands against a live gateway: test-mailbox, status, queue.

mod common;

use std::process::Command;

use common::*;
use pecgate::proto::Reply;
use pecgate::sim::provider::{FaultAction, Stage};
use pecgate::store::MessageState;

#[tokio::test]
async fn test_mailbox_reports_each_step() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let (code, out, err) = tokio::task::spawn_blocking({
        let config = env.config_text.clone();
        let dir = env.dir.path().to_owned();
        move || {
            std::fs::write(dir.join("pecgate.toml"), config).unwrap();
            let o = Command::new(env!("CARGO_BIN_EXE_pecgate"))
                .args(["test-mailbox", "--mailbox", "legal", "--config"])
                .arg(dir.join("pecgate.toml"))
                .output()
                .unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "[ OK ] SMTP DNS localhost",
        "[ OK ] SMTP TCP",
        "authenticated",
        "[ OK ] POP3 login as legal@pec.azienda.it",
        "[ OK ] POP3 STAT: 0 message(s)",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    assert!(out.contains("TLSv1.3") || out.contains("TLSv1.2"), "{out}");
    assert!(!out.contains(LEGAL_PASSWORD) && !err.contains(LEGAL_PASSWORD));
    assert!(env.provider.bag.is_empty(), "test-mailbox sends nothing");

    // A wrong password fails at AUTH and exits 1.
    let mut bad = env.config_text.replace("password_file = \"legal.pw\"", "password_file = \"hr.pw\"");
    bad.push('\n');
    let dir = env.dir.path().to_owned();
    let (code, out) = tokio::task::spawn_blocking(move || {
        std::fs::write(dir.join("bad.toml"), bad).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_pecgate"))
            .args(["test-mailbox", "--mailbox", "legal", "--config"])
            .arg(dir.join("bad.toml"))
            .output()
            .unwrap();
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] SMTP implicit TLS") && out.contains("535"), "{out}");
    assert!(out.contains("[FAIL] POP3 login"), "{out}");
}

#[tokio::test]
async fn queue_commands_list_show_retry_drop() {
    let env = TestEnv::start_with(|t| {
        *t = t.replace("min_backoff_secs = 1", "min_backoff_secs = 3600").replace("max_backoff_secs = 2", "max_backoff_secs = 3600")
    })
    .await;
    env.provider.faults.add(Stage::Data, FaultAction::Reply(Reply::new(451, Some("4.3.0"), "provider busy")), 100);
    let msg = format!("From: {LUCA}\r\nTo: a@pec.x.it\r\nSubject: [PEC] In coda\r\n\r\nciao\r\n");
    let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg).await);
    // Wait for the first (failed) attempt.
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.app().store.message(&qid).await.unwrap().unwrap().attempts == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let run = |args: Vec<String>| {
        let config = env.config_text.clone();
        let dir = env.dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::write(dir.join("pecgate.toml"), config).unwrap();
            let o = Command::new(env!("CARGO_BIN_EXE_pecgate")).args(&args).arg("--config").arg(dir.join("pecgate.toml")).output().unwrap();
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
    };
    let (code, out, _) = run(vec!["queue".into(), "list".into()]).await.unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains(&qid)
            && out.contains("provider:legal")
            && out.contains("451 4.3.0 provider busy")
            && out.contains("1 message(s) waiting"),
        "{out}"
    );

    let (code, out, _) = run(vec!["queue".into(), "show".into(), qid.clone()]).await.unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("a@pec.x.it") && out.contains("deferred") && out.contains("subject:      In coda"), "{out}");

    let (code, out, _) = run(vec!["status".into()]).await.unwrap();
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("legal") && l.contains("legal@pec.azienda.it") && l.split_whitespace().nth(3) == Some("1")),
        "{out}"
    );
    let me = env.config().cluster.instance_id;
    assert!(out.lines().any(|l| l.starts_with(&format!("{me} ")) && l.contains(" alive ")), "the running instance is listed: {out}");

    let (code, _, err) = run(vec!["queue".into(), "drop".into(), qid.clone()]).await.unwrap();
    assert_eq!(code, 2, "drop without --yes is refused");
    assert!(err.contains("--yes"));
    let (code, _, err) = run(vec!["queue".into(), "show".into(), "NOSUCHID".into()]).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("NOSUCHID not found"));

    let (code, out, err) = run(vec!["queue".into(), "retry".into(), qid.clone()]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(vec!["queue".into(), "drop".into(), qid.clone(), "--yes".into()]).await.unwrap();
    assert_eq!(code, 0, "{out}");
    let m = env.app().store.message(&qid).await.unwrap().unwrap();
    assert_eq!(m.state, MessageState::Failed);
    let events: Vec<String> = env.app().store.events(&qid).await.unwrap().into_iter().map(|e| format!("{} {}", e.kind, e.detail)).collect();
    assert!(events.iter().any(|e| e.starts_with("retry retry requested by cli user")), "{events:?}");
    assert!(events.iter().any(|e| e.starts_with("dropped dropped by cli user")), "{events:?}");
}
