use std::io::Write;

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
    assert_eq!(m.resolved_password.expose(), "s3cret-pw", "one trailing newline trimmed");
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
            "mailbox[0] (legal).user: no user has receive = true",
        ),
        (base.replace("admin = true", "admin = false"), "mailbox[0] (legal).user: no user has admin = true"),
        (base.replace("password_file = \"legal.pw\"", "password_file = \"missing.pw\""), "mailbox[0] (legal).password_file: cannot read"),
        (base.replace("password_file = \"legal.pw\"", "password = \"literal\""), "mailbox[0] (legal).password: a literal password"),
        (
            base.replace("password_file = \"legal.pw\"", "password_env = \"PECGATE_TEST_NO_SUCH_VAR\""),
            "password_env: environment variable PECGATE_TEST_NO_SUCH_VAR",
        ),
        (base.replace("id = \"legal\"", "id = \"le gal\""), "mailbox[0].id"),
        (base.replace("address = \"legal@pec.corp.it\"", "address = \"legal\""), ".address: \"legal\" is not an e-mail address"),
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
            "store.password_file: cannot read",
        ),
        (format!("{base}\n[store]\nmax_connections = 0\n"), "store.max_connections"),
        (format!("{base}\n[cluster]\ninstance_id = \"a b\"\n"), "cluster.instance_id"),
        (format!("{base}\n[cluster]\nlease_secs = 1\n"), "cluster.lease_secs"),
        (format!("{base}\n[corporate]\nfrom = \"nobody\"\n"), "corporate.from"),
        (
            base.replace("host = \"smtps.pec.example.it\"", "host = \"smtps.pec.example.it\"\nsecurity = \"none\""),
            "smtp.security: \"none\" is not allowed",
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
    assert_eq!(loaded.config.mailboxes[0].resolved_password.expose(), "literal-pw");
    assert!(loaded.warnings.iter().any(|w| w.key.ends_with(".password")));
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
    let url = loaded.config.store.resolved_url.as_ref().unwrap().expose().to_owned();
    // Percent-encoded in the URL, decoded by the driver.
    assert_eq!(url, "postgres://pecgate:pw-DB-3e9a%2F%40%3Ax-never-log-me@db.corp.it:5432/pec?sslmode=require");
    assert!(!format!("{:?}", loaded.config).contains("never-log-me"));
    assert!(!serde_json::to_string(&loaded.config).unwrap().contains("never-log-me"));
}
