//! The outbound path end to end: corporate MTA -> pecgate -> simulated PEC provider.

mod common;

use common::*;
use pecgate::sim::provider::{FaultAction, Stage};
use pecgate::store::{MessageState, RecipientState};

const BODY: &str =
    "Buongiorno,\r\n.una riga che inizia con un punto\r\n..e due punti\r\nriga 8-bit: perch\u{e9} \u{20ac}\r\n\r\nCordiali saluti\r\n";

fn message(from_header: &str, to: &str, cc: Option<&str>, subject: &str, extra: &str) -> String {
    let cc = cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default();
    format!(
        "From: {from_header}\r\nTo: {to}\r\n{cc}Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <orig-1@azienda.it>\r\nX-Custom: keep   me\r\n{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{BODY}"
    )
}

#[tokio::test]
async fn tagged_mail_leaves_rewritten_and_byte_for_byte() {
    let env = TestEnv::start().await;
    // Luca may send only from "legal", so the plain [PEC] tag is enough.
    let msg = message(
        "\"Luca Verdi\" <luca.verdi@azienda.it>",
        "ufficio@pec.fornitore.it",
        Some("altro@pec.fornitore.it"),
        "[PEC] Contratto n. 42",
        "Bcc: nascosto@x.it\r\n",
    );
    let reply = env.send(LUCA, &["ufficio@pec.fornitore.it", "altro@pec.fornitore.it"], &msg).await;
    assert!(reply.starts_with("250 2.0.0 queued as "), "{reply}");
    let qid = queue_id(&reply);

    let got = env.provider_messages(1).await;
    let m = &got[0];
    assert_eq!(m.mail_from, LEGAL, "envelope sender rewritten to the mailbox");
    assert_eq!(m.rcpts, ["ufficio@pec.fornitore.it", "altro@pec.fornitore.it"]);
    assert_eq!(m.auth.as_deref(), Some(LEGAL), "authenticated with the mailbox credentials");
    let expected = format!(
        "From: \"Luca Verdi\" <{LEGAL}>\r\nTo: ufficio@pec.fornitore.it\r\nCc: altro@pec.fornitore.it\r\nSubject: Contratto n. 42\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <orig-1@azienda.it>\r\nX-Custom: keep   me\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-TipoRicevuta: breve\r\n\r\n{BODY}"
    );
    assert_eq!(m.text(), expected, "only From/Subject/Bcc/X-TipoRicevuta change; the body is byte-for-byte");

    let stored = env.wait_state(&qid, MessageState::Submitted).await;
    assert_eq!(stored.message_id, "orig-1@azienda.it");
    assert_eq!(stored.subject, "Contratto n. 42");
    let rcpts = env.app().store.recipients(&qid).await.unwrap();
    assert!(rcpts.iter().all(|r| r.state == RecipientState::Submitted), "{rcpts:?}");
    let events: Vec<String> = env.app().store.events(&qid).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(events, ["received", "queued", "submitted", "submitted", "submitted"]);
}

#[tokio::test]
async fn encoded_subject_tag_is_stripped_and_tag_selects_mailbox() {
    let env = TestEnv::start().await;
    // "[PEC:hr] Fattura n. € 12" in UTF-8 base64, folded across two encoded words.
    let subject = "=?UTF-8?B?W1BFQzpocl0gRmF0dHVyYSBuLiA=?=\r\n =?UTF-8?B?4oKsIDEy?=";
    let msg = message(MARIO, "a@pec.x.it", None, subject, "");
    let reply = env.send(MARIO, &["a@pec.x.it"], &msg).await;
    assert!(reply.starts_with("250"), "{reply}");
    let got = env.provider_messages(1).await;
    assert_eq!(got[0].mail_from, HR, "[PEC:hr] selects mailbox hr");
    assert_eq!(got[0].auth.as_deref(), Some("hr-login"));
    let parsed = mail_parser::MessageParser::default().parse(&got[0].data).unwrap();
    assert_eq!(parsed.subject(), Some("Fattura n. € 12"));

    let latin = message(MARIO, "a@pec.x.it", None, "=?iso-8859-1?Q?[PEC:legal]_Citt=E0_di_Roma?=", "");
    assert!(env.send(MARIO, &["a@pec.x.it"], &latin).await.starts_with("250"));
    let got = env.provider_messages(2).await;
    let parsed = mail_parser::MessageParser::default().parse(&got[1].data).unwrap();
    assert_eq!(parsed.subject(), Some("Città di Roma"));
    assert_eq!(got[1].mail_from, LEGAL);
}

