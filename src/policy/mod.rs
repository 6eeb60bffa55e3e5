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
pub use headers::{Header, HeaderBlock, RawText};
pub use tag::{Pin, TagMatch, decode_subject, strip_tag};

/// Why a submission is refused; [`Error::reply`] gives what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("null sender")]
    NullSender,
    #[error("message of {size} bytes exceeds {max}")]
    TooBig { size: u64, max: u64 },
    #[error("message of {size} bytes exceeds mailbox {mailbox}'s {max} for {rcpts} recipients")]
    TooBigForMailbox { mailbox: String, size: u64, max: u64, rcpts: usize },
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
            Error::TooBig { .. } | Error::TooBigForMailbox { .. } => "too_big",
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
            Error::TooBigForMailbox { mailbox, max, rcpts, .. } => reply::r552_too_big_for_mailbox(mailbox, *max, *rcpts),
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
    pub size: SizeRule,
}

/// A provider's message size limit for one mailbox (`max_message_bytes`,
/// `size_per_recipient`). Aruba divides 100 MB by the number of recipients:
/// a message it would refuse is better refused here, at end of DATA, where
/// the sender learns it at once, than bounced from the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeRule {
    pub max_bytes: Option<u64>,
    pub per_recipient: bool,
}

impl SizeRule {
    /// The limit for a message to `rcpts` recipients, if any.
    pub fn limit(&self, rcpts: usize) -> Option<u64> {
        let max = self.max_bytes?;
        Some(if self.per_recipient { max / rcpts.max(1) as u64 } else { max })
    }
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
    Accept(Box<Plan>),
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
    /// Reserved fields removed (`Resent-*`, provider and gateway marks), as written,
    /// for the log; `X-TipoRicevuta` is always set by us and listed when the client sent one.
    pub removed_fields: Vec<String>,
}

/// Decides on a submission; see [`check`] for the rules.
pub fn evaluate(rules: &Rules, sub: &Submission) -> Verdict {
    match check(rules, sub) {
        Ok(plan) => Verdict::Accept(Box::new(plan)),
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
    let subject_field = block.get("Subject").map(Header::raw_text);
    let raw_subject = subject_field.as_ref().map(|f| f.text.clone());
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
    if let Some(max) = mailbox.size.limit(rcpts.len())
        && sub.size > max
    {
        return Err(Error::TooBigForMailbox { mailbox: mailbox.address.clone(), size: sub.size, max, rcpts: rcpts.len() });
    }
    let visible: Vec<String> =
        block.fields.iter().filter(|h| h.is("To") || h.is("Cc")).flat_map(|h| addresses(h.value_bytes())).map(|a| a.address).collect();
    if let Some(hidden) = rcpts.iter().find(|r| !visible.iter().any(|v| v.eq_ignore_ascii_case(r))) {
        return Err(Error::Bcc { rcpt: hidden.clone() });
    }

    // Rewrite.
    let subject_raw = match (&stripped, &raw_subject) {
        (Some((_, new_raw)), _) => {
            let written = subject_field.as_ref().map_or_else(|| new_raw.as_bytes().to_vec(), |f| f.encode(new_raw));
            block.set_bytes("Subject", &written);
            new_raw.clone()
        }
        (None, Some(raw)) => raw.clone(),
        (None, None) => String::new(),
    };
    let first_from = from.as_ref().and_then(|list| list.first());
    let from_value = match block.get("From").map(Header::raw_text) {
        Some(field) => rewrite_from(&field, first_from, &mailbox.address),
        None => mailbox.address.as_bytes().to_vec(),
    };
    block.set_bytes("From", &from_value);
    let removed_bcc = block.remove_all("Bcc") > 0;
    block.remove_all("Return-Path");
    block.remove_all("Sender");
    let mut removed_fields = Vec::new();
    for prefix in RESERVED_PREFIXES {
        removed_fields.extend(block.remove_prefixed(prefix));
    }
    for name in RESERVED_FIELDS {
        if block.remove_all(name) > 0 {
            removed_fields.push(name.to_string());
        }
    }
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
        removed_fields,
    })
}

/// Fields a client may not hand to the provider, by prefix: `Resent-*` would
/// claim that someone other than the certified mailbox re-sent the message, and
/// `X-Pecgate-*` are this gateway's own marks on what it injects.
const RESERVED_PREFIXES: [&str; 2] = ["Resent-", "X-Pecgate-"];

/// Fields the PEC rules reserve to providers (a client copy could make a plain
/// message look like a receipt to a careless reader) and the one we set.
const RESERVED_FIELDS: [&str; 5] = ["X-Trasporto", "X-Ricevuta", "X-VerificaSicurezza", "X-Riferimento-Message-ID", "X-TipoRicevuta"];

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

/// The new From value: the original display name (raw, as the client wrote it, in
/// the bytes it came in) with the mailbox address; a name only given as a comment is
/// re-quoted; else the bare address. A candidate is used only if it parses back to
/// exactly the mailbox address, so a malformed original can never leak into the
/// rewritten field. It is checked as [`HeaderBlock::set_bytes`] will write it: turning
/// a bare CR or LF into a space can change how the rest parses (`"=?<LF><TAB>?Q?"?=`
/// becomes an encoded word that eats the quote). A display name that names another
/// address (`"hr@pec.x.it" <legal@pec.x.it>`) is dropped: the recipient must never
/// read one mailbox over another's certified address.
fn rewrite_from(raw: &RawText, first: Option<&Mailbox>, address: &str) -> Vec<u8> {
    let decoded_name = first.and_then(|m| m.name.as_deref()).unwrap_or("");
    if names_other_address(decoded_name, address) {
        return address.as_bytes().to_vec();
    }
    let raw_named =
        raw_display_name(&raw.text).filter(|d| !names_other_address(d, address)).map(|d| raw.encode(&format!("{d} <{address}>")));
    let quoted = first.and_then(|m| m.name.as_deref()).map(|n| format!("{} <{address}>", quote_display_name(n)).into_bytes());
    [raw_named, quoted]
        .into_iter()
        .flatten()
        .find(|candidate| {
            let written = [headers::sanitize_value(candidate).as_slice(), b"\r\n"].concat();
            matches!(addresses(&written).as_slice(), [only] if only.address == address)
        })
        .unwrap_or_else(|| address.as_bytes().to_vec())
}

/// Whether a display name contains something shaped like an address other than
/// `address` (compared case-insensitively).
fn names_other_address(name: &str, address: &str) -> bool {
    name.split(|c: char| c.is_whitespace() || "\"'<>()[],;:\\".contains(c))
        .map(|word| word.trim_matches('.'))
        .filter(|word| matches!(word.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty()))
        .any(|word| !word.eq_ignore_ascii_case(address))
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
mod tests;
