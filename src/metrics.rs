//! Prometheus metrics: names, labels and start-up initialisation.
//!
//! Prefix `pecgate_`, label `mailbox` = mailbox id (never an address),
//! `destination` = `provider` | `corporate` (corporate rows have
//! `mailbox="-"`). Every counter and gauge is registered at zero at start-up
//! for each configured mailbox and each fixed label value (and for a mailbox
//! a reload adds), so dashboards and alerts see the series before the first
//! event.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REJECT_REASONS: &[&str] = &[
    "not_allowed",
    "unknown_sender",
    "ambiguous",
    "bcc",
    "too_many_recipients",
    "inactive",
    "tag_missing",
    "too_big",
    "pin",
    "storage",
    "other",
];
/// `reason` of `pecgate_pin_failures_total`.
pub const PIN_FAILURE_REASONS: &[&str] = &["wrong", "missing", "locked"];
pub const RECEIPT_KINDS: &[&str] = &[
    "accettazione",
    "non-accettazione",
    "presa-in-carico",
    "avvenuta-consegna",
    "errore-consegna",
    "preavviso-errore-consegna",
    "rilevazione-virus",
];
pub const INBOUND_KINDS: &[&str] = &["posta-certificata", "anomalia", "not-pec"];
pub const ATTEMPT_RESULTS: &[&str] = &["2xx", "4xx", "5xx", "error"];
pub const RECIPIENT_STATES: &[&str] =
    &["submitted", "accepted", "no_receipt_expected", "warned", "delivered", "delivery_error", "not_accepted", "failed"];
pub const POP3_ERROR_KINDS: &[&str] = &["auth", "network", "protocol", "storage", "directory"];
pub const OVERDUE_KINDS: &[&str] = &["acceptance", "delivery_12h", "delivery_24h"];
pub const WATCHDOG_ALERTS: &[&str] =
    &["acceptance_overdue", "delivery_warning", "delivery_overdue", "queue_stuck", "mailbox_auth", "poll_stale"];
pub const AUTH_RESULTS: &[&str] = &["success", "failure"];
/// Where a wrong admin token was presented: the login form or a bearer header.
pub const ADMIN_AUTH_VIA: &[&str] = &["login", "bearer"];
pub const SIGNATURE_VERDICTS: &[&str] = &["valid", "valid-untrusted-signer", "invalid", "unsigned", "malformed"];

/// Installs the global recorder once per process and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let latency = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
            let receipt = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 12.0 * 3600.0, 24.0 * 3600.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &latency)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("pecgate_receipt_latency_seconds".into()), &receipt));
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => handle,
                // Another recorder is installed (embedding): render an empty, private one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Describes every metric and registers every known series at zero.
/// The notAfter of every trust anchor in use, so Grafana can alert before one
/// expires (the admin is also warned in the log 90 days before).
pub fn trust_anchors(trust: &crate::pec::signature::TrustStore) {
    for a in trust.anchors() {
        let end = a.not_after.map_or(0.0, |t| t.timestamp() as f64);
        gauge!("pecgate_trust_anchor_expiry_timestamp_seconds", "anchor" => a.subject, "sha256" => a.sha256).set(end);
    }
}

