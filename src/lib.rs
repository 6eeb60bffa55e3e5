//! pecgate: a gateway between a company's mail server and Italian certified
//! e-mail (PEC) providers. Each module
//! below owns one stage of the data flow (the module map is in README.md, "Layout").
#![forbid(unsafe_code)]
#![deny(unused_must_use)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod cli_args;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod correlate;
pub mod crl;
pub mod demo;
pub mod directory;
pub mod docgen;
pub mod enqueue;
pub mod fetch;
pub mod imap;
pub mod listener;
pub mod mailbox_alarms;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod pec;
pub mod pin;
pub mod policy;
pub mod pop3;
pub mod proto;
pub mod queue;
pub mod route;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod tls;
pub mod util;
pub mod watchdog;

pub use app::App;
