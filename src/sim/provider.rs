//! Simulated PEC provider, submission side: SMTPS (implicit TLS, certificate
//! from a private CA generated at start) with AUTH PLAIN/LOGIN against the
//! configured mailbox credentials, enforcing PEC.md's rules the way real
//! providers do (Aruba answers `553 5.7.1` to a foreign sender): envelope
//! sender = From = the authenticated mailbox, recipients only from To/Cc,
//! at most 50 of them. Faults can be injected per stage. Each accepted
//! submission produces receipts in the POP3 mailboxes (`receipts`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::pop3::{Mailstore, Pop3Faults, Pop3Server, ServerSecurity};
use super::receipts::{Behavior, receipts_for};
use super::{Captured, Mailbag};
use crate::clock::Clock;
use crate::config::profiles::Provider;
use crate::listener::accept::{self, ListenerConfig, SessionSetup};
use crate::listener::session::{Backend, Envelope, Response, SessionConfig, SessionInfo};
use crate::proto::reply::{self, Reply};
use crate::tls::TestPki;

/// Providers' usual recipient limit.
pub const MAX_RECIPIENTS: usize = 50;

#[derive(Debug, Clone)]
pub struct SimMailbox {
    pub username: String,
    pub password: String,
    pub address: String,
}

/// Where a fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Auth,
    Mail,
    Rcpt,
    Data,
    /// After the message is accepted and recorded, before the 250 is sent
    /// (the at-least-once window: the provider has it, the client may not know).
    Accepted,
}

#[derive(Debug, Clone)]
pub enum FaultAction {
    Reply(Reply),
    Disconnect,
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Fault {
    stage: Stage,
    action: FaultAction,
    remaining: usize,
}

/// Faults armed from tests (or the demo); each fires `times` times.
#[derive(Default)]
pub struct Faults {
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    pub fn add(&self, stage: Stage, action: FaultAction, times: usize) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).push(Fault { stage, action, remaining: times });
    }

    pub fn clear(&self) {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn take(&self, stage: Stage) -> Option<FaultAction> {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let i = list.iter().position(|f| f.stage == stage && f.remaining > 0)?;
        list[i].remaining -= 1;
        let action = list[i].action.clone();
        if list[i].remaining == 0 {
            list.remove(i);
        }
        Some(action)
    }

    /// Applies a fault at `stage`: `Err` is what to answer instead of going on.
    async fn fire(&self, stage: Stage) -> Result<(), Response> {
        match self.take(stage) {
            None => Ok(()),
            Some(FaultAction::Reply(r)) => Err(Response::Reply(r)),
            Some(FaultAction::Disconnect) => Err(Response::Disconnect),
            Some(FaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

/// Legalmail's per-mailbox "Class Of Service" limit, on an injected clock:
/// beyond the limit of MAIL commands in a sliding minute, the excess gets
/// the 550 Legalmail sends (permanent-looking, but it only means "later").
/// Off until `set` (every mailbox) or a profile with a limit (one mailbox).
#[derive(Default)]
pub struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    /// For every mailbox (`set`).
    per_minute: Option<usize>,
    /// address -> limit, from the mailbox's profile.
    limits: HashMap<String, usize>,
    clock: Option<Arc<dyn Clock>>,
    /// address -> times (ms) of accepted MAIL commands.
    accepted: HashMap<String, Vec<i64>>,
    refused: u64,
}

impl Throttle {
    /// Every mailbox gets `per_minute`, counted on `clock`.
    pub fn set(&self, per_minute: usize, clock: Arc<dyn Clock>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.per_minute = Some(per_minute);
        s.clock = Some(clock);
    }

    /// Counts on `clock` (a test's `ManualClock`) instead of the system clock.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clock = Some(clock);
    }

    /// One mailbox's limit (its profile's).
    fn limit(&self, address: &str, per_minute: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).limits.insert(address.to_ascii_lowercase(), per_minute);
    }

    /// How many MAIL commands were refused as too much traffic.
    pub fn refused(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).refused
    }

    fn check(&self, address: &str) -> Result<(), Reply> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let key = address.to_ascii_lowercase();
        let Some(limit) = s.limits.get(&key).copied().or(s.per_minute) else { return Ok(()) };
        let now = s.clock.get_or_insert_with(crate::clock::system).now_ms();
        let times = s.accepted.entry(key).or_default();
        times.retain(|&t| t > now - 60_000);
        if times.len() >= limit {
            s.refused += 1;
            return Err(Reply::new(
                550,
                None,
                format!("MAIL from: <{address}> blocked \"Class Of Service\" - Too much traffic from this sender"),
            ));
        }
        times.push(now);
        Ok(())
    }
}

