//! POP3 client (RFC 1939) for fetching PEC mail from a provider.
//!
//! Always over TLS: implicit (port 995) or upgraded with STLS (RFC 2595);
//! there is no plaintext mode. Every read and write runs under the endpoint
//! timeout, and RETR additionally under a whole-transfer deadline, so a
//! stalled or trickling server can never hang the fetcher.
//!
//! RETR streams the message, dot-unstuffed but otherwise byte-for-byte, to a
//! caller-supplied writer: PEC messages are signed, and can be large.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::response::{self, Capabilities, MAX_LINE, MultilineDecoder, Reply};
use crate::config::Secret;

/// How the connection is protected. There is deliberately no plaintext option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (pop3s, port 995).
    Tls,
    /// Plain connect, then STLS (RFC 2595) before anything else is sent.
    StartTls,
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub tls: Arc<rustls::ClientConfig>,
    /// Bound on connecting, on the TLS handshake and on every single read or write.
    pub timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS with {host}: {source}")]
    Tls { host: String, source: io::Error },
    #[error("timed out during {stage}")]
    Timeout { stage: &'static str },
    #[error("I/O error during {stage}: {source}")]
    Io { stage: &'static str, source: io::Error },
    /// Credentials refused: distinct so that the fetcher backs off and tells the admin.
    #[error("login refused: {reply}")]
    Auth { reply: String },
    #[error("server refused {command}: {reply}")]
    Server { command: String, reply: String },
    #[error("protocol error during {stage}: {line}")]
    Protocol { stage: &'static str, line: String },
    #[error("message larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("server does not offer STLS")]
    NoStls,
    /// A caller-supplied value that cannot be sent safely (e.g. CR/LF in a user name).
    #[error("invalid {what}")]
    Input { what: &'static str },
    /// An earlier error left the session in an unknown state; reconnect.
    #[error("connection unusable after an earlier error")]
    Closed,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Credentials were refused: retrying will not help until the admin acts.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth { .. })
    }

    /// Whether retrying later (on a new connection) may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Io { .. } | Error::Closed | Error::Protocol { .. } => true,
            // Certificate and handshake failures (InvalidData / InvalidInput) are
            // configuration problems; a reset during the handshake is not.
            Error::Tls { source, .. } => !matches!(source.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput),
            Error::Server { reply, .. } => !reply.starts_with("[SYS/PERM]"),
            Error::Auth { .. } | Error::TooLarge { .. } | Error::NoStls | Error::Input { .. } => false,
        }
    }

    /// Whether the session can go on after this error: only well-formed
    /// refusals leave client and server in step.
    fn keeps_session(&self) -> bool {
        matches!(self, Error::Auth { .. } | Error::Server { .. } | Error::Input { .. })
    }
}

/// Anything the session can run over: TCP before STLS, TLS after.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Read buffer size; also the most RETR holds in memory at once (plus one decoded chunk).
const BUFFER: usize = 64 * 1024;
/// Bound on listing lines (UIDL, LIST, CAPA), so a server that never ends a
/// listing cannot exhaust memory.
const MAX_LISTING: usize = 1_000_000;
/// RFC 5034: servers need accept no longer AUTH command lines; longer
/// initial responses go in a continuation instead.
const MAX_AUTH_LINE: usize = 255;

/// A POP3 session.
pub struct Client {
    conn: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    capabilities: Capabilities,
    broken: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("capabilities", &self.capabilities).field("broken", &self.broken).finish_non_exhaustive()
    }
}

/// Runs `fut` under `limit`, turning expiry into `Error::Timeout`.
async fn timed<T>(limit: Duration, stage: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, fut).await.map_err(|_| Error::Timeout { stage })?
}

