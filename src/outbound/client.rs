//! A small SMTP submission client over tokio-rustls.
//!
//! Why not lettre: its `send_raw` takes the whole message as one slice (a
//! 100 MB PEC message would sit in memory) and its `send` aborts the whole
//! transaction on the first rejected RCPT, while PEC needs per-recipient
//! outcomes. This client streams the message from the spool, dot-stuffing on
//! the fly, and reports every RCPT reply. AUTH uses PLAIN with an initial
//! response (RFC 4954 §4), falling back to LOGIN; any 2xx counts as success,
//! as Postfix does (some servers answer 250 instead of 235).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{Secret, Security};
use crate::proto::Reply;
use crate::proto::codec::{Dialect, DotStuffer};

/// Which part of a delivery a failure affects (STYLE.md §2.3, Postfix smtp_trouble.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Connection, TLS, greeting, EHLO, AUTH: nothing was attempted for the message.
    Session,
    /// MAIL FROM or DATA: the whole message.
    Message,
    /// One RCPT.
    Recipient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Temporary,
    Permanent,
}

/// Where in a submission a failure happened, for classification (match on
/// the variant) and for people: `Display` is the text logs, notices and
/// stored attempt errors have always shown, so keep it stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    TlsHandshake,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    /// The reply to the final "." of DATA.
    EndOfData,
    Rset,
    Quit,
    /// Opening the message in the spool, before anything is sent.
    OpeningSpool,
    /// Reading the message from the spool while sending DATA.
    ReadingSpool,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
            Stage::OpeningSpool => "opening the spool",
            Stage::ReadingSpool => "reading the spool",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("TLS with {endpoint} failed: {source}")]
    Tls { endpoint: String, source: io::Error },
    #[error("{endpoint} does not offer STARTTLS; refusing to send in clear")]
    NoStartTls { endpoint: String },
    #[error("timeout during {stage} with {endpoint}")]
    Timeout { endpoint: String, stage: Stage },
    #[error("I/O error during {stage} with {endpoint}: {source}")]
    Io { endpoint: String, stage: Stage, source: io::Error },
    #[error("{endpoint} answered {command} with: {reply}")]
    Rejected { endpoint: String, command: Stage, reply: Reply },
    #[error("{endpoint} sent an unreadable reply during {stage}: {line:?}")]
    Protocol { endpoint: String, stage: Stage, line: String },
}

impl ClientError {
    /// `{Temporary|Permanent} x {Session|Message|Recipient}`: a 5xx is
    /// permanent unless the provider table says it means "later"
    /// (`replies`); I/O, TLS, timeouts and unparsable replies are temporary.
    pub fn classify(&self) -> (Severity, Scope) {
        match self {
            ClientError::Rejected { command, reply, .. } => {
                let severity = if reply.is_permanent() && super::replies::classify(reply).is_none() {
                    Severity::Permanent
                } else {
                    Severity::Temporary
                };
                let scope = match command {
                    Stage::MailFrom | Stage::Data | Stage::EndOfData => Scope::Message,
                    Stage::RcptTo => Scope::Recipient,
                    _ => Scope::Session,
                };
                (severity, scope)
            }
            ClientError::Connect { .. }
            | ClientError::Tls { .. }
            | ClientError::NoStartTls { .. }
            | ClientError::Timeout { .. }
            | ClientError::Io { .. }
            | ClientError::Protocol { .. } => (Severity::Temporary, Scope::Session),
        }
    }

    /// The remote reply, if the failure was one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Rejected { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub tls: Arc<ClientConfig>,
    pub timeout: Duration,
    pub credentials: Option<(String, Secret)>,
    /// Our name in EHLO.
    pub helo: String,
}

