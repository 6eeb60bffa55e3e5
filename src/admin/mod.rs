//! The admin listener: `/healthz` now; metrics, API and web page come later.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Serves the admin routes on `listener` until `shutdown` turns true.
pub fn spawn(listener: TcpListener, mut shutdown: watch::Receiver<bool>) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let app = Router::new().route("/healthz", get(healthz));
    let handle = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Ok((addr, handle))
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}
