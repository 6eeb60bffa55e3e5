use std::io::Write;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};

use super::*;

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p
}

fn minimal(dir: &Path) -> String {
    write(dir, "legal.pw", "s3cret-pw\n");
    r#"
[[mailbox]]
id = "legal"
address = "legal@pec.corp.it"
username = "legal@pec.corp.it"
password_file = "legal.pw"
[mailbox.smtp]
host = "smtps.pec.example.it"
[[mailbox.user]]
address = "mario.rossi@corp.it"
admin = true
"#
    .to_owned()
}

fn problems(text: &str, dir: &Path) -> Vec<String> {
    match load_str(text, Some(dir)) {
        Ok(_) => vec![],
        Err(Error::Invalid { problems, .. }) => problems.iter().map(|p| p.to_string()).collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn defaults_and_secret_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_str(&minimal(dir.path()), Some(dir.path())).unwrap();
    let c = &loaded.config;
    assert_eq!(c.tag.markers, ["[PEC]", "[GPEC]"]);
    assert!(!c.tag.required);
    let m = &c.mailboxes[0];
    assert_eq!((m.max_recipients, m.rate_limit_per_minute, m.active), (50, 0, true));
    assert_eq!(m.smtp.port, 465);
    assert_eq!(m.smtp.security, Security::Tls);
    assert_eq!(loaded.resolved.secrets.mailboxes["legal"].expose(), "s3cret-pw", "one trailing newline trimmed");
    let u = &m.users[0];
    assert!(u.send && u.receive && u.anomalies && u.admin);
    assert_eq!(c.store.path, dir.path().join("var/pecgate.db"));
    let shown = c.to_masked_json();
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(!format!("{c:?}").contains("s3cret-pw"));
}

#[test]
fn the_example_config_parses() {
    // conf/pecgate.example.toml documents every key; it must stay loadable.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/pecgate.example.toml")).unwrap();
    let config: Config = Figment::new().merge(Toml::string(&text)).extract().unwrap();
    assert!(!config.mailboxes.is_empty());
    assert!(config.mailboxes[0].pop3.is_some());
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}\n[smtp]\nlisten = \"127.0.0.1:25\"\nlistn = 1\n", minimal(dir.path()));
    let err = load_str(&text, Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("listn"), "{err}");
}

#[test]
fn every_problem_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = minimal(dir.path());
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace(
                "[[mailbox.user]]\naddress = \"mario.rossi@corp.it\"\nadmin = true",
                "[[mailbox.user]]\naddress = \"mario.rossi@corp.it\"\nadmin = true\nreceive = false",
            ),
            "mailbox[0].user (legal): no user has receive = true",
        ),
        (base.replace("admin = true", "admin = false"), "mailbox[0].user (legal): no user has admin = true"),
        (base.replace("password_file = \"legal.pw\"", "password_file = \"missing.pw\""), "mailbox[0].password_file (legal): "),
        (base.replace("password_file = \"legal.pw\"", "password = \"literal\""), "mailbox[0].password (legal): a literal password"),
        (
            base.replace("password_file = \"legal.pw\"", "password_env = \"PECGATE_TEST_NO_SUCH_VAR\""),
            "password_env (legal): environment variable PECGATE_TEST_NO_SUCH_VAR",
        ),
        (base.replace("id = \"legal\"", "id = \"le gal\""), "mailbox[0].id"),
        (base.replace("id = \"legal\"", "id = \"482913\""), "mailbox[0].id: \"482913\" is all digits, which a subject tag reads as a PIN"),
        (format!("{base}\n[pin]\nmax_failures = 0\n"), "pin.max_failures: must be at least 1"),
        (format!("{base}\n[pin]\nwindow_secs = 0\n"), "pin.window_secs: must be at least 1"),
        (format!("{base}\n[pin]\nlockout_secs = 0\n"), "pin.lockout_secs: must be at least 1"),
        (
            base.replace("address = \"legal@pec.corp.it\"", "address = \"legal\""),
            "mailbox[0].address (legal): \"legal\" is not an e-mail address",
        ),
        (format!("{base}\n[smtp]\nlisten = \"nowhere\"\n"), "smtp.listen"),
        (format!("{base}\n[smtp]\nallowed_clients = [\"10.0.0.0/33\"]\n"), "smtp.allowed_clients[0]"),
        (format!("{base}\n[smtp]\ntls_cert_file = \"c.pem\"\n"), "smtp.tls_key_file"),
        (format!("{base}\n[tag]\nmarkers = [\"PEC\"]\n"), "tag.markers[0]"),
        (format!("{base}\n[store]\nbackend = \"postgres\"\n"), "store.url: is not set"),
        (format!("{base}\n[store]\nbackend = \"postgres\"\nurl = \"mysql://db/pec\"\n"), "store.url: scheme \"mysql\""),
        (
            format!("{base}\n[store]\nbackend = \"postgres\"\nurl = \"postgres://pecgate:hunter2@db/pec\"\n"),
            "store.url: contains a password; remove it",
        ),
        (
            format!("{base}\n[store]\nbackend = \"postgres\"\nurl = \"postgres://pecgate@db/pec\"\npassword_file = \"nope.pw\"\n"),
            "store.password_file: ",
        ),
        (format!("{base}\n[store]\nmax_connections = 0\n"), "store.max_connections"),
        (format!("{base}\n[cluster]\ninstance_id = \"a b\"\n"), "cluster.instance_id"),
        (format!("{base}\n[cluster]\nlease_secs = 1\n"), "cluster.lease_secs"),
        (format!("{base}\n[corporate]\nfrom = \"nobody\"\n"), "corporate.from"),
        (
            format!("{base}\n[admin]\nallowed_hosts = [\"pecgate.corp.it\", \"https://pecgate.corp.it/\"]\n"),
            "admin.allowed_hosts[1]: \"https://pecgate.corp.it/\" has a scheme or a path (only the host name, optionally :port); write a host name",
        ),
        (format!("{base}\n[admin]\nallowed_hosts = [\"pecgate.corp.it:0\"]\n"), "admin.allowed_hosts[0]: \"pecgate.corp.it:0\" has a port"),
        (
            base.replace("host = \"smtps.pec.example.it\"", "host = \"smtps.pec.example.it\"\nsecurity = \"none\""),
            "mailbox[0].smtp.security (legal): \"none\" is not allowed",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&text, dir.path());
        assert!(got.iter().any(|p| p.contains(want)), "want {want:?} in {got:#?}");
    }
}

