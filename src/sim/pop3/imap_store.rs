//! The IMAP view of the simulator's [`Mailstore`]: UIDVALIDITY, numeric
//! UIDs, `\Seen`/`\Deleted` flags, folders, copy and expunge, for
//! `sim::imap` (a child of `pop3` so the store's internals stay private).

use std::sync::Arc;

use tokio::sync::watch;

use super::{Mailstore, Stored, lock};

/// One message as the IMAP side sees it.
#[derive(Clone)]
pub struct ImapMessage {
    pub uid: u32,
    pub bytes: Arc<Vec<u8>>,
    pub seen: bool,
    pub deleted: bool,
}

/// The mailbox key of an IMAP folder: `INBOX` is the user's POP3 maildrop,
/// other folders are kept under `user/folder`.
pub fn folder_key(user: &str, folder: &str) -> String {
    if folder.eq_ignore_ascii_case("INBOX") { user.to_owned() } else { format!("{user}/{folder}") }
}

fn numeric_uid(uid: &str) -> u32 {
    uid.trim_start_matches("pecsim-").parse().unwrap_or(0)
}

impl Mailstore {
    fn next_uid(&self) -> String {
        let mut next = lock(&self.next_uid);
        let uid = format!("pecsim-{:08}", *next);
        *next += 1;
        uid
    }

    /// `(uid, seen, deleted)` of every message in `key` (see [`folder_key`]).
    pub fn imap_flags(&self, key: &str) -> Vec<(String, bool, bool)> {
        lock(&self.boxes).get(key).map(|b| b.messages.iter().map(|m| (m.uid.clone(), m.seen, m.deleted)).collect()).unwrap_or_default()
    }

    /// A new UIDVALIDITY for `key` and new UIDs for its messages, as a server
    /// that rebuilt its index does.
    pub fn reset_uidvalidity(&self, key: &str) {
        let mut boxes = lock(&self.boxes);
        if let Some(b) = boxes.get_mut(key) {
            b.uidvalidity = b.uidvalidity.max(1) + 1;
            for m in &mut b.messages {
                m.uid = self.next_uid();
            }
        }
        drop(boxes);
        self.touch();
    }

    /// Whether `user` may log in with `password`.
    pub(crate) fn login_ok(&self, user: &str, password: &str) -> bool {
        self.check_password(user, password)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// UIDVALIDITY and messages of `key`; `None` if the folder does not exist.
    pub(crate) fn imap_snapshot(&self, key: &str) -> Option<(u32, Vec<ImapMessage>)> {
        let mut boxes = lock(&self.boxes);
        let b = boxes.get_mut(key)?;
        b.uidvalidity = b.uidvalidity.max(1);
        let msgs = b
            .messages
            .iter()
            .map(|m| ImapMessage { uid: numeric_uid(&m.uid), bytes: m.bytes.clone(), seen: m.seen, deleted: m.deleted })
            .collect();
        Some((b.uidvalidity, msgs))
    }

    pub(crate) fn imap_fetched(&self, key: &str, uid: u32) {
        if let Some(m) = lock(&self.boxes).get(key).and_then(|b| b.messages.iter().find(|m| numeric_uid(&m.uid) == uid)) {
            *lock(&self.retrievals).entry(m.uid.clone()).or_default() += 1;
        }
    }

    pub fn imap_set_flags(&self, key: &str, uids: &[u32], seen: Option<bool>, deleted: Option<bool>) {
        if let Some(b) = lock(&self.boxes).get_mut(key) {
            for m in b.messages.iter_mut().filter(|m| uids.contains(&numeric_uid(&m.uid))) {
                m.seen = seen.unwrap_or(m.seen);
                m.deleted = deleted.unwrap_or(m.deleted);
            }
        }
        self.touch();
    }

    /// Removes the `\Deleted` messages of `key` (only those in `only`, if given).
    pub(crate) fn imap_expunge(&self, key: &str, only: Option<&[u32]>) {
        if let Some(b) = lock(&self.boxes).get_mut(key) {
            b.messages.retain(|m| !(m.deleted && only.is_none_or(|o| o.contains(&numeric_uid(&m.uid)))));
        }
        self.touch();
    }

    /// Copies messages into folder `to` (created if missing), with new UIDs.
    pub(crate) fn imap_copy(&self, from: &str, uids: &[u32], to: &str) {
        let mut boxes = lock(&self.boxes);
        let copies: Vec<Stored> = boxes
            .get(from)
            .map(|b| b.messages.iter().filter(|m| uids.contains(&numeric_uid(&m.uid))).cloned().collect())
            .unwrap_or_default();
        let target = boxes.entry(to.to_owned()).or_default();
        for mut m in copies {
            m.uid = self.next_uid();
            m.deleted = false;
            target.messages.push(m);
        }
        drop(boxes);
        self.touch();
    }
}
