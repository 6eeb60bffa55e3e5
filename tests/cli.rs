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
    assert!(stderr.contains("mailbox[0] (legal).user: 2 users have admin = true"), "{stderr}");

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
