//! The fetch path: provider receipts and PEC mail over POP3S -> store ->
//! classify -> correlate -> route -> injection into the corporate server.

mod common;

use common::*;
use pecgate::clock::ManualClock;
use pecgate::pec::{BuildParams, Kind};
use pecgate::sim::Captured;
use pecgate::sim::pop3::Fault;
use pecgate::sim::receipts::Behavior;
use pecgate::store::{MessageState, RecipientState};

fn pec_message(to: &str, cc: Option<&str>, subject: &str) -> String {
    let cc = cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default();
    format!(
        "From: {LUCA}\r\nTo: {to}\r\n{cc}Subject: [PEC] {subject}\r\nMessage-ID: <{subject}@azienda.it>\r\n\r\nTesto del messaggio.\r\n.riga con punto\r\n"
    )
}

/// Sends through pecgate and waits until the provider has it.
async fn send_and_submit(env: &TestEnv, rcpts: &[&str], msg: &str) -> String {
    let before = env.provider.bag.len();
    let reply = env.send(LUCA, rcpts, msg).await;
    assert!(reply.starts_with("250"), "{reply}");
    let qid = queue_id(&reply);
    env.provider_messages(before + 1).await;
    env.wait_state(&qid, MessageState::Submitted).await;
    qid
}

fn kind_of(c: &Captured) -> String {
    c.header("X-Pecgate-Kind").unwrap_or_default()
}

fn mailstore_len(env: &TestEnv, user: &str) -> usize {
    env.provider.retrieval.mailstore.len(user)
}

#[tokio::test]
async fn receipts_reach_the_sender_and_update_states() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let qid = send_and_submit(
        &env,
        &["ufficio@pec.fornitore.it", "cliente@gmail.example"],
        &pec_message("ufficio@pec.fornitore.it", Some("cliente@gmail.example"), "Ordine-17"),
    )
    .await;
    // accettazione + one avvenuta-consegna (the gmail recipient is "esterno": no receipt)
    assert_eq!(mailstore_len(&env, LEGAL), 2);
    let report = env.poll("legal").await;
    assert_eq!((report.listed, report.fetched, report.deleted), (2, 2, 0));

    let got = env.corporate_messages(2).await;
    let kinds: Vec<String> = got.iter().map(kind_of).collect();
    assert_eq!(kinds, ["accettazione", "avvenuta-consegna"]);
    for c in &got {
        assert_eq!(c.rcpts, [LUCA], "receipts_to = sender: only the user who sent it");
        assert_eq!(c.mail_from, "pecgate@azienda.it");
    }
    // Inline mode: the provider's bytes follow our headers unchanged.
    let stored = env.provider.retrieval.mailstore.messages(LEGAL);
    for (c, (_, raw)) in got.iter().zip(&stored) {
        assert!(c.data.ends_with(raw), "injected message is the original, byte-for-byte");
        assert!(c.data.starts_with(b"X-Pecgate-Mailbox: legal\r\n"));
    }

    let m = env.app().store.message(&qid).await.unwrap().unwrap();
    assert_eq!(m.state, MessageState::Accepted);
    let states: Vec<(String, RecipientState)> =
        env.app().store.recipients(&qid).await.unwrap().into_iter().map(|r| (r.address, r.state)).collect();
    assert_eq!(
        states,
        [
            ("ufficio@pec.fornitore.it".into(), RecipientState::Delivered),
            ("cliente@gmail.example".into(), RecipientState::NoReceiptExpected)
        ]
    );
    let linked = env.app().store.fetched_for(&qid).await.unwrap();
    assert_eq!(linked.len(), 2);
    // Stored byte-for-byte.
    for rec in &linked {
        let bytes = std::fs::read(env.dir.path().join("spool/fetched").join(format!("{}.eml", rec.id))).unwrap();
        assert!(stored.iter().any(|(_, raw)| raw == &bytes));
    }
    // Polling again fetches nothing new (UIDLs are remembered).
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(env.capture.bag.len(), 2);
}