impl Endpoint {
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One outcome per RCPT, plus the reply to the end of DATA.
#[derive(Debug, Clone)]
pub struct TransactionResult {
    pub rcpts: Vec<(String, std::result::Result<Reply, ClientError>)>,
    /// `None` if no recipient was accepted (DATA not sent).
    pub data: Option<std::result::Result<Reply, ClientError>>,
}

impl Clone for ClientError {
    fn clone(&self) -> Self {
        // io::Error is not Clone; keep kind and text, which is all the evidence we log.
        let io_copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            ClientError::Connect { endpoint, source } => ClientError::Connect { endpoint: endpoint.clone(), source: io_copy(source) },
            ClientError::Tls { endpoint, source } => ClientError::Tls { endpoint: endpoint.clone(), source: io_copy(source) },
            ClientError::NoStartTls { endpoint } => ClientError::NoStartTls { endpoint: endpoint.clone() },
            ClientError::Timeout { endpoint, stage } => ClientError::Timeout { endpoint: endpoint.clone(), stage: *stage },
            ClientError::Io { endpoint, stage, source } => {
                ClientError::Io { endpoint: endpoint.clone(), stage: *stage, source: io_copy(source) }
            }
            ClientError::Rejected { endpoint, command, reply } => {
                ClientError::Rejected { endpoint: endpoint.clone(), command: *command, reply: reply.clone() }
            }
            ClientError::Protocol { endpoint, stage, line } => {
                ClientError::Protocol { endpoint: endpoint.clone(), stage: *stage, line: line.clone() }
            }
        }
    }
}

pub struct SmtpClient {
    io: BufReader<Box<dyn Io>>,
    endpoint: String,
    timeout: Duration,
    pipelining: bool,
    /// The connection is usable for another transaction.
    healthy: bool,
    tls_version: Option<&'static str>,
}

fn version_name(v: Option<rustls::ProtocolVersion>) -> Option<&'static str> {
    match v? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}

impl SmtpClient {
    /// Connects, negotiates TLS as configured, EHLOs and authenticates.
    pub async fn connect(ep: &Endpoint) -> Result<Self> {
        let label = ep.label();
        let tcp = tokio::time::timeout(ep.timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(|_| ClientError::Timeout { endpoint: label.clone(), stage: Stage::Connect })?
            .map_err(|source| ClientError::Connect { endpoint: label.clone(), source })?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(ep.host.clone()).map_err(|e| ClientError::Tls {
            endpoint: label.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let connector = TlsConnector::from(ep.tls.clone());

        let mut client = match ep.security {
            Security::Tls => {
                let tls = tokio::time::timeout(ep.timeout, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| ClientError::Timeout { endpoint: label.clone(), stage: Stage::TlsHandshake })?
                    .map_err(|source| ClientError::Tls { endpoint: label.clone(), source })?;
                let version = version_name(tls.get_ref().1.protocol_version());
                let mut c = Self::new(Box::new(tls), &label, ep.timeout);
                c.tls_version = version;
                c.expect(Stage::Greeting).await?;
                c
            }
            Security::Starttls | Security::None => {
                let mut c = Self::new(Box::new(tcp), &label, ep.timeout);
                c.expect(Stage::Greeting).await?;
                if ep.security == Security::Starttls {
                    let caps = c.ehlo(&ep.helo).await?;
                    if !caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                        return Err(ClientError::NoStartTls { endpoint: label });
                    }
                    c.command("STARTTLS", Stage::StartTls).await?;
                    // Anything the server sent before TLS is discarded with the buffer.
                    let plain = c.io.into_inner();
                    let tls = tokio::time::timeout(ep.timeout, connector.connect(server_name, plain))
                        .await
                        .map_err(|_| ClientError::Timeout { endpoint: label.clone(), stage: Stage::TlsHandshake })?
                        .map_err(|source| ClientError::Tls { endpoint: label.clone(), source })?;
                    let version = version_name(tls.get_ref().1.protocol_version());
                    let mut c = Self::new(Box::new(tls), &label, ep.timeout);
                    c.tls_version = version;
                    c
                } else {
                    c
                }
            }
        };
        let caps = client.ehlo(&ep.helo).await?;
        client.pipelining = caps.iter().any(|l| l.eq_ignore_ascii_case("PIPELINING"));
        if let Some((user, password)) = &ep.credentials {
            client.auth(&caps, user, password).await?;
        }
        client.healthy = true;
        Ok(client)
    }

    fn new(io: Box<dyn Io>, endpoint: &str, timeout: Duration) -> Self {
        Self { io: BufReader::new(io), endpoint: endpoint.to_owned(), timeout, pipelining: false, healthy: false, tls_version: None }
    }

    /// The negotiated TLS version, if the session is encrypted.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.tls_version
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>> {
        let reply = self.command(&format!("EHLO {helo}"), Stage::Ehlo).await?;
        Ok(reply.lines.iter().skip(1).map(|l| l.trim().to_owned()).collect())
    }

    async fn auth(&mut self, caps: &[String], user: &str, password: &Secret) -> Result<()> {
        let mechs: Vec<String> = caps
            .iter()
            .filter_map(|l| l.strip_prefix("AUTH ").or_else(|| l.strip_prefix("AUTH=")).or_else(|| l.strip_prefix("auth ")))
            .flat_map(|m| m.split_whitespace().map(str::to_ascii_uppercase))
            .collect();
        if mechs.iter().any(|m| m == "PLAIN") || !mechs.iter().any(|m| m == "LOGIN") {
            let token = B64.encode(format!("\0{user}\0{}", password.expose()));
            // Never log this line: it carries the password.
            self.write_secret_line(&format!("AUTH PLAIN {token}")).await?;
            let reply = self.read_reply(Stage::Auth).await?;
            return self.check_auth(reply);
        }
        self.write_secret_line("AUTH LOGIN").await?;
        let r = self.read_reply(Stage::Auth).await?;
        if r.code != 334 {
            return self.check_auth(r);
        }
        self.write_secret_line(&B64.encode(user)).await?;
        let r = self.read_reply(Stage::Auth).await?;
        if r.code != 334 {
            return self.check_auth(r);
        }
        self.write_secret_line(&B64.encode(password.expose())).await?;
        let r = self.read_reply(Stage::Auth).await?;
        self.check_auth(r)
    }

    fn check_auth(&self, reply: Reply) -> Result<()> {
        if (200..300).contains(&reply.code) {
            Ok(())
        } else {
            Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: Stage::Auth, reply })
        }
    }

