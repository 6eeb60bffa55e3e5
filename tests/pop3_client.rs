//! The POP3 client (`pop3::client`) against the simulated POP3S server
//! (`sim::pop3`) and scripted peers: login, listings, byte-for-byte RETR,
//! faults and timeouts. Here rather than in `src/pop3` so that the library's
//! POP3 layer does not depend on the simulator.

use std::sync::Arc;
use std::time::Duration;

use pecgate::config::Secret;
use pecgate::pop3::client::{Client, Endpoint, Error, Result, Security};
use pecgate::pop3::response::MAX_LINE;
use pecgate::sim::pop3::{Fault, Mailstore, Pop3Faults, Pop3Server, ServerSecurity};
use pecgate::tls::{TestPki, client_config_from_pem};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

const USER: &str = "pec.user@example.pec.it";
const PASSWORD: &str = "s3cret  pass ";
const LONG: Duration = Duration::from_secs(20);

struct Fixture {
    server: Pop3Server,
    store: Arc<Mailstore>,
    faults: Arc<Pop3Faults>,
    security: Security,
}

impl Fixture {
    async fn new(security: Security) -> Self {
        let store = Arc::new(Mailstore::new());
        store.add_user(USER, PASSWORD);
        let faults = Pop3Faults::new();
        let mode = match security {
            Security::Tls => ServerSecurity::ImplicitTls,
            Security::StartTls => ServerSecurity::Stls,
        };
        let server = Pop3Server::start("127.0.0.1:0", store.clone(), mode, faults.clone()).await.expect("server starts");
        Self { server, store, faults, security }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.server.addr.port(),
            security: self.security,
            tls: client_config_from_pem(&self.server.ca_pem).expect("CA loads"),
            timeout: Duration::from_secs(10),
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.endpoint()).await.expect("connects")
    }

    async fn logged_in(&self) -> Client {
        let mut c = self.client().await;
        c.login(USER, &Secret::new(PASSWORD)).await.expect("logs in");
        c
    }

    /// Waits (bounded) until no session holds the maildrop.
    async fn unlocked(&self) {
        assert!(self.store.wait_for(LONG, |s| !s.is_locked(USER)).await, "maildrop still locked");
    }
}

async fn retr_vec(c: &mut Client, n: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let written = c.retr(n, &mut out, u64::MAX, LONG).await?;
    assert_eq!(written, out.len() as u64);
    Ok(out)
}

/// A message that exercises every unstuffing rule and binary byte.
fn tricky_message() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"From: mittente@pec.example.it\r\nSubject: =?UTF-8?Q?Consegna?=\r\n\r\n");
    m.extend_from_slice(b".starts with a dot\r\n..two dots\r\n.\r\n...\r\n. \r\nmiddle . dot\r\n");
    m.extend_from_slice(b"8-bit \xe8\xe0\xff\x00 bytes\r\nbare LF\n.not a line start\r\nbare CR\r.still same line\r\n");
    m.extend_from_slice(b"\r\n.\r\n\r\n");
    m.extend(std::iter::repeat_n(b'x', 200 * 1024));
    m.extend_from_slice(b"\r\n.last line\r\n");
    m
}

#[tokio::test]
async fn login_user_pass_and_auth_plain_in_both_modes() {
    for security in [Security::Tls, Security::StartTls] {
        for sasl in [true, false] {
            let f = Fixture::new(security).await;
            f.server.set_sasl_plain(sasl);
            let mut c = f.client().await;
            assert_eq!(c.capabilities().sasl("PLAIN"), sasl);
            assert!(!c.capabilities().stls(), "STLS must not be offered after TLS");
            c.login(USER, &Secret::new(PASSWORD)).await.expect("login");
            assert_eq!(c.stat().await.expect("stat"), (0, 0));
            c.quit().await.expect("quit");
        }
    }
}

#[tokio::test]
async fn long_credentials_use_auth_continuation() {
    let f = Fixture::new(Security::Tls).await;
    let password = "p".repeat(300);
    f.store.add_user("long", &password);
    let mut c = f.client().await;
    c.login("long", &Secret::new(password)).await.expect("login with continuation");
    c.quit().await.expect("quit");
}

#[tokio::test]
async fn wrong_password_is_auth_error() {
    for sasl in [true, false] {
        let f = Fixture::new(Security::Tls).await;
        f.server.set_sasl_plain(sasl);
        let mut c = f.client().await;
        let e = c.login(USER, &Secret::new("wrong")).await.expect_err("refused");
        assert!(matches!(e, Error::Auth { .. }) && e.is_auth() && !e.is_temporary(), "{e:?}");
        assert!(!e.to_string().contains("wrong"), "password leaked: {e}");
        // The session stays usable after a refusal.
        c.login(USER, &Secret::new(PASSWORD)).await.expect("second try");
        c.quit().await.expect("quit");
    }
}