#[tokio::test]
async fn out_of_order_and_duplicate_receipts_end_in_the_same_state() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    env.provider.retrieval.set_behavior(Behavior { deliveries_first: true, duplicates: true, ..Default::default() });
    let qid = send_and_submit(
        &env,
        &["a@pec.x.it", "errore-b@pec.x.it", "preavviso-c@pec.x.it"],
        &pec_message("a@pec.x.it, errore-b@pec.x.it, preavviso-c@pec.x.it", None, "Tre"),
    )
    .await;
    assert_eq!(mailstore_len(&env, LEGAL), 8, "4 receipts, each twice");
    assert_eq!(env.poll("legal").await.fetched, 8);
    let states: Vec<RecipientState> = env.app().store.recipients(&qid).await.unwrap().into_iter().map(|r| r.state).collect();
    assert_eq!(states, [RecipientState::Delivered, RecipientState::DeliveryError, RecipientState::Warned]);
    assert_eq!(env.app().store.message(&qid).await.unwrap().unwrap().state, MessageState::Accepted);
    // Each receipt delivered once; every copy recorded (its UIDL is known), duplicates without an injection.
    wait_injected(&env, 4).await;
    let injections = env.app().store.list_messages(1000).await.unwrap();
    assert_eq!(injections.iter().filter(|m| m.kind == pecgate::store::MessageKind::Injection).count(), 4);
    let linked = env.app().store.fetched_for(&qid).await.unwrap();
    assert_eq!(linked.len(), 8);
    assert_eq!(linked.iter().filter(|r| r.injection.is_none()).count(), 4);
    // Byte-identical copies are not stored twice.
    let stored = linked.iter().filter(|r| env.dir.path().join("spool/fetched").join(format!("{}.eml", r.id)).exists()).count();
    assert_eq!(stored, 4);
    let events = env.app().store.events(&qid).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "duplicate-receipt").count(), 4);
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metric_value(&metrics, "pecgate_receipts_duplicate_total{mailbox=\"legal\"}").unwrap_or(0.0) >= 4.0, "{metrics}");
    assert_eq!(env.poll("legal").await.fetched, 0, "duplicates are not fetched again");
    assert_eq!(env.capture.bag.len(), 4);
}

#[tokio::test]
async fn preavvisi_at_12_and_24_hours_are_recorded_and_a_5xx_one_is_final_when_configured() {
    let env = TestEnv::start_fetching(
        |t| *t = t.replacen("receipt_type = \"breve\"\n", "receipt_type = \"breve\"\nfinal_preavviso_5xx = true\n", 1),
        pecgate::clock::system(),
    )
    .await;
    assert!(env.config().mailboxes[0].final_preavviso_5xx, "the tweak did not apply");
    env.provider.retrieval.set_behavior(Behavior { preavviso_twice: true, ..Default::default() });
    let qid = send_and_submit(
        &env,
        &["preavviso-c@pec.x.it", "preavviso541-d@pec.x.it"],
        &pec_message("preavviso-c@pec.x.it, preavviso541-d@pec.x.it", None, "Preavvisi"),
    )
    .await;
    assert_eq!(mailstore_len(&env, LEGAL), 5, "acceptance and two preavvisi per recipient");
    assert_eq!(env.poll("legal").await.fetched, 5);
    let states: Vec<RecipientState> = env.app().store.recipients(&qid).await.unwrap().into_iter().map(|r| r.state).collect();
    assert_eq!(states, [RecipientState::Warned, RecipientState::DeliveryError]);
    let events = env.app().store.events(&qid).await.unwrap();
    let warned_c = events.iter().filter(|e| e.rcpt.as_deref() == Some("preavviso-c@pec.x.it") && e.kind == "warned").count();
    assert_eq!(warned_c, 2, "both preavvisi on the timeline: {events:?}");
    let final_d: Vec<_> =
        events.iter().filter(|e| e.rcpt.as_deref() == Some("preavviso541-d@pec.x.it") && e.kind == "delivery_error").collect();
    assert_eq!(final_d.len(), 1, "once final, the second preavviso changes nothing: {final_d:?}");
    assert!(final_d[0].detail.starts_with("errore-consegna"), "{final_d:?}");
    // The raw receipts are kept and delivered as they came.
    wait_injected(&env, 5).await;
    let linked = env.app().store.fetched_for(&qid).await.unwrap();
    assert_eq!(linked.iter().filter(|r| r.kind == "preavviso-errore-consegna").count(), 4);
    assert!(linked.iter().all(|r| r.injection.is_some()));
}

