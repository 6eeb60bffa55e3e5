//! The PEC classifier over raw message bytes (`pec::classify`), the report
//! output built from it, and the exact signed-part finder (`pec::signed_part`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::pec::{classify, classify_json, classify_line, signed_part};

fuzz_target!(|data: &[u8]| {
    let c = classify(data);
    assert!(!(c.daticert.is_some() && c.daticert_error.is_some()), "daticert both parsed and failed");
    for id in [&c.message_id, &c.riferimento_message_id, &c.original_message_id].into_iter().flatten() {
        assert!(!id.is_empty(), "empty Message-ID kept");
    }
    if let Some(d) = &c.daticert {
        assert!(!d.tipo.is_empty());
    }

    // `pecgate classify` output: the table line is always one line, the JSON always serialises.
    let line = classify_line("fuzz.eml", &c);
    assert!(!line.contains(['\r', '\n']), "classify_line wrote a line break: {line:?}");
    let json = classify_json("fuzz.eml", &c);
    assert!(json.is_object() && !json.to_string().is_empty());

    // The signed part, when found, is a slice of the message itself.
    if let Some(part) = signed_part(data) {
        let whole = data.as_ptr_range();
        let range = part.as_ptr_range();
        assert!(whole.start <= range.start && range.end <= whole.end, "signed part outside the message");
    }
});
