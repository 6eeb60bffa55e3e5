//! A small simulated POP3 server (RFC 1939 with CAPA, STLS, SASL PLAIN and
//! response codes): the test peer for the client and the mailbox side of
//! the PEC provider simulator.
//!
//! It follows the RFC where the client's correctness depends on it (dot
//! stuffing, deletions applied only on QUIT, an exclusive maildrop lock, a
//! per-session snapshot) and can misbehave on demand through `Pop3Faults`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::proto::codec::{Dialect, DotStuffer, dot_stuff};
use crate::tls::TestPki;

mod imap_store;
pub use imap_store::{ImapMessage, folder_key};

/// Idle time after which a session is dropped (RFC 1939 asks for at least
/// 10 minutes; a simulator has no reason to keep dead peers that long).
const IDLE: Duration = Duration::from_secs(60);
/// Longest command line accepted; RFC 2449 allows 255 octets.
const MAX_COMMAND: u64 = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole simulator down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
struct Stored {
    uid: String,
    bytes: Arc<Vec<u8>>,
    /// IMAP `\Seen` and `\Deleted` (the simulator's IMAP side, `sim::imap`).
    seen: bool,
    deleted: bool,
}

#[derive(Default)]
struct Mailbox {
    /// `None`: mail can be delivered but nobody can log in.
    password: Option<String>,
    messages: Vec<Stored>,
    locked: bool,
    /// IMAP UIDVALIDITY (0 until first asked: then 1).
    uidvalidity: u32,
}

/// Shared, thread-safe mail storage: user -> password and messages.
pub struct Mailstore {
    boxes: Mutex<HashMap<String, Mailbox>>,
    next_uid: Mutex<u64>,
    /// Bumped on every change, so tests can wait for a condition without sleeping.
    changed: watch::Sender<u64>,
    /// RETR commands per unique-id (tests: was a message downloaded again?).
    retrievals: Mutex<HashMap<String, usize>>,
}

impl Default for Mailstore {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailstore {
    pub fn new() -> Self {
        Self { boxes: Mutex::new(HashMap::new()), next_uid: Mutex::new(1), changed: watch::Sender::new(0), retrievals: Mutex::default() }
    }

    fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Creates the user, or changes the password of an existing one.
    pub fn add_user(&self, user: &str, password: &str) {
        lock(&self.boxes).entry(user.to_owned()).or_default().password = Some(password.to_owned());
        self.touch();
    }

    /// Appends a message and returns its unique-id (never reused).
    pub fn deliver(&self, user: &str, bytes: Vec<u8>) -> String {
        let uid = {
            let mut next = lock(&self.next_uid);
            let uid = format!("pecsim-{:08}", *next);
            *next += 1;
            uid
        };
        lock(&self.boxes).entry(user.to_owned()).or_default().messages.push(Stored {
            uid: uid.clone(),
            bytes: Arc::new(bytes),
            seen: false,
            deleted: false,
        });
        self.touch();
        uid
    }

    /// `(uid, bytes)` of every stored message of `user`.
    pub fn messages(&self, user: &str) -> Vec<(String, Vec<u8>)> {
        lock(&self.boxes).get(user).map(|b| b.messages.iter().map(|m| (m.uid.clone(), m.bytes.to_vec())).collect()).unwrap_or_default()
    }

    /// How many times a message was asked for with RETR.
    pub fn retrievals(&self, uid: &str) -> usize {
        lock(&self.retrievals).get(uid).copied().unwrap_or(0)
    }

    pub fn len(&self, user: &str) -> usize {
        lock(&self.boxes).get(user).map_or(0, |b| b.messages.len())
    }

    pub fn is_empty(&self, user: &str) -> bool {
        self.len(user) == 0
    }

    /// Whether a session holds the maildrop lock of `user`.
    pub fn is_locked(&self, user: &str) -> bool {
        lock(&self.boxes).get(user).is_some_and(|b| b.locked)
    }

