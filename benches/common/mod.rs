//! What the fetch benchmarks share: the simulated provider's mailbox, the
//! gateway's configuration around it, and the process's memory figures.

use std::path::{Path, PathBuf};

use pecgate::sim::provider::{SimMailbox, SimProvider};

/// The one mailbox the benchmarks fetch from.
pub fn mailbox() -> SimMailbox {
    SimMailbox { username: "legal@pec.bench".into(), password: "bench-password".into(), address: "legal@pec.bench".into() }
}

/// A line of `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`); 0 if unreadable.
pub fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Writes the gateway's configuration into `dir` (with the simulator's CA
/// and the mailbox password): mailbox `legal` submitting to `provider`,
/// fetching by `retrieval` (its `[mailbox.pop3]` or `[mailbox.imap]` table),
/// injecting to a corporate server on `corporate_port`; `smtp` adds keys to `[smtp]`.
pub fn write_config(dir: &Path, provider: &SimProvider, corporate_port: u16, smtp: &str, retrieval: &str) -> PathBuf {
    std::fs::write(dir.join("ca.pem"), &provider.ca_pem).expect("ca");
    std::fs::write(dir.join("pw"), mailbox().password).expect("pw");
    let toml = format!(
        r#"
[smtp]
listen = "127.0.0.1:0"
{smtp}
[store]
path = "db.sqlite"
spool_dir = "spool"
[corporate]
port = {corporate_port}
from = "pecgate@azienda.bench"
[admin]
listen = "127.0.0.1:0"
[[mailbox]]
id = "legal"
address = "legal@pec.bench"
username = "legal@pec.bench"
password_file = "pw"
[mailbox.smtp]
host = "localhost"
port = {sport}
ca_file = "ca.pem"
{retrieval}
[[mailbox.user]]
address = "mario@azienda.bench"
admin = true
"#,
        sport = provider.addr.port(),
    );
    let config = dir.join("pecgate.toml");
    std::fs::write(&config, toml).expect("config");
    config
}