async fn tls_handshake(ep: &Endpoint, io: Box<dyn Stream>) -> Result<Box<dyn Stream>> {
    let tls_err = |source| Error::Tls { host: ep.host.clone(), source };
    let name = ServerName::try_from(ep.host.clone())
        .map_err(|e| tls_err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid server name: {e}"))))?;
    let connector = tokio_rustls::TlsConnector::from(ep.tls.clone());
    let stream = timed(ep.timeout, "TLS handshake", async { connector.connect(name, io).await.map_err(tls_err) }).await?;
    Ok(Box::new(stream))
}

impl Client {
    /// Connects, reads the greeting, learns the capabilities and, for
    /// `StartTls`, upgrades before any credentials could be sent.
    pub async fn connect(ep: &Endpoint) -> Result<Client> {
        let addr = format!("{}:{}", ep.host, ep.port);
        let tcp = timed(ep.timeout, "connect", async {
            TcpStream::connect((ep.host.as_str(), ep.port)).await.map_err(|source| Error::Connect { addr: addr.clone(), source })
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Stream> = match ep.security {
            Security::Tls => tls_handshake(ep, Box::new(tcp)).await?,
            Security::StartTls => Box::new(tcp),
        };
        let mut client = Client {
            conn: BufReader::with_capacity(BUFFER, io),
            timeout: ep.timeout,
            capabilities: Capabilities::default(),
            broken: false,
        };
        let greeting = client.read_reply("greeting").await?;
        if !greeting.ok {
            return Err(Error::Server { command: "greeting".into(), reply: greeting.text });
        }
        client.capabilities = client.capa().await?;
        if ep.security == Security::StartTls {
            if !client.capabilities.stls() {
                return Err(Error::NoStls);
            }
            client.command("STLS", "STLS").await?;
            // Anything the server sent after its +OK arrived in plaintext and
            // could be injected by an attacker (cf. CVE-2011-0411): refuse it.
            if !client.conn.buffer().is_empty() {
                return Err(Error::Protocol { stage: "STLS", line: "data after STLS reply, before TLS".into() });
            }
            let plain = std::mem::replace(&mut client.conn, BufReader::new(Box::new(tokio::io::empty()) as Box<dyn Stream>));
            let tls = tls_handshake(ep, plain.into_inner()).await?;
            client.conn = BufReader::with_capacity(BUFFER, tls);
            // RFC 2595: capabilities learnt before TLS must be discarded.
            client.capabilities = client.capa().await?;
        }
        Ok(client)
    }

    /// Capabilities announced by the server (after TLS).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Logs in with AUTH PLAIN (RFC 5034) when the server offers it, else USER/PASS.
    /// `-ERR [IN-USE]` and `-ERR [SYS/TEMP]` (RFC 2449/3206) come back as
    /// `Error::Server`, not `Error::Auth`: the credentials were not the problem.
    pub async fn login(&mut self, user: &str, password: &Secret) -> Result<()> {
        self.usable()?;
        let r = self.login_inner(user, password).await;
        self.track(r)
    }

    async fn login_inner(&mut self, user: &str, password: &Secret) -> Result<()> {
        let unsafe_chars = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0'));
        if user.is_empty() || unsafe_chars(user) {
            return Err(Error::Input { what: "user name" });
        }
        if unsafe_chars(password.expose()) {
            return Err(Error::Input { what: "password" });
        }
        if self.capabilities.sasl("PLAIN") {
            let mut token = Vec::with_capacity(user.len() + password.expose().len() + 2);
            token.push(0);
            token.extend_from_slice(user.as_bytes());
            token.push(0);
            token.extend_from_slice(password.expose().as_bytes());
            let encoded = Secret::new(BASE64_STANDARD.encode(&token));
            let reply = if "AUTH PLAIN ".len() + encoded.expose().len() + 2 <= MAX_AUTH_LINE {
                self.send_secret(&format!("AUTH PLAIN {}", encoded.expose()), "AUTH PLAIN ***").await?;
                self.read_auth_reply().await?
            } else {
                self.send("AUTH PLAIN").await?;
                let line = self.read_line("AUTH").await?;
                if !line.starts_with(b"+") {
                    return auth_result(response::parse_status(&line).map_err(|e| protocol("AUTH", e))?);
                }
                self.send_secret(encoded.expose(), "***").await?;
                self.read_auth_reply().await?
            };
            return auth_result(reply);
        }
        let reply = self.exchange(&format!("USER {user}"), "USER").await?;
        if !reply.ok {
            return auth_result(reply);
        }
        self.send_secret(&format!("PASS {}", password.expose()), "PASS ***").await?;
        let reply = self.read_reply("PASS").await?;
        auth_result(reply)
    }

    /// The final reply to AUTH; a SASL challenge is unexpected for PLAIN, so
    /// the exchange is cancelled with "*" (RFC 5034) and reported.
    async fn read_auth_reply(&mut self) -> Result<Reply> {
        let line = self.read_line("AUTH").await?;
        if line.starts_with(b"+ ") || line == b"+" {
            self.send("*").await?;
            let _ = self.read_line("AUTH").await?;
            return Err(Error::Protocol { stage: "AUTH", line: "unexpected SASL challenge for PLAIN".into() });
        }
        response::parse_status(&line).map_err(|e| protocol("AUTH", e))
    }

    /// `(message count, total size)` of the maildrop.
    pub async fn stat(&mut self) -> Result<(u32, u64)> {
        self.usable()?;
        let r = async {
            let text = self.command("STAT", "STAT").await?;
            response::parse_stat(&text).map_err(|e| protocol("STAT", e))
        }
        .await;
        self.track(r)
    }

    /// Unique-ids of all messages not marked deleted.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>> {
        self.usable()?;
        let r = async {
            self.command("UIDL", "UIDL").await?;
            let lines = self.read_listing("UIDL").await?;
            lines.iter().map(|l| response::parse_uidl_line(l).map_err(|e| protocol("UIDL", e))).collect()
        }
        .await;
        self.track(r)
    }

    /// Unique-id of message `n`.
    pub async fn uidl_one(&mut self, n: u32) -> Result<String> {
        self.usable()?;
        let r = async {
            let text = self.command(&format!("UIDL {n}"), "UIDL").await?;
            let (got, uid) = response::parse_uidl_line(text.as_bytes()).map_err(|e| protocol("UIDL", e))?;
            if got != n {
                return Err(Error::Protocol { stage: "UIDL", line: format!("asked for {n}, got {got}") });
            }
            Ok(uid)
        }
        .await;
        self.track(r)
    }

    /// `(message number, size)` of all messages not marked deleted.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>> {
        self.usable()?;
        let r = async {
            self.command("LIST", "LIST").await?;
            let lines = self.read_listing("LIST").await?;
            lines.iter().map(|l| response::parse_list_line(l).map_err(|e| protocol("LIST", e))).collect()
        }
        .await;
        self.track(r)
    }

    /// Size of message `n`.
    pub async fn list_one(&mut self, n: u32) -> Result<u64> {
        self.usable()?;
        let r = async {
            let text = self.command(&format!("LIST {n}"), "LIST").await?;
            let (got, size) = response::parse_list_line(text.as_bytes()).map_err(|e| protocol("LIST", e))?;
            if got != n {
                return Err(Error::Protocol { stage: "LIST", line: format!("asked for {n}, got {got}") });
            }
            Ok(size)
        }
        .await;
        self.track(r)
    }

    /// Streams message `n` into `out`, dot-unstuffed and otherwise unchanged,
    /// and returns the number of bytes written. Fails with `TooLarge` past
    /// `limit` bytes and with `Timeout` if the whole transfer exceeds
    /// `deadline` (a server trickling bytes defeats per-read timeouts).
    ///
    /// On any error `out` holds a partial message: write to a temporary file
    /// and keep it only on `Ok`. `out` is flushed before returning `Ok`.
    pub async fn retr<W: AsyncWrite + Unpin>(&mut self, n: u32, out: &mut W, limit: u64, deadline: Duration) -> Result<u64> {
        self.usable()?;
        let end = Instant::now() + deadline;
        let r = match tokio::time::timeout_at(end, self.retr_inner(n, out, limit)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { stage: "RETR deadline" }),
        };
        self.track(r)
    }

    async fn retr_inner<W: AsyncWrite + Unpin>(&mut self, n: u32, out: &mut W, limit: u64) -> Result<u64> {
        self.command(&format!("RETR {n}"), "RETR").await?;
        let mut decoder = MultilineDecoder::new();
        let mut chunk = Vec::with_capacity(BUFFER + 1);
        let mut written: u64 = 0;
        loop {
            let timeout = self.timeout;
            let buf = match tokio::time::timeout(timeout, self.conn.fill_buf()).await {
                Err(_) => return Err(Error::Timeout { stage: "RETR" }),
                Ok(Err(source)) => return Err(Error::Io { stage: "RETR", source }),
                Ok(Ok([])) => return Err(Error::Io { stage: "RETR", source: io::ErrorKind::UnexpectedEof.into() }),
                Ok(Ok(buf)) => buf,
            };
            chunk.clear();
            let done = decoder.feed(buf, &mut chunk);
            let consumed = done.unwrap_or(buf.len());
            self.conn.consume(consumed);
            written += chunk.len() as u64;
            if written > limit {
                return Err(Error::TooLarge { limit });
            }
            timed(timeout, "writing message", async {
                out.write_all(&chunk).await.map_err(|source| Error::Io { stage: "writing message", source })
            })
            .await?;
            if done.is_some() {
                timed(timeout, "writing message", async {
                    out.flush().await.map_err(|source| Error::Io { stage: "writing message", source })
                })
                .await?;
                return Ok(written);
            }
        }
    }

    /// Marks message `n` for deletion; it is removed only by a successful `quit`.
    pub async fn dele(&mut self, n: u32) -> Result<()> {
        self.usable()?;
        let r = self.command(&format!("DELE {n}"), "DELE").await.map(drop);
        self.track(r)
    }

    /// Unmarks all messages marked for deletion in this session.
    pub async fn rset(&mut self) -> Result<()> {
        self.usable()?;
        let r = self.command("RSET", "RSET").await.map(drop);
        self.track(r)
    }

    pub async fn noop(&mut self) -> Result<()> {
        self.usable()?;
        let r = self.command("NOOP", "NOOP").await.map(drop);
        self.track(r)
    }

    /// Ends the session. The server's `+OK` means the deletions are committed
    /// (UPDATE state, RFC 1939); an error means they may not have been.
    pub async fn quit(mut self) -> Result<()> {
        self.usable()?;
        self.command("QUIT", "QUIT").await?;
        // Best effort close_notify: the deletions are already committed.
        let _ = tokio::time::timeout(self.timeout, self.conn.get_mut().shutdown()).await;
        Ok(())
    }

    fn usable(&self) -> Result<()> {
        if self.broken { Err(Error::Closed) } else { Ok(()) }
    }

    /// Poisons the session after an error that may have left it out of step.
    fn track<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && !e.keeps_session()
        {
            self.broken = true;
        }
        r
    }

    /// CAPA as a list; a server without CAPA (-ERR) has no known capabilities.
    async fn capa(&mut self) -> Result<Capabilities> {
        let reply = self.exchange("CAPA", "CAPA").await?;
        if !reply.ok {
            return Ok(Capabilities::default());
        }
        let lines = self.read_listing("CAPA").await?;
        Ok(Capabilities::parse(&lines))
    }

    /// Sends `cmd`, requires `+OK`, returns its text. `name` is what errors show.
    async fn command(&mut self, cmd: &str, name: &'static str) -> Result<String> {
        let reply = self.exchange(cmd, name).await?;
        if !reply.ok {
            return Err(Error::Server { command: cmd.to_owned(), reply: reply.text });
        }
        Ok(reply.text)
    }

    async fn exchange(&mut self, cmd: &str, stage: &'static str) -> Result<Reply> {
        self.send(cmd).await?;
        self.read_reply(stage).await
    }

    async fn send(&mut self, cmd: &str) -> Result<()> {
        tracing::debug!(command = cmd, "POP3 >");
        self.write_line(cmd).await
    }

    /// Sends a line holding a secret; only `shown` is ever logged.
    async fn send_secret(&mut self, line: &str, shown: &str) -> Result<()> {
        tracing::debug!(command = shown, "POP3 >");
        self.write_line(line).await
    }

    async fn write_line(&mut self, line: &str) -> Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        let conn = &mut self.conn;
        timed(self.timeout, "sending command", async {
            conn.write_all(&bytes).await.map_err(|source| Error::Io { stage: "sending command", source })?;
            conn.flush().await.map_err(|source| Error::Io { stage: "sending command", source })
        })
        .await
    }

    async fn read_reply(&mut self, stage: &'static str) -> Result<Reply> {
        let line = self.read_line(stage).await?;
        let reply = response::parse_status(&line).map_err(|e| protocol(stage, e))?;
        tracing::debug!(ok = reply.ok, text = %reply.text, "POP3 <");
        Ok(reply)
    }

    /// Lines of a multi-line listing, unstuffed, up to the terminator.
    async fn read_listing(&mut self, stage: &'static str) -> Result<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line(stage).await?;
            match response::unstuff_line(&line) {
                None => return Ok(lines),
                Some(l) => lines.push(l.to_vec()),
            }
            if lines.len() > MAX_LISTING {
                return Err(Error::Protocol { stage, line: format!("listing longer than {MAX_LISTING} lines") });
            }
        }
    }

    /// One response line without its line ending, at most `MAX_LINE` bytes,
    /// under the timeout.
    async fn read_line(&mut self, stage: &'static str) -> Result<Vec<u8>> {
        let conn = &mut self.conn;
        timed(self.timeout, stage, async {
            let mut line = Vec::new();
            loop {
                let buf = conn.fill_buf().await.map_err(|source| Error::Io { stage, source })?;
                if buf.is_empty() {
                    return Err(Error::Io { stage, source: io::ErrorKind::UnexpectedEof.into() });
                }
                let (take, end) = match buf.iter().position(|b| *b == b'\n') {
                    Some(p) => (p + 1, true),
                    None => (buf.len(), false),
                };
                if line.len() + take > MAX_LINE {
                    line.extend_from_slice(&buf[..take.min(64)]);
                    return Err(Error::Protocol {
                        stage,
                        line: format!("line longer than {MAX_LINE} bytes: {}", response::excerpt(&line)),
                    });
                }
                line.extend_from_slice(&buf[..take]);
                conn.consume(take);
                if end {
                    let len = response::trim_eol(&line).len();
                    line.truncate(len);
                    return Ok(line);
                }
            }
        })
        .await
    }
}

