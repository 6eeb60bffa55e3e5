//! The PIN check of a `require_pin` mailbox, after the policy accepted the
//! message: the user's hash comes from the directory member (an LDAP
//! attribute) or else the store; Argon2 runs on the blocking pool; wrong
//! PINs are recorded for the lockout (`[pin]`), and the mailbox admin is
//! told once per lockout. Nothing here logs, stores or replies the PIN.

use std::sync::Arc;

use crate::clock::Clock;
use crate::enqueue::Enqueue;
use crate::notify;
use crate::pin;
use crate::policy::Pin;
use crate::policy::tag::tagged_marker;
use crate::proto::reply::{self, Reply};
use crate::runtime::{Mailbox, Runtime};

/// Why a PIN check did not pass, for the metric and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No PIN in the tag, or none set for the user.
    Missing,
    Wrong,
    Locked,
}

impl Failure {
    /// The `reason` label of `pecgate_pin_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::Wrong => "wrong",
            Failure::Locked => "locked",
        }
    }
}

/// What the check needs from the gateway.
pub struct PinCheck<'a> {
    pub rt: &'a Runtime,
    pub enqueue: &'a Enqueue,
    pub clock: &'a Arc<dyn Clock>,
    pub mailbox: &'a Mailbox,
    /// The user the policy checked (login user or envelope sender).
    pub user: &'a str,
    /// The marker of the tag, for the example in the reply.
    pub marker: &'a str,
    pub pin: Option<&'a Pin>,
    pub queue_id: &'a str,
}

/// Local trouble (store, directory, a broken hash): the session defers.
fn temporary(check: &PinCheck<'_>, what: &str, error: &dyn std::fmt::Display) -> Reply {
    tracing::error!(queue_id = %check.queue_id, mailbox = %check.mailbox.id, user = %check.user, error = %error, "PIN check: {what}; answered 451");
    reply::r451_local_error()
}

fn until_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn refuse(check: &PinCheck<'_>, failure: Failure, reply: Reply) -> Result<(), Reply> {
    metrics::counter!("pecgate_pin_failures_total", "mailbox" => check.mailbox.id.clone(), "reason" => failure.as_str()).increment(1);
    tracing::info!(queue_id = %check.queue_id, mailbox = %check.mailbox.id, user = %check.user, reason = failure.as_str(), status = "rejected", reply = %reply, "PIN check failed");
    Err(reply)
}

/// Ok: the PIN matches. Err: the reply to refuse (550) or defer (451) with.
pub async fn check(c: &PinCheck<'_>) -> Result<(), Reply> {
    let store = c.enqueue.store();
    let cfg = &c.rt.config.pin;
    let (id, address) = (&c.mailbox.id, &c.mailbox.address);
    let now = c.clock.now_ms();
    let keep_since = now - pin::retention_ms(cfg);
    let failures = store.pin_failures(id, c.user, keep_since).await.map_err(|e| temporary(c, "store", &e))?;
    if let Some(until) = pin::locked_until(&failures, now, cfg) {
        return refuse(c, Failure::Locked, reply::r550_pin_locked(address, c.user, &until_text(until)));
    }
    let Some(pin) = c.pin else {
        let example = tagged_marker(c.marker, &format!("{id}:PIN"));
        return refuse(c, Failure::Missing, reply::r550_pin_missing(address, &example));
    };
    let members = c.rt.directory.members(id).await.map_err(|e| temporary(c, "directory", &e))?;
    let from_directory = members.iter().find(|m| m.address.eq_ignore_ascii_case(c.user)).and_then(|m| m.pin_hash.clone());
    let hash = match from_directory {
        Some(h) => Some(h),
        None => store.pin_hash(id, c.user).await.map_err(|e| temporary(c, "store", &e))?,
    };
    let Some(hash) = hash else {
        return refuse(c, Failure::Missing, reply::r550_pin_not_set(address, id, c.user));
    };
    let matches = if pin.well_formed() {
        let digits = pin.expose().to_owned();
        tokio::task::spawn_blocking(move || pin::verify(&hash, &digits))
            .await
            .map_err(|e| temporary(c, "verification task", &e))?
            .map_err(|e| temporary(c, "stored hash", &e))?
    } else {
        false
    };
    if matches {
        if !failures.is_empty() {
            store.clear_pin_failures(id, c.user).await.map_err(|e| temporary(c, "store", &e))?;
        }
        return Ok(());
    }
    let kept = store.add_pin_failure(id, c.user, now, keep_since).await.map_err(|e| temporary(c, "store", &e))?;
    match pin::locked_until(&kept, now, cfg) {
        Some(until) => {
            tell_admin(c, until, kept.len()).await;
            refuse(c, Failure::Locked, reply::r550_pin_locked(address, c.user, &until_text(until)))
        }
        None => refuse(c, Failure::Wrong, reply::r550_pin_wrong(address, c.user)),
    }
}

/// The mailbox admin hears of a lockout once (the alarm names the lockout's
/// end, so instances sharing the store agree on which one it is).
async fn tell_admin(c: &PinCheck<'_>, until: i64, failures: usize) {
    let (id, rt) = (&c.mailbox.id, c.rt);
    let now = c.clock.now_ms();
    let alarm = format!("pin-lockout:{id}:{}:{until}", c.user.to_ascii_lowercase());
    match c.enqueue.store().raise_alarm(&alarm, now).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(mailbox = %id, error = %e, "cannot record the PIN lockout alarm; the admin is not told");
            return;
        }
    }
    tracing::warn!(mailbox = %id, user = %c.user, until = %until_text(until), "too many wrong PINs: user locked out of the mailbox");
    let admin = match rt.directory.members(id).await {
        Ok(members) => crate::directory::admin(&members).map(|a| a.address.clone()),
        Err(e) => {
            tracing::error!(mailbox = %id, error = %e, "cannot find the mailbox admin to notify");
            None
        }
    };
    let Some(admin) = admin else { return };
    let cfg = &rt.config.pin;
    let problem =
        format!("{failures} wrong PINs within {} s: {} may not send from it until {}", cfg.window_secs, c.user, until_text(until));
    let corp = &rt.config.corporate;
    let (bytes, message_id) = notify::pin_lockout_notice(
        &notify::MailboxNotice {
            from: &corp.from,
            to: &admin,
            mailbox_address: &c.mailbox.address,
            problem: &problem,
            hostname: &rt.config.smtp.hostname,
            language: corp.language,
            date_unix: now / 1000,
            id: &crate::queue::new_queue_id(now),
        },
        c.user,
    );
    match c.enqueue.notice(&corp.from, &admin, &bytes, message_id, &format!("PIN lockout on mailbox {id}")).await {
        Ok(notice) => tracing::warn!(mailbox = %id, notice = %notice, to = %admin, "mailbox admin notified of the PIN lockout"),
        Err(e) => tracing::error!(mailbox = %id, error = %e, "cannot queue the PIN lockout notice"),
    }
}