    /// Waits until `pred` holds, re-checking on every store change; false on timeout.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Mailstore) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if pred(self) {
                return true;
            }
            // The sender lives in `self`, so `changed` cannot fail while we borrow it.
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return pred(self);
            }
        }
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        lock(&self.boxes).get(user).and_then(|b| b.password.as_deref()).is_some_and(|p| p == password)
    }

    /// Takes the maildrop lock and a snapshot; `None` if already locked.
    fn open(self: &Arc<Self>, user: &str) -> Option<(MaildropLock, Vec<Stored>)> {
        let snapshot = {
            let mut boxes = lock(&self.boxes);
            let b = boxes.get_mut(user)?;
            if b.locked {
                return None;
            }
            b.locked = true;
            b.messages.clone()
        };
        self.touch();
        Some((MaildropLock { store: self.clone(), user: user.to_owned() }, snapshot))
    }

    fn remove(&self, user: &str, uids: &[String]) {
        if let Some(b) = lock(&self.boxes).get_mut(user) {
            b.messages.retain(|m| !uids.contains(&m.uid));
        }
        self.touch();
    }
}

/// The exclusive maildrop lock; released when the session ends however it ends.
struct MaildropLock {
    store: Arc<Mailstore>,
    user: String,
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        if let Some(b) = lock(&self.store.boxes).get_mut(&self.user) {
            b.locked = false;
        }
        self.store.touch();
    }
}

/// A misbehaviour, armed to fire a number of times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Refuse the next login even with the right password.
    AuthFail,
    /// Close the connection (no TLS close_notify) after this many bytes of the RETR body.
    DropDuringRetr { after_bytes: usize },
    /// Answer RETR with -ERR although the message is listed.
    RetrError,
    /// Answer the next command with non-POP3 junk.
    Garbage,
    /// Delay the next response by this long.
    Slow(Duration),
    /// A RETR that never ends: lines keep coming, one per millisecond.
    EndlessRetr,
}

/// Faults shared between the test and the server's sessions.
#[derive(Debug, Default)]
pub struct Pop3Faults {
    armed: Mutex<Vec<(Fault, u32)>>,
}

impl Pop3Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Arms `fault` to fire `times` times.
    pub fn arm(&self, fault: Fault, times: u32) {
        lock(&self.armed).push((fault, times));
    }

    pub fn clear(&self) {
        lock(&self.armed).clear();
    }

    /// Fires the first armed fault matching `which`, if any.
    fn fire(&self, which: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut armed = lock(&self.armed);
        let i = armed.iter().position(|(f, n)| *n > 0 && which(f))?;
        armed[i].1 -= 1;
        let fault = armed[i].0.clone();
        if armed[i].1 == 0 {
            armed.remove(i);
        }
        Some(fault)
    }
}

/// How the server protects connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSecurity {
    /// TLS from the first byte (pop3s).
    ImplicitTls,
    /// Plain until STLS; logins are refused before TLS.
    Stls,
    /// Never TLS, no STLS: only to check that the client refuses such a server.
    Plaintext,
}

/// A running server; dropping it stops the listener and every session.
pub struct Pop3Server {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the server certificate (empty if given a config).
    pub ca_pem: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Pop3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pop3Server {
    /// Starts on `bind` (e.g. "127.0.0.1:0") with a freshly generated
    /// certificate for localhost and 127.0.0.1.
    pub async fn start(bind: &str, store: Arc<Mailstore>, security: ServerSecurity, faults: Arc<Pop3Faults>) -> io::Result<Self> {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).map_err(io::Error::other)?;
        Self::start_with_tls(bind, store, security, faults, pki.server, pki.ca_pem).await
    }

