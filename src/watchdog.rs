//! Timers nobody watches by hand (PEC.md: "12 h / 24 h timeouts nobody
//! watches"): no acceptance receipt in time -> the sender is told; no
//! delivery receipt after 12 h (warning) and 24 h (final) per certified
//! recipient -> the sender is told; a queue stuck for too long or a mailbox
//! not polled successfully for too long -> the mailbox admin is told.
//! Each notice goes out once: per message (an event in its history) or per
//! incident (until the condition clears), and at most `max_notices_per_pass`
//! per pass. Everything leaves through `enqueue` like any other mail.
//! Each pass takes the runtime snapshot current at its start (thresholds,
//! mailboxes, who to tell, from the directory).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::cluster::{self, Cluster};
use crate::enqueue::Enqueue;
use crate::fetch::Fetchers;
use crate::notify::{self, Overdue};
use crate::runtime::{Live, Mailbox, Runtime};
use crate::store::{Message, Store};

pub struct Watchdog {
    live: Arc<Live>,
    store: Arc<dyn Store>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
    fetchers: Arc<Fetchers>,
    /// Open admin incidents ("queue_stuck:legal", "poll_stale:legal").
    incidents: Mutex<HashSet<String>>,
    /// With several instances, one runs the watchdog (it holds the lease).
    cluster: Arc<Cluster>,
}

/// What one pass did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub notices: usize,
}