#[tokio::test]
async fn refusals_are_precise_and_nothing_is_queued() {
    let env = TestEnv::start().await;
    let cases = [
        (
            MARIO,
            vec!["a@pec.x.it", "hidden@x.it"],
            message(MARIO, "a@pec.x.it", None, "[PEC:legal] x", ""),
            "550 5.7.1 PEC does not allow Bcc: hidden@x.it is not in To or Cc",
        ),
        (
            "intruso@azienda.it",
            vec!["a@pec.x.it"],
            message("intruso@azienda.it", "a@pec.x.it", None, "[PEC] x", ""),
            "550 5.7.1 intruso@azienda.it is not a user of any PEC mailbox",
        ),
        (
            ANNA,
            vec!["a@pec.x.it"],
            message(ANNA, "a@pec.x.it", None, "[PEC:legal] x", ""),
            "550 5.7.1 anna.bianchi@azienda.it may not send from PEC mailbox legal@pec.azienda.it",
        ),
        (
            ANNA,
            vec!["a@pec.x.it"],
            message(ANNA, "a@pec.x.it", None, "[PEC:old] x", ""),
            "550 5.7.1 PEC mailbox old@pec.azienda.it is not active",
        ),
        (
            MARIO,
            vec!["a@pec.x.it"],
            message(MARIO, "a@pec.x.it", None, "[PEC] x", ""),
            "550 5.7.1 mario.rossi@azienda.it may send from several PEC mailboxes",
        ),
    ];
    for (from, rcpts, msg, want) in cases {
        let reply = env.send(from, &rcpts, &msg).await;
        assert!(reply.starts_with(want), "want {want:?}, got {reply:?}");
    }
    assert!(env.app().store.list_messages(10).await.unwrap().is_empty(), "refused mail is not queued");
    let spool: Vec<_> = std::fs::read_dir(env.dir.path().join("spool/msg")).unwrap().collect();
    assert!(spool.is_empty(), "refused mail leaves no spool files");
    assert!(env.provider.bag.is_empty());
}

#[tokio::test]
async fn client_outside_allowed_clients_gets_554_only() {
    let env = TestEnv::start_with(|t| {
        *t = t.replace("listen = \"127.0.0.1:0\"\nhostname", "listen = \"127.0.0.1:0\"\nallowed_clients = [\"10.0.0.0/8\"]\nhostname")
    })
    .await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    let greeting = c.reply().await;
    assert_eq!(greeting, "554 5.7.1 access denied\r\n");
    assert_eq!(c.reply().await, "", "connection closed after 554");
}

#[tokio::test]
async fn restart_delivers_what_was_queued_when_pecgate_died() {
    let mut env = TestEnv::start().await;
    // The provider stalls inside the transaction; pecgate dies meanwhile.
    env.provider.faults.add(Stage::Mail, FaultAction::Delay(std::time::Duration::from_secs(3600)), 1);
    let reply = env.send(MARIO, &["a@pec.x.it"], &message(MARIO, "a@pec.x.it", None, "[PEC:legal] dopo il crash", "")).await;
    let qid = queue_id(&reply);
    env.wait_state(&qid, MessageState::Sending).await;
    env.crash();
    assert!(env.provider.bag.is_empty());

    env.restart().await;
    let got = env.provider_messages(1).await;
    assert_eq!(got[0].header("Subject").as_deref(), Some("dopo il crash"));
    env.wait_state(&qid, MessageState::Submitted).await;
    let events: Vec<String> = env.app().store.events(&qid).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(events.contains(&"recovered".to_string()), "{events:?}");
}

#[tokio::test]
async fn temporary_failure_is_retried_and_delivered_once() {
    let env = TestEnv::start().await;
    env.provider.faults.add(Stage::Data, FaultAction::Reply(pecgate::proto::Reply::new(451, Some("4.3.0"), "try later")), 1);
    let reply = env.send(MARIO, &["a@pec.x.it"], &message(MARIO, "a@pec.x.it", None, "[PEC:legal] riprova", "")).await;
    let qid = queue_id(&reply);
    let m = env.wait_state(&qid, MessageState::Submitted).await;
    assert_eq!(m.attempts, 2);
    assert_eq!(env.provider.bag.len(), 1, "delivered exactly once");
    let events = env.app().store.events(&qid).await.unwrap();
    let deferred = events.iter().find(|e| e.kind == "deferred").expect("a deferred event");
    assert!(deferred.detail.contains("451 4.3.0 try later"), "{deferred:?}");
    assert!(env.capture.bag.is_empty(), "no notice for a temporary failure");
}

