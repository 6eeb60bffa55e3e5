//! IMAP client (RFC 3501 subset) for fetching PEC mail from a provider.
//!
//! Crate choice: our own small client, not `async-imap` or `imap-next`.
//! `async-imap` (and the `imap-proto` parser under it) parses a whole
//! response, literal included, into memory before handing it over: a
//! 100 MB PEC with attachments would be held in RAM, and a hostile server
//! could announce any literal size. `imap-next`/`imap-codec` also decode a
//! complete message into a buffer with a configurable but whole-message
//! limit. pecgate needs only a subset (CAPABILITY, STARTTLS, LOGIN, SELECT,
//! UID FETCH, UID STORE, UID SEARCH, UID EXPUNGE / EXPUNGE, MOVE / COPY,
//! IDLE, LOGOUT), and the one thing that matters, `BODY[]` as a literal
//! streamed to the spool as it arrives with a size bound, is a few lines
//! on top of the same TLS, timeout and bounded-line code as [`crate::pop3`].
//!
//! [`response`] parses lines (pure, tested on its own); [`client`] runs the
//! session: always TLS (implicit or STARTTLS), every read under a timeout,
//! every response bounded (line length, number of untagged lines, literal size).

pub mod client;
pub mod response;

pub use client::{Client, Endpoint, Entry, Error, Result, Security, Selected};

/// A folder name pecgate can send as a quoted string: not empty, no control
/// characters, quotes or backslashes (provider folders such as `INBOX.pecgate` never need them).
pub fn valid_folder(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.chars().any(|c| c.is_control() || c == '"' || c == '\\')
}
