//! A small simulated IMAPS server (the RFC 3501 subset pecgate uses, with
//! IDLE, UIDPLUS and MOVE each switchable): the mailbox side of the PEC
//! provider simulator next to POP3, on the same [`Mailstore`], so receipts
//! the provider generates appear in INBOX. Misbehaves on demand ([`ImapFaults`]).
//! Implicit TLS by default; [`ImapServer::start_sibling`] adds one on the
//! same store speaking STARTTLS (or, to test that clients refuse it, never TLS).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::pop3::{ImapMessage, Mailstore, folder_key};

const IDLE_LIMIT: Duration = Duration::from_secs(120);
const MAX_COMMAND: usize = 8 * 1024;

/// What the server offers (all on by default).
#[derive(Debug)]
pub struct ImapOptions {
    pub idle: AtomicBool,
    pub uidplus: AtomicBool,
    pub moves: AtomicBool,
}

impl Default for ImapOptions {
    fn default() -> Self {
        Self { idle: AtomicBool::new(true), uidplus: AtomicBool::new(true), moves: AtomicBool::new(true) }
    }
}

/// How the server protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// TLS from the first byte (imaps).
    ImplicitTls,
    /// Plain until STARTTLS (RFC 3501 6.2.1): before TLS, CAPABILITY offers
    /// STARTTLS and LOGINDISABLED and no extension (IDLE, UIDPLUS, MOVE
    /// only after TLS), and LOGIN is refused.
    StartTls,
    /// Never TLS and no STARTTLS, LOGIN accepted in clear: only to check
    /// that a client refuses such a server.
    Plaintext,
}

/// A misbehaviour, armed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImapFault {
    /// Announce a `BODY[]` literal of this many bytes (whatever the message's size).
    HugeLiteral(u64),
    /// Close the connection after this many bytes of the next `BODY[]` literal.
    DropMidLiteral(usize),
    /// Read commands after the greeting but never answer.
    NeverAnswer,
    /// Answer the next FETCH with endless untagged lines.
    EndlessUntagged,
    /// Close the connection, without a word, when the folder next changes during IDLE.
    CloseInIdle,
    /// Refuse the next COPY or MOVE with `NO [OVERQUOTA]`.
    OverQuota,
    /// Answer the next STARTTLS with `NO` (it stays offered in CAPABILITY).
    RefuseStartTls,
    /// Send an untagged line in clear right after the next STARTTLS's OK, in
    /// the same write (a man in the middle's injection, CVE-2011-0411 class).
    InjectAfterStartTls,
    /// Deliver this message to the user's INBOX while the next UID STORE
    /// runs: new mail arriving during a poll's commit, announced (like
    /// Dovecot does) with the STORE's reply, and never again in IDLE.
    MailDuringStore(Vec<u8>),
}

#[derive(Debug, Default)]
pub struct ImapFaults {
    armed: Mutex<Vec<ImapFault>>,
}

impl ImapFaults {
    pub fn arm(&self, f: ImapFault) {
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    }

    fn take(&self, which: impl Fn(&ImapFault) -> bool) -> Option<ImapFault> {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let i = armed.iter().position(which)?;
        Some(armed.remove(i))
    }
}

pub struct ImapServer {
    pub addr: SocketAddr,
    pub options: Arc<ImapOptions>,
    pub faults: Arc<ImapFaults>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    store: Arc<Mailstore>,
    options: Arc<ImapOptions>,
    faults: Arc<ImapFaults>,
    tls: tokio_rustls::TlsAcceptor,
    security: ImapSecurity,
    /// The verb of every command received before TLS (never its arguments).
    cleartext: Mutex<Vec<String>>,
}

impl ImapServer {
    /// Implicit TLS (imaps) on `bind` with the given certificate.
    pub async fn start(bind: &str, store: Arc<Mailstore>, tls: Arc<ServerConfig>) -> io::Result<Self> {
        Self::start_with(bind, store, tokio_rustls::TlsAcceptor::from(tls), ImapSecurity::ImplicitTls).await
    }