/// How a simulated mailbox behaves like its provider (`[[mailbox]] provider`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimRules {
    /// Legalmail: submissions per minute before the "Class Of Service" 550.
    pub per_minute: Option<usize>,
    /// Aruba: a message larger than this divided by its recipients is
    /// accepted over SMTP and then answered with a non-accettazione
    /// (eccezioni formali), not refused over SMTP.
    pub max_bytes_per_recipients: Option<u64>,
    /// Namirial: every preavviso carries the final-looking `5.4.1`.
    pub preavviso_541: bool,
}

impl SimRules {
    /// The provider's behaviour; `max_message_bytes` replaces Aruba's 100 MB
    /// when the mailbox configures one (tests use small sizes).
    pub fn of(provider: Provider, max_message_bytes: Option<u64>) -> SimRules {
        match provider {
            Provider::Legalmail => SimRules { per_minute: Some(6), ..SimRules::default() },
            Provider::Aruba => SimRules { max_bytes_per_recipients: Some(max_message_bytes.unwrap_or(100_000_000)), ..SimRules::default() },
            Provider::Namirial => SimRules { preavviso_541: true, ..SimRules::default() },
            Provider::Postecert | Provider::Register | Provider::Custom => SimRules::default(),
        }
    }
}

/// username -> mailbox; the password can change while running (a provider's forced change).
type Accounts = Arc<std::sync::RwLock<HashMap<String, SimMailbox>>>;

struct ProviderBackend {
    accounts: Accounts,
    bag: Arc<Mailbag>,
    faults: Arc<Faults>,
    retrieval: Arc<Retrieval>,
    throttle: Arc<Throttle>,
}

/// The provider's retrieval half: POP3 mailboxes and receipt generation.
pub struct Retrieval {
    pub mailstore: Arc<Mailstore>,
    pub behavior: Mutex<Behavior>,
    mailboxes: Vec<SimMailbox>,
    /// username -> its provider's behaviour (`SimProvider::set_profile`).
    rules: std::sync::RwLock<HashMap<String, SimRules>>,
    held: Mutex<Vec<(String, Vec<u8>)>>,
    seq: AtomicU64,
}

