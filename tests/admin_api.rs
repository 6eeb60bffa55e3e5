//! The admin JSON API and web page against the real App with the simulated
//! provider: authentication, list/search/pagination, detail with receipts,
//! byte-for-byte downloads, the evidence zip, queue actions with audit
//! events, the OpenAPI document, security headers, login/session/CSRF.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use pecgate::store::{MessageState, RecipientState};
use serde_json::Value;

const TOKEN: &str = "tok-ADMIN-5be1d7-never-log-me";

const AUTH: (&str, &str) = ("Authorization", "Bearer tok-ADMIN-5be1d7-never-log-me");

async fn api(addr: SocketAddr, path: &str) -> Resp {
    http(addr, "GET", path, &[AUTH], b"").await
}

/// Every item of a list query, following next_cursor.
async fn walk(addr: SocketAddr, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/messages?{query}&cursor={c}"),
            None => format!("/api/v1/messages?{query}"),
        };
        let r = api(addr, &path).await;
        assert_eq!(r.code, 200, "{path}: {}", r.text());
        let v = r.json();
        items.extend(v["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

fn ids(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["id"].as_str().unwrap()).collect()
}

/// Entries of a STORE-only zip, read through the central directory, CRCs checked.
fn unzip(z: &[u8]) -> HashMap<String, Vec<u8>> {
    let u16at = |i: usize| u16::from_le_bytes([z[i], z[i + 1]]) as usize;
    let u32at = |i: usize| u32::from_le_bytes([z[i], z[i + 1], z[i + 2], z[i + 3]]) as usize;
    let end = z.len() - 22;
    assert_eq!(&z[end..end + 4], b"PK\x05\x06");
    let count = u16at(end + 10);
    let mut p = u32at(end + 16);
    let mut out = HashMap::new();
    for _ in 0..count {
        assert_eq!(&z[p..p + 4], b"PK\x01\x02");
        assert_eq!(u16at(p + 10), 0, "STORE method");
        let crc = u32at(p + 16) as u32;
        let size = u32at(p + 20);
        let name_len = u16at(p + 28);
        let extra = u16at(p + 30);
        let comment = u16at(p + 32);
        let local = u32at(p + 42);
        let name = String::from_utf8(z[p + 46..p + 46 + name_len].to_vec()).unwrap();
        assert_eq!(&z[local..local + 4], b"PK\x03\x04");
        let data_at = local + 30 + u16at(local + 26) + u16at(local + 28);
        let data = z[data_at..data_at + size].to_vec();
        assert_eq!(pecgate::admin::api::zip::crc32(&data), crc, "{name}");
        out.insert(name, data);
        p += 46 + name_len + extra + comment;
    }
    out
}

async fn start_with_token() -> TestEnv {
    let tweak = |c: &mut String| {
        *c = c.replace("[admin]\nlisten = \"127.0.0.1:0\"", "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"")
    };
    let mut env = TestEnv::prepare(tweak, pecgate::clock::system(), true).await;
    std::fs::write(env.dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    env.restart().await;
    env
}

/// Sends a PEC message as Luca from mailbox legal; returns its queue id.
async fn send(env: &TestEnv, subject: &str, to: &[&str], n: u32) -> String {
    let msg = crlf(&format!(
        "From: {LUCA}\nTo: {}\nSubject: [PEC] {subject}\nMessage-ID: <admin-{n}@azienda.it>\n\nTesto del messaggio {n}.\n",
        to.join(", ")
    ));
    let reply = env.send(LUCA, to, &msg).await;
    assert!(reply.starts_with("250"), "{reply}");
    queue_id(&reply)
}

/// Polls mailbox legal until every recipient of `ids` is delivered.
async fn wait_delivered(env: &TestEnv, ids: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        env.poll("legal").await;
        let mut all = true;
        for id in ids {
            all &= env.app().store.recipients(id).await.unwrap().iter().all(|r| r.state == RecipientState::Delivered);
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "receipts never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn api_and_page_with_token() {
    let env = start_with_token().await;
    let admin = env.app().admin_addr;

    // 401 without and with a wrong token, JSON error body; health stays open.
    for headers in [vec![], vec![("Authorization", "Bearer wrong")], vec![("Authorization", "Basic dG9rOg==")]] {
        let r = http(admin, "GET", "/api/v1/messages", &headers, b"").await;
        assert_eq!(r.code, 401, "{headers:?}");
        assert_eq!(r.json()["error"], "missing or wrong bearer token");
    }
    assert_eq!(http(admin, "POST", "/api/v1/queue/X/drop", &[], b"").await.code, 401);
    assert_eq!(http(admin, "GET", "/healthz", &[], b"").await.code, 200);

    // Traffic: three messages, receipts fetched.
    let q1 = send(&env, "Contratto alfa", &["a@pec.x.it"], 1).await;
    let q2 = send(&env, "Fattura beta <b>&amp;</b>", &["b@pec.y.it"], 2).await;
    let q3 = send(&env, "Diffida gamma", &["a@pec.x.it", "c@pec.z.it"], 3).await;
    for q in [&q1, &q2, &q3] {
        env.wait_state(q, MessageState::Submitted).await;
    }
    wait_delivered(&env, &[&q1, &q2, &q3]).await;

    // List: sent messages newest first, the cursor walks them all.
    let (out, pages) = walk(admin, "direction=out&limit=2").await;
    assert_eq!(ids(&out), [q3.as_str(), q2.as_str(), q1.as_str()]);
    assert_eq!(pages, 2);
    assert_eq!(out[0]["recipients"], serde_json::json!(["a@pec.x.it", "c@pec.z.it"]));
    assert_eq!(out[0]["mailbox"], "legal");
    assert_eq!(out[0]["from"], LUCA);
    assert_eq!(out[0]["direction"], "out");
    assert_eq!(out[0]["recipient_states"], serde_json::json!(["delivered", "delivered"]));
    assert!(out.iter().all(|i| i["display_state"] == "delivered"), "{out:?}");
    // Fetched records: 1 acceptance per message + 1 delivery receipt per recipient.
    let (inbound, _) = walk(admin, "direction=in&limit=3").await;
    assert_eq!(inbound.len(), 7);
    let kinds: BTreeSet<&str> = inbound.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["accettazione", "avvenuta-consegna"]));
    assert!(inbound.iter().all(|i| [&q1, &q2, &q3].iter().any(|q| i["related_message"] == q.as_str())));
    assert!(inbound.iter().all(|i| i["display_state"] == "received"));
    // Both directions, one order across pages.
    let (all, _) = walk(admin, "limit=4").await;
    assert_eq!(all.len(), 10);
    let keys: Vec<(i64, String)> = all.iter().map(|i| (i["created_at"].as_i64().unwrap(), i["id"].as_str().unwrap().to_owned())).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted, "newest first");
    let (delivered, _) = walk(admin, "direction=out&status=delivered&mailbox=legal").await;
    assert_eq!(delivered.len(), 3);
    assert_eq!(walk(admin, "mailbox=hr").await.0.len(), 0);

    // Search: subject, recipient address, Message-ID; LIKE wildcards are literal.
    assert_eq!(ids(&walk(admin, "direction=out&q=BETA").await.0), [q2.as_str()]);
    assert_eq!(ids(&walk(admin, "direction=out&q=c%40pec.z").await.0), [q3.as_str()]);
    assert_eq!(ids(&walk(admin, "direction=out&q=admin-1%40azienda").await.0), [q1.as_str()]);
    assert_eq!(ids(&walk(admin, "direction=out&q=alfa").await.0), [q1.as_str()]);
    assert_eq!(walk(admin, "q=%25").await.0.len(), 0, "a typed % matches only a %");
    assert_eq!(walk(admin, "q=a_fa").await.0.len(), 0, "a typed _ matches only a _");
    let r = api(admin, "/api/v1/messages?direction=sideways").await;
    assert_eq!((r.code, r.json()["error"].as_str().unwrap().contains("direction")), (400, true));
    assert_eq!(api(admin, "/api/v1/messages?cursor=zzz").await.code, 400);
    let now = pecgate::clock::system().now_ms();
    assert_eq!(walk(admin, &format!("direction=out&since={}", now + 60_000)).await.0.len(), 0);
    assert_eq!(walk(admin, "direction=out&since=2020-01-01&until=2999-01-01T00:00:00Z").await.0.len(), 3);

    // Detail: recipients with their timeline, linked receipts.
    let d = api(admin, &format!("/api/v1/messages/{q3}")).await.json();
    assert_eq!(d["subject"], "Diffida gamma");
    assert_eq!(d["original_sender"], LUCA);
    assert_eq!(d["mail_from"], LEGAL);
    assert_eq!(d["message_id"], "admin-3@azienda.it");
    assert_eq!((d["state"].as_str(), d["display_state"].as_str()), (Some("accepted"), Some("delivered")));
    let rcpts = d["recipients"].as_array().unwrap();
    assert_eq!(rcpts.len(), 2);
    for r in rcpts {
        assert_eq!(r["state"], "delivered");
        let kinds: Vec<&str> = r["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["submitted", "accepted", "delivered"], "{r}");
    }
    let receipts = d["receipts"].as_array().unwrap();
    let mut got: Vec<(String, String)> =
        receipts.iter().map(|r| (r["kind"].as_str().unwrap().to_owned(), r["consegna"].as_str().unwrap_or("").to_owned())).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("accettazione".to_owned(), String::new()),
            ("avvenuta-consegna".to_owned(), "a@pec.x.it".to_owned()),
            ("avvenuta-consegna".to_owned(), "c@pec.z.it".to_owned())
        ]
    );
    assert_eq!(api(admin, "/api/v1/messages/NOPE").await.code, 404);
    let receipt_id = receipts[0]["id"].as_str().unwrap().to_owned();
    let inbound_detail = api(admin, &format!("/api/v1/messages/{receipt_id}")).await.json();
    assert_eq!(
        (inbound_detail["direction"].as_str(), inbound_detail["record"]["related_message"].as_str()),
        (Some("in"), Some(q3.as_str()))
    );
    assert_eq!(inbound_detail["display_state"], "received");

    // Raw downloads are the stored bytes exactly.
    let r = api(admin, &format!("/api/v1/messages/{q1}/raw")).await;
    assert_eq!(r.code, 200);
    assert_eq!(r.header("content-type"), Some("message/rfc822"));
    assert_eq!(r.header("content-disposition"), Some(format!("attachment; filename=\"{q1}.eml\"").as_str()));
    assert_eq!(r.body, env.app().spool.read_message(&q1).await.unwrap());
    let r = api(admin, &format!("/api/v1/receipts/{receipt_id}/raw")).await;
    assert_eq!(r.code, 200);
    assert_eq!(r.body, std::fs::read(env.app().spool.fetched_path(&receipt_id)).unwrap());
    assert_eq!(api(admin, "/api/v1/receipts/..%2Fmsg%2Fx/raw").await.code, 404);
    assert_eq!(api(admin, &format!("/api/v1/receipts/{q1}/raw")).await.code, 404, "a message id is not a receipt id");

    // Evidence zip: the message, every receipt, summaries.
    let r = api(admin, &format!("/api/v1/messages/{q3}/evidence")).await;
    assert_eq!((r.code, r.header("content-type")), (200, Some("application/zip")));
    let files = unzip(&r.body);
    let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let message_name = format!("message-{q3}.eml");
    assert!(names.contains(message_name.as_str()) && names.contains("summary.json") && names.contains("summary.csv"), "{names:?}");
    assert_eq!(names.iter().filter(|n| n.starts_with("receipts/") && n.ends_with(".eml")).count(), 3, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("receipts/01-accettazione-") || n.starts_with("receipts/01-avvenuta-consegna-")));
    assert_eq!(files[&message_name], env.app().spool.read_message(&q3).await.unwrap());
    for r in receipts {
        let id = r["id"].as_str().unwrap();
        let (_, bytes) = files.iter().find(|(n, _)| n.ends_with(&format!("-{id}.eml"))).unwrap();
        assert_eq!(bytes, &std::fs::read(env.app().spool.fetched_path(id)).unwrap());
    }
    let summary: Value = serde_json::from_slice(&files["summary.json"]).unwrap();
    assert_eq!(summary["recipients"].as_array().unwrap().len(), 2);
    // Signature verdicts and the signer certificates are part of the evidence.
    assert!(
        summary["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["signature"] == "valid-untrusted-signer" && r["signer"].as_str().is_some()),
        "{summary}"
    );
    let pems: Vec<&String> = files.keys().filter(|n| n.ends_with(".signer.pem")).collect();
    assert_eq!(pems.len(), 3, "{names:?}");
    for p in pems {
        assert!(String::from_utf8_lossy(&files[p]).starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
    let csv = String::from_utf8(files["summary.csv"].clone()).unwrap();
    assert!(csv.starts_with("record,id,recipient,state_or_kind,time_utc,detail\r\n"), "{csv}");
    assert!(csv.contains(&format!("recipient,{q3},c@pec.z.it,delivered,")), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.starts_with("receipt,")).count(), 3);

    // Mailbox health.
    let m = api(admin, "/api/v1/mailboxes").await.json();
    let legal = m["items"].as_array().unwrap().iter().find(|i| i["id"] == "legal").unwrap().clone();
    assert_eq!((legal["address"].as_str(), legal["active"].as_bool()), (Some(LEGAL), Some(true)));
    assert!(legal["last_success"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(legal["last_send"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!((legal["queue_size"].as_i64(), legal["pending_receipts"].as_i64()), (Some(0), Some(0)));
    assert!(legal["last_error"].is_null());
    let old = m["items"].as_array().unwrap().iter().find(|i| i["id"] == "old").unwrap().clone();
    assert_eq!((old["active"].as_bool(), old["last_poll"].is_null()), (Some(false), true));

    // Who holds which right of each mailbox, and where it comes from.
    let d = api(admin, "/api/v1/directory").await.json();
    assert_eq!((d["directory"]["kind"].as_str(), d["directory"]["up"].as_bool()), (Some("static"), Some(true)), "{d}");
    let legal = d["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == "legal").unwrap().clone();
    let user = |a: &str| legal["users"].as_array().unwrap().iter().find(|u| u["address"] == a).unwrap().clone();
    let config = serde_json::json!({"from": "config"});
    assert_eq!(
        user(MARIO)["sources"],
        serde_json::json!([["send", config], ["receive", config], ["anomalies", config], ["admin", config]]),
        "{legal}"
    );
    assert_eq!(user(ANNA)["rights"]["send"], false);
    assert!(!user(ANNA)["sources"].as_array().unwrap().iter().any(|s| s[0] == "send"), "{legal}");

    // Cluster: one SQLite instance, alive, polling both mailboxes; events name it.
    let me = env.config().cluster.instance_id;
    let c = api(admin, "/api/v1/cluster").await.json();
    assert_eq!((c["instance"].as_str(), c["shared"].as_bool()), (Some(me.as_str()), Some(false)));
    let instances = c["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(
        (instances[0]["id"].as_str(), instances[0]["status"].as_str(), instances[0]["this"].as_bool()),
        (Some(me.as_str()), Some("alive"), Some(true))
    );
    assert_eq!(instances[0]["smtp"], env.app().smtp_addr.to_string());
    assert_eq!(instances[0]["leases"], serde_json::json!(["pop3:hr", "pop3:legal"]));
    let d = api(admin, &format!("/api/v1/messages/{q1}")).await.json();
    assert!(d["events"].as_array().unwrap().iter().all(|e| e["instance"] == me.as_str()), "{d}");

    // Queue actions: 200 and an audit event, 409 when not waiting, 404 when unknown.
    waiting_message(&env, "WAITRETRY0000001").await;
    waiting_message(&env, "WAITDROP00000001").await;
    assert_eq!(api(admin, "/api/v1/messages/WAITDROP00000001").await.json()["display_state"], "queued");
    let r = http(admin, "POST", "/api/v1/queue/WAITRETRY0000001/retry", &[AUTH], b"").await;
    assert_eq!(r.code, 200, "{}", r.text());
    env.wait_state("WAITRETRY0000001", MessageState::Submitted).await;
    let events = env.app().store.events("WAITRETRY0000001").await.unwrap();
    assert!(events.iter().any(|e| e.kind == "retry" && e.detail == "retry requested by admin token"), "{events:?}");
    assert_eq!(http(admin, "POST", "/api/v1/queue/WAITRETRY0000001/retry", &[AUTH], b"").await.code, 409);
    let r = http(admin, "POST", "/api/v1/queue/WAITDROP00000001/drop", &[AUTH], b"").await;
    assert_eq!((r.code, r.json()["state"].as_str()), (200, Some("failed")));
    let events = env.app().store.events("WAITDROP00000001").await.unwrap();
    assert!(events.iter().any(|e| e.kind == "dropped" && e.detail == "dropped by admin token"), "{events:?}");
    assert_eq!(api(admin, "/api/v1/messages/WAITDROP00000001").await.json()["display_state"], "error");
    let r = http(admin, "POST", "/api/v1/queue/WAITDROP00000001/drop", &[AUTH], b"").await;
    assert_eq!(r.code, 409);
    assert!(r.json()["error"].as_str().unwrap().contains("not waiting"));
    assert_eq!(http(admin, "POST", "/api/v1/queue/UNKNOWN/retry", &[AUTH], b"").await.code, 404);
    assert_eq!(http(admin, "POST", "/api/v1/queue/UNKNOWN/drop", &[AUTH], b"").await.code, 404);
    assert_eq!(http(admin, "GET", "/api/v1/queue/UNKNOWN/drop", &[AUTH], b"").await.code, 405);

    // OpenAPI: exactly the router's routes, and every route answers (no fallback 404).
    let doc = api(admin, "/api/v1/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
        .collect();
    let routed: BTreeSet<(String, String)> = pecgate::admin::api::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, routed);
    for (method, path) in pecgate::admin::api::ROUTES {
        let path = path.replace("{id}", &q1);
        let r = http(admin, &method.to_uppercase(), &path, &[AUTH], b"").await;
        assert_ne!(r.json_or_null()["error"], "route not found", "{method} {path}");
        assert!(r.code != 405, "{method} {path}");
    }
    assert_eq!(api(admin, "/api/v1/nothing").await.code, 404);

    // Security headers on every response.
    for path in ["/healthz", "/api/v1/messages", "/login", "/assets/app.css", "/"] {
        let r = api(admin, path).await;
        assert_eq!(
            r.header("content-security-policy"),
            Some(
                "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "{path}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    }

    // Page: login, session cookie, CSRF.
    let r = http(admin, "GET", "/", &[], b"").await;
    assert_eq!((r.code, r.header("location")), (303, Some("/login")));
    let r = http(admin, "GET", "/login", &[], b"").await;
    assert!(r.code == 200 && r.text().contains("<label for=\"token\">Token di amministrazione</label>"), "{}", r.text());
    assert!(!r.text().contains(TOKEN));
    // The page's own forms: a browser sends Origin (Referrer-Policy same-origin keeps it).
    let origin = format!("http://{admin}");
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", origin.as_str())];
    let r = http(admin, "POST", "/login", &form, b"token=wrong").await;
    assert_eq!(r.code, 401);
    assert!(r.header("set-cookie").is_none());
    let r = http(admin, "POST", "/login", &form, format!("token={TOKEN}").as_bytes()).await;
    assert_eq!((r.code, r.header("location")), (303, Some("/")));
    let set_cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = [("Cookie", cookie.as_str())];
    let page = http(admin, "GET", "/", &with_cookie, b"").await;
    assert_eq!(page.code, 200);
    let html = page.text();
    assert!(html.contains("Fattura beta &lt;b&gt;&amp;amp;&lt;/b&gt;"), "subjects are escaped");
    assert!(!html.contains("<b>&amp;</b>"));
    assert!(html.contains("<html lang=\"it\">") && html.contains("consegnato"));
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    let detail = http(admin, "GET", &format!("/messages/{q3}"), &with_cookie, b"").await.text();
    assert!(detail.contains("c@pec.z.it") && detail.contains("consegnato") && detail.contains("accettazione"));
    assert!(detail.contains("<dt>Stato</dt><dd><span class=\"badge good\">consegnato</span></dd>"), "display state: {detail}");
    let list = http(admin, "GET", "/?direction=out", &with_cookie, b"").await.text();
    assert_eq!(list.matches("<span class=\"badge good\">consegnato</span>").count(), 3, "{list}");
    assert!(detail.contains(&format!("/api/v1/receipts/{receipt_id}/raw")));
    let english = http(admin, "GET", &format!("/messages/{q3}?lang=en"), &with_cookie, b"").await.text();
    assert!(english.contains("<html lang=\"en\">") && english.contains(">delivered<"));
    // The session downloads through the API (GET only).
    let r = http(admin, "GET", &format!("/api/v1/messages/{q1}/raw"), &with_cookie, b"").await;
    assert_eq!(r.code, 200);
    assert_eq!(http(admin, "POST", "/api/v1/queue/WAITDROP00000001/retry", &with_cookie, b"").await.code, 401);
    let page = http(admin, "GET", "/mailboxes?lang=en", &with_cookie, b"").await.text();
    assert!(page.contains(LEGAL) && page.contains("pecgate instances") && page.contains("pop3:legal"), "{page}");
    assert!(
        page.contains("Users and rights")
            && page.contains(&format!("<td>legal</td><td>{ANNA}</td><td>receive</td><td>configuration file</td>")),
        "{page}"
    );

    // CSRF: a POST without (or with a wrong) token is refused and changes nothing.
    waiting_message(&env, "WAITPAGE00000001").await;
    let queue = http(admin, "GET", "/queue?lang=it", &with_cookie, b"").await.text();
    assert!(queue.contains("WAITPAGE00000001") && queue.contains("Riprova ora"), "{queue}");
    let csrf = queue.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let form_cookie = [("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", cookie.as_str()), ("Origin", origin.as_str())];
    for body in ["", "csrf=nope"] {
        let r = http(admin, "POST", "/queue/WAITPAGE00000001/drop", &form_cookie, body.as_bytes()).await;
        assert_eq!(r.code, 403, "{body:?}");
    }
    let r = http(admin, "POST", "/queue/WAITPAGE00000001/drop", &form, format!("csrf={csrf}").as_bytes()).await;
    assert_eq!(r.code, 403, "no session cookie");
    assert_eq!(env.app().store.message("WAITPAGE00000001").await.unwrap().unwrap().state, MessageState::Queued);
    let r = http(admin, "POST", "/queue/WAITPAGE00000001/drop", &form_cookie, format!("csrf={csrf}").as_bytes()).await;
    assert_eq!((r.code, r.header("location")), (303, Some("/queue?done=dropped")));
    let events = env.app().store.events("WAITPAGE00000001").await.unwrap();
    assert!(events.iter().any(|e| e.kind == "dropped" && e.detail == "dropped by admin page"), "{events:?}");

    // Logout ends the session.
    let r = http(admin, "POST", "/logout", &form_cookie, format!("csrf={csrf}").as_bytes()).await;
    assert_eq!(r.code, 303);
    assert_eq!(http(admin, "GET", "/", &with_cookie, b"").await.code, 303);
}

/// No token: loopback only, API without a bearer, page without login.
#[tokio::test]
async fn open_on_loopback_without_token() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let admin = env.app().admin_addr;
    assert_eq!(http(admin, "GET", "/api/v1/mailboxes", &[], b"").await.code, 200);
    let r = http(admin, "GET", "/", &[], b"").await;
    assert_eq!(r.code, 200);
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    assert_eq!(http(admin, "GET", "/login", &[], b"").await.header("location"), Some("/"));
}

/// List latency on a 10,000-message store (rows written straight to SQLite,
/// in one transaction, before the gateway starts).
#[tokio::test]
async fn list_latency_on_10k_messages() {
    let mut env = TestEnv::prepare(|_| {}, pecgate::clock::system(), false).await;
    let db = env.dir.path().join("pecgate.db");
    drop(pecgate::store::sql::SqlStore::open_sqlite(&db, "test").await.unwrap());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let base = 1_750_000_000_000i64;
    for n in 0..10_000i64 {
        let id = format!("{:011X}{:06}", base + n * 1000, n);
        sqlx::query(
            "INSERT INTO messages (id, kind, route, mailbox_id, mail_from, original_sender, message_id, subject, size, state, attempts, created_at, next_attempt_at, updated_at)
             VALUES (?, 'pec', 'provider', ?, ?, ?, ?, ?, 2048, 'accepted', 1, ?, ?, ?)",
        )
        .bind(&id)
        .bind(if n % 2 == 0 { "legal" } else { "hr" })
        .bind(LEGAL)
        .bind(LUCA)
        .bind(format!("<bulk-{n}@azienda.it>"))
        .bind(format!("Pratica numero {n}"))
        .bind(base + n * 1000)
        .bind(base + n * 1000)
        .bind(base + n * 1000)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO recipients (message_id, address, state, updated_at) VALUES (?, ?, 'delivered', ?)")
            .bind(&id)
            .bind(format!("dest{n}@pec.example.it"))
            .bind(base + n * 1000)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
    env.restart().await;
    let admin = env.app().admin_addr;
    let mut report = Vec::new();
    for (name, path) in [
        ("first page (50)", "/api/v1/messages"),
        ("page 100 deep (cursor)", ""),
        ("filter mailbox+status", "/api/v1/messages?mailbox=hr&status=delivered&direction=out"),
        ("search subject (LIKE scan)", "/api/v1/messages?q=numero%209999"),
        ("search recipient", "/api/v1/messages?q=dest4321%40pec"),
        ("detail", "/api/v1/messages/{first}"),
        ("page /", "/"),
    ] {
        let path = if path.is_empty() {
            format!("/api/v1/messages?cursor={}", pecgate::admin::api::encode_cursor(base + 5000 * 1000, "Z"))
        } else {
            path.replace("{first}", &format!("{:011X}{:06}", base, 0))
        };
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = http(admin, "GET", &path, &[], b"").await;
            times.push(t.elapsed());
            assert_eq!(r.code, 200, "{path}: {}", r.text());
        }
        times.sort();
        report.push(format!("{name}: median {:.1} ms", times[2].as_secs_f64() * 1000.0));
        assert!(times[2] < Duration::from_secs(2), "{name} took {:?}", times[2]);
    }
    let r = http(admin, "GET", "/api/v1/messages?q=numero%209999", &[], b"").await.json();
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let r = http(admin, "GET", "/api/v1/messages?limit=500", &[], b"").await.json();
    assert_eq!(r["items"][0]["subject"], "Pratica numero 9999");
    println!("admin API on 10,000 messages: {}", report.join("; "));
}