#[tokio::test]
async fn not_accepted_and_unknown_receipts_and_envelopes_are_routed() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    // 1. non-accettazione
    env.provider.retrieval.set_behavior(Behavior { not_accept_next: 1, ..Default::default() });
    let qid = send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Rifiutato")).await;
    // 2. a receipt for a message sent from webmail (unknown Message-ID)
    let mut webmail = BuildParams::sample(Kind::Accettazione);
    webmail.msgid = "sent-from-webmail@provider.example".into();
    webmail.to = LEGAL.into();
    env.provider.retrieval.deliver(LEGAL, pecgate::sim::receipts::build_signed(&mut webmail));
    // 3. an anomaly envelope
    let mut anomaly = BuildParams::sample(Kind::Anomalia);
    anomaly.to = LEGAL.into();
    env.provider.retrieval.deliver(LEGAL, pecgate::sim::receipts::build_signed(&mut anomaly));
    // 4. plain mail that slipped through
    env.provider
        .retrieval
        .deliver(LEGAL, b"From: spam@example.org\r\nTo: legal@pec.azienda.it\r\nSubject: offerta\r\n\r\nciao\r\n".to_vec());

    assert_eq!(env.poll("legal").await.fetched, 4);
    let got = env.corporate_messages(4).await;
    let by_kind = |k: &str| got.iter().find(|c| kind_of(c) == k).unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(by_kind("non-accettazione").rcpts, [LUCA]);
    let receivers = [MARIO, ANNA, LUCA];
    assert_eq!(by_kind("accettazione").rcpts, receivers, "unknown receipts go to every receiver");
    assert_eq!(by_kind("anomalia").rcpts, receivers, "users with anomalies = true (the default)");
    assert_eq!(by_kind("not-pec").rcpts, receivers);
    assert_eq!(env.app().store.message(&qid).await.unwrap().unwrap().state, MessageState::NotAccepted);
    assert_eq!(env.app().store.recipients(&qid).await.unwrap()[0].state, RecipientState::NotAccepted);
}

#[tokio::test]
async fn certified_mail_for_another_mailbox_reaches_its_receivers() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    send_and_submit(&env, &[HR], &pec_message(HR, None, "Interno")).await;
    assert_eq!(mailstore_len(&env, "hr-login"), 1);
    assert_eq!(env.poll("hr").await.fetched, 1);
    let got = env.corporate_messages(1).await;
    assert_eq!(kind_of(&got[0]), "posta-certificata");
    assert_eq!(got[0].rcpts, [MARIO]);
}

#[tokio::test]
async fn attach_mode_wraps_the_original_unchanged() {
    let env = TestEnv::start_fetching(
        |t| *t = t.replace("from = \"pecgate@azienda.it\"", "from = \"pecgate@azienda.it\"\nmode = \"attach\""),
        pecgate::clock::system(),
    )
    .await;
    send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Allegato")).await;
    env.poll("legal").await;
    let got = env.corporate_messages(2).await;
    let originals = env.provider.retrieval.mailstore.messages(LEGAL);
    for (c, (_, raw)) in got.iter().zip(&originals) {
        let parsed = mail_parser::MessageParser::default().parse(&c.data).unwrap();
        assert!(parsed.subject().unwrap().starts_with("[PEC "), "{:?}", parsed.subject());
        assert!(parsed.body_text(0).unwrap().contains("Casella PEC: legal@pec.azienda.it"));
        assert!(c.data.windows(raw.len()).any(|w| w == raw.as_slice()), "original attached byte-for-byte");
    }
}

#[tokio::test]
async fn retention_delete_removes_only_after_commit() {
    let env =
        TestEnv::start_fetching(|t| *t = t.replacen("retention = \"leave\"", "retention = \"delete\"", 1), pecgate::clock::system()).await;
    send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Cancella")).await;
    // The connection drops in the middle of the second RETR: nothing is deleted,
    // the first message is stored once.
    env.provider.pop3_faults.arm(Fault::DropDuringRetr { after_bytes: 100 }, 1);
    let first = env.app().poll("legal").await.unwrap();
    assert!(first.is_err(), "a dropped RETR fails the poll");
    assert_eq!(mailstore_len(&env, LEGAL), 2, "nothing deleted before QUIT");
    let report = env.poll("legal").await;
    assert_eq!(report.fetched, 2);
    // A message whose injection completed while the poll went on may go in the
    // same session; never one the corporate server does not have yet.
    let early = report.deleted;
    assert!(early <= env.capture.bag.len(), "deleted {early} before the corporate server had them");
    env.corporate_messages(2).await;
    wait_injected(&env, 2).await;
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.deleted), (0, 2 - early));
    assert_eq!(mailstore_len(&env, LEGAL), 0);
    assert_eq!(env.capture.bag.len(), 2, "each message injected exactly once");
}

