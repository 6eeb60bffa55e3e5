//! Mailbox addresses as they appear in SMTP paths (RFC 5321 §4.1.2).

/// Parses the inside of a reverse- or forward-path: `<user@example.org>`,
/// `<>` (null sender, returned as ""), with an optional obsolete source route
/// (`<@a,@b:user@example.org>`, dropped). Returns `None` for anything that is
/// not a plausible address. Deliberately strict about what reaches the queue:
/// no spaces or control characters outside quotes, one `@`, a non-empty
/// domain, at most 254 octets.
pub fn parse_path(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s.strip_prefix('<')?.strip_suffix('>')?;
    if inner.is_empty() {
        return Some(String::new());
    }
    let inner = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => inner,
    };
    if is_valid_address(inner) { Some(inner.to_owned()) } else { None }
}

/// `local@domain` with a dot-atom or quoted local part and a domain name or
/// address literal.
pub fn is_valid_address(addr: &str) -> bool {
    if addr.is_empty() || addr.len() > 254 {
        return false;
    }
    let Some((local, domain)) = split_address(addr) else { return false };
    valid_local(local) && valid_domain(domain)
}

/// Splits at the last `@` outside a quoted local part.
fn split_address(addr: &str) -> Option<(&str, &str)> {
    let at = addr.rfind('@')?;
    Some((&addr[..at], &addr[at + 1..]))
}

fn valid_local(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if let Some(q) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        return q.chars().all(|c| c != '\r' && c != '\n' && c != '\0');
    }
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii())
}

fn valid_domain(domain: &str) -> bool {
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return !lit.is_empty() && lit.chars().all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c));
    }
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

/// Lower-cases the domain part only (local parts are case-sensitive by RFC,
/// but we compare whole addresses case-insensitively for permissions).
pub fn normalize(addr: &str) -> String {
    addr.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            ("<a@b.it>", Some("a@b.it")),
            (" <a@b.it> ", Some("a@b.it")),
            ("<>", Some("")),
            ("<@relay.it,@r2.it:a@b.it>", Some("a@b.it")),
            ("<\"mario rossi\"@b.it>", Some("\"mario rossi\"@b.it")),
            ("<a@[127.0.0.1]>", Some("a@[127.0.0.1]")),
            ("a@b.it", None),
            ("<a@b.it", None),
            ("<a b@c.it>", None),
            ("<a@>", None),
            ("<@b.it>", None),
            ("<a..b@c.it>", None),
            ("<a@b..it>", None),
            ("<a@-b.it>", None),
            ("<a\0@b.it>", None),
            ("<a@b.it\r\nRCPT>", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_path(input).as_deref(), want, "{input:?}");
        }
        assert!(!is_valid_address(&format!("{}@b.it", "a".repeat(65))));
    }
}
