//! Per-mailbox submission rate limit: a sliding one-minute window.
//! Providers enforce limits per mailbox (Legalmail: about 6/min), so going
//! over only earns 4xx replies and delays.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    sent: VecDeque<i64>,
}

impl RateLimiter {
    /// `per_minute = 0` means no limit.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, sent: VecDeque::new() }
    }

    /// A new limit after a reload; the submissions of the last minute still count.
    pub fn set_limit(&mut self, per_minute: u32) {
        self.per_minute = per_minute;
    }

    /// Takes a slot at `now` (ms) if one is free; otherwise returns when the next one frees.
    pub fn try_take(&mut self, now: i64) -> Result<(), i64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        while self.sent.front().is_some_and(|&t| t <= now - 60_000) {
            self.sent.pop_front();
        }
        if (self.sent.len() as u32) < self.per_minute {
            self.sent.push_back(now);
            Ok(())
        } else {
            Err(self.sent.front().map_or(now, |&t| t + 60_000))
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
        assert_eq!(r.try_take(20), Err(60_000));
        assert_eq!(r.try_take(60_000), Ok(()));
        assert_eq!(r.try_take(60_001), Err(60_010));
        let mut unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|i| unlimited.try_take(i).is_ok()));
    }
}