#[tokio::test]
async fn corporate_server_down_keeps_the_pop3_copy_until_injected() {
    // The corporate port is ours all along: first it drops every connection
    // (the server is down), then the capture server takes it over.
    let down = DownPort::start().await;
    let port = down.port;
    let env = TestEnv::start_fetching(
        |t| {
            *t = t.replacen("retention = \"leave\"", "retention = \"delete\"", 1);
            let corporate = t.split("[corporate]\nhost = \"127.0.0.1\"\nport = ").nth(1).unwrap().split('\n').next().unwrap().to_owned();
            *t = t.replace(
                &format!("[corporate]\nhost = \"127.0.0.1\"\nport = {corporate}"),
                &format!("[corporate]\nhost = \"127.0.0.1\"\nport = {port}"),
            );
        },
        pecgate::clock::system(),
    )
    .await;
    send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Giu")).await;
    assert_eq!(env.poll("legal").await.fetched, 2);
    // Nothing listens on the corporate port: the injections wait, the POP3 copies stay.
    assert_eq!(env.poll("legal").await.deleted, 0);
    assert_eq!(mailstore_len(&env, LEGAL), 2);
    // The corporate server comes back on its port.
    let corporate = down.back().await;
    let got = corporate.bag.wait_for(2, WAIT).await.expect("injected once the server is back");
    assert_eq!(got.len(), 2);
    wait_injected(&env, 2).await;
    assert_eq!(env.poll("legal").await.deleted, 2);
    assert_eq!(mailstore_len(&env, LEGAL), 0);
}

#[tokio::test]
async fn provider_signatures_are_checked_and_failures_flagged() {
    let env = TestEnv::start_fetching(|t| t.push_str("\n[pec]\ntrust_store = \"sim-signer-ca.pem\"\n"), pecgate::clock::system()).await;
    send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Firmata")).await;
    env.poll("legal").await;
    let linked = env.app().store.list_messages(10).await.unwrap();
    let sent = linked.iter().find(|m| m.kind == pecgate::store::MessageKind::Pec).unwrap();
    let receipts = env.app().store.fetched_for(&sent.id).await.unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|r| r.signature.as_deref() == Some("valid")), "{receipts:?}");
    assert!(receipts[0].signer.as_deref().unwrap_or("").contains("Gestore PEC simulato"));
    for c in env.corporate_messages(2).await {
        assert!(c.header("X-Pecgate-Signature").is_none(), "a valid signature is not flagged");
    }
    // A relay alters a byte after the provider signed: flagged, still delivered, admin told.
    env.provider.retrieval.set_behavior(Behavior { tamper: true, ..Default::default() });
    send_and_submit(&env, &["b@pec.x.it"], &pec_message("b@pec.x.it", None, "Alterata")).await;
    env.poll("legal").await;
    let got = env.corporate_messages(6).await;
    let flagged: Vec<&Captured> = got.iter().filter(|c| c.header("X-Pecgate-Signature").as_deref() == Some("invalid")).collect();
    assert_eq!(flagged.len(), 2, "both altered receipts delivered and flagged");
    let notices: Vec<&Captured> = got.iter().filter(|c| kind_of(c) == "mailbox-notice").collect();
    assert_eq!(notices.len(), 2);
    assert!(notices.iter().all(|n| n.rcpts == [MARIO]));
}

#[tokio::test]
async fn retention_delete_after_waits_n_days() {
    let clock = ManualClock::new(1_800_000_000_000);
    let env = TestEnv::start_fetching(
        |t| *t = t.replacen("retention = \"leave\"", "retention = \"delete-after\"\ndelete_after_days = 30", 1),
        clock.clone(),
    )
    .await;
    send_and_submit(&env, &["a@pec.x.it"], &pec_message("a@pec.x.it", None, "Trenta")).await;
    assert_eq!(env.poll("legal").await.deleted, 0);
    wait_injected(&env, 2).await;
    clock.advance(29 * 86_400_000);
    assert_eq!(env.poll("legal").await.deleted, 0);
    assert_eq!(mailstore_len(&env, LEGAL), 2);
    clock.advance(86_400_000);
    assert_eq!(env.poll("legal").await.deleted, 2);
    assert_eq!(mailstore_len(&env, LEGAL), 0);
}

