//! PINs for sending from a `require_pin` mailbox: Argon2id hashes (PHC
//! strings, as stored in the `pins` table or a directory attribute), reading
//! a new PIN without echo, and the lockout rule after wrong PINs.
//!
//! A PIN is never an argument, a log field or part of an error: the types
//! here carry it only as `&str` into the hash functions.

use std::io::{BufRead, IsTerminal};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::config::PinConfig;
use crate::policy::tag::{PIN_MAX, PIN_MIN, is_pin};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a PIN is {PIN_MIN} to {PIN_MAX} digits (0-9 only)")]
    Shape,
    #[error("the two PINs differ; nothing was changed")]
    Mismatch,
    #[error("no PIN was given")]
    Empty,
    #[error("cannot read the PIN: {0}")]
    Read(#[source] std::io::Error),
    #[error("no random salt: {0}")]
    Random(String),
    #[error("Argon2 hashing failed: {0}")]
    Hash(String),
    #[error("the stored PIN hash is not an Argon2 PHC string ($argon2id$...): {0}")]
    BadHash(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Hashes a PIN (checked for shape) with Argon2id, default parameters, a random salt.
pub fn hash(pin: &str) -> Result<String> {
    if !is_pin(pin) {
        return Err(Error::Shape);
    }
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    let phc = Argon2::default().hash_password(pin.as_bytes(), &salt).map_err(|e| Error::Hash(e.to_string()))?;
    Ok(phc.to_string())
}

/// Whether `pin` matches the PHC string `phc` (any Argon2 variant the string names).
/// CPU-heavy: call it from `spawn_blocking` in async code.
pub fn verify(phc: &str, pin: &str) -> Result<bool> {
    check_phc(phc)?;
    let parsed = PasswordHash::new(phc).map_err(|e| Error::BadHash(e.to_string()))?;
    Ok(Argon2::default().verify_password(pin.as_bytes(), &parsed).is_ok())
}

/// Checks that a PHC string can be used by [`verify`] (for hashes from a directory).
pub fn check_phc(phc: &str) -> Result<()> {
    let parsed = PasswordHash::new(phc).map_err(|e| Error::BadHash(e.to_string()))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(Error::BadHash(format!("algorithm {}", parsed.algorithm)));
    }
    Ok(())
}

/// Reads a new PIN: from a terminal twice without echo, else one line from stdin
/// (scripts and tests). Never from the command line.
pub fn read_new_pin() -> Result<String> {
    let stdin = std::io::stdin();
    let pin = if stdin.is_terminal() {
        let first = rpassword::prompt_password("New PIN (4 to 12 digits): ").map_err(Error::Read)?;
        let second = rpassword::prompt_password("Repeat the PIN: ").map_err(Error::Read)?;
        if first != second {
            return Err(Error::Mismatch);
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(Error::Read)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pin.is_empty() {
        return Err(Error::Empty);
    }
    if !is_pin(&pin) {
        return Err(Error::Shape);
    }
    Ok(pin)
}

/// The end (ms) of the lockout that wrong PINs at `failures` (ms, any order)
/// impose at `now`: `max_failures` of them within `window_secs` lock out for
/// `lockout_secs` from the last of them. None: not locked out.
pub fn locked_until(failures: &[i64], now: i64, cfg: &PinConfig) -> Option<i64> {
    let n = cfg.max_failures.max(1) as usize;
    let mut times = failures.to_vec();
    times.sort_unstable();
    let window = cfg.window_secs as i64 * 1000;
    let lockout = cfg.lockout_secs as i64 * 1000;
    times.windows(n).filter(|w| w[n - 1] - w[0] <= window).map(|w| w[n - 1] + lockout).filter(|&until| until > now).max()
}

/// How long failures must be kept for [`locked_until`] to see them.
pub fn retention_ms(cfg: &PinConfig) -> i64 {
    (cfg.window_secs + cfg.lockout_secs) as i64 * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash("739184620573").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("739184620573"));
        assert!(verify(&phc, "739184620573").unwrap());
        assert!(!verify(&phc, "481516234200").unwrap());
        assert_ne!(hash("739184620573").unwrap(), phc, "a fresh salt each time");
        assert!(matches!(hash("12a4"), Err(Error::Shape)));
        assert!(matches!(hash("123"), Err(Error::Shape)));
        assert!(matches!(verify("not a hash", "1234"), Err(Error::BadHash(_))));
        assert!(check_phc(&phc).is_ok());
    }

    #[test]
    fn lockout_rule() {
        let cfg = PinConfig { max_failures: 3, window_secs: 60, lockout_secs: 600 };
        // Two failures: never locked.
        assert_eq!(locked_until(&[1_000, 2_000], 3_000, &cfg), None);
        // Three within a minute: locked for 10 minutes from the third.
        assert_eq!(locked_until(&[1_000, 2_000, 30_000], 31_000, &cfg), Some(630_000));
        assert_eq!(locked_until(&[30_000, 1_000, 2_000], 629_999, &cfg), Some(630_000), "order does not matter");
        assert_eq!(locked_until(&[1_000, 2_000, 30_000], 630_000, &cfg), None, "the lockout ends");
        // Three spread over more than the window: not locked.
        assert_eq!(locked_until(&[1_000, 40_000, 70_000], 71_000, &cfg), None);
        assert_eq!(retention_ms(&cfg), 660_000);
    }
}
