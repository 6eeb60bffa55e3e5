//! Italian certified e-mail (PEC, *Posta Elettronica Certificata*).
//!
//! Pure functions over byte slices: classification of PEC envelopes and
//! receipts ([`classify`]), parsing of the certification data
//! ([`parse_daticert`]), report output ([`classify_json`], [`classify_line`])
//! and a builder that produces every kind of PEC message ([`build_message`]),
//! used by the simulated provider and by tests.
//!
//! Classification is driven by headers (`X-Trasporto`, `X-Ricevuta`), never by
//! the subject text. Header names are matched case-insensitively, values are
//! trimmed and compared case-insensitively.
//!
//! # Glossary
//!
//! | Italian term | meaning here |
//! |---|---|
//! | *busta di trasporto* | transport envelope ([`Kind::PostaCertificata`]) wrapping the original message |
//! | *busta di anomalia* | anomaly envelope ([`Kind::Anomalia`]) for a message that failed checks |
//! | *ricevuta* | receipt issued by a provider (*gestore*) |
//! | *ricevuta di accettazione* | acceptance receipt ([`Kind::Accettazione`]) |
//! | *avviso di non accettazione* | non-acceptance notice ([`Kind::NonAccettazione`]) |
//! | *ricevuta di presa in carico* | take-in-charge receipt between providers ([`Kind::PresaInCarico`]) |
//! | *ricevuta di avvenuta consegna* | delivery receipt, one per certified recipient ([`Kind::AvvenutaConsegna`]) |
//! | *avviso di mancata consegna* | delivery failure notice ([`Kind::ErroreConsegna`]) |
//! | *preavviso di mancata consegna* | delivery-timeout warning ([`Kind::PreavvisoErroreConsegna`]) |
//! | *rilevazione virus* | virus detection notice ([`Kind::RilevazioneVirus`]) |
//! | *ricevuta completa / breve / sintetica* | complete / short / synthetic delivery receipt ([`ReceiptType`]) |
//! | *daticert.xml* | certification data ([`Daticert`]) |
//! | *postacert.eml* | the original message attached to an envelope or a complete receipt |
//! | *gestore (emittente)* | (issuing) PEC provider |
//! | *mittente / destinatari* | sender / recipients |
//! | *oggetto* | subject |
//! | *identificativo* | the provider's message identifier |
//! | *consegna* | the recipient a delivery receipt is about |
//! | *errore esteso* | extended (human-readable) error text |
//! | *verifica sicurezza* | the provider's signature/security check (`X-VerificaSicurezza`) |

mod build;
mod classify;
mod daticert;
mod mime;
mod report;
mod shallow;
pub mod signature;
pub mod skeleton;
mod structure;
mod xml_repair;

pub use build::{BuildParams, build_daticert, build_message, build_signed_content};
pub use classify::{Classification, FULL_PARSE_MAX, classify, classify_skeleton};
pub use daticert::{Daticert, Recipient, parse_daticert};
pub use mime::signed_part;
pub use report::{classify_json, classify_line};
pub use structure::{MAX_DEPTH, MAX_HEADER_BYTES, MAX_HEADERS, MAX_PARTS, StructureLimit};
pub use xml_repair::Repair;

use serde::{Deserialize, Serialize};

/// Errors of the PEC module (only [`parse_daticert`] can fail; classification
/// degrades instead of failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The daticert document is larger than [`daticert::MAX_DATICERT_LEN`].
    #[error("daticert.xml too large: {0} bytes")]
    TooLarge(usize),
    /// The daticert document is empty.
    #[error("daticert.xml is empty")]
    Empty,
    /// The XML declaration names an encoding we cannot decode (internal:
    /// [`parse_daticert`] then reads it as ISO-8859-1, see [`Repair::Encoding`]).
    #[error("daticert.xml: unsupported encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The DTD declares entities (refused: external entities and entity
    /// expansion attacks such as "billion laughs").
    #[error("daticert.xml: DTD entity declarations are not allowed")]
    EntityDeclaration,
    /// The document is not well-formed XML.
    #[error("daticert.xml: malformed XML: {0}")]
    Xml(String),
    /// The root element is not `<postacert>`.
    #[error("daticert.xml: root element is <{0}>, expected <postacert>")]
    UnexpectedRoot(String),
    /// A required attribute or element is missing.
    #[error("daticert.xml: missing {0}")]
    Missing(&'static str),
}

/// Result type of the PEC module.
pub type Result<T> = std::result::Result<T, Error>;

