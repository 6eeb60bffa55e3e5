//! Fetch 1,000 PEC receipts from the simulated provider over POP3S: time for
//! one poll (RETR, store, classify, correlate, route, queue the injection)
//! and the process's peak RSS (simulator included, it runs in-process).
//! Run: `cargo bench --bench fetch`.

use std::time::Instant;

use pecgate::pec::{BuildParams, Kind};
use pecgate::sim::capture::CaptureServer;
use pecgate::sim::provider::SimProvider;

mod common;

#[tokio::main]
async fn main() {
    let n = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = common::mailbox();
    let provider = SimProvider::start("127.0.0.1:0", vec![mailbox.clone()], None).await.expect("sim");
    let capture = CaptureServer::start("127.0.0.1:0", None).await.expect("capture");
    for i in 0..n {
        let mut p = BuildParams::sample(if i % 2 == 0 { Kind::Accettazione } else { Kind::AvvenutaConsegna });
        p.msgid = format!("bench-{i}@azienda.bench");
        provider.retrieval.deliver(&mailbox.username, pecgate::sim::receipts::build_signed(&mut p));
    }
    let pop3 =
        format!("[mailbox.pop3]\nhost = \"localhost\"\nport = {}\nca_file = \"ca.pem\"\ninterval_secs = 3600\n", provider.pop3_addr.port());
    let config = common::write_config(dir.path(), &provider, capture.addr.port(), "", &pop3);
    let before = common::status_kib("VmHWM:");
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
        common::status_kib("VmHWM:") / 1024,
        before / 1024
    );
    app.shutdown().await;
}
