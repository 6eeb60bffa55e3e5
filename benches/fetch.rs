//! Fetch 1,000 PEC receipts from the simulated provider over POP3S: time for
//! one poll (RETR, store, classify, correlate, route, queue the injection)
//! and the process's peak RSS (simulator included, it runs in-process).
//! Run: `cargo bench --bench fetch`.

use std::time::Instant;

use pecgate::pec::{BuildParams, Kind};
use pecgate::sim::capture::CaptureServer;
use pecgate::sim::provider::{SimMailbox, SimProvider};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = SimMailbox { username: "legal@pec.bench".into(), password: "bench-password".into(), address: "legal@pec.bench".into() };
    let provider = SimProvider::start("127.0.0.1:0", vec![mailbox.clone()], None).await.expect("sim");
    let capture = CaptureServer::start("127.0.0.1:0", None).await.expect("capture");
    for i in 0..n {
        let mut p = BuildParams::sample(if i % 2 == 0 { Kind::Accettazione } else { Kind::AvvenutaConsegna });
        p.msgid = format!("bench-{i}@azienda.bench");
        provider.retrieval.deliver(&mailbox.username, pecgate::sim::receipts::build_signed(&mut p));
    }
    std::fs::write(dir.path().join("ca.pem"), &provider.ca_pem).expect("ca");
    std::fs::write(dir.path().join("pw"), "bench-password").expect("pw");
    let toml = format!(
        r#"
[smtp]
listen = "127.0.0.1:0"
[store]
path = "db.sqlite"
spool_dir = "spool"
[corporate]
port = {cport}
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
[mailbox.pop3]
host = "localhost"
port = {pport}
ca_file = "ca.pem"
interval_secs = 3600
[[mailbox.user]]
address = "mario@azienda.bench"
admin = true
"#,
        cport = capture.addr.port(),
        sport = provider.addr.port(),
        pport = provider.pop3_addr.port()
    );
    let config = dir.path().join("pecgate.toml");
    std::fs::write(&config, toml).expect("config");
    let before = vm_hwm_kib();
    let start = Instant::now();
    let app = pecgate::App::start(&config, pecgate::clock::system()).await.expect("start");
    // The start-up poll fetches everything; this explicit poll waits for it (one poll at a time).
    let _ = app.poll("legal").await;
    let fetch_secs = start.elapsed().as_secs_f64();
    let stored = app.store.fetched_ids().await.map(|v| v.len()).unwrap_or(0);
    let injected = capture.bag.wait_for(n, std::time::Duration::from_secs(300)).await.map(|v| v.len()).unwrap_or_else(|v| v.len());
    let total_secs = start.elapsed().as_secs_f64();
    println!(
        "fetch: {n} messages listed, {stored} stored+routed in {fetch_secs:.2}s ({:.0} msg/s); {injected} injected into the capture server after {total_secs:.2}s; peak RSS {} MiB (was {} MiB before start, simulator in-process)",
        stored as f64 / fetch_secs,
        vm_hwm_kib() / 1024,
        before / 1024
    );
    app.shutdown().await;
}
