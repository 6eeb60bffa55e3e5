//! PEC policy: may this message leave, from which PEC mailbox, and how must its
//! header look for the provider to accept it.
//!
//! Pure functions only: the SMTP layer hands in what it received and gets back
//! either a [`Plan`] to carry out or the exact [`Reply`] to refuse with, so the
//! whole decision can be tested without sockets or files.

pub mod headers;
pub mod tag;

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

use crate::proto::reply::{self, Reply};
pub use headers::{Header, HeaderBlock};
pub use tag::{TagMatch, decode_subject, strip_tag};

/// Why a submission is refused; [`Error::reply`] gives what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("null sender")]
    NullSender,
    #[error("message of {size} bytes exceeds {max}")]
    TooBig { size: u64, max: u64 },
    #[error("subject has no tag (first marker {marker})")]
    TagRequired { marker: String },
    #[error("subject tag names unknown mailbox {id}")]
    UnknownMailbox { id: String },
    #[error("{sender} may use mailboxes {ids:?}, none chosen")]
    SeveralMailboxes { sender: String, ids: Vec<String>, example_tag: String },
    #[error("{sender} lacks send permission on {mailbox}")]
    MayNotSend { sender: String, mailbox: String },
    #[error("{sender} is in no mailbox")]
    NotAUser { sender: String },
    #[error("login {login} (user {user}) may not send as {sender}")]
    SenderNotOwned { sender: String, login: String, user: String },
    #[error("mailbox {mailbox} inactive")]
    Inactive { mailbox: String },
    #[error("no recipients")]
    NoRecipients,
    #[error("{count} recipients for {mailbox}, max {max}")]
    TooManyRecipients { mailbox: String, count: usize, max: usize },
    #[error("recipient {rcpt} not in To or Cc")]
    Bcc { rcpt: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `reason` label of `pecgate_smtp_messages_rejected_total` (a small fixed set).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::NullSender | Error::NotAUser { .. } => "unknown_sender",
            Error::TooBig { .. } => "too_big",
            Error::TagRequired { .. } => "tag_missing",
            Error::UnknownMailbox { .. } | Error::NoRecipients => "other",
            Error::SeveralMailboxes { .. } => "ambiguous",
            Error::MayNotSend { .. } | Error::SenderNotOwned { .. } => "not_allowed",
            Error::Inactive { .. } => "inactive",
            Error::TooManyRecipients { .. } => "too_many_recipients",
            Error::Bcc { .. } => "bcc",
        }
    }

    /// The SMTP reply for this refusal (texts live in `proto::reply`).
    pub fn reply(&self) -> Reply {
        match self {
            Error::NullSender => reply::r550_null_sender(),
            Error::TooBig { max, .. } => reply::r552_too_big(*max),
            Error::TagRequired { marker } => reply::r550_tag_required(marker),
            Error::UnknownMailbox { id } => reply::r550_unknown_mailbox(id),
            Error::SeveralMailboxes { sender, ids, example_tag } => reply::r550_several_mailboxes(sender, ids, example_tag),
            Error::MayNotSend { sender, mailbox } => reply::r550_may_not_send(sender, mailbox),
            Error::NotAUser { sender } => reply::r550_not_a_user(sender),
            Error::SenderNotOwned { sender, login, user } => reply::r553_sender_not_owned(sender, login, user),
            Error::Inactive { mailbox } => reply::r550_mailbox_inactive(mailbox),
            Error::NoRecipients => reply::r554_no_valid_rcpts(),
            Error::TooManyRecipients { mailbox, count, max } => reply::r550_too_many_rcpts(mailbox, *count, *max),
            Error::Bcc { rcpt } => reply::r550_bcc_not_allowed(rcpt),
        }
    }
}

/// A user of a PEC mailbox; `send` false means it may only read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRule {
    pub address: String,
    pub send: bool,
}

/// One PEC mailbox as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRules {
    pub id: String,
    pub address: String,
    pub active: bool,
    pub max_recipients: usize,
    /// "completa" | "breve" | "sintetica", sent as X-TipoRicevuta.
    pub receipt_type: String,
    pub users: Vec<UserRule>,
}

impl MailboxRules {
    /// Whether `address` is listed as a user with the send permission.
    fn may_send(&self, address: &str) -> bool {
        self.users.iter().any(|u| u.send && u.address.eq_ignore_ascii_case(address))
    }

    /// Whether `address` is listed as a user at all.
    fn has_user(&self, address: &str) -> bool {
        self.users.iter().any(|u| u.address.eq_ignore_ascii_case(address))
    }
}

/// The configuration `evaluate` needs, borrowed from the live config.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub markers: &'a [String],
    pub tag_required: bool,
    /// Our host name, for generated Message-IDs.
    pub hostname: &'a str,
    pub max_message_size: u64,
    pub mailboxes: &'a [MailboxRules],
}

/// What the SMTP session received.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// Envelope sender without <>, "" for the null sender.
    pub mail_from: &'a str,
    /// Envelope recipients without <>.
    pub rcpts: &'a [String],
    /// The header section as received (see [`HeaderBlock::parse`]).
    pub headers: &'a [u8],
    /// Whole message size in bytes.
    pub size: u64,
    /// The `[[mailbox.user]]` address the session's SMTP AUTH login acts as;
    /// None = not authenticated. When set, it replaces the envelope sender as
    /// the identity that must be a sending user of the mailbox (see [`check`]).
    pub authenticated_user: Option<&'a str>,
    /// Used to generate a Message-ID when the message has none.
    pub queue_id: &'a str,
    /// RFC 5322 date to add when the message has no Date header.
    pub date: &'a str,
}

/// The decision on a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept(Plan),
    Reject(Reply),
}