#[tokio::test]
async fn permanent_failure_notifies_the_sender() {
    let env = TestEnv::start().await;
    env.provider.faults.add(Stage::Rcpt, FaultAction::Reply(pecgate::proto::Reply::new(550, Some("5.1.1"), "casella inesistente")), 1);
    let msg = message(MARIO, "nessuno@pec.x.it", Some("ok@pec.x.it"), "[PEC:legal] Offerta", "");
    let reply = env.send(MARIO, &["nessuno@pec.x.it", "ok@pec.x.it"], &msg).await;
    let qid = queue_id(&reply);

    let notices = env.corporate_messages(1).await;
    let n = &notices[0];
    assert_eq!(n.rcpts, [MARIO]);
    assert_eq!(n.mail_from, "pecgate@azienda.it");
    let parsed = mail_parser::MessageParser::default().parse(&n.data).unwrap();
    assert_eq!(parsed.subject(), Some("PEC non inviata: Offerta"));
    let body = parsed.body_text(0).unwrap();
    assert!(body.contains("nessuno@pec.x.it") && body.contains("550 5.1.1 casella inesistente"), "{body}");
    assert!(!body.contains("ok@pec.x.it"), "only the refused recipient is reported");

    // The other recipient still got it.
    let got = env.provider_messages(1).await;
    assert_eq!(got[0].rcpts, ["ok@pec.x.it"]);
    env.wait_state(&qid, MessageState::Submitted).await;
    let rcpts = env.app().store.recipients(&qid).await.unwrap();
    let states: Vec<(String, RecipientState)> = rcpts.into_iter().map(|r| (r.address, r.state)).collect();
    assert_eq!(states, [("nessuno@pec.x.it".to_string(), RecipientState::Failed), ("ok@pec.x.it".to_string(), RecipientState::Submitted)]);
}

