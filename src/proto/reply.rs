//! SMTP replies: the one table of what pecgate says on the wire.
//!
//! Every reply the listener sends is built here, from a named constant or
//! from one of the constructors below that carry a precise, actionable text
//! (the refusals a mail admin reads in a bounce). Codes follow RFC 5321 §4.2;
//! enhanced status codes RFC 3463 / RFC 5248.

use std::borrow::Cow;
use std::fmt;

/// An SMTP reply: basic code, optional enhanced status code and text lines.
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as `5.7.1` (RFC 3463), if any.
    pub status: Option<Cow<'static, str>>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: Option<&'static str>, text: impl Into<String>) -> Self {
        Self { code, status: status.map(Cow::Borrowed), lines: vec![text.into()] }
    }

    pub fn multiline(code: u16, status: Option<&'static str>, lines: Vec<String>) -> Self {
        Self { code, status: status.map(Cow::Borrowed), lines }
    }

    /// A reply read from a remote server.
    pub fn parsed(code: u16, status: Option<String>, lines: Vec<String>) -> Self {
        Self { code, status: status.map(Cow::Owned), lines }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The same reply with a suffix on its last line, e.g. ` (queue id X)`.
    pub fn with_suffix(mut self, suffix: &str) -> Self {
        if let Some(last) = self.lines.last_mut() {
            last.push_str(suffix);
        }
        self
    }

    /// Wire form, CRLF-terminated, multi-line with `code-` continuation.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let lines: Vec<&str> = if self.lines.is_empty() { vec![""] } else { self.lines.iter().map(String::as_str).collect() };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if let Some(status) = &self.status {
                out.push_str(status);
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            // Never let a text smuggle a line break onto the wire.
            out.extend(line.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }));
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_wire().trim_end().replace("\r\n", " / "))
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({self})")
    }
}