#[tokio::test]
async fn auth_fail_fault_is_auth_error() {
    let f = Fixture::new(Security::StartTls).await;
    f.faults.arm(Fault::AuthFail, 1);
    let mut c = f.client().await;
    let e = c.login(USER, &Secret::new(PASSWORD)).await.expect_err("fault");
    assert!(e.is_auth(), "{e:?}");
}

#[tokio::test]
async fn unsafe_input_is_refused_before_sending() {
    let f = Fixture::new(Security::Tls).await;
    let mut c = f.client().await;
    let cases = [("a\r\nDELE 1", PASSWORD), ("", PASSWORD), (USER, "pw\r\nQUIT")];
    for (user, pw) in cases {
        let e = c.login(user, &Secret::new(pw)).await.expect_err("refused");
        assert!(matches!(e, Error::Input { .. }), "{e:?}");
    }
    c.login(USER, &Secret::new(PASSWORD)).await.expect("still usable");
}

#[tokio::test]
async fn listings_match_the_store() {
    for security in [Security::Tls, Security::StartTls] {
        let f = Fixture::new(security).await;
        let bodies: Vec<Vec<u8>> = vec![b"a\r\n".to_vec(), b"bb\r\n".to_vec(), b"ccc\r\n".to_vec()];
        let uids: Vec<String> = bodies.iter().map(|b| f.store.deliver(USER, b.clone())).collect();
        let mut c = f.logged_in().await;
        assert_eq!(c.stat().await.expect("stat"), (3, 3 + 4 + 5));
        let want: Vec<(u32, String)> = uids.iter().enumerate().map(|(i, u)| (i as u32 + 1, u.clone())).collect();
        assert_eq!(c.uidl().await.expect("uidl"), want);
        assert_eq!(c.list().await.expect("list"), vec![(1, 3), (2, 4), (3, 5)]);
        assert_eq!(c.uidl_one(2).await.expect("uidl 2"), uids[1]);
        assert_eq!(c.list_one(3).await.expect("list 3"), 5);
        let e = c.uidl_one(9).await.expect_err("no message 9");
        assert!(matches!(e, Error::Server { .. }), "{e:?}");
        c.noop().await.expect("session still usable");
        c.quit().await.expect("quit");
    }
}

#[tokio::test]
async fn retr_is_byte_for_byte() {
    for security in [Security::Tls, Security::StartTls] {
        let f = Fixture::new(security).await;
        let tricky = tricky_message();
        f.store.deliver(USER, b"first\r\n".to_vec());
        f.store.deliver(USER, tricky.clone());
        f.store.deliver(USER, Vec::new());
        let mut c = f.logged_in().await;
        assert_eq!(retr_vec(&mut c, 2).await.expect("retr 2"), tricky);
        assert_eq!(retr_vec(&mut c, 1).await.expect("retr 1"), b"first\r\n");
        assert_eq!(retr_vec(&mut c, 3).await.expect("retr 3"), b"");
        // The session is in step after multi-line responses.
        assert_eq!(c.stat().await.expect("stat").0, 3);
        c.quit().await.expect("quit");
    }
}

