//! Test environment: the real `App` on 127.0.0.1:0 with a temp directory,
//! the simulated provider and a capture server for the corporate side.
#![allow(dead_code)]

pub mod http;

use std::sync::{Arc, Once};
use std::time::Duration;

use pecgate::App;
use pecgate::clock::Clock;
use pecgate::config::{self, Config};
use pecgate::sim::Captured;
use pecgate::sim::capture::CaptureServer;
use pecgate::sim::provider::{SimMailbox, SimProvider};
use pecgate::store::{Message, MessageState};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Distinctive passwords: CI greps the debug log of the test run for them.
pub const LEGAL_PASSWORD: &str = "pw-LEGAL-7f3a9c-never-log-me";
pub const HR_PASSWORD: &str = "pw-HR-c41d2e-never-log-me";

pub const LEGAL: &str = "legal@pec.azienda.it";
pub const HR: &str = "hr@pec.azienda.it";
pub const OLD: &str = "old@pec.azienda.it";
pub const MARIO: &str = "mario.rossi@azienda.it";
pub const ANNA: &str = "anna.bianchi@azienda.it";
pub const LUCA: &str = "luca.verdi@azienda.it";
pub const WAIT: Duration = Duration::from_secs(20);

static TRACING: Once = Once::new();

/// Debug logs to the test writer; `PECGATE_TEST_LOG=debug` (CI) prints them all.
pub fn init_tracing() {
    TRACING.call_once(|| {
        let level = std::env::var("PECGATE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(level)).with_test_writer().try_init();
    });
}

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub provider: SimProvider,
    pub capture: CaptureServer,
    pub app: Option<App>,
    pub config_text: String,
    pub clock: Arc<dyn Clock>,
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::start_with(|_| {}).await
    }

    /// `tweak` edits the generated TOML (e.g. to restrict allowed_clients).
    /// Outbound only: no POP3 fetching, so nothing but notices reaches the corporate side.
    pub async fn start_with(tweak: impl FnOnce(&mut String)) -> TestEnv {
        Self::start_full(tweak, pecgate::clock::system(), false).await
    }

    /// Outbound only, on `clock` (e.g. a `ManualClock` to step rate windows).
    pub async fn start_with_clock(tweak: impl FnOnce(&mut String), clock: Arc<dyn Clock>) -> TestEnv {
        Self::start_full(tweak, clock, false).await
    }

    /// With POP3 fetching from the simulator (explicit polls, see [`TestEnv::poll`]).
    pub async fn start_fetching(tweak: impl FnOnce(&mut String), clock: Arc<dyn Clock>) -> TestEnv {
        Self::start_full(tweak, clock, true).await
    }

    async fn start_full(tweak: impl FnOnce(&mut String), clock: Arc<dyn Clock>, with_pop3: bool) -> TestEnv {
        let mut env = Self::prepare(tweak, clock, with_pop3).await;
        env.restart().await;
        env
    }

    /// Simulator, capture server and config, but no gateway yet (tests that
    /// run the `pecgate` binary as a child process).
    pub async fn prepare(tweak: impl FnOnce(&mut String), clock: Arc<dyn Clock>, with_pop3: bool) -> TestEnv {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let provider = SimProvider::start(
            "127.0.0.1:0",
            vec![
                SimMailbox { username: LEGAL.into(), password: LEGAL_PASSWORD.into(), address: LEGAL.into() },
                SimMailbox { username: "hr-login".into(), password: HR_PASSWORD.into(), address: HR.into() },
            ],
            None,
        )
        .await
        .unwrap();
        let capture = CaptureServer::start("127.0.0.1:0", None).await.unwrap();
        std::fs::write(dir.path().join("ca.pem"), &provider.ca_pem).unwrap();
        // The CA the simulator signs PEC messages with (for `[pec] trust_store`).
        std::fs::write(dir.path().join("sim-signer-ca.pem"), pecgate::pec::signature::TestSigner::load().unwrap().ca_pem()).unwrap();
        write_secret(&dir.path().join("legal.pw"), &format!("{LEGAL_PASSWORD}\n"));
        write_secret(&dir.path().join("hr.pw"), HR_PASSWORD);
        let mut config_text = config_toml(provider.addr.port(), with_pop3.then_some(provider.pop3_addr.port()), capture.addr.port());
        tweak(&mut config_text);
        TestEnv { dir, provider, capture, app: None, config_text, clock }
    }

    pub fn config(&self) -> Config {
        config::load_str(&self.config_text, Some(self.dir.path())).unwrap().config
    }

    /// The file the app runs with (written from `config_text` at each start).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("pecgate.toml")
    }

    /// Writes `text` as the configuration and reloads the running app.
    pub async fn reload_with(&mut self, text: &str) -> Result<pecgate::runtime::reload::Report, pecgate::runtime::reload::Error> {
        self.config_text = text.to_owned();
        std::fs::write(self.config_path(), text).unwrap();
        self.app().reload().await
    }

    /// (Re)starts the app on the same directory, and waits for the fetchers'
    /// start-up poll so that the polls a test makes are the only ones.
    pub async fn restart(&mut self) {
        std::fs::write(self.config_path(), &self.config_text).unwrap();
        let app = App::start(&self.config_path(), self.clock.clone()).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        for f in app.fetchers.all() {
            while f.status().last_poll.is_none() {
                assert!(tokio::time::Instant::now() < deadline, "the start-up poll never ran");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.app = Some(app);
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    /// Simulates a crash: everything stops at once.
    pub fn crash(&mut self) {
        if let Some(app) = self.app.take() {
            app.abort();
        }
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }

    /// Polls a mailbox now and returns what the poll did.
    pub async fn poll(&self, mailbox: &str) -> pecgate::fetch::PollReport {
        self.app().poll(mailbox).await.expect("mailbox has POP3").unwrap_or_else(|e| panic!("poll of {mailbox} failed: {e}"))
    }

    pub fn smtp_addr(&self) -> std::net::SocketAddr {
        self.app().smtp_addr
    }

    /// One SMTP transaction to the gateway; returns the final reply line.
    pub async fn send(&self, from: &str, rcpts: &[&str], message: &str) -> String {
        let mut c = SmtpProbe::connect(self.smtp_addr()).await;
        c.expect("220").await;
        c.cmd("EHLO mx.azienda.it", "250").await;
        c.cmd(&format!("MAIL FROM:<{from}>"), "250").await;
        for r in rcpts {
            c.cmd(&format!("RCPT TO:<{r}>"), "250").await;
        }
        c.cmd("DATA", "354").await;
        let reply = c.data(message).await;
        c.cmd("QUIT", "221").await;
        reply
    }

    /// Waits until a message reaches `state`.
    pub async fn wait_state(&self, queue_id: &str, state: MessageState) -> Message {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.app().store.message(queue_id).await.unwrap()
                && m.state == state
            {
                return m;
            }
            assert!(tokio::time::Instant::now() < deadline, "message {queue_id} never reached {state}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn provider_messages(&self, n: usize) -> Vec<Captured> {
        self.provider.bag.wait_for(n, WAIT).await.unwrap_or_else(|got| panic!("provider got {} of {n} messages", got.len()))
    }

    pub async fn corporate_messages(&self, n: usize) -> Vec<Captured> {
        self.capture.bag.wait_for(n, WAIT).await.unwrap_or_else(|got| panic!("corporate server got {} of {n} messages", got.len()))
    }
}

/// A corporate port that is down: it drops every connection until
/// [`DownPort::back`] hands it, the same port, to a capture server.
pub struct DownPort {
    pub port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<tokio::net::TcpListener>,
}

impl DownPort {
    pub async fn start() -> DownPort {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => drop(accepted),
                    _ = &mut stopped => return listener,
                }
            }
        });
        DownPort { port, stop, task }
    }

    /// The corporate server comes back on its port.
    pub async fn back(self) -> CaptureServer {
        self.stop.send(()).unwrap();
        CaptureServer::start_on(self.task.await.unwrap(), None).unwrap()
    }
}