#[test]
fn plaintext_secret_allowed_with_warning_and_two_admins_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "allow_plaintext_secrets = true\n{}",
        minimal(dir.path()).replace("password_file = \"legal.pw\"", "password = \"literal-pw\"")
    );
    let loaded = load_str(&text, Some(dir.path())).unwrap();
    assert_eq!(loaded.resolved.secrets.mailboxes["legal"].expose(), "literal-pw");
    assert!(loaded.warnings.iter().any(|w| w.key == "mailbox[0].password (legal)"), "{:?}", loaded.warnings);
    assert!(!loaded.config.to_masked_json().contains("literal-pw"));

    let two_admins = format!("{}\n[[mailbox.user]]\naddress = \"anna@corp.it\"\nadmin = true\n", minimal(dir.path()));
    assert!(problems(&two_admins, dir.path()).iter().any(|p| p.contains("2 users have admin = true")));
}

#[test]
fn no_sender_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replace("admin = true", "admin = true\nsend = false");
    let loaded = load_str(&text, Some(dir.path())).unwrap();
    assert!(loaded.warnings.iter().any(|w| w.message.contains("no user has send = true")));
}

#[test]
fn final_preavviso_without_pop3_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replacen("[mailbox.smtp]", "final_preavviso_5xx = true\n[mailbox.smtp]", 1);
    let loaded = load_str(&text, Some(dir.path())).unwrap();
    assert!(loaded.config.mailboxes[0].final_preavviso_5xx);
    assert!(
        loaded.warnings.iter().any(|w| w.key.starts_with("mailbox[0].final_preavviso_5xx") && w.message.contains("without [mailbox.pop3]")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn size_per_recipient_needs_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path()).replacen("[mailbox.smtp]", "size_per_recipient = true\n[mailbox.smtp]", 1);
    assert!(problems(&text, dir.path()).iter().any(|p| p.contains("size_per_recipient") && p.contains("needs max_message_bytes")));
    let zero = minimal(dir.path()).replacen("[mailbox.smtp]", "max_message_bytes = 0\n[mailbox.smtp]", 1);
    assert!(problems(&zero, dir.path()).iter().any(|p| p.contains("max_message_bytes") && p.contains("greater than 0")));
    let ok = minimal(dir.path()).replacen("[mailbox.smtp]", "max_message_bytes = 100000000\nsize_per_recipient = true\n[mailbox.smtp]", 1);
    assert!(load_str(&ok, Some(dir.path())).is_ok());
}

