//! The simulated PEC world, for tests, benchmarks and `pecgate demo`:
//! [`provider`] is a PEC provider's submission server (SMTPS + AUTH,
//! enforcing PEC.md's sender rules, with fault injection); [`capture`] is a
//! stand-in corporate mail server that keeps what it receives. The provider's
//! retrieval half (receipts, POP3S mailboxes) is in `provider::Retrieval` and [`pop3`].

pub mod capture;
pub mod imap;
pub mod pop3;
pub mod provider;
pub mod receipts;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// A message a simulated server accepted, with its envelope.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    /// AUTH identity, if the client authenticated.
    pub auth: Option<String>,
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// First header value by name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// What a simulated server received, in order; tests wait on it with a
/// bounded timeout instead of sleeping.
#[derive(Default)]
pub struct Mailbag {
    items: Mutex<Vec<Captured>>,
    changed: Notify,
    /// Also write each message here as `<n>.eml` (demo, interop).
    dir: Option<PathBuf>,
}

impl Mailbag {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { items: Mutex::new(Vec::new()), changed: Notify::new(), dir }
    }

    pub fn push(&self, c: Captured) {
        let n = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            items.push(c.clone());
            items.len()
        };
        if let Some(dir) = &self.dir {
            let _ = std::fs::create_dir_all(dir);
            let env = format!(
                "X-Envelope-From: <{}>\r\nX-Envelope-To: {}\r\n",
                c.mail_from,
                c.rcpts.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", ")
            );
            let path = dir.join(format!("{n:06}.eml"));
            let mut bytes = env.into_bytes();
            bytes.extend_from_slice(&c.data);
            if let Err(e) = std::fs::write(&path, bytes) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write captured message");
            }
        }
        self.changed.notify_waiters();
    }

    pub fn all(&self) -> Vec<Captured> {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least `n` messages arrived, at most `timeout`; returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Captured>, Vec<Captured>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let items = self.all();
            if items.len() >= n {
                return Ok(items);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(self.all());
            }
        }
    }
}
