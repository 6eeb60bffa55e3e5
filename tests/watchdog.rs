//! The watchdog: overdue receipts tell the sender once, a stuck queue tells
//! the admin once per incident. Time is a manual clock, stepped by the test.

mod common;

use common::*;
use pecgate::clock::ManualClock;
use pecgate::proto::Reply;
use pecgate::sim::provider::{FaultAction, Stage};
use pecgate::sim::receipts::Behavior;
use pecgate::store::{MessageState, RecipientState};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn msg(to: &str) -> String {
    format!("From: {LUCA}\r\nTo: {to}\r\nSubject: [PEC] Scadenza\r\n\r\nciao\r\n")
}

#[tokio::test]
async fn overdue_receipts_notify_the_sender_once_each() {
    let clock = ManualClock::new(1_800_000_000_000);
    let env = TestEnv::start_fetching(|_| {}, clock.clone()).await;
    env.provider.retrieval.set_behavior(Behavior { hold: true, ..Default::default() });
    let qid = queue_id(&env.send(LUCA, &["silenzio@pec.x.it"], &msg("silenzio@pec.x.it")).await);
    env.wait_state(&qid, MessageState::Submitted).await;

    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0, "not overdue yet");
    clock.advance(31 * MINUTE);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0, "told once");
    let got = env.corporate_messages(1).await;
    assert_eq!(got[0].rcpts, [LUCA]);
    assert_eq!(got[0].header("X-Pecgate-Kind").as_deref(), Some("acceptance-overdue"));

    // The acceptance arrives; "silenzio" never gets a delivery receipt.
    env.provider.retrieval.release_held();
    env.poll("legal").await;
    assert_eq!(env.app().store.recipients(&qid).await.unwrap()[0].state, RecipientState::Accepted);
    clock.advance(12 * HOUR + MINUTE);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1);
    clock.advance(12 * HOUR);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0);
    let got = env.corporate_messages(4).await;
    let kinds: Vec<String> = got.iter().map(|c| c.header("X-Pecgate-Kind").unwrap_or_default()).collect();
    assert_eq!(kinds, ["acceptance-overdue", "accettazione", "delivery-warning", "delivery-overdue"]);
    let final_notice = mail_parser::MessageParser::default().parse(&got[3].data).unwrap();
    assert_eq!(final_notice.subject(), Some("PEC non consegnata a silenzio@pec.x.it: Scadenza"));
    let events: Vec<String> = env.app().store.events(&qid).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert!(events.contains(&"watchdog:delivery-overdue".to_string()), "{events:?}");
}

#[tokio::test]
async fn stuck_queue_tells_the_admin_once_per_incident() {
    let clock = ManualClock::new(1_800_000_000_000);
    let env = TestEnv::start_fetching(|_| {}, clock.clone()).await;
    env.provider.faults.add(Stage::Data, FaultAction::Reply(Reply::new(451, Some("4.3.0"), "busy")), 1000);
    let qid = queue_id(&env.send(LUCA, &["a@pec.x.it"], &msg("a@pec.x.it")).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.app().store.message(&qid).await.unwrap().unwrap().attempts == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    clock.advance(31 * MINUTE);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0, "one notice per incident");
    let got = env.corporate_messages(1).await;
    assert_eq!(got[0].rcpts, [MARIO], "the mailbox admin");
    let body = mail_parser::MessageParser::default().parse(&got[0].data).unwrap().body_text(0).unwrap().into_owned();
    assert!(body.contains("1 message(s) waiting, the oldest for 31 minutes"), "{body}");
}

/// A provider password that expires in 10 days: the mailbox admin is told
/// once (the 14-day warning), again at 3 days, and Grafana sees the countdown.
#[tokio::test]
async fn an_expiring_password_tells_the_admin_once_per_stage() {
    let clock = ManualClock::new(1_800_000_000_000); // 2027-01-15T08:00:00Z
    let env = TestEnv::start_fetching(
        |t| *t = t.replacen("password_file = \"legal.pw\"\n", "password_file = \"legal.pw\"\npassword_expires = \"2027-01-25\"\n", 1),
        clock.clone(),
    )
    .await;
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0, "one notice per stage");
    let got = env.corporate_messages(1).await;
    assert_eq!(got[0].rcpts, [MARIO], "the mailbox admin");
    let body = mail_parser::MessageParser::default().parse(&got[0].data).unwrap().body_text(0).unwrap().into_owned();
    assert!(body.contains("the provider password expires on 2027-01-25, in 10 day(s)"), "{body}");
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    let line = metrics.lines().find(|l| l.starts_with("pecgate_mailbox_password_expiry_seconds{mailbox=\"legal\"}")).unwrap_or_default();
    assert!(line.ends_with(" 835200"), "9 days 16 hours left: {line}");
    clock.advance(8 * 24 * HOUR);
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 1, "the 3-day warning");
    assert_eq!(env.app().watchdog.pass().await.unwrap().notices, 0);
}
