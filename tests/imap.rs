//! Retrieval over IMAPS from the simulator: fetch, retention (leave = \Seen,
//! move_to, delete with and without UIDPLUS, delete-after), restart,
//! UIDVALIDITY reset, hostile servers (huge literal, dropped literal,
//! silence, endless untagged lines), IDLE, STARTTLS, receipt latency.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pecgate::clock::{Clock, ManualClock};
use pecgate::sim::imap::{ImapFault, ImapSecurity, ImapServer};
use pecgate::sim::pop3::folder_key;
use pecgate::store::MessageState;

/// The `legal` mailbox on IMAP (hr stays on POP3); `extra` adds `[mailbox.imap]` keys.
async fn start(retention: &str, extra: &str) -> TestEnv {
    let mut env = prepare(retention, extra).await;
    env.restart().await;
    env
}

async fn prepare(retention: &str, extra: &str) -> TestEnv {
    prepare_on(retention, extra, pecgate::clock::system()).await
}

/// As [`prepare`], the gateway on `clock`.
async fn prepare_on(retention: &str, extra: &str, clock: Arc<dyn Clock>) -> TestEnv {
    let mut env = TestEnv::prepare(|_| {}, clock, true).await;
    let pop3 = format!(
        "[mailbox.pop3]\nhost = \"localhost\"\nport = {}\nca_file = \"ca.pem\"\ntimeout_secs = 5\ninterval_secs = 3600\nretention = \"leave\"\n",
        env.provider.pop3_addr.port()
    );
    let imap = format!(
        "[mailbox.imap]\nhost = \"localhost\"\nport = {}\nca_file = \"ca.pem\"\ntimeout_secs = 5\ninterval_secs = 3600\nidle = false\nretention = \"{retention}\"\n{extra}",
        env.provider.imap.addr.port()
    );
    assert!(env.config_text.contains(&pop3));
    env.config_text = env.config_text.replacen(&pop3, &imap, 1);
    env
}

fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: <mittente@pec.altro.it>\r\nTo: <{LEGAL}>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@pec.altro.it>\r\n\r\nTesto.\r\n.riga con punto\r\n"
    )
    .into_bytes()
}

fn flags(env: &TestEnv, key: &str) -> Vec<(bool, bool)> {
    env.provider.retrieval.mailstore.imap_flags(key).into_iter().map(|(_, seen, deleted)| (seen, deleted)).collect()
}

/// Polls; once the injections are submitted, polls again: marks and
/// deletions happen only then. Returns (fetched, deleted) over both.
async fn poll_twice(env: &TestEnv, injections: usize) -> (usize, usize) {
    let first = env.poll("legal").await;
    wait_injected(env, injections).await;
    let second = env.poll("legal").await;
    (first.fetched + second.fetched, first.deleted + second.deleted)
}

async fn try_poll(env: &TestEnv) -> Result<pecgate::fetch::PollReport, String> {
    env.app().poll("legal").await.expect("legal is fetched").map_err(|e| e.to_string())
}

