//! The IMAP session: connect (TLS or STARTTLS), LOGIN, SELECT, listing,
//! `BODY[]` streamed to a writer, flags, expunge, move, IDLE.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::response::{self, MAX_LINE, Status};
use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (imaps, port 993).
    Tls,
    /// Plain connect, then STARTTLS before anything else is sent.
    StartTls,
}

#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub tls: Arc<rustls::ClientConfig>,
    /// Bound on connecting, the TLS handshake, and every read or write.
    pub timeout: Duration,
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
    #[error("login refused: {reply}")]
    Auth { reply: String },
    #[error("server refused {command}: {reply}")]
    Server { command: &'static str, reply: String },
    #[error("protocol error during {stage}: {line}")]
    Protocol { stage: &'static str, line: String },
    #[error("message larger than the limit of {limit} bytes (the server announced {announced})")]
    TooLarge { limit: u64, announced: u64 },
    #[error("server does not offer STARTTLS")]
    NoStartTls,
    #[error("the server disables LOGIN on this connection (LOGINDISABLED)")]
    LoginDisabled,
    #[error("invalid {what}")]
    Input { what: &'static str },
    #[error("connection closed by the server")]
    Closed,
}

pub type Result<T> = std::result::Result<T, Error>;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

const BUFFER: usize = 64 * 1024;
/// Untagged lines one command may produce before the server counts as hostile.
const MAX_UNTAGGED: usize = 1_000_000;
/// Literals outside `BODY[]` (e.g. a folder name) are read into memory up to this.
const MAX_SMALL_LITERAL: u64 = 64 * 1024;

/// The folder just selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub uidvalidity: u32,
    pub exists: u32,
}

/// One message in the selected folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    pub size: Option<u64>,
    pub seen: bool,
    pub deleted: bool,
}

