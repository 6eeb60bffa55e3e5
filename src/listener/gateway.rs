//! The gateway's backend for the SMTP engine: every message is spooled as it
//! streams in, judged by `policy` at the end of DATA, and either committed
//! through `enqueue` (then 250) or refused with the policy's precise reply.
//! Recipients are accepted at RCPT time (syntax only) because the decision
//! needs the Subject tag and the To/Cc headers, which arrive with DATA.
//!
//! SMTP AUTH (`[smtp.auth]`): a login from `[[smtp.account]]` acts as one
//! company user. At MAIL the envelope sender must be that user or a PEC
//! mailbox it may send from (`policy::check_sender_login`); at the end of DATA
//! the policy checks that user, not the envelope, against the mailbox. Without
//! AUTH nothing changes (the client IP was checked at connect), unless
//! `required = true`, which answers MAIL with 530.

use std::sync::Arc;
use std::time::Duration;

use ring::digest::{SHA256, digest};

use crate::clock::Clock;
use crate::config::Config;
use crate::enqueue::{self, Enqueue};
use crate::listener::session::{Backend, Envelope, Response, SessionInfo};
use crate::policy::{self, MailboxRules, Rules, Submission, UserRule};
use crate::proto::reply::{self, Reply};
use crate::queue::new_queue_id;
use crate::queue::spool::SpoolWriter;
use crate::store::{MessageKind, Route};
use crate::util::constant_time_eq;

pub struct Gateway {
    config: Arc<Config>,
    mailboxes: Vec<MailboxRules>,
    accounts: Vec<Account>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
}

/// An `[[smtp.account]]`: the password is kept only as its SHA-256, compared
/// in constant time, so neither the length nor a common prefix leaks through timing.
struct Account {
    username: String,
    password_sha256: Vec<u8>,
    /// The company user this login acts as.
    address: String,
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

impl Gateway {
    pub fn new(config: Arc<Config>, enqueue: Arc<Enqueue>, clock: Arc<dyn Clock>) -> Self {
        let mailboxes = config
            .mailboxes
            .iter()
            .map(|m| MailboxRules {
                id: m.id.clone(),
                address: m.address.clone(),
                active: m.active,
                max_recipients: m.max_recipients,
                receipt_type: m.receipt_type.as_str().to_owned(),
                users: m.users.iter().map(|u| UserRule { address: u.address.clone(), send: u.send }).collect(),
            })
            .collect();
        let accounts = config
            .smtp
            .accounts
            .iter()
            .map(|a| Account {
                username: a.username.clone(),
                password_sha256: sha256(a.resolved_password.expose().as_bytes()),
                address: a.address.clone(),
            })
            .collect();
        Self { config, mailboxes, accounts, enqueue, clock }
    }

    /// The account whose username is `username` (exact match) and whose password is `password`.
    fn login(&self, username: &str, password: &str) -> Option<&Account> {
        let given = sha256(password.as_bytes());
        let account = self.accounts.iter().find(|a| a.username == username);
        // An unknown user costs the same comparison as a wrong password.
        let expected = account.map_or(&[0u8; 32][..], |a| &a.password_sha256);
        let ok = constant_time_eq(expected, &given);
        account.filter(|_| ok)
    }

    /// The account of an authenticated session (its identity is the username).
    fn account(&self, info: &SessionInfo) -> Option<&Account> {
        let login = info.auth.as_deref()?;
        self.accounts.iter().find(|a| a.username == login)
    }
}

impl Backend for Gateway {
    type Sink = SpoolWriter;

    fn auth_enabled(&self) -> bool {
        self.config.smtp.auth.enabled
    }

    /// Failures wait `failure_delay_ms` before the 535 and log neither the
    /// password nor the attempted username (often a mistyped password).
    async fn authenticate(&self, info: &SessionInfo, user: &str, password: &str) -> Result<String, Response> {
        match self.login(user, password) {
            Some(account) => {
                metrics::counter!("pecgate_smtp_auth_total", "result" => "success").increment(1);
                tracing::info!(session = info.id, peer = %info.peer, login = %account.username, user = %account.address, "AUTH succeeded");
                Ok(account.username.clone())
            }
            None => {
                metrics::counter!("pecgate_smtp_auth_total", "result" => "failure").increment(1);
                tracing::warn!(session = info.id, peer = %info.peer, "AUTH failed: invalid credentials");
                tokio::time::sleep(Duration::from_millis(self.config.smtp.auth.failure_delay_ms)).await;
                Err(reply::r535_auth_failed().into())
            }
        }
    }

