//! IMAP as a [`FetchSource`]: every configured folder is listed with its
//! `UIDVALIDITY`, so a message's id is `{folder}/{uidvalidity}/{uid}`:
//! stable across sessions, and new if the server resets the folder (the
//! store's duplicate protection then keeps the same receipt from being
//! injected twice). `BODY.PEEK[]` leaves `\Seen` alone until the message is
//! committed; marks (`\Seen`, moves, `\Deleted`) are applied at commit.
//! With `idle = true` and a server offering IDLE the session stays open
//! after commit and [`wait_for_changes`](FetchSource::wait_for_changes)
//! idles on the first folder.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWrite;

use super::{FailureKind, FetchSource, Listed, SourceError, SourceResult};
use crate::config::{MailboxImapConfig, Retention, Secret, Security};
use crate::imap::{self, Client, Endpoint};

pub struct ImapSource {
    client: Option<Client>,
    folders: Vec<String>,
    move_to: Option<String>,
    idle: bool,
    /// `handle` -> (folder index, UID, already `\Seen`).
    items: Vec<(usize, u32, bool)>,
    /// Per folder, the UIDVALIDITY seen when listing.
    validity: Vec<Option<u32>>,
    selected: Option<usize>,
    kept: Vec<usize>,
    deleted: Vec<usize>,
}

pub(crate) fn failure(e: imap::Error) -> SourceError {
    let kind = match &e {
        imap::Error::Auth { .. } => FailureKind::Auth,
        imap::Error::TooLarge { .. } => FailureKind::TooLarge,
        imap::Error::Timeout { stage: "FETCH deadline" } => FailureKind::Deadline,
        imap::Error::Connect { .. }
        | imap::Error::Tls { .. }
        | imap::Error::Timeout { .. }
        | imap::Error::Io { .. }
        | imap::Error::Closed => FailureKind::Network,
        _ => FailureKind::Protocol,
    };
    SourceError { kind, protocol: "IMAP", source: Box::new(e) }
}

/// `(folder, UIDVALIDITY)` of a message id `folder/uidvalidity/uid` (folder names may hold `/`).
pub fn folder_validity(id: &str) -> Option<(&str, u32)> {
    let mut parts = id.rsplitn(3, '/');
    parts.next()?;
    let validity = parts.next()?.parse().ok()?;
    Some((parts.next()?, validity))
}

/// The endpoint of a `[mailbox.imap]` table.
pub fn endpoint(p: &MailboxImapConfig, tls: Arc<rustls::ClientConfig>) -> Endpoint {
    Endpoint {
        host: p.host.clone(),
        port: p.port,
        security: if p.security == Security::Starttls { imap::Security::StartTls } else { imap::Security::Tls },
        tls,
        timeout: Duration::from_secs(p.timeout_secs.max(1)),
    }
}

impl ImapSource {
    pub async fn connect(username: &str, password: &Secret, p: &MailboxImapConfig, tls: Arc<rustls::ClientConfig>) -> SourceResult<Self> {
        let mut client = Client::connect(&endpoint(p, tls)).await.map_err(failure)?;
        client.login(username, password).await.map_err(failure)?;
        let move_to = if p.retention == Retention::Leave { p.move_to.clone() } else { None };
        Ok(Self {
            client: Some(client),
            folders: p.folders.clone(),
            move_to,
            idle: p.idle,
            items: Vec::new(),
            validity: vec![None; p.folders.len()],
            selected: None,
            kept: Vec::new(),
            deleted: Vec::new(),
        })
    }

    fn client(&mut self) -> SourceResult<&mut Client> {
        self.client.as_mut().ok_or_else(|| failure(imap::Error::Closed))
    }

    /// Selects folder `i`; the folder must still have the UIDVALIDITY it was listed with.
    async fn select(&mut self, i: usize) -> SourceResult<imap::Selected> {
        let folder = self.folders[i].clone();
        let selected = self.client()?.select(&folder).await.map_err(failure)?;
        self.selected = Some(i);
        match self.validity[i] {
            Some(v) if v != selected.uidvalidity => Err(failure(imap::Error::Protocol {
                stage: "SELECT",
                line: format!("UIDVALIDITY of {folder} changed from {v} to {} during the session", selected.uidvalidity),
            })),
            _ => Ok(selected),
        }
    }

    async fn ensure_selected(&mut self, i: usize) -> SourceResult<()> {
        if self.selected != Some(i) {
            self.select(i).await?;
        }
        Ok(())
    }

    fn handle(&self, item: &Listed) -> SourceResult<(usize, u32, bool)> {
        self.items.get(item.handle as usize).copied().ok_or_else(|| {
            failure(imap::Error::Protocol { stage: "fetch", line: format!("unknown message handle {} ({})", item.handle, item.uid) })
        })
    }

