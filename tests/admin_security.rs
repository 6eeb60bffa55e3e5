//! The admin listener against the attacks an outside test run found: a page
//! on another site posting to the API (CSRF), DNS rebinding (a foreign
//! `Host`), forms without their origin, and token guessing.

mod common;

use std::sync::Arc;

use common::http::*;
use common::*;
use pecgate::admin::guard::READ_ONLY;
use pecgate::clock::{Clock, ManualClock};
use pecgate::store::MessageState;
use serde_json::json;

const TOKEN: &str = "tok-SEC-93ab4e-never-log-me";
const AUTH: (&str, &str) = ("Authorization", "Bearer tok-SEC-93ab4e-never-log-me");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

type Headers<'a> = Vec<(&'a str, &'a str)>;

fn admin_section(extra: &str) -> impl FnOnce(&mut String) {
    let extra = extra.to_owned();
    move |c: &mut String| *c = c.replace("[admin]\nlisten = \"127.0.0.1:0\"", &format!("[admin]\nlisten = \"127.0.0.1:0\"\n{extra}"))
}

async fn start_with_token(clock: Arc<dyn Clock>) -> TestEnv {
    let mut env = TestEnv::prepare(admin_section("token_file = \"admin.token\""), clock, false).await;
    write_secret(&env.dir.path().join("admin.token"), &format!("{TOKEN}\n"));
    env.restart().await;
    env
}

async fn state_of(env: &TestEnv, id: &str) -> MessageState {
    env.app().store.message(id).await.unwrap().unwrap().state
}

/// The session cookie (`name=value`) a response sets.
fn cookie_of(r: &Resp) -> String {
    let set = r.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie: {}", r.text()));
    set.split(';').next().unwrap().to_owned()
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("a CSRF field").to_owned()
}

async fn metric(admin: std::net::SocketAddr, series: &str) -> f64 {
    let r = http(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.code, 200);
    metric_value(&r.text(), series).unwrap_or_else(|| panic!("{series} not exported"))
}

/// Without a token: every state-changing request is 403 (the reported
/// attack: a cross-origin text/plain POST dropped a queued message), reads
/// work as before, and the page offers no actions.
#[tokio::test]
async fn without_a_token_the_listener_is_read_only() {
    let env = TestEnv::start().await;
    let admin = env.app().admin_addr;
    let id = "WAITOPEN00000001";
    waiting_message(&env, id).await;

    let attack = [("Content-Type", "text/plain"), ("Origin", "http://evil.example")];
    for (method, path) in [
        ("POST", format!("/api/v1/queue/{id}/drop")),
        ("POST", format!("/api/v1/queue/{id}/retry")),
        ("PUT", format!("/api/v1/queue/{id}/drop")),
        ("DELETE", format!("/api/v1/messages/{id}")),
    ] {
        let r = http(admin, method, &path, &attack, b"drop=1").await;
        assert_eq!((r.code, r.json()), (403, json!({ "error": READ_ONLY })), "{method} {path}");
    }
    assert!(READ_ONLY.contains("[admin] token_file"));

    // The page: a session without login, reads, but no forms.
    let r = http(admin, "GET", "/queue", &[], b"").await;
    assert_eq!(r.code, 200);
    let cookie = cookie_of(&r);
    let html = r.text();
    assert!(html.contains(id), "{html}");
    assert!(html.contains("Sola lettura: senza [admin] token_file"), "{html}");
    assert!(!html.contains("method=\"post\""), "no retry, drop or logout forms: {html}");
    // Even a same-origin form with the session is refused.
    let origin = format!("http://{admin}");
    let same = [FORM, ("Origin", origin.as_str()), ("Cookie", cookie.as_str())];
    for path in [format!("/queue/{id}/drop"), format!("/queue/{id}/retry"), "/logout".into(), "/login".into()] {
        let r = http(admin, "POST", &path, &same, b"csrf=x&token=x").await;
        assert_eq!(r.code, 403, "{path}");
        assert!(r.text().contains(READ_ONLY), "{path}: {}", r.text());
    }

    // Nothing changed, as the store and the API tell.
    assert_eq!(state_of(&env, id).await, MessageState::Queued);
    assert!(env.app().store.events(id).await.unwrap().iter().all(|e| e.kind != "dropped" && e.kind != "retry"));
    let r = http(admin, "GET", &format!("/api/v1/messages/{id}"), &[], b"").await;
    assert_eq!((r.code, r.json()["state"].as_str()), (200, Some("queued")));
    assert_eq!(http(admin, "GET", "/api/v1/mailboxes", &[], b"").await.code, 200);
}