#[tokio::test]
async fn retr_streams_5_mb_to_a_file() {
    let f = Fixture::new(Security::Tls).await;
    let mut msg = Vec::with_capacity(5 * 1024 * 1024 + 100);
    let mut i = 0u32;
    while msg.len() < 5 * 1024 * 1024 {
        let line = match i % 5 {
            0 => format!(".dotted line {i}\r\n"),
            1 => format!("..{i}\r\n"),
            2 => ".\r\n".to_string(),
            3 => format!("{}\r\n", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=".repeat(2)),
            _ => format!("plain {i} \u{e8}\r\n"),
        };
        msg.extend_from_slice(line.as_bytes());
        i += 1;
    }
    f.store.deliver(USER, msg.clone());
    let mut c = f.logged_in().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msg.eml");
    let mut file = tokio::fs::File::create(&path).await.expect("create");
    let n = c.retr(1, &mut file, 10 * 1024 * 1024, LONG).await.expect("retr");
    drop(file);
    assert_eq!(n, msg.len() as u64);
    let got = tokio::fs::read(&path).await.expect("read back");
    assert!(got == msg, "file differs from the delivered message");
    c.quit().await.expect("quit");
}

#[tokio::test]
async fn dele_then_quit_removes() {
    let f = Fixture::new(Security::Tls).await;
    f.store.deliver(USER, b"one\r\n".to_vec());
    let keep = f.store.deliver(USER, b"two\r\n".to_vec());
    let mut c = f.logged_in().await;
    c.dele(1).await.expect("dele");
    assert_eq!(c.stat().await.expect("stat"), (1, 5));
    assert!(matches!(c.dele(1).await, Err(Error::Server { .. })), "already deleted");
    c.quit().await.expect("quit");
    assert_eq!(f.store.messages(USER), vec![(keep, b"two\r\n".to_vec())]);
}

#[tokio::test]
async fn dele_without_quit_removes_nothing() {
    let f = Fixture::new(Security::StartTls).await;
    f.store.deliver(USER, b"one\r\n".to_vec());
    f.store.deliver(USER, b"two\r\n".to_vec());
    let mut c = f.logged_in().await;
    c.dele(1).await.expect("dele");
    c.dele(2).await.expect("dele");
    drop(c);
    f.unlocked().await;
    assert_eq!(f.store.len(USER), 2);
    // And RSET undoes marks within a session.
    let mut c = f.logged_in().await;
    c.dele(1).await.expect("dele");
    c.rset().await.expect("rset");
    c.quit().await.expect("quit");
    assert_eq!(f.store.len(USER), 2);
}

#[tokio::test]
async fn second_session_gets_in_use() {
    let f = Fixture::new(Security::Tls).await;
    let first = f.logged_in().await;
    for sasl in [true, false] {
        f.server.set_sasl_plain(sasl);
        let mut second = f.client().await;
        let e = second.login(USER, &Secret::new(PASSWORD)).await.expect_err("locked");
        assert!(matches!(&e, Error::Server { reply, .. } if reply.contains("[IN-USE]")), "{e:?}");
        assert!(!e.is_auth() && e.is_temporary());
    }
    first.quit().await.expect("quit");
    let mut third = f.client().await;
    third.login(USER, &Secret::new(PASSWORD)).await.expect("lock released by QUIT");
}

#[tokio::test]
async fn server_without_stls_is_refused() {
    let store = Arc::new(Mailstore::new());
    let server = Pop3Server::start("127.0.0.1:0", store, ServerSecurity::Plaintext, Pop3Faults::new()).await.expect("server");
    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port: server.addr.port(),
        security: Security::StartTls,
        tls: client_config_from_pem(&server.ca_pem).expect("CA"),
        timeout: Duration::from_secs(10),
    };
    let e = Client::connect(&ep).await.expect_err("no STLS");
    assert!(matches!(e, Error::NoStls) && !e.is_temporary(), "{e:?}");
}

#[tokio::test]
async fn untrusted_certificate_is_tls_error() {
    let other = TestPki::generate(&["127.0.0.1"]).expect("pki");
    for security in [Security::Tls, Security::StartTls] {
        let f = Fixture::new(security).await;
        let ep = Endpoint { tls: client_config_from_pem(&other.ca_pem).expect("CA"), ..f.endpoint() };
        let e = Client::connect(&ep).await.expect_err("untrusted");
        assert!(matches!(e, Error::Tls { .. }) && !e.is_temporary(), "{e:?}");
    }
}

#[tokio::test]
async fn drop_during_retr_is_io_error() {
    let f = Fixture::new(Security::Tls).await;
    let msg = tricky_message();
    f.store.deliver(USER, msg.clone());
    f.faults.arm(Fault::DropDuringRetr { after_bytes: 1000 }, 1);
    let mut c = f.logged_in().await;
    let mut out = Vec::new();
    let e = c.retr(1, &mut out, u64::MAX, LONG).await.expect_err("dropped");
    assert!(matches!(e, Error::Io { .. }) && e.is_temporary(), "{e:?}");
    assert!(out.len() < msg.len());
    assert!(matches!(c.stat().await, Err(Error::Closed)), "session must be poisoned");
    f.unlocked().await;
    assert_eq!(f.store.len(USER), 1);
    let mut c = f.logged_in().await;
    assert_eq!(retr_vec(&mut c, 1).await.expect("retry"), msg);
}

#[tokio::test]
async fn drop_just_before_terminator_is_io_error() {
    let f = Fixture::new(Security::StartTls).await;
    f.store.deliver(USER, b"short\r\n".to_vec());
    f.faults.arm(Fault::DropDuringRetr { after_bytes: usize::MAX }, 1);
    let mut c = f.logged_in().await;
    let e = retr_vec(&mut c, 1).await.expect_err("dropped");
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
}

#[tokio::test]
async fn retr_error_is_server_error() {
    let f = Fixture::new(Security::Tls).await;
    f.store.deliver(USER, b"x\r\n".to_vec());
    f.faults.arm(Fault::RetrError, 1);
    let mut c = f.logged_in().await;
    assert_eq!(c.uidl().await.expect("uidl").len(), 1);
    let e = retr_vec(&mut c, 1).await.expect_err("refused");
    assert!(matches!(&e, Error::Server { command, .. } if command == "RETR 1") && e.is_temporary(), "{e:?}");
    assert_eq!(retr_vec(&mut c, 1).await.expect("next try"), b"x\r\n");
}

