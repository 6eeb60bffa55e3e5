//! Wire vocabulary shared by every SMTP and POP3 speaker in pecgate, no I/O:
//! `codec` (command lines, and the one dot codec for SMTP DATA and POP3
//! multi-line responses), `reply` (the one table of SMTP replies),
//! `address`, `sink` (where a decoded message stream goes).

pub mod address;
pub mod codec;
pub mod reply;
pub mod sink;

pub use reply::Reply;
