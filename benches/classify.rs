//! Timed micro-benchmark (no Criterion: a plain loop is enough to see
//! messages per second on one core): classification + daticert parse of
//! every PEC kind, and the SMTP command parser.
//! Run: `cargo bench --bench classify`.

use std::hint::black_box;
use std::time::Instant;

use pecgate::pec::{BuildParams, Kind, build_message, classify};

fn main() {
    let messages: Vec<Vec<u8>> = Kind::ALL.iter().map(|k| build_message(&BuildParams::sample(*k))).collect();
    let n = 20_000;
    let start = Instant::now();
    for i in 0..n {
        black_box(classify(black_box(&messages[i % messages.len()])));
    }
    let secs = start.elapsed().as_secs_f64();
    let avg = messages.iter().map(Vec::len).sum::<usize>() / messages.len();
    println!("classify: {n} messages ({} kinds, {avg} bytes avg) in {secs:.3}s = {:.0} msg/s on one core", messages.len(), n as f64 / secs);

    let lines: [&[u8]; 4] = [
        b"MAIL FROM:<mario.rossi@azienda.it> SIZE=4096 BODY=8BITMIME",
        b"RCPT TO:<ufficio@pec.fornitore.it>",
        b"EHLO mx.azienda.it",
        b"DATA",
    ];
    let n = 2_000_000;
    let start = Instant::now();
    for i in 0..n {
        let _ = black_box(pecgate::listener::command::parse_command(black_box(lines[i % lines.len()])));
    }
    let secs = start.elapsed().as_secs_f64();
    println!("parse_command: {n} lines in {secs:.3}s = {:.0} lines/s", n as f64 / secs);
}
