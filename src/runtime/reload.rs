//! `pecgate reload` and SIGHUP: re-read the file and the environment,
//! validate everything exactly as `check-config` does, build a new
//! [`Runtime`], and only then publish it. On any error the running snapshot
//! stays and the error goes back to the caller (and the log, and
//! `pecgate_config_reload_total{result="failure"}`).
//!
//! Keys whose value is bound at start-up (listen addresses, the store, the
//! spool, the instance id, logging) cannot change while running: a changed
//! value is reported by name as needing a restart and the running value is
//! kept in the new snapshot, so the snapshot always says what is in effect.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Live, Runtime};
use crate::clock::Clock;
use crate::config::{self, Config};

/// What a reload did, for `pecgate reload` and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub generation: u64,
    /// One line per change that took effect ("mailbox hr: added").
    pub changes: Vec<String>,
    /// Keys that changed in the file but keep their running value until a restart.
    pub needs_restart: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this instance was started without a configuration file; nothing to reload")]
    NoFile,
    #[error("{0}")]
    Config(#[from] config::Error),
}

pub struct Reloader {
    live: Arc<Live>,
    path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    /// One reload at a time.
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(live: Arc<Live>, path: Option<PathBuf>, clock: Arc<dyn Clock>) -> Self {
        metrics::gauge!("pecgate_config_last_reload_success_timestamp_seconds").set((clock.now_ms() / 1000) as f64);
        for result in ["success", "failure"] {
            metrics::counter!("pecgate_config_reload_total", "result" => result).increment(0);
        }
        Self { live, path, clock, busy: tokio::sync::Mutex::new(()) }
    }

    /// Reloads from the file the instance was started with.
    pub async fn reload(&self) -> Result<Report, Error> {
        let _one = self.busy.lock().await;
        let result = self.reload_locked().await;
        match &result {
            Ok(report) => {
                metrics::counter!("pecgate_config_reload_total", "result" => "success").increment(1);
                metrics::gauge!("pecgate_config_last_reload_success_timestamp_seconds").set((self.clock.now_ms() / 1000) as f64);
                for w in &report.warnings {
                    tracing::warn!("config: {w}");
                }
                crate::metrics::trust_anchors(&self.live.get().trust);
                for key in &report.needs_restart {
                    tracing::warn!(key = %key, "configuration changed but needs a restart; the running value stays");
                }
                tracing::info!(generation = report.generation, changes = %report.changes.join("; "), "configuration reloaded");
            }
            Err(e) => {
                metrics::counter!("pecgate_config_reload_total", "result" => "failure").increment(1);
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
            }
        }
        result
    }

    async fn reload_locked(&self) -> Result<Report, Error> {
        let path = self.path.clone().ok_or(Error::NoFile)?;
        let file = path.display().to_string();
        // File reads (secrets, certificates) off the async threads.
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|e| config::Error::Read { file: file.clone(), source: std::io::Error::other(e.to_string()) })??;
        let old = self.live.get();
        let mut loaded = loaded;
        let needs_restart = keep_restart_values(&old.config, &mut loaded.config);
        let new = Runtime::build(loaded, old.generation + 1, &file)?;
        let report = Report {
            generation: new.generation,
            changes: changes(&old, &new),
            needs_restart,
            warnings: new.warnings.iter().map(|w| w.to_string()).collect(),
        };
        self.live.publish(new);
        Ok(report)
    }
}

/// The keys bound at start-up that differ, by name; their old values are
/// written back into `new`.
pub fn keep_restart_values(old: &Config, new: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:expr) => {
            if json(&old.$($field).+) != json(&new.$($field).+) {
                changed.push($name.to_owned());
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    keep!(smtp.listen, "smtp.listen");
    keep!(admin.listen, "admin.listen");
    keep!(control.socket, "control.socket");
    keep!(store.backend, "store.backend");
    keep!(store.path, "store.path");
    keep!(store.url, "store.url");
    keep!(store.password_file, "store.password_file");
    keep!(store.password_env, "store.password_env");
    keep!(store.password, "store.password");
    keep!(store.max_connections, "store.max_connections");
    keep!(store.spool_dir, "store.spool_dir");
    keep!(cluster.instance_id, "cluster.instance_id");
    keep!(cluster.lease_secs, "cluster.lease_secs");
    keep!(log.level, "log.level");
    keep!(log.format, "log.format");
    changed
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// What changed between two snapshots, one line each, never a secret value.
pub fn changes(old: &Runtime, new: &Runtime) -> Vec<String> {
    let mut out = Vec::new();
    let (o, n) = (&old.config, &new.config);
    for (name, a, b) in [
        ("smtp", json(&o.smtp), json(&n.smtp)),
        ("tag", json(&o.tag), json(&n.tag)),
        ("corporate", json(&o.corporate), json(&n.corporate)),
        ("admin", json(&o.admin), json(&n.admin)),
        ("queue", json(&o.queue), json(&n.queue)),
        ("watchdog", json(&o.watchdog), json(&n.watchdog)),
        ("pec", json(&o.pec), json(&n.pec)),
    ] {
        if a != b {
            out.push(format!("[{name}] changed"));
        }
    }
    if old.secrets.corporate != new.secrets.corporate {
        out.push("corporate: password changed".into());
    }
    if old.secrets.admin_token != new.secrets.admin_token {
        out.push("admin: token changed".into());
    }
    for (login, pw) in &new.secrets.accounts {
        match old.secrets.accounts.get(login) {
            None => out.push(format!("smtp account {login}: added")),
            Some(p) if p != pw => out.push(format!("smtp account {login}: password changed")),
            Some(_) => {}
        }
    }
    for login in old.secrets.accounts.keys().filter(|l| !new.secrets.accounts.contains_key(*l)) {
        out.push(format!("smtp account {login}: removed"));
    }
    for m in &new.mailboxes {
        let Some(prev) = old.mailbox(&m.id) else {
            out.push(format!("mailbox {}: added{}", m.id, if m.active { "" } else { " (inactive)" }));
            continue;
        };
        match (prev.active, m.active) {
            (true, false) => out.push(format!("mailbox {}: deactivated", m.id)),
            (false, true) => out.push(format!("mailbox {}: activated", m.id)),
            _ => {}
        }
        if json(&prev.users) != json(&m.users) {
            out.push(format!("mailbox {}: users changed", m.id));
        }
        if prev.password != m.password {
            out.push(format!("mailbox {}: password changed", m.id));
        }
        let (mut a, mut b) = (prev.config.clone(), m.config.clone());
        for c in [&mut a, &mut b] {
            c.users.clear();
            c.active = true;
        }
        if json(&a) != json(&b) {
            out.push(format!("mailbox {}: settings changed", m.id));
        }
    }
    for m in old.mailboxes.iter().filter(|m| new.mailbox(&m.id).is_none()) {
        out.push(format!("mailbox {}: removed", m.id));
    }
    if out.is_empty() {
        out.push("no change".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_keys_are_named_and_kept() {
        let old = Config::default();
        let mut new = Config::default();
        new.smtp.listen = "0.0.0.0:25".into();
        new.store.spool_dir = "/elsewhere".into();
        new.queue.max_age_secs = 1;
        let keys = keep_restart_values(&old, &mut new);
        assert_eq!(keys, ["smtp.listen", "store.spool_dir"]);
        assert_eq!(new.smtp.listen, old.smtp.listen);
        assert_eq!(new.store.spool_dir, old.store.spool_dir);
        assert_eq!(new.queue.max_age_secs, 1, "a live key takes its new value");
    }
}