/// `minimal` plus listener AUTH with one account acting as the mailbox's sending user.
fn with_auth(dir: &Path, auth: &str, account: &str) -> String {
    write(dir, "listener.pw", "listener-pw\n");
    write(dir, "cert.pem", "not read by validation");
    write(dir, "key.pem", "not read by validation");
    format!(
        "[smtp]\nlisten = \"0.0.0.0:2525\"\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n\
         [smtp.auth]\n{auth}\n{account}\n{}",
        minimal(dir)
    )
}

const ACCOUNT: &str = "[[smtp.account]]\nusername = \"scanner\"\npassword_file = \"listener.pw\"\naddress = \"Mario.Rossi@corp.it\"\n";

#[test]
fn smtp_auth_defaults_and_account_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let c = load_str(&minimal(dir.path()), Some(dir.path())).unwrap().config;
    let a = &c.smtp.auth;
    assert_eq!((a.enabled, a.required, a.allow_without_tls_on_loopback, a.failure_delay_ms), (false, false, false, 1000));
    assert!(c.smtp.accounts.is_empty());

    let loaded = load_str(&with_auth(dir.path(), "enabled = true\nrequired = true", ACCOUNT), Some(dir.path())).unwrap();
    let account = &loaded.config.smtp.accounts[0];
    assert_eq!(loaded.resolved.secrets.accounts[&account.username].expose(), "listener-pw");
    assert_eq!(account.password_file.as_deref(), Some(dir.path().join("listener.pw").as_path()), "relative to the config file");
    assert!(!loaded.config.to_masked_json().contains("listener-pw"));
    assert!(!format!("{:?}", loaded.config).contains("listener-pw"));

    // Loopback-only listener without a certificate: allowed when explicitly asked for.
    let loopback = format!(
        "[smtp]\nlisten = \"127.0.0.1:2525\"\n[smtp.auth]\nenabled = true\nallow_without_tls_on_loopback = true\n{ACCOUNT}{}",
        minimal(dir.path())
    );
    assert!(problems(&loopback, dir.path()).is_empty(), "{:?}", problems(&loopback, dir.path()));

    // Accounts while AUTH is off: a warning, not an error.
    let off = load_str(&with_auth(dir.path(), "enabled = false", ACCOUNT), Some(dir.path())).unwrap();
    assert!(off.warnings.iter().any(|w| w.key == "smtp.account" && w.message.contains("nobody can log in")), "{:?}", off.warnings);
}

#[test]
fn smtp_auth_problems_name_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let account = |user: &str, address: &str| {
        format!("[[smtp.account]]\nusername = \"{user}\"\npassword_file = \"listener.pw\"\naddress = \"{address}\"\n")
    };
    write(d, "long.pw", &"x".repeat(256));
    let cases: Vec<(String, &str)> = vec![
        (
            with_auth(d, "enabled = true", ""),
            "smtp.auth.enabled: is true but no [[smtp.account]] is configured; add an account (username, password_file, address) or set enabled = false",
        ),
        (with_auth(d, "required = true", ACCOUNT), "smtp.auth.required: is true while smtp.auth.enabled is false"),
        (
            format!(
                "[smtp]\nlisten = \"0.0.0.0:2525\"\n[smtp.auth]\nenabled = true\nallow_without_tls_on_loopback = true\n{ACCOUNT}{}",
                minimal(d)
            ),
            "smtp.auth.enabled: AUTH is only offered after STARTTLS, but smtp.tls_cert_file is not set; set smtp.tls_cert_file and smtp.tls_key_file",
        ),
        (
            format!("[smtp]\nlisten = \"127.0.0.1:2525\"\n[smtp.auth]\nenabled = true\n{ACCOUNT}{}", minimal(d)),
            "allow_without_tls_on_loopback = true",
        ),
        (
            with_auth(d, "enabled = true", &format!("{ACCOUNT}{}", account("Scanner", "mario.rossi@corp.it"))),
            "smtp.account[1].username: \"Scanner\" is used by two accounts; usernames must be unique",
        ),
        (with_auth(d, "enabled = true", &account("", "mario.rossi@corp.it")), "smtp.account[0].username: \"\" must be 1 to 255 bytes"),
        (
            with_auth(d, "enabled = true", &account("scanner", "anna@corp.it")),
            "smtp.account[0].address (scanner): \"anna@corp.it\" is not a [[mailbox.user]] with send = true in any mailbox; add it",
        ),
        (
            with_auth(d, "enabled = true", &account("scanner", "scanner")),
            "smtp.account[0].address (scanner): \"scanner\" is not an e-mail address",
        ),
        (
            with_auth(d, "enabled = true", "[[smtp.account]]\nusername = \"scanner\"\naddress = \"mario.rossi@corp.it\"\n"),
            "smtp.account[0].password_file (scanner): no password",
        ),
        (
            with_auth(d, "enabled = true", &ACCOUNT.replace("password_file = \"listener.pw\"", "password = \"literal\"")),
            "smtp.account[0].password (scanner): a literal password in the config file is refused",
        ),
        (with_auth(d, "enabled = true", &ACCOUNT.replace("listener.pw", "missing.pw")), "smtp.account[0].password_file (scanner): "),
        (
            with_auth(d, "enabled = true", &ACCOUNT.replace("listener.pw", "long.pw")),
            "smtp.account[0].password_file (scanner): the password is longer than 255 bytes",
        ),
        (with_auth(d, "enabled = true\nmechanisms = [\"PLAIN\"]", ACCOUNT), "mechanisms"),
    ];
    for (text, want) in cases {
        let got = problems(&text, d);
        assert!(got.iter().any(|p| p.contains(want)), "want {want:?} in {got:#?}");
    }

    // A user without send = true cannot be an account's identity.
    let no_send = with_auth(d, "enabled = true", ACCOUNT).replace("admin = true", "admin = true\nsend = false");
    assert!(problems(&no_send, d).iter().any(|p| p.starts_with("smtp.account[0].address (scanner)")));
}

