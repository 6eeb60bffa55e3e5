//! Who in the company gets a fetched PEC message or receipt, pure.
//!
//! * `posta-certificata` (and ordinary mail that slipped in) -> every user
//!   with `receive`;
//! * `anomalia` -> users with `anomalies`;
//! * a receipt of a message sent through pecgate -> its sender
//!   (`receipts_to = "sender"`) or every receiver (`"receivers"`);
//! * a receipt nobody here sent (webmail, unknown id) -> every receiver.
//!
//! Never empty: if a rule selects nobody, the mailbox admin gets it, so
//! nothing fetched is left undelivered.

use crate::config::{MailboxConfig, ReceiptsTo};
use crate::pec::Kind;

pub fn route(kind: Kind, mailbox: &MailboxConfig, sent_by: Option<&str>) -> Vec<String> {
    let users = |pick: fn(&crate::config::UserConfig) -> bool| -> Vec<String> {
        mailbox.users.iter().filter(|u| pick(u)).map(|u| u.address.clone()).collect()
    };
    let mut to = match kind {
        Kind::Anomalia => users(|u| u.anomalies),
        k if k.is_receipt() => match (mailbox.receipts_to, sent_by) {
            (ReceiptsTo::Sender, Some(sender)) if !sender.is_empty() => vec![sender.to_owned()],
            _ => users(|u| u.receive),
        },
        _ => users(|u| u.receive),
    };
    if to.is_empty() {
        to = users(|u| u.admin);
    }
    to.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;

    fn mailbox(receipts_to: ReceiptsTo) -> MailboxConfig {
        let user = |a: &str, receive, anomalies, admin| UserConfig { address: a.into(), send: true, receive, anomalies, admin };
        MailboxConfig {
            id: "legal".into(),
            receipts_to,
            users: vec![
                user("mario@x.it", true, false, true),
                user("anna@x.it", true, true, false),
                user("luca@x.it", false, false, false),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn routing_table() {
        let s = mailbox(ReceiptsTo::Sender);
        let r = mailbox(ReceiptsTo::Receivers);
        let both = vec!["mario@x.it".to_string(), "anna@x.it".to_string()];
        let cases: Vec<(Kind, &MailboxConfig, Option<&str>, Vec<String>)> = vec![
            (Kind::PostaCertificata, &s, None, both.clone()),
            (Kind::NotPec, &s, None, both.clone()),
            (Kind::Anomalia, &s, None, vec!["anna@x.it".into()]),
            (Kind::Accettazione, &s, Some("luca@x.it"), vec!["luca@x.it".into()]),
            (Kind::AvvenutaConsegna, &s, Some("luca@x.it"), vec!["luca@x.it".into()]),
            (Kind::AvvenutaConsegna, &r, Some("luca@x.it"), both.clone()),
            (Kind::ErroreConsegna, &s, None, both.clone()),
        ];
        for (kind, mb, sender, want) in cases {
            assert_eq!(route(kind, mb, sender), want, "{kind:?}");
        }
    }

    #[test]
    fn nobody_selected_falls_back_to_admin() {
        let mut mb = mailbox(ReceiptsTo::Sender);
        for u in &mut mb.users {
            u.anomalies = false;
        }
        assert_eq!(route(Kind::Anomalia, &mb, None), ["mario@x.it"]);
    }
}