/// Waits (bounded) until mailbox `legal`'s fetcher is in `mode` (`idling`, `polling`).
async fn wait_mode(env: &TestEnv, mode: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.app().fetchers.get("legal").unwrap().status().mode != Some(mode) {
        assert!(tokio::time::Instant::now() < deadline, "never {mode}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The injections queued for the corporate server, in all.
async fn injections(env: &TestEnv) -> usize {
    env.app().store.list_messages(100).await.unwrap().into_iter().filter(|m| m.kind == pecgate::store::MessageKind::Injection).count()
}

/// Sends a PEC through pecgate (Message-ID `<{id}@azienda.it>`) and waits
/// until the provider holds its accettazione and consegna in LEGAL.
async fn send_for_receipts(env: &TestEnv, subject: &str, id: &str) {
    let msg = format!(
        "From: {LUCA}\r\nTo: ufficio@pec.fornitore.it\r\nSubject: [PEC] {subject}\r\nMessage-ID: <{id}@azienda.it>\r\n\r\nTesto.\r\n"
    );
    let reply = env.send(LUCA, &["ufficio@pec.fornitore.it"], &msg).await;
    assert!(reply.starts_with("250"), "{reply}");
    env.provider_messages(1).await;
    let store = &env.provider.retrieval.mailstore;
    assert!(store.wait_for(WAIT, |s| s.len(LEGAL) == 2).await, "accettazione and consegna");
}

#[tokio::test]
async fn leave_fetches_byte_for_byte_flags_seen_and_never_fetches_twice() {
    let mut env = start("leave", "").await;
    let store = env.provider.retrieval.mailstore.clone();
    let a = env.provider.retrieval.deliver(LEGAL, mail("uno"));
    let b = env.provider.retrieval.deliver(LEGAL, mail("due"));
    assert_eq!(flags(&env, LEGAL), [(false, false), (false, false)]);
    let report = env.poll("legal").await;
    assert_eq!((report.listed, report.fetched, report.deleted), (2, 2, 0));
    let got = env.corporate_messages(2).await;
    wait_injected(&env, 2).await;
    for (c, raw) in got.iter().zip([mail("uno"), mail("due")]) {
        assert!(c.data.ends_with(&raw), "injected byte-for-byte");
        assert!(c.data.starts_with(b"X-Pecgate-Mailbox: legal\r\n"));
    }
    // Kept on the server for the webmail, flagged \Seen once injected.
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(flags(&env, LEGAL), [(true, false), (true, false)]);
    env.stop().await;
    env.restart().await;
    assert_eq!(env.poll("legal").await.fetched, 0, "ids are remembered across restarts");
    assert_eq!((store.retrievals(&a), store.retrievals(&b)), (1, 1));
    assert_eq!(env.capture.bag.len(), 2);
}

#[tokio::test]
async fn leave_with_move_to_moves_what_was_injected() {
    let env = start("leave", "move_to = \"INBOX.pecgate\"\n").await;
    env.provider.retrieval.deliver(LEGAL, mail("sposta"));
    assert_eq!(poll_twice(&env, 1).await, (1, 0));
    let store = &env.provider.retrieval.mailstore;
    assert!(store.is_empty(LEGAL), "moved out of INBOX");
    let moved = store.messages(&folder_key(LEGAL, "INBOX.pecgate"));
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].1, mail("sposta"));
}

#[tokio::test]
async fn leave_with_move_to_without_move_copies_and_expunges() {
    let env = start("leave", "move_to = \"INBOX.pecgate\"\n").await;
    env.provider.imap.options.moves.store(false, std::sync::atomic::Ordering::Relaxed);
    env.provider.retrieval.deliver(LEGAL, mail("copia"));
    assert_eq!(poll_twice(&env, 1).await, (1, 0));
    let store = &env.provider.retrieval.mailstore;
    assert!(store.is_empty(LEGAL));
    assert_eq!(store.messages(&folder_key(LEGAL, "INBOX.pecgate")).len(), 1);
}

#[tokio::test]
async fn delete_expunges_only_after_commit_with_uidplus() {
    let env = start("delete", "").await;
    env.provider.retrieval.deliver(LEGAL, mail("via"));
    assert_eq!(poll_twice(&env, 1).await, (1, 1));
    assert!(env.capture.bag.len() == 1, "injected before it was deleted");
    assert!(env.provider.retrieval.mailstore.is_empty(LEGAL));
}

#[tokio::test]
async fn delete_without_uidplus_never_expunges_what_another_client_flagged() {
    let env = start("delete", "").await;
    let store = env.provider.retrieval.mailstore.clone();
    env.provider.imap.options.uidplus.store(false, std::sync::atomic::Ordering::Relaxed);
    env.provider.retrieval.deliver(LEGAL, mail("nostro"));
    assert_eq!(poll_twice(&env, 1).await, (1, 1), "nothing else flagged: plain EXPUNGE");
    assert!(store.is_empty(LEGAL));

    // The webmail flagged a message \Deleted without expunging it.
    let theirs = env.provider.retrieval.deliver(LEGAL, mail("loro"));
    let uid: u32 = theirs.trim_start_matches("pecsim-").parse().unwrap();
    pecgate_flag_deleted(&env, uid);
    env.provider.retrieval.deliver(LEGAL, mail("altro"));
    let _ = try_poll(&env).await;
    wait_injected(&env, 2).await;
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("flagged \\Deleted by another client"), "{err}");
    assert_eq!(flags(&env, LEGAL), [(false, true), (false, false)], "theirs still flagged, ours unflagged, nothing expunged");
    assert_eq!(env.capture.bag.len(), 2, "both of ours were injected; the foreign \\Deleted one is not listed");
}

/// As another IMAP client (the webmail) would flag it.
fn pecgate_flag_deleted(env: &TestEnv, uid: u32) {
    env.provider.retrieval.mailstore.imap_set_flags(LEGAL, &[uid], None, Some(true));
}

#[tokio::test]
async fn a_uidvalidity_reset_re_lists_but_injects_no_receipt_twice() {
    let mut env = start("leave", "").await;
    send_for_receipts(&env, "Ordine", "ordine").await;
    assert_eq!(env.poll("legal").await.fetched, 2);
    env.corporate_messages(2).await;

    env.provider.retrieval.mailstore.reset_uidvalidity(LEGAL);
    let report = env.poll("legal").await;
    assert_eq!((report.listed, report.fetched), (2, 2), "new UIDVALIDITY: new ids, fetched again");
    let events: usize = {
        let q = env.app().store.list_messages(100).await.unwrap();
        let sent = q.iter().find(|m| m.kind == pecgate::store::MessageKind::Pec).map(|m| m.id.clone()).unwrap();
        env.app().store.events(&sent).await.unwrap().iter().filter(|e| e.kind == "duplicate-receipt").count()
    };
    assert_eq!(events, 2, "recorded as duplicates");
    assert_eq!(injections(&env).await, 2, "nothing injected twice");
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "pecgate_imap_uidvalidity_changes_total{mailbox=\"legal\"}"), Some(1.0), "{metrics}");

    // A reset while pecgate is stopped is seen too (against the stored ids), and injects nothing twice.
    env.crash();
    env.provider.retrieval.mailstore.reset_uidvalidity(LEGAL);
    env.restart().await;
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "pecgate_imap_uidvalidity_changes_total{mailbox=\"legal\"}"), Some(2.0), "{metrics}");
    assert_eq!(injections(&env).await, 2, "nothing injected twice after a reset while stopped");
}