    /// Another server on `bind` with this one's mailstore and certificate
    /// but `security`, and options and faults of its own.
    pub async fn start_sibling(&self, bind: &str, security: ImapSecurity) -> io::Result<Self> {
        Self::start_with(bind, self.shared.store.clone(), self.shared.tls.clone(), security).await
    }

    async fn start_with(bind: &str, store: Arc<Mailstore>, tls: tokio_rustls::TlsAcceptor, security: ImapSecurity) -> io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let options = Arc::new(ImapOptions::default());
        let faults = Arc::new(ImapFaults::default());
        let shared =
            Arc::new(Shared { store, options: options.clone(), faults: faults.clone(), tls, security, cleartext: Mutex::new(Vec::new()) });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            loop {
                while sessions.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let shared = accepting.clone();
                sessions.spawn(async move {
                    if let Err(e) = connection(tcp, shared).await {
                        tracing::debug!(error = %e, "IMAP simulator session ended");
                    }
                });
            }
        });
        Ok(Self { addr, options, faults, shared, task })
    }

    /// The verbs (upper case, e.g. `CAPABILITY`, `STARTTLS`, `LOGIN`) of the
    /// commands this server received in clear, before TLS, in order.
    pub fn cleartext_commands(&self) -> Vec<String> {
        self.shared.cleartext.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut session = Session { shared: shared.clone(), tls: false, user: None, selected: None, known: 0 };
    if shared.security == ImapSecurity::ImplicitTls {
        let tls =
            tokio::time::timeout(IDLE_LIMIT, shared.tls.accept(tcp)).await.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        session.tls = true;
        return session.run(&mut BufReader::new(tls), true).await.map(drop);
    }
    let mut plain = BufReader::new(tcp);
    if session.run(&mut plain, true).await? == Outcome::StartTls {
        // Whatever the client sent after STARTTLS in clear is dropped with the buffer.
        let tls = tokio::time::timeout(IDLE_LIMIT, shared.tls.accept(plain.into_inner()))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        session.tls = true;
        session.run(&mut BufReader::new(tls), false).await?;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Closed,
    StartTls,
}

struct Session {
    shared: Arc<Shared>,
    /// TLS is on (implicit, or after STARTTLS).
    tls: bool,
    user: Option<String>,
    /// The selected folder's mailbox key.
    selected: Option<String>,
    /// Messages the client was told of (EXISTS); more are announced in IDLE.
    known: usize,
}

/// Quoted strings and atoms of a command line.
fn args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.extend(chars.next()),
                    '"' => break,
                    c => v.push(c),
                }
            }
            out.push(v);
        } else if c == '(' {
            let mut v = String::new();
            for c in chars.by_ref() {
                v.push(c);
                if c == ')' {
                    break;
                }
            }
            out.push(v);
        } else {
            let mut v = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                v.push(c);
                chars.next();
            }
            out.push(v);
        }
    }
    out
}

/// `3,5,7:9` or `1:*` against the UIDs present.
fn uid_set(set: &str, present: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let num = |s: &str| if s == "*" { present.iter().copied().max().unwrap_or(0) } else { s.parse().unwrap_or(0) };
        let (lo, hi) = (num(a).min(num(b)), num(a).max(num(b)));
        let hits: Vec<u32> = present.iter().copied().filter(|u| *u >= lo && *u <= hi && !out.contains(u)).collect();
        out.extend(hits);
    }
    out
}

