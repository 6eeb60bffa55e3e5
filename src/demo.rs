//! `pecgate demo`: the whole outbound path on loopback with nothing
//! installed: the gateway, the simulated PEC provider and a capture server
//! standing in for the corporate mail server, state under one directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::App;
use crate::config::Security;
use crate::outbound::client::{Endpoint, SmtpClient};
use crate::sim::capture::CaptureServer;
use crate::sim::provider::{SimMailbox, SimProvider};

pub const DEMO_MAILBOX: &str = "demo@pec.example.test";
pub const DEMO_SENDER: &str = "mario.rossi@azienda.example";
pub const DEMO_RECIPIENT: &str = "ufficio@pec.destinatario.example";

pub struct Demo {
    pub app: App,
    pub provider: SimProvider,
    pub capture: CaptureServer,
    pub dir: PathBuf,
    /// The admin token (page login, API bearer), new at each start; only its path is printed.
    pub admin_token_file: PathBuf,
    /// Receipts come over IMAPS with IDLE rather than POP3S.
    pub imap: bool,
}

impl Demo {
    pub async fn start(dir: &Path, port: u16, imap: bool) -> Result<Demo> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        let password = random_password();
        let capture = CaptureServer::start("127.0.0.1:0", Some(dir.join("corporate"))).await.context("capture server")?;
        let provider = SimProvider::start(
            "127.0.0.1:0",
            vec![SimMailbox { username: DEMO_MAILBOX.into(), password: password.clone(), address: DEMO_MAILBOX.into() }],
            Some(dir.join("provider")),
        )
        .await
        .context("simulated provider")?;
        let ca = dir.join("sim-ca.pem");
        std::fs::write(&ca, &provider.ca_pem)?;
        let password_file = dir.join("demo-mailbox.password");
        write_private(&password_file, &password)?;
        // Without a token the admin page would be read-only (no retry or drop).
        let admin_token_file = dir.join("admin.token");
        write_private(&admin_token_file, &random_password())?;

        // A real file, so that `pecgate status`, `queue` and `reload` work against the demo.
        let config_file = dir.join("pecgate.toml");
        let mut listen_port = port;
        loop {
            let mut toml = demo_config(&dir, listen_port, &provider, &capture, &ca, &password_file, &admin_token_file);
            if imap {
                toml = toml.replacen(&pop3_block(&provider, &ca), &imap_block(&provider, &ca), 1);
            }
            std::fs::write(&config_file, toml).with_context(|| format!("cannot write {}", config_file.display()))?;
            match App::start(&config_file, crate::clock::system()).await {
                Ok(app) => return Ok(Demo { app, provider, capture, dir, admin_token_file, imap }),
                Err(crate::app::Error::Bind { what: "smtp.listen", .. }) if listen_port != 0 => {
                    tracing::warn!(port = listen_port, "port busy; using a free one");
                    listen_port = 0;
                }
                Err(e) => return Err(e).context("gateway start-up"),
            }
        }
    }

    pub fn instructions(&self) -> String {
        let smtp = self.app.smtp_addr;
        let mut s = String::new();
        let _ = writeln!(s, "\npecgate demo is running (Ctrl-C to stop)\n");
        let _ = writeln!(s, "  gateway SMTP listener   {smtp}   (your mail server would relay [PEC] mail here)");
        let _ = writeln!(
            s,
            "  simulated PEC provider  {}   (SMTPS + AUTH as mailbox {DEMO_MAILBOX}; POP3S on {}, IMAPS on {})",
            self.provider.addr, self.provider.pop3_addr, self.provider.imap.addr
        );
        let _ = writeln!(s, "  corporate capture       {}   (stands in for your mail server)", self.capture.addr);
        let _ = writeln!(
            s,
            "  admin                   http://{}/healthz   (web page: http://{}/ ; metrics: /metrics)",
            self.app.admin_addr, self.app.admin_addr
        );
        let _ = writeln!(
            s,
            "  admin token             {}   (log in to the web page with it; the API's bearer: curl -H \"Authorization: Bearer $(cat FILE)\")",
            self.admin_token_file.display()
        );
        let _ = writeln!(s, "\nTry, from another terminal:\n");
        let _ = writeln!(
            s,
            "  swaks --server {} --port {} --from {DEMO_SENDER} --to {DEMO_RECIPIENT} --header 'Subject: [PEC] Contratto di fornitura' --body 'Buongiorno, in allegato il contratto.'",
            smtp.ip(),
            smtp.port()
        );
        let _ = writeln!(s, "\nor, without swaks:\n");
        let _ = writeln!(
            s,
            "  cargo run --release -- send --server {smtp} --from {DEMO_SENDER} --to {DEMO_RECIPIENT} --subject '[PEC] Contratto di fornitura'"
        );
        let _ = writeln!(s, "\nWhat to look at:");
        let _ = writeln!(
            s,
            "  {}/provider/   what the PEC provider received: tag stripped, From = {DEMO_MAILBOX}, X-TipoRicevuta added",
            self.dir.display()
        );
        let _ = writeln!(
            s,
            "  {}/corporate/  what reaches your users: a few seconds later the provider's acceptance (accettazione)\n                 and delivery (avvenuta-consegna) receipts for {DEMO_SENDER}, fetched over {} and signature-checked",
            self.dir.display(),
            if self.imap { "IMAPS (IDLE)" } else { "POP3S" }
        );
        let _ = writeln!(
            s,
            "  recipient names steer the simulated outcome: errore-x@pec... (not delivered), preavviso-x@pec... (12 h warning), x@gmail.example (not PEC: no receipt)"
        );
        let _ = writeln!(
            s,
            "  a Bcc or an unknown sender (--from x@azienda.example) shows a refusal; the admin page shows every message and receipt"
        );
        let config = self.dir.join("pecgate.toml");
        let _ = writeln!(s, "\nThe demo's configuration is {}; with it, from another terminal:", config.display());
        let _ = writeln!(s, "  cargo run --release -- status --config {}       per mailbox: queue, pending receipts", config.display());
        let _ = writeln!(s, "  cargo run --release -- queue list --config {}   what waits to be sent", config.display());
        let _ = writeln!(
            s,
            "  cargo run --release -- reload --config {}       after editing it (add a [[mailbox.user]], say): applied without a restart",
            config.display()
        );
        s
    }

    pub async fn stop(self) {
        self.app.shutdown().await;
    }
}