/// Not only receipts: a message fetched again under a new id with the same
/// Message-ID and the same bytes (a folder's UIDVALIDITY reset) is recorded
/// and marked, never delivered twice. (A mailbox id of its own: metrics are
/// process-wide, and the reset counter of "legal" is asserted exactly above.)
#[tokio::test]
async fn a_uidvalidity_reset_delivers_no_message_twice() {
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("id = \"legal\"\n", "id = \"doppio\"\n", 1);
    env.restart().await;
    let poll = || async { env.app().poll("doppio").await.unwrap().unwrap() };
    env.provider.retrieval.deliver(LEGAL, mail("una volta"));
    assert_eq!(poll().await.fetched, 1);
    wait_injected(&env, 1).await;
    env.corporate_messages(1).await;
    poll().await;
    assert_eq!(flags(&env, LEGAL), [(true, false)]);
    env.provider.retrieval.mailstore.reset_uidvalidity(LEGAL);
    let report = poll().await;
    assert_eq!((report.listed, report.fetched), (1, 1), "new UIDVALIDITY: a new id, fetched again");
    assert_eq!(injections(&env).await, 1, "delivered once");
    let copies = env.app().store.fetched_by_message_id("doppio", "una volta@pec.altro.it").await.unwrap();
    assert_eq!(copies.len(), 2, "both ids recorded");
    assert_ne!(copies[0].uidl, copies[1].uidl);
    assert_eq!(copies[1].injection, None, "the second is not injected");
    assert!(
        std::fs::read(env.app().spool.fetched_path(&copies[0].id)).unwrap().ends_with(&mail("una volta")),
        "the first copy is the evidence"
    );
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert_eq!(metric_value(&metrics, "pecgate_fetch_duplicates_total{mailbox=\"doppio\"}"), Some(1.0), "{metrics}");
    assert_eq!(metric_value(&metrics, "pecgate_imap_uidvalidity_changes_total{mailbox=\"doppio\"}"), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_huge_literal_is_refused_before_a_byte_is_kept_and_nothing_is_deleted() {
    let env = start("delete", "").await;
    env.provider.retrieval.deliver(LEGAL, mail("enorme"));
    env.provider.imap.faults.arm(ImapFault::HugeLiteral(50_000_000_000));
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.skipped, report.deleted), (0, 1, 0));
    assert_eq!(flags(&env, LEGAL), [(false, false)], "left untouched");
    let skipped = env.app().store.skipped(Some("legal")).await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].reason.contains("larger than pecgate takes"), "{}", skipped[0].reason);
    assert!(skipped[0].uidl.starts_with("INBOX/1/"), "{}", skipped[0].uidl);
    assert!(std::fs::read_dir(env.dir.path().join("spool/fetched")).map(|d| d.count()).unwrap_or(0) == 0);
}

#[tokio::test]
async fn a_connection_dropped_mid_literal_deletes_nothing_and_the_next_poll_fetches_it_once() {
    let env = start("delete", "").await;
    env.provider.retrieval.deliver(LEGAL, mail("interrotto"));
    env.provider.imap.faults.arm(ImapFault::DropMidLiteral(20));
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("IMAP"), "{err}");
    assert_eq!(flags(&env, LEGAL), [(false, false)]);
    assert_eq!(env.capture.bag.len(), 0);
    assert_eq!(poll_twice(&env, 1).await, (1, 1));
    let got = env.corporate_messages(1).await;
    assert!(got[0].data.ends_with(&mail("interrotto")));
    assert!(env.provider.retrieval.mailstore.is_empty(LEGAL));
    assert_eq!(env.capture.bag.len(), 1, "injected once");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let env = prepare("delete", "").await;
    let mut env = env;
    env.config_text =
        env.config_text.replacen("timeout_secs = 5\ninterval_secs = 3600\nidle", "timeout_secs = 1\ninterval_secs = 3600\nidle", 1);
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("silenzio"));
    env.provider.imap.faults.arm(ImapFault::NeverAnswer);
    let started = std::time::Instant::now();
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by the timeout");
    assert_eq!(flags(&env, LEGAL), [(false, false)]);
}

#[tokio::test]
async fn endless_untagged_lines_are_bounded_by_the_transfer_deadline() {
    let mut env = prepare("delete", "").await;
    env.config_text =
        env.config_text.replacen("timeout_secs = 5\ninterval_secs = 3600\nidle", "timeout_secs = 1\ninterval_secs = 3600\nidle", 1);
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("infinito"));
    env.provider.imap.faults.arm(ImapFault::EndlessUntagged);
    let started = std::time::Instant::now();
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.skipped, report.deleted), (0, 1, 0));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(flags(&env, LEGAL), [(false, false)]);
}

#[tokio::test]
async fn a_refused_login_is_an_auth_failure() {
    let env = start("leave", "").await;
    env.provider.retrieval.mailstore.add_user(LEGAL, "another-password");
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("login refused"), "{err}");
    assert!(!err.contains(LEGAL_PASSWORD));
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metric_value(&metrics, "pecgate_imap_errors_total{mailbox=\"legal\",kind=\"auth\"}").unwrap_or(0.0) >= 1.0, "{metrics}");
}