/// Waits until `n` injections were accepted by the corporate server (state submitted).
pub async fn wait_injected(env: &TestEnv, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let done = env
            .app()
            .store
            .list_messages(1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.kind == pecgate::store::MessageKind::Injection && m.state == MessageState::Submitted)
            .count();
        if done >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {done} of {n} injections delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn write_secret(path: &std::path::Path, s: &str) {
    std::fs::write(path, s).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Mailboxes legal and hr fetch from the simulator's POP3 side; the
/// background poll interval is long so tests poll explicitly (`TestEnv::poll`).
pub fn config_toml(provider_port: u16, pop3_port: Option<u16>, capture_port: u16) -> String {
    let pop3 = |retention: &str| match pop3_port {
        Some(port) => format!(
            "[mailbox.pop3]\nhost = \"localhost\"\nport = {port}\nca_file = \"ca.pem\"\ntimeout_secs = 5\ninterval_secs = 3600\nretention = \"{retention}\"\n"
        ),
        None => String::new(),
    };
    let pop3_legal = pop3("leave");
    let pop3_hr = pop3("leave");
    format!(
        r#"
[smtp]
listen = "127.0.0.1:0"
hostname = "pecgate.test"
max_message_size = 1000000
command_timeout_secs = 10

[store]
path = "pecgate.db"
spool_dir = "spool"

[corporate]
host = "127.0.0.1"
port = {capture_port}
from = "pecgate@azienda.it"

[admin]
listen = "127.0.0.1:0"

[queue]
min_backoff_secs = 1
max_backoff_secs = 2

[log]
level = "debug"

[[mailbox]]
id = "legal"
address = "{LEGAL}"
username = "{LEGAL}"
password_file = "legal.pw"
receipt_type = "breve"
[mailbox.smtp]
host = "localhost"
port = {provider_port}
ca_file = "ca.pem"
timeout_secs = 5
{pop3_legal}[[mailbox.user]]
address = "{MARIO}"
admin = true
[[mailbox.user]]
address = "{ANNA}"
send = false
[[mailbox.user]]
address = "{LUCA}"

[[mailbox]]
id = "hr"
address = "{HR}"
username = "hr-login"
password_file = "hr.pw"
[mailbox.smtp]
host = "localhost"
port = {provider_port}
ca_file = "ca.pem"
timeout_secs = 5
{pop3_hr}[[mailbox.user]]
address = "{MARIO}"
admin = true

[[mailbox]]
id = "old"
address = "{OLD}"
username = "{OLD}"
password_file = "hr.pw"
active = false
[mailbox.smtp]
host = "localhost"
port = {provider_port}
ca_file = "ca.pem"
[[mailbox.user]]
address = "{ANNA}"
admin = true
"#
    )
}

/// A certificate for "localhost" and "127.0.0.1" signed by a fresh test CA,
/// written as `listener-cert.pem` (chain) and `listener-key.pem` in `dir`
/// (for `smtp.tls_cert_file` / `tls_key_file`). Returns the CA PEM to trust.
pub fn write_listener_tls(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("listener-cert.pem"), format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
    write_secret(&dir.join("listener-key.pem"), &key.serialize_pem());
    ca_cert.pem()
}

/// A line-level SMTP client for tests: send a command, assert the reply code.
/// Plain TCP until [`SmtpProbe::starttls`].
pub struct SmtpProbe<S = TcpStream> {
    io: BufReader<S>,
}

impl SmtpProbe {
    pub async fn connect(addr: std::net::SocketAddr) -> SmtpProbe {
        SmtpProbe { io: BufReader::new(TcpStream::connect(addr).await.unwrap()) }
    }

    /// STARTTLS (asserting 220) and the handshake with "localhost", trusting `ca_pem`.
    pub async fn starttls(mut self, ca_pem: &str) -> SmtpProbe<tokio_rustls::client::TlsStream<TcpStream>> {
        self.cmd("STARTTLS", "220 2.0.0").await;
        let connector = tokio_rustls::TlsConnector::from(pecgate::tls::client_config_from_pem(ca_pem).unwrap());
        let tls = connector.connect("localhost".try_into().unwrap(), self.io.into_inner()).await.unwrap();
        SmtpProbe { io: BufReader::new(tls) }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpProbe<S> {
    pub async fn write(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    /// Reads one full (multi-line) reply; "" on EOF.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line)).await.expect("reply timeout").unwrap_or(0);
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub async fn expect(&mut self, code: &str) -> String {
        let r = self.reply().await;
        assert!(r.starts_with(code), "expected {code}, got {r:?}");
        r
    }

    pub async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(code), "{line} -> expected {code}, got {r:?}");
        r
    }

    /// Sends message text (LF or CRLF lines), dot-stuffed, and the terminator.
    pub async fn data(&mut self, message: &str) -> String {
        let mut wire = String::new();
        for line in message.replace("\r\n", "\n").split_terminator('\n') {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.write(wire.as_bytes()).await;
        self.reply().await
    }
}

/// The queue id from "250 2.0.0 queued as X".
pub fn queue_id(reply: &str) -> String {
    reply.trim().rsplit(' ').next().unwrap().to_owned()
}

pub fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// A fresh PostgreSQL database on the test server named by
/// `PECGATE_TEST_PG_URL` (an URL with the password; the interop script
/// starts a private server): returns (URL without password, password). The
/// tests that call it are `#[ignore]`d; run without a server they fail.
pub async fn fresh_pg_database(name: &str) -> (String, String) {
    let admin = std::env::var("PECGATE_TEST_PG_URL")
        .unwrap_or_else(|_| panic!("{name}: needs PostgreSQL: set PECGATE_TEST_PG_URL (tests/interop/run.sh starts a private server)"));
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let db = format!("pecgate_t_{}_{}", name, std::process::id());
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}"))).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).await.unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&db);
    let password = url::Url::parse(&admin).unwrap().password().map(str::to_owned).unwrap_or_default();
    let _ = url.set_password(None);
    (url.to_string(), password)
}

/// A plain HTTP GET to the admin listener: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// The value of one series in a Prometheus exposition, e.g. `pecgate_receipts_total{kind="accettazione",mailbox="legal"}`.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

/// Every file below `dir` (database, spool, logs) except those whose name is in `except`.
pub fn files_under(dir: &std::path::Path, except: &[&str]) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && !except.iter().any(|x| p.ends_with(x)) {
                files.push(p);
            }
        }
    }
    files
}