impl Retrieval {
    /// Generates and delivers the receipts for an accepted submission.
    fn after_submission(&self, submission: &Captured, sender: &SimMailbox) {
        let (behavior, not_accepted) = {
            let mut b = self.behavior.lock().unwrap_or_else(|p| p.into_inner());
            let refuse = b.not_accept_next > 0;
            if refuse {
                b.not_accept_next -= 1;
            }
            (b.clone(), refuse)
        };
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).get(&sender.username).copied().unwrap_or_default();
        let behavior = Behavior { preavviso_541: behavior.preavviso_541 || rules.preavviso_541, ..behavior };
        // Aruba's size rule: accepted, then refused by a receipt (eccezioni formali).
        let oversize = rules.max_bytes_per_recipients.and_then(|max| {
            let limit = max / submission.rcpts.len().max(1) as u64;
            (submission.data.len() as u64 > limit).then(|| {
                format!(
                    "messaggio di {} byte oltre il limite di {limit} byte per {} destinatari (simulato)",
                    submission.data.len(),
                    submission.rcpts.len()
                )
            })
        });
        let refusal = match oversize {
            Some(why) => Some(why),
            None => not_accepted.then(|| "messaggio non conforme (simulato)".to_owned()),
        };
        let now = chrono::Local::now().fixed_offset();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let out = receipts_for(submission, sender, &self.mailboxes, &behavior, refusal.as_deref(), now, seq);
        if behavior.hold {
            self.held.lock().unwrap_or_else(|p| p.into_inner()).extend(out);
        } else {
            for (user, bytes) in out {
                self.mailstore.deliver(&user, bytes);
            }
        }
    }

    /// Delivers receipts kept back while `hold` was set.
    pub fn release_held(&self) -> usize {
        let held: Vec<_> = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        let n = held.len();
        for (user, bytes) in held {
            self.mailstore.deliver(&user, bytes);
        }
        n
    }

    /// Puts a message straight into a mailbox (anomalies, webmail receipts, tests).
    pub fn deliver(&self, username: &str, bytes: Vec<u8>) -> String {
        self.mailstore.deliver(username, bytes)
    }

    pub fn set_behavior(&self, b: Behavior) {
        *self.behavior.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }
}

impl ProviderBackend {
    fn mailbox(&self, info: &SessionInfo) -> Option<SimMailbox> {
        info.auth.as_ref().and_then(|u| self.accounts.read().unwrap_or_else(|p| p.into_inner()).get(u).cloned())
    }
}

impl Backend for ProviderBackend {
    type Sink = Vec<u8>;

    fn auth_enabled(&self) -> bool {
        true
    }

    async fn authenticate(&self, _info: &SessionInfo, user: &str, password: &str) -> Result<String, Response> {
        self.faults.fire(Stage::Auth).await?;
        let account = self.accounts.read().unwrap_or_else(|p| p.into_inner()).get(user).cloned();
        match account {
            Some(m) if crate::util::constant_time_eq(m.password.as_bytes(), password.as_bytes()) => Ok(user.to_owned()),
            _ => Err(reply::r535_auth_failed().into()),
        }
    }

    async fn mail(&self, info: &SessionInfo, from: &str) -> Result<(), Response> {
        self.faults.fire(Stage::Mail).await?;
        let Some(m) = self.mailbox(info) else { return Err(reply::r530_auth_required().into()) };
        if !from.eq_ignore_ascii_case(&m.address) {
            return Err(sender_not_owned(from, &m.username).into());
        }
        self.throttle.check(&m.address).map_err(Response::from)?;
        Ok(())
    }

    async fn rcpt(&self, _info: &SessionInfo, envelope: &Envelope, _to: &str) -> Result<(), Response> {
        self.faults.fire(Stage::Rcpt).await?;
        if envelope.rcpts.len() >= MAX_RECIPIENTS {
            return Err(Reply::new(452, Some("4.5.3"), format!("too many recipients, at most {MAX_RECIPIENTS}")).into());
        }
        Ok(())
    }

    async fn data_start(&self, _info: &SessionInfo, _envelope: &Envelope) -> Result<Vec<u8>, Response> {
        Ok(Vec::new())
    }

    async fn data_end(&self, info: &SessionInfo, envelope: &Envelope, data: Vec<u8>, _size: u64) -> Response {
        if let Err(r) = self.faults.fire(Stage::Data).await {
            return r;
        }
        let Some(m) = self.mailbox(info) else { return reply::r530_auth_required().into() };
        if let Err(r) = check_pec_rules(&m.address, envelope, &data) {
            return r.into();
        }
        let captured = Captured { mail_from: envelope.mail_from.clone(), rcpts: envelope.rcpts.clone(), data, auth: info.auth.clone() };
        self.retrieval.after_submission(&captured, &m);
        self.bag.push(captured);
        if let Err(r) = self.faults.fire(Stage::Accepted).await {
            return r;
        }
        Reply::new(250, Some("2.0.0"), format!("ok: message accepted for mailbox {}", m.address)).into()
    }
}