#[tokio::test]
async fn with_idle_a_message_is_injected_within_seconds_not_at_the_poll_interval() {
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.restart().await;
    wait_mode(&env, "idling").await;
    // /readyz and the admin API show it.
    let (code, ready) = http_get(env.app().admin_addr, "/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let legal = ready["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == "legal").unwrap().clone();
    assert_eq!(legal["imap"]["mode"], "idling", "{ready}");
    assert!(legal.get("pop3").is_none(), "{ready}");
    let (_, api) = http_get(env.app().admin_addr, "/api/v1/mailboxes").await;
    assert!(api.contains("\"fetch_mode\":\"idling\""), "{api}");
    let arrived = std::time::Instant::now();
    env.provider.retrieval.deliver(LEGAL, mail("subito"));
    let got = env.capture.bag.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {} (interval is 3600 s)", g.len()));
    assert!(got[0].data.ends_with(&mail("subito")));
    assert!(arrived.elapsed() < Duration::from_secs(10));
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metric_value(&metrics, "pecgate_imap_idle_wakeups_total{mailbox=\"legal\"}").unwrap_or(0.0) >= 1.0, "{metrics}");
    env.wait_state(
        &{
            let q = env.app().store.list_messages(10).await.unwrap();
            q.into_iter().find(|m| m.kind == pecgate::store::MessageKind::Injection).unwrap().id
        },
        MessageState::Submitted,
    )
    .await;
    // A second one on the same kept connection.
    env.provider.retrieval.deliver(LEGAL, mail("ancora"));
    env.capture.bag.wait_for(2, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {}", g.len()));
}

/// While idling nothing else wakes the fetcher: a message fetched on an
/// EXISTS is marked `\Seen` by a re-poll seconds after its injection, not
/// at the next mail or the 3600 s interval.
#[tokio::test]
async fn with_idle_the_last_message_is_marked_seen_soon_after_its_injection() {
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.restart().await;
    wait_mode(&env, "idling").await;
    env.provider.retrieval.deliver(LEGAL, mail("da segnare"));
    env.capture.bag.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {}", g.len()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while flags(&env, LEGAL) != [(true, false)] {
        assert!(tokio::time::Instant::now() < deadline, "not marked \\Seen after its injection: {:?}", flags(&env, LEGAL));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Dovecot announces mail that arrives during a poll with the reply to the
/// next command (here the commit's STORE), not again in the IDLE that follows.
#[tokio::test]
async fn with_idle_mail_announced_during_the_commit_is_fetched_at_once() {
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.restart().await;
    wait_mode(&env, "idling").await;
    env.provider.imap.faults.arm(ImapFault::MailDuringStore(mail("durante il commit")));
    env.provider.retrieval.deliver(LEGAL, mail("prima"));
    // The first is marked \Seen (a STORE) within seconds; the second arrives during that STORE.
    env.capture
        .bag
        .wait_for(2, Duration::from_secs(10))
        .await
        .unwrap_or_else(|g| panic!("got {} of 2: the mail announced with the STORE was not fetched", g.len()));
}

#[tokio::test]
async fn a_server_without_idle_is_polled_at_interval_secs() {
    let mut env = prepare("leave", "").await;
    // pecgate wants IDLE, the server does not offer it: polling every second.
    env.config_text = env.config_text.replacen("interval_secs = 3600\nidle = false", "interval_secs = 1\nidle = true", 1);
    env.provider.imap.options.idle.store(false, std::sync::atomic::Ordering::Relaxed);
    env.restart().await;
    wait_mode(&env, "polling").await;
    let (_, ready) = http_get(env.app().admin_addr, "/readyz").await;
    assert!(ready.contains("\"mode\":\"polling\""), "{ready}");
    env.provider.retrieval.deliver(LEGAL, mail("periodico"));
    let got = env.capture.bag.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {}", g.len()));
    assert!(got[0].data.ends_with(&mail("periodico")));
    assert_eq!(env.app().fetchers.get("legal").unwrap().status().mode, Some("polling"));
    // And it keeps polling: two more polls within a few seconds (metrics are
    // process-wide across these tests, so the fetcher's own status is asserted).
    let status = || env.app().fetchers.get("legal").unwrap().status();
    let mut seen = vec![status().last_poll];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "polls at {seen:?} only");
        if status().last_poll != *seen.last().unwrap() {
            seen.push(status().last_poll);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.capture.bag.len(), 1, "fetched once");
}

#[tokio::test]
async fn corporate_server_down_leaves_the_imap_copy_untouched_until_injected() {
    // The corporate port drops every connection until the capture server takes it over.
    let down = DownPort::start().await;
    let port = down.port;
    let mut env = prepare("delete", "").await;
    let corporate = format!("[corporate]\nhost = \"127.0.0.1\"\nport = {}\n", env.capture.addr.port());
    assert!(env.config_text.contains(&corporate));
    env.config_text = env.config_text.replacen(&corporate, &format!("[corporate]\nhost = \"127.0.0.1\"\nport = {port}\n"), 1);
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("attesa"));
    assert_eq!(env.poll("legal").await.fetched, 1);
    assert_eq!(env.poll("legal").await.deleted, 0);
    assert_eq!(flags(&env, LEGAL), [(false, false)], "neither \\Seen nor \\Deleted while not injected");
    let corporate = down.back().await;
    let got = corporate.bag.wait_for(1, WAIT).await.expect("injected once the server is back");
    assert!(got[0].data.ends_with(&mail("attesa")));
    wait_injected(&env, 1).await;
    assert_eq!(env.poll("legal").await.deleted, 1);
    assert!(env.provider.retrieval.mailstore.is_empty(LEGAL));
    assert_eq!(corporate.bag.len(), 1, "injected once");
}

