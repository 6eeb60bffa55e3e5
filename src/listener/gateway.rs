//! The gateway's backend for the SMTP engine: every message is spooled as it
//! streams in, judged by `policy` at the end of DATA, and either committed
//! through `enqueue` (then 250) or refused with the policy's precise reply.
//! Recipients are accepted at RCPT time (syntax only) because the decision
//! needs the Subject tag and the To/Cc headers, which arrive with DATA.
//!
//! Each connection gets a [`Gateway`] holding the runtime snapshot current
//! when it connected ([`GatewaySource`]): the whole session decides with
//! one configuration, and a reload takes effect from the next connection.
//! Users and logins come from the snapshot's directory.
//!
//! SMTP AUTH (`[smtp.auth]`): a login acts as one company user. At MAIL the
//! envelope sender must be that user or a PEC mailbox it may send from
//! (`policy::check_sender_login`); at the end of DATA the policy checks that
//! user, not the envelope, against the mailbox. Without AUTH nothing changes
//! (the client IP was checked at connect), unless `required = true`, which
//! answers MAIL with 530.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;
use crate::directory::{self, Identity};
use crate::enqueue::{self, Enqueue};
use crate::listener::accept::{SessionSetup, SessionSource};
use crate::listener::pin_check::{self, PinCheck};
use crate::listener::session::{Backend, Envelope, Response, SessionConfig, SessionInfo};
use crate::policy::{self, MailboxRules, Rules, SizeRule, Submission, UserRule};
use crate::proto::reply::{self, Reply};
use crate::queue::new_queue_id;
use crate::queue::spool::SpoolWriter;
use crate::runtime::{Live, Runtime};
use crate::store::{MessageKind, Route};

/// Hands each new connection the current snapshot.
pub struct GatewaySource {
    live: Arc<Live>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
}

impl GatewaySource {
    pub fn new(live: Arc<Live>, enqueue: Arc<Enqueue>, clock: Arc<dyn Clock>) -> Self {
        Self { live, enqueue, clock }
    }
}

impl SessionSource<Gateway> for GatewaySource {
    fn setup(&self) -> SessionSetup<Gateway> {
        let rt = self.live.get();
        let smtp = &rt.config.smtp;
        let mut session = SessionConfig::new(smtp.hostname.clone());
        session.max_message_size = smtp.max_message_size;
        session.max_recipients = smtp.max_recipients;
        session.command_timeout = Duration::from_secs(smtp.command_timeout_secs);
        session.data_timeout = Duration::from_secs(smtp.data_timeout_secs);
        session.auth_without_tls_on_loopback = smtp.auth.allow_without_tls_on_loopback;
        session.greet_pause = Some(Duration::from_millis(smtp.greet_pause_ms));
        session.tls = rt.listener_tls.clone().map(TlsAcceptor::from);
        SessionSetup {
            allowed_clients: rt.config.allowed_clients().into(),
            max_sessions: smtp.max_sessions,
            session: Arc::new(session),
            backend: Arc::new(Gateway { rt, enqueue: self.enqueue.clone(), clock: self.clock.clone() }),
        }
    }
}

/// The backend of one session, with the snapshot it started with.
pub struct Gateway {
    rt: Arc<Runtime>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
}

/// Why a directory lookup gives no answer: the session defers, never guesses.
fn directory_down(info: &SessionInfo, e: &directory::Error) -> Response {
    tracing::warn!(session = info.id, error = %e, "user directory unavailable; answered 451");
    reply::r451_local_error().into()
}

impl Gateway {
    /// The mailboxes with their members, as the policy sees them.
    async fn mailbox_rules(&self) -> Result<Vec<MailboxRules>, directory::Error> {
        let mut out = Vec::with_capacity(self.rt.mailboxes.len());
        for m in &self.rt.mailboxes {
            let members = self.rt.directory.members(&m.id).await?;
            out.push(MailboxRules {
                id: m.id.clone(),
                address: m.address.clone(),
                active: m.active,
                max_recipients: m.max_recipients,
                receipt_type: m.receipt_type.as_str().to_owned(),
                users: members.iter().map(|u| UserRule { address: u.address.clone(), send: u.rights.send }).collect(),
                size: SizeRule { max_bytes: m.max_message_bytes, per_recipient: m.size_per_recipient },
            });
        }
        Ok(out)
    }

    /// The user an authenticated session acts as.
    async fn identity(&self, info: &SessionInfo) -> Result<Option<Identity>, Response> {
        let Some(login) = info.auth.as_deref() else { return Ok(None) };
        match self.rt.directory.identity(login).await {
            Ok(Some(id)) => Ok(Some(id)),
            Ok(None) => {
                // Removed by a reload during the session: this session's login is no longer valid.
                tracing::warn!(session = info.id, login = %login, "authenticated login no longer exists; answered 451");
                Err(reply::r451_local_error().into())
            }
            Err(e) => Err(directory_down(info, &e)),
        }
    }
}

impl Backend for Gateway {
    type Sink = SpoolWriter;

    fn auth_enabled(&self) -> bool {
        self.rt.config.smtp.auth.enabled
    }