fn demo_config(
    dir: &Path,
    port: u16,
    provider: &SimProvider,
    capture: &CaptureServer,
    ca: &Path,
    password_file: &Path,
    token_file: &Path,
) -> String {
    // TOML basic strings: escape backslashes and quotes in paths.
    let q = |p: &Path| p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        r#"
[smtp]
listen = "127.0.0.1:{port}"
hostname = "pecgate.demo.localhost"

[store]
path = "{db}"
spool_dir = "{spool}"

[corporate]
host = "127.0.0.1"
port = {cport}
security = "none"
from = "pecgate@azienda.example"

[admin]
listen = "127.0.0.1:0"
token_file = "{token}"

[control]
socket = "{sock}"

[queue]
min_backoff_secs = 5
max_backoff_secs = 60

[[mailbox]]
id = "demo"
address = "{DEMO_MAILBOX}"
username = "{DEMO_MAILBOX}"
password_file = "{pw}"

[mailbox.smtp]
host = "127.0.0.1"
port = {pport}
security = "tls"
ca_file = "{ca}"

{retrieval}
[[mailbox.user]]
address = "{DEMO_SENDER}"
admin = true

[[mailbox.user]]
address = "anna.bianchi@azienda.example"
send = false
"#,
        db = q(&dir.join("pecgate.db")),
        spool = q(&dir.join("spool")),
        sock = q(&dir.join("pecgate.sock")),
        cport = capture.addr.port(),
        pport = provider.addr.port(),
        retrieval = pop3_block(provider, ca),
        pw = q(password_file),
        token = q(token_file),
        ca = q(ca),
    )
}

fn pop3_block(provider: &SimProvider, ca: &Path) -> String {
    let ca = ca.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[mailbox.pop3]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\ninterval_secs = 3\nretention = \"leave\"\n",
        provider.pop3_addr.port()
    )
}

/// With IDLE a receipt arrives within a second; the long interval is only the fallback.
fn imap_block(provider: &SimProvider, ca: &Path) -> String {
    let ca = ca.display().to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[mailbox.imap]\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\nidle = true\ninterval_secs = 60\nretention = \"leave\"\n",
        provider.imap.addr.port()
    )
}

fn random_password() -> String {
    let mut bytes = [0u8; 18];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    std::fs::write(path, secret)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Sends one simple message over plain SMTP; returns the server's final reply.
pub async fn send_plain(server: &str, from: &str, to: &[String], cc: &[String], subject: &str, body: &str) -> Result<String> {
    let (host, port) = server.rsplit_once(':').context("--server must be host:port")?;
    let port: u16 = port.parse().context("--server port")?;
    let endpoint = Endpoint {
        host: host.to_owned(),
        port,
        security: Security::None,
        tls: crate::tls::client_config(None)?,
        timeout: Duration::from_secs(30),
        credentials: None,
        helo: "pecgate-send.localhost".into(),
    };
    let mut builder = mail_builder::MessageBuilder::new().from(from).to(to.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    if !cc.is_empty() {
        builder = builder.cc(cc.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    }
    let message = builder.subject(subject).text_body(body).write_to_vec()?;
    let mut client = SmtpClient::connect(&endpoint).await?;
    let rcpts: Vec<String> = to.iter().chain(cc).cloned().collect();
    let result = client.send(from, &rcpts, &message[..]).await?;
    client.quit().await;
    for (rcpt, r) in &result.rcpts {
        if let Err(e) = r {
            eprintln!("{rcpt}: {e}");
        }
    }
    Ok(match result.data {
        Some(Ok(r)) => r.to_string(),
        Some(Err(e)) => e.reply().map(|r| r.to_string()).unwrap_or_else(|| e.to_string()),
        None => "no recipient accepted".into(),
    })
}
