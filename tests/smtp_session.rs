//! The SMTP engine on in-memory streams (no sockets): sequencing, limits,
//! pipelining, smuggling, STARTTLS, where AUTH is allowed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pecgate::listener::session::{self, Backend, Envelope, Response, SessionConfig, SessionInfo};
use pecgate::proto::reply;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    aborted: AtomicUsize,
}

/// `.1`: offer AUTH; the one valid login is `u` / `p`.
struct TestBackend(Arc<Recorder>, bool);

impl Backend for TestBackend {
    type Sink = Vec<u8>;

    fn auth_enabled(&self) -> bool {
        self.1
    }

    async fn authenticate(&self, _info: &SessionInfo, user: &str, password: &str) -> Result<String, Response> {
        if (user, password) == ("u", "p") { Ok(user.to_owned()) } else { Err(reply::r535_auth_failed().into()) }
    }

    async fn mail(&self, _info: &SessionInfo, _from: &str) -> Result<(), Response> {
        Ok(())
    }

    async fn rcpt(&self, _info: &SessionInfo, _envelope: &Envelope, to: &str) -> Result<(), Response> {
        if to.starts_with("reject") { Err(pecgate::proto::Reply::new(550, Some("5.1.1"), "no such user").into()) } else { Ok(()) }
    }

    async fn data_start(&self, _info: &SessionInfo, _envelope: &Envelope) -> Result<Vec<u8>, Response> {
        Ok(Vec::new())
    }

    async fn data_end(&self, _info: &SessionInfo, envelope: &Envelope, data: Vec<u8>, _size: u64) -> Response {
        self.0.messages.lock().unwrap().push((envelope.clone(), data));
        reply::r250_ok().into()
    }

    async fn data_abort(&self, _sink: Vec<u8>) {
        self.0.aborted.fetch_add(1, Ordering::SeqCst);
    }
}

struct Probe<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Probe<S> {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line)).await.expect("reply timeout").unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(code), "{line} -> expected {code}, got {r:?}");
        r
    }
}