    /// Failures wait `failure_delay_ms` before the 535 and log neither the
    /// password nor the attempted username (often a mistyped password).
    async fn authenticate(&self, info: &SessionInfo, user: &str, password: &str) -> Result<String, Response> {
        match self.rt.directory.authenticate(user, password).await {
            Ok(Some(id)) => {
                metrics::counter!("pecgate_smtp_auth_total", "result" => "success").increment(1);
                tracing::info!(session = info.id, peer = %info.peer, login = %id.login, user = %id.address, "AUTH succeeded");
                Ok(id.login)
            }
            Ok(None) => {
                metrics::counter!("pecgate_smtp_auth_total", "result" => "failure").increment(1);
                tracing::warn!(session = info.id, peer = %info.peer, "AUTH failed: invalid credentials");
                tokio::time::sleep(Duration::from_millis(self.rt.config.smtp.auth.failure_delay_ms)).await;
                Err(reply::r535_auth_failed().into())
            }
            Err(e) => Err(directory_down(info, &e)),
        }
    }

    async fn mail(&self, info: &SessionInfo, from: &str) -> Result<(), Response> {
        let Some(identity) = self.identity(info).await? else {
            return if self.rt.config.smtp.auth.required { Err(reply::r530_auth_required().into()) } else { Ok(()) };
        };
        let mailboxes = self.mailbox_rules().await.map_err(|e| directory_down(info, &e))?;
        policy::check_sender_login(&mailboxes, &identity.login, &identity.address, from).map_err(|e| {
            let r = e.reply();
            tracing::info!(session = info.id, login = %identity.login, from = %from, status = "rejected", reply = %r);
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

/// The one place an enqueue failure becomes an SMTP reply: always temporary,
/// so the client keeps the message and retries.
fn enqueue_reply(e: &enqueue::Error) -> Reply {
    match e {
        enqueue::Error::Spool(_) => reply::r452_storage(),
        enqueue::Error::Store(_) => reply::r451_local_error(),
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
        let identity = match self.identity(info).await {
            Ok(i) => i,
            Err(r) => {
                self.enqueue.spool().remove(&id).await;
                return r;
            }
        };
        let mailboxes = match self.mailbox_rules().await {
            Ok(m) => m,
            Err(e) => {
                self.enqueue.spool().remove(&id).await;
                return directory_down(info, &e);
            }
        };
        let date = chrono::DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default().to_rfc2822();
        let config = &self.rt.config;
        let rules = Rules {
            markers: &config.tag.markers,
            tag_required: config.tag.required,
            hostname: &config.smtp.hostname,
            max_message_size: config.smtp.max_message_size,
            mailboxes: &mailboxes,
        };
        let submission = Submission {
            mail_from: &envelope.mail_from,
            rcpts: &envelope.rcpts,
            headers: &received.headers,
            size,
            authenticated_user: identity.as_ref().map(|i| i.address.as_str()),
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
        if let Some(mailbox) = self.rt.mailbox(&plan.mailbox_id)
            && mailbox.require_pin
        {
            let tag = plan.tag.as_ref();
            let check = PinCheck {
                rt: &self.rt,
                enqueue: &self.enqueue,
                clock: &self.clock,
                mailbox,
                user: &plan.original_sender,
                marker: tag.map_or(policy::tag::DEFAULT_MARKERS[0], |t| t.marker.as_str()),
                pin: tag.and_then(|t| t.pin.as_ref()),
                queue_id: &id,
            };
            if let Err(r) = pin_check::check(&check).await {
                let reason = if r.code == 550 { "pin" } else { "storage" };
                metrics::counter!("pecgate_smtp_messages_rejected_total", "reason" => reason).increment(1);
                self.enqueue.spool().remove(&id).await;
                return r.into();
            }
        }
        let env = enqueue::Envelope {
            kind: MessageKind::Pec,
            route: Route::Provider(plan.mailbox_id.clone()),
            mail_from: plan.mail_from.clone(),
            rcpts: plan.rcpts.clone(),
            original_sender: plan.original_sender.clone(),
            message_id: plan.message_id.clone(),
            subject: plan.subject.clone(),
            origin: match &identity {
                Some(i) => format!("smtp from {} ({}, login {})", info.peer.ip(), envelope.mail_from, i.login),
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
                if plan.removed_bcc || !plan.removed_fields.is_empty() {
                    // Said once per message, so a user asking "where did my Resent-From go" has an answer.
                    let mut removed = plan.removed_fields.clone();
                    if plan.removed_bcc {
                        removed.insert(0, "Bcc".to_string());
                    }
                    tracing::info!(queue_id = %id, removed = %removed.join(", "), "header fields reserved to the provider or the gateway removed");
                }
                metrics::counter!("pecgate_smtp_messages_accepted_total", "mailbox" => plan.mailbox_id.clone()).increment(1);
                Reply::new(250, Some("2.0.0"), format!("queued as {id}")).into()
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "enqueue failed; answered temporary failure");
                metrics::counter!("pecgate_smtp_messages_rejected_total", "reason" => "storage").increment(1);
                enqueue_reply(&e).with_suffix(&format!(" (queue id {id})")).into()
            }
        }
    }
}