/// What to send to the PEC provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mailbox_id: String,
    /// The mailbox address: new envelope sender.
    pub mail_from: String,
    /// Envelope recipients, deduplicated case-insensitively, order kept.
    pub rcpts: Vec<String>,
    /// The rewritten header section, ending with the empty line.
    pub headers: Vec<u8>,
    /// Without <>, the one the message carries after rewrite.
    pub message_id: String,
    /// Decoded, tag stripped.
    pub subject: String,
    /// Who sent it, and gets notices and receipts: the authenticated user, else
    /// the envelope sender as received.
    pub original_sender: String,
    pub tag: Option<TagMatch>,
    pub removed_bcc: bool,
}

/// Decides on a submission; see [`check`] for the rules.
pub fn evaluate(rules: &Rules, sub: &Submission) -> Verdict {
    match check(rules, sub) {
        Ok(plan) => Verdict::Accept(plan),
        Err(e) => Verdict::Reject(e.reply()),
    }
}

/// The policy, in order: null sender, size, subject tag, mailbox selection,
/// permission, mailbox active, recipient count, no Bcc; then the header rewrite.
///
/// The identity checked against the mailbox users is the envelope sender, or,
/// in an authenticated session, the login's user (the envelope sender was
/// already matched to it by [`check_sender_login`]). For authenticated
/// sessions the "mailbox lists its own address" opt-in does not apply: the
/// login's user must itself be a sending user of the chosen mailbox.
pub fn check(rules: &Rules, sub: &Submission) -> Result<Plan> {
    let sender = sub.mail_from;
    let identity = sub.authenticated_user.unwrap_or(sender);
    if sender.is_empty() {
        return Err(Error::NullSender);
    }
    if sub.size > rules.max_message_size {
        return Err(Error::TooBig { size: sub.size, max: rules.max_message_size });
    }

    let mut block = HeaderBlock::parse(sub.headers);
    let raw_subject = block.get("Subject").map(Header::raw_value);
    let stripped = raw_subject.as_deref().and_then(|s| strip_tag(s, rules.markers));
    if rules.tag_required && stripped.is_none() {
        return Err(Error::TagRequired { marker: first_marker(rules) });
    }
    let tag = stripped.as_ref().map(|(t, _)| t.clone());

    let from = block.get("From").map(|h| addresses(h.value_bytes()));
    let from_addr = from.as_ref().and_then(|list| list.first()).map(|a| a.address.as_str());

    let mailbox = select_mailbox(rules, sender, identity, from_addr, tag.as_ref())?;
    check_permission(mailbox, sub, from_addr)?;
    if !mailbox.active {
        return Err(Error::Inactive { mailbox: mailbox.address.clone() });
    }

    let rcpts = dedup(sub.rcpts);
    if rcpts.is_empty() {
        return Err(Error::NoRecipients);
    }
    if rcpts.len() > mailbox.max_recipients {
        return Err(Error::TooManyRecipients { mailbox: mailbox.address.clone(), count: rcpts.len(), max: mailbox.max_recipients });
    }
    let visible: Vec<String> =
        block.fields.iter().filter(|h| h.is("To") || h.is("Cc")).flat_map(|h| addresses(h.value_bytes())).map(|a| a.address).collect();
    if let Some(hidden) = rcpts.iter().find(|r| !visible.iter().any(|v| v.eq_ignore_ascii_case(r))) {
        return Err(Error::Bcc { rcpt: hidden.clone() });
    }

    // Rewrite.
    let subject_raw = match (&stripped, &raw_subject) {
        (Some((_, new_raw)), _) => {
            block.set("Subject", new_raw);
            new_raw.clone()
        }
        (None, Some(raw)) => raw.clone(),
        (None, None) => String::new(),
    };
    let first_from = from.as_ref().and_then(|list| list.first());
    let from_value = match block.get("From") {
        Some(h) => rewrite_from(&h.raw_value(), first_from, &mailbox.address),
        None => mailbox.address.clone(),
    };
    block.set("From", &from_value);
    let removed_bcc = block.remove_all("Bcc") > 0;
    block.remove_all("Return-Path");
    block.remove_all("Sender");
    block.remove_all("X-TipoRicevuta");
    block.set("X-TipoRicevuta", &mailbox.receipt_type);
    let message_id = match block.value("Message-ID").as_deref().and_then(angle_id) {
        Some(id) => id,
        None => {
            let id = format!("{}.pecgate@{}", sub.queue_id, rules.hostname);
            block.set("Message-ID", &format!("<{id}>"));
            id
        }
    };
    if block.get("Date").is_none() {
        block.set("Date", sub.date);
    }

    Ok(Plan {
        mailbox_id: mailbox.id.clone(),
        mail_from: mailbox.address.clone(),
        rcpts,
        headers: block.to_bytes(),
        message_id,
        subject: decode_subject(&subject_raw),
        original_sender: identity.to_string(),
        tag,
        removed_bcc,
    })
}

/// The marker quoted in refusals: the first configured one.
fn first_marker(rules: &Rules) -> String {
    rules.markers.first().cloned().unwrap_or_else(|| tag::DEFAULT_MARKERS[0].to_string())
}

/// Rule 4: tag id, else an envelope sender or From that is a mailbox address, else the identity's mailboxes.
fn select_mailbox<'r>(
    rules: &Rules<'r>,
    envelope: &str,
    sender: &str,
    from_addr: Option<&str>,
    tag: Option<&TagMatch>,
) -> Result<&'r MailboxRules> {
    let mailboxes = rules.mailboxes;
    if let Some(id) = tag.and_then(|t| t.mailbox.as_deref()) {
        return mailboxes.iter().find(|m| m.id.eq_ignore_ascii_case(id)).ok_or_else(|| Error::UnknownMailbox { id: id.to_string() });
    }
    let by_address = |addr: &str| mailboxes.iter().find(|m| m.address.eq_ignore_ascii_case(addr));
    if let Some(m) = by_address(envelope).or_else(|| from_addr.and_then(by_address)) {
        return Ok(m);
    }
    let usable: Vec<&MailboxRules> = mailboxes.iter().filter(|m| m.may_send(sender)).collect();
    match usable.as_slice() {
        [one] => Ok(one),
        [first, ..] => {
            let marker = tag.map(|t| t.marker.clone()).unwrap_or_else(|| first_marker(rules));
            Err(Error::SeveralMailboxes {
                sender: sender.to_string(),
                ids: usable.iter().map(|m| m.id.clone()).collect(),
                example_tag: tag::tagged_marker(&marker, &first.id),
            })
        }
        [] => match mailboxes.iter().find(|m| m.has_user(sender)) {
            Some(m) => Err(Error::MayNotSend { sender: sender.to_string(), mailbox: m.address.clone() }),
            None => Err(Error::NotAUser { sender: sender.to_string() }),
        },
    }
}