#[test]
fn password_file_mode_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = minimal(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("legal.pw"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = load_str(&text, Some(dir.path())).unwrap();
        assert!(loaded.warnings.iter().any(|w| w.message.contains("chmod 600")), "{:?}", loaded.warnings);
    }
}

#[test]
fn admin_without_token_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let base = minimal(dir.path());
    assert!(problems(&format!("[admin]\nlisten = \"127.0.0.1:9180\"\n{base}"), dir.path()).is_empty());
    let open = problems(&format!("[admin]\nlisten = \"0.0.0.0:9180\"\n{base}"), dir.path());
    assert!(open.iter().any(|p| p.starts_with("admin.token_file: is not set")), "{open:?}");
    write(dir.path(), "admin.token", "t0ken\n");
    let with_token = format!("[admin]\nlisten = \"0.0.0.0:9180\"\ntoken_file = \"admin.token\"\nlanguage = \"en\"\n{base}");
    assert!(problems(&with_token, dir.path()).is_empty());
    let loaded = load_str(&with_token, Some(dir.path())).unwrap().config;
    assert_eq!(loaded.admin.language, Language::En);
}

#[test]
fn postgres_password_joins_the_url_and_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db.pw"), "pw-DB-3e9a/@:x-never-log-me\n").unwrap();
    let text = format!(
        "{}\n[store]\nbackend = \"postgres\"\nurl = \"postgres://pecgate@db.corp.it:5432/pec?sslmode=require\"\npassword_file = \"db.pw\"\n",
        minimal(dir.path())
    );
    let loaded = load_str(&text, Some(dir.path())).unwrap();
    let url = loaded.resolved.secrets.store_url.as_ref().unwrap().expose().to_owned();
    // Percent-encoded in the URL, decoded by the driver.
    assert_eq!(url, "postgres://pecgate:pw-DB-3e9a%2F%40%3Ax-never-log-me@db.corp.it:5432/pec?sslmode=require");
    assert!(!format!("{:?}", loaded.config).contains("never-log-me"));
    assert!(!serde_json::to_string(&loaded.config).unwrap().contains("never-log-me"));
}

