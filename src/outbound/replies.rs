//! Provider replies whose code lies: pure table, matched on the text.
//!
//! Some PEC providers answer with a 5xx what is not a refusal of the
//! message. InfoCert Legalmail caps a mailbox at about 6 messages a minute
//! and answers the excess with `550 ... blocked "Class Of Service" - Too much
//! traffic from this sender`: trying later succeeds, so failing the message
//! (and telling the sender) would be wrong. Aruba answers an envelope sender
//! the login does not own with `553 5.7.1 ... Sender address rejected: not
//! owned by user`: the mailbox is misconfigured (username vs address), every
//! message from it will get the same answer until an admin fixes it, and
//! none of them is at fault. Both are kept in the queue (temporary).

use crate::proto::Reply;

/// What a provider reply really means, when its code says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Sending too fast from this mailbox: slow down, retry later.
    Throttled,
    /// The login does not own the envelope sender: a configuration error of the mailbox.
    SenderNotOwned,
}

/// (reply codes, lower-case text fragment, meaning). The text decides: a plain
/// `550 user unknown` stays a permanent refusal.
const TABLE: &[(&[u16], &str, Meaning)] = &[
    // InfoCert Legalmail, per-mailbox Class Of Service limit.
    (&[421, 450, 451, 550, 554], "class of service", Meaning::Throttled),
    (&[421, 450, 451, 550, 554], "too much traffic", Meaning::Throttled),
    // Generic wordings of a sending-rate limit.
    (&[421, 450, 451, 550, 554], "rate limit exceeded", Meaning::Throttled),
    (&[421, 450, 451, 550, 554], "too many messages", Meaning::Throttled),
    // Aruba: the envelope sender is not the logged-in account.
    (&[550, 553, 554], "not owned by user", Meaning::SenderNotOwned),
];

/// The real meaning of `reply`, if the table knows it.
pub fn classify(reply: &Reply) -> Option<Meaning> {
    let text = reply.lines.join(" ").to_ascii_lowercase();
    TABLE.iter().find(|(codes, needle, _)| codes.contains(&reply.code) && text.contains(needle)).map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let r = |code, text: &str| Reply::parsed(code, None, vec![text.to_owned()]);
        let cases = [
            (
                r(550, "MAIL from: <ufficio@legalmail.it> blocked \"Class Of Service\" - Too much traffic from this sender"),
                Some(Meaning::Throttled),
            ),
            (r(550, "blocked \"CLASS OF SERVICE\""), Some(Meaning::Throttled)),
            (r(451, "4.7.1 rate limit exceeded, try later"), Some(Meaning::Throttled)),
            (r(553, "<ufficio@pec.it>: Sender address rejected: not owned by user ufficio-login"), Some(Meaning::SenderNotOwned)),
            // The code alone decides nothing.
            (r(550, "5.1.1 user unknown"), None),
            (r(553, "5.7.1 sender does not match the authenticated mailbox"), None),
            (r(552, "message too big"), None),
            // Text match with a code outside the entry's list.
            (r(250, "ok, class of service gold"), None),
            (r(452, "4.5.3 too many recipients"), None),
        ];
        for (reply, want) in cases {
            assert_eq!(classify(&reply), want, "{reply}");
        }
    }

    #[test]
    fn multiline_text_is_searched() {
        let reply = Reply::parsed(550, Some("5.7.1".into()), vec!["MAIL from: <a@b.it> blocked".into(), "\"Class Of Service\"".into()]);
        assert_eq!(classify(&reply), Some(Meaning::Throttled));
    }
}