/// `pecgate test-mailbox` on the IMAP mailbox: (exit code, stdout).
async fn test_mailbox(env: &TestEnv) -> (i32, String) {
    let config = env.config_text.clone();
    let dir = env.dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::write(dir.join("pecgate.toml"), config).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pecgate"))
            .args(["test-mailbox", "--mailbox", "legal", "--config"])
            .arg(dir.join("pecgate.toml"))
            .output()
            .unwrap();
        (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn test_mailbox_checks_imap_login_capabilities_and_each_folder() {
    let mut env = start("leave", "folders = [\"INBOX\", \"Archivio\"]\n").await;
    env.provider.retrieval.deliver(LEGAL, mail("presente"));
    env.provider.retrieval.mailstore.add_user(&folder_key(LEGAL, "Archivio"), "unused");
    let (code, out) = test_mailbox(&env).await;
    assert_eq!(code, 0, "{out}");
    for want in [
        "[ OK ] IMAP login as legal@pec.azienda.it",
        "[ OK ] IMAP CAPABILITY: IDLE, UIDPLUS and MOVE offered",
        "[ OK ] IMAP SELECT INBOX: 1 message(s)",
        "[ OK ] IMAP SELECT Archivio: 0 message(s)",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    assert!(!out.contains(LEGAL_PASSWORD));
    assert_eq!(flags(&env, LEGAL), [(false, false)], "test-mailbox touches no message");

    // Without IDLE it says so; a folder that does not exist fails the run.
    env.provider.imap.options.idle.store(false, std::sync::atomic::Ordering::Relaxed);
    env.config_text = env.config_text.replacen("\"Archivio\"", "\"Manca\"", 1);
    let (code, out) = test_mailbox(&env).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not offered: IDLE"), "{out}");
    assert!(out.contains("[FAIL] IMAP SELECT Manca"), "{out}");
}

#[tokio::test]
async fn the_demo_runs_on_imap_and_receipts_arrive_by_idle() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let demo = pecgate::demo::Demo::start(dir.path(), 0, true).await.unwrap();
    let config = std::fs::read_to_string(dir.path().join("pecgate.toml")).unwrap();
    assert!(config.contains("[mailbox.imap]") && !config.contains("[mailbox.pop3]"), "{config}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while demo.app.fetchers.get("demo").unwrap().status().mode != Some("idling") {
        assert!(tokio::time::Instant::now() < deadline, "the demo never idled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = demo.app.smtp_addr.to_string();
    let to = [pecgate::demo::DEMO_RECIPIENT.to_owned()];
    pecgate::demo::send_plain(&server, pecgate::demo::DEMO_SENDER, &to, &[], "[PEC] Prova IMAP", "Testo.").await.unwrap();
    // Accettazione and avvenuta-consegna, with a 60 s poll interval: only IDLE brings them this soon.
    let got = demo.capture.bag.wait_for(2, Duration::from_secs(15)).await.unwrap_or_else(|g| panic!("got {}", g.len()));
    assert!(got.iter().all(|c| c.header("X-Pecgate-Mailbox").as_deref() == Some("demo")));
    demo.stop().await;
}

#[tokio::test]
async fn a_server_closing_during_idle_is_reconnected_and_the_new_mail_fetched_at_once() {
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.restart().await;
    let idling = |env: &TestEnv| env.app().fetchers.get("legal").unwrap().status().mode == Some("idling");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !idling(&env) {
        assert!(tokio::time::Instant::now() < deadline, "never idled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server hangs up instead of announcing the new message: only a reconnect finds it.
    env.provider.imap.faults.arm(ImapFault::CloseInIdle);
    env.provider.retrieval.deliver(LEGAL, mail("riconnesso"));
    let got = env.capture.bag.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {} (interval is 3600 s)", g.len()));
    assert!(got[0].data.ends_with(&mail("riconnesso")));
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metric_value(&metrics, "pecgate_imap_idle_errors_total{mailbox=\"legal\"}").unwrap_or(0.0) >= 1.0, "{metrics}");
    // Back to IDLE on the new connection: the next one comes by EXISTS.
    wait_injected(&env, 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !idling(&env) {
        assert!(tokio::time::Instant::now() < deadline, "never idled again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.provider.retrieval.deliver(LEGAL, mail("dopo"));
    env.capture.bag.wait_for(2, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {}", g.len()));
    assert_eq!(env.capture.bag.len(), 2, "each once");
}

#[tokio::test]
async fn a_move_refused_over_quota_leaves_the_message_in_place_and_is_retried() {
    let env = start("leave", "move_to = \"INBOX.pecgate\"\n").await;
    env.provider.retrieval.deliver(LEGAL, mail("quota"));
    assert_eq!(env.poll("legal").await.fetched, 1);
    wait_injected(&env, 1).await;
    env.provider.imap.faults.arm(ImapFault::OverQuota);
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("OVERQUOTA"), "{err}");
    assert_eq!(flags(&env, LEGAL), [(false, false)], "still in INBOX, neither \\Seen nor \\Deleted");
    assert!(env.provider.retrieval.mailstore.messages(&folder_key(LEGAL, "INBOX.pecgate")).is_empty());
    // Next poll: moved, and not fetched or injected again.
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert!(env.provider.retrieval.mailstore.is_empty(LEGAL));
    assert_eq!(env.provider.retrieval.mailstore.messages(&folder_key(LEGAL, "INBOX.pecgate")).len(), 1);
    assert_eq!(env.capture.bag.len(), 1, "injected once");
}

/// The `legal` mailbox with `security = "starttls"`, on a sibling of the
/// provider's IMAP server (same mailstore and certificate) that speaks
/// `server`; not started yet.
async fn prepare_starttls(server: ImapSecurity, extra: &str) -> (TestEnv, ImapServer) {
    let mut env = prepare("leave", &format!("security = \"starttls\"\n{extra}")).await;
    let sibling = env.provider.imap.start_sibling("127.0.0.1:0", server).await.unwrap();
    let implicit = format!("port = {}\nca_file", env.provider.imap.addr.port());
    assert!(env.config_text.contains(&implicit));
    env.config_text = env.config_text.replacen(&implicit, &format!("port = {}\nca_file", sibling.addr.port()), 1);
    (env, sibling)
}

/// What a connection that went by the book sent in clear, each time.
fn only_capability_and_starttls_in_clear(server: &ImapServer) {
    let clear = server.cleartext_commands();
    assert!(!clear.is_empty(), "no connection reached this server");
    assert!(clear.chunks(2).all(|c| c == ["CAPABILITY", "STARTTLS"]), "in clear: {clear:?}");
}

#[tokio::test]
async fn starttls_fetches_byte_for_byte_and_logs_in_only_after_tls() {
    let (mut env, server) = prepare_starttls(ImapSecurity::StartTls, "").await;
    env.restart().await;
    let store = env.provider.retrieval.mailstore.clone();
    let a = env.provider.retrieval.deliver(LEGAL, mail("uno"));
    let b = env.provider.retrieval.deliver(LEGAL, mail("due"));
    let report = env.poll("legal").await;
    assert_eq!((report.listed, report.fetched, report.deleted), (2, 2, 0));
    let got = env.corporate_messages(2).await;
    wait_injected(&env, 2).await;
    for (c, raw) in got.iter().zip([mail("uno"), mail("due")]) {
        assert!(c.data.ends_with(&raw), "injected byte-for-byte");
        assert!(c.data.starts_with(b"X-Pecgate-Mailbox: legal\r\n"));
    }
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(flags(&env, LEGAL), [(true, false), (true, false)]);
    assert_eq!((store.retrievals(&a), store.retrievals(&b)), (1, 1));
    assert_eq!(env.capture.bag.len(), 2);
    // Three sessions (start-up and two polls), each: CAPABILITY, STARTTLS, then TLS.
    only_capability_and_starttls_in_clear(&server);
    assert!(server.cleartext_commands().len() >= 6, "{:?}", server.cleartext_commands());
    assert!(env.provider.imap.cleartext_commands().is_empty(), "the imaps server was not used");
}

/// Before TLS the server offers no extension: IDLE is known only from the
/// CAPABILITY pecgate issues again after TLS (RFC 3501 6.2.1).
#[tokio::test]
async fn starttls_learns_the_capabilities_again_after_tls_and_idles() {
    let (mut env, server) = prepare_starttls(ImapSecurity::StartTls, "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.restart().await;
    wait_mode(&env, "idling").await;
    env.provider.retrieval.deliver(LEGAL, mail("via idle"));
    let got = env.capture.bag.wait_for(1, Duration::from_secs(10)).await.unwrap_or_else(|g| panic!("got {} (interval is 3600 s)", g.len()));
    assert!(got[0].data.ends_with(&mail("via idle")));
    only_capability_and_starttls_in_clear(&server);
}

#[tokio::test]
async fn the_client_discards_the_capabilities_from_before_starttls() {
    let pki = pecgate::tls::TestPki::generate(&["localhost"]).unwrap();
    let store = Arc::new(pecgate::sim::pop3::Mailstore::new());
    store.add_user(LEGAL, LEGAL_PASSWORD);
    let imaps = ImapServer::start("127.0.0.1:0", store, pki.server.clone()).await.unwrap();
    let server = imaps.start_sibling("127.0.0.1:0", ImapSecurity::StartTls).await.unwrap();
    let ep = pecgate::imap::Endpoint {
        host: "localhost".into(),
        port: server.addr.port(),
        security: pecgate::imap::Security::StartTls,
        tls: pecgate::tls::client_config_from_pem(&pki.ca_pem).unwrap(),
        timeout: Duration::from_secs(5),
    };
    let mut c = pecgate::imap::Client::connect(&ep).await.unwrap();
    assert_eq!(c.capabilities(), ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE"], "the ones offered after TLS only");
    assert_eq!(server.cleartext_commands(), ["CAPABILITY", "STARTTLS"]);
    c.login(LEGAL, &pecgate::config::Secret::new(LEGAL_PASSWORD)).await.unwrap();
    assert_eq!(server.cleartext_commands(), ["CAPABILITY", "STARTTLS"], "LOGIN went over TLS");
    c.logout().await.unwrap();

    // Implicit TLS to a server that speaks STARTTLS: a TLS error, nothing sent in clear.
    let ep = pecgate::imap::Endpoint { security: pecgate::imap::Security::Tls, ..ep };
    let e = pecgate::imap::Client::connect(&ep).await.err().expect("no TLS from the first byte");
    assert!(matches!(e, pecgate::imap::Error::Tls { .. }), "{e:?}");
    let clear = server.cleartext_commands();
    assert!(clear.len() > 2 && !clear[2..].iter().any(|v| v == "LOGIN"), "only the ClientHello, read as lines: {clear:?}");
}

/// The message is not fetched, and the password never went in clear: the
/// server would have taken a LOGIN in clear, and saw none.
async fn assert_not_fetched_and_no_login_in_clear(env: &TestEnv, server: &ImapServer, subject: &str) {
    assert_eq!(flags(env, LEGAL), [(false, false)], "untouched");
    assert!(env.capture.bag.all().iter().all(|c| !c.data.ends_with(&mail(subject))), "not injected");
    let clear = server.cleartext_commands();
    assert!(!clear.is_empty() && !clear.iter().any(|v| v == "LOGIN"), "in clear: {clear:?}");
    let status = env.app().fetchers.get("legal").unwrap().status();
    assert!(status.last_error.as_deref().is_some_and(|e| !e.contains(LEGAL_PASSWORD)), "{status:?}");
}

#[tokio::test]
async fn a_server_without_starttls_is_an_error_and_never_gets_a_login_in_clear() {
    let (mut env, server) = prepare_starttls(ImapSecurity::Plaintext, "").await;
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("in chiaro"));
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("does not offer STARTTLS"), "{err}");
    assert!(!err.contains(LEGAL_PASSWORD));
    assert_not_fetched_and_no_login_in_clear(&env, &server, "in chiaro").await;
    assert!(server.cleartext_commands().iter().all(|v| v == "CAPABILITY"), "{:?}", server.cleartext_commands());
}

#[tokio::test]
async fn a_refused_starttls_is_an_error_and_the_next_poll_fetches_over_tls() {
    let (mut env, server) = prepare_starttls(ImapSecurity::StartTls, "").await;
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("rifiutato"));
    server.faults.arm(ImapFault::RefuseStartTls);
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("refused STARTTLS") && err.contains("UNAVAILABLE"), "{err}");
    assert_not_fetched_and_no_login_in_clear(&env, &server, "rifiutato").await;
    // The refusal was once: the next session upgrades and fetches.
    assert_eq!(poll_twice(&env, 1).await, (1, 0));
    assert!(env.corporate_messages(1).await.iter().any(|c| c.data.ends_with(&mail("rifiutato"))));
    assert_eq!(flags(&env, LEGAL), [(true, false)]);
    only_capability_and_starttls_in_clear(&server);
}

#[tokio::test]
async fn lines_injected_in_clear_after_starttls_are_refused_before_login() {
    let (mut env, server) = prepare_starttls(ImapSecurity::StartTls, "").await;
    env.restart().await;
    env.provider.retrieval.deliver(LEGAL, mail("iniettato"));
    server.faults.arm(ImapFault::InjectAfterStartTls);
    let err = try_poll(&env).await.unwrap_err();
    assert!(err.contains("data after the STARTTLS reply"), "{err}");
    assert_not_fetched_and_no_login_in_clear(&env, &server, "iniettato").await;
}

const DAY_MS: i64 = 86_400_000;

/// Age counts from the fetch, on the gateway's clock; the simulator
/// expunges only what is flagged `\Deleted`, so gone means flagged and expunged.
#[tokio::test]
async fn delete_after_keeps_the_younger_seen_and_expunges_the_older() {
    let clock = ManualClock::new(1_800_000_000_000);
    let mut env = prepare_on("delete-after", "delete_after_days = 30\n", clock.clone()).await;
    env.restart().await;
    let store = env.provider.retrieval.mailstore.clone();
    let old = env.provider.retrieval.deliver(LEGAL, mail("vecchio"));
    assert_eq!(env.poll("legal").await.fetched, 1);
    wait_injected(&env, 1).await;
    clock.advance(20 * DAY_MS);
    let young = env.provider.retrieval.deliver(LEGAL, mail("giovane"));
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.deleted), (1, 0));
    wait_injected(&env, 2).await;
    // One millisecond short of 30 days for the older: both stay, \Seen.
    clock.advance(10 * DAY_MS - 1);
    assert_eq!(env.poll("legal").await.deleted, 0);
    assert_eq!(flags(&env, LEGAL), [(true, false), (true, false)]);
    clock.advance(1);
    let report = env.poll("legal").await;
    assert_eq!((report.listed, report.fetched, report.deleted), (2, 0, 1));
    let left = store.imap_flags(LEGAL);
    assert_eq!(left, [(young.clone(), true, false)], "the older ({old}) expunged, the younger kept and \\Seen");
    assert_eq!(store.messages(LEGAL)[0].1, mail("giovane"));
    // 30 days after its own fetch the younger goes too; nothing was fetched twice.
    clock.advance(20 * DAY_MS);
    assert_eq!(env.poll("legal").await.deleted, 1);
    assert!(store.is_empty(LEGAL));
    assert_eq!((store.retrievals(&old), store.retrievals(&young)), (1, 1));
    assert_eq!(env.capture.bag.len(), 2);
}

/// Metrics are process-wide: the mailbox gets an id of its own here so that
/// only this test's receipts are counted under it.
#[tokio::test]
async fn receipts_fetched_over_imap_are_observed_in_the_receipt_latency_histogram() {
    let mut env = prepare("leave", "").await;
    assert_eq!(env.config_text.matches("id = \"legal\"\n").count(), 1);
    env.config_text = env.config_text.replacen("id = \"legal\"\n", "id = \"latenza\"\n", 1);
    env.restart().await;
    let series = |kind: &str| format!("pecgate_receipt_latency_seconds_count{{mailbox=\"latenza\",kind=\"{kind}\"}}");
    let (_, before) = http_get(env.app().admin_addr, "/metrics").await;
    for kind in ["accettazione", "avvenuta-consegna"] {
        assert_eq!(metric_value(&before, &series(kind)).unwrap_or(0.0), 0.0, "{before}");
    }
    send_for_receipts(&env, "Latenza", "latenza").await;
    assert_eq!(env.app().poll("latenza").await.unwrap().unwrap().fetched, 2);
    env.corporate_messages(2).await;
    let (_, after) = http_get(env.app().admin_addr, "/metrics").await;
    for kind in ["accettazione", "avvenuta-consegna"] {
        assert_eq!(metric_value(&after, &series(kind)), Some(1.0), "{kind} in\n{after}");
        let sum = metric_value(&after, &format!("pecgate_receipt_latency_seconds_sum{{mailbox=\"latenza\",kind=\"{kind}\"}}"));
        assert!(sum.is_some_and(|s| (0.0..60.0).contains(&s)), "{kind}: {sum:?}");
    }
    assert_eq!(metric_value(&after, "pecgate_receipts_total{mailbox=\"latenza\",kind=\"accettazione\"}"), Some(1.0));
}

/// Instance A idles on the mailbox; another instance, `gw-b` (a second
/// handle on the same database, as the store contract tests do), takes the
/// lease over as it would once A's lease ran out (its clock is put past A's
/// lease). A, unable to renew between IDLE rounds, stops idling; its polls
/// stand by and fetch nothing while B holds the lease; once B gives it up,
/// A fetches the message, once. B polling for real (two gateways on one
/// store) needs PostgreSQL: tests/cluster.rs.
#[tokio::test]
async fn an_idling_instance_that_lost_the_lease_stops_idling_and_fetches_nothing_until_it_is_given_up() {
    use pecgate::store::Store;
    let mut env = prepare("leave", "").await;
    env.config_text = env.config_text.replacen("idle = false", "idle = true", 1);
    env.config_text.push_str("\n[cluster]\ninstance_id = \"gw-a\"\nlease_secs = 5\n");
    env.restart().await;
    let status = |env: &TestEnv| env.app().fetchers.get("legal").unwrap().status();
    let deadline = tokio::time::Instant::now() + WAIT;
    while status(&env).mode != Some("idling") {
        assert!(tokio::time::Instant::now() < deadline, "never idled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b = pecgate::store::sql::SqlStore::open_sqlite(&env.dir.path().join("pecgate.db"), "gw-b").await.unwrap();
    let held = |leases: Vec<pecgate::store::Lease>| leases.into_iter().find(|l| l.name == "pop3:legal").map(|l| l.holder);
    assert_eq!(held(b.leases().await.unwrap()).as_deref(), Some("gw-a"));
    let later = pecgate::clock::system().now_ms() + 2 * 3_600_000;
    assert!(b.acquire_lease("pop3:legal", later, later + 3_600_000).await.unwrap(), "taken over");

    // A's next IDLE round ends (lease_secs / 2) without a renewal: it drops the session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(&env).mode != Some("polling") {
        assert!(tokio::time::Instant::now() < deadline, "still idling without the lease: {:?}", status(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = env.provider.retrieval.mailstore.clone();
    let uid = env.provider.retrieval.deliver(LEGAL, mail("conteso"));
    let report = env.poll("legal").await;
    assert_eq!((report.standby.as_deref(), report.listed, report.fetched), (Some("gw-b"), 0, 0));
    assert!(status(&env).standby);
    assert_eq!(store.retrievals(&uid), 0, "not fetched without the lease");
    assert_eq!(flags(&env, LEGAL), [(false, false)]);
    assert!(env.capture.bag.all().iter().all(|c| !c.data.ends_with(&mail("conteso"))));

    // B stops cleanly: the lease is free, A polls again.
    b.release_lease("pop3:legal").await.unwrap();
    let report = env.poll("legal").await;
    assert_eq!((report.standby, report.fetched), (None, 1));
    let got = env.corporate_messages(1).await;
    assert!(got.iter().any(|c| c.data.ends_with(&mail("conteso"))));
    wait_injected(&env, 1).await;
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(held(b.leases().await.unwrap()).as_deref(), Some("gw-a"));
    assert!(!status(&env).standby);
    assert_eq!(store.retrievals(&uid), 1);
    assert_eq!(env.capture.bag.all().iter().filter(|c| c.data.ends_with(&mail("conteso"))).count(), 1, "injected once");
    assert_eq!(flags(&env, LEGAL), [(true, false)]);
}