/// PEC.md's sender rules, checked on the message as a provider would.
fn check_pec_rules(mailbox: &str, envelope: &Envelope, data: &[u8]) -> Result<(), Reply> {
    let parsed =
        mail_parser::MessageParser::default().parse_headers(data).ok_or_else(|| Reply::new(554, Some("5.6.0"), "unparsable message"))?;
    let from = parsed.from().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default();
    if !from.eq_ignore_ascii_case(mailbox) {
        return Err(Reply::new(553, Some("5.7.1"), format!("From: {from} is not the mailbox {mailbox}")));
    }
    let mut visible: Vec<String> = Vec::new();
    for list in [parsed.to(), parsed.cc()].into_iter().flatten() {
        for a in list.iter() {
            if let Some(addr) = a.address() {
                visible.push(addr.to_ascii_lowercase());
            }
        }
    }
    if let Some(hidden) = envelope.rcpts.iter().find(|r| !visible.contains(&r.to_ascii_lowercase())) {
        return Err(Reply::new(550, Some("5.7.1"), format!("recipient {hidden} is not in To or Cc (no Bcc in PEC)")));
    }
    if parsed.header("Bcc").is_some() {
        return Err(Reply::new(550, Some("5.7.1"), "Bcc header not allowed in PEC"));
    }
    Ok(())
}

pub struct SimProvider {
    /// SMTPS submission.
    pub addr: SocketAddr,
    /// POP3S mailboxes (same certificate).
    pub pop3_addr: SocketAddr,
    /// PEM of the CA that signed the server certificate (write it to `ca_file`).
    pub ca_pem: String,
    pub bag: Arc<Mailbag>,
    pub faults: Arc<Faults>,
    /// Off until `throttle.set`.
    pub throttle: Arc<Throttle>,
    pub pop3_faults: Arc<Pop3Faults>,
    /// IMAPS on the same mailstore (127.0.0.1, any port): options and faults.
    pub imap: super::imap::ImapServer,
    pub retrieval: Arc<Retrieval>,
    accounts: Accounts,
    _pop3: Pop3Server,
    _shutdown: watch::Sender<bool>,
}

impl SimProvider {
    /// Starts on `bind` with the given mailboxes; `dir` keeps a copy of each accepted message.
    /// SMTPS on `bind`, POP3S on 127.0.0.1 (any port).
    pub async fn start(bind: &str, mailboxes: Vec<SimMailbox>, dir: Option<PathBuf>) -> std::io::Result<Self> {
        let pki = TestPki::generate(&["localhost", "127.0.0.1"]).map_err(|e| std::io::Error::other(e.to_string()))?;
        Self::start_with_pki(bind, "127.0.0.1:0", mailboxes, dir, pki).await
    }