#[tokio::test]
async fn restart_mid_fetch_loses_and_duplicates_nothing() {
    let mut env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    send_and_submit(&env, &["a@pec.x.it", "b@pec.x.it"], &pec_message("a@pec.x.it, b@pec.x.it", None, "Riavvio")).await;
    assert_eq!(mailstore_len(&env, LEGAL), 3);
    env.provider.pop3_faults.arm(Fault::DropDuringRetr { after_bytes: 200 }, 1);
    assert!(env.app().poll("legal").await.unwrap().is_err());
    env.crash();
    // The start-up poll after the restart fetches all three (nothing was committed before the drop).
    env.restart().await;
    env.corporate_messages(3).await;
    assert_eq!(env.poll("legal").await.fetched, 0);
    assert_eq!(env.capture.bag.len(), 3);
}

#[tokio::test]
async fn login_failures_notify_the_admin_once() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    env.provider.pop3_faults.arm(Fault::AuthFail, 3);
    for _ in 0..3 {
        let r = env.app().poll("legal").await.unwrap();
        assert!(r.is_err());
    }
    let status = env.app().fetchers.get("legal").unwrap().status();
    assert!(status.incident_open && status.consecutive_failures >= 3, "{status:?}");
    let got = env.corporate_messages(1).await;
    assert_eq!(got[0].rcpts, [MARIO], "the mailbox admin");
    assert_eq!(kind_of(&got[0]), "mailbox-notice");
    env.poll("legal").await;
    assert!(!env.app().fetchers.get("legal").unwrap().status().incident_open);
    assert_eq!(env.capture.bag.len(), 1, "one notice per incident, not per poll");
}

/// Three plain messages for `legal`; returns their ids on the server.
fn three_messages(env: &TestEnv, middle: Vec<u8>) -> [String; 3] {
    let plain = |s: &str| format!("From: a@pec.x.it\r\nTo: {LEGAL}\r\nSubject: {s}\r\n\r\ntesto\r\n").into_bytes();
    let store = &env.provider.retrieval;
    [store.deliver(LEGAL, plain("primo")), store.deliver(LEGAL, middle), store.deliver(LEGAL, plain("terzo"))]
}

#[tokio::test]
async fn a_message_over_the_limit_is_skipped_once_and_the_rest_flows() {
    let env =
        TestEnv::start_fetching(|t| *t = t.replacen("retention = \"leave\"", "retention = \"delete\"", 1), pecgate::clock::system()).await;
    // The limit for fetched mail is 2 x max_message_size + 10 MiB = 12,485,760 bytes here.
    let mut big = format!("From: a@pec.x.it\r\nTo: {LEGAL}\r\nSubject: enorme\r\n\r\n").into_bytes();
    big.extend(std::iter::repeat_n(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".as_slice(), 200_000).flatten());
    let [first, poison, third] = three_messages(&env, big);

    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.skipped), (2, 1), "{report:?}");
    let store = &env.provider.retrieval.mailstore;
    assert_eq!(store.retrievals(&poison), 0, "the server announced its size: never downloaded");
    assert_eq!((store.retrievals(&first), store.retrievals(&third)), (1, 1));
    let got = env.corporate_messages(3).await;
    wait_injected(&env, 2).await;
    let notice: Vec<&Captured> = got.iter().filter(|c| kind_of(c) == "mailbox-notice").collect();
    assert_eq!(notice.len(), 1, "{got:?}");
    assert_eq!(notice[0].rcpts, [MARIO], "the mailbox admin");
    let text = notice[0].text();
    assert!(text.contains(&poison) && text.contains("pecgate fetch --retry") && text.contains("more than pecgate takes"), "{text}");
    let skipped = env.app().store.skipped(Some("legal")).await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].uidl.as_str(), skipped[0].size.is_some_and(|s| s > 12_485_760)), (poison.as_str(), true));
    // The admin sees it: the API lists it, the mailboxes page shows it with the command to take it back.
    let (status, api) = http_get(env.app().admin_addr, "/api/v1/skipped").await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap_or_default();
    assert_eq!(
        (status, api["items"][0]["uidl"].as_str(), api["items"][0]["mailbox_id"].as_str()),
        (200, Some(poison.as_str()), Some("legal"))
    );
    let (_, page) = http_get(env.app().admin_addr, "/mailboxes").await;
    assert!(
        page.contains(&format!("<code>{poison}</code>")) && page.contains("pecgate fetch --config FILE --mailbox ID --retry UIDL"),
        "{page}"
    );

    // Later polls skip it without telling anyone again; retention deletes the others only.
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.skipped, report.deleted), (0, 1, 2), "{report:?}");
    assert_eq!(store.retrievals(&poison), 0);
    assert_eq!(store.messages(LEGAL).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), [poison], "left on the server untouched");
    assert_eq!(env.capture.bag.len(), 3, "one notice, not one per poll");
}