/// Rule 5: the SMTP AUTH login's user is a sending user; without AUTH, the
/// sender is a sending user, or the mailbox lists its own address as a
/// sending user (explicit opt-in) and the envelope or From is that address.
fn check_permission(mailbox: &MailboxRules, sub: &Submission, from_addr: Option<&str>) -> Result<()> {
    let allowed = match sub.authenticated_user {
        Some(user) => mailbox.may_send(user),
        None => {
            let sender = sub.mail_from;
            let is_mailbox = |a: &str| a.eq_ignore_ascii_case(&mailbox.address);
            let as_itself = (is_mailbox(sender) || from_addr.is_some_and(is_mailbox)) && mailbox.may_send(&mailbox.address);
            mailbox.may_send(sender) || as_itself
        }
    };
    if allowed {
        Ok(())
    } else {
        let sender = sub.authenticated_user.unwrap_or(sub.mail_from);
        Err(Error::MayNotSend { sender: sender.to_string(), mailbox: mailbox.address.clone() })
    }
}

/// At MAIL in an authenticated session, like Postfix's `smtpd_sender_login_maps`
/// with `reject_sender_login_mismatch`: login `login` (acting as `user`) may
/// use as envelope sender `user` itself or the address of a PEC mailbox where
/// `user` is a sending user; nothing else, and never the null sender.
pub fn check_sender_login(mailboxes: &[MailboxRules], login: &str, user: &str, mail_from: &str) -> Result<()> {
    if mail_from.is_empty() {
        return Err(Error::NullSender);
    }
    let owned =
        mail_from.eq_ignore_ascii_case(user) || mailboxes.iter().any(|m| m.address.eq_ignore_ascii_case(mail_from) && m.may_send(user));
    if owned {
        Ok(())
    } else {
        Err(Error::SenderNotOwned { sender: mail_from.to_string(), login: login.to_string(), user: user.to_string() })
    }
}

/// Envelope recipients without case-insensitive duplicates, first spelling and order kept.
fn dedup(rcpts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(rcpts.len());
    for r in rcpts {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            out.push(r.clone());
        }
    }
    out
}

/// A mailbox from an address header: decoded display name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mailbox {
    name: Option<String>,
    address: String,
}

/// The mailboxes of an address field value (bytes after the colon), groups flattened,
/// entries without an address skipped. mail-parser handles quoting, comments and RFC 2047.
fn addresses(value: &[u8]) -> Vec<Mailbox> {
    let parsed = MessageStream::new(value).parse_address();
    let HeaderValue::Address(list) = parsed else {
        return Vec::new();
    };
    let all = match list {
        Address::List(list) => list,
        Address::Group(groups) => groups.into_iter().flat_map(|g| g.addresses).collect(),
    };
    all.into_iter()
        .filter_map(|a| {
            let address = a.address?.trim().to_string();
            let name = a.name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
            (!address.is_empty()).then_some(Mailbox { name, address })
        })
        .collect()
}

/// The new From value: the original display name (raw, as the client wrote it) with
/// the mailbox address; a name only given as a comment is re-quoted; else the bare address.
/// A candidate is used only if it parses back to exactly the mailbox address, so a
/// malformed original can never leak into the rewritten field. It is checked as
/// [`HeaderBlock::set`] will write it: turning a bare CR or LF into a space can change
/// how the rest parses (`"=?<LF><TAB>?Q?"?=` becomes an encoded word that eats the quote).
fn rewrite_from(raw: &str, first: Option<&Mailbox>, address: &str) -> String {
    let raw_named = raw_display_name(raw).map(|d| format!("{d} <{address}>"));
    let quoted = first.and_then(|m| m.name.as_deref()).map(|n| format!("{} <{address}>", quote_display_name(n)));
    [raw_named, quoted]
        .into_iter()
        .flatten()
        .find(|candidate| {
            let written = [headers::sanitize_value(candidate).as_slice(), b"\r\n"].concat();
            matches!(addresses(&written).as_slice(), [only] if only.address == address)
        })
        .unwrap_or_else(|| address.to_string())
}

/// The phrase before the first angle-addr of the first mailbox in a raw address list,
/// trimmed; None if that mailbox has no angle-addr, no phrase, or an unquoted '@' in it.
fn raw_display_name(raw: &str) -> Option<&str> {
    let bytes = raw.as_bytes();
    let mut start = 0;
    let (mut quoted, mut escaped, mut depth) = (false, false, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted || depth > 0 => escaped = true,
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted && depth > 0 => depth -= 1,
            _ if quoted || depth > 0 => {}
            // A group name: the mailbox starts after it.
            b':' => start = i + 1,
            // Not a phrase (an addr-spec before '<', or the end of the mailbox).
            b',' | b';' | b'@' => return None,
            b'<' => {
                let phrase = raw.get(start..i)?.trim_matches([' ', '\t', '\r', '\n']);
                return (!phrase.is_empty()).then_some(phrase);
            }
            _ => {}
        }
    }
    None
}

