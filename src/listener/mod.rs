//! The SMTP listener the corporate mail server relays PEC mail to:
//! `command` (parser), `auth` (SMTP AUTH exchanges), `session` (state
//! machine, generic over stream and backend), `accept` (accept loop, shared
//! with the simulators), `gateway` (the backend that applies policy and
//! enqueues). Line and DATA framing (the dot codec shared with POP3) live in
//! `proto::codec`.

pub mod accept;
pub mod auth;
pub mod command;
pub mod gateway;
pub mod pin_check;
pub mod session;