#[test]
fn secret_files_are_one_short_line_of_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with_file = |path: &str| minimal(d).replace("password_file = \"legal.pw\"", &format!("password_file = \"{path}\""));
    write(d, "two-lines.pw", "root:x:0:0\nbin:x:1:1\n");
    write(d, "big.pw", &"x".repeat(MAX_SECRET_FILE as usize + 1));
    write(d, "empty.pw", "\n");
    write(d, "long.pw", &"p".repeat(300));
    #[cfg(unix)]
    std::os::unix::fs::symlink(d.join("two-lines.pw"), d.join("link.pw")).unwrap();
    let cases = [
        ("missing.pw", "does not exist; create it readable only by pecgate, e.g. `install -m 600 -o pecgate /dev/null"),
        ("two-lines.pw", "has 2 lines; it must hold only the password, on one line"),
        ("big.pw", "bytes; a password file holds one line"),
        ("empty.pw", "is empty; write the password in it as one line"),
        ("long.pw", "longer than 255 bytes, more than SMTP AUTH accepts"),
        ("/dev/zero", "/dev/zero is not a regular file"),
        #[cfg(unix)]
        ("link.pw", "(a symlink to "),
    ];
    for (file, want) in cases {
        let got = problems(&with_file(file), d);
        assert!(
            got.iter().any(|p| p.starts_with("mailbox[0].password_file (legal): ") && p.contains(want)),
            "{file}: want {want:?} in {got:#?}"
        );
    }
    // The symlink's problem is the target's: two lines.
    #[cfg(unix)]
    assert!(problems(&with_file("link.pw"), d).iter().any(|p| p.contains("has 2 lines")));
}

#[test]
fn parse_errors_name_the_key_and_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let bad_port = minimal(dir.path()).replace("host = \"smtps.pec.example.it\"", "host = \"smtps.pec.example.it\"\nport = 99999");
    let err = load_str(&bad_port, Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("mailbox[0].smtp.port: 99999 is not a TCP port; write a number from 1 to 65535"), "{err}");
    let unknown = format!("{}\n[smtp]\nlistn = 1\n", minimal(dir.path()));
    let err = load_str(&unknown, Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("smtp.listn: unknown key \"listn\""), "{err}");
    assert!(!err.contains("environment"), "a key from the file is not blamed on the environment: {err}");
}

fn with_directory(dir: &Path, directory: &str) -> String {
    write(dir, "ldap.pw", "ldap-service-pw\n");
    // The `[mailbox.groups]` table must follow the mailbox's own keys.
    format!("{}\n[mailbox.groups]\nsend = [\"cn=PEC-Legale-Invio,ou=groups,dc=corp,dc=it\"]\n\n[directory]\n{directory}\n", minimal(dir))
}

#[test]
fn directory_keys_defaults_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_directory(
        dir.path(),
        "kind = \"ldap\"\nurl = \"ldaps://ldap.corp.it\"\nbind_dn = \"cn=pecgate,dc=corp,dc=it\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=corp,dc=it\"",
    );
    let loaded = load_str(&text, Some(dir.path())).unwrap();
    let d = &loaded.config.directory;
    assert_eq!((d.kind, d.refresh_secs, d.timeout_secs, d.mail_attribute.as_str()), (DirectoryKind::Ldap, 300, 10, "mail"));
    assert_eq!((d.effective_user_filter(), d.effective_login_attribute()), ("(objectClass=inetOrgPerson)", "uid"));
    assert_eq!(loaded.resolved.secrets.directory.as_ref().map(|s| s.expose()), Some("ldap-service-pw"));
    assert_eq!(loaded.config.mailboxes[0].groups.send, ["cn=PEC-Legale-Invio,ou=groups,dc=corp,dc=it"]);
}

#[test]
fn directory_errors_name_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kind = \"ldap\"\nurl = \"http://x\"\nbind_dn = \"cn=a,dc=b\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"",
            "directory.url: scheme \"http\" is not ldaps:// or ldap://",
        ),
        (
            "kind = \"ldap\"\nurl = \"ldap://ldap.corp.it\"\nallow_plaintext_loopback = true\nbind_dn = \"cn=a,dc=b\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"",
            "directory.allow_plaintext_loopback: is true but",
        ),
        (
            "kind = \"ad\"\nurl = \"ldaps://dc1\"\nbind_dn = \"pecgate\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"",
            "directory.bind_dn: \"pecgate\" is not a DN",
        ),
        ("kind = \"ldap\"\nurl = \"ldaps://x\"\nbind_dn = \"cn=a,dc=b\"\nbase_dn = \"dc=b\"", "directory.password_file: no password"),
        (
            "kind = \"ldap\"\nurl = \"ldaps://x\"\nbind_dn = \"cn=a,dc=b\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"\nuser_filter = \"objectClass=person\"",
            "directory.user_filter: \"objectClass=person\" is not an LDAP filter",
        ),
        (
            "kind = \"ldap\"\nurl = \"ldaps://x\"\nbind_dn = \"cn=a,dc=b\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"\nrefresh_secs = 0",
            "directory.refresh_secs: must be at least 1",
        ),
        ("kind = \"static\"", "mailbox[0].groups (legal): lists directory groups but [directory] kind is \"static\""),
    ];
    for (directory, want) in cases {
        let got = problems(&with_directory(dir.path(), directory), dir.path());
        assert!(got.iter().any(|p| p.starts_with(want)), "{directory}\nwant {want}\ngot {got:#?}");
    }
    let ok = "kind = \"ldap\"\nurl = \"ldap://127.0.0.1:3890\"\nallow_plaintext_loopback = true\nbind_dn = \"cn=a,dc=b\"\npassword_file = \"ldap.pw\"\nbase_dn = \"dc=b\"";
    assert_eq!(problems(&with_directory(dir.path(), ok), dir.path()), Vec::<String>::new());
}

