//! SMTP AUTH on the gateway's own listener (`[smtp.auth]`, `[[smtp.account]]`):
//! only after STARTTLS (or on loopback when allowed), PLAIN and LOGIN, the
//! failure limit, `required`, sending only as the account's user, and the
//! listener password never leaving pecgate's memory.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use pecgate::store::MessageState;

/// Distinctive, so that a leak anywhere is found by a plain substring search (CI greps for it too).
const PASSWORD: &str = "pw-AUTH-9d2b71-never-log-me";
const LOGIN: &str = "luca";

/// Everything every test in this binary logs, at trace level for pecgate.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        // `PECGATE_TEST_LOG` (CI's leak check) still sees these lines.
        if std::env::var_os("PECGATE_TEST_LOG").is_some() {
            print!("{}", String::from_utf8_lossy(buf));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber before `common::init_tracing` can install its own.
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,pecgate=trace"))
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init()
            .expect("the capturing subscriber is the first of this test binary");
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

/// An AUTH PLAIN response without authorization identity.
fn plain(user: &str, password: &str) -> String {
    B64.encode(format!("\0{user}\0{password}"))
}

/// The standard test gateway plus `[smtp.auth] enabled = true` with `auth`
/// lines, and one account: login `luca` acting as LUCA (a sending user of
/// legal only). With `tls`, STARTTLS is offered; returns the CA to trust.
async fn start(tls: bool, auth: &str) -> (TestEnv, String) {
    capture_logs();
    let delay = if auth.contains("failure_delay_ms") { "" } else { "failure_delay_ms = 0\n" };
    let tail = format!(
        "\n[smtp.auth]\nenabled = true\n{delay}{auth}\n\n[[smtp.account]]\nusername = \"{LOGIN}\"\npassword_file = \"listener.pw\"\naddress = \"{LUCA}\"\n"
    );
    let mut env = TestEnv::prepare(
        |c| {
            if tls {
                *c = c.replacen(
                    "command_timeout_secs = 10\n",
                    "command_timeout_secs = 10\ntls_cert_file = \"listener-cert.pem\"\ntls_key_file = \"listener-key.pem\"\n",
                    1,
                );
            }
            c.push_str(&tail);
        },
        pecgate::clock::system(),
        false,
    )
    .await;
    let ca = if tls { write_listener_tls(env.dir.path()) } else { String::new() };
    write_secret(&env.dir.path().join("listener.pw"), &format!("{PASSWORD}\n"));
    env.restart().await;
    (env, ca)
}

type TlsProbe = SmtpProbe<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Greeted, EHLO, STARTTLS, EHLO again.
async fn tls_session(env: &TestEnv, ca: &str) -> TlsProbe {
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    let mut c = c.starttls(ca).await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    c
}

/// [`tls_session`] and a successful AUTH PLAIN as `luca`.
async fn authed(env: &TestEnv, ca: &str) -> TlsProbe {
    let mut c = tls_session(env, ca).await;
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235 2.7.0").await;
    c
}

fn message(from: &str, subject: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("From: {from}\r\nTo: a@pec.x.it\r\nSubject: {subject}\r\nMessage-ID: <auth-{n}@azienda.it>\r\n\r\nciao\r\n")
}

#[tokio::test]
async fn auth_is_offered_only_after_starttls() {
    let (env, ca) = start(true, "").await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    let ehlo = c.cmd("EHLO mx.azienda.it", "250").await;
    assert!(ehlo.ends_with("250 STARTTLS\r\n") && !ehlo.contains("AUTH"), "{ehlo}");
    let needs_tls = "538 5.7.11 encryption required for requested authentication mechanism\r\n";
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "538").await, needs_tls);
    assert_eq!(c.cmd("AUTH LOGIN", "538").await, needs_tls, "refused before any challenge");

    let mut c = c.starttls(&ca).await;
    // RFC 3207: EHLO again before anything else.
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "503 5.5.1").await;
    let ehlo = c.cmd("EHLO mx.azienda.it", "250").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n") || ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
}

