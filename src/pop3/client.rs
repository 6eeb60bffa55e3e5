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

use super::response::{self, Capabilities, MAX_LINE, Reply};
use crate::config::Secret;
use crate::proto::codec::{self, Dialect, DotDecoder};

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
        let mut decoder = DotDecoder::new(Dialect::Pop3);
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
            match codec::unstuff_line(&line) {
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
mod tests;