    /// Sends one transaction, streaming `message` (CRLF lines, not yet stuffed).
    pub async fn send<R: AsyncRead + Unpin>(&mut self, mail_from: &str, rcpts: &[String], mut message: R) -> Result<TransactionResult> {
        self.healthy = false;
        let mut result = TransactionResult { rcpts: Vec::new(), data: None };
        if self.pipelining {
            // RFC 2920: MAIL and every RCPT in one write, replies read in order.
            let mut batch = format!("MAIL FROM:<{mail_from}>\r\n");
            for r in rcpts {
                batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
            }
            self.write_raw(batch.as_bytes(), Stage::MailFrom).await?;
            let mail = self.read_reply(Stage::MailFrom).await?;
            let mut replies = Vec::new();
            for _ in rcpts {
                replies.push(self.read_reply(Stage::RcptTo).await?);
            }
            if !mail.is_positive() {
                self.reset().await;
                return Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: Stage::MailFrom, reply: mail });
            }
            for (r, reply) in rcpts.iter().zip(replies) {
                result.rcpts.push((r.clone(), self.rcpt_outcome(reply)));
            }
        } else {
            self.command(&format!("MAIL FROM:<{mail_from}>"), Stage::MailFrom).await?;
            for r in rcpts {
                self.write_raw(format!("RCPT TO:<{r}>\r\n").as_bytes(), Stage::RcptTo).await?;
                let reply = self.read_reply(Stage::RcptTo).await?;
                result.rcpts.push((r.clone(), self.rcpt_outcome(reply)));
            }
        }
        if !result.rcpts.iter().any(|(_, r)| r.is_ok()) {
            self.reset().await;
            return Ok(result);
        }
        let data = self.command("DATA", Stage::Data).await;
        match data {
            Ok(r) if r.code == 354 => {}
            Ok(r) => {
                result.data = Some(Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: Stage::Data, reply: r }));
                self.reset().await;
                return Ok(result);
            }
            Err(e @ ClientError::Rejected { .. }) => {
                result.data = Some(Err(e));
                self.reset().await;
                return Ok(result);
            }
            Err(e) => return Err(e),
        }
        let mut stuffer = DotStuffer::new(Dialect::SmtpData);
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::with_capacity(70 * 1024);
        loop {
            let n = message.read(&mut buf).await.map_err(|source| ClientError::Io {
                endpoint: self.endpoint.clone(),
                stage: Stage::ReadingSpool,
                source,
            })?;
            if n == 0 {
                break;
            }
            out.clear();
            stuffer.encode(&buf[..n], &mut out);
            self.write_raw(&out, Stage::Data).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write_raw(&out, Stage::Data).await?;
        let reply = self.read_reply(Stage::EndOfData).await?;
        self.healthy = true;
        result.data = Some(if reply.is_positive() {
            Ok(reply)
        } else {
            Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: Stage::EndOfData, reply })
        });
        Ok(result)
    }

    /// Reads the greeting; anything but 220 is a refusal.
    async fn expect(&mut self, stage: Stage) -> Result<Reply> {
        let reply = self.read_reply(stage).await?;
        if reply.code != 220 {
            return Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: stage, reply });
        }
        Ok(reply)
    }

    fn rcpt_outcome(&self, reply: Reply) -> std::result::Result<Reply, ClientError> {
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: Stage::RcptTo, reply })
        }
    }

    /// RSET after a failed transaction; the connection stays usable only if it works.
    async fn reset(&mut self) {
        self.healthy = matches!(self.command("RSET", Stage::Rset).await, Ok(r) if r.is_positive());
    }

    pub async fn quit(mut self) {
        let _ = self.write_raw(b"QUIT\r\n", Stage::Quit).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.read_reply(Stage::Quit)).await;
        let _ = self.io.get_mut().shutdown().await;
    }

    /// Sends a command and reads its reply; a 4xx/5xx becomes `Rejected`.
    async fn command(&mut self, line: &str, name: Stage) -> Result<Reply> {
        self.write_raw(format!("{line}\r\n").as_bytes(), name).await?;
        let reply = self.read_reply(name).await?;
        if reply.code >= 400 {
            return Err(ClientError::Rejected { endpoint: self.endpoint.clone(), command: name, reply });
        }
        Ok(reply)
    }

    async fn write_secret_line(&mut self, line: &str) -> Result<()> {
        self.write_raw(format!("{line}\r\n").as_bytes(), Stage::Auth).await
    }

    async fn write_raw(&mut self, bytes: &[u8], stage: Stage) -> Result<()> {
        let endpoint = &self.endpoint;
        let io = self.io.get_mut();
        let fut = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ClientError::Io { endpoint: endpoint.clone(), stage, source }),
            Err(_) => Err(ClientError::Timeout { endpoint: endpoint.clone(), stage }),
        }
    }

    /// Reads a (multi-line) reply.
    async fn read_reply(&mut self, stage: Stage) -> Result<Reply> {
        let mut lines = Vec::new();
        let mut code = 0u16;
        let mut status: Option<String> = None;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, read_limited_line(&mut self.io, &mut line)).await;
            match read {
                Err(_) => return Err(ClientError::Timeout { endpoint: self.endpoint.clone(), stage }),
                Ok(Err(source)) => return Err(ClientError::Io { endpoint: self.endpoint.clone(), stage, source }),
                Ok(Ok(0)) => {
                    return Err(ClientError::Io {
                        endpoint: self.endpoint.clone(),
                        stage,
                        source: io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
                    });
                }
                Ok(Ok(_)) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let bad = || ClientError::Protocol { endpoint: self.endpoint.clone(), stage, line: line.chars().take(200).collect() };
            if line.len() < 3 || !line.is_char_boundary(3) {
                return Err(bad());
            }
            let c: u16 = line[..3].parse().map_err(|_| bad())?;
            if !(200..600).contains(&c) && c != 334 && !(100..200).contains(&c) {
                return Err(bad());
            }
            if code != 0 && c != code {
                return Err(bad());
            }
            code = c;
            let sep = line.as_bytes().get(3).copied();
            let text = line.get(4..).unwrap_or("");
            let (st, text) = split_status(text);
            if status.is_none() {
                status = st.map(str::to_owned);
            }
            lines.push(text.to_owned());
            match sep {
                Some(b'-') => continue,
                None | Some(b' ') => break,
                _ => return Err(bad()),
            }
        }
        Ok(Reply::parsed(code, status, lines))
    }
}

