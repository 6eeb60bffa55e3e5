//! The LDAP directory against a real OpenLDAP (`slapd`), private to the
//! test: its own config and data directory in a temp dir, loopback only,
//! StartTLS with a test CA, run as the current user and stopped by its PID.
//! Needs `slapd`, `slapadd` and `ldapmodify` (Debian `slapd` + `ldap-utils`);
//! tests/interop/run.sh installs them and runs this with `--ignored`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use pecgate::directory::Source;

const BASE: &str = "dc=azienda,dc=it";
const ROOT_DN: &str = "cn=admin,dc=azienda,dc=it";
const ROOT_PW: &str = "pw-LDAP-root-5e1b-never-log-me";
const PAOLA_PW: &str = "pw-PAOLA-ldap-9c2d-never-log-me";
const PAOLA: &str = "paola.neri@azienda.it";
const SARA: &str = "sara.gallo@azienda.it";
const SARA_ALIAS: &str = "s.gallo@azienda.it";
const UGO: &str = "ugo.riva@azienda.it";
const SEND_GROUP: &str = "cn=PEC-Legale-Invio,ou=groups,dc=azienda,dc=it";

fn ldif() -> String {
    format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: azienda\no: Azienda\n\n\
dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
dn: uid=paola,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: paola\ncn: Paola Neri\nsn: Neri\nmail: {PAOLA}\nuserPassword: {PAOLA_PW}\n\n\
dn: uid=sara,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: sara\ncn: Sara Gallo\nsn: Gallo\nmail: {SARA}\nmail: {SARA_ALIAS}\n\n\
dn: uid=ugo,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: ugo\ncn: Ugo Riva\nsn: Riva\nmail: {UGO}\n\n\
dn: cn=pec-legale-team,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: pec-legale-team\nmember: uid=paola,ou=people,{BASE}\n\n\
dn: {SEND_GROUP}\nobjectClass: groupOfNames\ncn: PEC-Legale-Invio\nmember: uid=sara,ou=people,{BASE}\nmember: cn=pec-legale-team,ou=groups,{BASE}\nmember: cn=placeholder,{BASE}\n\n\
dn: cn=pec-legale-ricezione,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: pec-legale-ricezione\nmember: uid=ugo,ou=people,{BASE}\nmember: {SEND_GROUP}\n"
    )
}

fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file()).unwrap_or_else(|| name.into())
}

/// A private slapd; killed (by PID) when dropped.
struct Slapd {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Slapd {
    /// Writes slapd.conf, loads the LDIF with slapadd, starts slapd.
    async fn start(dir: &Path) -> Slapd {
        let dir = dir.join("slapd");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let ca = write_listener_tls(&dir);
        std::fs::write(dir.join("ca.pem"), ca).unwrap();
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {d}/slapd.pid\n\
TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/listener-cert.pem\nTLSCertificateKeyFile {d}/listener-key.pem\n\
database mdb\nmaxsize 104857600\nsuffix \"{BASE}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\ndirectory {d}/data\n\
access to attrs=userPassword by anonymous auth by * none\naccess to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        std::fs::write(dir.join("data.ldif"), ldif()).unwrap();
        let out =
            Command::new(tool("slapadd")).arg("-f").arg(dir.join("slapd.conf")).arg("-l").arg(dir.join("data.ldif")).output().unwrap();
        assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Slapd { dir, port, child: None };
        s.run().await;
        s
    }