#[tokio::test]
async fn a_transfer_that_never_ends_is_skipped_and_can_be_retried() {
    // A 1 s read timeout: the whole transfer of a small message may take about that long.
    let env = TestEnv::start_fetching(
        |t| *t = t.replacen("timeout_secs = 5\ninterval_secs", "timeout_secs = 1\ninterval_secs", 1),
        pecgate::clock::system(),
    )
    .await;
    let middle = format!("From: a@pec.x.it\r\nTo: {LEGAL}\r\nSubject: lento\r\n\r\ntesto\r\n").into_bytes();
    env.provider.pop3_faults.arm(Fault::EndlessRetr, 1);
    // The first RETR of the poll (the first message) is the endless one.
    let [poison, _, _] = three_messages(&env, middle);
    let report = env.poll("legal").await;
    assert_eq!((report.fetched, report.skipped), (2, 1), "the poll went on in a new session: {report:?}");
    let skipped = env.app().store.skipped(Some("legal")).await.unwrap();
    assert_eq!(skipped.iter().map(|s| s.uidl.as_str()).collect::<Vec<_>>(), [poison.as_str()]);
    assert!(skipped[0].reason.contains("did not end within"), "{skipped:?}");
    assert_eq!(env.poll("legal").await.skipped, 1, "not tried again by itself");
    assert_eq!(env.provider.retrieval.mailstore.retrievals(&poison), 1);

    // The operator lists it and asks for it again; the running gateway polls at once.
    // (The command runs off the test's runtime, which the gateway in this process needs meanwhile.)
    let config = env.config_path();
    let pecgate = |args: &[&str]| {
        let (args, config) = (args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), config.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_pecgate")).args(&args).arg("--config").arg(&config).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
        })
    };
    let (code, listing) = pecgate(&["fetch"]).await.unwrap();
    assert!(code == Some(0) && listing.contains(&poison) && listing.contains("did not end within"), "{listing}");
    let (code, out) = pecgate(&["fetch", "--retry", &poison]).await.unwrap();
    assert!(code == Some(0) && out.contains("the running gateway polls legal now"), "{out}");
    let store = env.app().store.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.fetched_by_uidl("legal", &poison).await.unwrap().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the retried message was never fetched");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(store.skipped(None).await.unwrap().is_empty());
    assert_eq!(pecgate(&["fetch", "--retry", &poison]).await.unwrap().0, Some(2), "nothing left to retry");
}

/// A plain message whose sender wrote our marks to look like a delivery receipt:
/// the corporate side gets exactly one X-Pecgate-Kind, ours, saying what it is;
/// the stored original keeps the forged fields as evidence.
#[tokio::test]
async fn forged_pecgate_fields_do_not_reach_the_corporate_side_as_ours() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let forged = format!(
        "From: truffa@example.com\r\nTo: {LEGAL}\r\nX-Pecgate-Kind: avvenuta-consegna\r\nX-Pecgate-Mailbox: legal\r\nSubject: Consegna\r\n\r\npaga qui\r\n"
    );
    env.provider.retrieval.deliver(LEGAL, forged.clone().into_bytes());
    assert_eq!(env.poll("legal").await.fetched, 1);
    let got = env.corporate_messages(1).await;
    let parsed = mail_parser::MessageParser::default().parse(&got[0].data).unwrap();
    let ours: Vec<String> = parsed
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("X-Pecgate-Kind"))
        .map(|h| h.value().as_text().unwrap_or_default().trim().to_string())
        .collect();
    assert_eq!(ours, ["not-pec"], "{}", String::from_utf8_lossy(&got[0].data));
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(text.contains("\r\nX-Original-Pecgate-Kind: avvenuta-consegna\r\nX-Original-Pecgate-Mailbox: legal\r\n"), "{text}");
    let stored = env.app().store.fetched_ids().await.unwrap();
    assert_eq!(stored.len(), 1);
    let raw = std::fs::read(env.app().spool.fetched_path(&stored[0])).unwrap();
    assert_eq!(raw, forged.as_bytes(), "the original is stored as it came");
}