#[tokio::test]
async fn plain_and_login_succeed_after_starttls() {
    let (env, ca) = start(true, "").await;

    // PLAIN with an initial response; AUTH twice is a sequence error.
    let mut c = tls_session(&env, &ca).await;
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235").await, "235 2.7.0 authentication succeeded\r\n");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "503").await, "503 5.5.1 already authenticated\r\n");
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250 2.1.0").await;
    c.cmd("QUIT", "221").await;

    // PLAIN after an empty 334 challenge, with an authorization identity equal to the login.
    let mut c = tls_session(&env, &ca).await;
    assert_eq!(c.cmd("AUTH PLAIN", "334").await, "334 \r\n");
    c.cmd(&B64.encode(format!("{LOGIN}\0{LOGIN}\0{PASSWORD}")), "235 2.7.0").await;

    // LOGIN: username and password challenges.
    let mut c = tls_session(&env, &ca).await;
    assert_eq!(c.cmd("auth login", "334").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64(LOGIN), "334").await, "334 UGFzc3dvcmQ6\r\n");
    c.cmd(&b64(PASSWORD), "235 2.7.0").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250 2.1.0").await;

    // Cancel, junk and sequence errors; none of them counts as a failed login.
    let mut c = tls_session(&env, &ca).await;
    c.cmd("AUTH LOGIN", "334").await;
    assert_eq!(c.cmd("*", "501").await, "501 5.7.0 authentication cancelled\r\n", "cancelled at the username");
    c.cmd("AUTH PLAIN", "334").await;
    c.cmd("*", "501 5.7.0").await;
    assert_eq!(c.cmd("AUTH PLAIN !!!", "501").await, "501 5.5.2 invalid base64 in AUTH response\r\n");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", b64("\0luca")), "501").await, "501 5.5.2 malformed AUTH response\r\n");
    assert_eq!(c.cmd("AUTH PLAIN =", "501").await, "501 5.5.2 malformed AUTH response\r\n");
    assert_eq!(c.cmd("AUTH CRAM-MD5", "504").await, "504 5.5.4 unrecognised authentication mechanism\r\n");
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "503").await,
        "503 5.5.1 AUTH not permitted during a mail transaction\r\n"
    );
    c.cmd("RSET", "250").await;
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235 2.7.0").await;
}

#[tokio::test]
async fn wrong_password_is_535_and_the_third_failure_closes_with_421() {
    let (env, ca) = start(true, "failure_delay_ms = 300").await;
    let failed = "535 5.7.8 authentication credentials invalid\r\n";
    let mut c = tls_session(&env, &ca).await;
    let started = Instant::now();
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, "wrong")), "535").await, failed);
    assert!(started.elapsed() >= Duration::from_millis(300), "a failure is answered after failure_delay_ms");
    // An unknown login and an authorization identity other than the login fail the same way.
    assert_eq!(c.cmd(&format!("AUTH PLAIN {}", plain("nobody", PASSWORD)), "535").await, failed);
    c.write(format!("AUTH PLAIN {}\r\n", B64.encode(format!("admin\0{LOGIN}\0{PASSWORD}"))).as_bytes()).await;
    assert_eq!(c.reply().await, failed);
    assert_eq!(c.reply().await, "421 4.7.0 too many authentication failures, closing connection\r\n");
    assert_eq!(c.reply().await, "", "closed");

    // LOGIN failures count too; a new connection starts afresh.
    let mut c = tls_session(&env, &ca).await;
    c.cmd("AUTH LOGIN", "334").await;
    c.cmd(&b64(LOGIN), "334").await;
    assert_eq!(c.cmd(&b64("wrong"), "535").await, failed);
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235 2.7.0").await;
}

#[tokio::test]
async fn required_auth_refuses_mail_before_auth() {
    let (env, ca) = start(true, "required = true").await;
    let required = "530 5.7.0 authentication required\r\n";
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{LUCA}>"), "530").await, required, "in clear");
    let mut c = c.starttls(&ca).await;
    c.cmd("EHLO mx.azienda.it", "250").await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{LUCA}>"), "530").await, required, "over TLS, before AUTH");
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250 2.1.0").await;
}

#[tokio::test]
async fn an_account_sends_only_as_its_user() {
    let (env, ca) = start(true, "").await;
    let mut c = authed(&env, &ca).await;
    let not_owned =
        |sender: &str| format!("553 5.7.1 login luca may not send as {sender}; use {LUCA} or a PEC mailbox it may send from\r\n");
    assert_eq!(c.cmd(&format!("MAIL FROM:<{MARIO}>"), "553").await, not_owned(MARIO), "another company user");
    assert_eq!(c.cmd(&format!("MAIL FROM:<{HR}>"), "553").await, not_owned(HR), "a mailbox luca may not send from");
    assert_eq!(c.cmd("MAIL FROM:<>", "550").await, "550 5.7.1 the null sender may not send PEC\r\n");

    // Its own address, but the tag picks a mailbox luca is no sender of.
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    assert_eq!(c.data(&message(LUCA, "[PEC:hr] Ferie")).await, format!("550 5.7.1 {LUCA} may not send from PEC mailbox {HR}\r\n"));

    // The PEC mailbox luca may send from, as envelope sender: accepted, and
    // notices and receipts go to luca, not to the PEC address.
    c.cmd(&format!("MAIL FROM:<{LEGAL}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&message(LEGAL, "[PEC] Contratto")).await;
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
    c.cmd("QUIT", "221").await;
    let m = env.wait_state(&queue_id(&reply), MessageState::Submitted).await;
    assert_eq!(m.original_sender, LUCA);
    assert_eq!(env.provider_messages(1).await[0].mail_from, LEGAL);

    // Sessions without AUTH work as before: the client IP decides, the envelope sender is the user.
    let reply = env.send(MARIO, &["a@pec.x.it"], &message(MARIO, "[PEC:hr] Nomina")).await;
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
}

#[tokio::test]
async fn loopback_clients_may_authenticate_without_tls_when_allowed() {
    let (env, _) = start(false, "allow_without_tls_on_loopback = true").await;
    let mut c = SmtpProbe::connect(env.smtp_addr()).await;
    c.expect("220").await;
    let ehlo = c.cmd("EHLO mx.azienda.it", "250").await;
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n") && !ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235 2.7.0").await;
    c.cmd(&format!("MAIL FROM:<{MARIO}>"), "553 5.7.1").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&message(LUCA, "[PEC] Loopback")).await;
    assert!(reply.starts_with("250 2.0.0 queued as"), "{reply}");
}

