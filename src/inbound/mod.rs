//! The SMTP listener the corporate mail server relays PEC mail to.
//! `codec` (framing), `command` (parser), `auth` (SMTP AUTH responses),
//! `session` (state machine, generic over stream and backend), `listener`
//! (accept loop), `gateway` (the backend that applies policy and enqueues).

pub mod auth;
pub mod codec;
pub mod command;
pub mod gateway;
pub mod listener;
pub mod session;