/// Reads one reply line, at most 64 KiB (a hostile server cannot make us buffer more).
async fn read_limited_line<R: AsyncRead + Unpin>(io: &mut BufReader<R>, line: &mut String) -> io::Result<usize> {
    let mut bytes = Vec::new();
    let n = (&mut *io).take(64 * 1024).read_until(b'\n', &mut bytes).await?;
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

/// Splits a leading enhanced status code (`2.0.0 `) off a reply text.
fn split_status(text: &str) -> (Option<&str>, &str) {
    let mut parts = text.splitn(2, ' ');
    let first = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    let mut it = first.split('.');
    let ok = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()));
    let is_status = matches!(first.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        && ok(it.next())
        && ok(it.next())
        && ok(it.next())
        && it.next().is_none();
    if is_status { (Some(first), rest) } else { (None, text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_split() {
        assert_eq!(split_status("2.0.0 OK"), (Some("2.0.0"), "OK"));
        assert_eq!(split_status("5.7.1 no way"), (Some("5.7.1"), "no way"));
        assert_eq!(split_status("smtp.example ESMTP"), (None, "smtp.example ESMTP"));
        assert_eq!(split_status("2.0"), (None, "2.0"));
    }

    #[test]
    fn stage_texts_stay_as_logged() {
        // Logs, admin notices and stored attempt errors have always carried these words.
        let texts = [
            (Stage::Connect, "connect"),
            (Stage::TlsHandshake, "TLS handshake"),
            (Stage::Greeting, "greeting"),
            (Stage::Ehlo, "EHLO"),
            (Stage::StartTls, "STARTTLS"),
            (Stage::Auth, "AUTH"),
            (Stage::MailFrom, "MAIL FROM"),
            (Stage::RcptTo, "RCPT TO"),
            (Stage::Data, "DATA"),
            (Stage::EndOfData, "end of data"),
            (Stage::Rset, "RSET"),
            (Stage::Quit, "QUIT"),
            (Stage::OpeningSpool, "opening the spool"),
            (Stage::ReadingSpool, "reading the spool"),
        ];
        for (stage, text) in texts {
            assert_eq!(stage.to_string(), text);
        }
        let timeout = ClientError::Timeout { endpoint: "mx:465".into(), stage: Stage::TlsHandshake };
        assert_eq!(timeout.to_string(), "timeout during TLS handshake with mx:465");
        let rejected = ClientError::Rejected { endpoint: "mx:465".into(), command: Stage::EndOfData, reply: Reply::new(554, None, "no") };
        assert!(rejected.to_string().starts_with("mx:465 answered end of data with: "), "{rejected}");
    }

    #[test]
    fn classification_table() {
        let rej = |command, code| ClientError::Rejected { endpoint: "e".into(), command, reply: Reply::new(code, None, "x") };
        let rej_text =
            |command, code, text: &str| ClientError::Rejected { endpoint: "e".into(), command, reply: Reply::new(code, None, text) };
        let cases = [
            (rej(Stage::RcptTo, 550), (Severity::Permanent, Scope::Recipient)),
            (rej(Stage::RcptTo, 450), (Severity::Temporary, Scope::Recipient)),
            (rej(Stage::MailFrom, 553), (Severity::Permanent, Scope::Message)),
            (rej(Stage::EndOfData, 554), (Severity::Permanent, Scope::Message)),
            (rej(Stage::EndOfData, 451), (Severity::Temporary, Scope::Message)),
            (
                rej_text(Stage::MailFrom, 550, "blocked \"Class Of Service\" - Too much traffic from this sender"),
                (Severity::Temporary, Scope::Message),
            ),
            (rej_text(Stage::MailFrom, 553, "Sender address rejected: not owned by user x"), (Severity::Temporary, Scope::Message)),
            (rej_text(Stage::MailFrom, 553, "Sender address rejected"), (Severity::Permanent, Scope::Message)),
            (rej(Stage::Auth, 535), (Severity::Permanent, Scope::Session)),
            (rej(Stage::Greeting, 421), (Severity::Temporary, Scope::Session)),
            (ClientError::Timeout { endpoint: "e".into(), stage: Stage::Data }, (Severity::Temporary, Scope::Session)),
            (ClientError::NoStartTls { endpoint: "e".into() }, (Severity::Temporary, Scope::Session)),
        ];
        for (err, want) in cases {
            assert_eq!(err.classify(), want, "{err}");
        }
    }
}