#[tokio::test]
async fn the_listener_password_is_never_logged_shown_or_stored() {
    let (env, ca) = start(true, "").await;
    let mut c = tls_session(&env, &ca).await;
    // A user who types the password into the username field: the failure must not log it either.
    c.cmd(&format!("AUTH PLAIN {}", plain(PASSWORD, PASSWORD)), "535").await;
    c.cmd("AUTH LOGIN", "334").await;
    c.cmd(&b64(PASSWORD), "334").await;
    c.cmd(&b64(PASSWORD), "535").await;
    c.cmd(&format!("AUTH PLAIN {}", plain(LOGIN, PASSWORD)), "235").await;
    c.cmd(&format!("MAIL FROM:<{LUCA}>"), "250").await;
    c.cmd("RCPT TO:<a@pec.x.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&message(LUCA, "[PEC] Segreti")).await;
    c.cmd("QUIT", "221").await;
    env.wait_state(&queue_id(&reply), MessageState::Submitted).await;

    // Metrics: counted, and no password.
    let (code, metrics) = http_get(env.app().admin_addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metric_value(&metrics, "pecgate_smtp_auth_total{result=\"success\"}").unwrap_or(0.0) >= 1.0, "{metrics}");
    assert!(metric_value(&metrics, "pecgate_smtp_auth_total{result=\"failure\"}").unwrap_or(0.0) >= 2.0, "{metrics}");
    assert!(!metrics.contains(PASSWORD));

    // Database and spool (everything in the directory but the password file itself).
    let files = common::files_under(env.dir.path(), &["listener.pw"]);
    assert!(files.iter().any(|p| p.ends_with("pecgate.db")) && files.iter().any(|p| p.to_string_lossy().contains("spool")));
    let needles = [PASSWORD.to_string(), b64(PASSWORD), plain(LOGIN, PASSWORD), plain(PASSWORD, PASSWORD)];
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(!bytes.windows(n.len()).any(|w| w == n.as_bytes()), "{n} found in {}", f.display());
        }
    }

    // check-config: with the password in a file, as a literal (allowed), and in an invalid config.
    let dir = env.dir.path().to_owned();
    let configs = [
        ("ok", env.config_text.clone(), true),
        (
            "literal",
            format!(
                "allow_plaintext_secrets = true\n{}",
                env.config_text.replace("password_file = \"listener.pw\"", &format!("password = \"{PASSWORD}\""))
            ),
            true,
        ),
        (
            "invalid",
            env.config_text.replace(
                &format!("password_file = \"listener.pw\"\naddress = \"{LUCA}\""),
                "password_file = \"listener.pw\"\naddress = \"nobody@azienda.it\"",
            ),
            false,
        ),
    ];
    for (name, text, valid) in configs {
        let dir = dir.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || {
            let path = dir.join(format!("check-{name}.toml"));
            std::fs::write(&path, text).unwrap();
            let o =
                std::process::Command::new(env!("CARGO_BIN_EXE_pecgate")).args(["check-config", "--config"]).arg(&path).output().unwrap();
            (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        })
        .await
        .unwrap();
        assert_eq!(ok, valid, "{name}: {out}");
        if valid {
            assert!(out.contains(&format!("\"username\": \"{LOGIN}\"")), "{name}: {out}");
        } else {
            assert!(out.contains("smtp.account[0].address (luca)"), "{name}: {out}");
        }
        assert!(!out.contains(PASSWORD), "{name}: {out}");
    }

    // Logs: the capture works (the AUTH lines are there, redacted) and holds no credentials.
    let logs = captured_logs();
    for n in &needles {
        assert!(!logs.contains(n.as_str()), "{n} in the log");
    }
    assert!(logs.contains("AUTH PLAIN ***") && logs.contains("AUTH LOGIN"), "the capture holds the session");
    assert!(logs.contains("AUTH failed") && logs.contains("AUTH succeeded"), "the capture holds the gateway's lines");
}
