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

use crate::config::ReceiptsTo;
use crate::directory::{Member, with_right};
use crate::pec::Kind;

/// `members` are the mailbox's, from the directory.
pub fn route(kind: Kind, receipts_to: ReceiptsTo, members: &[Member], sent_by: Option<&str>) -> Vec<String> {
    let mut to = match kind {
        Kind::Anomalia => with_right(members, |r| r.anomalies),
        k if k.is_receipt() => match (receipts_to, sent_by) {
            (ReceiptsTo::Sender, Some(sender)) if !sender.is_empty() => vec![sender.to_owned()],
            _ => with_right(members, |r| r.receive),
        },
        _ => with_right(members, |r| r.receive),
    };
    if to.is_empty() {
        to = with_right(members, |r| r.admin);
    }
    to.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Rights;

    fn members() -> Vec<Member> {
        let user = |a: &str, receive, anomalies, admin| Member {
            address: a.into(),
            rights: Rights { send: true, receive, anomalies, admin },
            pin_hash: None,
        };
        vec![user("mario@x.it", true, false, true), user("anna@x.it", true, true, false), user("luca@x.it", false, false, false)]
    }

    #[test]
    fn routing_table() {
        let (s, r, m) = (ReceiptsTo::Sender, ReceiptsTo::Receivers, members());
        let both = vec!["mario@x.it".to_string(), "anna@x.it".to_string()];
        let cases: Vec<(Kind, ReceiptsTo, Option<&str>, Vec<String>)> = vec![
            (Kind::PostaCertificata, s, None, both.clone()),
            (Kind::NotPec, s, None, both.clone()),
            (Kind::Anomalia, s, None, vec!["anna@x.it".into()]),
            (Kind::Accettazione, s, Some("luca@x.it"), vec!["luca@x.it".into()]),
            (Kind::AvvenutaConsegna, s, Some("luca@x.it"), vec!["luca@x.it".into()]),
            (Kind::AvvenutaConsegna, r, Some("luca@x.it"), both.clone()),
            (Kind::ErroreConsegna, s, None, both.clone()),
        ];
        for (kind, to, sender, want) in cases {
            assert_eq!(route(kind, to, &m, sender), want, "{kind:?}");
        }
    }

    #[test]
    fn nobody_selected_falls_back_to_admin() {
        let mut m = members();
        for u in &mut m {
            u.rights.anomalies = false;
        }
        assert_eq!(route(Kind::Anomalia, ReceiptsTo::Sender, &m, None), ["mario@x.it"]);
    }
}