macro_rules! reply_const {
    ($($(#[$doc:meta])* $name:ident = $code:expr, $status:expr, $text:expr;)*) => {
        $($(#[$doc])* pub fn $name() -> Reply { Reply::new($code, $status, $text) })*
    };
}

reply_const! {
    /// RFC 5321 §4.2.2: requested action completed.
    r250_ok = 250, Some("2.0.0"), "OK";
    /// RFC 5321 §4.1.1.2 / 4.1.1.3.
    r250_sender_ok = 250, Some("2.1.0"), "sender OK";
    r250_rcpt_ok = 250, Some("2.1.5"), "recipient OK";
    /// RFC 5321 §4.1.1.5 RSET.
    r250_reset = 250, Some("2.0.0"), "reset";
    /// RFC 5321 §4.1.1.9 NOOP.
    r250_noop = 250, Some("2.0.0"), "OK";
    /// RFC 5321 §4.1.1.10 QUIT.
    r221_bye = 221, Some("2.0.0"), "bye";
    /// RFC 4954 §6: authentication succeeded.
    r235_auth_ok = 235, Some("2.7.0"), "authentication succeeded";
    /// RFC 5321 §4.1.1.4: start mail input.
    r354_start_data = 354, None, "end data with <CR><LF>.<CR><LF>";
    /// RFC 3207 §4: ready to start TLS.
    r220_ready_tls = 220, Some("2.0.0"), "ready to start TLS";
    /// RFC 5321 §4.2.5 / RFC 3463 4.3.0: local error; the default for anything unexpected.
    r451_local_error = 451, Some("4.3.0"), "local error in processing, try again later";
    /// RFC 3463 4.3.1: mail system full (spool or store not writable).
    r452_storage = 452, Some("4.3.1"), "insufficient system storage, try again later";
    /// RFC 5321 §4.5.3.1.10: too many recipients (temporary, client retries the rest).
    r452_too_many_rcpts = 452, Some("4.5.3"), "too many recipients";
    /// RFC 5321 §3.8: service shutting down / session limits.
    r421_shutdown = 421, Some("4.3.2"), "service shutting down, try again later";
    r421_too_many_sessions = 421, Some("4.7.0"), "too many connections, try again later";
    r421_timeout = 421, Some("4.4.2"), "timeout, closing connection";
    /// RFC 5321 §3.1: a client waits for the greeting; one that does not is a bot or broken.
    r554_early_talker = 554, Some("5.5.0"), "SMTP synchronization error: data sent before the greeting";
    /// RFC 5321 §4.2.4: syntax errors.
    r500_line_too_long = 500, Some("5.5.2"), "line too long (at most 1000 bytes with CRLF, RFC 5321 4.5.3.1.4)";
    r500_unknown_command = 500, Some("5.5.1"), "unknown command";
    r501_syntax = 501, Some("5.5.4"), "syntax error in parameters or arguments";
    r501_bad_address = 501, Some("5.1.3"), "bad address syntax";
    r502_not_implemented = 502, Some("5.5.1"), "command not implemented";
    /// RFC 5321 §4.1.4: bad sequence.
    r503_need_ehlo = 503, Some("5.5.1"), "send EHLO/HELO first";
    r503_need_mail = 503, Some("5.5.1"), "need MAIL command";
    r503_need_rcpt = 503, Some("5.5.1"), "need RCPT command";
    r503_nested_mail = 503, Some("5.5.1"), "sender already given";
    r503_already_tls = 503, Some("5.5.1"), "TLS already active";
    r503_already_authed = 503, Some("5.5.1"), "already authenticated";
    r555_unknown_param = 555, Some("5.5.4"), "unsupported MAIL/RCPT parameter";
    r504_auth_mech = 504, Some("5.5.4"), "unrecognised authentication mechanism";
    /// RFC 4954 §6.
    r535_auth_failed = 535, Some("5.7.8"), "authentication credentials invalid";
    r538_auth_needs_tls = 538, Some("5.7.11"), "encryption required for requested authentication mechanism";
    r530_auth_required = 530, Some("5.7.0"), "authentication required";
    /// RFC 4954 §4: the client answered a challenge with "*".
    r501_auth_cancelled = 501, Some("5.7.0"), "authentication cancelled";
    /// RFC 4954 §4: a response that is not valid base64.
    r501_auth_base64 = 501, Some("5.5.2"), "invalid base64 in AUTH response";
    /// RFC 4616 §2: missing NULs, empty or overlong fields, not UTF-8.
    r501_auth_malformed = 501, Some("5.5.2"), "malformed AUTH response";
    /// RFC 4954 §4: AUTH is not permitted during a mail transaction.
    r503_auth_in_transaction = 503, Some("5.5.1"), "AUTH not permitted during a mail transaction";
    /// RFC 5321 §3.8: the session is closed after repeated AUTH failures.
    r421_auth_failures = 421, Some("4.7.0"), "too many authentication failures, closing connection";
    r454_tls_unavailable = 454, Some("4.7.0"), "TLS not available";
    /// RFC 5321 §3.8 / §4.2.3: client not permitted.
    r554_no_service = 554, Some("5.7.1"), "access denied";
    r554_no_valid_rcpts = 554, Some("5.5.1"), "no valid recipients";
    /// 8-bit, NULs and other junk in commands.
    r500_bad_bytes = 500, Some("5.5.2"), "invalid characters in command";
}

/// RFC 1870 §6.1 / RFC 3463 5.3.4: the message is larger than `max` bytes
/// (declared with SIZE= or counted in DATA). Permanent: it will never fit.
pub fn r552_too_big(max: u64) -> Reply {
    Reply::new(552, Some("5.3.4"), format!("message size exceeds the maximum of {max} bytes"))
}

/// The mailbox's provider limit, which may depend on the recipient count (Aruba).
pub fn r552_too_big_for_mailbox(mailbox: &str, max: u64, rcpts: usize) -> Reply {
    Reply::new(
        552,
        Some("5.3.4"),
        format!("message size exceeds the limit of {max} bytes for {rcpts} recipient(s) of PEC mailbox {mailbox}"),
    )
}

/// RFC 3463 5.3.4: a part of the message exceeds one of our limits (the
/// header section, which is parsed in memory). Permanent, and it says which.
pub fn r552_limit(what: &str) -> Reply {
    Reply::new(552, Some("5.3.4"), format!("message refused: {what}"))
}

/// RFC 4954 §4: a server challenge, base64 text ("" for PLAIN's empty one).
pub fn r334_challenge(base64: &str) -> Reply {
    Reply::new(334, None, base64)
}

// ---------------------------------------------------------------------------
// policy refusals
//
// What `policy::evaluate` answers at end of DATA. Each text names the
// sender, mailbox or recipient at fault so a mail admin can fix the cause
// (mailbox configuration, subject tag, recipient list) without our logs.
// ---------------------------------------------------------------------------

/// A bounce can never be a PEC: the provider needs a sender to hold responsible.
pub fn r550_null_sender() -> Reply {
    Reply::new(550, Some("5.7.1"), "the null sender may not send PEC")
}

/// `tag_required` is set and the subject has no tag; `marker` is the first configured one.
pub fn r550_tag_required(marker: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("subject must carry a PEC tag such as {marker}"))
}

/// The subject tag names a mailbox id that is not configured.
pub fn r550_unknown_mailbox(id: &str) -> Reply {
    Reply::new(550, Some("5.1.1"), format!("unknown PEC mailbox \"{id}\" in subject tag"))
}

/// The sender may use several mailboxes and nothing says which one; `example_tag` shows how to choose.
pub fn r550_several_mailboxes(sender: &str, ids: &[String], example_tag: &str) -> Reply {
    Reply::new(
        550,
        Some("5.7.1"),
        format!("{sender} may send from several PEC mailboxes ({}): add a tag such as {example_tag} to the subject", ids.join(", ")),
    )
}

/// The sender is known but lacks the send permission on this mailbox (address).
pub fn r550_may_not_send(sender: &str, mailbox: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("{sender} may not send from PEC mailbox {mailbox}"))
}

/// A `require_pin` mailbox, and the subject tag has no PIN.
pub fn r550_pin_missing(mailbox: &str, example_tag: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("PEC mailbox {mailbox} requires your PIN in the subject tag, e.g. {example_tag}"))
}

/// The PIN in the tag does not match the user's (the PIN itself is never repeated).
pub fn r550_pin_wrong(mailbox: &str, user: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("wrong PIN for {user} on PEC mailbox {mailbox}"))
}

