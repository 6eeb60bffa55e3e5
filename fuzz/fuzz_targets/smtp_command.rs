//! SMTP command lines (`listener::command::parse_command`), split from the
//! input the way the session splits socket bytes (`proto::codec::split_line`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::proto::codec::split_line;
use pecgate::listener::command::{Command, parse_command};
use pecgate::proto::address::is_valid_address;

fn check(line: &[u8]) {
    match parse_command(line) {
        Ok(Command::Mail { from, .. }) => assert!(from.is_empty() || is_valid_address(&from), "MAIL FROM accepted {from:?}"),
        Ok(Command::Rcpt { to, .. }) => assert!(is_valid_address(&to), "RCPT TO accepted {to:?}"),
        Ok(Command::Ehlo(d) | Command::Helo(d)) => assert!(!d.is_empty() && !d.contains(char::is_whitespace), "HELO/EHLO argument {d:?}"),
        Ok(Command::Auth { mechanism, .. }) => assert!(!mechanism.is_empty()),
        Ok(_) => {}
        // Syntax errors are 500 or 501, never anything that could end the session.
        Err(reply) => assert!(matches!(reply.code, 500 | 501), "reply {}", reply.code),
    }
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one line, then every LF-terminated line of it.
    check(data);
    let mut rest = data;
    while let Some((line, used)) = split_line(rest) {
        assert!(used >= 1 && used <= rest.len() && line.len() < used);
        check(line);
        rest = &rest[used..];
    }
});
