//! The `pecgate` command line. Exit codes: 0 ok, 1 configuration or start-up
//! error, 2 usage error or unreadable input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};

use pecgate::cli_args::{Command, Invocation, PinAction, QueueAction, Tool, TrustAction};
use pecgate::config::{self, Config, LogFormat};

fn main() -> ExitCode {
    let command = match pecgate::cli_args::parse() {
        Invocation::Command(command) => command,
        Invocation::Tool(tool) => return generate(tool),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pecgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pecgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `pecgate generate-man DIR`, `pecgate completions SHELL` (hidden).
fn generate(tool: Tool) -> ExitCode {
    match tool {
        Tool::GenerateMan { dir } => match pecgate::docgen::write_man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pecgate: cannot write manual pages to {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
        Tool::Completions { shell } => {
            pecgate::docgen::write_completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { config } => run(&config).await,
        Command::CheckConfig { config } => Ok(check_config(&config)),
        Command::Reload { config } => reload(&config).await,
        Command::Sim { config, out, profile } => sim(&config, out, profile.as_deref()).await,
        Command::Demo { dir, port, imap } => demo(&dir, port, imap).await,
        Command::Classify { json, files, trust_store, crl_dir, fetch_crls } => {
            let mut trust = pecgate::pec::signature::TrustStore::builtin();
            if let Some(p) = &trust_store {
                let pem = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                trust.extend(pecgate::pec::signature::TrustStore::from_pem(&pem).map_err(|e| anyhow!("{}: {e}", p.display()))?);
            }
            let crls = match (crl_dir, fetch_crls) {
                (Some(dir), _) => Some(pecgate::crl::CrlCache::open(pecgate::crl::Mode::Offline { dir })?),
                (None, true) => {
                    let cache_dir = std::env::temp_dir().join(format!("pecgate-classify-crl-{}", std::process::id()));
                    let mode = pecgate::crl::Mode::Online { cache_dir: cache_dir.clone(), timeout: std::time::Duration::from_secs(10) };
                    let cache = pecgate::crl::CrlCache::open(mode)?;
                    // First pass for the URLs, then fetch them all, bounded.
                    let mut urls = Vec::new();
                    for file in &files {
                        if let Ok(raw) = std::fs::read(file) {
                            urls.extend(pecgate::pec::signature::verify(&raw, &trust, None).crl_urls);
                        }
                    }
                    for e in cache.refresh_all(&urls).await {
                        eprintln!("pecgate classify: {e}");
                    }
                    let _ = std::fs::remove_dir_all(&cache_dir);
                    Some(cache)
                }
                (None, false) => None,
            };
            let crls = crls.as_deref().map(|c| c as &dyn pecgate::pec::signature::CrlSource);
            Ok(classify(&files, json, &trust, crls))
        }
        Command::Trust { action: TrustAction::Show { config } } => {
            let trust = match &config {
                Some(path) => {
                    let rt = pecgate::runtime::Runtime::build(load(path)?, 1, &path.display().to_string()).map_err(|e| anyhow!("{e}"))?;
                    rt.trust.clone()
                }
                None => std::sync::Arc::new(pecgate::pec::signature::TrustStore::builtin()),
            };
            print!("{}", pecgate::cli::render_trust(&trust, chrono::Utc::now()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { config } => {
            let loaded = load(&config)?;
            let store = pecgate::cli::open_store(&loaded.config, &loaded.resolved.secrets).await?;
            print!("{}", pecgate::cli::status(&loaded.config, &store, now()).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue { config: Some(config), action } => queue(&config, action).await,
        Command::Queue { config: None, .. } => {
            eprintln!("pecgate queue: --config FILE is required");
            Ok(ExitCode::from(2))
        }
        Command::Pin { config: Some(config), action } => pin(&config, action).await,
        Command::Pin { config: None, .. } => {
            eprintln!("pecgate pin: --config FILE is required");
            Ok(ExitCode::from(2))
        }
        Command::TestMailbox { config, mailbox } => test_mailbox(&config, mailbox.as_deref()).await,
        Command::Fetch { config, retry, mailbox } => fetch(&config, retry.as_deref(), mailbox.as_deref()).await,
        Command::Send { server, from, to, cc, subject, body } => send(&server, &from, &to, &cc, &subject, &body).await,
    }
}

fn init_tracing(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn load(path: &Path) -> Result<config::Loaded> {
    config::load(path).map_err(|e| anyhow!("{e}"))
}

fn print_warnings(warnings: &[config::Problem]) {
    for w in warnings {
        tracing::warn!("config: {w}");
    }
}

async fn run(path: &Path) -> Result<ExitCode> {
    let loaded = load(path)?;
    init_tracing(&loaded.config.log.level, loaded.config.log.format);
    print_warnings(&loaded.warnings);
    let app = pecgate::App::start_loaded(loaded, Some(path.to_owned()), pecgate::clock::system()).await.context("start-up failed")?;
    loop {
        match wait_for_signal().await {
            Signal::Stop => break,
            // The outcome is logged (and counted) by the reloader.
            Signal::Reload => {
                let _ = app.reload().await;
            }
        }
    }
    tracing::info!("stopping");
    app.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Everything validation and start-up would check, TLS material included.
fn check_config(path: &Path) -> ExitCode {
    let checked = config::load(path).and_then(|loaded| pecgate::runtime::Runtime::build(loaded, 1, &path.display().to_string()));
    match checked {
        Ok(rt) => {
            for w in &rt.warnings {
                eprintln!("warning: {w}");
            }
            for m in &rt.config.mailboxes {
                for line in config::profiles::report(m) {
                    eprintln!("{line}");
                }
            }
            println!("{}", rt.config.to_masked_json());
            eprintln!("{}: OK ({} mailbox(es), {} warning(s))", path.display(), rt.config.mailboxes.len(), rt.warnings.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `pecgate reload`: the running instance validates and swaps; its answer is printed.
async fn reload(path: &Path) -> Result<ExitCode> {
    let socket = config::control_socket(path);
    let answer = pecgate::control::request_reload(&socket).await.map_err(|e| anyhow!("{e}"))?;
    match (answer.ok, answer.report, answer.error) {
        (true, Some(report), _) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for key in &report.needs_restart {
                eprintln!("needs a restart (running value kept): {key}");
            }
            println!("reloaded (configuration generation {}):", report.generation);
            for c in &report.changes {
                println!("  {c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        (_, _, error) => {
            eprintln!("pecgate reload: refused, the running configuration stays:\n{}", error.unwrap_or_default());
            Ok(ExitCode::from(1))
        }
    }
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM or Ctrl-C stop; SIGHUP reloads (Unix).
async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Stop,
                    _ = term.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Stop
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

/// The simulator needs the config's mailboxes, but the config refers to the
/// CA file the simulator creates: read the raw file first, write the CA, then validate.
async fn sim(path: &Path, out: Option<PathBuf>, profile: Option<&str>) -> Result<ExitCode> {
    init_tracing("info", LogFormat::Text);
    let raw: Config = config::load_unvalidated(path).map_err(|e| anyhow!("{e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let pki = pecgate::tls::TestPki::generate(&["localhost", "127.0.0.1"]).map_err(|e| anyhow!("certificate generation: {e}"))?;
    for m in &raw.mailboxes {
        let ca = m
            .smtp
            .ca_file
            .as_ref()
            .ok_or_else(|| anyhow!("mailbox {}: set smtp.ca_file so the gateway trusts the simulator's CA", m.id))?;
        let ca = if ca.is_relative() { base.join(ca) } else { ca.clone() };
        if let Some(dir) = ca.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&ca, &pki.ca_pem).with_context(|| format!("cannot write {}", ca.display()))?;
    }
    let loaded = load(path)?;
    let (config, secrets) = (loaded.config, loaded.resolved.secrets);
    // One simulated provider per SMTP address; its POP3 side listens where
    // the first of its mailboxes says (or on any free port).
    let mut by_listen: std::collections::BTreeMap<(String, String), Vec<pecgate::sim::provider::SimMailbox>> = Default::default();
    for m in &config.mailboxes {
        let pop3 = m.pop3.as_ref().map(|p| format!("{}:{}", p.host, p.port)).unwrap_or_else(|| "127.0.0.1:0".into());
        by_listen.entry((format!("{}:{}", m.smtp.host, m.smtp.port), pop3)).or_default().push(pecgate::sim::provider::SimMailbox {
            username: m.username.clone(),
            password: secrets.mailboxes.get(&m.id).map(|p| p.expose().to_owned()).unwrap_or_default(),
            address: m.address.clone(),
        });
    }
    let mut servers = Vec::new();
    for ((listen, pop3), mailboxes) in by_listen {
        let pki = pecgate::tls::TestPki { ca_pem: pki.ca_pem.clone(), server: pki.server.clone() };
        let server = pecgate::sim::provider::SimProvider::start_with_pki(&listen, &pop3, mailboxes.clone(), out.clone(), pki)
            .await
            .with_context(|| format!("cannot listen on {listen} / {pop3}"))?;
        println!("simulated PEC provider: smtps://{} pop3s://{} imaps://{}", server.addr, server.pop3_addr, server.imap.addr);
        for m in config.mailboxes.iter().filter(|m| mailboxes.iter().any(|s| s.username == m.username)) {
            let provider = match profile {
                Some(name) => serde_json::from_value(serde_json::Value::String(name.to_owned()))?,
                None => m.provider.unwrap_or(config::profiles::Provider::Custom),
            };
            server.set_profile(&m.username, provider, m.max_message_bytes);
            if provider != config::profiles::Provider::Custom {
                println!("  mailbox {} behaves like {}", m.address, provider.as_str());
            }
        }
        servers.push(server);
    }
    while let Signal::Reload = wait_for_signal().await {}
    for s in &servers {
        println!("{}: {} message(s) accepted", s.addr, s.bag.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(dir: &Path, port: u16, imap: bool) -> Result<ExitCode> {
    init_tracing("info", LogFormat::Text);
    let demo = pecgate::demo::Demo::start(dir, port, imap).await?;
    println!("{}", demo.instructions());
    // SIGHUP (or `pecgate reload`) reloads the demo's pecgate.toml.
    loop {
        match wait_for_signal().await {
            Signal::Stop => break,
            Signal::Reload => {
                let _ = demo.app.reload().await;
            }
        }
    }
    demo.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn now() -> i64 {
    use pecgate::clock::Clock;
    pecgate::clock::SystemClock.now_ms()
}

async fn queue(path: &Path, action: QueueAction) -> Result<ExitCode> {
    let loaded = load(path)?;
    let store = pecgate::cli::open_store(&loaded.config, &loaded.resolved.secrets).await?;
    let result = match action {
        QueueAction::List => pecgate::cli::queue_list(&store, now()).await,
        QueueAction::Show { id } => pecgate::cli::queue_show(&store, &id).await,
        QueueAction::Retry { id } => pecgate::cli::queue_retry(&store, &id, now()).await,
        QueueAction::Drop { id, yes: false } => Err(pecgate::cli::Error::Usage(format!("dropping {id} cannot be undone: add --yes"))),
        QueueAction::Drop { id, yes: true } => pecgate::cli::queue_drop(&store, &id, now()).await,
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (pecgate::cli::Error::NotFound(_) | pecgate::cli::Error::Usage(_))) => {
            eprintln!("pecgate queue: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

async fn pin(path: &Path, action: PinAction) -> Result<ExitCode> {
    let loaded = load(path)?;
    let store = pecgate::cli::open_store(&loaded.config, &loaded.resolved.secrets).await?;
    let config = &loaded.config;
    let result = match action {
        PinAction::Set { mailbox, user } => match pecgate::pin::read_new_pin() {
            Ok(pin) => pecgate::cli::pin_set(config, &store, &mailbox, &user, &pin, now()).await,
            Err(e) => Err(pecgate::cli::Error::Usage(e.to_string())),
        },
        PinAction::Remove { mailbox, user } => pecgate::cli::pin_remove(config, &store, &mailbox, &user).await,
        PinAction::List { mailbox } => pecgate::cli::pin_list(config, &store, mailbox.as_deref()).await,
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (pecgate::cli::Error::NotFound(_) | pecgate::cli::Error::Usage(_))) => {
            eprintln!("pecgate pin: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

async fn fetch(path: &Path, retry: Option<&str>, mailbox: Option<&str>) -> Result<ExitCode> {
    let loaded = load(path)?;
    let store = pecgate::cli::open_store(&loaded.config, &loaded.resolved.secrets).await?;
    let skipped = pecgate::store::Store::skipped(&store, mailbox).await?;
    let Some(id) = retry else {
        print!("{}", pecgate::cli::render_skipped(&skipped, path));
        return Ok(ExitCode::SUCCESS);
    };
    let found: Vec<_> = skipped.iter().filter(|s| s.uidl == id).collect();
    let target = match found.as_slice() {
        [one] => one.mailbox_id.clone(),
        [] => {
            eprintln!("pecgate fetch: no skipped message {id}{}", mailbox.map(|m| format!(" in mailbox {m}")).unwrap_or_default());
            return Ok(ExitCode::from(2));
        }
        _ => {
            eprintln!("pecgate fetch: {id} is skipped in several mailboxes; add --mailbox");
            return Ok(ExitCode::from(2));
        }
    };
    pecgate::store::Store::unskip(&store, &target, id).await?;
    match pecgate::control::request_poll(&config::control_socket(path), &target).await {
        Ok(answer) if answer.ok => println!("{id} in mailbox {target} will be fetched again; the running gateway polls {target} now"),
        _ => println!("{id} in mailbox {target} will be fetched again at the next poll"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn test_mailbox(path: &Path, only: Option<&str>) -> Result<ExitCode> {
    let rt = pecgate::runtime::Runtime::build(load(path)?, 1, &path.display().to_string()).map_err(|e| anyhow!("{e}"))?;
    let config = &rt.config;
    let mailboxes: Vec<_> = rt.mailboxes.iter().filter(|m| only.is_none_or(|id| m.id == id)).collect();
    if mailboxes.is_empty() {
        eprintln!("pecgate test-mailbox: no mailbox {:?} in {}", only.unwrap_or(""), path.display());
        return Ok(ExitCode::from(2));
    }
    let mut all_ok = true;
    for m in mailboxes {
        let steps = pecgate::cli::test_mailbox(config, m).await;
        all_ok &= steps.iter().all(|s| s.ok);
        print!("{}", pecgate::cli::render_steps(&m.id, &steps));
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Exit 2 if any file could not be read; the others are still classified.
fn classify(
    files: &[PathBuf],
    json: bool,
    trust: &pecgate::pec::signature::TrustStore,
    crls: Option<&dyn pecgate::pec::signature::CrlSource>,
) -> ExitCode {
    use std::io::Write;
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read(file) {
            Ok(raw) => {
                let c = pecgate::pec::classify(&raw);
                let at = c.daticert.as_ref().and_then(|d| d.data);
                let sig = pecgate::pec::signature::verify_with(&raw, trust, at, crls);
                let line = if json {
                    let mut v = pecgate::pec::classify_json(&name, &c);
                    v["signature"] = serde_json::json!({
                        "verdict": sig.verdict.as_str(), "signer": sig.signer, "digest": sig.digest,
                        "signer_address": sig.signer_address, "chain": sig.chain, "detail": sig.detail,
                        "crl_urls": sig.crl_urls,
                        "revocation": { "status": sig.revocation.as_str(), "detail": sig.revocation.detail() },
                    });
                    v.to_string()
                } else {
                    format!("{}  signature={}", pecgate::pec::classify_line(&name, &c), sig.verdict.as_str())
                };
                let _ = writeln!(out, "{line}");
            }
            Err(e) => {
                eprintln!("pecgate classify: {name}: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

async fn send(server: &str, from: &str, to: &[String], cc: &[String], subject: &str, body: &str) -> Result<ExitCode> {
    let cc: Vec<String> = cc.iter().filter(|c| !c.is_empty()).cloned().collect();
    let reply = pecgate::demo::send_plain(server, from, to, &cc, subject, body).await?;
    println!("{reply}");
    Ok(if reply.starts_with('2') { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