    fn uids(&self, handles: &[usize], folder: usize) -> Vec<u32> {
        handles.iter().filter_map(|&h| self.items.get(h)).filter(|(f, _, _)| *f == folder).map(|(_, uid, _)| *uid).collect()
    }
}

#[async_trait]
impl FetchSource for ImapSource {
    fn protocol(&self) -> &'static str {
        "imap"
    }

    async fn list(&mut self) -> SourceResult<Vec<Listed>> {
        self.items.clear();
        self.kept.clear();
        self.deleted.clear();
        let mut out = Vec::new();
        for i in 0..self.folders.len() {
            self.validity[i] = None;
            let selected = self.select(i).await?;
            self.validity[i] = Some(selected.uidvalidity);
            let entries = self.client()?.list(&selected).await.map_err(failure)?;
            for e in entries.into_iter().filter(|e| !e.deleted) {
                let handle = self.items.len();
                self.items.push((i, e.uid, e.seen));
                out.push(Listed {
                    uid: format!("{}/{}/{}", self.folders[i], selected.uidvalidity, e.uid),
                    handle: u32::try_from(handle).unwrap_or(u32::MAX),
                    size: e.size,
                });
            }
        }
        Ok(out)
    }

    async fn retrieve(
        &mut self,
        item: &Listed,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        limit: u64,
        deadline: Duration,
    ) -> SourceResult<u64> {
        let (folder, uid, _) = self.handle(item)?;
        self.ensure_selected(folder).await?;
        self.client()?.fetch_body(uid, out, limit, deadline).await.map_err(failure)
    }

    async fn mark_deleted(&mut self, item: &Listed) -> SourceResult<()> {
        self.handle(item)?;
        self.deleted.push(item.handle as usize);
        Ok(())
    }

    async fn mark_kept(&mut self, item: &Listed) -> SourceResult<()> {
        let (_, _, seen) = self.handle(item)?;
        if self.move_to.is_some() || !seen {
            self.kept.push(item.handle as usize);
        }
        Ok(())
    }

    /// Per folder: `\Seen` or the move for what stays, `\Deleted` and
    /// UID EXPUNGE (UIDPLUS) for what goes; without UIDPLUS a plain EXPUNGE
    /// only if nothing but pecgate's own messages is flagged `\Deleted`.
    async fn commit(&mut self) -> SourceResult<()> {
        for i in 0..self.folders.len() {
            let kept = self.uids(&self.kept, i);
            let deleted = self.uids(&self.deleted, i);
            if kept.is_empty() && deleted.is_empty() {
                continue;
            }
            self.ensure_selected(i).await?;
            let move_to = self.move_to.clone();
            let folder = self.folders[i].clone();
            let client = self.client()?;
            match &move_to {
                Some(target) => client.uid_move(&kept, target).await.map_err(failure)?,
                None => client.add_flags(&kept, "\\Seen").await.map_err(failure)?,
            }
            if deleted.is_empty() {
                continue;
            }
            client.add_flags(&deleted, "\\Deleted").await.map_err(failure)?;
            if client.has("UIDPLUS") {
                client.uid_expunge(&deleted).await.map_err(failure)?;
            } else {
                let flagged = client.search_deleted().await.map_err(failure)?;
                if flagged.iter().all(|u| deleted.contains(u)) {
                    client.expunge().await.map_err(failure)?;
                } else {
                    // EXPUNGE would also remove what someone else flagged: leave ours for a later poll.
                    client.remove_flags(&deleted, "\\Deleted").await.map_err(failure)?;
                    return Err(failure(imap::Error::Protocol {
                        stage: "EXPUNGE",
                        line: format!(
                            "{folder} has messages flagged \\Deleted by another client and the server has no UIDPLUS; nothing deleted"
                        ),
                    }));
                }
            }
        }
        self.kept.clear();
        self.deleted.clear();
        if !self.can_wait()
            && let Some(c) = self.client.take()
        {
            c.logout().await.map_err(failure)?;
        }
        Ok(())
    }

    fn can_wait(&self) -> bool {
        self.idle && self.client.as_ref().is_some_and(|c| c.has("IDLE"))
    }

    async fn wait_for_changes(&mut self, max: Duration) -> SourceResult<bool> {
        if !self.can_wait() {
            return Ok(false);
        }
        self.ensure_selected(0).await?;
        self.client()?.idle(max).await.map_err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::folder_validity;

    #[test]
    fn message_ids_give_folder_and_uidvalidity() {
        assert_eq!(folder_validity("INBOX/7/42"), Some(("INBOX", 7)));
        assert_eq!(folder_validity("Archivio/2024/3/9"), Some(("Archivio/2024", 3)));
        assert_eq!(folder_validity("pecsim-00000001"), None);
        assert_eq!(folder_validity("INBOX/x/1"), None);
    }
}
