//! The queue: message bytes in the [`spool`], state in the store, retry
//! timing in [`scheduler`]. Everything that leaves pecgate goes through it.

pub mod scheduler;
pub mod spool;

use std::sync::atomic::{AtomicU32, Ordering};

/// Queue ids: 11 hex digits of milliseconds, then a per-process counter and
/// random bits, e.g. `19A4F3C2B1D00A7E3`. Sortable by time, unique across
/// restarts, safe in file names.
pub fn new_queue_id(now_ms: i64) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFFF;
    let mut rnd = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut rnd);
    let r = u16::from_be_bytes(rnd) as u32 & 0xFFF;
    format!("{:011X}{:03X}{:03X}", now_ms.max(0), n, r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_ids_are_unique_and_sortable() {
        let a = super::new_queue_id(1_700_000_000_000);
        let b = super::new_queue_id(1_700_000_000_001);
        assert_eq!(a.len(), 17);
        assert!(a < b);
        let many: std::collections::HashSet<String> = (0..1000).map(|_| super::new_queue_id(5)).collect();
        assert_eq!(many.len(), 1000);
    }
}
