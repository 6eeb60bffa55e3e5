//! A small simulated IMAPS server (the RFC 3501 subset pecgate uses, with
//! IDLE, UIDPLUS and MOVE each switchable): the mailbox side of the PEC
//! provider simulator next to POP3, on the same [`Mailstore`], so receipts
//! the provider generates appear in INBOX. Misbehaves on demand ([`ImapFaults`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
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
}

impl ImapServer {
    /// Implicit TLS (imaps) on `bind` with the given certificate.
    pub async fn start(bind: &str, store: Arc<Mailstore>, tls: Arc<ServerConfig>) -> io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let options = Arc::new(ImapOptions::default());
        let faults = Arc::new(ImapFaults::default());
        let shared =
            Arc::new(Shared { store, options: options.clone(), faults: faults.clone(), tls: tokio_rustls::TlsAcceptor::from(tls) });
        let task = tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            loop {
                while sessions.try_join_next().is_some() {}
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let shared = shared.clone();
                sessions.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(IDLE_LIMIT, shared.tls.accept(tcp)).await else { return };
                    if let Err(e) = (Session { shared, user: None, selected: None, known: 0 }).run(BufReader::new(tls)).await {
                        tracing::debug!(error = %e, "IMAP simulator session ended");
                    }
                });
            }
        });
        Ok(Self { addr, options, faults, task })
    }
}

struct Session {
    shared: Arc<Shared>,
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
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut io: BufReader<S>) -> io::Result<()> {
        send(&mut io, "* OK [CAPABILITY IMAP4rev1] pecgate IMAP simulator ready").await?;
        let never = self.shared.faults.take(|f| *f == ImapFault::NeverAnswer).is_some();
        loop {
            let Some(line) = read_line(&mut io).await? else { return Ok(()) };
            if never {
                continue;
            }
            let (tag, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let (verb, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut verb = verb.to_ascii_uppercase();
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
                    for (on, name) in [(&o.idle, " IDLE"), (&o.uidplus, " UIDPLUS"), (&o.moves, " MOVE")] {
                        if on.load(Ordering::Relaxed) {
                            caps.push_str(name);
                        }
                    }
                    send(&mut io, &caps).await?;
                    Ok(())
                }
                "NOOP" => Ok(()),
                "LOGOUT" => {
                    send(&mut io, "* BYE logging out").await?;
                    send(&mut io, &format!("{tag} OK LOGOUT completed")).await?;
                    return Ok(());
                }
                "LOGIN" if a.len() == 2 && self.shared.store.login_ok(&a[0], &a[1]) => {
                    self.user = Some(a[0].clone());
                    Ok(())
                }
                "LOGIN" => Err("NO [AUTHENTICATIONFAILED] invalid credentials"),
                _ if self.user.is_none() => Err("BAD log in first"),
                "SELECT" if a.len() == 1 => self.select(&mut io, &a[0]).await?,
                "IDLE" if self.shared.options.idle.load(Ordering::Relaxed) && self.selected.is_some() => self.idle(&mut io).await?,
                _ if self.selected.is_none() => Err("BAD select a folder first"),
                "UID FETCH" if a.len() == 2 => match self.fetch(&mut io, &a[0], &a[1]).await? {
                    Some(r) => r,
                    None => return Ok(()),
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
                    send(&mut io, format!("* SEARCH {}", hits.join(" ")).trim_end()).await?;
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
                send(&mut io, &format!("* {after} EXISTS")).await?;
                self.known = after;
            }
            match reply {
                Ok(()) => send(&mut io, &format!("{tag} OK {verb} completed")).await?,
                Err(text) => send(&mut io, &format!("{tag} {text}")).await?,
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
}
