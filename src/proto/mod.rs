//! Wire vocabulary shared by every SMTP speaker in pecgate, no I/O.

pub mod address;
pub mod reply;

pub use reply::Reply;
