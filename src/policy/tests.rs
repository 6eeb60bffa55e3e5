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
        size: SizeRule::default(),
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
    headers: Vec<u8>,
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
            headers: headers.as_bytes().to_vec(),
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
    /// Header bytes that need not be UTF-8.
    fn raw_headers(mut self, bytes: &[u8]) -> Case {
        self.headers = bytes.to_vec();
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
            headers: &self.headers,
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
        Verdict::Accept(plan) => *plan,
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
            Case::new("From is the mailbox, user allowed anyway", "lucia@x.it", "From: hr@pec.x.it\r\nTo: a@y.it\r\nSubject: x\r\n\r\n")
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
            tag: Some(TagMatch { marker: "[PEC]".to_string(), mailbox: Some("legal".to_string()), pin: None }),
            removed_bcc: true,
            removed_fields: vec!["X-TipoRicevuta".to_string()],
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
        // A display name naming another address is dropped, even encoded; naming the mailbox itself is harmless.
        ("a@b <c@d>", "legal@pec"),
        ("\"hr@pec.x.it \" <m@corp>", "legal@pec"),
        ("\"Ufficio HR (hr@pec.x.it)\" <m@corp>", "legal@pec"),
        ("=?UTF-8?B?aHJAcGVjLnguaXQ=?= <m@corp>", "legal@pec"),
        ("\"LEGAL@pec\" <m@corp>", "\"LEGAL@pec\" <legal@pec>"),
        ("Mario @ Rossi <m@corp>", "\"Mario @ Rossi\" <legal@pec>"),
        ("", "legal@pec"),
    ];
    for (raw, want) in cases {
        let parsed = addresses(format!("{raw}\r\n").as_bytes());
        let text = RawText { text: raw.to_string(), latin1: false };
        assert_eq!(String::from_utf8_lossy(&rewrite_from(&text, parsed.first(), "legal@pec")), want, "{raw:?}");
    }
}

/// Found by `fuzz/fuzz_targets/policy.rs`: the candidate with a bare-LF fold in the
/// display name parsed, but the field as written (LF made a space) read as no address.
#[test]
fn from_rewrite_checks_what_is_written() {
    let raw = "\"=?\n\t?Q?\"?=<";
    let written = [headers::sanitize_value(format!("{raw} <legal@pec>").as_bytes()).as_slice(), b"\r\n"].concat();
    assert!(addresses(&written).is_empty(), "the unchecked candidate must read as no address");
    let parsed = addresses(format!("{raw}\r\n").as_bytes());
    assert_eq!(rewrite_from(&RawText { text: raw.to_string(), latin1: false }, parsed.first(), "legal@pec"), b"legal@pec");

    let headers = format!("From:{raw}\nTo: a@y.it\nSubject: [PEC:legal] x\n\n");
    let plan = accept(&Case::new("bare LF in From", "mario@x.it", &headers));
    let block = HeaderBlock::parse(&plan.headers);
    let from: Vec<String> =
        block.get("From").map(|h| addresses(h.value_bytes())).unwrap_or_default().into_iter().map(|m| m.address).collect();
    assert_eq!(from, ["legal@pec.x.it"], "{:?}", String::from_utf8_lossy(&plan.headers));
}

/// Fields a client may not hand to the provider go, whatever their case; the
/// rest of the section stays byte-for-byte and in order.
#[test]
fn reserved_fields_are_removed() {
    let input = "Resent-From: boss@x.it\r\nFrom: anna@x.it\r\nRESENT-TO: b@y.it\r\nTo: a@y.it\r\n\
                 X-Pecgate-Kind: avvenuta-consegna\r\nX-Ricevuta: accettazione\r\nX-Trasporto: posta-certificata\r\n\
                 X-VerificaSicurezza: errore\r\nx-riferimento-message-id: <q@x>\r\nX-TipoRicevuta: sintetica\r\n\
                 Subject: [PEC] x\r\nReply-To: anna@x.it\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n";
    let plan = accept(&Case::new("reserved", "anna@x.it", input));
    assert_eq!(
        String::from_utf8_lossy(&plan.headers),
        "From: legal@pec.x.it\r\nTo: a@y.it\r\nSubject: x\r\nReply-To: anna@x.it\r\nDate: d\r\nMessage-ID: <m@x>\r\n\
         X-TipoRicevuta: completa\r\n\r\n"
    );
    assert_eq!(
        plan.removed_fields,
        [
            "Resent-From",
            "RESENT-TO",
            "X-Pecgate-Kind",
            "X-Trasporto",
            "X-Ricevuta",
            "X-VerificaSicurezza",
            "X-Riferimento-Message-ID",
            "X-TipoRicevuta"
        ]
    );
}

