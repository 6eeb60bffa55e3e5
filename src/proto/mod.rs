//! Wire vocabulary shared by every SMTP and POP3 speaker in pecgate, no I/O:
//! `codec` (command lines, DATA dot-unstuffing and dot-stuffing), `reply`
//! (the one table of SMTP replies), `address`, `sink` (where a decoded
//! message stream goes).

pub mod address;
pub mod codec;
pub mod reply;
pub mod sink;

pub use reply::Reply;