    /// Starts with a given TLS configuration (the provider simulator's own PKI).
    pub async fn start_with_tls(
        bind: &str,
        store: Arc<Mailstore>,
        security: ServerSecurity,
        faults: Arc<Pop3Faults>,
        tls: Arc<ServerConfig>,
        ca_pem: String,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared =
            Arc::new(Shared { store, faults, security, tls: tokio_rustls::TlsAcceptor::from(tls), sasl_plain: AtomicBool::new(true) });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self { addr, ca_pem, shared, task })
    }

    /// Whether new CAPA replies offer SASL PLAIN (off: clients fall back to
    /// USER/PASS). AUTH PLAIN itself stays accepted either way.
    pub fn set_sasl_plain(&self, offered: bool) {
        self.shared.sasl_plain.store(offered, Ordering::Relaxed);
    }
}

struct Shared {
    store: Arc<Mailstore>,
    faults: Arc<Pop3Faults>,
    security: ServerSecurity,
    tls: tokio_rustls::TlsAcceptor,
    sasl_plain: AtomicBool,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Sessions live in the JoinSet so that aborting this task ends them all.
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let shared = shared.clone();
                sessions.spawn(async move {
                    if let Err(e) = connection(tcp, shared).await {
                        tracing::debug!(%peer, error = %e, "POP3 simulator session ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "POP3 simulator accept failed");
                // Back off briefly on e.g. EMFILE rather than spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(tcp: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    match shared.security {
        ServerSecurity::ImplicitTls => {
            let tls = tokio::time::timeout(IDLE, shared.tls.accept(tcp)).await.map_err(|_| io::ErrorKind::TimedOut)??;
            Session::new(shared, true).run(&mut BufReader::new(tls), true).await.map(drop)
        }
        ServerSecurity::Stls | ServerSecurity::Plaintext => {
            let mut plain = BufReader::new(tcp);
            let mut session = Session::new(shared.clone(), false);
            if session.run(&mut plain, true).await? == Outcome::StartTls {
                let tls =
                    tokio::time::timeout(IDLE, shared.tls.accept(plain.into_inner())).await.map_err(|_| io::ErrorKind::TimedOut)??;
                session.tls_active = true;
                session.run(&mut BufReader::new(tls), false).await?;
            }
            Ok(())
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Closed,
    StartTls,
}

/// TRANSACTION state: the locked maildrop as it was at login.
struct Transaction {
    user: String,
    _lock: MaildropLock,
    messages: Vec<Stored>,
    deleted: Vec<bool>,
}

impl Transaction {
    /// The message numbered `arg`, if it exists and is not deleted.
    fn get(&self, arg: &str) -> Option<usize> {
        if !arg.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = arg.parse().ok()?;
        let i = n.checked_sub(1)?;
        (i < self.messages.len() && !self.deleted[i]).then_some(i)
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Stored)> {
        self.messages.iter().enumerate().filter(|(i, _)| !self.deleted[*i])
    }
}

struct Session {
    shared: Arc<Shared>,
    tls_active: bool,
    pending_user: Option<String>,
    transaction: Option<Transaction>,
}

impl Session {
    fn new(shared: Arc<Shared>, tls_active: bool) -> Self {
        Self { shared, tls_active, pending_user: None, transaction: None }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut BufReader<S>, greet: bool) -> io::Result<Outcome> {
        if greet {
            self.respond(io, "+OK pecgate POP3 simulator ready").await?;
        }
        loop {
            let Some(line) = read_command(io).await? else { return Ok(Outcome::Closed) };
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let verb = verb.to_ascii_uppercase();
            if !matches!(verb.as_str(), "PASS" | "AUTH") {
                tracing::debug!(command = %line, "POP3 simulator <");
            }
            if self.shared.faults.fire(|f| *f == Fault::Garbage).is_some() {
                self.write(io, b"<html><body>502 Bad Gateway</body></html>\r\n").await?;
                continue;
            }
            let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
            let outcome = if self.transaction.is_some() {
                self.transaction_command(io, &verb, &args).await?
            } else {
                self.authorization_command(io, &verb, &args, rest).await?
            };
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
    }

    fn login_allowed(&self) -> bool {
        self.tls_active
    }

    fn capa(&self) -> String {
        let mut capa = String::from("+OK capability list follows\r\nUSER\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n");
        if self.shared.sasl_plain.load(Ordering::Relaxed) {
            capa.push_str("SASL PLAIN\r\n");
        }
        if self.shared.security == ServerSecurity::Stls && !self.tls_active {
            capa.push_str("STLS\r\n");
        }
        capa.push_str("IMPLEMENTATION pecgate-simulator\r\n.");
        capa
    }

    async fn authorization_command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        verb: &str,
        args: &[&str],
        rest: &str,
    ) -> io::Result<Option<Outcome>> {
        match verb {
            "CAPA" => self.respond(io, &self.capa()).await?,
            "STLS" if self.shared.security == ServerSecurity::Stls && !self.tls_active => {
                self.respond(io, "+OK begin TLS negotiation").await?;
                return Ok(Some(Outcome::StartTls));
            }
            "QUIT" => {
                self.respond(io, "+OK bye").await?;
                return Ok(Some(Outcome::Closed));
            }
            "USER" | "PASS" | "AUTH" if !self.login_allowed() => self.respond(io, "-ERR [AUTH] TLS required, use STLS").await?,
            "USER" => match args {
                [user] => {
                    self.pending_user = Some((*user).to_owned());
                    self.respond(io, "+OK send PASS").await?;
                }
                _ => self.respond(io, "-ERR usage: USER name").await?,
            },
            "PASS" => match self.pending_user.take() {
                // The password is the rest of the line, spaces and all.
                Some(user) => self.login(io, &user, rest).await?,
                None => self.respond(io, "-ERR USER first").await?,
            },
            "AUTH" => match args {
                [mech, rest @ ..] if mech.eq_ignore_ascii_case("PLAIN") && rest.len() <= 1 => {
                    let encoded = match rest.first() {
                        Some(ir) => (*ir).to_owned(),
                        None => {
                            self.respond(io, "+ ").await?;
                            let Some(line) = read_command(io).await? else { return Ok(Some(Outcome::Closed)) };
                            String::from_utf8_lossy(&line).into_owned()
                        }
                    };
                    if encoded == "*" {
                        self.respond(io, "-ERR authentication cancelled").await?;
                    } else {
                        match decode_plain(&encoded) {
                            Some((user, password)) => self.login(io, &user, &password).await?,
                            None => self.respond(io, "-ERR [AUTH] malformed PLAIN response").await?,
                        }
                    }
                }
                _ => self.respond(io, "-ERR unsupported mechanism").await?,
            },
            _ => self.respond(io, "-ERR command not valid in AUTHORIZATION state").await?,
        }
        Ok(None)
    }

    async fn login<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut BufReader<S>, user: &str, password: &str) -> io::Result<()> {
        let store = &self.shared.store;
        if self.shared.faults.fire(|f| *f == Fault::AuthFail).is_some() || !store.check_password(user, password) {
            return self.respond(io, "-ERR [AUTH] invalid credentials").await;
        }
        let Some((lock, messages)) = store.open(user) else {
            return self.respond(io, "-ERR [IN-USE] maildrop already locked").await;
        };
        let deleted = vec![false; messages.len()];
        let count = messages.len();
        self.transaction = Some(Transaction { user: user.to_owned(), _lock: lock, messages, deleted });
        self.respond(io, &format!("+OK maildrop locked, {count} messages")).await
    }

    async fn transaction_command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        verb: &str,
        args: &[&str],
    ) -> io::Result<Option<Outcome>> {
        let capa = self.capa();
        let Some(t) = self.transaction.as_mut() else { return Ok(None) };
        let reply = match (verb, args) {
            ("CAPA", []) => capa,
            ("NOOP", []) => "+OK".into(),
            ("STAT", []) => {
                let (count, size) = t.live().fold((0, 0), |(c, s), (_, m)| (c + 1, s + m.bytes.len()));
                format!("+OK {count} {size}")
            }
            ("LIST", []) => {
                let mut r = String::from("+OK scan listing follows\r\n");
                for (i, m) in t.live() {
                    r.push_str(&format!("{} {}\r\n", i + 1, m.bytes.len()));
                }
                r.push('.');
                r
            }
            ("UIDL", []) => {
                let mut r = String::from("+OK unique-id listing follows\r\n");
                for (i, m) in t.live() {
                    r.push_str(&format!("{} {}\r\n", i + 1, m.uid));
                }
                r.push('.');
                r
            }
            ("LIST", [n]) => match t.get(n) {
                Some(i) => format!("+OK {} {}", i + 1, t.messages[i].bytes.len()),
                None => "-ERR no such message".into(),
            },
            ("UIDL", [n]) => match t.get(n) {
                Some(i) => format!("+OK {} {}", i + 1, t.messages[i].uid),
                None => "-ERR no such message".into(),
            },
            ("DELE", [n]) => match t.get(n) {
                Some(i) => {
                    t.deleted[i] = true;
                    format!("+OK message {} deleted", i + 1)
                }
                None => "-ERR no such message".into(),
            },
            ("RSET", []) => {
                t.deleted.iter_mut().for_each(|d| *d = false);
                "+OK".into()
            }
            ("RETR", [n]) => match t.get(n) {
                Some(i) => {
                    *lock(&self.shared.store.retrievals).entry(t.messages[i].uid.clone()).or_default() += 1;
                    let bytes = t.messages[i].bytes.clone();
                    return self.retr(io, bytes.as_slice()).await;
                }
                None => "-ERR no such message".into(),
            },
            ("QUIT", []) => {
                // UPDATE state: deletions are applied now, then the lock goes.
                let uids: Vec<String> = t.messages.iter().zip(&t.deleted).filter(|(_, d)| **d).map(|(m, _)| m.uid.clone()).collect();
                let user = t.user.clone();
                self.shared.store.remove(&user, &uids);
                self.transaction = None;
                self.respond(io, "+OK bye").await?;
                return Ok(Some(Outcome::Closed));
            }
            _ => "-ERR unknown command or bad arguments".into(),
        };
        self.respond(io, &reply).await?;
        Ok(None)
    }

    async fn retr<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut BufReader<S>, bytes: &[u8]) -> io::Result<Option<Outcome>> {
        let faults = &self.shared.faults;
        let fault = faults.fire(|f| matches!(f, Fault::RetrError | Fault::EndlessRetr | Fault::DropDuringRetr { .. }));
        match fault {
            Some(Fault::RetrError) => {
                self.respond(io, "-ERR [SYS/TEMP] message temporarily unavailable").await?;
                Ok(None)
            }
            Some(Fault::EndlessRetr) => {
                self.respond(io, "+OK message follows").await?;
                // Bounded anyway: about 17 minutes at one line per millisecond.
                for i in 0..1_000_000u32 {
                    self.write(io, format!("Line {i} of a message that never ends, X-Padding: aaaaaaaaaaaaaaaa\r\n").as_bytes()).await?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(Some(Outcome::Closed))
            }
            Some(Fault::DropDuringRetr { after_bytes }) => {
                let mut wire = Vec::with_capacity(bytes.len() + 16);
                dot_stuff(Dialect::Pop3, bytes, &mut wire);
                self.respond(io, &format!("+OK {} octets", bytes.len())).await?;
                self.write(io, &wire[..after_bytes.min(wire.len().saturating_sub(1))]).await?;
                Err(io::Error::new(io::ErrorKind::ConnectionAborted, "fault: dropped during RETR"))
            }
            _ => {
                self.respond(io, &format!("+OK {} octets", bytes.len())).await?;
                // Stuffed and sent in chunks: a 100 MB message is not copied (the fetch RSS benchmark runs the simulator in-process).
                let mut stuffer = DotStuffer::new(Dialect::Pop3);
                let mut wire = Vec::with_capacity(64 * 1024 + 64 * 1024 / 32 + 8);
                for chunk in bytes.chunks(64 * 1024) {
                    wire.clear();
                    stuffer.encode(chunk, &mut wire);
                    self.write(io, &wire).await?;
                }
                wire.clear();
                stuffer.finish(&mut wire);
                self.write(io, &wire).await?;
                Ok(None)
            }
        }
    }

    /// Writes one response (a "." terminator line included, for multi-line
    /// ones) followed by CRLF, after any armed delay.
    async fn respond<S: AsyncWrite + Unpin>(&self, io: &mut S, text: &str) -> io::Result<()> {
        if let Some(Fault::Slow(d)) = self.shared.faults.fire(|f| matches!(f, Fault::Slow(_))) {
            tokio::time::sleep(d).await;
        }
        let mut bytes = Vec::with_capacity(text.len() + 2);
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(io, &bytes).await
    }

    async fn write<S: AsyncWrite + Unpin>(&self, io: &mut S, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(IDLE, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }
}

/// Reads one command line (without CRLF) under the idle timeout; `None` at EOF.
async fn read_command<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = tokio::time::timeout(IDLE, io.take(MAX_COMMAND).read_until(b'\n', &mut line))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "command line too long or unterminated"));
    }
    Ok(Some(crate::pop3::response::trim_eol(&line).to_vec()))
}