/// An old client writing Latin-1 unencoded: the display name and the subject reach
/// the provider in the bytes they came in (not U+FFFD), the tag removed.
#[test]
fn latin1_bytes_are_kept() {
    let input = b"From: Niccol\xf2 Rossi <mario@x.it>\r\nTo: a@y.it\r\nSubject: [PEC:legal] Fattura perch\xe9\r\nDate: d\r\nMessage-ID: <m@x>\r\n\r\n";
    let plan = accept(&Case::new("latin-1", "mario@x.it", "").raw_headers(input));
    let want: &[u8] =
        b"From: Niccol\xf2 Rossi <legal@pec.x.it>\r\nTo: a@y.it\r\nSubject: Fattura perch\xe9\r\nDate: d\r\nMessage-ID: <m@x>\r\n\
                        X-TipoRicevuta: completa\r\n\r\n";
    assert_eq!(plan.headers, want, "{}", String::from_utf8_lossy(&plan.headers));
    assert_eq!(plan.subject, "Fattura perché");
    assert_eq!(plan.mailbox_id, "legal");
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
            headers: Vec::new(),
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
            headers: headers.clone(),
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

#[test]
fn size_rule_table() {
    let per = SizeRule { max_bytes: Some(100_000_000), per_recipient: true };
    let flat = SizeRule { max_bytes: Some(30_000_000), per_recipient: false };
    let cases = [
        (per, 1, Some(100_000_000)),
        (per, 3, Some(33_333_333)),
        (per, 0, Some(100_000_000)),
        (flat, 3, Some(30_000_000)),
        (SizeRule::default(), 3, None),
        (SizeRule { max_bytes: None, per_recipient: true }, 3, None),
    ];
    for (rule, rcpts, want) in cases {
        assert_eq!(rule.limit(rcpts), want, "{rule:?} for {rcpts}");
    }
}

#[test]
fn mailbox_size_limit_per_recipient_refuses_with_552() {
    let markers = markers();
    let mut mbs = mailboxes();
    mbs[0].size = SizeRule { max_bytes: Some(3_000), per_recipient: true };
    let rules = Rules { markers: &markers, tag_required: true, hostname: "pecgate.x.it", max_message_size: 10_000, mailboxes: &mbs };
    let headers = b"From: mario@x.it\r\nTo: a@y.it, b@y.it, c@y.it\r\nSubject: [PEC:legal] x\r\n\r\n".to_vec();
    fn sub<'a>(rcpts: &'a [String], headers: &'a [u8], size: u64) -> Submission<'a> {
        Submission {
            mail_from: "mario@x.it",
            rcpts,
            headers,
            size,
            authenticated_user: None,
            queue_id: "Q1",
            date: "Mon, 1 Jan 2024 10:00:00 +0100",
        }
    }
    let three: Vec<String> = ["a@y.it", "b@y.it", "c@y.it"].iter().map(|s| s.to_string()).collect();
    assert!(check(&rules, &sub(&three, &headers, 1_000)).is_ok());
    let err = check(&rules, &sub(&three, &headers, 1_001)).unwrap_err();
    assert_eq!(err.metric_reason(), "too_big");
    let reply = err.reply();
    assert_eq!((reply.code, reply.status.as_deref()), (552, Some("5.3.4")));
    let text = reply.to_string();
    assert!(text.contains("1000 bytes") && text.contains("3 recipient(s)") && text.contains("legal@pec.x.it"), "{text}");
    // Fewer recipients, a bigger share each.
    assert!(check(&rules, &sub(&three[..1], &headers, 2_500)).is_ok());
}