impl Watchdog {
    pub fn new(
        live: Arc<Live>,
        store: Arc<dyn Store>,
        enqueue: Arc<Enqueue>,
        clock: Arc<dyn Clock>,
        fetchers: Arc<Fetchers>,
        cluster: Arc<Cluster>,
    ) -> Self {
        Self { live, store, enqueue, clock, fetchers, incidents: Mutex::new(HashSet::new()), cluster }
    }

    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let every = Duration::from_secs(self.live.get().config.watchdog.interval_secs.max(1));
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let interval_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
            if !self.cluster.hold(cluster::WATCHDOG_LEASE, interval_ms).await {
                // Another instance watches; its gauges count, ours would be stale.
                let rt = self.live.get();
                for kind in ["acceptance", "delivery_12h", "delivery_24h"] {
                    set_overdue_gauges(&rt, kind, &[]);
                }
                continue;
            }
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "watchdog pass failed");
            }
        }
    }

    /// One look at everything; returns how many notices were queued.
    pub async fn pass(&self) -> Result<PassReport, crate::store::Error> {
        let rt = self.live.get();
        let w = &rt.config.watchdog;
        let now = self.clock.now_ms();
        let mut budget = w.max_notices_per_pass;
        let mut report = PassReport::default();
        let minute = 60_000i64;
        let hour = 60 * minute;

        let checks = [
            (Overdue::Acceptance, now - w.acceptance_timeout_minutes as i64 * minute, 0u64, "acceptance", "acceptance_overdue"),
            (
                Overdue::DeliveryWarning,
                now - w.delivery_warning_hours as i64 * hour,
                w.delivery_warning_hours,
                "delivery_12h",
                "delivery_warning",
            ),
            (
                Overdue::DeliveryFinal,
                now - w.delivery_final_hours as i64 * hour,
                w.delivery_final_hours,
                "delivery_24h",
                "delivery_overdue",
            ),
        ];
        for (overdue, before, hours, gauge, alert) in checks {
            let event = format!("watchdog:{}", overdue.kind());
            let pending: Vec<(Message, Option<String>)> = match overdue {
                Overdue::Acceptance => {
                    self.store.awaiting_acceptance(before, &event, false).await?.into_iter().map(|m| (m, None)).collect()
                }
                _ => self.store.awaiting_delivery(before, &event, false).await?.into_iter().map(|(m, r)| (m, Some(r))).collect(),
            };
            set_overdue_gauges(&rt, gauge, &pending);
            let unnotified = match overdue {
                Overdue::Acceptance => {
                    self.store.awaiting_acceptance(before, &event, true).await?.into_iter().map(|m| (m, None)).collect::<Vec<_>>()
                }
                _ => self.store.awaiting_delivery(before, &event, true).await?.into_iter().map(|(m, r)| (m, Some(r))).collect(),
            };
            for (m, rcpt) in unnotified {
                if budget == 0 {
                    break;
                }
                if self.notify_sender(&rt, &m, rcpt.as_deref(), overdue, hours, &event, now).await {
                    budget -= 1;
                    report.notices += 1;
                    if let Some(mb) = m.route.mailbox() {
                        metrics::counter!("pecgate_watchdog_notices_total", "mailbox" => mb.to_owned(), "alert" => alert).increment(1);
                    }
                }
            }
        }

        // Admin incidents: queue stuck, POP3 stale.
        let stats = self.store.queue_stats().await?;
        for m in &rt.mailboxes {
            let stuck = stats
                .iter()
                .find(|(route, mb, _, _)| route == "provider" && *mb == m.id)
                .filter(|(_, _, _, oldest)| now - oldest >= w.queue_stuck_minutes as i64 * minute)
                .map(|(_, _, n, oldest)| {
                    format!("{n} message(s) waiting, the oldest for {} minutes; see `pecgate queue list`", (now - oldest) / minute)
                });
            if self.incident(&rt, &format!("queue_stuck:{}", m.id), stuck, m, "queue_stuck", &mut budget, &mut report).await {
                continue;
            }
            let stale = self.fetchers.get(&m.id).and_then(|f| {
                let s = f.status();
                let since = s.last_success.or(s.last_poll)?;
                (now - since >= w.poll_stale_minutes as i64 * minute && s.last_error.is_some()).then(|| {
                    format!(
                        "no successful POP3 poll for {} minutes; last error: {}",
                        (now - since) / minute,
                        s.last_error.unwrap_or_default()
                    )
                })
            });
            self.incident(&rt, &format!("poll_stale:{}", m.id), stale, m, "poll_stale", &mut budget, &mut report).await;
            if let Some(expiry) = m.password_expiry() {
                let seconds = expiry_start(expiry) - now / 1000;
                metrics::gauge!("pecgate_mailbox_password_expiry_seconds", "mailbox" => m.id.clone()).set(seconds as f64);
                // One notice per stage (14 days, 3 days, expired) and expiry day: a new date starts over.
                if let Some((stage, problem)) = password_warning(expiry, now) {
                    let key = format!("password_expiry:{}:{expiry}:{stage}", m.id);
                    self.incident(&rt, &key, Some(problem), m, "password_expiry", &mut budget, &mut report).await;
                }
            }
        }
        Ok(report)
    }

    /// Opens (notifying the admin once) or closes an incident; true if a notice went out.
    #[allow(clippy::too_many_arguments)]
    async fn incident(
        &self,
        rt: &Runtime,
        key: &str,
        problem: Option<String>,
        mailbox: &Mailbox,
        alert: &'static str,
        budget: &mut usize,
        report: &mut PassReport,
    ) -> bool {
        let open = self.incidents.lock().unwrap_or_else(|p| p.into_inner()).contains(key);
        match (problem, open) {
            (Some(problem), false) if *budget > 0 => {
                let members = match rt.directory.members(&mailbox.id).await {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(mailbox = %mailbox.id, error = %e, "watchdog cannot find the mailbox admin; will try again");
                        return false;
                    }
                };
                let Some(admin) = crate::directory::admin(&members) else { return false };
                let now = self.clock.now_ms();
                let c = &rt.config.corporate;
                let id = crate::queue::new_queue_id(now);
                let (bytes, message_id) = notify::mailbox_notice(&notify::MailboxNotice {
                    from: &c.from,
                    to: &admin.address,
                    mailbox_address: &mailbox.address,
                    problem: &problem,
                    hostname: &rt.config.smtp.hostname,
                    language: c.language,
                    date_unix: now / 1000,
                    id: &id,
                });
                if self
                    .queue_notice(rt, &bytes, message_id, &admin.address, &format!("watchdog {alert} for mailbox {}", mailbox.id))
                    .await
                    .is_some()
                {
                    self.incidents.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned());
                    tracing::warn!(mailbox = %mailbox.id, alert, %problem, "watchdog: admin notified");
                    metrics::counter!("pecgate_watchdog_notices_total", "mailbox" => mailbox.id.clone(), "alert" => alert).increment(1);
                    *budget -= 1;
                    report.notices += 1;
                    return true;
                }
                false
            }
            (None, true) => {
                self.incidents.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                tracing::info!(mailbox = %mailbox.id, alert, "watchdog: condition cleared");
                false
            }
            _ => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn notify_sender(
        &self,
        rt: &Runtime,
        m: &Message,
        rcpt: Option<&str>,
        overdue: Overdue,
        hours: u64,
        event: &str,
        now: i64,
    ) -> bool {
        if m.original_sender.is_empty() {
            return false;
        }
        let c = &rt.config.corporate;
        let mailbox = m.route.mailbox().and_then(|id| rt.mailbox(id)).map(|mb| mb.address.as_str()).unwrap_or("");
        let (subject, body) = overdue.text(c.language, &m.subject, mailbox, rcpt, hours);
        let id = crate::queue::new_queue_id(now);
        let (bytes, message_id) = notify::simple_notice(&notify::SimpleNotice {
            from: &c.from,
            to: &m.original_sender,
            subject: &subject,
            body: &body,
            kind: overdue.kind(),
            message_id: &format!("{id}.{}@{}", overdue.kind(), rt.config.smtp.hostname),
            date_unix: now / 1000,
        });
        let Some(notice) =
            self.queue_notice(rt, &bytes, message_id, &m.original_sender, &format!("watchdog {} for {}", overdue.kind(), m.id)).await
        else {
            return false;
        };
        let detail = format!("notice {notice} to {}", m.original_sender);
        if let Err(e) = self.store.add_event(&m.id, rcpt, now, event, &detail).await {
            tracing::error!(queue_id = %m.id, error = %e, "cannot record the watchdog notice");
        }
        tracing::info!(queue_id = %m.id, rcpt = rcpt.unwrap_or("-"), notice = %notice, kind = overdue.kind(), "watchdog: sender notified");
        true
    }

    async fn queue_notice(&self, rt: &Runtime, bytes: &[u8], message_id: String, to: &str, what: &str) -> Option<String> {
        match self.enqueue.notice(&rt.config.corporate.from, to, bytes, message_id, what).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::error!(error = %e, "watchdog cannot queue a notice");
                None
            }
        }
    }
}