impl Session {
    /// Commands until LOGOUT or EOF, or until a STARTTLS was accepted
    /// (the caller then does the handshake and runs the session on, ungreeted).
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut BufReader<S>, greet: bool) -> io::Result<Outcome> {
        let never = greet && self.shared.faults.take(|f| *f == ImapFault::NeverAnswer).is_some();
        if greet {
            send(io, "* OK [CAPABILITY IMAP4rev1] pecgate IMAP simulator ready").await?;
        }
        let clear = |s: &Self| s.shared.security == ImapSecurity::StartTls && !s.tls;
        loop {
            let Some(line) = read_line(io).await? else { return Ok(Outcome::Closed) };
            if never {
                continue;
            }
            let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let (verb, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut verb = verb.to_ascii_uppercase();
            if !self.tls {
                self.shared.cleartext.lock().unwrap_or_else(|p| p.into_inner()).push(verb.clone());
            }
            let mut rest = rest.to_owned();
            if verb == "UID" {
                let (v, r) = rest.split_once(' ').unwrap_or((rest.as_str(), ""));
                verb = format!("UID {}", v.to_ascii_uppercase());
                rest = r.to_owned();
            }
            let a = args(&rest);
            let before = self.snapshot().1.len();
            let reply = match verb.as_str() {
                "CAPABILITY" => {
                    let o = &self.shared.options;
                    let mut caps = String::from("* CAPABILITY IMAP4rev1");
                    if clear(self) {
                        // As many servers do: the extensions only after TLS.
                        caps.push_str(" STARTTLS LOGINDISABLED");
                    } else {
                        for (on, name) in [(&o.idle, " IDLE"), (&o.uidplus, " UIDPLUS"), (&o.moves, " MOVE")] {
                            if on.load(Ordering::Relaxed) {
                                caps.push_str(name);
                            }
                        }
                    }
                    send(io, &caps).await?;
                    Ok(())
                }
                "NOOP" => Ok(()),
                "LOGOUT" => {
                    send(io, "* BYE logging out").await?;
                    send(io, &format!("{tag} OK LOGOUT completed")).await?;
                    return Ok(Outcome::Closed);
                }
                "STARTTLS" if !clear(self) => Err("BAD STARTTLS not available"),
                "STARTTLS" if self.shared.faults.take(|f| *f == ImapFault::RefuseStartTls).is_some() => {
                    Err("NO [UNAVAILABLE] TLS not available right now")
                }
                "STARTTLS" => {
                    let mut reply = format!("{tag} OK Begin TLS negotiation now\r\n");
                    if self.shared.faults.take(|f| *f == ImapFault::InjectAfterStartTls).is_some() {
                        reply.push_str("* OK [CAPABILITY IMAP4rev1 IDLE] injected in clear\r\n");
                    }
                    io.write_all(reply.as_bytes()).await?;
                    io.flush().await?;
                    return Ok(Outcome::StartTls);
                }
                "LOGIN" if clear(self) => Err("NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS"),
                "LOGIN" if a.len() == 2 && self.shared.store.login_ok(&a[0], &a[1]) => {
                    self.user = Some(a[0].clone());
                    Ok(())
                }
                "LOGIN" => Err("NO [AUTHENTICATIONFAILED] invalid credentials"),
                _ if self.user.is_none() => Err("BAD log in first"),
                "SELECT" if a.len() == 1 => self.select(io, &a[0]).await?,
                "IDLE" if self.shared.options.idle.load(Ordering::Relaxed) && self.selected.is_some() => self.idle(io).await?,
                _ if self.selected.is_none() => Err("BAD select a folder first"),
                "UID FETCH" if a.len() == 2 => match self.fetch(io, &a[0], &a[1]).await? {
                    Some(r) => r,
                    None => return Ok(Outcome::Closed),
                },
                "UID STORE" if a.len() == 3 => {
                    let uids = self.uids(&a[0]);
                    let add = a[1].to_ascii_uppercase().starts_with('+');
                    let flags = a[2].to_ascii_uppercase();
                    let key = self.key();
                    let seen = flags.contains("\\SEEN").then_some(add);
                    let deleted = flags.contains("\\DELETED").then_some(add);
                    self.shared.store.imap_set_flags(&key, &uids, seen, deleted);
                    if let Some(ImapFault::MailDuringStore(bytes)) = self.shared.faults.take(|f| matches!(f, ImapFault::MailDuringStore(_)))
                    {
                        self.shared.store.deliver(self.user.as_deref().unwrap_or_default(), bytes);
                    }
                    Ok(())
                }
                "UID SEARCH" if a.first().is_some_and(|s| s.eq_ignore_ascii_case("DELETED")) => {
                    let (_, msgs) = self.snapshot();
                    let hits: Vec<String> = msgs.iter().filter(|m| m.deleted).map(|m| m.uid.to_string()).collect();
                    send(io, format!("* SEARCH {}", hits.join(" ")).trim_end()).await?;
                    Ok(())
                }
                "UID EXPUNGE" if a.len() == 1 && self.shared.options.uidplus.load(Ordering::Relaxed) => {
                    let uids = self.uids(&a[0]);
                    self.shared.store.imap_expunge(&self.key(), Some(&uids));
                    Ok(())
                }
                "EXPUNGE" => {
                    self.shared.store.imap_expunge(&self.key(), None);
                    Ok(())
                }
                "UID COPY" | "UID MOVE" if a.len() == 2 => {
                    if verb == "UID MOVE" && !self.shared.options.moves.load(Ordering::Relaxed) {
                        Err("BAD MOVE not supported")
                    } else if self.shared.faults.take(|f| *f == ImapFault::OverQuota).is_some() {
                        Err("NO [OVERQUOTA] quota exceeded")
                    } else {
                        let uids = self.uids(&a[0]);
                        let user = self.user.clone().unwrap_or_default();
                        let key = self.key();
                        self.shared.store.imap_copy(&key, &uids, &folder_key(&user, &a[1]));
                        if verb == "UID MOVE" {
                            self.shared.store.imap_set_flags(&key, &uids, None, Some(true));
                            self.shared.store.imap_expunge(&key, Some(&uids));
                        }
                        Ok(())
                    }
                }
                _ => Err("BAD unknown or malformed command"),
            };
            // What EXPUNGE or MOVE removed the client knows is gone.
            let after = self.snapshot().1.len();
            if matches!(verb.as_str(), "EXPUNGE" | "UID EXPUNGE" | "UID MOVE") {
                self.known = self.known.saturating_sub(before.saturating_sub(after));
            }
            // New mail is announced with the reply to any command (RFC 3501 7.3.1, as Dovecot does), then counts as known.
            if self.selected.is_some() && !matches!(verb.as_str(), "SELECT" | "IDLE") && after > self.known {
                send(io, &format!("* {after} EXISTS")).await?;
                self.known = after;
            }
            match reply {
                Ok(()) => send(io, &format!("{tag} OK {verb} completed")).await?,
                Err(text) => send(io, &format!("{tag} {text}")).await?,
            }
        }
    }

    fn key(&self) -> String {
        self.selected.clone().unwrap_or_default()
    }

    fn snapshot(&self) -> (u32, Vec<ImapMessage>) {
        self.shared.store.imap_snapshot(&self.key()).unwrap_or((1, Vec::new()))
    }

    fn uids(&self, set: &str) -> Vec<u32> {
        let present: Vec<u32> = self.snapshot().1.iter().map(|m| m.uid).collect();
        uid_set(set, &present)
    }

    async fn select<S: AsyncWrite + Unpin>(&mut self, io: &mut S, folder: &str) -> io::Result<Result<(), &'static str>> {
        let key = folder_key(self.user.as_deref().unwrap_or_default(), folder);
        let Some((validity, msgs)) = self.shared.store.imap_snapshot(&key) else { return Ok(Err("NO no such folder")) };
        send(io, &format!("* {} EXISTS", msgs.len())).await?;
        send(io, "* FLAGS (\\Seen \\Deleted)").await?;
        send(io, &format!("* OK [UIDVALIDITY {validity}] UIDs valid")).await?;
        self.selected = Some(key);
        self.known = msgs.len();
        Ok(Ok(()))
    }

    /// `None`: the connection is to be closed (a fault).
    async fn fetch<S: AsyncWrite + Unpin>(&mut self, io: &mut S, set: &str, items: &str) -> io::Result<Option<Result<(), &'static str>>> {
        let (_, msgs) = self.snapshot();
        let present: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
        let wanted = uid_set(set, &present);
        let body = items.to_ascii_uppercase().contains("BODY.PEEK[]") || items.to_ascii_uppercase().contains("BODY[]");
        if body && self.shared.faults.take(|f| *f == ImapFault::EndlessUntagged).is_some() {
            loop {
                send(io, "* OK still thinking").await?;
                tokio::task::yield_now().await;
            }
        }
        for (i, m) in msgs.iter().enumerate() {
            if !wanted.contains(&m.uid) {
                continue;
            }
            let seq = i + 1;
            if !body {
                let mut flags = Vec::new();
                if m.seen {
                    flags.push("\\Seen");
                }
                if m.deleted {
                    flags.push("\\Deleted");
                }
                send(io, &format!("* {seq} FETCH (UID {} RFC822.SIZE {} FLAGS ({}))", m.uid, m.bytes.len(), flags.join(" "))).await?;
                continue;
            }
            self.shared.store.imap_fetched(&self.key(), m.uid);
            if let Some(ImapFault::HugeLiteral(n)) = self.shared.faults.take(|f| matches!(f, ImapFault::HugeLiteral(_))) {
                io.write_all(format!("* {seq} FETCH (UID {} BODY[] {{{n}}}\r\n", m.uid).as_bytes()).await?;
                io.write_all(&m.bytes).await?;
                io.flush().await?;
                return Ok(None);
            }
            io.write_all(format!("* {seq} FETCH (UID {} BODY[] {{{}}}\r\n", m.uid, m.bytes.len()).as_bytes()).await?;
            if let Some(ImapFault::DropMidLiteral(after)) = self.shared.faults.take(|f| matches!(f, ImapFault::DropMidLiteral(_))) {
                io.write_all(&m.bytes[..after.min(m.bytes.len())]).await?;
                io.flush().await?;
                return Ok(None);
            }
            io.write_all(&m.bytes).await?;
            io.write_all(b")\r\n").await?;
        }
        Ok(Some(Ok(())))
    }

    /// RFC 2177: `+ idling`, then `* n EXISTS` whenever the folder grows, until DONE.
    async fn idle<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut BufReader<S>) -> io::Result<Result<(), &'static str>> {
        send(io, "+ idling").await?;
        let mut changes = self.shared.store.subscribe();
        changes.mark_changed();
        loop {
            tokio::select! {
                line = read_line(io) => {
                    return match line? {
                        Some(l) if l.eq_ignore_ascii_case("DONE") => Ok(Ok(())),
                        Some(_) => Ok(Err("BAD expected DONE")),
                        None => Err(io::ErrorKind::UnexpectedEof.into()),
                    };
                }
                r = changes.changed() => {
                    if r.is_err() {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                    let now = self.snapshot().1.len();
                    if now > self.known && self.shared.faults.take(|f| *f == ImapFault::CloseInIdle).is_some() {
                        return Err(io::ErrorKind::ConnectionAborted.into());
                    }
                    if now > self.known {
                        send(io, &format!("* {now} EXISTS")).await?;
                    }
                    self.known = now;
                }
            }
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(io: &mut S, line: &str) -> io::Result<()> {
    io.write_all(line.as_bytes()).await?;
    io.write_all(b"\r\n").await?;
    io.flush().await
}

/// One command line (CRLF stripped), `None` at EOF; bounded in length and time.
async fn read_line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(IDLE_LIMIT, (&mut *io).take(MAX_COMMAND as u64).read_until(b'\n', &mut buf))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    if n == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_arguments_and_uid_sets() {
        assert_eq!(args(r#""a\"b" "p w" (\Seen \Deleted) 1:*"#), ["a\"b", "p w", "(\\Seen \\Deleted)", "1:*"]);
        assert_eq!(uid_set("1:*", &[3, 5, 9]), [3, 5, 9]);
        assert_eq!(uid_set("5,9", &[3, 5, 9]), [5, 9]);
        assert_eq!(uid_set("4:6", &[3, 5, 9]), [5]);
    }

    /// Sends `tag cmd`, returns the lines up to and with the tagged reply.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, tag: &str, cmd: &str) -> Vec<String> {
        io.write_all(format!("{tag} {cmd}\r\n").as_bytes()).await.unwrap();
        io.flush().await.unwrap();
        let mut lines = Vec::new();
        loop {
            let line = read_line(io).await.unwrap().expect("the server closed the connection");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    async fn servers() -> (crate::tls::TestPki, ImapServer) {
        let pki = crate::tls::TestPki::generate(&["localhost"]).unwrap();
        let store = Arc::new(Mailstore::new());
        store.add_user("u", "pw");
        let imaps = ImapServer::start("127.0.0.1:0", store, pki.server.clone()).await.unwrap();
        (pki, imaps)
    }

    #[tokio::test]
    async fn starttls_refuses_login_in_clear_and_is_offered_only_before_tls() {
        let (pki, imaps) = servers().await;
        let server = imaps.start_sibling("127.0.0.1:0", ImapSecurity::StartTls).await.unwrap();
        let mut plain = BufReader::new(TcpStream::connect(server.addr).await.unwrap());
        assert!(read_line(&mut plain).await.unwrap().unwrap().starts_with("* OK"));
        let caps = exchange(&mut plain, "a1", "CAPABILITY").await;
        assert_eq!(caps, ["* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED", "a1 OK CAPABILITY completed"]);
        let login = exchange(&mut plain, "a2", "LOGIN u pw").await;
        assert!(login[0].starts_with("a2 NO [PRIVACYREQUIRED]"), "{login:?}");
        assert_eq!(exchange(&mut plain, "a3", "STARTTLS").await, ["a3 OK Begin TLS negotiation now"]);
        let connector = tokio_rustls::TlsConnector::from(crate::tls::client_config_from_pem(&pki.ca_pem).unwrap());
        let tls = connector.connect("localhost".try_into().unwrap(), plain.into_inner()).await.unwrap();
        let mut tls = BufReader::new(tls);
        let caps = exchange(&mut tls, "b1", "CAPABILITY").await;
        assert_eq!(caps[0], "* CAPABILITY IMAP4rev1 IDLE UIDPLUS MOVE", "the extensions, and no STARTTLS, after TLS");
        assert!(exchange(&mut tls, "b2", "STARTTLS").await[0].starts_with("b2 BAD"));
        assert!(exchange(&mut tls, "b3", "LOGIN u pw").await[0].starts_with("b3 OK"));
        assert_eq!(server.cleartext_commands(), ["CAPABILITY", "LOGIN", "STARTTLS"], "nothing recorded after TLS");
    }

    #[tokio::test]
    async fn starttls_faults_and_the_plaintext_and_implicit_servers() {
        let (_pki, imaps) = servers().await;
        let server = imaps.start_sibling("127.0.0.1:0", ImapSecurity::StartTls).await.unwrap();
        server.faults.arm(ImapFault::RefuseStartTls);
        server.faults.arm(ImapFault::InjectAfterStartTls);
        let mut plain = BufReader::new(TcpStream::connect(server.addr).await.unwrap());
        read_line(&mut plain).await.unwrap();
        assert!(exchange(&mut plain, "a1", "STARTTLS").await[0].starts_with("a1 NO"), "refused once");
        assert_eq!(exchange(&mut plain, "a2", "STARTTLS").await, ["a2 OK Begin TLS negotiation now"]);
        let injected = read_line(&mut plain).await.unwrap().unwrap();
        assert!(injected.starts_with("* OK") && injected.contains("injected"), "{injected}");

        // Never TLS: no STARTTLS, LOGIN taken in clear (and recorded).
        let clear = imaps.start_sibling("127.0.0.1:0", ImapSecurity::Plaintext).await.unwrap();
        let mut plain = BufReader::new(TcpStream::connect(clear.addr).await.unwrap());
        read_line(&mut plain).await.unwrap();
        let caps = exchange(&mut plain, "c1", "CAPABILITY").await;
        assert!(!caps[0].contains("STARTTLS") && !caps[0].contains("LOGINDISABLED"), "{caps:?}");
        assert!(exchange(&mut plain, "c2", "STARTTLS").await[0].starts_with("c2 BAD"));
        assert!(exchange(&mut plain, "c3", "LOGIN u pw").await[0].starts_with("c3 OK"));
        assert_eq!(clear.cleartext_commands(), ["CAPABILITY", "STARTTLS", "LOGIN"]);
        assert!(imaps.cleartext_commands().is_empty());
    }
}
