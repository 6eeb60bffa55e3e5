//! Peak memory of classifying hostile MIME structures (the outside attack
//! run's cases). Linux only, and one case per process, because the peak
//! (VmHWM) is per process:
//!
//! `cargo test --test hostile_rss -- --ignored --exact --nocapture parts_700k`
//! (likewise `nested_100k`, `envelope_parts_700k`).
//!
//! Each case builds the message, resets the peak to the current RSS
//! (`/proc/self/clear_refs`), then classifies and checks the signature as
//! `fetch::ingest` does, and prints the RSS before, the peak during and the
//! RSS after dropping the classification.

use pecgate::pec::signature::{TrustStore, verify};
use pecgate::pec::{BuildParams, Kind, build_message, classify};

/// A flat multipart/mixed of `parts` small text parts, padded to about `size` bytes.
fn flat(parts: usize, size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: flat\r\nMessage-ID: <flat@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n".to_vec();
    let part = b"--B\r\nContent-Type: text/plain\r\n\r\n";
    let pad = (size / parts).saturating_sub(part.len() + 2).max(1);
    for _ in 0..parts {
        m.extend_from_slice(part);
        m.extend(std::iter::repeat_n(b'x', pad));
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--B--\r\n");
    m
}

/// `levels` multiparts, each the only part of the one before.
fn nested(levels: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: nested\r\nMIME-Version: 1.0\r\n".to_vec();
    for i in 0..levels {
        m.extend_from_slice(format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n").as_bytes());
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in (0..levels).rev() {
        m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    m
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

fn measure(name: &str, raw: Vec<u8>) -> u64 {
    let trust = TrustStore::empty();
    // "5" resets VmHWM to the current RSS: the peak below is classification's.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs (Linux only)");
    let before = status_kb("VmRSS:");
    let start = std::time::Instant::now();
    let c = classify(&raw);
    let sig = verify(&raw, &trust, None);
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    let limit = c.structure_limit;
    drop((c, sig));
    let after_drop = status_kb("VmRSS:");
    let mb = raw.len() / 1_000_000;
    drop(raw);
    let after_raw = status_kb("VmRSS:");
    println!(
        "{name}: {mb} MB message, RSS before {} MB, peak {} MB (+{} MB), after dropping the classification {} MB, after dropping the message {} MB, {secs:.2}s, limit {limit:?}",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        after_drop / 1024,
        after_raw / 1024
    );
    peak.saturating_sub(before)
}

/// Classification may hold a copy of the largest body, not a structure per part.
fn assert_bounded(growth_kb: u64, size: usize) {
    let size_kb = (size / 1024) as u64;
    assert!(growth_kb <= size_kb + 16 * 1024, "classification grew RSS by {growth_kb} kB for a {size_kb} kB message");
}

#[test]
#[ignore]
fn parts_700k() {
    let raw = flat(700_000, 52_000_000);
    let size = raw.len();
    assert_bounded(measure("parts_700k", raw), size);
}

#[test]
#[ignore]
fn nested_100k() {
    let raw = nested(100_000);
    let size = raw.len();
    assert_bounded(measure("nested_100k", raw), size);
}

#[test]
#[ignore]
fn envelope_parts_700k() {
    // A genuine provider envelope around a hostile original.
    let mut p = BuildParams::sample(Kind::PostaCertificata);
    p.original = Some(flat(700_000, 52_000_000));
    let raw = build_message(&p);
    let size = raw.len();
    assert_bounded(measure("envelope_parts_700k", raw), size);
}
