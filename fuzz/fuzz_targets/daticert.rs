//! The daticert.xml parser (`pec::parse_daticert`): encodings, DTDs, entity
//! refusal, arbitrary XML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::pec::parse_daticert;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = parse_daticert(data) else { return };
    assert!(!d.tipo.is_empty() && d.tipo.trim() == d.tipo, "tipo {:?}", d.tipo);
    assert!(d.errore.trim() == d.errore, "errore {:?}", d.errore);
    for r in &d.destinatari {
        assert!(!r.addr.is_empty() && r.addr.trim() == r.addr, "destinatario {:?}", r.addr);
    }
    for v in [&d.risposte, &d.msgid, &d.ricevuta, &d.consegna, &d.errore_esteso].into_iter().flatten() {
        assert!(!v.is_empty(), "empty optional field kept");
    }
});