#[tokio::test]
async fn the_namirial_profile_treats_its_5_4_1_preavviso_as_final() {
    use pecgate::config::profiles::Provider;
    // provider = "namirial" fills final_preavviso_5xx; the simulator sends
    // every preavviso of that mailbox with errore-esteso 5.4.1, as Namirial does.
    let env = TestEnv::start_fetching(
        |t| *t = t.replacen("receipt_type = \"breve\"\n", "receipt_type = \"breve\"\nprovider = \"namirial\"\n", 1),
        pecgate::clock::system(),
    )
    .await;
    assert!(env.config().mailboxes[0].final_preavviso_5xx, "the profile did not apply");
    env.provider.set_profile(LEGAL, Provider::Namirial, None);
    let qid = send_and_submit(&env, &["preavviso-e@pec.x.it"], &pec_message("preavviso-e@pec.x.it", None, "Namirial")).await;
    assert_eq!(env.poll("legal").await.fetched, 2, "acceptance and the preavviso");
    let rcpt = env.app().store.recipients(&qid).await.unwrap().remove(0);
    assert_eq!(rcpt.state, RecipientState::DeliveryError);
    let events = env.app().store.events(&qid).await.unwrap();
    let final_e: Vec<_> = events.iter().filter(|e| e.kind == "delivery_error").collect();
    assert_eq!(final_e.len(), 1, "{events:?}");
    assert!(final_e[0].detail.starts_with("errore-consegna"), "{final_e:?}");
    // The receipt itself is kept as the preavviso it was, with its 5.4.1.
    let linked = env.app().store.fetched_for(&qid).await.unwrap();
    let preavviso: Vec<_> = linked.iter().filter(|r| r.kind == "preavviso-errore-consegna").collect();
    assert_eq!(preavviso.len(), 1, "{linked:?}");
    let raw = std::fs::read(env.app().spool.fetched_path(&preavviso[0].id)).unwrap();
    let daticert = pecgate::pec::classify(&raw).daticert.expect("the stored receipt has its daticert");
    assert!(daticert.errore_esteso.as_deref().is_some_and(|e| e.starts_with("5.4.1")), "{daticert:?}");
}

#[tokio::test]
async fn the_aruba_profile_simulator_answers_an_oversize_message_with_a_non_accettazione() {
    use pecgate::config::profiles::Provider;
    // The gateway's mailbox does not know the size rule (no provider set),
    // so the message leaves; the Aruba-like provider accepts it over SMTP and
    // then refuses it with a receipt, as Aruba does (30 000 / 3 = 10 000 bytes).
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    env.provider.set_profile(LEGAL, Provider::Aruba, Some(30_000));
    let rcpts = ["a@pec.x.it", "b@pec.x.it", "c@pec.x.it"];
    let body = "riga di testo per arrivare alla dimensione voluta\r\n".repeat(250); // about 13 KB
    let message =
        format!("From: {LUCA}\r\nTo: {}\r\nSubject: [PEC] Grande\r\nMessage-ID: <grande@azienda.it>\r\n\r\n{body}", rcpts.join(", "));
    let qid = send_and_submit(&env, &rcpts, &message).await;
    assert_eq!(env.poll("legal").await.fetched, 1, "only the non-accettazione");
    assert_eq!(env.app().store.message(&qid).await.unwrap().unwrap().state, MessageState::NotAccepted);
    let got = env.corporate_messages(1).await;
    assert_eq!(kind_of(&got[0]), "non-accettazione");
    assert_eq!(got[0].rcpts, [LUCA], "the sender learns it");
    // A small message to the same three recipients is accepted as usual.
    let small = send_and_submit(&env, &rcpts, &pec_message(&rcpts.join(", "), None, "Piccolo")).await;
    assert_eq!(env.poll("legal").await.fetched, 4, "acceptance and three deliveries");
    assert_eq!(env.app().store.message(&small).await.unwrap().unwrap().state, MessageState::Accepted);
    let states: Vec<_> = env.app().store.recipients(&small).await.unwrap().into_iter().map(|r| r.state).collect();
    assert_eq!(states, [RecipientState::Delivered; 3]);
}

