//! SMTP command parser (RFC 5321 §4.1), pure.

use crate::proto::address::parse_path;
use crate::proto::reply::{self, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail { from: String, params: Vec<Param> },
    Rcpt { to: String, params: Vec<Param> },
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
    Auth { mechanism: String, initial: Option<String> },
    Vrfy,
    Help,
}

/// An ESMTP parameter such as `SIZE=1000` or `BODY=8BITMIME`, keyword upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub keyword: String,
    pub value: Option<String>,
}

/// Parses one command line (without CRLF). Errors are the reply to send.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    // 8-bit bytes, NUL and other controls have no place in commands.
    if line.iter().any(|&b| b == 0 || b >= 0x80 || (b < 0x20 && b != b'\t')) {
        return Err(reply::r500_bad_bytes());
    }
    let line = std::str::from_utf8(line).map_err(|_| reply::r500_bad_bytes())?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line.trim(), ""),
    };
    let no_args = |cmd: Command| if rest.is_empty() { Ok(cmd) } else { Err(reply::r501_syntax()) };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => domain_arg(rest).map(Command::Ehlo),
        "HELO" => domain_arg(rest).map(Command::Helo),
        "MAIL" => {
            let (path, params) = path_and_params(rest, "FROM:")?;
            Ok(Command::Mail { from: path, params })
        }
        "RCPT" => {
            let (path, params) = path_and_params(rest, "TO:")?;
            if path.is_empty() {
                return Err(reply::r501_bad_address());
            }
            Ok(Command::Rcpt { to: path, params })
        }
        "DATA" => no_args(Command::Data),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut parts = rest.split_whitespace();
            let mechanism = parts.next().ok_or_else(reply::r501_syntax)?.to_ascii_uppercase();
            let initial = parts.next().map(str::to_owned);
            if parts.next().is_some() {
                return Err(reply::r501_syntax());
            }
            Ok(Command::Auth { mechanism, initial })
        }
        "VRFY" | "EXPN" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        _ => Err(reply::r500_unknown_command()),
    }
}

/// A received command line as it may appear in a log: an AUTH line keeps only
/// its mechanism (the initial response is the password in base64).
pub fn loggable(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(verb), mechanism) if verb.eq_ignore_ascii_case("AUTH") => match (mechanism, words.next()) {
            (Some(m), None) => format!("{verb} {m}"),
            (Some(m), Some(_)) => format!("{verb} {m} ***"),
            (None, _) => verb.to_owned(),
        },
        _ => text.escape_debug().to_string(),
    }
}

fn domain_arg(rest: &str) -> Result<String, Reply> {
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(reply::r501_syntax());
    }
    Ok(rest.to_owned())
}

/// `FROM:<path> PARAM=V ...`; tolerates a space after the colon (common clients do it).
fn path_and_params(rest: &str, prefix: &str) -> Result<(String, Vec<Param>), Reply> {
    let head = rest.get(..prefix.len()).ok_or_else(reply::r501_syntax)?;
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(reply::r501_syntax());
    }
    let rest = rest[prefix.len()..].trim_start();
    if !rest.starts_with('<') {
        return Err(reply::r501_bad_address());
    }
    let close = find_path_end(rest).ok_or_else(reply::r501_bad_address)?;
    let path = parse_path(&rest[..=close]).ok_or_else(reply::r501_bad_address)?;
    let params = rest[close + 1..]
        .split_whitespace()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Param { keyword: k.to_ascii_uppercase(), value: Some(v.to_owned()) },
            None => Param { keyword: p.to_ascii_uppercase(), value: None },
        })
        .collect();
    Ok((path, params))
}

/// Index of the `>` closing the path, skipping quoted local parts.
fn find_path_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(k: &str, v: Option<&str>) -> Param {
        Param { keyword: k.into(), value: v.map(Into::into) }
    }

    #[test]
    fn parse_table() {
        let ok: &[(&str, Command)] = &[
            ("EHLO mx.corp.it", Command::Ehlo("mx.corp.it".into())),
            ("ehlo [127.0.0.1]", Command::Ehlo("[127.0.0.1]".into())),
            ("HELO x", Command::Helo("x".into())),
            ("MAIL FROM:<a@b.it>", Command::Mail { from: "a@b.it".into(), params: vec![] }),
            (
                "mail from: <a@b.it> SIZE=100 body=8BITMIME",
                Command::Mail { from: "a@b.it".into(), params: vec![p("SIZE", Some("100")), p("BODY", Some("8BITMIME"))] },
            ),
            ("MAIL FROM:<>", Command::Mail { from: "".into(), params: vec![] }),
            ("RCPT TO:<c@d.it>", Command::Rcpt { to: "c@d.it".into(), params: vec![] }),
            ("RCPT TO:<\"a>b\"@d.it>", Command::Rcpt { to: "\"a>b\"@d.it".into(), params: vec![] }),
            ("DATA", Command::Data),
            ("rset", Command::Rset),
            ("NOOP hello", Command::Noop),
            ("QUIT", Command::Quit),
            ("STARTTLS", Command::StartTls),
            ("AUTH PLAIN AGEAYg==", Command::Auth { mechanism: "PLAIN".into(), initial: Some("AGEAYg==".into()) }),
            ("AUTH login", Command::Auth { mechanism: "LOGIN".into(), initial: None }),
        ];
        for (line, want) in ok {
            assert_eq!(parse_command(line.as_bytes()).as_ref(), Ok(want), "{line}");
        }
        let err: &[(&[u8], u16)] = &[
            (b"FOO", 500),
            (b"", 500),
            (b"EHLO", 501),
            (b"MAIL TO:<a@b.it>", 501),
            (b"MAIL FROM:a@b.it", 501),
            (b"MAIL FROM:<a b@c.it>", 501),
            (b"RCPT TO:<>", 501),
            (b"DATA now", 501),
            (b"MAIL FROM:<a\xe0@b.it>", 500),
            (b"NOOP \0", 500),
            (b"AUTH", 501),
        ];
        for (line, code) in err {
            assert_eq!(parse_command(line).map_err(|r| r.code), Err(*code), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn loggable_hides_auth_responses() {
        let cases: &[(&[u8], &str)] = &[
            (b"AUTH PLAIN AHNjYW5uZXIAczNjcmV0", "AUTH PLAIN ***"),
            (b"auth login c2Nhbm5lcg==", "auth login ***"),
            (b"AUTH LOGIN", "AUTH LOGIN"),
            (b"AUTH  PLAIN  x y z", "AUTH PLAIN ***"),
            (b"AUTH", "AUTH"),
            (b"MAIL FROM:<a@b.it> SIZE=10", "MAIL FROM:<a@b.it> SIZE=10"),
            (b"EHLO x\r\x00", "EHLO x\\r\\0"),
        ];
        for (line, want) in cases {
            assert_eq!(loggable(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_command(&line);
        }

        #[test]
        fn never_panics_on_mail_like(s in "(MAIL FROM:|RCPT TO:)[<>\"@a-z. =\\\\]{0,40}") {
            let _ = parse_command(s.as_bytes());
        }
    }
}
