//! Receipts -> the state of what was sent, pure.
//!
//! A receipt moves recipients forward only: `submitted -> accepted |
//! no_receipt_expected -> warned -> delivered | delivery_error`, and
//! `not_accepted` ends everything. A state never goes back, so duplicates
//! are no-ops and out-of-order arrival (a delivery receipt before the
//! acceptance) ends in the same place as in-order arrival.
//!
//! Two exceptions to "no-op when nothing rises": each preavviso (the
//! provider warns at 12 h and again at 24 h) is put on the recipient's
//! timeline, even if it is already `warned`; and with the mailbox's
//! `final_preavviso_5xx`, a preavviso whose `errore-esteso` is a permanent
//! status (`5.x.x`; Namirial sends `5.4.1` that way and no final receipt
//! follows) counts as the errore-consegna it really is.

use crate::pec::{Classification, Kind};
use crate::store::{MessageState, ReceiptUpdate, Recipient, RecipientState};

/// How far along a recipient is; a receipt may only raise it.
fn rank(s: RecipientState) -> u8 {
    match s {
        RecipientState::Queued | RecipientState::Deferred => 0,
        RecipientState::Submitted => 1,
        RecipientState::Accepted | RecipientState::NoReceiptExpected => 2,
        RecipientState::Warned => 3,
        RecipientState::Delivered | RecipientState::DeliveryError | RecipientState::NotAccepted => 4,
        // A recipient the provider refused at submission never got the message.
        RecipientState::Failed => 5,
    }
}

fn message_rank(s: MessageState) -> u8 {
    match s {
        MessageState::Queued | MessageState::Sending => 0,
        MessageState::Submitted => 1,
        MessageState::Accepted => 2,
        MessageState::NotAccepted | MessageState::Failed => 3,
    }
}

/// Per-mailbox choices of how receipts are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A preavviso with a `5.` errore-esteso is final (`[[mailbox]] final_preavviso_5xx`).
    pub final_preavviso_5xx: bool,
}

/// True for a preavviso whose errore-esteso is a permanent status (`5.4.1 ...`).
pub fn is_final_preavviso(c: &Classification) -> bool {
    c.kind == Kind::PreavvisoErroreConsegna
        && c.daticert.as_ref().and_then(|d| d.errore_esteso.as_deref()).is_some_and(|e| e.trim_start().starts_with("5."))
}

/// What receipt `c` changes on a sent message with these recipients.
/// `None` when the kind is not a receipt.
pub fn correlate(
    c: &Classification,
    message: &str,
    current: MessageState,
    recipients: &[Recipient],
    options: Options,
) -> Option<ReceiptUpdate> {
    if !c.kind.is_receipt() {
        return None;
    }
    let daticert = c.daticert.as_ref();
    let consegna = daticert.and_then(|d| d.consegna.as_deref());
    let target = |r: &Recipient| consegna.is_some_and(|addr| addr.eq_ignore_ascii_case(&r.address));
    let esterno = |r: &Recipient| {
        daticert.is_some_and(|d| {
            d.destinatari.iter().any(|x| x.addr.eq_ignore_ascii_case(&r.address) && x.tipo.eq_ignore_ascii_case("esterno"))
        })
    };
    let mut update = ReceiptUpdate {
        message: message.to_owned(),
        event_kind: c.kind.as_str().to_owned(),
        event_detail: receipt_detail(c),
        ..Default::default()
    };
    let mut raise = |r: &Recipient, to: RecipientState| {
        if rank(to) > rank(r.state) {
            update.recipients.push((r.address.clone(), to));
        }
    };
    let mut message_state = None;
    match c.kind {
        Kind::Accettazione => {
            for r in recipients {
                raise(r, if esterno(r) { RecipientState::NoReceiptExpected } else { RecipientState::Accepted });
            }
            message_state = Some(MessageState::Accepted);
            update.provider_id = daticert.map(|d| d.identificativo.clone()).filter(|s| !s.is_empty());
        }
        Kind::NonAccettazione => {
            for r in recipients {
                raise(r, RecipientState::NotAccepted);
            }
            message_state = Some(MessageState::NotAccepted);
        }
        Kind::AvvenutaConsegna => recipients.iter().filter(|r| target(r)).for_each(|r| raise(r, RecipientState::Delivered)),
        Kind::ErroreConsegna => recipients.iter().filter(|r| target(r)).for_each(|r| raise(r, RecipientState::DeliveryError)),
        Kind::PreavvisoErroreConsegna if options.final_preavviso_5xx && is_final_preavviso(c) => {
            recipients.iter().filter(|r| target(r)).for_each(|r| raise(r, RecipientState::DeliveryError));
            update.event_kind = Kind::ErroreConsegna.as_str().to_owned();
            update.event_detail.push_str(" (read as final: final_preavviso_5xx)");
        }
        Kind::PreavvisoErroreConsegna => {
            // Recorded again while still warned (the 24 h preavviso after the 12 h one).
            for r in recipients.iter().filter(|r| target(r) && rank(r.state) <= rank(RecipientState::Warned)) {
                update.recipients.push((r.address.clone(), RecipientState::Warned));
            }
        }
        Kind::RilevazioneVirus => {
            // About one recipient when daticert names it, else about all of them.
            let any = recipients.iter().any(&target);
            recipients.iter().filter(|r| !any || target(r)).for_each(|r| raise(r, RecipientState::DeliveryError));
        }
        Kind::PresaInCarico | Kind::PostaCertificata | Kind::Anomalia | Kind::NotPec => {}
    }
    update.message_state = message_state.filter(|s| message_rank(*s) > message_rank(current));
    Some(update)
}

