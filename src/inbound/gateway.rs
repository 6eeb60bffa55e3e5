//! The gateway's backend for the SMTP engine: every message is spooled as it
//! streams in, judged by `policy` at the end of DATA, and either committed
//! through `enqueue` (then 250) or refused with the policy's precise reply.
//! Recipients are accepted at RCPT time (syntax only) because the decision
//! needs the Subject tag and the To/Cc headers, which arrive with DATA.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::enqueue::{self, Enqueue};
use crate::inbound::session::{Backend, Envelope, Response, SessionInfo};
use crate::policy::{self, MailboxRules, Rules, Submission, UserRule};
use crate::proto::reply::{self, Reply};
use crate::queue::new_queue_id;
use crate::queue::spool::SpoolWriter;
use crate::store::{MessageKind, Route};

pub struct Gateway {
    config: Arc<Config>,
    mailboxes: Vec<MailboxRules>,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
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
        Self { config, mailboxes, enqueue, clock }
    }
}

impl Backend for Gateway {
    type Sink = SpoolWriter;

    async fn mail(&self, _info: &SessionInfo, _from: &str) -> Result<(), Response> {
        Ok(())
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
        let submission = Submission {
            mail_from: &envelope.mail_from,
            rcpts: &envelope.rcpts,
            headers: &received.headers,
            size,
            authenticated_mailboxes: None,
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
            origin: format!("smtp from {} ({})", info.peer.ip(), envelope.mail_from),
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
