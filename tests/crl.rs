//! The CRL cache: fetched over HTTP from 127.0.0.1, kept on disk and read
//! back at start, errors bounded and named; the offline directory mode.

use std::sync::Arc;
use std::time::Duration;

use pecgate::crl::{CrlCache, Error, Mode};
use pecgate::pec::signature::CrlSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `status` + `body` to every connection; returns the base URL.
async fn serve(status: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(req.starts_with(b"GET /ca.crl HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&req));
                let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

fn online(dir: &std::path::Path, secs: u64) -> Arc<CrlCache> {
    CrlCache::open(Mode::Online { cache_dir: dir.join("crl"), timeout: Duration::from_secs(secs) }).unwrap()
}

#[tokio::test]
async fn a_fetched_crl_is_kept_on_disk_and_read_back_at_start() {
    let body = b"\x30\x82 pretend CRL bytes \x00\xff".to_vec();
    let url = format!("{}/ca.crl", serve("200 OK", body.clone()).await);
    let dir = tempfile::tempdir().unwrap();
    let cache = online(dir.path(), 5);
    assert!(cache.crls(&url).is_empty());
    cache.refresh(&url).await.unwrap();
    assert_eq!(cache.crls(&url).iter().map(|c| c.to_vec()).collect::<Vec<_>>(), std::slice::from_ref(&body));
    assert!(cache.crls("http://other.example/crl").is_empty(), "keyed by URL");
    // A new process finds it without the network.
    let again = online(dir.path(), 5);
    assert_eq!(again.crls(&url).iter().map(|c| c.to_vec()).collect::<Vec<_>>(), [body]);
}

#[tokio::test]
async fn want_fetches_in_the_background() {
    let url = format!("{}/ca.crl", serve("200 OK", b"crl".to_vec()).await);
    let dir = tempfile::tempdir().unwrap();
    let cache = online(dir.path(), 5);
    cache.want(std::slice::from_ref(&url));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.crls(&url).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never fetched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn errors_are_bounded_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cache = online(dir.path(), 1);
    let missing = format!("{}/ca.crl", serve("404 Not Found", b"no".to_vec()).await);
    assert!(matches!(cache.refresh(&missing).await, Err(Error::Status(_, 404))));
    assert!(matches!(cache.refresh("ldap://ca.example/cn=CRL").await, Err(Error::Scheme(_))));
    // Nobody listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    assert!(matches!(cache.refresh(&format!("http://127.0.0.1:{port}/ca.crl")).await, Err(Error::Connect(..))));
    // A server that accepts and never answers: the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ca.crl", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let err = cache.refresh(&url).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_, 1)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains(&url), "the error names the URL: {err}");
    assert!(cache.is_empty(), "nothing kept from a failed fetch");
    drop(silent);
}

#[tokio::test]
async fn the_offline_directory_answers_for_every_url() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agid.crl"), b"one").unwrap();
    std::fs::write(dir.path().join("other.pem"), b"two").unwrap();
    let cache = CrlCache::open(Mode::Offline { dir: dir.path().to_path_buf() }).unwrap();
    let mut got: Vec<Vec<u8>> = cache.crls("http://ca1.agid.gov.it/CRL").iter().map(|c| c.to_vec()).collect();
    got.sort();
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    // Offline means offline: want() fetches nothing.
    cache.want(&["http://127.0.0.1:9/x".to_string()]);
    assert_eq!(cache.len(), 2);
}