#[tokio::test]
async fn garbage_is_protocol_error() {
    let f = Fixture::new(Security::Tls).await;
    let mut c = f.logged_in().await;
    f.faults.arm(Fault::Garbage, 1);
    let e = c.stat().await.expect_err("garbage");
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    assert!(matches!(c.noop().await, Err(Error::Closed)));
}

#[tokio::test]
async fn garbage_greeting_reply_is_protocol_error() {
    let f = Fixture::new(Security::StartTls).await;
    f.faults.arm(Fault::Garbage, 1);
    let e = Client::connect(&f.endpoint()).await.expect_err("garbage to CAPA");
    assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
}

#[tokio::test]
async fn endless_retr_hits_the_size_limit() {
    let f = Fixture::new(Security::Tls).await;
    f.store.deliver(USER, b"x\r\n".to_vec());
    f.faults.arm(Fault::EndlessRetr, 1);
    let mut c = f.logged_in().await;
    let mut out = Vec::new();
    let e = c.retr(1, &mut out, 2000, LONG).await.expect_err("too large");
    assert!(matches!(e, Error::TooLarge { limit: 2000 }) && !e.is_temporary(), "{e:?}");
    assert!(out.len() <= 2000);
}

#[tokio::test]
async fn endless_retr_hits_the_deadline() {
    let f = Fixture::new(Security::StartTls).await;
    f.store.deliver(USER, b"x\r\n".to_vec());
    f.faults.arm(Fault::EndlessRetr, 1);
    let mut c = f.logged_in().await;
    let mut out = Vec::new();
    let started = Instant::now();
    let e = c.retr(1, &mut out, u64::MAX, Duration::from_millis(300)).await.expect_err("deadline");
    assert!(matches!(e, Error::Timeout { stage: "RETR deadline" }) && e.is_temporary(), "{e:?}");
    assert!(started.elapsed() < LONG);
    assert!(!out.is_empty(), "lines were arriving; the per-read timeout alone would not fire");
}

#[tokio::test]
async fn slow_server_times_out() {
    let f = Fixture::new(Security::Tls).await;
    let ep = Endpoint { timeout: Duration::from_millis(500), ..f.endpoint() };
    let mut c = Client::connect(&ep).await.expect("connect");
    c.login(USER, &Secret::new(PASSWORD)).await.expect("login");
    f.faults.arm(Fault::Slow(Duration::from_secs(60)), 1);
    let e = c.stat().await.expect_err("slow");
    assert!(matches!(e, Error::Timeout { .. }) && e.is_temporary(), "{e:?}");
    assert!(matches!(c.stat().await, Err(Error::Closed)));
}

#[tokio::test]
async fn slow_within_timeout_is_fine() {
    let f = Fixture::new(Security::Tls).await;
    let mut c = f.logged_in().await;
    f.faults.arm(Fault::Slow(Duration::from_millis(50)), 2);
    assert_eq!(c.stat().await.expect("stat"), (0, 0));
    c.quit().await.expect("quit");
}

/// A plaintext peer that sends `script[0]` as greeting and each later
/// entry in answer to one command line: for pre-TLS misbehaviour.
async fn scripted(script: Vec<Vec<u8>>) -> Endpoint {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let mut s = BufReader::new(tcp);
        for (i, reply) in script.iter().enumerate() {
            let mut line = Vec::new();
            if i > 0 && s.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if s.write_all(reply).await.is_err() {
                return;
            }
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    let pki = TestPki::generate(&["127.0.0.1"]).expect("pki");
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        security: Security::StartTls,
        tls: client_config_from_pem(&pki.ca_pem).expect("CA"),
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn data_injected_after_stls_is_refused() {
    let ep = scripted(vec![b"+OK hi\r\n".to_vec(), b"+OK\r\nSTLS\r\n.\r\n".to_vec(), b"+OK go\r\n+OK injected\r\n".to_vec()]).await;
    let e = Client::connect(&ep).await.expect_err("injection");
    assert!(matches!(&e, Error::Protocol { stage: "STLS", .. }), "{e:?}");
}

#[tokio::test]
async fn overlong_or_foreign_greetings_are_protocol_errors() {
    let mut long = b"+OK ".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
    long.extend_from_slice(b"\r\n");
    for greeting in [long, b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()] {
        let ep = scripted(vec![greeting]).await;
        let e = Client::connect(&ep).await.expect_err("bad greeting");
        assert!(matches!(&e, Error::Protocol { stage: "greeting", .. }), "{e:?}");
    }
}

#[tokio::test]
async fn error_greeting_is_server_error() {
    let ep = scripted(vec![b"-ERR [SYS/TEMP] overloaded\r\n".to_vec()]).await;
    let e = Client::connect(&ep).await.expect_err("refused");
    assert!(matches!(&e, Error::Server { .. }) && e.is_temporary(), "{e:?}");
}