/// The kind of a PEC message, from `X-Trasporto` / `X-Ricevuta` (or the
/// daticert `tipo` when no PEC header is present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// busta di trasporto (`X-Trasporto: posta-certificata`)
    PostaCertificata,
    /// busta di anomalia (`X-Trasporto: errore`)
    Anomalia,
    /// ricevuta di accettazione (`X-Ricevuta: accettazione`)
    Accettazione,
    /// avviso di non accettazione (`X-Ricevuta: non-accettazione`)
    NonAccettazione,
    /// ricevuta di presa in carico (`X-Ricevuta: presa-in-carico`)
    PresaInCarico,
    /// ricevuta di avvenuta consegna (`X-Ricevuta: avvenuta-consegna`)
    AvvenutaConsegna,
    /// avviso di mancata consegna (`X-Ricevuta: errore-consegna`)
    ErroreConsegna,
    /// preavviso di mancata consegna (`X-Ricevuta: preavviso-errore-consegna`)
    PreavvisoErroreConsegna,
    /// avviso di rilevazione virus (`X-Ricevuta: rilevazione-virus`)
    RilevazioneVirus,
    /// ordinary mail, not PEC (never dropped)
    #[default]
    NotPec,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 10] = [
        Kind::PostaCertificata,
        Kind::Anomalia,
        Kind::Accettazione,
        Kind::NonAccettazione,
        Kind::PresaInCarico,
        Kind::AvvenutaConsegna,
        Kind::ErroreConsegna,
        Kind::PreavvisoErroreConsegna,
        Kind::RilevazioneVirus,
        Kind::NotPec,
    ];

    /// The kebab-case name (`posta-certificata`, `avvenuta-consegna`, `not-pec`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::PostaCertificata => "posta-certificata",
            Kind::Anomalia => "anomalia",
            Kind::Accettazione => "accettazione",
            Kind::NonAccettazione => "non-accettazione",
            Kind::PresaInCarico => "presa-in-carico",
            Kind::AvvenutaConsegna => "avvenuta-consegna",
            Kind::ErroreConsegna => "errore-consegna",
            Kind::PreavvisoErroreConsegna => "preavviso-errore-consegna",
            Kind::RilevazioneVirus => "rilevazione-virus",
            Kind::NotPec => "not-pec",
        }
    }

    /// Parse a kebab-case name (trimmed, case-insensitive).
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim();
        Kind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// True for the receipts (*ricevute* and *avvisi*, `X-Ricevuta`), false
    /// for envelopes (*buste*) and ordinary mail.
    pub fn is_receipt(&self) -> bool {
        !matches!(self, Kind::PostaCertificata | Kind::Anomalia | Kind::NotPec)
    }

    /// The kind named by a PEC header, if `name: value` is one
    /// (`X-Trasporto` or `X-Ricevuta`, both case-insensitive).
    pub fn from_header(name: &str, value: &str) -> Option<Kind> {
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("X-Trasporto") {
            if value.eq_ignore_ascii_case("posta-certificata") {
                Some(Kind::PostaCertificata)
            } else if value.eq_ignore_ascii_case("errore") {
                Some(Kind::Anomalia)
            } else {
                None
            }
        } else if name.eq_ignore_ascii_case("X-Ricevuta") {
            Kind::parse(value).filter(Kind::is_receipt)
        } else {
            None
        }
    }

    /// The Italian subject prefix a provider puts on this kind.
    pub fn subject_prefix(&self) -> &'static str {
        match self {
            Kind::PostaCertificata => "POSTA CERTIFICATA: ",
            Kind::Anomalia => "ANOMALIA MESSAGGIO: ",
            Kind::Accettazione => "ACCETTAZIONE: ",
            Kind::NonAccettazione => "AVVISO DI NON ACCETTAZIONE: ",
            Kind::PresaInCarico => "PRESA IN CARICO: ",
            Kind::AvvenutaConsegna => "CONSEGNA: ",
            Kind::ErroreConsegna => "AVVISO DI MANCATA CONSEGNA: ",
            Kind::PreavvisoErroreConsegna => "AVVISO DI MANCATA CONSEGNA PER SUPERAMENTO TEMPI MASSIMI: ",
            Kind::RilevazioneVirus => "PROBLEMA DI SICUREZZA: ",
            Kind::NotPec => "",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of a delivery receipt (`X-TipoRicevuta`, daticert `<ricevuta tipo>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiptType {
    /// ricevuta completa: carries the original message (postacert.eml)
    #[default]
    Completa,
    /// ricevuta breve: carries hashes of the original instead of the message
    Breve,
    /// ricevuta sintetica: certification data only
    Sintetica,
}

impl ReceiptType {
    /// `completa`, `breve` or `sintetica`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiptType::Completa => "completa",
            ReceiptType::Breve => "breve",
            ReceiptType::Sintetica => "sintetica",
        }
    }

    /// Parse `completa|breve|sintetica` (trimmed, case-insensitive).
    pub fn parse(s: &str) -> Option<ReceiptType> {
        let s = s.trim();
        [ReceiptType::Completa, ReceiptType::Breve, ReceiptType::Sintetica].into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for ReceiptType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strip surrounding whitespace and one pair of angle brackets from a
/// Message-ID; `None` when nothing is left.
pub fn strip_message_id(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t).trim();
    if t.is_empty() { None } else { Some(t.to_string()) }
}

#[cfg(test)]
mod siblings_tests;
#[cfg(test)]
mod tests;
