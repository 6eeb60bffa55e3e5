//! `/metrics`, `/readyz`, `/healthz` after known traffic, and the Grafana
//! dashboard and alert rules use only metrics that exist. One test per
//! binary: the metrics recorder is global to the process.

mod common;

use std::collections::BTreeSet;

use common::*;
use pecgate::store::MessageState;

fn metric_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_owned())
        .map(|n| n.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count").to_owned())
        .collect()
}

/// Every `pecgate_*` name used in a dashboard or rules file.
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("pecgate_") {
        let start = i + pos;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let name = &text[start..end];
        out.insert(name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count").to_owned());
        i = end;
    }
    out
}

#[tokio::test]
async fn metrics_health_and_dashboards() {
    let env = TestEnv::start_fetching(|_| {}, pecgate::clock::system()).await;
    let admin = env.app().admin_addr;

    // Before any traffic: every series exists at zero.
    let (code, before) = http_get(admin, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(metric_value(&before, "pecgate_smtp_messages_accepted_total{mailbox=\"legal\"}"), Some(0.0), "{before}");
    assert_eq!(metric_value(&before, "pecgate_receipts_total{mailbox=\"legal\",kind=\"avvenuta-consegna\"}"), Some(0.0));
    assert_eq!(metric_value(&before, "pecgate_smtp_messages_rejected_total{reason=\"bcc\"}"), Some(0.0));
    for result in ["success", "failure"] {
        assert_eq!(
            metric_value(&before, &format!("pecgate_smtp_auth_total{{result=\"{result}\"}}")),
            Some(0.0),
            "registered even with AUTH off"
        );
    }
    assert!(before.contains("pecgate_build_info{version=\""));
    assert!(!before.contains('@'), "no e-mail address as a label value");

    // Traffic: one message accepted, one refused (Bcc), receipts fetched.
    let msg = format!("From: {LUCA}\r\nTo: a@pec.x.it\r\nSubject: [PEC] M\r\nMessage-ID: <m1@azienda.it>\r\n\r\nciao\r\n");
    let reply = env.send(LUCA, &["a@pec.x.it"], &msg).await;
    let qid = queue_id(&reply);
    assert!(env.send(LUCA, &["a@pec.x.it", "hidden@x.it"], &msg).await.starts_with("550"));
    env.provider_messages(1).await;
    env.wait_state(&qid, MessageState::Submitted).await;
    env.poll("legal").await;
    env.corporate_messages(2).await;
    // Injections are counted when the corporate server said 250.
    let deadline = tokio::time::Instant::now() + WAIT;
    let after = loop {
        let (_, m) = http_get(admin, "/metrics").await;
        if metric_value(&m, "pecgate_injections_total{result=\"ok\"}") == Some(2.0) {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "injections never counted: {m}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let expect = [
        ("pecgate_smtp_messages_received_total", 2.0),
        ("pecgate_smtp_messages_accepted_total{mailbox=\"legal\"}", 1.0),
        ("pecgate_smtp_messages_rejected_total{reason=\"bcc\"}", 1.0),
        ("pecgate_provider_submitted_total{mailbox=\"legal\"}", 1.0),
        ("pecgate_delivery_attempts_total{destination=\"provider\",mailbox=\"legal\",result=\"2xx\"}", 1.0),
        ("pecgate_receipts_total{mailbox=\"legal\",kind=\"accettazione\"}", 1.0),
        ("pecgate_receipts_total{mailbox=\"legal\",kind=\"avvenuta-consegna\"}", 1.0),
        ("pecgate_receipts_unmatched_total{mailbox=\"legal\"}", 0.0),
        ("pecgate_pop3_messages_fetched_total{mailbox=\"legal\"}", 2.0),
        ("pecgate_recipients{mailbox=\"legal\",state=\"delivered\"}", 1.0),
        ("pecgate_queue_size{destination=\"provider\",mailbox=\"legal\"}", 0.0),
        ("pecgate_mailbox_up{mailbox=\"legal\"}", 1.0),
        ("pecgate_smtp_accept_duration_seconds_count", 2.0),
    ];
    for (series, want) in expect {
        assert_eq!(metric_value(&after, series), Some(want), "{series} in\n{after}");
    }
    assert!(metric_value(&after, "pecgate_pop3_polls_total{mailbox=\"legal\",result=\"ok\"}").unwrap_or(0.0) >= 2.0);
    assert!(metric_value(&after, "pecgate_last_send_timestamp_seconds{mailbox=\"legal\"}").unwrap_or(0.0) > 1.7e9);
    assert!(after.contains("pecgate_receipt_latency_seconds_bucket{mailbox=\"legal\",kind=\"accettazione\""));
    assert!(after.contains("pecgate_provider_submission_duration_seconds_bucket"));
    for password in [LEGAL_PASSWORD, HR_PASSWORD] {
        assert!(!after.contains(password));
    }

    let (code, ready) = http_get(admin, "/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["mailboxes"][0]["id"], "legal");
    assert!(ready["mailboxes"][0]["pop3"]["last_success"].is_i64());
    assert_eq!(http_get(admin, "/healthz").await, (200, "ok\n".to_string()));

    // The dashboard and the alert rules only use metrics that exist.
    let exported = metric_names(&after);
    for file in ["deploy/grafana/pecgate-dashboard.json", "deploy/prometheus/alerts.yml"] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        if file.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        }
        let used = referenced_names(&text);
        assert!(!used.is_empty(), "{file} uses no metric");
        let missing: Vec<&String> = used.difference(&exported).collect();
        assert!(missing.is_empty(), "{file} uses metrics pecgate does not export: {missing:?}");
    }
}

/// Every metric pecgate describes is in the README's table, so an admin
/// building a dashboard finds it there.
#[test]
fn every_metric_is_documented_in_the_readme() {
    let source = include_str!("../src/metrics.rs");
    let readme = include_str!("../README.md");
    let described: Vec<&str> = source
        .split("describe_")
        .skip(1)
        .filter_map(|s| s.split_once("!(\"").and_then(|(_, rest)| rest.split_once('"')).map(|(name, _)| name))
        .collect();
    assert!(described.len() > 30, "the scan found {} metrics; did src/metrics.rs change shape?", described.len());
    let missing: Vec<&&str> = described.iter().filter(|m| !readme.contains(&format!("`{m}`"))).collect();
    assert!(missing.is_empty(), "not in the README metrics table: {missing:?}");
}
