//! Messages pecgate writes itself: failure notices to senders (more kinds
//! come with receipts and the watchdog). Text in Italian by default,
//! English when `[corporate] language = "en"`.

use mail_builder::MessageBuilder;

use crate::config::Language;

/// One recipient the provider refused, with its full reply.
#[derive(Debug, Clone)]
pub struct FailedRecipient {
    pub address: String,
    pub reply: String,
}

/// Facts for a "your PEC was not sent" notice.
#[derive(Debug, Clone)]
pub struct FailureNotice<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub mailbox_address: &'a str,
    pub subject: &'a str,
    pub queue_id: &'a str,
    pub message_id: &'a str,
    pub failed: &'a [FailedRecipient],
    pub hostname: &'a str,
    pub language: Language,
    pub date_unix: i64,
}

/// Builds the notice; returns the message bytes (CRLF) and its Message-ID.
pub fn failure_notice(n: &FailureNotice) -> (Vec<u8>, String) {
    let (subject, intro, rcpt_label, footer) = match n.language {
        Language::It => (
            format!("PEC non inviata: {}", n.subject),
            format!(
                "Il messaggio PEC \"{}\" dalla casella {} non e' stato accettato dal gestore per i destinatari seguenti.",
                n.subject, n.mailbox_address
            ),
            "Destinatario",
            "Il messaggio NON ha valore legale per questi destinatari. Correggere e inviare di nuovo.",
        ),
        Language::En => (
            format!("PEC not sent: {}", n.subject),
            format!(
                "The PEC message \"{}\" from mailbox {} was refused by the provider for these recipients.",
                n.subject, n.mailbox_address
            ),
            "Recipient",
            "The message has NO legal value for these recipients. Fix the problem and send it again.",
        ),
    };
    let mut body = format!("{intro}\r\n\r\n");
    for f in n.failed {
        body.push_str(&format!("{rcpt_label}: {}\r\n  {}\r\n", f.address, f.reply));
    }
    body.push_str(&format!("\r\n{footer}\r\n\r\nqueue id: {}\r\nMessage-ID: <{}>\r\n", n.queue_id, n.message_id));
    let message_id = format!("{}.notice@{}", n.queue_id, n.hostname);
    let bytes = MessageBuilder::new()
        .from(("pecgate", n.from))
        .to(n.to)
        .subject(subject)
        .message_id(message_id.as_str())
        .date(n.date_unix)
        .header("Auto-Submitted", mail_builder::headers::raw::Raw::new("auto-generated"))
        .header("X-Pecgate-Kind", mail_builder::headers::raw::Raw::new("failure-notice"))
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default();
    (normalize_crlf(&bytes), message_id)
}

/// mail-builder writes CRLF already; make sure of it for the spool contract.
fn normalize_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_names_recipient_and_reply() {
        let failed = [FailedRecipient { address: "bob@x.it".into(), reply: "550 5.1.1 no such user".into() }];
        let n = FailureNotice {
            from: "pecgate@corp.it",
            to: "mario@corp.it",
            mailbox_address: "legal@pec.corp.it",
            subject: "Contratto",
            queue_id: "Q1",
            message_id: "abc@corp.it",
            failed: &failed,
            hostname: "gw.corp.it",
            language: Language::It,
            date_unix: 0,
        };
        let (bytes, id) = failure_notice(&n);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(id, "Q1.notice@gw.corp.it");
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        assert_eq!(parsed.subject(), Some("PEC non inviata: Contratto"));
        let body = parsed.body_text(0).unwrap();
        assert!(body.contains("bob@x.it") && body.contains("550 5.1.1 no such user"), "{body}");
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(!text.replace("\r\n", "").contains('\n'));
    }
}