/// Decodes a SASL PLAIN response: authzid NUL authcid NUL password, where
/// the authzid must be empty or the authcid (no proxy logins).
fn decode_plain(encoded: &str) -> Option<(String, String)> {
    let raw = BASE64_STANDARD.decode(encoded.trim()).ok()?;
    let mut parts = raw.split(|b| *b == 0);
    let (authz, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || !(authz.is_empty() || authz == user) {
        return None;
    }
    Some((String::from_utf8(user.to_vec()).ok()?, String::from_utf8(password.to_vec()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        let enc = |s: &[u8]| BASE64_STANDARD.encode(s);
        let cases: Vec<(String, Option<(&str, &str)>)> = vec![
            (enc(b"\0alice\0pw"), Some(("alice", "pw"))),
            (enc(b"alice\0alice\0p w"), Some(("alice", "p w"))),
            (enc(b"bob\0alice\0pw"), None),
            (enc(b"\0\0pw"), None),
            (enc(b"\0alice"), None),
            (enc(b"\0a\0b\0c"), None),
            ("!!notbase64".into(), None),
        ];
        for (encoded, want) in cases {
            assert_eq!(decode_plain(&encoded), want.map(|(u, p)| (u.to_string(), p.to_string())), "{encoded}");
        }
    }

    #[test]
    fn faults_fire_as_often_as_armed() {
        let f = Pop3Faults::new();
        f.arm(Fault::Garbage, 2);
        f.arm(Fault::RetrError, 1);
        assert_eq!(f.fire(|x| *x == Fault::RetrError), Some(Fault::RetrError));
        assert_eq!(f.fire(|x| *x == Fault::RetrError), None);
        assert_eq!(f.fire(|x| *x == Fault::Garbage), Some(Fault::Garbage));
        assert_eq!(f.fire(|x| *x == Fault::Garbage), Some(Fault::Garbage));
        assert_eq!(f.fire(|x| *x == Fault::Garbage), None);
    }

    #[test]
    fn mailstore_basics() {
        let s = Arc::new(Mailstore::new());
        s.add_user("a", "pw");
        let u1 = s.deliver("a", b"one\r\n".to_vec());
        let u2 = s.deliver("a", b"two\r\n".to_vec());
        assert_ne!(u1, u2);
        assert!(crate::pop3::response::valid_uid(u1.as_bytes()));
        assert_eq!(s.len("a"), 2);
        assert!(s.check_password("a", "pw") && !s.check_password("a", "no") && !s.check_password("b", "pw"));
        let (lock, snap) = s.open("a").expect("first open");
        assert_eq!(snap.len(), 2);
        assert!(s.open("a").is_none() && s.is_locked("a"));
        drop(lock);
        assert!(!s.is_locked("a"));
        s.remove("a", &[u1]);
        assert_eq!(s.messages("a"), vec![(u2, b"two\r\n".to_vec())]);
    }
}
