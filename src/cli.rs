//! Operator commands that work next to a running gateway: `status`,
//! `queue list|show|retry|drop` (on the gateway's store: SQLite, which WAL
//! lets several processes use, or the cluster's PostgreSQL) and `test-mailbox` (a dry run of the provider's
//! SMTP and POP3, step by step). Output is for people; exit codes: 0 ok,
//! 1 a check failed or the store cannot be opened, 2 no such message.

use std::fmt::Write as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Config, Secrets, Security};
use crate::imap;
use crate::outbound::client::{Endpoint, SmtpClient};
use crate::pop3::client as pop3;
use crate::runtime::Mailbox;
use crate::store::sql::SqlStore;
use crate::store::{Message, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] crate::store::Error),
    #[error("message {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `pecgate pin set`: checks mailbox and user against the configuration and
/// stores the Argon2id hash of `pin` (read by the caller, never an argument).
pub async fn pin_set(config: &Config, store: &dyn Store, mailbox: &str, user: &str, pin: &str, now: i64) -> Result<String> {
    let m = pin_mailbox(config, mailbox)?;
    if !m.users.iter().any(|u| u.address.eq_ignore_ascii_case(user)) {
        // A directory (LDAP) may know more users than the file: say so, but allow it.
        tracing::warn!(mailbox = %mailbox, user = %user, "not a [[mailbox.user]] of this mailbox in the file");
    }
    let hash = tokio::task::spawn_blocking({
        let pin = pin.to_owned();
        move || crate::pin::hash(&pin)
    })
    .await
    .map_err(|e| Error::Usage(e.to_string()))?
    .map_err(|e| Error::Usage(e.to_string()))?;
    store.set_pin(&m.id, user, &hash, now).await?;
    let note = if m.require_pin { "" } else { " (this mailbox has require_pin = false: the PIN is not asked yet)" };
    Ok(format!("PIN set for {} on mailbox {}{note}\n", user.to_ascii_lowercase(), m.id))
}

/// `pecgate pin remove`.
pub async fn pin_remove(config: &Config, store: &dyn Store, mailbox: &str, user: &str) -> Result<String> {
    let m = pin_mailbox(config, mailbox)?;
    if store.remove_pin(&m.id, user).await? {
        Ok(format!("PIN removed for {} on mailbox {}\n", user.to_ascii_lowercase(), m.id))
    } else {
        Err(Error::NotFound(format!("PIN of {user} on mailbox {}", m.id)))
    }
}

/// `pecgate pin list`: mailbox, user, when set; never a hash.
pub async fn pin_list(config: &Config, store: &dyn Store, mailbox: Option<&str>) -> Result<String> {
    if let Some(m) = mailbox {
        pin_mailbox(config, m)?;
    }
    let pins = store.pins(mailbox).await?;
    let mut out = String::new();
    let _ = writeln!(out, "{:<16} {:<40} SET", "MAILBOX", "USER");
    for p in &pins {
        let _ = writeln!(out, "{:<16} {:<40} {}", p.mailbox, p.user, when(p.set_at));
    }
    for m in config.mailboxes.iter().filter(|m| m.require_pin && mailbox.is_none_or(|x| x == m.id)) {
        let missing: Vec<&str> = m
            .users
            .iter()
            .filter(|u| u.send && !pins.iter().any(|p| p.mailbox == m.id && p.user.eq_ignore_ascii_case(&u.address)))
            .map(|u| u.address.as_str())
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(out, "mailbox {} requires a PIN; without one: {}", m.id, missing.join(", "));
        }
    }
    Ok(out)
}

fn pin_mailbox<'c>(config: &'c Config, id: &str) -> Result<&'c crate::config::MailboxConfig> {
    config.mailboxes.iter().find(|m| m.id == id).ok_or_else(|| {
        let ids: Vec<&str> = config.mailboxes.iter().map(|m| m.id.as_str()).collect();
        Error::Usage(format!("no mailbox {id:?} in the configuration (mailboxes: {})", ids.join(", ")))
    })
}

