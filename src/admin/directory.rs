//! Who may do what with each mailbox, and where each right comes from
//! (`[[mailbox.user]]` or a directory group): `GET /api/v1/directory` and
//! the users table of the mailboxes page.

use serde::Serialize;

use super::AdminState;
use crate::directory::{Grant, Status};

/// The directory's refresh state and every mailbox's users.
#[derive(Debug, Serialize)]
pub struct DirectoryView {
    pub directory: Status,
    pub mailboxes: Vec<MailboxUsers>,
}

#[derive(Debug, Serialize)]
pub struct MailboxUsers {
    pub id: String,
    pub address: String,
    /// Empty when `error` says why the directory could not answer.
    pub users: Vec<Grant>,
    pub error: Option<String>,
}

/// Reads the grants of every mailbox of the request's snapshot; a directory
/// that cannot answer is reported per mailbox, not as a failed request.
pub async fn directory_view(state: &AdminState) -> DirectoryView {
    let rt = state.rt();
    let mut mailboxes = Vec::with_capacity(rt.mailboxes.len());
    for m in rt.mailboxes.iter() {
        let (users, error) = match rt.directory.grants(&m.id).await {
            Ok(g) => (g.to_vec(), None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        mailboxes.push(MailboxUsers { id: m.id.clone(), address: m.address.clone(), users, error });
    }
    DirectoryView { directory: rt.directory.status(), mailboxes }
}