struct Harness {
    probe: Probe<DuplexStream>,
    recorder: Arc<Recorder>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn info() -> SessionInfo {
    info_from("127.0.0.1:40000")
}

fn info_from(peer: &str) -> SessionInfo {
    SessionInfo { id: 1, peer: peer.parse::<SocketAddr>().unwrap(), helo: None, tls: false, auth: None }
}

fn small_config() -> SessionConfig {
    let mut c = SessionConfig::new("gw.test");
    c.max_message_size = 1000;
    c.max_recipients = 3;
    c.max_errors = 5;
    c
}

async fn start(config: SessionConfig) -> Harness {
    start_with(config, info(), false).await
}

async fn start_with(config: SessionConfig, info: SessionInfo, auth: bool) -> Harness {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let recorder = Arc::new(Recorder::default());
    let (shutdown, rx) = watch::channel(false);
    let backend = Arc::new(TestBackend(recorder.clone(), auth));
    let task = tokio::spawn(async move {
        let _ = session::serve(server, backend, Arc::new(config), info, rx).await;
    });
    let mut probe = Probe { io: BufReader::new(client) };
    assert!(probe.reply().await.starts_with("220 gw.test ESMTP"));
    Harness { probe, recorder, shutdown, task }
}

#[tokio::test]
async fn ehlo_advertises_extensions_and_sequence_is_enforced() {
    let mut config = small_config();
    config.max_errors = 20;
    let mut h = start(config).await;
    h.probe.cmd("MAIL FROM:<a@b.it>", "503 5.5.1").await;
    let ehlo = h.probe.cmd("EHLO client.test", "250").await;
    assert_eq!(ehlo, "250-gw.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
    h.probe.cmd("RCPT TO:<a@b.it>", "503 5.5.1").await;
    h.probe.cmd("DATA", "503 5.5.1").await;
    h.probe.cmd("STARTTLS", "454 4.7.0").await;
    h.probe.cmd("AUTH PLAIN AGEAYg==", "502").await;
    h.probe.cmd("MAIL FROM:<a@b.it>", "250 2.1.0").await;
    h.probe.cmd("MAIL FROM:<a@b.it>", "503 5.5.1").await;
    h.probe.cmd("DATA", "554 5.5.1").await;
    h.probe.cmd("RCPT TO:<reject@b.it>", "550 5.1.1").await;
    h.probe.cmd("RCPT TO:<x y@b.it>", "501 5.1.3").await;
    h.probe.cmd("RCPT TO:<a@b.it> NOTIFY=NEVER", "555").await;
    h.probe.cmd("RSET", "250").await;
    h.probe.cmd("NOOP", "250").await;
    h.probe.cmd("VRFY a", "252").await;
    h.probe.cmd("QUIT", "221").await;
    assert_eq!(h.probe.reply().await, "", "closed after QUIT");
}

#[tokio::test]
async fn pipelined_transaction_gets_replies_in_order() {
    let mut h = start(small_config()).await;
    h.probe.send(b"EHLO c\r\nMAIL FROM:<a@b.it> BODY=8BITMIME SIZE=100\r\nRCPT TO:<x@y.it>\r\nRCPT TO:<reject@y.it>\r\nRCPT TO:<z@y.it>\r\nDATA\r\n").await;
    for code in ["250-gw.test", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"] {
        let r = h.probe.reply().await;
        assert!(r.starts_with(code), "want {code}, got {r:?}");
    }
    h.probe.send(b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n").await;
    assert!(h.probe.reply().await.starts_with("250 2.0.0"));
    assert!(h.probe.reply().await.starts_with("221"));
    let msgs = h.recorder.messages.lock().unwrap();
    assert_eq!(msgs[0].0.rcpts, ["x@y.it", "z@y.it"]);
    assert_eq!(msgs[0].1, b"Subject: hi\r\n\r\n.dot\r\n");
}

#[tokio::test]
async fn smuggling_sequences_stay_inside_the_message() {
    for smuggle in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
        let mut h = start(small_config()).await;
        h.probe.cmd("EHLO c", "250").await;
        h.probe.cmd("MAIL FROM:<a@b.it>", "250").await;
        h.probe.cmd("RCPT TO:<x@y.it>", "250").await;
        h.probe.cmd("DATA", "354").await;
        let mut wire = b"Subject: s\r\n\r\nhello".to_vec();
        wire.extend_from_slice(smuggle);
        wire.extend_from_slice(b"MAIL FROM:<evil@x.it>\r\nRCPT TO:<victim@x.it>\r\nDATA\r\nforged\r\n.\r\n");
        h.probe.send(&wire).await;
        let r = h.probe.reply().await;
        assert!(r.starts_with("250"), "{smuggle:?}: {r:?}");
        h.probe.cmd("QUIT", "221").await;
        let msgs = h.recorder.messages.lock().unwrap();
        assert_eq!(msgs.len(), 1, "{smuggle:?}: exactly one message");
        let text = String::from_utf8_lossy(&msgs[0].1);
        assert!(text.contains("MAIL FROM:<evil@x.it>\r\n") && text.ends_with("forged\r\n"), "{smuggle:?}: {text:?}");
        assert!(!text.replace("\r\n", "").contains(['\r', '\n']), "{smuggle:?}: only CRLF line ends are stored");
    }
}

#[tokio::test]
async fn size_limits_and_recipient_limit() {
    let mut h = start(small_config()).await;
    h.probe.cmd("EHLO c", "250").await;
    h.probe.cmd("MAIL FROM:<a@b.it> SIZE=5000", "552 5.3.4").await;
    h.probe.cmd("MAIL FROM:<a@b.it>", "250").await;
    for i in 0..3 {
        h.probe.cmd(&format!("RCPT TO:<r{i}@y.it>"), "250").await;
    }
    h.probe.cmd("RCPT TO:<r4@y.it>", "452 4.5.3").await;
    h.probe.cmd("DATA", "354").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(5000));
    h.probe.send(big.as_bytes()).await;
    assert!(h.probe.reply().await.starts_with("552 5.3.4"));
    assert_eq!(h.recorder.aborted.load(Ordering::SeqCst), 1, "the oversize body is not kept");
    assert!(h.recorder.messages.lock().unwrap().is_empty());
    // The session goes on.
    h.probe.cmd("MAIL FROM:<a@b.it>", "250").await;
}

#[tokio::test]
async fn junk_is_answered_and_bounded() {
    let mut h = start(small_config()).await;
    h.probe.cmd("EHLO c", "250").await;
    let long = format!("NOOP {}", "x".repeat(3000));
    h.probe.cmd(&long, "500 5.5.2 line too long").await;
    h.probe.send(b"MAIL FROM:<a\0@b.it>\r\n").await;
    assert!(h.probe.reply().await.starts_with("500 5.5.2"));
    h.probe.send(b"MAIL FROM:<\xe0@b.it>\r\n").await;
    assert!(h.probe.reply().await.starts_with("500 5.5.2"));
    h.probe.cmd("FOO", "500 5.5.1").await;
    // Fifth error: the session is closed.
    h.probe.send(b"BAR\r\n").await;
    assert!(h.probe.reply().await.starts_with("500"));
    assert!(h.probe.reply().await.starts_with("421 4.7.0"));
    assert_eq!(h.probe.reply().await, "");
}

#[tokio::test]
async fn idle_client_times_out_and_shutdown_says_421() {
    let mut c = small_config();
    c.command_timeout = Duration::from_millis(200);
    let mut h = start(c).await;
    assert!(h.probe.reply().await.starts_with("421 4.4.2"), "slowloris client is dropped");

    let mut h2 = start(small_config()).await;
    h2.probe.cmd("EHLO c", "250").await;
    h2.shutdown.send(true).unwrap();
    assert!(h2.probe.reply().await.starts_with("421 4.3.2"));
    tokio::time::timeout(Duration::from_secs(5), &mut h2.task).await.unwrap().unwrap();
    drop(h);
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext_and_resets_state() {
    let pki = pecgate::tls::TestPki::generate(&["localhost"]).unwrap();
    let mut config = small_config();
    config.tls = Some(tokio_rustls::TlsAcceptor::from(pki.server.clone()));
    let mut h = start(config).await;
    let ehlo = h.probe.cmd("EHLO c", "250").await;
    assert!(ehlo.contains("250-STARTTLS\r\n") || ehlo.contains("250 STARTTLS\r\n"), "{ehlo}");
    // CVE-2011-0411: a command injected after STARTTLS in the same packet must be ignored.
    h.probe.send(b"STARTTLS\r\nMAIL FROM:<injected@x.it>\r\n").await;
    assert!(h.probe.reply().await.starts_with("220 2.0.0"));
    let stream = h.probe.io.into_inner();
    let connector = tokio_rustls::TlsConnector::from(pecgate::tls::client_config_from_pem(&pki.ca_pem).unwrap());
    let tls = connector.connect("localhost".try_into().unwrap(), stream).await.unwrap();
    let mut p = Probe { io: BufReader::new(tls) };
    // State is reset: EHLO is needed again, and the injected MAIL never happened.
    p.cmd("MAIL FROM:<a@b.it>", "503 5.5.1").await;
    let ehlo = p.cmd("EHLO c", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    p.cmd("MAIL FROM:<a@b.it>", "250").await;
    p.cmd("STARTTLS", "503").await;
}

#[tokio::test]
async fn auth_needs_tls_except_from_loopback_when_allowed() {
    // "AGEAYg==" is a wrong login; "AHUAcA==" is u / p.
    // (peer, loopback exception, AUTH offered)
    let cases = [
        ("127.0.0.1:40000", false, false),
        ("192.0.2.7:40000", true, false),
        ("127.0.0.1:40000", true, true),
        ("127.1.2.3:40000", true, true),
        ("[::1]:40000", true, true),
        ("[::ffff:127.0.0.1]:40000", true, true),
        ("[::ffff:192.0.2.7]:40000", true, false),
    ];
    for (peer, exception, offered) in cases {
        let mut config = small_config();
        config.auth_without_tls_on_loopback = exception;
        let mut h = start_with(config, info_from(peer), true).await;
        let ehlo = h.probe.cmd("EHLO c", "250").await;
        assert_eq!(ehlo.contains("AUTH PLAIN LOGIN"), offered, "{peer} {exception}: {ehlo}");
        let want = if offered { "235 2.7.0" } else { "538 5.7.11" };
        h.probe.cmd("AUTH PLAIN AHUAcA==", want).await;
    }
}

#[tokio::test]
async fn auth_exchange_edge_cases() {
    let mut config = small_config();
    config.auth_without_tls_on_loopback = true;
    config.max_errors = 20;
    let mut h = start_with(config.clone(), info(), true).await;
    h.probe.cmd("AUTH PLAIN AHUAcA==", "503 5.5.1 send EHLO").await;
    h.probe.cmd("EHLO c", "250").await;
    // An overlong continuation line is answered, not a reason to drop the client.
    h.probe.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    h.probe.cmd(&"QUFB".repeat(300), "500 5.5.2 line too long").await;
    // Two failures, then success: the limit is 3.
    h.probe.cmd("AUTH PLAIN AGEAYg==", "535 5.7.8").await;
    h.probe.cmd("AUTH PLAIN AGEAYg==", "535 5.7.8").await;
    h.probe.cmd("AUTH PLAIN AHUAcA==", "235 2.7.0").await;

    // Silence during a challenge times out like any command.
    config.command_timeout = Duration::from_millis(200);
    let mut h = start_with(config, info(), true).await;
    h.probe.cmd("EHLO c", "250").await;
    h.probe.cmd("AUTH PLAIN", "334").await;
    assert!(h.probe.reply().await.starts_with("421 4.4.2"));
    assert_eq!(h.probe.reply().await, "");
}
