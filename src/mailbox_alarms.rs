//! GPec's non-blocking alarm: an active mailbox where no user may send is a
//! warning at start and at each reload, and its admin is told once. The
//! alarm is remembered in the store (`alarms`), so a restart does not repeat
//! the notice; it clears when the mailbox has a sender again, and a later
//! loss of every sender tells the admin anew.

use crate::clock::Clock;
use crate::enqueue::Enqueue;
use crate::notify;
use crate::runtime::Runtime;

/// The alarm's name for mailbox `id`.
pub fn no_sender_alarm(id: &str) -> String {
    format!("no-sender:{id}")
}

/// Checks every active mailbox of `rt` against its directory members.
/// When the check runs: at start and reload the warning is logged each
/// time; after a directory refresh only when the alarm is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    StartOrReload,
    DirectoryRefresh,
}

pub async fn check_senders(rt: &Runtime, enqueue: &Enqueue, clock: &dyn Clock, when: Check) {
    let store = enqueue.store();
    for m in rt.mailboxes.iter().filter(|m| m.active) {
        let members = match rt.directory.members(&m.id).await {
            Ok(members) => members,
            Err(e) => {
                // After a refresh the directory's own warning has said it (once per outage).
                match when {
                    Check::StartOrReload => tracing::warn!(mailbox = %m.id, error = %e, "cannot check who may send from the mailbox"),
                    Check::DirectoryRefresh => tracing::debug!(mailbox = %m.id, error = %e, "cannot check who may send from the mailbox"),
                }
                continue;
            }
        };
        let alarm = no_sender_alarm(&m.id);
        if members.iter().any(|u| u.rights.send) {
            match store.clear_alarm(&alarm).await {
                Ok(true) => tracing::info!(mailbox = %m.id, "the mailbox has a user who may send again"),
                Ok(false) => {}
                Err(e) => tracing::error!(mailbox = %m.id, error = %e, "cannot clear the no-sender alarm"),
            }
            continue;
        }
        let now = clock.now_ms();
        let raised = store.raise_alarm(&alarm, now).await;
        if when == Check::StartOrReload || matches!(raised, Ok(true)) {
            tracing::warn!(mailbox = %m.id, "no user may send from this mailbox: it can only receive");
        }
        match raised {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(mailbox = %m.id, error = %e, "cannot record the no-sender alarm; the admin is not told");
                continue;
            }
        }
        let Some(admin) = crate::directory::admin(&members).map(|a| a.address.clone()) else {
            tracing::warn!(mailbox = %m.id, "the mailbox has no admin to tell that nobody may send");
            continue;
        };
        let corp = &rt.config.corporate;
        let problem = format!("mailbox {}: no user has send = true (in the configuration or the directory)", m.id);
        let (bytes, message_id) = notify::no_sender_notice(&notify::MailboxNotice {
            from: &corp.from,
            to: &admin,
            mailbox_address: &m.address,
            problem: &problem,
            hostname: &rt.config.smtp.hostname,
            language: corp.language,
            date_unix: now / 1000,
            id: &crate::queue::new_queue_id(now),
        });
        match enqueue.notice(&corp.from, &admin, &bytes, message_id, &format!("no sender on mailbox {}", m.id)).await {
            Ok(id) => tracing::warn!(mailbox = %m.id, notice = %id, to = %admin, "mailbox admin told that nobody may send"),
            Err(e) => {
                tracing::error!(mailbox = %m.id, error = %e, "cannot queue the no-sender notice; told at the next check");
                let _ = store.clear_alarm(&alarm).await;
            }
        }
    }
}
