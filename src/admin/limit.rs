//! Failed admin authentications per client: after [`MAX_FAILURES`] wrong
//! tokens (login form or bearer) within a sliding [`WINDOW_MS`], the client
//! gets 429 until the oldest of them leaves the window, even with the right
//! token, so guessing costs a minute per ten tries. IPv6 clients count per
//! /64 (one host usually holds a whole /64). The table holds at most
//! [`MAX_CLIENTS`] clients; when full, the one whose last failure is oldest
//! is forgotten, so a flood of addresses costs bounded memory.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

pub const MAX_FAILURES: usize = 10;
pub const WINDOW_MS: i64 = 60_000;
pub const MAX_CLIENTS: usize = 4096;

pub struct Limiter {
    clients: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
    max_failures: usize,
    window_ms: i64,
    max_clients: usize,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(MAX_FAILURES, WINDOW_MS, MAX_CLIENTS)
    }
}

/// The table key of a client: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Limiter {
    pub fn new(max_failures: usize, window_ms: i64, max_clients: usize) -> Self {
        Self { clients: Mutex::new(HashMap::new()), max_failures: max_failures.max(1), window_ms, max_clients: max_clients.max(1) }
    }

    /// `Some(seconds to wait)` while `ip` has no attempts left.
    pub fn blocked(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let times = map.get_mut(&key(ip))?;
        self.prune(times, now);
        if times.len() < self.max_failures {
            return None;
        }
        let free_at = times.front().copied().unwrap_or(now) + self.window_ms;
        // Whole seconds, rounded up: a client that waits that long gets an attempt.
        Some(((free_at - now).max(1) as u64).div_ceil(1000))
    }

    /// Records a wrong token from `ip`; true if that used up its attempts.
    pub fn failed(&self, ip: IpAddr, now: i64) -> bool {
        let k = key(ip);
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&k) && map.len() >= self.max_clients {
            let window = self.window_ms;
            map.retain(|_, t| t.back().is_some_and(|last| *last > now - window));
            if map.len() >= self.max_clients
                && let Some(oldest) = map.iter().min_by_key(|(_, t)| t.back().copied().unwrap_or(i64::MIN)).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let times = map.entry(k).or_default();
        self.prune(times, now);
        times.push_back(now);
        // Only the newest max_failures matter for the window.
        while times.len() > self.max_failures {
            times.pop_front();
        }
        times.len() >= self.max_failures
    }

    /// The right token: the client starts afresh.
    pub fn succeeded(&self, ip: IpAddr) {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(ip));
    }

    fn prune(&self, times: &mut VecDeque<i64>, now: i64) {
        while times.front().is_some_and(|t| *t <= now - self.window_ms) {
            times.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ten_failures_a_minute_then_wait_for_the_oldest() {
        let l = Limiter::default();
        let a = ip("192.0.2.1");
        for n in 0..10 {
            assert_eq!(l.blocked(a, 1_000 + n), None, "attempt {n}");
            assert_eq!(l.failed(a, 1_000 + n), n == 9);
        }
        assert_eq!(l.blocked(a, 1_010), Some(60), "the first failure (t=1000) leaves at 61000");
        assert_eq!(l.blocked(a, 60_500), Some(1));
        assert_eq!(l.blocked(ip("192.0.2.2"), 1_010), None, "another client is not affected");
        assert_eq!(l.blocked(a, 61_000), None, "sliding: one failure has left the window");
        assert!(l.failed(a, 61_000), "and one more fills it again");
        assert_eq!(l.blocked(a, 61_000), Some(1), "until t=1001 + 60000");
        l.succeeded(a);
        assert_eq!(l.blocked(a, 61_000), None);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = Limiter::new(2, WINDOW_MS, 10);
        l.failed(ip("2001:db8:1:2::1"), 0);
        l.failed(ip("2001:db8:1:2:ffff::9"), 0);
        assert!(l.blocked(ip("2001:db8:1:2::77"), 1).is_some());
        assert!(l.blocked(ip("2001:db8:1:3::1"), 1).is_none());
        l.failed(ip("::ffff:192.0.2.7"), 0);
        l.failed(ip("192.0.2.7"), 0);
        assert!(l.blocked(ip("192.0.2.7"), 1).is_some(), "an IPv4-mapped address is its IPv4 address");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest() {
        let l = Limiter::new(2, WINDOW_MS, 3);
        for (n, a) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            l.failed(ip(a), n as i64);
            l.failed(ip(a), n as i64);
        }
        l.failed(ip("10.0.0.4"), 10);
        assert_eq!(l.len(), 3);
        assert!(l.blocked(ip("10.0.0.1"), 11).is_none(), "the oldest was evicted");
        assert!(l.blocked(ip("10.0.0.2"), 11).is_some());
        // Expired clients go first.
        l.failed(ip("10.0.0.5"), WINDOW_MS + 5);
        assert_eq!(l.len(), 2, "10.0.0.2 and .3 expired, .4 and .5 remain");
    }
}
