//! The control socket: a Unix socket (mode 0600, so only pecgate's user and
//! root may use it) where `pecgate reload` asks the running instance to
//! reload and reads back the result. One request line, one JSON reply line:
//!
//! ```text
//! > reload
//! < {"ok":true,"report":{"generation":2,"changes":["mailbox hr: added"],"needs_restart":[],"warnings":[]}}
//! < {"ok":false,"error":"pecgate.toml: 1 problem(s) in the configuration: ..."}
//! > poll legal
//! < {"ok":true}
//! ```
//!
//! A socket rather than an HTTP endpoint on the admin listener: reload
//! then needs no token on disk for the client, works without the admin
//! listener being reachable, and file permissions decide who may use it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fetch::Fetchers;
use crate::runtime::reload::{Reloader, Report};

/// What the socket's requests act on.
pub struct Targets {
    pub reloader: Arc<Reloader>,
    pub fetchers: Arc<Fetchers>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("control socket {path}: another pecgate answers there; stop it, or give this instance its own control.socket")]
    InUse { path: String },
    #[error("control socket {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("control socket {path}: no pecgate answers ({source}); is it running with this configuration?")]
    NotRunning { path: String, source: std::io::Error },
    #[error("control socket {path}: unexpected answer {answer:?}")]
    Protocol { path: String, answer: String },
}

/// A reply on the socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Longest request line read.
const MAX_REQUEST: u64 = 1024;
/// A client that says nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket (replacing a stale one left by a crash) and serves it
/// until `shutdown`; the socket file is removed at the end.
pub async fn spawn(path: &Path, targets: Arc<Targets>, mut shutdown: watch::Receiver<bool>) -> Result<JoinHandle<()>, Error> {
    let shown = path.display().to_string();
    let io = |source| Error::Io { path: shown.clone(), source };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(Error::InUse { path: shown });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    let path: PathBuf = path.to_owned();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let targets = targets.clone();
                        tokio::spawn(async move { serve(stream, &targets).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn serve(stream: UnixStream, targets: &Targets) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let answer = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["reload"] => match targets.reloader.reload().await {
                Ok(report) => Answer { ok: true, report: Some(report), error: None },
                Err(e) => Answer { ok: false, report: None, error: Some(e.to_string()) },
            },
            ["poll", mailbox] => match targets.fetchers.get(mailbox) {
                Some(f) => {
                    f.wake();
                    Answer { ok: true, report: None, error: None }
                }
                None => Answer { ok: false, report: None, error: Some(format!("mailbox {mailbox} is not fetched by this instance")) },
            },
            other => Answer {
                ok: false,
                report: None,
                error: Some(format!("unknown request {:?}; known: reload, poll MAILBOX", other.join(" "))),
            },
        },
        _ => return,
    };
    let mut text = serde_json::to_string(&answer).unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode the answer"}"#.into());
    text.push('\n');
    let _ = write.write_all(text.as_bytes()).await;
}

/// `pecgate reload`: asks the instance behind `path` to reload.
pub async fn request_reload(path: &Path) -> Result<Answer, Error> {
    request(path, "reload").await
}

/// Asks the instance behind `path` to poll `mailbox` now.
pub async fn request_poll(path: &Path, mailbox: &str) -> Result<Answer, Error> {
    request(path, &format!("poll {mailbox}")).await
}

async fn request(path: &Path, line: &str) -> Result<Answer, Error> {
    let shown = path.display().to_string();
    let mut stream = UnixStream::connect(path).await.map_err(|source| Error::NotRunning { path: shown.clone(), source })?;
    stream.write_all(format!("{line}\n").as_bytes()).await.map_err(|source| Error::Io { path: shown.clone(), source })?;
    let mut answer = String::new();
    // A reload reads files and may wait for another one to finish: generous, but bounded.
    let mut reader = BufReader::new(stream).take(1024 * 1024);
    match tokio::time::timeout(Duration::from_secs(120), reader.read_line(&mut answer)).await {
        Ok(Ok(_)) => serde_json::from_str(answer.trim()).map_err(|_| Error::Protocol { path: shown, answer }),
        Ok(Err(source)) => Err(Error::Io { path: shown, source }),
        Err(_) => Err(Error::Io { path: shown, source: std::io::ErrorKind::TimedOut.into() }),
    }
}