/// Opens the gateway's store; events written by operator commands name `cli@<instance>`.
pub async fn open_store(config: &Config, secrets: &Secrets) -> Result<SqlStore> {
    Ok(crate::store::open(&config.store, secrets.store_url.as_ref(), &format!("cli@{}", config.cluster.instance_id)).await?)
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn age(now: i64, ms: i64) -> String {
    let s = ((now - ms).max(0) / 1000) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn destination(m: &Message) -> String {
    m.route.mailbox().map(|mb| format!("provider:{mb}")).unwrap_or_else(|| "corporate".into())
}

/// `pecgate status`: per mailbox, what waits and what is pending.
pub async fn status(config: &Config, store: &dyn Store, now: i64) -> Result<String> {
    let queues = store.queue_stats().await?;
    let recipients = store.recipient_state_counts().await?;
    let mut out = String::new();
    let _ = writeln!(out, "{:<12} {:<34} {:<7} {:>6} {:>8} {:>8}  RECEIPTS", "MAILBOX", "ADDRESS", "ACTIVE", "QUEUE", "OLDEST", "PENDING");
    for m in &config.mailboxes {
        let (n, oldest) =
            queues.iter().find(|(r, mb, _, _)| r == "provider" && *mb == m.id).map_or((0, None), |(_, _, n, o)| (*n, Some(*o)));
        let count = |state: &str| recipients.iter().find(|(mb, s, _)| *mb == m.id && s == state).map_or(0, |(_, _, n)| *n);
        let pending = count("submitted") + count("accepted") + count("warned");
        let receipts = format!(
            "delivered {} / error {} / warned {} / not accepted {}",
            count("delivered"),
            count("delivery_error"),
            count("warned"),
            count("not_accepted")
        );
        let _ = writeln!(
            out,
            "{:<12} {:<34} {:<7} {:>6} {:>8} {:>8}  {}",
            m.id,
            m.address,
            if m.active { "yes" } else { "no" },
            n,
            oldest.map(|o| age(now, o)).unwrap_or_else(|| "-".into()),
            pending,
            receipts
        );
    }
    if let Some((_, _, n, o)) = queues.iter().find(|(r, _, _, _)| r == "corporate") {
        let _ = writeln!(
            out,
            "{:<12} {:<34} {:<7} {:>6} {:>8}",
            "corporate",
            format!("{}:{}", config.corporate.host, config.corporate.port),
            "-",
            n,
            age(now, *o)
        );
    }
    let skipped = store.skipped(None).await?;
    if !skipped.is_empty() {
        let _ = writeln!(
            out,
            "\n{} message(s) left on the providers' servers because pecgate cannot take them: see `pecgate fetch --config FILE`",
            skipped.len()
        );
    }
    // Who runs: one line per instance that used this store, with its leases.
    let leases = store.leases().await?;
    let lease_ms = crate::cluster::lease_ms(config.cluster.lease_secs);
    let _ = writeln!(out, "\n{:<20} {:<13} {:>9}  {:<21}  LEASES", "INSTANCE", "STATUS", "HEARTBEAT", "SMTP");
    for i in store.instances().await? {
        let status = crate::cluster::instance_status(&i, now, lease_ms);
        let held = crate::cluster::held_leases(&leases, &i.id, now);
        let _ = writeln!(out, "{:<20} {:<13} {:>9}  {:<21}  {}", i.id, status, age(now, i.heartbeat_at), i.smtp, held.join(", "));
    }
    Ok(out)
}

/// `pecgate queue list`: what waits, oldest first.
pub async fn queue_list(store: &dyn Store, now: i64) -> Result<String> {
    let waiting = store.due_messages(i64::MAX, 1000).await?;
    let mut out = format!("{:<18} {:<18} {:>6} {:>5} {:>9}  {}\n", "QUEUE ID", "DESTINATION", "AGE", "TRIES", "NEXT", "LAST ERROR");
    for m in &waiting {
        let next = if m.next_attempt_at <= now { "now".to_owned() } else { format!("in {}", age(m.next_attempt_at, now)) };
        let _ = writeln!(
            out,
            "{:<18} {:<18} {:>6} {:>5} {:>9}  {}",
            m.id,
            destination(m),
            age(now, m.created_at),
            m.attempts,
            next,
            m.last_error.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "{} message(s) waiting", waiting.len());
    Ok(out)
}

/// `pecgate queue show ID`: the message, each recipient, every event.
pub async fn queue_show(store: &dyn Store, id: &str) -> Result<String> {
    let m = store.message(id).await?.ok_or_else(|| Error::NotFound(id.to_owned()))?;
    let mut out = String::new();
    let _ = writeln!(out, "queue id:     {}", m.id);
    let _ = writeln!(out, "kind:         {}", m.kind.as_str());
    let _ = writeln!(out, "destination:  {}", destination(&m));
    let _ = writeln!(out, "state:        {}", m.state);
    let _ = writeln!(out, "from:         {} (sent by {})", m.mail_from, m.original_sender);
    let _ = writeln!(out, "message-id:   <{}>", m.message_id);
    let _ = writeln!(out, "subject:      {}", m.subject);
    let _ = writeln!(out, "size:         {} bytes", m.size);
    let _ = writeln!(out, "received:     {}", when(m.created_at));
    let _ = writeln!(out, "attempts:     {}", m.attempts);
    if let Some(e) = &m.last_error {
        let _ = writeln!(out, "last error:   {e}");
    }
    let _ = writeln!(out, "\nrecipients:");
    for r in store.recipients(id).await? {
        let _ = writeln!(out, "  {:<40} {:<20} {}", r.address, r.state.as_str(), r.last_reply.as_deref().unwrap_or(""));
    }
    let _ = writeln!(out, "\nevents:");
    for e in store.events(id).await? {
        let _ = writeln!(out, "  {}  {:<22} {:<30} {}", when(e.at), e.kind, e.rcpt.as_deref().unwrap_or(""), e.detail);
    }
    let receipts = store.fetched_for(id).await?;
    if !receipts.is_empty() {
        let _ = writeln!(out, "\nreceipts:");
        for r in receipts {
            let _ = writeln!(out, "  {}  {:<26} {:<30} fetched {}", when(r.fetched_at), r.kind, r.consegna.as_deref().unwrap_or(""), r.id);
        }
    }
    Ok(out)
}

pub async fn queue_retry(store: &dyn Store, id: &str, now: i64) -> Result<String> {
    if store.retry_now(id, now, &operator()).await? {
        Ok(format!("{id}: due now; the running gateway picks it up within 30 s"))
    } else if store.message(id).await?.is_some() {
        Err(Error::Usage(format!("{id} is not waiting in the queue (see `pecgate queue show {id}`)")))
    } else {
        Err(Error::NotFound(id.to_owned()))
    }
}

pub async fn queue_drop(store: &dyn Store, id: &str, now: i64) -> Result<String> {
    if store.drop_message(id, now, &operator()).await? {
        Ok(format!("{id}: dropped (state failed; the sender is not notified)"))
    } else if store.message(id).await?.is_some() {
        Err(Error::Usage(format!("{id} is not waiting in the queue")))
    } else {
        Err(Error::NotFound(id.to_owned()))
    }
}

/// Who did it, for the audit event.
fn operator() -> String {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    format!("cli user {user}")
}

/// One line of the test-mailbox report.
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

async fn step<T, E: std::fmt::Display>(
    steps: &mut Vec<Step>,
    name: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, E>>,
    detail: impl Fn(&T) -> String,
) -> Option<T> {
    let pb = spinner(name.to_owned());
    let r = fut.await;
    pb.finish_and_clear();
    match r {
        Ok(v) => {
            steps.push(Step { name: name.to_owned(), ok: true, detail: detail(&v) });
            Some(v)
        }
        Err(e) => {
            steps.push(Step { name: name.to_owned(), ok: false, detail: e.to_string() });
            None
        }
    }
}

/// `pecgate test-mailbox`: DNS, TCP, TLS, AUTH against the provider's SMTP
/// (QUIT without sending), then POP3 login and STAT. Stops a side at its
/// first failing step.
pub async fn test_mailbox(config: &Config, m: &Mailbox) -> Vec<Step> {
    let mut steps = Vec::new();
    let timeout = Duration::from_secs(m.smtp.timeout_secs.max(1));
    let host = format!("{}:{}", m.smtp.host, m.smtp.port);
    let lookup = async { tokio::net::lookup_host(host.clone()).await.map(|addrs| addrs.map(|a| a.ip().to_string()).collect::<Vec<_>>()) };
    let resolved = step(&mut steps, &format!("SMTP DNS {}", m.smtp.host), lookup, |ips| ips.join(", ")).await;
    if resolved.is_some() {
        let tcp = step(
            &mut steps,
            &format!("SMTP TCP {host}"),
            async {
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&host))
                    .await
                    .map_err(|_| "timeout".to_string())?
                    .map_err(|e| e.to_string())
            },
            |_| "connected".into(),
        )
        .await;
        if tcp.is_some() {
            let endpoint = match crate::tls::client_config(m.smtp.ca_file.as_deref()) {
                Ok(tls) => Some(Endpoint {
                    host: m.smtp.host.clone(),
                    port: m.smtp.port,
                    security: m.smtp.security,
                    tls,
                    timeout,
                    credentials: Some((m.username.clone(), m.password.clone())),
                    helo: config.smtp.hostname.clone(),
                }),
                Err(e) => {
                    steps.push(Step { name: "SMTP TLS configuration".into(), ok: false, detail: e.to_string() });
                    None
                }
            };
            if let Some(ep) = endpoint {
                let mode = if m.smtp.security == Security::Tls { "implicit TLS" } else { "STARTTLS" };
                if let Some(client) = step(
                    &mut steps,
                    &format!("SMTP {mode} (certificate verified) + EHLO + AUTH as {}", m.username),
                    SmtpClient::connect(&ep),
                    |c| format!("{}, authenticated", c.tls_version().unwrap_or("TLS")),
                )
                .await
                {
                    client.quit().await;
                }
            }
        }
    }
    if let Some(p) = &m.pop3 {
        let ep = match crate::tls::client_config(p.ca_file.as_deref()) {
            Ok(tls) => pop3::Endpoint {
                host: p.host.clone(),
                port: p.port,
                security: if p.security == Security::Starttls { pop3::Security::StartTls } else { pop3::Security::Tls },
                tls,
                timeout: Duration::from_secs(p.timeout_secs.max(1)),
            },
            Err(e) => {
                steps.push(Step { name: "POP3 TLS configuration".into(), ok: false, detail: e.to_string() });
                return steps;
            }
        };
        let addr = format!("{}:{}", p.host, p.port);
        if step(&mut steps, &format!("POP3 DNS {}", p.host), tokio::net::lookup_host(addr.clone()), |_| "resolved".into()).await.is_none() {
            return steps;
        }
        let Some(mut client) =
            step(&mut steps, &format!("POP3 connect {addr} (TLS, certificate verified)"), pop3::Client::connect(&ep), |_| {
                "connected".into()
            })
            .await
        else {
            return steps;
        };
        if step(&mut steps, &format!("POP3 login as {}", m.username), client.login(&m.username, &m.password), |_| "logged in".into())
            .await
            .is_some()
        {
            step(&mut steps, "POP3 STAT", client.stat(), |(n, size)| format!("{n} message(s), {size} bytes")).await;
        }
        let _ = client.quit().await;
    } else if m.imap.is_some() {
        test_imap(m, &mut steps).await;
    } else {
        steps.push(Step {
            name: "retrieval".into(),
            ok: true,
            detail: "no [mailbox.pop3] or [mailbox.imap] configured: not fetching".into(),
        });
    }
    steps
}

/// IMAP login, the capabilities pecgate uses (IDLE, UIDPLUS, MOVE) and a
/// SELECT of each configured folder; LOGOUT without touching a message.
async fn test_imap(m: &Mailbox, steps: &mut Vec<Step>) {
    let Some(p) = &m.imap else { return };
    let ep = match crate::tls::client_config(p.ca_file.as_deref()) {
        Ok(tls) => crate::fetch::imap::endpoint(p, tls),
        Err(e) => {
            steps.push(Step { name: "IMAP TLS configuration".into(), ok: false, detail: e.to_string() });
            return;
        }
    };
    let addr = format!("{}:{}", p.host, p.port);
    if step(steps, &format!("IMAP DNS {}", p.host), tokio::net::lookup_host(addr.clone()), |_| "resolved".into()).await.is_none() {
        return;
    }
    let Some(mut client) =
        step(steps, &format!("IMAP connect {addr} (TLS, certificate verified)"), imap::Client::connect(&ep), |_| "connected".into()).await
    else {
        return;
    };
    if step(steps, &format!("IMAP login as {}", m.username), client.login(&m.username, &m.password), |_| "logged in".into()).await.is_none()
    {
        return;
    }
    let missing: Vec<&str> = ["IDLE", "UIDPLUS", "MOVE"].into_iter().filter(|c| !client.has(c)).collect();
    let detail = if missing.is_empty() {
        "IDLE, UIDPLUS and MOVE offered".to_owned()
    } else {
        // Each has a fallback: polling, EXPUNGE of only our own flags, COPY + delete.
        format!("not offered: {} (pecgate falls back: polling / plain EXPUNGE / COPY)", missing.join(", "))
    };
    steps.push(Step { name: "IMAP CAPABILITY".into(), ok: true, detail });
    for folder in &p.folders {
        step(steps, &format!("IMAP SELECT {folder}"), client.select(folder), |s| {
            format!("{} message(s), UIDVALIDITY {}", s.exists, s.uidvalidity)
        })
        .await;
    }
    let _ = client.logout().await;
}

/// `pecgate fetch`: what is left on the providers' servers, and how to retry.
pub fn render_skipped(skipped: &[crate::store::Skipped], config: &std::path::Path) -> String {
    if skipped.is_empty() {
        return "no message is skipped: everything on the providers' servers was fetched\n".into();
    }
    let mut out = format!("{:<12} {:<26} {:>12}  {:<19}  REASON\n", "MAILBOX", "ID", "SIZE", "SINCE");
    for s in skipped {
        let size = s.size.map_or("?".to_owned(), |n| n.to_string());
        let _ = writeln!(out, "{:<12} {:<26} {:>12}  {:<19}  {}", s.mailbox_id, s.uidl, size, when(s.at), s.reason);
    }
    let _ = writeln!(
        out,
        "\nfetch one again (after raising the limit and `pecgate reload`): pecgate fetch --config {} --retry ID",
        config.display()
    );
    out
}

pub fn render_steps(mailbox: &str, steps: &[Step]) -> String {
    let mut out = format!("mailbox {mailbox}\n");
    for s in steps {
        let _ = writeln!(out, "  [{}] {}: {}", if s.ok { " OK " } else { "FAIL" }, s.name, s.detail);
    }
    out
}

/// `pecgate trust show`: one block per anchor, then any expiry warning.
pub fn render_trust(trust: &crate::pec::signature::TrustStore, now: chrono::DateTime<chrono::Utc>) -> String {
    let day = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "?".to_string(), |t| t.format("%Y-%m-%d").to_string());
    let mut out = String::new();
    let anchors = trust.anchors();
    if anchors.is_empty() {
        out.push_str("no trust anchors: every good provider signature reads valid-untrusted-signer\n");
    }
    for a in &anchors {
        out.push_str(&format!(
            "{}\n  sha256   {}\n  valid    {} .. {}\n  source   {}\n",
            a.subject,
            a.sha256,
            day(a.not_before),
            day(a.not_after),
            a.source
        ));
    }
    for w in trust.expiry_warnings(now) {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