    pub async fn start_with_pki(
        bind: &str,
        pop3_bind: &str,
        mailboxes: Vec<SimMailbox>,
        dir: Option<PathBuf>,
        pki: TestPki,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let bag = Arc::new(Mailbag::new(dir));
        let faults = Arc::new(Faults::default());
        let mailstore = Arc::new(Mailstore::new());
        for m in &mailboxes {
            mailstore.add_user(&m.username, &m.password);
        }
        let pop3_faults = Pop3Faults::new();
        let pop3 = Pop3Server::start_with_tls(
            pop3_bind,
            mailstore.clone(),
            ServerSecurity::ImplicitTls,
            pop3_faults.clone(),
            pki.server.clone(),
            pki.ca_pem.clone(),
        )
        .await?;
        let imap = super::imap::ImapServer::start("127.0.0.1:0", mailstore.clone(), pki.server.clone()).await?;
        let retrieval = Arc::new(Retrieval {
            mailstore,
            behavior: Mutex::new(Behavior::default()),
            mailboxes: mailboxes.clone(),
            rules: std::sync::RwLock::new(HashMap::new()),
            held: Mutex::new(Vec::new()),
            seq: AtomicU64::new(1),
        });
        let accounts: Accounts = Arc::new(std::sync::RwLock::new(mailboxes.into_iter().map(|m| (m.username.clone(), m)).collect()));
        let throttle = Arc::new(Throttle::default());
        let backend = ProviderBackend {
            accounts: accounts.clone(),
            bag: bag.clone(),
            faults: faults.clone(),
            retrieval: retrieval.clone(),
            throttle: throttle.clone(),
        };
        let (tx, rx) = watch::channel(false);
        let mut session = SessionConfig::new("smtps.sim-pec.localhost");
        session.command_timeout = Duration::from_secs(60);
        let setup = SessionSetup {
            backend: Arc::new(backend),
            session: Arc::new(session),
            allowed_clients: Arc::from(Vec::new()),
            max_sessions: 200,
        };
        accept::spawn(
            listener,
            Arc::new(setup),
            ListenerConfig { implicit_tls: Some(TlsAcceptor::from(pki.server.clone())), name: "sim" },
            rx,
        );
        Ok(Self {
            addr,
            pop3_addr: pop3.addr,
            ca_pem: pki.ca_pem,
            bag,
            faults,
            throttle,
            pop3_faults,
            imap,
            retrieval,
            accounts,
            _pop3: pop3,
            _shutdown: tx,
        })
    }

    /// Makes mailbox `username` behave like `provider` (rate limit, size rule, receipts).
    pub fn set_profile(&self, username: &str, provider: Provider, max_message_bytes: Option<u64>) {
        let rules = SimRules::of(provider, max_message_bytes);
        let address = self.accounts.read().unwrap_or_else(|p| p.into_inner()).get(username).map(|m| m.address.clone());
        if let (Some(per_minute), Some(address)) = (rules.per_minute, address) {
            self.throttle.limit(&address, per_minute);
        }
        self.retrieval.rules.write().unwrap_or_else(|p| p.into_inner()).insert(username.to_owned(), rules);
    }

    /// Changes a login's password for SMTP and POP3, as a provider's forced
    /// change does: sessions already logged in stay, new logins need it.
    pub fn set_password(&self, username: &str, password: &str) {
        if let Some(m) = self.accounts.write().unwrap_or_else(|p| p.into_inner()).get_mut(username) {
            m.password = password.to_owned();
        }
        self.retrieval.mailstore.add_user(username, password);
    }
}

/// Aruba's refusal of an envelope sender that is not the login's (Postfix's
/// `reject_sender_login_mismatch` wording, which Aruba's servers give).
fn sender_not_owned(from: &str, login: &str) -> Reply {
    Reply::new(553, Some("5.7.1"), format!("<{from}>: Sender address rejected: not owned by user {login}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_sender_gets_arubas_553_which_pecgate_reads_as_a_mailbox_misconfiguration() {
        let reply = sender_not_owned("altro@pec.it", "box-login");
        assert_eq!(reply.to_string().trim_end(), "553 5.7.1 <altro@pec.it>: Sender address rejected: not owned by user box-login");
        assert_eq!(crate::outbound::replies::classify(&reply), Some(crate::outbound::replies::Meaning::SenderNotOwned));
    }

    #[test]
    fn pec_rules() {
        let env = |rcpts: &[&str]| Envelope {
            mail_from: "box@pec.it".into(),
            rcpts: rcpts.iter().map(|s| s.to_string()).collect(),
            declared_size: None,
        };
        let msg = b"From: Box <box@pec.it>\r\nTo: a@x.it\r\nCc: b@x.it\r\nSubject: s\r\n\r\nbody\r\n";
        assert!(check_pec_rules("box@pec.it", &env(&["a@x.it", "B@x.it"]), msg).is_ok());
        assert_eq!(check_pec_rules("box@pec.it", &env(&["c@x.it"]), msg).unwrap_err().code, 550);
        assert_eq!(check_pec_rules("other@pec.it", &env(&["a@x.it"]), msg).unwrap_err().code, 553);
    }
}