#[test]
fn directory_groups_can_replace_static_receivers_and_admin() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "legal.pw", "pw\n");
    write(dir.path(), "ldap.pw", "pw\n");
    let text = r#"
[[mailbox]]
id = "legal"
address = "legal@pec.corp.it"
username = "legal@pec.corp.it"
password_file = "legal.pw"
[mailbox.smtp]
host = "smtps.pec.example.it"
[mailbox.groups]
send = ["cn=send,dc=b"]
receive = ["cn=recv,dc=b"]
admin = ["cn=admins,dc=b"]
[directory]
kind = "ldap"
url = "ldaps://x"
bind_dn = "cn=a,dc=b"
password_file = "ldap.pw"
base_dn = "dc=b"
"#;
    assert_eq!(problems(text, dir.path()), Vec::<String>::new());
    let bad = text.replace("receive = [\"cn=recv,dc=b\"]\n", "receive = [\"recv\"]\n");
    let got = problems(&bad, dir.path());
    assert!(got.iter().any(|p| p.starts_with("mailbox[0].groups.receive[0] (legal): \"recv\" is not a DN")), "{got:#?}");
}

#[test]
fn imap_defaults_and_one_fetch_protocol_per_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let imap = minimal(dir.path()).replacen("[[mailbox.user]]", "[mailbox.imap]\nhost = \"imaps.pec.example.it\"\n[[mailbox.user]]", 1);
    let m = load_str(&imap, Some(dir.path())).unwrap().config.mailboxes.remove(0);
    let i = m.imap.unwrap();
    assert_eq!((i.port, i.security, i.idle, i.retention), (993, crate::config::Security::Tls, true, crate::config::Retention::Leave));
    assert_eq!(i.folders, ["INBOX"]);
    assert_eq!(i.move_to, None);

    let both = imap.replacen("[mailbox.imap]", "[mailbox.pop3]\nhost = \"pop3s.pec.example.it\"\n[mailbox.imap]", 1);
    let p = problems(&both, dir.path());
    assert!(p.iter().any(|p| p.starts_with("mailbox[0].imap (legal)") && p.contains("[mailbox.pop3] are both set")), "{p:?}");

    let no_host = minimal(dir.path()).replacen("[[mailbox.user]]", "[mailbox.imap]\n[[mailbox.user]]", 1);
    assert!(problems(&no_host, dir.path()).iter().any(|p| p.starts_with("mailbox[0].imap.host (legal)")));

    let bad_move = imap.replacen("host = \"imaps", "retention = \"delete\"\nmove_to = \"INBOX.pecgate\"\nhost = \"imaps", 1);
    assert!(
        problems(&bad_move, dir.path())
            .iter()
            .any(|p| p.starts_with("mailbox[0].imap.move_to (legal)") && p.contains("retention = \"leave\""))
    );
    let into_itself = imap.replacen("host = \"imaps", "move_to = \"INBOX\"\nhost = \"imaps", 1);
    assert!(problems(&into_itself, dir.path()).iter().any(|p| p.starts_with("mailbox[0].imap.move_to (legal)")));
    let bad_folder = imap.replacen("host = \"imaps", "folders = [\"IN\\\"BOX\"]\nhost = \"imaps", 1);
    assert!(problems(&bad_folder, dir.path()).iter().any(|p| p.starts_with("mailbox[0].imap.folders[0] (legal)")));
    let no_folders = imap.replacen("host = \"imaps", "folders = []\nhost = \"imaps", 1);
    assert!(problems(&no_folders, dir.path()).iter().any(|p| p.starts_with("mailbox[0].imap.folders (legal)")));
}