/// DNS rebinding: a `Host` that is not this listener gets 421 everywhere but
/// /healthz; the listener's own names and `[admin] allowed_hosts` pass.
#[tokio::test]
async fn host_must_name_the_listener() {
    let mut env = TestEnv::start_with(admin_section("allowed_hosts = [\"pecgate.corp.it\", \"proxy.corp.it:8443\"]")).await;
    let admin = env.app().admin_addr;
    let port = admin.port();

    let evil = format!("evil.example:{port}");
    let r = http(admin, "GET", "/api/v1/messages", &[("Host", evil.as_str())], b"").await;
    assert_eq!(r.code, 421);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        format!(
            "421 Misdirected Request: Host \"evil.example:{port}\" does not name this admin listener; allowed: localhost:{port}, 127.0.0.1:{port}, pecgate.corp.it, proxy.corp.it:8443 (add other names to [admin] allowed_hosts)\n"
        )
    );
    assert!(r.header("content-security-policy").is_some(), "security headers on refusals too");

    let wrong_port = format!("127.0.0.1:{}", port.wrapping_add(1).max(1));
    for host in [evil.as_str(), "evil.example", "proxy.corp.it", "proxy.corp.it:8080", wrong_port.as_str(), "localhost", ""] {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/api/v1/messages"),
            ("GET", "/metrics"),
            ("GET", "/readyz"),
            ("GET", "/login"),
            ("GET", "/assets/app.js"),
            ("GET", "/nothing"),
            ("POST", "/api/v1/queue/X/drop"),
        ] {
            let r = http(admin, method, path, &[("Host", host)], b"").await;
            assert_eq!(r.code, 421, "{method} {path} with Host {host:?}: {}", r.text());
        }
    }
    let r = http(admin, "GET", "/healthz", &[("Host", evil.as_str())], b"").await;
    assert_eq!((r.code, r.text().as_str()), (200, "ok\n"), "load balancers probe with any name");

    let own = [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("LocalHost:{port}")];
    let named = ["pecgate.corp.it", "pecgate.corp.it:8080", "PECGATE.corp.it.", "proxy.corp.it:8443"];
    for host in own.iter().map(String::as_str).chain(named) {
        let r = http(admin, "GET", "/api/v1/mailboxes", &[("Host", host)], b"").await;
        assert_eq!(r.code, 200, "Host {host:?}: {}", r.text());
    }

    // A reload changes the names at once.
    let text =
        env.config_text.replace("allowed_hosts = [\"pecgate.corp.it\", \"proxy.corp.it:8443\"]", "allowed_hosts = [\"new.corp.it\"]");
    env.reload_with(&text).await.unwrap();
    assert_eq!(http(admin, "GET", "/api/v1/mailboxes", &[("Host", "new.corp.it")], b"").await.code, 200);
    assert_eq!(http(admin, "GET", "/api/v1/mailboxes", &[("Host", "pecgate.corp.it")], b"").await.code, 421);
}

/// With a token: the API changes state only with the bearer (a cross-site
/// request cannot send one); a page form needs its session, its CSRF token,
/// an origin of this listener and a form body.
#[tokio::test]
async fn state_changes_need_the_bearer_or_a_same_origin_form() {
    let env = start_with_token(pecgate::clock::system()).await;
    let admin = env.app().admin_addr;
    let origin = format!("http://{admin}");
    waiting_message(&env, "WAITSEC000000001").await;
    waiting_message(&env, "WAITSEC000000002").await;

    // The reported attack, now with a token configured: 401, nothing dropped.
    let attack = [("Content-Type", "text/plain"), ("Origin", "http://evil.example")];
    let r = http(admin, "POST", "/api/v1/queue/WAITSEC000000001/drop", &attack, b"x").await;
    assert_eq!((r.code, r.json()), (401, json!({ "error": "missing or wrong bearer token" })));
    assert_eq!(state_of(&env, "WAITSEC000000001").await, MessageState::Queued);

    // Log in (a same-origin form), then try the API with the cookie alone.
    let login = http(admin, "POST", "/login", &[FORM, ("Origin", origin.as_str())], format!("token={TOKEN}").as_bytes()).await;
    assert_eq!((login.code, login.header("location")), (303, Some("/")));
    let cookie = cookie_of(&login);
    let r = http(admin, "POST", "/api/v1/queue/WAITSEC000000001/drop", &[("Cookie", cookie.as_str())], b"").await;
    assert_eq!(r.code, 401, "a cookie rides along on a cross-site request; the API wants the bearer");
    assert_eq!(state_of(&env, "WAITSEC000000001").await, MessageState::Queued);

    // The bearer works, whatever the body type.
    let r = http(admin, "POST", "/api/v1/queue/WAITSEC000000001/drop", &[AUTH, ("Content-Type", "text/plain")], b"x").await;
    assert_eq!((r.code, r.json()), (200, json!({ "id": "WAITSEC000000001", "state": "failed" })));
    assert_eq!(state_of(&env, "WAITSEC000000001").await, MessageState::Failed);

    // Page form: session + CSRF are not enough without this listener's origin.
    let queue = http(admin, "GET", "/queue", &[("Cookie", cookie.as_str())], b"").await;
    assert_eq!(queue.code, 200);
    let csrf = csrf_of(&queue.text());
    let body = format!("csrf={csrf}");
    let path = "/queue/WAITSEC000000002/drop";
    let c = ("Cookie", cookie.as_str());
    let cases: [(Headers, u16, &str); 6] = [
        (vec![FORM, c], 403, "no Origin, Sec-Fetch-Site or Referer header"),
        (vec![FORM, c, ("Origin", "http://evil.example")], 403, "Origin is another site"),
        (vec![FORM, c, ("Origin", "null")], 403, "Origin is another site"),
        (vec![FORM, c, ("Sec-Fetch-Site", "cross-site")], 403, "Sec-Fetch-Site is not same-origin"),
        (vec![FORM, c, ("Referer", "http://evil.example/x")], 403, "Referer is another site"),
        (
            vec![("Content-Type", "text/plain"), c, ("Origin", origin.as_str())],
            415,
            "a page form is sent as application/x-www-form-urlencoded",
        ),
    ];
    for (headers, code, why) in cases {
        let r = http(admin, "POST", path, &headers, body.as_bytes()).await;
        assert_eq!(r.code, code, "{headers:?}: {}", r.text());
        assert!(r.text().contains(why), "{headers:?}: {}", r.text());
    }
    // Same origin, without the CSRF token.
    let r = http(admin, "POST", path, &[FORM, c, ("Origin", origin.as_str())], b"csrf=nope").await;
    assert_eq!(r.code, 403);
    assert_eq!(state_of(&env, "WAITSEC000000002").await, MessageState::Queued);
    // A cross-site login form is refused too (no logging a browser in from elsewhere).
    let r = http(admin, "POST", "/login", &[FORM, ("Origin", "http://evil.example")], format!("token={TOKEN}").as_bytes()).await;
    assert_eq!(r.code, 403);
    // No GET changes anything.
    assert_eq!(http(admin, "GET", path, &[c], b"").await.code, 405);
    assert_eq!(state_of(&env, "WAITSEC000000002").await, MessageState::Queued);

    // All present and agreeing (Sec-Fetch-Site alone also vouches).
    let r = http(admin, "POST", path, &[FORM, c, ("Sec-Fetch-Site", "same-origin")], body.as_bytes()).await;
    assert_eq!((r.code, r.header("location")), (303, Some("/queue?done=dropped")), "{}", r.text());
    assert_eq!(state_of(&env, "WAITSEC000000002").await, MessageState::Failed);
}

