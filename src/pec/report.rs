//! Output of `pecgate classify`: the `--json` object and the table line.

use serde_json::{Map, Value, json};

use super::classify::Classification;
use super::daticert::Daticert;

/// The JSON object of the `pecgate classify --json` contract for one file:
/// keys `file`, `kind`, `receipt_type`, `riferimento_message_id`, `subject`,
/// `has_original`, `original_subject`, `daticert`, `structure_limit` (`null`,
/// or `parts`, `depth`, `headers`, `header-bytes`: classified without a full parse).
pub fn classify_json(file: &str, c: &Classification) -> Value {
    let mut m = Map::new();
    m.insert("file".into(), json!(file));
    m.insert("kind".into(), json!(c.kind.as_str()));
    m.insert("receipt_type".into(), json!(c.receipt_type.map(|r| r.as_str())));
    m.insert("riferimento_message_id".into(), json!(c.riferimento_message_id));
    m.insert("subject".into(), json!(c.subject));
    m.insert("has_original".into(), json!(c.has_original));
    m.insert("original_subject".into(), json!(c.original_subject));
    m.insert("daticert".into(), c.daticert.as_ref().map_or(Value::Null, daticert_json));
    m.insert("structure_limit".into(), json!(c.structure_limit.map(|l| l.as_str())));
    Value::Object(m)
}

/// The `daticert` object of the JSON contract.
pub(crate) fn daticert_json(d: &Daticert) -> Value {
    let mut m = Map::new();
    m.insert("tipo".into(), json!(d.tipo));
    m.insert("errore".into(), json!(d.errore));
    m.insert("mittente".into(), json!(d.mittente));
    m.insert("destinatari".into(), Value::Array(d.destinatari.iter().map(|r| json!({ "addr": r.addr, "tipo": r.tipo })).collect()));
    m.insert("oggetto".into(), json!(d.oggetto));
    m.insert("gestore".into(), json!(d.gestore));
    m.insert("data".into(), json!(d.data.map(|t| t.to_rfc3339())));
    m.insert("identificativo".into(), json!(d.identificativo));
    m.insert("msgid".into(), json!(d.msgid));
    m.insert("consegna".into(), json!(d.consegna));
    m.insert("errore_esteso".into(), json!(d.errore_esteso));
    m.insert("repaired".into(), json!(d.repaired()));
    m.insert("repairs".into(), Value::Array(d.repairs.iter().map(|r| json!(r.to_string())).collect()));
    Value::Object(m)
}

/// Longest subject shown in a table line, in characters.
const LINE_SUBJECT_MAX: usize = 80;

/// One short human-readable line: file, kind (with receipt type), subject
/// and the referenced Message-ID. Control characters are replaced so the
/// result is always a single line.
pub fn classify_line(file: &str, c: &Classification) -> String {
    let mut kind = c.kind.as_str().to_string();
    if let Some(rt) = c.receipt_type {
        kind = format!("{kind}/{rt}");
    }
    let subject = c.subject.as_deref().map_or_else(
        || "-".to_string(),
        |s| {
            let clean = one_line(s);
            if clean.chars().count() > LINE_SUBJECT_MAX {
                let cut: String = clean.chars().take(LINE_SUBJECT_MAX - 3).collect();
                format!("\"{cut}...\"")
            } else {
                format!("\"{clean}\"")
            }
        },
    );
    let mut line = format!("{}  {kind:<35} {subject}", one_line(file));
    if let Some(r) = &c.riferimento_message_id {
        line.push_str(&format!("  ref=<{}>", one_line(r)));
    }
    if c.verifica_sicurezza_errore {
        line.push_str("  VERIFICA-SICUREZZA=errore");
    }
    if let Some(d) = c.daticert.as_ref().filter(|d| d.repaired()) {
        let list: Vec<String> = d.repairs.iter().map(ToString::to_string).collect();
        line.push_str(&format!("  daticert-repaired=\"{}\"", list.join(", ")));
    }
    if let Some(l) = c.structure_limit {
        line.push_str(&format!("  structure-limit={l}"));
    }
    if let Some(e) = &c.daticert_error {
        line.push_str(&format!("  daticert-error=\"{}\"", one_line(e)));
    }
    line
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
pub(super) mod tests;