/// The user has no PIN on a `require_pin` mailbox.
pub fn r550_pin_not_set(mailbox: &str, id: &str, user: &str) -> Reply {
    Reply::new(
        550,
        Some("5.7.1"),
        format!("no PIN is set for {user} on PEC mailbox {mailbox}; the admin must run: pecgate pin set --mailbox {id} --user {user}"),
    )
}

/// Too many wrong PINs: the user may not send from the mailbox until `until`.
pub fn r550_pin_locked(mailbox: &str, user: &str, until: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("{user} is locked out of PEC mailbox {mailbox} until {until} after too many wrong PINs"))
}

/// The sender appears in no mailbox's user list.
pub fn r550_not_a_user(sender: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("{sender} is not a user of any PEC mailbox"))
}

/// An authenticated session may send only as its account's user or a PEC mailbox
/// that user may send from (Postfix `reject_sender_login_mismatch`; RFC 5321 553 =
/// mailbox name not allowed, RFC 3463 5.7.1 = not authorised).
pub fn r553_sender_not_owned(sender: &str, login: &str, user: &str) -> Reply {
    Reply::new(553, Some("5.7.1"), format!("login {login} may not send as {sender}; use {user} or a PEC mailbox it may send from"))
}

/// The mailbox exists but is switched off in the configuration.
pub fn r550_mailbox_inactive(mailbox: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("PEC mailbox {mailbox} is not active"))
}

/// More distinct recipients than the mailbox (usually the provider contract) allows.
pub fn r550_too_many_rcpts(mailbox: &str, count: usize, max: usize) -> Reply {
    Reply::new(550, Some("5.5.3"), format!("too many recipients for PEC mailbox {mailbox}: {count}, at most {max}"))
}

/// PEC has no blind copies: every envelope recipient must be visible in To or Cc.
pub fn r550_bcc_not_allowed(rcpt: &str) -> Reply {
    Reply::new(550, Some("5.7.1"), format!("PEC does not allow Bcc: {rcpt} is not in To or Cc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let cases = [
            (r250_ok(), "250 2.0.0 OK\r\n"),
            (Reply::new(354, None, "go"), "354 go\r\n"),
            (Reply::multiline(250, None, vec!["host".into(), "PIPELINING".into()]), "250-host\r\n250 PIPELINING\r\n"),
            (Reply::new(550, Some("5.7.1"), "a\r\nb"), "550 5.7.1 a  b\r\n"),
            (r451_local_error().with_suffix(" (queue id Q1)"), "451 4.3.0 local error in processing, try again later (queue id Q1)\r\n"),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_wire(), wire);
        }
    }

    #[test]
    fn classes() {
        assert!(r250_ok().is_positive());
        assert!(r452_storage().is_temporary());
        assert!(r552_too_big(1).is_permanent() && r552_limit("x").is_permanent());
    }
}
