//! POP3 for fetching PEC mail: a TLS-only client that streams RETR
//! byte-for-byte (`client`) and the pure parsers it rests on (`response`;
//! dot-unstuffing is `proto::codec` in `Dialect::Pop3`).
//! `fetch::pop3` makes it a fetch source; the simulated server lives in
//! `sim::pop3`.
//!
//! Hand-written because no maintained crate dot-unstuffs RETR correctly, and
//! PEC messages are legal evidence whose signatures cover their exact bytes.

pub mod client;
pub mod response;

pub use client::{Client, Endpoint, Error, Result, Security};
