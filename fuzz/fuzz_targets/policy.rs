//! The submission policy over a received header section (`policy::check`):
//! header parsing, tag stripping in context, address parsing and the header
//! rewrite sent to the PEC provider.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};
use pecgate::policy::tag::default_markers;
use pecgate::policy::{HeaderBlock, MailboxRules, Rules, Submission, UserRule, check};

static MARKERS: LazyLock<Vec<String>> = LazyLock::new(default_markers);
static MAILBOXES: LazyLock<Vec<MailboxRules>> = LazyLock::new(|| {
    // The sender may use "legal" only, so untagged mail is accepted too.
    let mailbox = |id: &str, address: &str, user: &str| MailboxRules {
        id: id.into(),
        address: address.into(),
        active: true,
        max_recipients: 50,
        receipt_type: "completa".into(),
        users: vec![UserRule { address: user.into(), send: true }],
        size: Default::default(),
    };
    vec![
        mailbox("legal", "legal@pec.azienda.example", "mario.rossi@azienda.example"),
        mailbox("hr", "hr@pec.azienda.example", "anna.bianchi@azienda.example"),
    ]
});
static RCPTS: LazyLock<Vec<String>> = LazyLock::new(|| vec!["ufficio@pec.comune.example".into()]);

/// The addresses of an address field value, as a receiving MTA would read them.
fn addresses(value: &[u8]) -> Vec<String> {
    let list = match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(list)) => list,
        HeaderValue::Address(Address::Group(groups)) => groups.into_iter().flat_map(|g| g.addresses).collect(),
        _ => Vec::new(),
    };
    list.into_iter().filter_map(|a| a.address.map(|s| s.trim().to_string())).filter(|a| !a.is_empty()).collect()
}

fuzz_target!(|data: &[u8]| {
    let rules =
        Rules { markers: &MARKERS, tag_required: false, hostname: "gw.azienda.example", max_message_size: 1 << 20, mailboxes: &MAILBOXES };
    let sub = Submission {
        mail_from: "mario.rossi@azienda.example",
        rcpts: &RCPTS,
        headers: data,
        size: data.len() as u64,
        authenticated_user: None,
        queue_id: "1A2B3C",
        date: "Mon, 23 Nov 2026 10:15:00 +0100",
    };
    let Ok(plan) = check(&rules, &sub) else { return };

    // The rewritten section reads back as the same fields: no value added a
    // field or ended the section early.
    let block = HeaderBlock::parse(&plan.headers);
    assert_eq!(block.to_bytes(), plan.headers, "rewritten headers do not reparse to themselves");
    let count = |name: &str| block.fields.iter().filter(|h| h.is(name)).count();
    for (name, want) in [("From", 1), ("X-TipoRicevuta", 1), ("Bcc", 0), ("Sender", 0), ("Return-Path", 0)] {
        assert_eq!(count(name), want, "{name} fields in {:?}", String::from_utf8_lossy(&plan.headers));
    }
    assert!(count("Message-ID") >= 1 && count("Date") >= 1);
    // The provider sees exactly the mailbox as sender.
    let from = block.get("From").map(|h| addresses(h.value_bytes())).unwrap_or_default();
    assert_eq!(from, std::slice::from_ref(&plan.mail_from), "From reads as {from:?}: {:?}", String::from_utf8_lossy(&plan.headers));
    assert!(!plan.message_id.is_empty() && !plan.message_id.contains(char::is_whitespace), "Message-ID {:?}", plan.message_id);
});
