//! Per-mailbox submission rate limit: a sliding one-minute window.
//! Providers enforce limits per mailbox (Legalmail: about 6/min), so going
//! over only earns refusals and delays.
//!
//! Adaptive: a provider reply that means "too fast" (`replies::Meaning::Throttled`)
//! halves the effective limit (floor 1; from `DEFAULT_PER_MINUTE` when none is
//! configured), at most once a minute, since one burst earns many such
//! replies at once. Every `RECOVER_AFTER` successes without one it grows by
//! one, back to the configured limit (or, with none configured, to no limit).

use std::collections::VecDeque;

/// Where the adaptive limit starts without a configured one (Legalmail's limit).
pub const DEFAULT_PER_MINUTE: u32 = 6;
/// Successes at the reduced limit before it grows by one.
pub const RECOVER_AFTER: u32 = 10;
const WINDOW_MS: i64 = 60_000;
/// How long a submission keeps its slot: the provider's minute plus the
/// time between taking the slot and the provider seeing MAIL (connect, TLS,
/// AUTH), so a limit equal to the provider's never goes over it.
pub const SLOT_MS: i64 = WINDOW_MS + 5_000;

#[derive(Debug)]
pub struct RateLimiter {
    /// From the configuration; 0 = no limit.
    configured: u32,
    /// Lowered after a throttle reply; `None` = the configured limit applies.
    reduced: Option<u32>,
    last_cut: Option<i64>,
    successes: u32,
    sent: VecDeque<i64>,
}

impl RateLimiter {
    /// `per_minute = 0` means no limit.
    pub fn new(per_minute: u32) -> Self {
        Self { configured: per_minute, reduced: None, last_cut: None, successes: 0, sent: VecDeque::new() }
    }

    /// A new limit after a reload; the submissions of the last minute still
    /// count, and a reduction still in force stays (never above the new limit).
    pub fn set_limit(&mut self, per_minute: u32) {
        self.configured = per_minute;
        if let Some(r) = self.reduced
            && per_minute > 0
            && r >= per_minute
        {
            self.reduced = None;
        }
    }

    /// The limit in force now (0 = none).
    pub fn limit(&self) -> u32 {
        self.reduced.unwrap_or(self.configured)
    }

    /// The provider said "too fast" at `now` (ms).
    pub fn throttled(&mut self, now: i64) {
        self.successes = 0;
        if self.last_cut.is_some_and(|t| now - t < WINDOW_MS) {
            return;
        }
        let base = match self.limit() {
            0 => DEFAULT_PER_MINUTE,
            n => n,
        };
        self.reduced = Some((base / 2).max(1));
        self.last_cut = Some(now);
    }

    /// A submission went through: a reduced limit recovers slowly.
    pub fn succeeded(&mut self) {
        let Some(r) = self.reduced else { return };
        self.successes += 1;
        if self.successes < RECOVER_AFTER {
            return;
        }
        self.successes = 0;
        let ceiling = if self.configured == 0 { DEFAULT_PER_MINUTE } else { self.configured };
        self.reduced = if r >= ceiling { None } else { Some(r + 1) };
        if self.reduced.is_some_and(|n| self.configured > 0 && n >= self.configured) {
            self.reduced = None;
        }
    }

    /// Takes a slot at `now` (ms) if one is free; otherwise returns when the next one frees.
    /// Sends are recorded even without a limit, so a later reduction sees the last minute.
    pub fn try_take(&mut self, now: i64) -> Result<(), i64> {
        while self.sent.front().is_some_and(|&t| t <= now - SLOT_MS) {
            self.sent.pop_front();
        }
        let limit = self.limit();
        if limit == 0 || (self.sent.len() as u32) < limit {
            self.sent.push_back(now);
            Ok(())
        } else {
            // The slot frees when the oldest send that keeps us at the limit leaves the window.
            let idx = self.sent.len() - limit as usize;
            Err(self.sent.get(idx).map_or(now, |&t| t + SLOT_MS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window() {
        let mut r = RateLimiter::new(2);
        assert_eq!(r.try_take(0), Ok(()));
        assert_eq!(r.try_take(10), Ok(()));
        assert_eq!(r.try_take(20), Err(SLOT_MS));
        assert_eq!(r.try_take(SLOT_MS - 1), Err(SLOT_MS), "a slot is held a little longer than the provider's minute");
        assert_eq!(r.try_take(SLOT_MS), Ok(()));
        assert_eq!(r.try_take(SLOT_MS + 1), Err(SLOT_MS + 10));
        let mut unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|i| unlimited.try_take(i).is_ok()));
    }

    #[test]
    fn throttle_halves_once_a_minute_with_floor_one() {
        let mut r = RateLimiter::new(0);
        r.throttled(0);
        assert_eq!(r.limit(), DEFAULT_PER_MINUTE / 2);
        // The rest of the same burst does not cut again.
        r.throttled(1_000);
        r.throttled(59_999);
        assert_eq!(r.limit(), 3);
        r.throttled(60_000);
        assert_eq!(r.limit(), 1);
        r.throttled(120_000);
        assert_eq!(r.limit(), 1);
        let mut configured = RateLimiter::new(10);
        configured.throttled(0);
        assert_eq!(configured.limit(), 5);
    }

    #[test]
    fn reduction_applies_to_the_window_already_used() {
        let mut r = RateLimiter::new(0);
        for t in 0..6 {
            assert_eq!(r.try_take(t), Ok(()));
        }
        r.throttled(10);
        // Six sends in the window, limit 3: the slot frees when the 4th-newest leaves.
        assert_eq!(r.try_take(20), Err(SLOT_MS + 3));
        assert_eq!(r.try_take(SLOT_MS + 5), Ok(()));
    }

    #[test]
    fn recovers_slowly_to_the_configured_limit_or_none() {
        let mut r = RateLimiter::new(0);
        r.throttled(0);
        assert_eq!(r.limit(), 3);
        for _ in 0..RECOVER_AFTER - 1 {
            r.succeeded();
        }
        assert_eq!(r.limit(), 3);
        r.succeeded();
        assert_eq!(r.limit(), 4);
        for _ in 0..3 * RECOVER_AFTER {
            r.succeeded();
        }
        assert_eq!(r.limit(), 0, "back to no limit once past the default");

        let mut c = RateLimiter::new(4);
        c.throttled(0);
        assert_eq!(c.limit(), 2);
        for _ in 0..2 * RECOVER_AFTER {
            c.succeeded();
        }
        assert_eq!(c.limit(), 4);
        // A throttle resets the count of successes.
        c.throttled(100_000);
        for _ in 0..RECOVER_AFTER - 1 {
            c.succeeded();
        }
        c.throttled(110_000);
        c.succeeded();
        assert_eq!(c.limit(), 2);
    }

    #[test]
    fn reload_keeps_a_reduction_below_the_new_limit() {
        let mut r = RateLimiter::new(10);
        r.throttled(0);
        r.set_limit(20);
        assert_eq!(r.limit(), 5);
        r.set_limit(4);
        assert_eq!(r.limit(), 4);
    }
}