    async fn mail(&self, info: &SessionInfo, from: &str) -> Result<(), Response> {
        if info.auth.is_none() {
            return if self.config.smtp.auth.required { Err(reply::r530_auth_required().into()) } else { Ok(()) };
        }
        let Some(account) = self.account(info) else {
            tracing::error!(session = info.id, "authenticated login has no account; answered 451");
            return Err(reply::r451_local_error().into());
        };
        policy::check_sender_login(&self.mailboxes, &account.username, &account.address, from).map_err(|e| {
            let r = e.reply();
            tracing::info!(session = info.id, login = %account.username, from = %from, status = "rejected", reply = %r);
            Response::Reply(r)
        })
    }

    async fn rcpt(&self, _info: &SessionInfo, _envelope: &Envelope, _to: &str) -> Result<(), Response> {
        Ok(())
    }

    async fn data_start(&self, info: &SessionInfo, _envelope: &Envelope) -> Result<SpoolWriter, Response> {
        let id = new_queue_id(self.clock.now_ms());
        self.enqueue.spool().writer(&id).await.map_err(|e| {
            tracing::error!(session = info.id, error = %e, "cannot create a spool file; answered 452");
            Response::Reply(reply::r452_storage())
        })
    }

    async fn data_end(&self, info: &SessionInfo, envelope: &Envelope, sink: SpoolWriter, size: u64) -> Response {
        let started = std::time::Instant::now();
        metrics::counter!("pecgate_smtp_messages_received_total").increment(1);
        let response = self.finish_message(info, envelope, sink, size).await;
        metrics::histogram!("pecgate_smtp_accept_duration_seconds").record(started.elapsed().as_secs_f64());
        response
    }

    async fn data_abort(&self, sink: SpoolWriter) {
        sink.discard().await;
    }
}

impl Gateway {
    async fn finish_message(&self, info: &SessionInfo, envelope: &Envelope, sink: SpoolWriter, size: u64) -> Response {
        let id = sink.id().to_owned();
        let received = match sink.finish().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(session = info.id, queue_id = %id, error = %e, "spool fsync failed; answered 452");
                self.enqueue.spool().remove(&id).await;
                metrics::counter!("pecgate_smtp_messages_rejected_total", "reason" => "storage").increment(1);
                return reply::r452_storage().into();
            }
        };
        let date = chrono::DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default().to_rfc2822();
        let rules = Rules {
            markers: &self.config.tag.markers,
            tag_required: self.config.tag.required,
            hostname: &self.config.smtp.hostname,
            max_message_size: self.config.smtp.max_message_size,
            mailboxes: &self.mailboxes,
        };
        let account = self.account(info);
        let submission = Submission {
            mail_from: &envelope.mail_from,
            rcpts: &envelope.rcpts,
            headers: &received.headers,
            size,
            authenticated_user: account.map(|a| a.address.as_str()),
            queue_id: &id,
            date: &date,
        };
        let plan = match policy::check(&rules, &submission) {
            Ok(plan) => plan,
            Err(e) => {
                let r = e.reply();
                tracing::info!(session = info.id, queue_id = %id, from = %envelope.mail_from, status = "rejected", reply = %r);
                metrics::counter!("pecgate_smtp_messages_rejected_total", "reason" => e.metric_reason()).increment(1);
                self.enqueue.spool().remove(&id).await;
                return r.into();
            }
        };
        let env = enqueue::Envelope {
            kind: MessageKind::Pec,
            route: Route::Provider(plan.mailbox_id.clone()),
            mail_from: plan.mail_from.clone(),
            rcpts: plan.rcpts.clone(),
            original_sender: plan.original_sender.clone(),
            message_id: plan.message_id.clone(),
            subject: plan.subject.clone(),
            origin: match account {
                Some(a) => format!("smtp from {} ({}, login {})", info.peer.ip(), envelope.mail_from, a.username),
                None => format!("smtp from {} ({})", info.peer.ip(), envelope.mail_from),
            },
        };
        match self.enqueue.commit_received(&received, &plan.headers, env).await {
            Ok(()) => {
                tracing::info!(
                    queue_id = %id,
                    mailbox = %plan.mailbox_id,
                    from = %plan.original_sender,
                    nrcpt = plan.rcpts.len(),
                    size,
                    message_id = %plan.message_id,
                    status = "queued",
                );
                metrics::counter!("pecgate_smtp_messages_accepted_total", "mailbox" => plan.mailbox_id.clone()).increment(1);
                Reply::new(250, Some("2.0.0"), format!("queued as {id}")).into()
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "enqueue failed; answered temporary failure");
                metrics::counter!("pecgate_smtp_messages_rejected_total", "reason" => "storage").increment(1);
                e.to_reply().with_suffix(&format!(" (queue id {id})")).into()
            }
        }
    }
}