/// The overdue gauges of every configured mailbox (0 where none is pending).
fn set_overdue_gauges(rt: &Runtime, kind: &'static str, pending: &[(Message, Option<String>)]) {
    for m in &rt.mailboxes {
        let n = pending.iter().filter(|(msg, _)| msg.route.mailbox() == Some(m.id.as_str())).count();
        metrics::gauge!("pecgate_receipts_overdue", "mailbox" => m.id.clone(), "kind" => kind).set(n as f64);
    }
}

/// Days before the password expiry day at which the mailbox admin is told.
pub const PASSWORD_WARNING_DAYS: [i64; 2] = [14, 3];

/// The first second of `day` (UTC), when the password stops working.
fn expiry_start(day: chrono::NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())
}

/// The warning due at `now_ms` for a password expiring on `day`: its stage
/// (14, 3, or 0 once expired) and the text for the mailbox admin.
pub fn password_warning(day: chrono::NaiveDate, now_ms: i64) -> Option<(i64, String)> {
    let left = expiry_start(day) - now_ms / 1000;
    let days = left.div_euclid(86_400) + i64::from(left.rem_euclid(86_400) > 0);
    if left <= 0 {
        return Some((
            0,
            format!(
                "the provider password expired on {day} (password_expires): sending and fetching will fail until the new password \
                 is in password_file and `pecgate reload` has run"
            ),
        ));
    }
    let stage = PASSWORD_WARNING_DAYS.iter().copied().filter(|d| days <= *d).min()?;
    Some((
        stage,
        format!(
            "the provider password expires on {day}, in {days} day(s): change it at the provider, write the new one to \
             password_file, set password_expires (or password_changed) and run `pecgate reload`"
        ),
    ))
}

/// For a refused login: a hint when the configured expiry day has passed.
pub fn expired_password_hint(mailbox: &crate::config::MailboxConfig, now_ms: i64) -> Option<String> {
    let day = mailbox.password_expiry()?;
    (expiry_start(day) <= now_ms / 1000).then(|| format!("the password probably expired: password_expires is {day}"))
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn warnings_at_14_and_3_days_and_after() {
        let day = chrono::NaiveDate::from_ymd_opt(2027, 5, 31).unwrap();
        let at = |y, m, d, h| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, 0, 0).unwrap().and_utc().timestamp_millis();
        assert_eq!(password_warning(day, at(2027, 5, 1, 12)), None);
        assert_eq!(password_warning(day, at(2027, 5, 17, 0)).map(|w| w.0), Some(14));
        let (stage, text) = password_warning(day, at(2027, 5, 21, 12)).unwrap();
        assert_eq!(stage, 14);
        assert!(text.contains("expires on 2027-05-31, in 10 day(s)"), "{text}");
        assert_eq!(password_warning(day, at(2027, 5, 28, 0)).map(|w| w.0), Some(3));
        assert_eq!(password_warning(day, at(2027, 5, 30, 23)).map(|w| w.0), Some(3));
        let (stage, text) = password_warning(day, at(2027, 5, 31, 0)).unwrap();
        assert_eq!(stage, 0);
        assert!(text.contains("expired on 2027-05-31"), "{text}");
    }

    #[test]
    fn the_hint_comes_only_after_the_day() {
        let mut m = crate::config::MailboxConfig { password_expires: Some("2027-05-31".into()), ..Default::default() };
        let day = |d| chrono::NaiveDate::from_ymd_opt(2027, 5, d).unwrap().and_hms_opt(9, 0, 0).unwrap().and_utc().timestamp_millis();
        assert_eq!(expired_password_hint(&m, day(30)), None);
        assert_eq!(expired_password_hint(&m, day(31)).as_deref(), Some("the password probably expired: password_expires is 2027-05-31"));
        m.password_expires = None;
        m.password_max_age_days = Some(180);
        m.password_changed = Some("2026-12-02".into());
        assert_eq!(m.password_expiry(), chrono::NaiveDate::from_ymd_opt(2027, 5, 31));
    }
}