pub fn init<'a>(mailboxes: impl IntoIterator<Item = &'a str>) {
    describe();
    gauge!("pecgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!("pecgate_smtp_sessions_open").increment(0.0);
    counter!("pecgate_smtp_messages_received_total").increment(0);
    counter!("pecgate_smtp_tls_handshake_failures_total").increment(0);
    counter!("pecgate_smtp_early_talkers_total").increment(0);
    counter!("pecgate_recovered_deliveries_total").increment(0);
    for reason in REJECT_REASONS {
        counter!("pecgate_smtp_messages_rejected_total", "reason" => *reason).increment(0);
    }
    for result in AUTH_RESULTS {
        counter!("pecgate_smtp_auth_total", "result" => *result).increment(0);
    }
    for result in ["ok", "failed"] {
        counter!("pecgate_injections_total", "result" => result).increment(0);
    }
    for via in ADMIN_AUTH_VIA {
        counter!("pecgate_admin_auth_failures_total", "via" => *via).increment(0);
    }
    for result in ATTEMPT_RESULTS {
        counter!("pecgate_delivery_attempts_total", "destination" => "corporate", "mailbox" => "-", "result" => *result).increment(0);
    }
    gauge!("pecgate_queue_size", "destination" => "corporate", "mailbox" => "-").increment(0.0);
    gauge!("pecgate_queue_oldest_age_seconds", "destination" => "corporate", "mailbox" => "-").increment(0.0);
    for m in mailboxes {
        init_mailbox(m);
    }
}

/// The directory series: `up` is what the directory of the running snapshot says
/// (1 for a static directory, 0 for an LDAP one until its first good refresh).
pub fn directory(kind: &str) {
    gauge!("pecgate_directory_up").set(if kind == "static" { 1.0 } else { 0.0 });
    for result in ["success", "failure"] {
        counter!("pecgate_directory_refresh_total", "result" => result).increment(0);
    }
}

/// Registers the series of one mailbox at zero (at start-up, and when a reload adds it).
pub fn init_mailbox(id: &str) {
    {
        let mb = id.to_owned();
        counter!("pecgate_smtp_messages_accepted_total", "mailbox" => mb.clone()).increment(0);
        for reason in PIN_FAILURE_REASONS {
            counter!("pecgate_pin_failures_total", "mailbox" => mb.clone(), "reason" => *reason).increment(0);
        }
        gauge!("pecgate_queue_size", "destination" => "provider", "mailbox" => mb.clone()).increment(0.0);
        gauge!("pecgate_queue_oldest_age_seconds", "destination" => "provider", "mailbox" => mb.clone()).increment(0.0);
        for result in ATTEMPT_RESULTS {
            counter!("pecgate_delivery_attempts_total", "destination" => "provider", "mailbox" => mb.clone(), "result" => *result)
                .increment(0);
        }
        counter!("pecgate_provider_submitted_total", "mailbox" => mb.clone()).increment(0);
        counter!("pecgate_provider_failed_total", "mailbox" => mb.clone()).increment(0);
        counter!("pecgate_provider_throttled_total", "mailbox" => mb.clone()).increment(0);
        gauge!("pecgate_last_send_timestamp_seconds", "mailbox" => mb.clone()).increment(0.0);
        for kind in RECEIPT_KINDS {
            counter!("pecgate_receipts_total", "mailbox" => mb.clone(), "kind" => *kind).increment(0);
        }
        counter!("pecgate_receipts_unmatched_total", "mailbox" => mb.clone()).increment(0);
        counter!("pecgate_receipts_duplicate_total", "mailbox" => mb.clone()).increment(0);
        for kind in INBOUND_KINDS {
            counter!("pecgate_inbound_messages_total", "mailbox" => mb.clone(), "kind" => *kind).increment(0);
        }
        for state in RECIPIENT_STATES {
            gauge!("pecgate_recipients", "mailbox" => mb.clone(), "state" => *state).increment(0.0);
        }
        for result in ["ok", "error"] {
            counter!("pecgate_pop3_polls_total", "mailbox" => mb.clone(), "result" => result).increment(0);
        }
        for kind in POP3_ERROR_KINDS {
            counter!("pecgate_pop3_errors_total", "mailbox" => mb.clone(), "kind" => *kind).increment(0);
        }
        counter!("pecgate_pop3_messages_fetched_total", "mailbox" => mb.clone()).increment(0);
        counter!("pecgate_fetch_skipped_total", "mailbox" => mb.clone()).increment(0);
        counter!("pecgate_fetch_forged_marks_total", "mailbox" => mb.clone()).increment(0);
        gauge!("pecgate_last_poll_success_timestamp_seconds", "mailbox" => mb.clone()).increment(0.0);
        gauge!("pecgate_mailbox_up", "mailbox" => mb.clone()).set(1.0);
        for kind in OVERDUE_KINDS {
            gauge!("pecgate_receipts_overdue", "mailbox" => mb.clone(), "kind" => *kind).increment(0.0);
        }
        for alert in WATCHDOG_ALERTS {
            counter!("pecgate_watchdog_notices_total", "mailbox" => mb.clone(), "alert" => *alert).increment(0);
        }
        for verdict in SIGNATURE_VERDICTS {
            counter!("pecgate_signature_verdicts_total", "mailbox" => mb.clone(), "verdict" => *verdict).increment(0);
        }
        // Histograms appear with their first observation; registering them keeps the names stable.
        let _ = histogram!("pecgate_provider_submission_duration_seconds", "mailbox" => mb.clone());
        for kind in ["accettazione", "avvenuta-consegna"] {
            let _ = histogram!("pecgate_receipt_latency_seconds", "mailbox" => mb.clone(), "kind" => kind);
        }
    }
}

fn describe() {
    describe_gauge!("pecgate_build_info", "pecgate version (value 1)");
    describe_gauge!("pecgate_smtp_sessions_open", "SMTP sessions open on the listener");
    describe_counter!("pecgate_smtp_messages_received_total", "messages whose DATA completed on the listener");
    describe_counter!("pecgate_smtp_messages_accepted_total", "messages queued for a PEC mailbox (answered 250)");
    describe_counter!("pecgate_smtp_messages_rejected_total", "messages refused at the end of DATA, by reason");
    describe_counter!("pecgate_pin_failures_total", "PIN checks failed on require_pin mailboxes (wrong, missing, locked)");
    describe_histogram!("pecgate_smtp_accept_duration_seconds", "end of DATA to the reply (policy, fsync, commit)");
    describe_counter!("pecgate_smtp_tls_handshake_failures_total", "failed STARTTLS handshakes on the listener");
    describe_counter!("pecgate_smtp_early_talkers_total", "connections refused because the client sent data before the greeting");
    describe_counter!("pecgate_smtp_auth_total", "SMTP AUTH attempts on the listener checked against the accounts, by result");
    describe_gauge!("pecgate_queue_size", "messages waiting in the queue");
    describe_gauge!("pecgate_queue_oldest_age_seconds", "age of the oldest waiting message");
    describe_counter!("pecgate_delivery_attempts_total", "delivery attempts by outcome class");
    describe_counter!("pecgate_provider_submitted_total", "recipients submitted to the PEC provider (250)");
    describe_counter!("pecgate_provider_failed_total", "recipients refused for good by the provider or given up");
    describe_counter!(
        "pecgate_provider_throttled_total",
        "provider replies meaning 'too fast from this mailbox' (e.g. Legalmail's 550 Class Of Service); the message is kept and the rate lowered"
    );
    describe_histogram!("pecgate_provider_submission_duration_seconds", "one submission transaction to the provider");
    describe_gauge!("pecgate_last_send_timestamp_seconds", "unix time of the last successful submission");
    describe_counter!("pecgate_receipts_total", "receipts fetched, by kind");
    describe_counter!("pecgate_receipts_unmatched_total", "receipts for messages not sent through pecgate");
    describe_counter!(
        "pecgate_receipts_duplicate_total",
        "receipts fetched again (same provider identifier and kind for the same message): recorded, not delivered twice"
    );
    describe_counter!("pecgate_inbound_messages_total", "PEC envelopes, anomalies and ordinary mail fetched");
    describe_histogram!("pecgate_receipt_latency_seconds", "submission to receipt (provider time)");
    describe_gauge!("pecgate_recipients", "recipients of sent messages by state");
    describe_counter!("pecgate_pop3_polls_total", "POP3 polls by result");
    describe_counter!("pecgate_pop3_errors_total", "POP3 poll failures by kind");
    describe_counter!("pecgate_pop3_messages_fetched_total", "messages fetched and committed");
    describe_gauge!("pecgate_trust_anchor_expiry_timestamp_seconds", "notAfter of each trust anchor for provider signatures (unix time)");
    describe_gauge!(
        "pecgate_mailbox_password_expiry_seconds",
        "seconds until the provider password expires (password_expires); negative once expired"
    );
    describe_counter!("pecgate_fetch_skipped_total", "messages left on the provider's server because pecgate cannot take them");
    describe_counter!(
        "pecgate_fetch_forged_marks_total",
        "fetched messages that carried X-Pecgate-* fields of their own (renamed before injection)"
    );
    describe_gauge!("pecgate_last_poll_success_timestamp_seconds", "unix time of the last successful poll");
    describe_gauge!("pecgate_mailbox_up", "1 when the last poll and submission of the mailbox worked");
    describe_counter!("pecgate_injections_total", "deliveries into the corporate server");
    describe_gauge!("pecgate_receipts_overdue", "sent messages whose receipts are overdue (watchdog)");
    describe_counter!("pecgate_watchdog_notices_total", "notices sent by the watchdog");
    describe_counter!("pecgate_signature_verdicts_total", "signature verdicts of fetched messages");
    describe_counter!("pecgate_admin_auth_failures_total", "wrong admin tokens (login form, bearer header), by where");
    describe_gauge!("pecgate_directory_up", "1 while the user directory answers (always 1 for kind = static), 0 during an LDAP outage");
    describe_counter!("pecgate_directory_refresh_total", "LDAP / AD directory refreshes by result (success, failure)");
    describe_counter!("pecgate_config_reload_total", "configuration reloads (SIGHUP, pecgate reload) by result");
    describe_gauge!("pecgate_config_last_reload_success_timestamp_seconds", "unix time of the last configuration load that took effect");
    describe_counter!(
        "pecgate_recovered_deliveries_total",
        "deliveries in flight at a crash, sent again at start-up (possible duplicates)"
    );
}

/// `2xx`, `4xx`, `5xx` from a reply code.
pub fn class(code: u16) -> &'static str {
    match code {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// Which half of a mailbox a health report is about.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Send,
    Poll,
}

/// `pecgate_mailbox_up` is 1 when both the last submission and the last
/// poll of the mailbox worked; each side reports here.
pub fn mailbox_health(mailbox: &str, part: Part, ok: bool) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static STATE: OnceLock<Mutex<HashMap<String, (bool, bool)>>> = OnceLock::new();
    let mut map = STATE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    let entry = map.entry(mailbox.to_owned()).or_insert((true, true));
    match part {
        Part::Send => entry.0 = ok,
        Part::Poll => entry.1 = ok,
    }
    let up = if entry.0 && entry.1 { 1.0 } else { 0.0 };
    gauge!("pecgate_mailbox_up", "mailbox" => mailbox.to_owned()).set(up);
}