/// Ten wrong tokens a minute per client (login and bearer together), then
/// 429 with Retry-After, even for the right token; a sliding window on the
/// app's clock, so the test moves time instead of sleeping.
#[tokio::test]
async fn wrong_tokens_are_limited_per_client() {
    let clock = ManualClock::new(1_800_000_000_000);
    let env = start_with_token(clock.clone()).await;
    let admin = env.app().admin_addr;
    let origin = format!("http://{admin}");
    let login = [FORM, ("Origin", origin.as_str())];
    let logins = "pecgate_admin_auth_failures_total{via=\"login\"}";
    let bearers = "pecgate_admin_auth_failures_total{via=\"bearer\"}";
    let (login0, bearer0) = (metric(admin, logins).await, metric(admin, bearers).await);

    for n in 0..10 {
        let r = http(admin, "POST", "/login", &login, format!("token=guess-{n}").as_bytes()).await;
        assert_eq!(r.code, 401, "attempt {n}");
    }
    let r = http(admin, "POST", "/login", &login, b"token=guess-10").await;
    assert_eq!((r.code, r.header("retry-after")), (429, Some("60")));
    assert!(r.text().contains("Troppi tentativi con un token errato da questo indirizzo: riprova tra 60 s."), "{}", r.text());
    let r = http(admin, "POST", "/login", &login, format!("token={TOKEN}").as_bytes()).await;
    assert_eq!(r.code, 429, "the right token waits too");
    assert!(r.header("set-cookie").is_none());
    let r = http(admin, "GET", "/api/v1/messages", &[AUTH], b"").await;
    assert_eq!((r.code, r.header("retry-after")), (429, Some("60")), "login and bearer share the count");
    assert_eq!(r.json(), json!({ "error": "too many wrong tokens from this address; retry in 60 s" }));
    assert_eq!(metric(admin, logins).await - login0, 10.0, "refused attempts are not compared, so not counted");

    clock.advance(30_000);
    assert_eq!(http(admin, "GET", "/api/v1/messages", &[AUTH], b"").await.header("retry-after"), Some("30"));
    clock.advance(30_000);
    assert_eq!(http(admin, "GET", "/api/v1/messages", &[AUTH], b"").await.code, 200, "a minute later");

    // No token at all is not a guess.
    for _ in 0..15 {
        assert_eq!(http(admin, "GET", "/api/v1/messages", &[], b"").await.code, 401);
    }
    for n in 0..10 {
        let wrong = format!("Bearer guess-{n}");
        assert_eq!(http(admin, "GET", "/api/v1/messages", &[("Authorization", wrong.as_str())], b"").await.code, 401, "attempt {n}");
    }
    let r = http(admin, "POST", "/api/v1/queue/X/retry", &[("Authorization", "Bearer guess-10")], b"").await;
    assert_eq!((r.code, r.header("retry-after")), (429, Some("60")));
    assert_eq!(metric(admin, bearers).await - bearer0, 10.0);
    assert_eq!(metric(admin, logins).await - login0, 10.0);
}
