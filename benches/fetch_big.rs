//! One big `posta-certificata` (100 MB by default) fetched from the
//! simulated provider over IMAPS or POP3S, stored, classified, verified and
//! injected: prints the process's RSS before the gateway starts and its peak
//! (VmHWM) once the injection is accepted, so the growth is the gateway's.
//! The simulator runs in-process but holds the message before the baseline
//! and serves it from that one copy; the corporate side is a small SMTP sink
//! here that counts and discards the bytes (a capture server would keep them).
//!
//!   cargo bench --bench fetch_big -- imap [SIZE_BYTES=100000000]
//!   cargo bench --bench fetch_big -- pop3 1000      # the fixed cost, for comparison

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pecgate::pec::{BuildParams, Kind};
use pecgate::sim::provider::SimProvider;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

mod common;
use common::status_kib;

/// A `postacert.eml` of about `size` bytes: a text part and a base64 attachment.
fn original(size: usize) -> Vec<u8> {
    let mut m = b"From: <mittente@pec.altro.it>\r\nTo: <legal@pec.bench>\r\nSubject: Fattura con allegati\r\n\
Message-ID: <big@pec.altro.it>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIn allegato.\r\n\
--b1\r\nContent-Type: application/pdf; name=\"allegato.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    let line = b"JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PC9UeXBlL0NhdGFsb2cvUGFnZXMgMiAwIFI+PgplbmRv\r\n";
    m.reserve(size + 100);
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m.extend_from_slice(b"--b1--\r\n");
    m
}

/// Plain SMTP that accepts everything and keeps only a count of DATA bytes.
async fn sink(listener: TcpListener, bytes: Arc<AtomicU64>, messages: Arc<AtomicU64>) {
    while let Ok((sock, _)) = listener.accept().await {
        let (bytes, messages) = (bytes.clone(), messages.clone());
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            let _ = w.write_all(b"220 sink ESMTP\r\n").await;
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let verb = line.get(..4).map(|v| v.to_ascii_uppercase()).unwrap_or_default();
                let reply: &[u8] = match verb.as_slice() {
                    b"EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                    b"DATA" => {
                        let _ = w.write_all(b"354 go on\r\n").await;
                        loop {
                            line.clear();
                            if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == b".\r\n" {
                                break;
                            }
                            bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
                        }
                        messages.fetch_add(1, Ordering::Relaxed);
                        b"250 kept nothing\r\n"
                    }
                    b"QUIT" => {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"250 ok\r\n",
                };
                if w.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let proto = args.first().map_or("imap", String::as_str).to_owned();
    assert!(proto == "imap" || proto == "pop3", "usage: fetch_big imap|pop3 [SIZE_BYTES]");
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = common::mailbox();
    let provider = SimProvider::start("127.0.0.1:0", vec![mailbox.clone()], None).await.expect("sim");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("sink");
    let cport = listener.local_addr().expect("sink address").port();
    let (bytes, messages) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    tokio::spawn(sink(listener, bytes.clone(), messages.clone()));
    let envelope = {
        let mut p = BuildParams::sample(Kind::PostaCertificata);
        p.original = Some(original(size));
        pecgate::sim::receipts::build_signed(&mut p)
    };
    let envelope_len = envelope.len();
    provider.retrieval.deliver(&mailbox.username, envelope);
    let retrieval = match proto.as_str() {
        "imap" => format!(
            "[mailbox.imap]\nhost = \"localhost\"\nport = {}\nca_file = \"ca.pem\"\ninterval_secs = 3600\nidle = false\n",
            provider.imap.addr.port()
        ),
        _ => format!(
            "[mailbox.pop3]\nhost = \"localhost\"\nport = {}\nca_file = \"ca.pem\"\ninterval_secs = 3600\n",
            provider.pop3_addr.port()
        ),
    };
    let limit = format!("max_message_size = {}", (envelope_len as u64 * 2).max(10_000_000));
    let config = common::write_config(dir.path(), &provider, cport, &limit, &retrieval);
    // "5" resets the peak to the current RSS: the peak below is the gateway's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let app = pecgate::App::start(&config, pecgate::clock::system()).await.expect("start");
    // The start-up poll fetches it; this poll waits for that one to end.
    let _ = app.poll("legal").await;
    let fetched_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while messages.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "not injected within 600 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total_secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    println!(
        "fetch_big: {proto} bytes={envelope_len} fetched+stored+classified in {fetched_secs:.1}s, injected ({} bytes at the sink) after {total_secs:.1}s; \
         rss_before_kib={before} peak_rss_kib={peak} growth_mib={:.1}",
        bytes.load(Ordering::Relaxed),
        (peak.saturating_sub(before)) as f64 / 1024.0
    );
    app.shutdown().await;
}
