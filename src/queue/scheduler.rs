//! Retry policy, pure: exponential backoff with a ceiling and a maximum age.
//!
//! A temporary failure (4xx, network, TLS, timeout, anything unclassified)
//! is retried after `min * 2^(attempts-1)`, capped at `max`; once the message
//! is older than `max_age`, a temporary failure counts as permanent
//! (STYLE.md §2.3). Times are unix milliseconds from the injected clock.

use crate::config::QueueConfig;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub max_age_ms: i64,
}

impl RetryPolicy {
    pub fn from_config(c: &QueueConfig) -> Self {
        Self {
            min_backoff_ms: (c.min_backoff_secs as i64).saturating_mul(1000),
            max_backoff_ms: (c.max_backoff_secs as i64).saturating_mul(1000),
            max_age_ms: (c.max_age_secs as i64).saturating_mul(1000),
        }
    }

    /// When to try again after the `attempts`-th failed attempt (1-based).
    pub fn next_attempt(&self, now: i64, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(30);
        let delay = self.min_backoff_ms.saturating_mul(1i64 << exp).min(self.max_backoff_ms);
        now.saturating_add(delay)
    }

    /// True once a message created at `created_at` may no longer be retried.
    pub fn expired(&self, now: i64, created_at: i64) -> bool {
        now.saturating_sub(created_at) >= self.max_age_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_table() {
        let p = RetryPolicy { min_backoff_ms: 60_000, max_backoff_ms: 3_600_000, max_age_ms: 86_400_000 };
        let cases = [(1, 60_000), (2, 120_000), (3, 240_000), (6, 1_920_000), (7, 3_600_000), (100, 3_600_000)];
        for (attempts, delay) in cases {
            assert_eq!(p.next_attempt(1_000, attempts), 1_000 + delay, "attempt {attempts}");
        }
        assert!(!p.expired(86_399_999, 0));
        assert!(p.expired(86_400_000, 0));
    }
}
