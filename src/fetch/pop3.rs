//! POP3 as a [`FetchSource`]: one session per poll (RFC 1939 has no way to
//! wait for new mail), UIDL as the stable id, DELE applied at QUIT.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWrite;

use super::{FailureKind, FetchSource, Listed, SourceError, SourceResult};
use crate::config::{MailboxPop3Config, Secret, Security};
use crate::pop3::{self, Client, Endpoint};

pub struct Pop3Source {
    /// `None` once QUIT was sent.
    client: Option<Client>,
}

fn failure(e: pop3::Error) -> SourceError {
    let kind = match &e {
        pop3::Error::Auth { .. } => FailureKind::Auth,
        pop3::Error::TooLarge { .. } => FailureKind::TooLarge,
        pop3::Error::Timeout { stage: "RETR deadline" } => FailureKind::Deadline,
        pop3::Error::Connect { .. }
        | pop3::Error::Tls { .. }
        | pop3::Error::Timeout { .. }
        | pop3::Error::Io { .. }
        | pop3::Error::Closed => FailureKind::Network,
        _ => FailureKind::Protocol,
    };
    SourceError { kind, protocol: "POP3", source: Box::new(e) }
}

impl Pop3Source {
    /// Connects (TLS or STLS) and logs in.
    pub async fn connect(username: &str, password: &Secret, p: &MailboxPop3Config, tls: Arc<rustls::ClientConfig>) -> SourceResult<Self> {
        let endpoint = Endpoint {
            host: p.host.clone(),
            port: p.port,
            security: if p.security == Security::Starttls { pop3::Security::StartTls } else { pop3::Security::Tls },
            tls,
            timeout: Duration::from_secs(p.timeout_secs.max(1)),
        };
        let mut client = Client::connect(&endpoint).await.map_err(failure)?;
        client.login(username, password).await.map_err(failure)?;
        Ok(Self { client: Some(client) })
    }

    fn client(&mut self) -> SourceResult<&mut Client> {
        self.client.as_mut().ok_or_else(|| failure(pop3::Error::Closed))
    }
}

#[async_trait]
impl FetchSource for Pop3Source {
    fn protocol(&self) -> &'static str {
        "pop3"
    }

    /// UIDL for the ids, LIST for the sizes (so that a message over the
    /// limit is known before a byte of it is downloaded).
    async fn list(&mut self) -> SourceResult<Vec<Listed>> {
        let client = self.client()?;
        let ids = client.uidl().await.map_err(failure)?;
        let sizes: std::collections::HashMap<u32, u64> = client.list().await.map_err(failure)?.into_iter().collect();
        Ok(ids.into_iter().map(|(handle, uid)| Listed { size: sizes.get(&handle).copied(), uid, handle }).collect())
    }

    async fn retrieve(
        &mut self,
        item: &Listed,
        mut out: &mut (dyn AsyncWrite + Unpin + Send),
        limit: u64,
        deadline: Duration,
    ) -> SourceResult<u64> {
        self.client()?.retr(item.handle, &mut out, limit, deadline).await.map_err(failure)
    }

    async fn mark_deleted(&mut self, item: &Listed) -> SourceResult<()> {
        self.client()?.dele(item.handle).await.map_err(failure)
    }

    /// QUIT: the server applies the DELEs now (UPDATE state), not before.
    async fn commit(&mut self) -> SourceResult<()> {
        match self.client.take() {
            Some(c) => c.quit().await.map_err(failure),
            None => Ok(()),
        }
    }
}