/// One line for the message's event log: what the receipt says, for whom.
pub fn receipt_detail(c: &Classification) -> String {
    let mut s = c.kind.as_str().to_owned();
    if let Some(d) = &c.daticert {
        if let Some(who) = &d.consegna {
            s.push_str(&format!(" for {who}"));
        }
        if !d.errore.is_empty() && d.errore != "nessuno" {
            s.push_str(&format!(" errore={}", d.errore));
        }
        if let Some(e) = &d.errore_esteso {
            s.push_str(&format!(" ({e})"));
        }
        if let Some(at) = d.data {
            s.push_str(&format!(" at {}", at.to_rfc3339()));
        }
        if !d.gestore.is_empty() {
            s.push_str(&format!(" by {}", d.gestore));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pec::{BuildParams, Recipient as DRecipient, build_message, classify};

    fn rcpt(a: &str, s: RecipientState) -> Recipient {
        Recipient { address: a.into(), state: s, last_reply: None, updated_at: 0 }
    }

    fn receipt(kind: Kind, consegna: Option<&str>) -> Classification {
        let mut p = BuildParams::sample(kind);
        p.destinatari = vec![DRecipient::new("a@pec.x.it", "certificato"), DRecipient::new("ext@gmail.example", "esterno")];
        p.consegna = consegna.map(str::to_owned);
        classify(&build_message(&p))
    }

    fn apply(recipients: &mut [Recipient], msg: &mut MessageState, c: &Classification) {
        let u = correlate(c, "Q", *msg, recipients, Options::default()).unwrap();
        for (addr, state) in u.recipients {
            recipients.iter_mut().find(|r| r.address == addr).unwrap().state = state;
        }
        if let Some(s) = u.message_state {
            *msg = s;
        }
    }

    fn states(recipients: &[Recipient]) -> Vec<RecipientState> {
        recipients.iter().map(|r| r.state).collect()
    }

    #[test]
    fn acceptance_then_delivery_in_any_order_and_duplicates() {
        let acc = receipt(Kind::Accettazione, None);
        let cons = receipt(Kind::AvvenutaConsegna, Some("A@pec.x.it"));
        let orders: [&[&Classification]; 4] = [&[&acc, &cons], &[&cons, &acc], &[&acc, &cons, &acc, &cons], &[&cons, &cons, &acc]];
        for order in orders {
            let mut rs = vec![rcpt("a@pec.x.it", RecipientState::Submitted), rcpt("ext@gmail.example", RecipientState::Submitted)];
            let mut m = MessageState::Submitted;
            for c in order {
                apply(&mut rs, &mut m, c);
            }
            assert_eq!(states(&rs), [RecipientState::Delivered, RecipientState::NoReceiptExpected]);
            assert_eq!(m, MessageState::Accepted);
        }
    }

    #[test]
    fn errors_warnings_and_refusal() {
        let table = [
            (Kind::ErroreConsegna, Some("a@pec.x.it"), RecipientState::Submitted, RecipientState::DeliveryError),
            (Kind::PreavvisoErroreConsegna, Some("a@pec.x.it"), RecipientState::Accepted, RecipientState::Warned),
            // a delivery receipt can still arrive after the 12 h warning
            (Kind::AvvenutaConsegna, Some("a@pec.x.it"), RecipientState::Warned, RecipientState::Delivered),
            // but a late warning never downgrades a delivery
            (Kind::PreavvisoErroreConsegna, Some("a@pec.x.it"), RecipientState::Delivered, RecipientState::Delivered),
            (Kind::RilevazioneVirus, Some("a@pec.x.it"), RecipientState::Accepted, RecipientState::DeliveryError),
            (Kind::NonAccettazione, None, RecipientState::Submitted, RecipientState::NotAccepted),
            (Kind::PresaInCarico, None, RecipientState::Submitted, RecipientState::Submitted),
            (Kind::AvvenutaConsegna, Some("other@pec.x.it"), RecipientState::Accepted, RecipientState::Accepted),
            (Kind::Accettazione, None, RecipientState::Failed, RecipientState::Failed),
        ];
        for (kind, consegna, from, want) in table {
            let mut rs = vec![rcpt("a@pec.x.it", from)];
            let mut m = MessageState::Submitted;
            apply(&mut rs, &mut m, &receipt(kind, consegna));
            assert_eq!(rs[0].state, want, "{kind:?} on {from:?}");
        }
        let mut m = MessageState::Submitted;
        apply(&mut [rcpt("a@pec.x.it", RecipientState::Submitted)], &mut m, &receipt(Kind::NonAccettazione, None));
        assert_eq!(m, MessageState::NotAccepted);
        apply(&mut [rcpt("a@pec.x.it", RecipientState::NotAccepted)], &mut m, &receipt(Kind::Accettazione, None));
        assert_eq!(m, MessageState::NotAccepted, "a late acceptance does not undo a refusal");
    }

    fn preavviso(errore_esteso: &str) -> Classification {
        let mut p = BuildParams::sample(Kind::PreavvisoErroreConsegna);
        p.destinatari = vec![DRecipient::new("a@pec.x.it", "certificato")];
        p.consegna = Some("a@pec.x.it".into());
        p.errore = "altro".into();
        p.errore_esteso = Some(errore_esteso.into());
        classify(&build_message(&p))
    }

    #[test]
    fn a_second_preavviso_is_recorded_again() {
        let warned = [rcpt("a@pec.x.it", RecipientState::Warned)];
        let u = correlate(&preavviso("superamento dei tempi"), "Q", MessageState::Accepted, &warned, Options::default()).unwrap();
        assert_eq!(u.recipients, vec![("a@pec.x.it".to_owned(), RecipientState::Warned)]);
        let delivered = [rcpt("a@pec.x.it", RecipientState::Delivered)];
        let u = correlate(&preavviso("superamento dei tempi"), "Q", MessageState::Accepted, &delivered, Options::default()).unwrap();
        assert!(u.recipients.is_empty(), "a late preavviso leaves a delivery alone");
    }

    #[test]
    fn preavviso_5xx_is_final_only_when_the_mailbox_says_so() {
        let accepted = [rcpt("a@pec.x.it", RecipientState::Accepted)];
        let on = Options { final_preavviso_5xx: true };
        let cases = [
            ("5.4.1 - host non raggiungibile", Options::default(), RecipientState::Warned, "preavviso-errore-consegna"),
            ("5.4.1 - host non raggiungibile", on, RecipientState::DeliveryError, "errore-consegna"),
            ("4.4.1 - timeout", on, RecipientState::Warned, "preavviso-errore-consegna"),
            ("superamento dei tempi massimi", on, RecipientState::Warned, "preavviso-errore-consegna"),
        ];
        for (esteso, options, want, event) in cases {
            let u = correlate(&preavviso(esteso), "Q", MessageState::Accepted, &accepted, options).unwrap();
            assert_eq!(u.recipients, vec![("a@pec.x.it".to_owned(), want)], "{esteso} {options:?}");
            assert_eq!(u.event_kind, event, "{esteso} {options:?}");
        }
    }

    #[test]
    fn envelopes_are_not_receipts() {
        assert!(correlate(&receipt(Kind::PostaCertificata, None), "Q", MessageState::Submitted, &[], Options::default()).is_none());
    }

    #[test]
    fn acceptance_records_the_provider_id() {
        let u = correlate(&receipt(Kind::Accettazione, None), "Q", MessageState::Submitted, &[], Options::default()).unwrap();
        assert_eq!(u.provider_id.as_deref(), Some("opec210.20261123101500.1234.01.1.1@pec.example.it"));
        assert!(u.event_detail.starts_with("accettazione at 2026-11-23T10:15:00+01:00 by Gestore Esempio"), "{}", u.event_detail);
    }
}