fn protocol(stage: &'static str, e: response::Error) -> Error {
    let line = match e {
        response::Error::Status { line } | response::Error::Malformed { line, .. } => line,
    };
    Error::Protocol { stage, line }
}

/// Maps the reply to a login step: lock and temporary-failure codes are
/// server conditions, any other `-ERR` means the credentials were refused.
fn auth_result(reply: Reply) -> Result<()> {
    if reply.ok {
        return Ok(());
    }
    match reply.code() {
        Some(code) if code.eq_ignore_ascii_case("IN-USE") || code.to_ascii_uppercase().starts_with("SYS") => {
            Err(Error::Server { command: "login".into(), reply: reply.text })
        }
        _ => Err(Error::Auth { reply: reply.text }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::pop3::{Fault, Mailstore, Pop3Faults, Pop3Server, ServerSecurity};
    use crate::tls::{TestPki, client_config_from_pem};

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

    #[test]
    fn error_classes() {
        let cases: Vec<(Error, bool, bool)> = vec![
            (Error::Auth { reply: "[AUTH] no".into() }, true, false),
            (Error::Server { command: "login".into(), reply: "[IN-USE] locked".into() }, false, true),
            (Error::Server { command: "RETR 1".into(), reply: "[SYS/PERM] gone".into() }, false, false),
            (Error::Timeout { stage: "x" }, false, true),
            (Error::Io { stage: "x", source: io::ErrorKind::UnexpectedEof.into() }, false, true),
            (Error::Tls { host: "h".into(), source: io::ErrorKind::InvalidData.into() }, false, false),
            (Error::Tls { host: "h".into(), source: io::ErrorKind::ConnectionReset.into() }, false, true),
            (Error::TooLarge { limit: 1 }, false, false),
            (Error::NoStls, false, false),
            (Error::Protocol { stage: "x", line: "y".into() }, false, true),
        ];
        for (e, auth, temporary) in cases {
            assert_eq!((e.is_auth(), e.is_temporary()), (auth, temporary), "{e:?}");
        }
    }

    #[test]
    fn login_replies() {
        let err = |t: &str| auth_result(Reply { ok: false, text: t.into() });
        assert!(auth_result(Reply { ok: true, text: String::new() }).is_ok());
        assert!(matches!(err("invalid password"), Err(Error::Auth { .. })));
        assert!(matches!(err("[AUTH] invalid"), Err(Error::Auth { .. })));
        assert!(matches!(err("[IN-USE] locked"), Err(Error::Server { .. })));
        assert!(matches!(err("[SYS/TEMP] later"), Err(Error::Server { .. })));
    }
}