pub struct Client {
    conn: BufReader<Box<dyn Stream>>,
    timeout: Duration,
    caps: Vec<String>,
    next_tag: u32,
    /// An untagged `EXISTS` came with the reply to some command since the
    /// last SELECT or IDLE: new mail the server will not announce again
    /// (Dovecot reports it with whatever reply comes next, e.g. the commit's
    /// STORE), so the next [`idle`](Client::idle) returns at once.
    grew: bool,
}

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
    /// Connects, reads the greeting, upgrades with STARTTLS if asked, and
    /// learns the capabilities (again after TLS).
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
        let mut c = Client { conn: BufReader::with_capacity(BUFFER, io), timeout: ep.timeout, caps: Vec::new(), next_tag: 1, grew: false };
        let greeting = c.read_line("greeting").await?;
        if !greeting.starts_with("* OK") {
            return Err(Error::Server { command: "greeting", reply: response::excerpt(greeting.as_bytes()) });
        }
        if ep.security == Security::StartTls {
            c.refresh_capabilities().await?;
            if !c.has("STARTTLS") {
                return Err(Error::NoStartTls);
            }
            c.run("STARTTLS", "STARTTLS").await?;
            // Bytes after the OK arrived in plaintext (CVE-2011-0411 class): refuse them.
            if !c.conn.buffer().is_empty() {
                return Err(Error::Protocol { stage: "STARTTLS", line: "data after the STARTTLS reply, before TLS".into() });
            }
            let plain = std::mem::replace(&mut c.conn, BufReader::new(Box::new(tokio::io::empty()) as Box<dyn Stream>));
            let tls = tls_handshake(ep, plain.into_inner()).await?;
            c.conn = BufReader::with_capacity(BUFFER, tls);
        }
        c.refresh_capabilities().await?;
        Ok(c)
    }

    /// Capabilities, upper-cased (`IDLE`, `UIDPLUS`, `MOVE`).
    pub fn capabilities(&self) -> &[String] {
        &self.caps
    }

    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    async fn refresh_capabilities(&mut self) -> Result<()> {
        let lines = self.run("CAPABILITY", "CAPABILITY").await?;
        self.caps = lines.iter().find_map(|l| response::capabilities(l)).unwrap_or_default();
        Ok(())
    }

    /// LOGIN; the password is never logged nor put in an error, nor sent
    /// where the server said it takes no LOGIN (RFC 3501 6.2.3: LOGINDISABLED,
    /// as servers announce before TLS; after STARTTLS the capabilities were learnt anew).
    pub async fn login(&mut self, user: &str, password: &Secret) -> Result<()> {
        if self.has("LOGINDISABLED") {
            return Err(Error::LoginDisabled);
        }
        let user = response::quoted(user).ok_or(Error::Input { what: "user name" })?;
        let pass = response::quoted(password.expose()).ok_or(Error::Input { what: "password" })?;
        let tag = self.tag();
        self.write(&format!("{tag} LOGIN {user} {pass}\r\n"), "LOGIN").await?;
        match self.collect(&tag, "LOGIN").await? {
            (Status::Ok, _, _) => {}
            (_, text, _) => return Err(Error::Auth { reply: text }),
        }
        // Servers may announce more after login.
        self.refresh_capabilities().await
    }

    pub async fn select(&mut self, folder: &str) -> Result<Selected> {
        let name = folder_arg(folder)?;
        let lines = self.run(&format!("SELECT {name}"), "SELECT").await?;
        // The EXISTS of the SELECT reply is the count listed next, not new mail.
        self.grew = false;
        let uidvalidity = lines.iter().find_map(|l| response::code_number(l, "UIDVALIDITY"));
        let exists = lines.iter().find_map(|l| response::numbered(l, "EXISTS"));
        match (uidvalidity, exists) {
            (Some(uidvalidity), Some(exists)) => Ok(Selected { uidvalidity, exists }),
            _ => Err(Error::Protocol { stage: "SELECT", line: "no UIDVALIDITY or EXISTS in the reply".into() }),
        }
    }

    /// UID, size and flags of every message in the selected folder, by UID.
    pub async fn list(&mut self, selected: &Selected) -> Result<Vec<Entry>> {
        if selected.exists == 0 {
            return Ok(Vec::new());
        }
        let lines = self.run("UID FETCH 1:* (UID RFC822.SIZE FLAGS)", "UID FETCH list").await?;
        let mut out: Vec<Entry> = lines
            .iter()
            .filter_map(|l| response::fetch_attrs(l))
            .filter_map(|a| {
                let flags = a.flags.unwrap_or_default();
                Some(Entry {
                    uid: a.uid?,
                    size: a.size,
                    seen: flags.iter().any(|f| f == "\\SEEN"),
                    deleted: flags.iter().any(|f| f == "\\DELETED"),
                })
            })
            .collect();
        out.sort_by_key(|e| e.uid);
        out.dedup_by_key(|e| e.uid);
        Ok(out)
    }

    /// Streams message `uid`'s `BODY[]` literal into `out` as it arrives
    /// (`BODY.PEEK`: no `\Seen` yet): at most `limit` bytes, all within `deadline`.
    pub async fn fetch_body<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        uid: u32,
        out: &mut W,
        limit: u64,
        deadline: Duration,
    ) -> Result<u64> {
        let end = Instant::now() + deadline;
        match tokio::time::timeout_at(end, self.fetch_body_inner(uid, out, limit)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { stage: "FETCH deadline" }),
        }
    }

    async fn fetch_body_inner<W: AsyncWrite + Unpin + ?Sized>(&mut self, uid: u32, out: &mut W, limit: u64) -> Result<u64> {
        let tag = self.tag();
        self.write(&format!("{tag} UID FETCH {uid} (BODY.PEEK[])\r\n"), "UID FETCH").await?;
        let mut got = None;
        for _ in 0..MAX_UNTAGGED {
            let line = self.read_line("UID FETCH").await?;
            if let Some((status, text)) = response::tagged(&line, &tag) {
                return match (status, got) {
                    (Status::Ok, Some(n)) => Ok(n),
                    (Status::Ok, None) => Err(Error::Protocol { stage: "UID FETCH", line: format!("no BODY[] for UID {uid}") }),
                    _ => Err(Error::Server { command: "UID FETCH", reply: text.to_owned() }),
                };
            }
            let Some(len) = response::literal_len(&line) else { continue };
            let is_body = response::numbered(&line, "FETCH").is_some() && line.to_ascii_uppercase().contains("BODY[]");
            if !is_body || got.is_some() {
                self.skip_literal(len, "UID FETCH").await?;
                self.read_line("UID FETCH").await?;
                continue;
            }
            if len > limit {
                return Err(Error::TooLarge { limit, announced: len });
            }
            let mut body = (&mut self.conn).take(len);
            let copied = tokio::io::copy_buf(&mut body, out).await.map_err(|source| Error::Io { stage: "UID FETCH literal", source })?;
            if copied < len {
                return Err(Error::Closed);
            }
            // The rest of the FETCH response (`)` or more attributes).
            let rest = self.read_line("UID FETCH").await?;
            if response::literal_len(&rest).is_some() {
                return Err(Error::Protocol { stage: "UID FETCH", line: "a second literal after BODY[]".into() });
            }
            got = Some(copied);
        }
        Err(Error::Protocol { stage: "UID FETCH", line: format!("more than {MAX_UNTAGGED} untagged lines") })
    }

    /// `UID STORE uids +FLAGS.SILENT (flags)`.
    pub async fn add_flags(&mut self, uids: &[u32], flags: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.run(&format!("UID STORE {} +FLAGS.SILENT ({flags})", uid_set(uids)), "UID STORE").await.map(drop)
    }

    pub async fn remove_flags(&mut self, uids: &[u32], flags: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.run(&format!("UID STORE {} -FLAGS.SILENT ({flags})", uid_set(uids)), "UID STORE").await.map(drop)
    }

    /// The UIDs flagged `\Deleted` in the selected folder.
    pub async fn search_deleted(&mut self) -> Result<Vec<u32>> {
        let lines = self.run("UID SEARCH DELETED", "UID SEARCH").await?;
        Ok(lines.iter().filter_map(|l| response::search(l)).flatten().collect())
    }

    /// `UID EXPUNGE` (RFC 4315, needs UIDPLUS): only these messages.
    pub async fn uid_expunge(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.run(&format!("UID EXPUNGE {}", uid_set(uids)), "UID EXPUNGE").await.map(drop)
    }

    /// Plain EXPUNGE: every `\Deleted` message of the folder.
    pub async fn expunge(&mut self) -> Result<()> {
        self.run("EXPUNGE", "EXPUNGE").await.map(drop)
    }

    /// Moves messages to `folder`: MOVE (RFC 6851) if offered, else COPY,
    /// `\Deleted`, and UID EXPUNGE when UIDPLUS is offered (without it the
    /// copies stay flagged `\Deleted` in the source until an expunge).
    pub async fn uid_move(&mut self, uids: &[u32], folder: &str) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let name = folder_arg(folder)?;
        let set = uid_set(uids);
        if self.has("MOVE") {
            return self.run(&format!("UID MOVE {set} {name}"), "UID MOVE").await.map(drop);
        }
        self.run(&format!("UID COPY {set} {name}"), "UID COPY").await?;
        self.add_flags(uids, "\\Deleted").await?;
        if self.has("UIDPLUS") { self.uid_expunge(uids).await } else { Ok(()) }
    }

    /// IDLE (RFC 2177) for at most `max`: `true` as soon as the server
    /// announces new mail (`EXISTS`/`RECENT`), `false` when `max` passed.
    /// Ends with DONE either way, leaving the session ready for commands.
    pub async fn idle(&mut self, max: Duration) -> Result<bool> {
        if std::mem::take(&mut self.grew) {
            return Ok(true);
        }
        let tag = self.tag();
        self.write(&format!("{tag} IDLE\r\n"), "IDLE").await?;
        loop {
            let line = self.read_line("IDLE").await?;
            if line.starts_with('+') {
                break;
            }
            if let Some((_, text)) = response::tagged(&line, &tag) {
                return Err(Error::Server { command: "IDLE", reply: text.to_owned() });
            }
        }
        let end = Instant::now() + max;
        let mut woke = false;
        for _ in 0..MAX_UNTAGGED {
            // `fill_buf` consumes nothing, so giving up on it at `end` loses no data.
            match tokio::time::timeout_at(end, self.conn.fill_buf()).await {
                Err(_) => break,
                Ok(Err(source)) => return Err(Error::Io { stage: "IDLE", source }),
                Ok(Ok([])) => return Err(Error::Closed),
                Ok(Ok(_)) => {}
            }
            let line = self.read_line("IDLE").await?;
            if line.starts_with("* BYE") {
                return Err(Error::Closed);
            }
            if response::numbered(&line, "EXISTS").is_some() || response::numbered(&line, "RECENT").is_some() {
                woke = true;
                break;
            }
        }
        self.write("DONE\r\n", "IDLE DONE").await?;
        let reply = self.collect(&tag, "IDLE").await?;
        // An EXISTS after the wake-up (or with DONE's reply) is reported now, with `true`.
        let woke = std::mem::take(&mut self.grew) || woke;
        match reply {
            (Status::Ok, _, _) => Ok(woke),
            (_, text, _) => Err(Error::Server { command: "IDLE", reply: text }),
        }
    }

    pub async fn noop(&mut self) -> Result<()> {
        self.run("NOOP", "NOOP").await.map(drop)
    }

    pub async fn logout(mut self) -> Result<()> {
        self.run("LOGOUT", "LOGOUT").await.map(drop)
    }

    fn tag(&mut self) -> String {
        let t = format!("p{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Sends `cmd`, returns the untagged lines if the reply is OK.
    async fn run(&mut self, cmd: &str, stage: &'static str) -> Result<Vec<String>> {
        let tag = self.tag();
        self.write(&format!("{tag} {cmd}\r\n"), stage).await?;
        match self.collect(&tag, stage).await? {
            (Status::Ok, _, lines) => Ok(lines),
            (_, text, _) => Err(Error::Server { command: stage, reply: text }),
        }
    }

    /// Reads up to the tagged reply: (status, text, untagged lines).
    async fn collect(&mut self, tag: &str, stage: &'static str) -> Result<(Status, String, Vec<String>)> {
        let mut lines = Vec::new();
        for _ in 0..MAX_UNTAGGED {
            let mut line = self.read_line(stage).await?;
            if let Some((status, text)) = response::tagged(&line, tag) {
                return Ok((status, text.to_owned(), lines));
            }
            if line.starts_with("* BYE") && stage != "LOGOUT" {
                return Err(Error::Closed);
            }
            // A small literal inside an untagged line (e.g. a folder name) is kept inline.
            while let Some(len) = response::literal_len(&line) {
                if len > MAX_SMALL_LITERAL {
                    return Err(Error::Protocol { stage, line: format!("literal of {len} bytes in a {stage} reply") });
                }
                let mut buf = vec![0; len as usize];
                timed(self.timeout, stage, async {
                    self.conn.read_exact(&mut buf).await.map(drop).map_err(|source| Error::Io { stage, source })
                })
                .await?;
                line.push_str(&String::from_utf8_lossy(&buf));
                let more = self.read_line(stage).await?;
                line.push_str(&more);
                if line.len() > MAX_LINE * 2 {
                    return Err(Error::Protocol { stage, line: "reply too long".into() });
                }
            }
            lines.push(line);
        }
        Err(Error::Protocol { stage, line: format!("more than {MAX_UNTAGGED} untagged lines") })
    }

    async fn skip_literal(&mut self, len: u64, stage: &'static str) -> Result<()> {
        if len > MAX_SMALL_LITERAL {
            return Err(Error::Protocol { stage, line: format!("unexpected literal of {len} bytes") });
        }
        let mut sink = tokio::io::sink();
        let mut take = (&mut self.conn).take(len);
        timed(self.timeout, stage, async { tokio::io::copy_buf(&mut take, &mut sink).await.map_err(|source| Error::Io { stage, source }) })
            .await
            .map(drop)
    }

    async fn write(&mut self, line: &str, stage: &'static str) -> Result<()> {
        timed(self.timeout, stage, async {
            let io = self.conn.get_mut();
            io.write_all(line.as_bytes()).await.map_err(|source| Error::Io { stage, source })?;
            io.flush().await.map_err(|source| Error::Io { stage, source })
        })
        .await
    }

    /// One line without CRLF, at most `MAX_LINE` bytes, under the timeout.
    async fn read_line(&mut self, stage: &'static str) -> Result<String> {
        let line = self.read_raw_line(stage).await?;
        if response::numbered(&line, "EXISTS").is_some() {
            self.grew = true;
        }
        Ok(line)
    }

    async fn read_raw_line(&mut self, stage: &'static str) -> Result<String> {
        let timeout = self.timeout;
        let conn = &mut self.conn;
        timed(timeout, stage, async move {
            let mut line = Vec::new();
            loop {
                let buf = conn.fill_buf().await.map_err(|source| Error::Io { stage, source })?;
                if buf.is_empty() {
                    return Err(Error::Closed);
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if line.len() + take > MAX_LINE {
                    return Err(Error::Protocol {
                        stage,
                        line: format!("line longer than {MAX_LINE} bytes: {}", response::excerpt(&line)),
                    });
                }
                line.extend_from_slice(&buf[..take]);
                conn.consume(take);
                if done {
                    break;
                }
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            Ok(String::from_utf8_lossy(&line).into_owned())
        })
        .await
    }
}

fn folder_arg(folder: &str) -> Result<String> {
    if !super::valid_folder(folder) {
        return Err(Error::Input { what: "folder name" });
    }
    response::quoted(folder).ok_or(Error::Input { what: "folder name" })
}

/// `3,5,9` (a UID set; ranges are not needed for the counts pecgate sends).
fn uid_set(uids: &[u32]) -> String {
    uids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