#[tokio::test]
async fn wrong_provider_password_keeps_the_message_queued() {
    let env = TestEnv::start_with(|t| *t = t.replace("password_file = \"legal.pw\"", "password_file = \"hr.pw\"")).await;
    let reply = env.send(MARIO, &["a@pec.x.it"], &message(MARIO, "a@pec.x.it", None, "[PEC:legal] x", "")).await;
    let qid = queue_id(&reply);
    // Wait for the first attempt to be recorded.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = env.app().store.message(&qid).await.unwrap().unwrap();
        if m.attempts >= 1 {
            assert_eq!(m.state, MessageState::Queued, "an AUTH failure never fails the message");
            assert!(m.last_error.as_deref().unwrap_or("").contains("535"), "{:?}", m.last_error);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(env.provider.bag.is_empty());
    // At most the mailbox admin's notice of the refused login; no failure notice.
    assert!(
        env.capture.bag.all().iter().all(|m| m.header("X-Pecgate-Kind").as_deref() == Some("mailbox-notice")),
        "{:?}",
        env.capture.bag.all().iter().map(|m| m.header("X-Pecgate-Kind")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn crash_after_the_provider_accepted_sends_again_and_says_so() {
    // Case (d): the provider has the message but pecgate dies before it hears 250.
    let mut env = TestEnv::start().await;
    env.provider.faults.add(Stage::Accepted, FaultAction::Delay(std::time::Duration::from_secs(3600)), 1);
    let qid = queue_id(&env.send(MARIO, &["a@pec.x.it"], &message(MARIO, "a@pec.x.it", None, "[PEC:legal] finestra", "")).await);
    env.provider_messages(1).await;
    env.crash();
    env.restart().await;
    let got = env.provider_messages(2).await;
    assert_eq!(got.len(), 2, "the documented at-least-once window: sent again");
    assert_eq!(got[0].data, got[1].data, "the same bytes, the same Message-ID: the provider or the reader can tell");
    env.wait_state(&qid, MessageState::Submitted).await;
    let events: Vec<String> = env.app().store.events(&qid).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(events.iter().filter(|k| *k == "recovered").count(), 1, "{events:?}");
}

fn pec(n: usize) -> String {
    message("\"Luca Verdi\" <luca.verdi@azienda.it>", "ufficio@pec.fornitore.it", None, &format!("[PEC] Fattura {n}"), "")
}

async fn states(env: &TestEnv, ids: &[String]) -> Vec<MessageState> {
    let mut out = Vec::new();
    for id in ids {
        out.push(env.app().store.message(id).await.unwrap().unwrap().state);
    }
    out
}

/// Sends 20 messages at once, then steps simulated time 5 s at a time (once
/// a dispatch pass has seen the new time and nothing is in flight) until all
/// are submitted, bounded by 15 simulated minutes; returns the minutes taken.
async fn send_20_and_step(env: &TestEnv, clock: &std::sync::Arc<pecgate::clock::ManualClock>) -> (Vec<String>, f64) {
    use pecgate::clock::Clock;
    let mut ids = Vec::new();
    for n in 0..20 {
        let reply = env.send(LUCA, &["ufficio@pec.fornitore.it"], &pec(n)).await;
        assert!(reply.starts_with("250 "), "{reply}");
        ids.push(queue_id(&reply));
    }
    let start = clock.now_ms();
    loop {
        let deadline = tokio::time::Instant::now() + WAIT;
        let now_states = loop {
            let s = states(env, &ids).await;
            if env.app().outbound.last_pass() >= clock.now_ms() && !s.contains(&MessageState::Sending) {
                break s;
            }
            assert!(tokio::time::Instant::now() < deadline, "deliveries never finished");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        assert!(!now_states.contains(&MessageState::Failed), "a throttled message failed: {now_states:?}");
        if now_states.iter().all(|s| *s == MessageState::Submitted) {
            break;
        }
        assert!(clock.now_ms() - start < 15 * 60_000, "not all delivered after 15 simulated minutes: {now_states:?}");
        clock.advance(5_000);
        env.app().enqueue.kick();
    }
    assert_eq!(env.provider_messages(20).await.len(), 20);
    assert!(env.capture.bag.is_empty(), "nobody is told anything failed: {:?}", env.capture.bag.all().first().map(|c| c.text()));
    for id in &ids {
        let rcpts = env.app().store.recipients(id).await.unwrap();
        assert!(rcpts.iter().all(|r| r.state == RecipientState::Submitted), "{rcpts:?}");
    }
    (ids, (clock.now_ms() - start) as f64 / 60_000.0)
}

#[tokio::test]
async fn class_of_service_550_slows_down_and_delivers_everything() {
    use pecgate::clock::ManualClock;
    let clock = ManualClock::new(1_800_000_000_000);
    // The gateway's mailbox does not know Legalmail's limit; the simulated
    // provider behaves like Legalmail: about 6 a minute, the excess answered
    // with a permanent-looking 550.
    let env = TestEnv::start_with_clock(|_| {}, clock.clone()).await;
    env.provider.throttle.set_clock(clock.clone());
    env.provider.set_profile(LEGAL, pecgate::config::profiles::Provider::Legalmail, None);
    let (_, minutes) = send_20_and_step(&env, &clock).await;
    eprintln!("20 throttled messages delivered in {minutes:.1} simulated minutes, {} refusals", env.provider.throttle.refused());
    assert!(env.provider.throttle.refused() > 0, "the simulator never throttled: the test proves nothing");
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    let throttled = metric_value(&metrics, "pecgate_provider_throttled_total{mailbox=\"legal\"}").unwrap_or(0.0);
    assert!(throttled > 0.0, "{metrics}");
}

#[tokio::test]
async fn the_legalmail_profile_paces_submissions_so_the_provider_never_refuses() {
    use pecgate::clock::ManualClock;
    let clock = ManualClock::new(1_800_000_000_000);
    // provider = "legalmail" fills the rate limit (6 a minute); the test's
    // servers stay as written (the profile's hosts are overridden).
    let env = TestEnv::start_with_clock(
        |t| *t = t.replacen("receipt_type = \"breve\"\n", "receipt_type = \"breve\"\nprovider = \"legalmail\"\n", 1),
        clock.clone(),
    )
    .await;
    let m = &env.config().mailboxes[0];
    assert_eq!((m.rate_limit_per_minute, m.smtp.host.as_str()), (6, "localhost"), "the profile did not apply");
    env.provider.throttle.set_clock(clock.clone());
    env.provider.set_profile(LEGAL, pecgate::config::profiles::Provider::Legalmail, None);
    let (_, minutes) = send_20_and_step(&env, &clock).await;
    eprintln!("20 messages at the Legalmail profile's pace: {minutes:.1} simulated minutes");
    assert_eq!(env.provider.throttle.refused(), 0, "the profile's limit keeps under the provider's");
    assert!(minutes >= 3.0, "20 messages at 6 a minute cannot take less than 3 minutes: {minutes}");
}

/// Waits (bounded) until each message was tried at least `n` times.
async fn wait_attempts(env: &TestEnv, ids: &[String], n: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut attempts = Vec::new();
        for id in ids {
            attempts.push(env.app().store.message(id).await.unwrap().unwrap().attempts);
        }
        if attempts.iter().all(|a| *a >= n) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not retried: {attempts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sender_not_owned_tells_the_admin_once_and_keeps_the_messages() {
    use pecgate::proto::Reply;
    let env = TestEnv::start().await;
    let refusal = Reply::parsed(553, Some("5.7.1".into()), vec![format!("<{LEGAL}>: Sender address rejected: not owned by user {LEGAL}")]);
    env.provider.faults.add(Stage::Mail, FaultAction::Reply(refusal), 10_000);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(queue_id(&env.send(LUCA, &["ufficio@pec.fornitore.it"], &pec(n)).await));
    }
    // Several refusals each (backoff 1-2 s in the test config), still one notice.
    wait_attempts(&env, &ids, 3).await;
    let notices = env.corporate_messages(1).await;
    assert_eq!(env.capture.bag.len(), 1, "one notice per incident");
    assert_eq!(notices[0].rcpts, vec![MARIO.to_owned()], "the mailbox admin");
    assert_eq!(notices[0].header("X-Pecgate-Kind").as_deref(), Some("mailbox-notice"));
    let text = notices[0].text().replace("=\r\n", ""); // quoted-printable soft breaks
    assert!(
        text.contains(&format!("the provider login {LEGAL} does not own address {LEGAL}: check username and address of mailbox legal")),
        "{text}"
    );
    assert!(states(&env, &ids).await.iter().all(|s| matches!(s, MessageState::Queued | MessageState::Sending)));
    env.provider.faults.clear();
    for id in &ids {
        env.wait_state(id, MessageState::Submitted).await;
    }
    assert_eq!(env.provider_messages(3).await.len(), 3);
    assert_eq!(env.capture.bag.len(), 1, "no failure notice to the sender");
}

/// A refused login when sending (a send-only mailbox never fetches, so only
/// here can it learn): the admin is told once, with the expiry hint once the
/// password's date has passed, and the messages wait until it works again.
#[tokio::test]
async fn a_refused_login_tells_the_admin_once_with_the_expiry_hint_and_keeps_the_messages() {
    use pecgate::proto::Reply;
    let env = TestEnv::start_with(|t| {
        *t = t.replacen("password_file = \"legal.pw\"\n", "password_file = \"legal.pw\"\npassword_expires = \"2026-01-31\"\n", 1)
    })
    .await;
    let refusal = Reply::parsed(535, Some("5.7.8".into()), vec!["Error: authentication failed".into()]);
    env.provider.faults.add(Stage::Auth, FaultAction::Reply(refusal), 10_000);
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(queue_id(&env.send(LUCA, &["ufficio@pec.fornitore.it"], &pec(n)).await));
    }
    wait_attempts(&env, &ids, 3).await;
    let notices = env.corporate_messages(1).await;
    assert_eq!(env.capture.bag.len(), 1, "one notice per incident");
    assert_eq!(notices[0].rcpts, vec![MARIO.to_owned()], "the mailbox admin");
    let text = notices[0].text().replace("=\r\n", "");
    assert!(text.contains(&format!("the provider refused the login {LEGAL} of mailbox legal")), "{text}");
    assert!(text.contains("535 5.7.8"), "{text}");
    assert!(text.contains("the password probably expired: password_expires is 2026-01-31"), "{text}");
    assert!(states(&env, &ids).await.iter().all(|s| matches!(s, MessageState::Queued | MessageState::Sending)), "kept");
    env.provider.faults.clear();
    for id in &ids {
        env.wait_state(id, MessageState::Submitted).await;
    }
    assert_eq!(env.capture.bag.len(), 1, "no failure notice to the sender");
}
