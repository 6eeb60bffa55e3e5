//! The refresh state machine: the last good table, when it was read, and
//! whether the directory is answering. Times are passed in (milliseconds),
//! so outages and recoveries are tested with a fake clock.

use std::sync::Arc;

use super::table::Table;

/// After a failed refresh the next try comes sooner than `refresh_secs`.
pub const RETRY_MS: u64 = 30_000;

/// What a refresh result changed, for the one log line per outage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first good answer since start.
    FirstAnswer,
    /// Good again after failures that began at `since_ms`.
    Recovered { since_ms: i64 },
    /// Good, as before.
    Steady,
    /// The first failure of an outage: warn (once).
    WentDown,
    /// Still failing: no new warning.
    StillDown,
}

#[derive(Debug, Default)]
pub struct Cache {
    table: Option<Arc<Table>>,
    last_success_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    last_error: Option<String>,
    /// Set while failing: when the outage began.
    down_since_ms: Option<i64>,
}

/// The state for the admin page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub up: bool,
    pub last_attempt_ms: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub users: Option<usize>,
}

impl Cache {
    pub fn succeeded(&mut self, now_ms: i64, table: Table) -> Event {
        let event = match (self.table.is_some(), self.down_since_ms) {
            (_, Some(since_ms)) if self.last_attempt_ms.is_some() => Event::Recovered { since_ms },
            (false, _) => Event::FirstAnswer,
            (true, _) => Event::Steady,
        };
        self.table = Some(Arc::new(table));
        self.last_success_ms = Some(now_ms);
        self.last_attempt_ms = Some(now_ms);
        self.last_error = None;
        self.down_since_ms = None;
        event
    }

    pub fn failed(&mut self, now_ms: i64, error: String) -> Event {
        self.last_attempt_ms = Some(now_ms);
        self.last_error = Some(error);
        if self.down_since_ms.is_some() {
            Event::StillDown
        } else {
            self.down_since_ms = Some(now_ms);
            Event::WentDown
        }
    }

    /// Has any refresh finished (well or not)?
    pub fn attempted(&self) -> bool {
        self.last_attempt_ms.is_some()
    }

    /// The last good table, however old: an outage serves the last answer.
    pub fn table(&self) -> Option<Arc<Table>> {
        self.table.clone()
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The wait before the next refresh.
    pub fn next_delay_ms(&self, refresh_ms: u64) -> u64 {
        if self.down_since_ms.is_some() { refresh_ms.min(RETRY_MS) } else { refresh_ms }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            up: self.attempted() && self.down_since_ms.is_none(),
            last_attempt_ms: self.last_attempt_ms,
            last_success_ms: self.last_success_ms,
            last_error: self.last_error.clone(),
            users: self.table.as_ref().map(|t| t.users),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(users: usize) -> Table {
        Table { users, ..Default::default() }
    }

    #[test]
    fn never_answered_means_no_table() {
        let mut c = Cache::default();
        assert!(!c.attempted() && c.table().is_none());
        assert_eq!(c.failed(1_000, "connection refused".into()), Event::WentDown);
        assert_eq!(c.failed(31_000, "connection refused".into()), Event::StillDown);
        assert!(c.attempted() && c.table().is_none());
        assert_eq!(
            c.snapshot(),
            Snapshot {
                up: false,
                last_attempt_ms: Some(31_000),
                last_success_ms: None,
                last_error: Some("connection refused".into()),
                users: None
            }
        );
        assert_eq!(c.next_delay_ms(300_000), RETRY_MS);
        assert_eq!(c.succeeded(61_000, table(3)), Event::Recovered { since_ms: 1_000 });
    }

    #[test]
    fn an_outage_keeps_the_last_good_table_and_warns_once() {
        let mut c = Cache::default();
        assert_eq!(c.succeeded(0, table(5)), Event::FirstAnswer);
        assert_eq!(c.succeeded(300_000, table(6)), Event::Steady);
        assert_eq!(c.next_delay_ms(300_000), 300_000);
        assert_eq!(c.failed(600_000, "timeout".into()), Event::WentDown);
        assert_eq!(c.failed(630_000, "timeout".into()), Event::StillDown);
        assert_eq!(c.table().map(|t| t.users), Some(6), "the last good answer is served");
        let s = c.snapshot();
        assert!(!s.up);
        assert_eq!((s.last_success_ms, s.last_attempt_ms), (Some(300_000), Some(630_000)));
        assert_eq!(c.next_delay_ms(300_000), RETRY_MS);
        assert_eq!(c.next_delay_ms(10_000), 10_000);
        assert_eq!(c.succeeded(660_000, table(7)), Event::Recovered { since_ms: 600_000 });
        assert!(c.snapshot().up);
        assert_eq!(c.failed(960_000, "x".into()), Event::WentDown, "a new outage warns again");
    }
}
