//! The `pecgate` binary: check-config contract (exit codes, masked secrets, named keys).

use std::process::Command;

fn pecgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pecgate"))
}

fn write_config(dir: &std::path::Path, extra_user: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("pw"), "cli-secret-DO-NOT-PRINT\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join("pecgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[mailbox]]
id = "legal"
address = "legal@pec.corp.it"
username = "legal@pec.corp.it"
password_file = "pw"
[mailbox.smtp]
host = "smtps.pec.example.it"
[[mailbox.user]]
address = "mario@corp.it"
admin = true
{extra_user}
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_config_prints_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = pecgate().args(["check-config", "--config"]).arg(&path).env_remove("PECGATE_CONFIG").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\"address\": \"legal@pec.corp.it\""), "{stdout}");
    assert!(stderr.contains("OK (1 mailbox(es)"), "{stderr}");
    assert!(!stdout.contains("cli-secret") && !stderr.contains("cli-secret"));
}

#[test]
fn check_config_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[[mailbox.user]]\naddress = \"anna@corp.it\"\nadmin = true\n");
    let out = pecgate().args(["check-config", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mailbox[0].user (legal): 2 users have admin = true"), "{stderr}");

    let out = pecgate().args(["check-config", "--config"]).arg(dir.path().join("missing.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file"));
}

#[test]
fn environment_overrides_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = pecgate().args(["check-config", "--config"]).arg(&path).env("PECGATE_SMTP__LISTEN", "not-an-address").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.listen: \"not-an-address\""));
}

#[test]
fn classify_json_contract_and_unreadable_files() {
    use pecgate::pec::{BuildParams, Kind, build_message};
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("acc.eml");
    let cons = dir.path().join("cons.eml");
    let plain = dir.path().join("plain.eml");
    std::fs::write(&acc, build_message(&BuildParams::sample(Kind::Accettazione))).unwrap();
    std::fs::write(&cons, build_message(&BuildParams::sample(Kind::AvvenutaConsegna))).unwrap();
    std::fs::write(&plain, "From: a@b.it\r\nSubject: ciao\r\n\r\nhi\r\n").unwrap();
    let missing = dir.path().join("missing.eml");
    let out = pecgate().arg("classify").arg("--json").args([&acc, &missing, &cons, &plain]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unreadable file means exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.eml"));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "the other files are still processed");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let want = [
        "daticert",
        "file",
        "has_original",
        "kind",
        "original_subject",
        "receipt_type",
        "riferimento_message_id",
        "signature",
        "structure_limit",
        "subject",
    ];
    for l in &lines {
        assert_eq!(keys(l), want);
    }
    assert_eq!(lines[0]["kind"], "accettazione");
    assert_eq!(lines[0]["riferimento_message_id"], "abc.123@mail.example.it");
    assert_eq!(lines[0]["daticert"]["data"], "2026-11-23T10:15:00+01:00");
    assert_eq!(lines[1]["kind"], "avvenuta-consegna");
    assert_eq!(lines[1]["has_original"], true);
    assert_eq!(lines[1]["daticert"]["consegna"], "ufficio@pec.comune.example.it");
    assert_eq!(lines[2]["kind"], "not-pec");
    assert_eq!(lines[2]["signature"]["verdict"], "unsigned");
    assert_eq!(lines[0]["signature"]["verdict"], "malformed", "the builder's placeholder signature is not a CMS structure");
    assert_eq!(lines[2]["daticert"], serde_json::Value::Null);

    let table = pecgate().arg("classify").args([&acc, &plain]).output().unwrap();
    assert!(table.status.success());
    assert_eq!(String::from_utf8_lossy(&table.stdout).lines().count(), 2);
}