    /// Starts slapd in the foreground (-d 0) so that the child is slapd itself.
    async fn run(&mut self) {
        let child = Command::new(tool("slapd"))
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "slapd did not start listening on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// ldapmodify over StartTLS as the root DN.
    fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new(tool("ldapmodify"))
            .args(["-x", "-ZZ", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .env("LDAPTLS_CACERT", self.dir.join("ca.pem"))
            .env("LDAPTLS_REQCERT", "demand")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn remove_member(&self, group: &str, member: &str) {
        self.modify(&format!("dn: {group}\nchangetype: modify\ndelete: member\nmember: {member}\n"));
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn directory_config(t: &mut String, url: &str, refresh_secs: u64, ca: &Path) {
    write_secret(&ca.parent().unwrap().join("ldap.pw"), ROOT_PW);
    let groups = format!(
        "[mailbox.groups]\nsend = [\"{SEND_GROUP}\"]\nreceive = [\"cn=pec-legale-ricezione,ou=groups,{BASE}\"]\n\n[[mailbox]]\nid = \"hr\""
    );
    *t = t.replacen("\n[[mailbox]]\nid = \"hr\"", &format!("\n{groups}"), 1);
    t.push_str(&format!(
        "\n[directory]\nkind = \"ldap\"\nurl = \"{url}\"\nca_file = \"{}\"\nbind_dn = \"{ROOT_DN}\"\npassword_file = \"{}\"\nbase_dn = \"{BASE}\"\nrefresh_secs = {refresh_secs}\ntimeout_secs = 5\n",
        ca.display(),
        ca.parent().unwrap().join("ldap.pw").display()
    ));
}

fn pec(from: &str, subject: &str) -> String {
    let id = subject.replace([' ', '[', ']', ':'], "");
    format!(
        "From: {from}\r\nTo: ufficio@pec.fornitore.it\r\nSubject: [PEC:legal] {subject}\r\nMessage-ID: <{id}@azienda.it>\r\n\r\nTesto.\r\n"
    )
}

async fn send(env: &TestEnv, from: &str, subject: &str) -> String {
    env.send(from, &["ufficio@pec.fornitore.it"], &pec(from, subject)).await
}

/// Sends until the reply starts with `code`, a message per try; panics after [`WAIT`].
async fn eventually_replies(env: &TestEnv, from: &str, code: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    for i in 0.. {
        let reply = send(env, from, &format!("try {code} {i}")).await;
        if reply.starts_with(code) {
            return reply;
        }
        assert!(tokio::time::Instant::now() < deadline, "{from} never got {code}; last reply {reply:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

async fn directory_up(env: &TestEnv) -> Option<f64> {
    let (_, body) = http_get(env.app().admin_addr, "/metrics").await;
    metric_value(&body, "pecgate_directory_up")
}

async fn wait_directory_up(env: &TestEnv, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while directory_up(env).await != Some(want) {
        assert!(tokio::time::Instant::now() < deadline, "pecgate_directory_up never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs slapd (runs in tests/interop)"]
async fn group_membership_grants_sending_and_follows_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slapd = Slapd::start(tmp.path()).await;
    let ca = slapd.dir.join("ca.pem");
    let url = slapd.url();
    let mut env = TestEnv::start_with(|t| directory_config(t, &url, 1, &ca)).await;

    // Nested group member, direct member through an alias address, and a non-member.
    assert!(send(&env, PAOLA, "nested").await.starts_with("250 "));
    assert!(send(&env, SARA_ALIAS, "alias").await.starts_with("250 "));
    let refused = send(&env, UGO, "not in the send group").await;
    assert!(refused.starts_with("550 5.7.1"), "{refused}");
    // Static [[mailbox.user]] entries still count.
    assert!(send(&env, MARIO, "static").await.starts_with("250 "));
    wait_directory_up(&env, 1.0).await;

    // The admin view names where each right comes from: the group as configured, or the file.
    let rt = env.app().live.get();
    let grants = rt.directory.grants("legal").await.unwrap();
    let sources = |a: &str| grants.iter().find(|g| g.address == a).map(|g| g.sources.clone()).unwrap_or_default();
    assert!(sources(PAOLA).contains(&("send", Source::Group(SEND_GROUP.into()))), "nested member: {grants:?}");
    assert!(sources(MARIO).contains(&("send", Source::Config)), "{grants:?}");
    assert!(!sources(UGO).iter().any(|(r, _)| *r == "send"), "{grants:?}");
    let status = rt.directory.status();
    assert_eq!((status.kind, status.up, status.last_success_ms.is_some()), ("ldap", true, true), "{status:?}");

    // Removed from the group: refused after the next refresh (refresh_secs = 1).
    slapd.remove_member(SEND_GROUP, &format!("uid=sara,ou=people,{BASE}"));
    let r = eventually_replies(&env, SARA, "550").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");

    // Directory down: the last good answer is used, and the metric says so.
    slapd.stop();
    wait_directory_up(&env, 0.0).await;
    assert!(send(&env, PAOLA, "outage").await.starts_with("250 "));
    let r = send(&env, SARA, "outage, removed").await;
    assert!(r.starts_with("550 5.7.1"), "the last answer, not a guess: {r}");
    slapd.run().await;
    wait_directory_up(&env, 1.0).await;

    // With a long refresh a change waits for the next refresh, or a reload.
    let mut text = env.config_text.replace("refresh_secs = 1\n", "refresh_secs = 3600\n");
    env.reload_with(&text).await.unwrap();
    assert!(send(&env, PAOLA, "before").await.starts_with("250 "));
    slapd.remove_member(SEND_GROUP, &format!("cn=pec-legale-team,ou=groups,{BASE}"));
    assert!(send(&env, PAOLA, "cached").await.starts_with("250 "), "served from the cache until the next refresh");
    text.push('\n');
    env.reload_with(&text).await.unwrap();
    let r = send(&env, PAOLA, "after reload").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    env.stop().await;
}

#[tokio::test]
#[ignore = "needs slapd (runs in tests/interop)"]
async fn listener_auth_binds_as_the_directory_user() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(tmp.path()).await;
    let ca = slapd.dir.join("ca.pem");
    let url = slapd.url();
    let mut env = TestEnv::prepare(|t| directory_config(t, &url, 300, &ca), pecgate::clock::system(), false).await;
    let listener_ca = write_listener_tls(env.dir.path());
    env.config_text = env.config_text.replacen(
        "command_timeout_secs = 10\n",
        "command_timeout_secs = 10\ntls_cert_file = \"listener-cert.pem\"\ntls_key_file = \"listener-key.pem\"\n",
        1,
    );
    env.config_text.push_str("\n[smtp.auth]\nenabled = true\nfailure_delay_ms = 0\n");
    env.restart().await;

    let login = |user: &str, pw: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"))
    };
    let session = async || {
        let mut c = SmtpProbe::connect(env.smtp_addr()).await;
        c.expect("220").await;
        c.cmd("EHLO mx.azienda.it", "250").await;
        let mut c = c.starttls(&listener_ca).await;
        c.cmd("EHLO mx.azienda.it", "250").await;
        c
    };
    let mut c = session().await;
    c.cmd(&format!("AUTH PLAIN {}", login("paola", "wrong")), "535").await;
    // An empty password never reaches LDAP (it would be an anonymous bind); the session refuses it.
    c.cmd(&format!("AUTH PLAIN {}", login("paola", "")), "501").await;
    c.cmd(&format!("AUTH PLAIN {}", login("*", PAOLA_PW)), "535").await;
    c.cmd(&format!("AUTH PLAIN {}", login("paola", PAOLA_PW)), "235").await;
    c.cmd(&format!("MAIL FROM:<{PAOLA}>"), "250").await;
    c.cmd("RCPT TO:<ufficio@pec.fornitore.it>", "250").await;
    c.cmd("DATA", "354").await;
    let reply = c.data(&pec(PAOLA, "auth")).await;
    assert!(reply.starts_with("250 "), "{reply}");
    // The mail address is a login too.
    let mut c = session().await;
    c.cmd(&format!("AUTH PLAIN {}", login(PAOLA, PAOLA_PW)), "235").await;
    drop(slapd);
    env.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// For docs/ldap.md: refresh time and memory of a 1,000-user directory.
#[tokio::test]
#[ignore = "needs slapd (a measurement, run by hand: cargo test --test ldap -- --ignored --nocapture measure)"]
async fn measure_a_thousand_user_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slapd = Slapd::start(tmp.path()).await;
    let mut more = String::new();
    let mut members = String::new();
    for i in 0..1000 {
        more.push_str(&format!(
            "dn: uid=user{i},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: user{i}\ncn: User {i}\nsn: U\nmail: user{i}@azienda.it\n\n"
        ));
        members.push_str(&format!("member: uid=user{i},ou=people,{BASE}\n"));
    }
    more.push_str(&format!("dn: cn=all,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: all\n{members}\n"));
    slapd.stop();
    std::fs::write(slapd.dir.join("more.ldif"), more).unwrap();
    let out = Command::new(tool("slapadd"))
        .arg("-f")
        .arg(slapd.dir.join("slapd.conf"))
        .arg("-l")
        .arg(slapd.dir.join("more.ldif"))
        .output()
        .unwrap();
    assert!(out.status.success(), "slapadd: {}", String::from_utf8_lossy(&out.stderr));
    slapd.run().await;

    let dir = tmp.path();
    write_secret(&dir.join("ldap.pw"), ROOT_PW);
    let text = format!(
        "[[mailbox]]\nid = \"legal\"\naddress = \"legal@pec.azienda.it\"\nusername = \"x\"\npassword_file = \"ldap.pw\"\n[mailbox.smtp]\nhost = \"localhost\"\n\
[mailbox.groups]\nsend = [\"cn=all,ou=groups,{BASE}\"]\nreceive = [\"cn=all,ou=groups,{BASE}\"]\nadmin = [\"cn=all,ou=groups,{BASE}\"]\n\
[directory]\nkind = \"ldap\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"{ROOT_DN}\"\npassword_file = \"ldap.pw\"\nbase_dn = \"{BASE}\"\n",
        slapd.url(),
        slapd.dir.join("ca.pem").display()
    );
    let loaded = pecgate::config::load_str(&text, Some(dir)).unwrap();
    let tls = pecgate::tls::client_config(loaded.config.directory.ca_file.as_deref()).unwrap();
    let before = rss_kib();
    let d = pecgate::directory::LdapDirectory::new(&loaded.config, &loaded.resolved.secrets, tls, pecgate::clock::system());
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        d.refresh().await;
        times.push(t.elapsed());
    }
    use pecgate::directory::Directory;
    let members = d.members("legal").await.unwrap();
    assert_eq!(members.len(), 1000, "exactly the members of cn=all");
    let after = rss_kib();
    println!("refresh of {} members: {times:?}; RSS {before} KiB -> {after} KiB", members.len());
}

/// The GPec non-blocking alarm follows the directory: when a refresh leaves
/// a mailbox with no user allowed to send, its admin is told, without a
/// reload (once: later refreshes do not repeat it).
#[tokio::test]
#[ignore = "needs slapd (runs in tests/interop)"]
async fn a_refresh_that_removes_the_last_sender_tells_the_admin_once() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(tmp.path()).await;
    let ca = slapd.dir.join("ca.pem");
    let url = slapd.url();
    let mut env = TestEnv::start_with(|t| {
        directory_config(t, &url, 1, &ca);
        // Only the directory's send group may send from legal.
        let users = format!("[[mailbox.user]]\naddress = \"{MARIO}\"\nadmin = true\n[[mailbox.user]]\naddress = \"{ANNA}\"\nsend = false\n[[mailbox.user]]\naddress = \"{LUCA}\"\n");
        assert!(t.contains(&users), "{t}");
        *t = t.replacen(&users, &format!("[[mailbox.user]]\naddress = \"{MARIO}\"\nadmin = true\nsend = false\n[[mailbox.user]]\naddress = \"{ANNA}\"\nsend = false\n[[mailbox.user]]\naddress = \"{LUCA}\"\nsend = false\n"), 1);
    })
    .await;
    wait_directory_up(&env, 1.0).await;
    assert!(send(&env, SARA, "still allowed").await.starts_with("250 "));
    let subject = format!("Nessun utente puo' inviare dalla casella PEC {LEGAL}");
    let alarms = || {
        env.capture
            .bag
            .all()
            .into_iter()
            .filter(|m| m.rcpts.iter().any(|r| r == MARIO))
            .filter(|m| {
                mail_parser::MessageParser::default().parse(&m.data).and_then(|p| p.subject().map(str::to_owned)).as_deref()
                    == Some(subject.as_str())
            })
            .count()
    };
    assert_eq!(alarms(), 0, "legal has senders from the group");

    slapd.remove_member(SEND_GROUP, &format!("uid=sara,ou=people,{BASE}"));
    slapd.remove_member(SEND_GROUP, &format!("cn=pec-legale-team,ou=groups,{BASE}"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while alarms() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no alarm after the refresh removed the last sender");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(send(&env, SARA, "no longer").await.starts_with("550 5.7.1"));
    // Two more refreshes (refresh_secs = 1): not repeated.
    let refreshed = env.app().live.get().directory.status().last_attempt_ms;
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.app().live.get().directory.status().last_attempt_ms.unwrap_or(0) < refreshed.unwrap_or(0) + 2000 {
        assert!(tokio::time::Instant::now() < deadline, "the directory stopped refreshing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alarms(), 1, "told once");
    env.stop().await;
}