/// A decoded display name as an RFC 5322 phrase: quoted-string if ASCII, else encoded words.
fn quote_display_name(name: &str) -> String {
    if name.bytes().all(|b| (0x20..=0x7e).contains(&b)) && !name.contains("=?") {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        tag::encode_subject(name)
    }
}

/// The id inside the first <...> of a Message-ID value, if non-empty.
fn angle_id(value: &str) -> Option<String> {
    let open = value.find('<')?;
    let rest = value.get(open + 1..)?;
    let close = rest.find('>')?;
    let id = rest.get(..close)?.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(address: &str, send: bool) -> UserRule {
        UserRule { address: address.to_string(), send }
    }

    fn mailbox(id: &str, active: bool, max: usize, receipt: &str, users: Vec<UserRule>) -> MailboxRules {
        MailboxRules {
            id: id.to_string(),
            address: format!("{id}@pec.x.it"),
            active,
            max_recipients: max,
            receipt_type: receipt.to_string(),
            users,
        }
    }

    fn mailboxes() -> Vec<MailboxRules> {
        vec![
            mailbox("legal", true, 50, "completa", vec![user("mario@x.it", true), user("Anna@X.it", true), user("carlo@x.it", false)]),
            mailbox("hr", true, 50, "breve", vec![user("mario@x.it", true), user("lucia@x.it", true)]),
            mailbox("old", false, 50, "completa", vec![user("piero@x.it", true)]),
            // Lists its own address: users may send as the PEC account itself.
            mailbox("shared", true, 2, "sintetica", vec![user("shared@pec.x.it", true)]),
            // Does not: sending as the account needs a user or AUTH.
            mailbox("info", true, 50, "completa", vec![user("gino@x.it", false)]),
        ]
    }

    fn markers() -> Vec<String> {
        tag::default_markers()
    }

    /// One submission scenario; unspecified fields take the defaults of [`Case::new`].
    #[derive(Clone)]
    struct Case {
        name: &'static str,
        mail_from: &'static str,
        rcpts: Vec<String>,
        headers: String,
        size: u64,
        auth: Option<&'static str>,
        tag_required: bool,
    }

    impl Case {
        fn new(name: &'static str, mail_from: &'static str, headers: &str) -> Case {
            Case {
                name,
                mail_from,
                rcpts: vec!["a@y.it".to_string()],
                headers: headers.to_string(),
                size: 1000,
                auth: None,
                tag_required: true,
            }
        }
        fn rcpts(mut self, rcpts: &[&str]) -> Case {
            self.rcpts = rcpts.iter().map(|r| r.to_string()).collect();
            self
        }
        fn size(mut self, size: u64) -> Case {
            self.size = size;
            self
        }
        fn auth(mut self, user: &'static str) -> Case {
            self.auth = Some(user);
            self
        }
        fn optional_tag(mut self) -> Case {
            self.tag_required = false;
            self
        }
        fn run(&self) -> Verdict {
            let markers = markers();
            let mailboxes = mailboxes();
            let rules = Rules {
                markers: &markers,
                tag_required: self.tag_required,
                hostname: "pecgate.x.it",
                max_message_size: 10_000,
                mailboxes: &mailboxes,
            };
            let sub = Submission {
                mail_from: self.mail_from,
                rcpts: &self.rcpts,
                headers: self.headers.as_bytes(),
                size: self.size,
                authenticated_user: self.auth,
                queue_id: "Q123",
                date: "Mon, 1 Jan 2024 10:00:00 +0100",
            };
            evaluate(&rules, &sub)
        }
    }

    fn hdr(subject: &str) -> String {
        format!("From: sender@x.it\r\nTo: a@y.it\r\nSubject: {subject}\r\n\r\n")
    }

    #[test]
    fn refusals() {
        let cases = [
            (Case::new("null sender", "", &hdr("[PEC] x")), "550 5.7.1 the null sender may not send PEC"),
            (
                Case::new("too big", "mario@x.it", &hdr("[PEC:legal] x")).size(10_001),
                "552 5.3.4 message size exceeds the maximum of 10000 bytes",
            ),
            (Case::new("no tag", "anna@x.it", &hdr("Contratto")), "550 5.7.1 subject must carry a PEC tag such as [PEC]"),
            (
                Case::new("no subject", "anna@x.it", "From: anna@x.it\r\nTo: a@y.it\r\n\r\n"),
                "550 5.7.1 subject must carry a PEC tag such as [PEC]",
            ),
            (Case::new("unknown id", "mario@x.it", &hdr("[PEC:nope] x")), "550 5.1.1 unknown PEC mailbox \"nope\" in subject tag"),
            (
                Case::new("several", "mario@x.it", &hdr("[PEC] x")),
                "550 5.7.1 mario@x.it may send from several PEC mailboxes (legal, hr): add a tag such as [PEC:legal] to the subject",
            ),
            (
                Case::new("several, other marker", "mario@x.it", &hdr("[GPEC] x")),
                "550 5.7.1 mario@x.it may send from several PEC mailboxes (legal, hr): add a tag such as [GPEC:legal] to the subject",
            ),
            (
                Case::new("several, no tag", "MARIO@x.it", &hdr("x")).optional_tag(),
                "550 5.7.1 MARIO@x.it may send from several PEC mailboxes (legal, hr): add a tag such as [PEC:legal] to the subject",
            ),
            (
                Case::new("user without send", "carlo@x.it", &hdr("[PEC] x")),
                "550 5.7.1 carlo@x.it may not send from PEC mailbox legal@pec.x.it",
            ),
            (Case::new("not a user", "nobody@x.it", &hdr("[PEC] x")), "550 5.7.1 nobody@x.it is not a user of any PEC mailbox"),
            (
                Case::new("tag picks a mailbox the user may not use", "anna@x.it", &hdr("[PEC:hr] x")),
                "550 5.7.1 anna@x.it may not send from PEC mailbox hr@pec.x.it",
            ),
            (
                Case::new("AUTH user not a sender of the tagged mailbox", "anna@x.it", &hdr("[PEC:hr] x")).auth("anna@x.it"),
                "550 5.7.1 anna@x.it may not send from PEC mailbox hr@pec.x.it",
            ),
            (
                Case::new("AUTH: the login's user is checked, not the envelope", "legal@pec.x.it", &hdr("[PEC] x")).auth("carlo@x.it"),
                "550 5.7.1 carlo@x.it may not send from PEC mailbox legal@pec.x.it",
            ),
            (
                Case::new("AUTH: no opt-in to send as the mailbox itself", "shared@pec.x.it", &hdr("[PEC] x")).auth("anna@x.it"),
                "550 5.7.1 anna@x.it may not send from PEC mailbox shared@pec.x.it",
            ),
            (
                Case::new(
                    "AUTH: From is an opted-in mailbox, the user is not its sender",
                    "anna@x.it",
                    "From: shared@pec.x.it\r\nTo: a@y.it\r\nSubject: [PEC] x\r\n\r\n",
                )
                .auth("anna@x.it"),
                "550 5.7.1 anna@x.it may not send from PEC mailbox shared@pec.x.it",
            ),
            (
                Case::new("AUTH: the null sender is refused too", "", &hdr("[PEC] x")).auth("anna@x.it"),
                "550 5.7.1 the null sender may not send PEC",
            ),
            (
                Case::new("From is a mailbox without opt-in", "gino@x.it", "From: info@pec.x.it\r\nTo: a@y.it\r\nSubject: [PEC] x\r\n\r\n"),
                "550 5.7.1 gino@x.it may not send from PEC mailbox info@pec.x.it",
            ),
            (
                Case::new("envelope is a mailbox without opt-in", "info@pec.x.it", &hdr("[PEC] x")),
                "550 5.7.1 info@pec.x.it may not send from PEC mailbox info@pec.x.it",
            ),
            (Case::new("inactive", "piero@x.it", &hdr("[PEC] x")), "550 5.7.1 PEC mailbox old@pec.x.it is not active"),
            (
                Case::new("inactive even with AUTH", "piero@x.it", &hdr("[PEC:old] x")).auth("piero@x.it"),
                "550 5.7.1 PEC mailbox old@pec.x.it is not active",
            ),
            (Case::new("no recipients", "anna@x.it", &hdr("[PEC] x")).rcpts(&[]), "554 5.5.1 no valid recipients"),
            (
                Case::new(
                    "too many recipients",
                    "shared@pec.x.it",
                    "From: shared@pec.x.it\r\nTo: a@y.it, b@y.it, c@y.it\r\nSubject: [PEC] x\r\n\r\n",
                )
                .rcpts(&["a@y.it", "b@y.it", "A@Y.IT", "c@y.it"]),
                "550 5.5.3 too many recipients for PEC mailbox shared@pec.x.it: 3, at most 2",
            ),
            (
                Case::new("bcc", "anna@x.it", &hdr("[PEC] x")).rcpts(&["a@y.it", "bob@x.it", "eve@x.it"]),
                "550 5.7.1 PEC does not allow Bcc: bob@x.it is not in To or Cc",
            ),
            (
                Case::new(
                    "address only in a display name or comment",
                    "anna@x.it",
                    "To: \"bob@x.it\" <a@y.it> (eve@x.it)\r\nSubject: [PEC] x\r\n\r\n",
                )
                .rcpts(&["a@y.it", "bob@x.it"]),
                "550 5.7.1 PEC does not allow Bcc: bob@x.it is not in To or Cc",
            ),
            (
                Case::new("a Bcc header does not make it visible", "anna@x.it", "To: a@y.it\r\nBcc: bob@x.it\r\nSubject: [PEC] x\r\n\r\n")
                    .rcpts(&["a@y.it", "bob@x.it"]),
                "550 5.7.1 PEC does not allow Bcc: bob@x.it is not in To or Cc",
            ),
        ];
        for (case, want) in cases {
            match case.run() {
                Verdict::Reject(reply) => {
                    assert_eq!(reply.to_wire(), format!("{want}\r\n"), "{}", case.name)
                }
                Verdict::Accept(plan) => panic!("{}: accepted {plan:?}", case.name),
            }
        }
    }

    fn accept(case: &Case) -> Plan {
        match case.run() {
            Verdict::Accept(plan) => plan,
            Verdict::Reject(reply) => panic!("{}: rejected {reply}", case.name),
        }
    }

    #[test]
    fn accepted_selection() {
        // (case, mailbox id chosen)
        let cases = [
            (Case::new("tag picks mailbox", "mario@x.it", &hdr("[PEC:hr] x")), "hr"),
            (Case::new("tag id case-insensitive", "mario@x.it", &hdr("[pec:LEGAL] x")), "legal"),
            (Case::new("only mailbox of the user", "anna@x.it", &hdr("[PEC] x")), "legal"),
            (Case::new("user address case-insensitive", "ANNA@x.IT", &hdr("[PEC] x")), "legal"),
            (Case::new("AUTH user picks by tag", "mario@x.it", &hdr("[PEC:hr] x")).auth("mario@x.it"), "hr"),
            (Case::new("AUTH user is the only sender", "lucia@x.it", &hdr("[PEC] x")).auth("Lucia@x.it"), "hr"),
            (Case::new("AUTH, envelope is a mailbox the user sends from", "HR@pec.x.it", &hdr("[PEC] x")).auth("lucia@x.it"), "hr"),
            (Case::new("envelope is the mailbox, opted in", "Shared@PEC.x.it", &hdr("[PEC] x")), "shared"),
            (
                Case::new(
                    "From is the mailbox, opted in",
                    "relay@corp.x.it",
                    "From: Ufficio <shared@pec.x.it>\r\nTo: a@y.it\r\nSubject: [PEC] x\r\n\r\n",
                ),
                "shared",
            ),
            (
                Case::new(
                    "From is the mailbox, user allowed anyway",
                    "lucia@x.it",
                    "From: hr@pec.x.it\r\nTo: a@y.it\r\nSubject: x\r\n\r\n",
                )
                .optional_tag(),
                "hr",
            ),
            (Case::new("no tag needed", "lucia@x.it", &hdr("x")).optional_tag(), "hr"),
            (
                Case::new(
                    "recipients via groups, quoted commas, comments, encoded names, folding",
                    "anna@x.it",
                    "To: \"Rossi, Mario\" <m.rossi@y.it>, Team: (boss) b@y.it, c@y.it;\r\n\
                     Cc: =?UTF-8?B?TmljY29sw7I=?= <N@Y.it>,\r\n d@y.it (Dario)\r\n\
                     cc: e@y.it\r\nSubject: [PEC] x\r\n\r\n",
                )
                .rcpts(&["m.rossi@y.it", "b@y.it", "C@y.it", "n@y.it", "d@y.it", "e@y.it"]),
                "legal",
            ),
        ];
        for (case, want) in cases {
            let plan = accept(&case);
            assert_eq!(plan.mailbox_id, want, "{}", case.name);
            assert_eq!(plan.mail_from, format!("{want}@pec.x.it"), "{}", case.name);
            assert_eq!(plan.original_sender, case.auth.unwrap_or(case.mail_from), "{}", case.name);
        }
    }

    #[test]
    fn rewrite_full() {
        let input = "Received: from mx.corp (mx.corp [10.0.0.1])\r\n\tby pecgate; Mon, 1 Jan 2024 09:59:59 +0100\r\n\
                     Return-Path: <mario@x.it>\r\n\
                     From: \"Mario Rossi\" <mario@x.it>\r\n\
                     To: Anna <a@y.it>,\r\n b@y.it\r\n\
                     Bcc: hidden@y.it\r\n\
                     Subject: Re: [PEC:legal] Contratto\r\n\
                     X-Tiporicevuta: breve\r\n\
                     Message-ID: <abc@corp.x.it>\r\n\
                     Sender: mario@x.it\r\n\
                     X-Custom:  odd   spacing \r\n\
                     MIME-Version: 1.0\r\n\
                     X-TIPORICEVUTA: sintetica\r\n\
                     \r\n";
        let want = "Received: from mx.corp (mx.corp [10.0.0.1])\r\n\tby pecgate; Mon, 1 Jan 2024 09:59:59 +0100\r\n\
                    From: \"Mario Rossi\" <legal@pec.x.it>\r\n\
                    To: Anna <a@y.it>,\r\n b@y.it\r\n\
                    Subject: Re: Contratto\r\n\
                    Message-ID: <abc@corp.x.it>\r\n\
                    X-Custom:  odd   spacing \r\n\
                    MIME-Version: 1.0\r\n\
                    X-TipoRicevuta: completa\r\n\
                    Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n\
                    \r\n";
        let case = Case::new("full", "mario@x.it", input).rcpts(&["a@y.it", "b@y.it", "A@y.it"]);
        let plan = accept(&case);
        assert_eq!(String::from_utf8_lossy(&plan.headers), want);
        assert_eq!(
            plan,
            Plan {
                mailbox_id: "legal".to_string(),
                mail_from: "legal@pec.x.it".to_string(),
                rcpts: vec!["a@y.it".to_string(), "b@y.it".to_string()],
                headers: want.as_bytes().to_vec(),
                message_id: "abc@corp.x.it".to_string(),
                subject: "Re: Contratto".to_string(),
                original_sender: "mario@x.it".to_string(),
                tag: Some(TagMatch { marker: "[PEC]".to_string(), mailbox: Some("legal".to_string()) }),
                removed_bcc: true,
            }
        );
    }

    #[test]
    fn rewrite_table() {
        // (name, sender, input headers, expected headers, expected message id, expected subject)
        let cases = [
            (
                "minimal: From, Message-ID and Date added at the end",
                "anna@x.it",
                "To: a@y.it\r\nSubject: [PEC] x\r\n\r\n",
                "To: a@y.it\r\nSubject: x\r\nFrom: legal@pec.x.it\r\nX-TipoRicevuta: completa\r\n\
                 Message-ID: <Q123.pecgate@pecgate.x.it>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\n\r\n",
                "Q123.pecgate@pecgate.x.it",
                "x",
            ),
            (
                "Date kept, bad Message-ID replaced in place, bare From address",
                "anna@x.it",
                "Date: Sun, 31 Dec 2023 23:59:59 +0100\r\nMessage-Id: no-brackets@corp\r\nFrom: anna@x.it\r\n\
                 To: a@y.it\r\nSubject: [PEC] x\r\n\r\n",
                "Date: Sun, 31 Dec 2023 23:59:59 +0100\r\nMessage-ID: <Q123.pecgate@pecgate.x.it>\r\n\
                 From: legal@pec.x.it\r\nTo: a@y.it\r\nSubject: x\r\nX-TipoRicevuta: completa\r\n\r\n",
                "Q123.pecgate@pecgate.x.it",
                "x",
            ),
            (
                "folded Message-ID kept byte-for-byte",
                "anna@x.it",
                "Message-ID:\r\n <folded@corp>\r\nFrom: <anna@x.it>\r\nTo: a@y.it\r\nSubject: [PEC] x\r\n\
                 Date: d\r\n\r\n",
                "Message-ID:\r\n <folded@corp>\r\nFrom: legal@pec.x.it\r\nTo: a@y.it\r\nSubject: x\r\n\
                 Date: d\r\nX-TipoRicevuta: completa\r\n\r\n",
                "folded@corp",
                "x",
            ),
            (
                "no tag: Subject untouched; encoded display name kept; duplicate From removed",
                "lucia@x.it",
                "From: =?UTF-8?B?THVjaWEgQmlhbmNoaQ==?=\r\n <lucia@x.it>\r\nTo: a@y.it\r\n\
                 Subject:  Ferie =?UTF-8?B?4oKs?=\r\nFrom: other@x.it\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n",
                "From: =?UTF-8?B?THVjaWEgQmlhbmNoaQ==?= <hr@pec.x.it>\r\nTo: a@y.it\r\n\
                 Subject:  Ferie =?UTF-8?B?4oKs?=\r\nDate: d\r\nMessage-ID: <m@x>\r\nX-TipoRicevuta: breve\r\n\r\n",
                "m@x",
                "Ferie €",
            ),
            (
                "encoded subject re-encoded, garbage line kept",
                "anna@x.it",
                "From: Anna (Ufficio legale) <anna@x.it>\r\nTo: a@y.it\r\n\
                 Subject: =?UTF-8?B?W1BFQ10gRmF0dHVyYSBuLiDigqwgMTI=?=\r\nthis line is garbage\r\nDate: d\r\n\
                 Message-ID: <m@x>\r\n\r\n",
                "From: Anna (Ufficio legale) <legal@pec.x.it>\r\nTo: a@y.it\r\n\
                 Subject: =?UTF-8?B?RmF0dHVyYSBuLiDigqwgMTI=?=\r\nthis line is garbage\r\nDate: d\r\n\
                 Message-ID: <m@x>\r\nX-TipoRicevuta: completa\r\n\r\n",
                "m@x",
                "Fattura n. € 12",
            ),
            (
                "name only in a comment becomes a quoted display name",
                "anna@x.it",
                "From: anna@x.it (Anna \"la\" Bianchi)\r\nTo: a@y.it\r\nSubject: [PEC] x\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n",
                "From: \"Anna \\\"la\\\" Bianchi\" <legal@pec.x.it>\r\nTo: a@y.it\r\nSubject: x\r\nDate: d\r\n\
                 Message-ID: <m@x>\r\nX-TipoRicevuta: completa\r\n\r\n",
                "m@x",
                "x",
            ),
        ];
        for (name, sender, input, want, want_id, want_subject) in cases {
            let case = Case::new(name, sender, input).optional_tag();
            let plan = accept(&case);
            assert_eq!(String::from_utf8_lossy(&plan.headers), want, "{name}");
            assert_eq!(plan.message_id, want_id, "{name}");
            assert_eq!(plan.subject, want_subject, "{name}");
            assert!(!plan.removed_bcc, "{name}");
        }
    }

    #[test]
    fn from_rewrite_table() {
        let cases = [
            ("\"Mario Rossi\" <mario@corp>", "\"Mario Rossi\" <legal@pec>"),
            ("Mario Rossi <mario@corp>", "Mario Rossi <legal@pec>"),
            ("mario@corp", "legal@pec"),
            ("<mario@corp>", "legal@pec"),
            ("  <mario@corp>", "legal@pec"),
            ("mario@corp (Mario Rossi)", "\"Mario Rossi\" <legal@pec>"),
            ("niccolo@corp (Niccolò)", "=?UTF-8?B?TmljY29sw7I=?= <legal@pec>"),
            ("=?UTF-8?B?TmljY29sw7I=?= <n@corp>", "=?UTF-8?B?TmljY29sw7I=?= <legal@pec>"),
            ("\"Rossi, Mario <boss>\" <m@corp>", "\"Rossi, Mario <boss>\" <legal@pec>"),
            ("a@corp, \"B\" <b@corp>", "legal@pec"),
            ("Team: \"Mario\" <m@corp>;", "\"Mario\" <legal@pec>"),
            ("\"Mario\"\r\n <m@corp>", "\"Mario\" <legal@pec>"),
            ("undisclosed", "legal@pec"),
            // Garbage before '<' is no display name.
            ("shared@pec.x.it\r\n\t!<", "\"!\" <legal@pec>"),
            ("a@b <c@d>", "\"a@b\" <legal@pec>"),
            ("", "legal@pec"),
        ];
        for (raw, want) in cases {
            let parsed = addresses(format!("{raw}\r\n").as_bytes());
            assert_eq!(rewrite_from(raw, parsed.first(), "legal@pec"), want, "{raw:?}");
        }
    }

    /// Found by `fuzz/fuzz_targets/policy.rs`: the candidate with a bare-LF fold in the
    /// display name parsed, but the field as written (LF made a space) read as no address.
    #[test]
    fn from_rewrite_checks_what_is_written() {
        let raw = "\"=?\n\t?Q?\"?=<";
        let written = [headers::sanitize_value(&format!("{raw} <legal@pec>")).as_slice(), b"\r\n"].concat();
        assert!(addresses(&written).is_empty(), "the unchecked candidate must read as no address");
        let parsed = addresses(format!("{raw}\r\n").as_bytes());
        assert_eq!(rewrite_from(raw, parsed.first(), "legal@pec"), "legal@pec");

        let headers = format!("From:{raw}\nTo: a@y.it\nSubject: [PEC:legal] x\n\n");
        let plan = accept(&Case::new("bare LF in From", "mario@x.it", &headers));
        let block = HeaderBlock::parse(&plan.headers);
        let from: Vec<String> =
            block.get("From").map(|h| addresses(h.value_bytes())).unwrap_or_default().into_iter().map(|m| m.address).collect();
        assert_eq!(from, ["legal@pec.x.it"], "{:?}", String::from_utf8_lossy(&plan.headers));
    }

    #[test]
    fn message_id_table() {
        let cases =
            [("<a@b>", Some("a@b")), ("  <a@b> (comment)", Some("a@b")), ("<>", None), ("a@b", None), ("<a b@c>", None), ("<a@b", None)];
        for (value, want) in cases {
            assert_eq!(angle_id(value).as_deref(), want, "{value:?}");
        }
    }

    #[test]
    fn sender_login_table() {
        // (user the login acts as, MAIL FROM, expected reply or None = allowed)
        let cases = [
            ("mario@x.it", "mario@x.it", None),
            ("mario@x.it", "MARIO@X.it", None),
            ("mario@x.it", "legal@pec.x.it", None),
            ("mario@x.it", "Hr@Pec.x.it", None),
            ("shared@pec.x.it", "shared@pec.x.it", None),
            (
                "mario@x.it",
                "anna@x.it",
                Some("553 5.7.1 login scan may not send as anna@x.it; use mario@x.it or a PEC mailbox it may send from"),
            ),
            (
                "mario@x.it",
                "shared@pec.x.it",
                Some("553 5.7.1 login scan may not send as shared@pec.x.it; use mario@x.it or a PEC mailbox it may send from"),
            ),
            (
                "carlo@x.it",
                "legal@pec.x.it",
                Some("553 5.7.1 login scan may not send as legal@pec.x.it; use carlo@x.it or a PEC mailbox it may send from"),
            ),
            (
                "mario@x.it",
                "old@pec.x.it",
                Some("553 5.7.1 login scan may not send as old@pec.x.it; use mario@x.it or a PEC mailbox it may send from"),
            ),
            ("mario@x.it", "", Some("550 5.7.1 the null sender may not send PEC")),
        ];
        let mailboxes = mailboxes();
        for (user, from, want) in cases {
            let got = check_sender_login(&mailboxes, "scan", user, from).map_err(|e| e.reply().to_wire());
            assert_eq!(got, want.map_or(Ok(()), |w| Err(format!("{w}\r\n"))), "{user} as {from:?}");
        }
    }

    fn header_soup() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just("From: \"Mario Rossi\" <mario@x.it>\r\n".to_string()),
            Just("From: shared@pec.x.it\r\n".to_string()),
            Just("To: a@y.it, Team: b@y.it;\r\n".to_string()),
            Just("Cc: \"x, y\" <c@y.it>\r\n (c)\r\n".to_string()),
            Just("Bcc: z@y.it\r\n".to_string()),
            Just("Subject: [PEC:legal] x\r\n".to_string()),
            Just("Subject: =?UTF-8?B?W1BFQ10gRmF0dHVyYSBuLiDigqwgMTI=?=\r\n".to_string()),
            Just("Message-ID: <m@x>\r\n".to_string()),
            Just("X-TipoRicevuta: breve\r\n".to_string()),
            "[A-Za-z-]{1,10}:[ -~]{0,30}\r\n",
            "(From|To|Cc|Subject|Message-ID): \\PC{0,30}\r\n",
            "[ \t][ -~]{0,10}\r\n",
        ];
        prop::collection::vec(field, 0..10).prop_map(|f| format!("{}\r\n", f.concat()).into_bytes())
    }

    fn check_plan(plan: &Plan) -> std::result::Result<(), TestCaseError> {
        let block = HeaderBlock::parse(&plan.headers);
        prop_assert_eq!(block.to_bytes(), plan.headers.clone());
        let count = |name: &str| block.fields.iter().filter(|h| h.is(name)).count();
        prop_assert_eq!(count("From"), 1);
        prop_assert_eq!(count("Bcc"), 0);
        prop_assert_eq!(count("Sender"), 0);
        prop_assert_eq!(count("X-TipoRicevuta"), 1);
        prop_assert!(count("Message-ID") >= 1);
        prop_assert!(count("Date") >= 1);
        let from = block.get("From").map(|h| addresses(h.value_bytes())).unwrap_or_default();
        prop_assert_eq!(from.first().map(|m| m.address.as_str()), Some(plan.mail_from.as_str()));
        Ok(())
    }

    proptest! {
        #[test]
        fn evaluate_never_panics(
            headers in prop::collection::vec(any::<u8>(), 0..400),
            mail_from in "\\PC{0,12}",
            rcpts in prop::collection::vec("\\PC{0,12}", 0..4),
            size in any::<u64>(),
            auth in prop::option::of(prop::sample::select(vec!["mario@x.it", "anna@x.it", "shared@pec.x.it", "x@y.it"])),
            tag_required in any::<bool>(),
        ) {
            let case = Case {
                name: "arbitrary",
                mail_from: "",
                rcpts,
                headers: String::new(),
                size,
                auth,
                tag_required,
            };
            let markers = markers();
            let mailboxes = mailboxes();
            let rules = Rules {
                markers: &markers,
                tag_required: case.tag_required,
                hostname: "h",
                max_message_size: u64::MAX / 2,
                mailboxes: &mailboxes,
            };
            let sub = Submission {
                mail_from: &mail_from,
                rcpts: &case.rcpts,
                headers: &headers,
                size: case.size,
                authenticated_user: case.auth,
                queue_id: "q",
                date: "d",
            };
            if let Verdict::Accept(plan) = evaluate(&rules, &sub) {
                check_plan(&plan)?;
            }
        }

        #[test]
        fn evaluate_plans_are_sane(
            headers in header_soup(),
            mail_from in prop::sample::select(vec!["mario@x.it", "anna@x.it", "shared@pec.x.it", "x@y.it", ""]),
            rcpts in prop::collection::vec(prop::sample::select(vec!["a@y.it", "b@y.it", "c@y.it", "z@y.it"]), 0..4),
            auth in prop::option::of(prop::sample::select(vec!["mario@x.it", "lucia@x.it", "carlo@x.it"])),
        ) {
            let case = Case {
                name: "soup",
                mail_from,
                rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
                headers: String::from_utf8_lossy(&headers).into_owned(),
                size: 10,
                auth,
                tag_required: false,
            };
            if let Verdict::Accept(plan) = case.run() {
                check_plan(&plan)?;
                prop_assert!(plan.rcpts.len() <= case.rcpts.len());
            }
        }
    }
}
