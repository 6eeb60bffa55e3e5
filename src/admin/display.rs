//! One state per message for people: the message state and the recipient
//! states folded into what an operator asks first ("is it delivered?").
//! The API exposes it as `display_state`; the page labels it.

/// Every value [`display_state`] returns.
pub const DISPLAY_STATES: &[&str] = &["queued", "error", "warning", "awaiting_receipts", "delivered", "received"];

/// For a sent message: `queued` while pecgate still holds it; `error` when
/// it or any recipient failed for good (someone must act, even if the other
/// recipients got it); `warning` when a provider warned that a delivery is
/// late; `awaiting_receipts` while a receipt is still expected; `delivered`
/// when every recipient has its delivery receipt (or, not being PEC, will
/// get none). Mail for the corporate server (notices) has no receipts: it
/// is `delivered` once handed over. Fetched records are `received`.
pub fn display_state(direction: &str, message: &str, recipients: &[&str], corporate: bool) -> &'static str {
    if direction == "in" {
        return "received";
    }
    match message {
        "queued" | "sending" => return "queued",
        "failed" | "not_accepted" => return "error",
        _ => {}
    }
    if recipients.iter().any(|r| matches!(*r, "failed" | "delivery_error" | "not_accepted")) {
        return "error";
    }
    if corporate {
        return "delivered";
    }
    if recipients.contains(&"warned") {
        return "warning";
    }
    if recipients.is_empty() || recipients.iter().any(|r| !matches!(*r, "delivered" | "no_receipt_expected")) {
        return "awaiting_receipts";
    }
    "delivered"
}

#[cfg(test)]
mod tests {
    use super::display_state as d;

    #[test]
    fn one_state_per_message() {
        assert_eq!(d("in", "accettazione", &[], false), "received");
        assert_eq!(d("out", "queued", &["queued"], false), "queued");
        assert_eq!(d("out", "sending", &["deferred"], false), "queued");
        assert_eq!(d("out", "failed", &["failed"], false), "error");
        assert_eq!(d("out", "not_accepted", &["not_accepted"], false), "error");
        assert_eq!(d("out", "submitted", &["submitted"], false), "awaiting_receipts");
        assert_eq!(d("out", "accepted", &["accepted", "delivered"], false), "awaiting_receipts");
        assert_eq!(d("out", "accepted", &["warned", "delivered"], false), "warning");
        assert_eq!(d("out", "accepted", &["warned", "delivery_error"], false), "error", "an error outranks a warning");
        assert_eq!(d("out", "accepted", &["delivered", "delivery_error"], false), "error");
        assert_eq!(d("out", "accepted", &["delivered", "delivered"], false), "delivered");
        assert_eq!(d("out", "accepted", &["delivered", "no_receipt_expected"], false), "delivered");
        assert_eq!(d("out", "submitted", &["submitted"], true), "delivered", "a notice handed to the corporate server");
        assert_eq!(d("out", "accepted", &[], false), "awaiting_receipts");
    }

    #[test]
    fn every_value_is_listed() {
        let cases = [("in", "x", &[][..], false), ("out", "queued", &[], false), ("out", "failed", &[], false)];
        for (dir, m, r, c) in cases {
            assert!(super::DISPLAY_STATES.contains(&d(dir, m, r, c)));
        }
        for r in ["warned", "accepted", "delivered"] {
            assert!(super::DISPLAY_STATES.contains(&d("out", "accepted", &[r], false)));
        }
    }
}