/// A signed posta-certificata of about `size` bytes (a base64 attachment in its postacert.eml).
fn big_envelope(size: usize, identificativo: &str) -> Vec<u8> {
    let mut original = b"From: <mittente@pec.altro.it>\r\nTo: <legal@pec.azienda.it>\r\nSubject: Fattura con allegati\r\nMessage-ID: <big@pec.altro.it>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nIn allegato.\r\n\
--b1\r\nContent-Type: application/pdf; name=\"allegato.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    while original.len() < size {
        original.extend_from_slice(b"JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PC9UeXBlL0NhdGFsb2cvUGFnZXMgMiAwIFI+PgplbmRv\r\n");
    }
    original.extend_from_slice(b"--b1--\r\n");
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    p.identificativo = identificativo.into();
    p.original = Some(original);
    pecgate::sim::receipts::build_signed(&mut p)
}

/// A message over `pec::FULL_PARSE_MAX` is read back with bounded memory:
/// classified from its skeleton, the signed part digested from the spool
/// file, the injected copy written around the file's bytes. The verdict,
/// the routing and the bytes delivered are those of a full read; a byte
/// altered deep in the attachment is still an invalid signature.
#[tokio::test]
async fn a_big_signed_message_is_verified_and_injected_byte_for_byte() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let size = pecgate::pec::FULL_PARSE_MAX + 300_000;
    let intact = big_envelope(size, "opec-big-1@pec.example.it");
    let mut altered = big_envelope(size, "opec-big-2@pec.example.it");
    let middle = altered.len() / 2;
    let at = middle + altered[middle..].iter().position(|&b| b == b'J').unwrap();
    altered[at] = b'K';
    env.provider.retrieval.deliver(LEGAL, intact.clone());
    env.provider.retrieval.deliver(LEGAL, altered.clone());
    assert_eq!(env.poll("legal").await.fetched, 2);
    // Two injections and the admin's notice of the invalid signature, in any order.
    let got = env.corporate_messages(3).await;
    let trust = env.app().live.get().trust.clone();
    for (raw, want) in [(&intact, None), (&altered, Some("invalid"))] {
        let full = pecgate::pec::classify(raw);
        let expected = pecgate::pec::signature::verify(raw, &trust, full.daticert.as_ref().and_then(|d| d.data));
        assert_eq!(want.is_none(), expected.verdict != pecgate::pec::signature::Verdict::Invalid, "{}", expected.detail);
        let copy = got.iter().find(|m| m.data.ends_with(raw)).unwrap_or_else(|| {
            let seen: Vec<String> = got
                .iter()
                .map(|m| format!("{} bytes: {:?}", m.data.len(), String::from_utf8_lossy(&m.data[..m.data.len().min(300)])))
                .collect();
            panic!("{} bytes not delivered byte-for-byte below pecgate's fields; delivered: {seen:#?}", raw.len())
        });
        let head = String::from_utf8_lossy(&copy.data[..copy.data.len() - raw.len()]).into_owned();
        assert!(head.contains("X-Pecgate-Kind: posta-certificata\r\n"), "{head}");
        assert_eq!(head.contains("X-Pecgate-Signature: invalid"), want.is_some(), "{head}");
        let id = full.message_id.clone().unwrap();
        let records = env.app().store.fetched_by_message_id("legal", &id).await.unwrap();
        assert_eq!(records.len(), 1, "{id}");
        assert_eq!(records[0].signature.as_deref(), Some(expected.verdict.as_str()), "same verdict as a full read: {}", expected.detail);
        assert_eq!(records[0].kind, "posta-certificata");
        assert_eq!(std::fs::read(env.app().spool.fetched_path(&records[0].id)).unwrap(), *raw, "stored as it came");
    }
}
