//! A refusal for a property of the message itself is permanent (5xx) and
//! names the limit; temporary replies (4xx) are kept for real trouble on
//! our side (storage, store), so that a sending MTA does not retry for days
//! what can never be accepted.

mod common;

use common::*;

fn bigger_limit(t: &mut String) {
    *t = t.replace("max_message_size = 1000000", "max_message_size = 5000000");
}

#[tokio::test]
async fn a_header_section_over_the_limit_is_refused_for_good() {
    let env = TestEnv::start_with(bigger_limit).await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    c.cmd(&format!("MAIL FROM:<{MARIO}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    // 2 MB of header lines (the header section is parsed in memory, so it has its own limit).
    let mut message = format!("From: {MARIO}\r\nTo: a@pec.x.it\r\nSubject: [PEC] intestazioni\r\n");
    while message.len() < 2_000_000 {
        message.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    message.push_str("\r\ncorpo\r\n");
    let reply = c.data(&message).await;
    assert!(reply.starts_with("552 5.3.4") && reply.contains("header section") && reply.contains("1048576 bytes"), "{reply}");
    // The session goes on, and nothing was queued or left in the spool.
    c.cmd("RSET", "250").await;
    c.cmd("QUIT", "221").await;
    assert!(env.app().store.message_ids().await.unwrap().is_empty());
    let left: Vec<_> = files_under(&env.dir.path().join("spool"), &[]);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn size_refusals_name_the_limit() {
    let env = TestEnv::start().await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    let declared = c.cmd(&format!("MAIL FROM:<{MARIO}> SIZE=2000000"), "552 5.3.4").await;
    assert!(declared.contains("1000000 bytes"), "{declared}");
    c.cmd(&format!("MAIL FROM:<{MARIO}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let body = "x".repeat(76) + "\r\n";
    let message = format!("From: {MARIO}\r\nTo: a@pec.x.it\r\nSubject: [PEC] grande\r\n\r\n{}", body.repeat(14_000));
    let reply = c.data(&message).await;
    assert!(reply.starts_with("552 5.3.4") && reply.contains("1000000 bytes"), "{reply}");
}

/// A client that talks before the 220 (a bot that does not wait) is refused
/// with 554 and the connection closed; one that waits is served as always.
#[tokio::test]
async fn an_early_talker_is_refused() {
    let env = TestEnv::start_with(|t| *t = t.replace("command_timeout_secs = 10", "command_timeout_secs = 10\ngreet_pause_ms = 300")).await;
    let mut bot = SmtpProbe::connect(env.smtp_addr()).await;
    bot.write(b"EHLO bot.example\r\nMAIL FROM:<x@y.it>\r\n").await;
    let reply = bot.expect("554").await;
    assert_eq!(reply, "554 5.5.0 SMTP synchronization error: data sent before the greeting\r\n");
    assert_eq!(bot.reply().await, "", "closed after the refusal, nothing else said");

    let mut polite = SmtpProbe::connect(env.smtp_addr()).await;
    polite.expect("220").await;
    polite.cmd("EHLO mx.azienda.it", "250").await;
    polite.cmd("QUIT", "221").await;
    let (_, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert!(metrics.contains("pecgate_smtp_early_talkers_total 1\n"), "{metrics}");
}

#[tokio::test]
async fn the_mailbox_size_limit_is_divided_by_the_recipients() {
    // Aruba-style: the provider's limit divided by the recipient count (30 000 / 3 = 10 000 bytes).
    size_rule_refuses_at_the_listener("max_message_bytes = 30000\nsize_per_recipient = true\n").await;
}

#[tokio::test]
async fn the_aruba_profile_brings_the_size_rule() {
    // provider = "aruba" sets size_per_recipient (and 100 MB, lowered here to keep the test small).
    size_rule_refuses_at_the_listener("provider = \"aruba\"\nmax_message_bytes = 30000\n").await;
}

async fn size_rule_refuses_at_the_listener(keys: &str) {
    let env = TestEnv::start_with(|t| *t = t.replacen("receipt_type = \"breve\"\n", &format!("receipt_type = \"breve\"\n{keys}"), 1)).await;
    let m = &env.config().mailboxes[0];
    assert_eq!((m.max_message_bytes, m.size_per_recipient), (Some(30_000), true), "the tweak did not apply");
    let rcpts = ["a@pec.x.it", "b@pec.x.it", "c@pec.x.it"];
    let body = "riga di testo per arrivare alla dimensione voluta\r\n".repeat(250); // about 13 KB
    let message = format!("From: {LUCA}\r\nTo: {}\r\nSubject: [PEC] Allegato grande\r\n\r\n{body}", rcpts.join(", "));
    let reply = env.send(LUCA, &rcpts, &message).await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    assert!(reply.contains("10000 bytes") && reply.contains("3 recipient(s)") && reply.contains(LEGAL), "{reply}");
    assert!(env.app().store.message_ids().await.unwrap().is_empty(), "nothing queued");
    // The same message to one recipient fits its 30 000 bytes.
    let one = format!("From: {LUCA}\r\nTo: a@pec.x.it\r\nSubject: [PEC] Allegato grande\r\n\r\n{body}");
    let reply = env.send(LUCA, &["a@pec.x.it"], &one).await;
    assert!(reply.starts_with("250 "), "{reply}");
}

/// A directory that never answered: mail is deferred (451 4.3.0), never
/// accepted without a permission check and never refused for good.
#[tokio::test]
async fn a_directory_that_never_answered_defers_with_451() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tweak = |t: &mut String| {
        t.push_str(&format!(
            "\n[directory]\nkind = \"ldap\"\nurl = \"ldaps://127.0.0.1:{closed}\"\nbind_dn = \"cn=pecgate,dc=azienda,dc=it\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=azienda,dc=it\"\ntimeout_secs = 2\n"
        ))
    };
    let mut env = TestEnv::prepare(tweak, pecgate::clock::system(), false).await;
    write_secret(&env.dir.path().join("ldap.pw"), "pw-LDAP-service-never-log-me");
    env.restart().await;
    let message =
        format!("From: {MARIO}\r\nTo: a@pec.x.it\r\nSubject: [PEC:legal] prova\r\nMessage-ID: <dir-down@azienda.it>\r\n\r\ncorpo\r\n");
    let reply = env.send(MARIO, &["a@pec.x.it"], &message).await;
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    assert!(env.app().store.message_ids().await.unwrap().is_empty(), "nothing was queued");
    let left: Vec<_> = files_under(&env.dir.path().join("spool"), &[]);
    assert!(left.is_empty(), "{left:?}");
}
