//! HTTP to the admin listener: a small HTTP/1.1 client that shows status,
//! headers and body exactly, and a queue entry that waits for an operator.

use std::net::SocketAddr;

use pecgate::store::{MessageKind, NewMessage, Route};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MARIO, TestEnv, WAIT, crlf};

pub struct Resp {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json_or_null(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection (Connection: close). `Host`
/// is the listener's address unless `headers` has one (an empty one: none sent).
pub async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers.iter().filter(|(k, v)| !(k.eq_ignore_ascii_case("host") && v.is_empty())) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.unwrap().unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let code = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut body = buf[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Resp { code, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// A corporate-bound message not due for a day, so it waits in the queue until retried.
pub async fn waiting_message(env: &TestEnv, id: &str) {
    let bytes = crlf(&format!("From: pecgate@azienda.it\nTo: {MARIO}\nSubject: waiting {id}\n\nciao\n"));
    env.app().spool.store_bytes(id, bytes.as_bytes()).await.unwrap();
    let future = pecgate::clock::system().now_ms() + 24 * 3600 * 1000;
    env.app()
        .store
        .insert_message(&NewMessage {
            id: id.into(),
            kind: MessageKind::Notice,
            route: Route::Corporate,
            mail_from: "pecgate@azienda.it".into(),
            rcpts: vec![MARIO.into()],
            original_sender: "pecgate@azienda.it".into(),
            message_id: format!("<{id}@pecgate.test>"),
            subject: format!("waiting {id}"),
            size: bytes.len() as u64,
            created_at: future,
            origin: "test".into(),
        })
        .await
        .unwrap();
}
