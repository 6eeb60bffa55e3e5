//! The `pecgate` command line, as clap definitions: the binary (src/main.rs)
//! parses with them, and [`crate::docgen`] turns the same definitions into
//! manual pages and shell completions, so they cannot disagree. [`Cli`] is
//! what users see; [`Tool`] adds the hidden generators, accepted by
//! [`parse`] but in no page, help text or completion.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pecgate",
    version,
    about = "PEC gateway: your mail server in, the PEC provider out",
    long_about = "PEC gateway: your mail server in, the PEC provider out.\n\n\
Your mail server relays PEC-bound mail (subject tag [PEC]) to pecgate's SMTP listener; pecgate checks who may \
use which PEC mailbox, queues the message durably and submits it to the PEC provider over SMTPS with AUTH, \
then fetches receipts and incoming PEC over POP3S and delivers them back to your mail server.\n\n\
The configuration is one TOML file, /etc/pecgate/pecgate.toml when installed from the Debian package \
(every key: pecgate.toml(5)). Exit codes: 0 ok, 1 configuration, start-up or check error, 2 usage error, \
unknown id or unreadable input."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// The configuration file, e.g. /etc/pecgate/pecgate.toml (every key: pecgate.toml(5)).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration and print it with secrets masked; exit 1 on errors.
    CheckConfig {
        /// The configuration file, e.g. /etc/pecgate/pecgate.toml (every key: pecgate.toml(5)).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
    },
    /// Make the running gateway re-read its configuration (like SIGHUP) and
    /// print what changed; exit 1 if it refused the new configuration.
    Reload {
        /// The configuration the gateway runs with (names its control socket).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
    },
    /// Run the simulated PEC provider for the mailboxes of a configuration
    /// (writes its CA certificate to each mailbox's smtp.ca_file).
    Sim {
        /// The configuration whose mailboxes the simulator serves.
        #[arg(long, short)]
        config: PathBuf,
        /// Keep a copy of every accepted message here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Behave like this provider for every mailbox (rate-limit reply,
        /// size rule with non-accettazione, final 5.4.1 preavviso); without
        /// it, each mailbox behaves like its own `provider`.
        #[arg(long, value_parser = ["aruba", "legalmail", "namirial", "postecert", "register", "custom"])]
        profile: Option<String>,
    },
    /// Gateway + simulated provider + capture server for the corporate side, on loopback.
    Demo {
        /// Where the demo keeps its database, spool and captured mail.
        #[arg(long, default_value = "var/demo")]
        dir: PathBuf,
        /// Port of the gateway's SMTP listener (0 = any free port).
        #[arg(long, default_value_t = 2525)]
        port: u16,
        /// Fetch receipts over IMAPS with IDLE (within a second) instead of POP3S every 3 s.
        #[arg(long)]
        imap: bool,
    },
    /// Per mailbox: queue, oldest waiting message, receipts still pending.
    Status {
        /// The configuration file, e.g. /etc/pecgate/pecgate.toml (every key: pecgate.toml(5)).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
    },
    /// Inspect and act on the queue (works next to a running gateway).
    Queue {
        /// The configuration (may also follow the action: `queue list --config F`).
        #[arg(long, short, env = "PECGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Messages left on the providers' servers because pecgate cannot take
    /// them (too large, a transfer that never ended); `--retry` fetches one again.
    Fetch {
        /// The configuration file, e.g. /etc/pecgate/pecgate.toml (every key: pecgate.toml(5)).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
        /// The id (POP3 UIDL) of a skipped message to fetch again at the next poll.
        #[arg(long)]
        retry: Option<String>,
        /// The mailbox of `--retry` (needed only if the id is skipped in several).
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// Sending PINs of `require_pin` mailboxes (Argon2id hashes in the store;
    /// the PIN is read from the terminal without echo, never from arguments).
    Pin {
        /// The configuration (may also follow the action: `pin list --config F`).
        #[arg(long, short, env = "PECGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: PinAction,
    },
    /// Check a mailbox end to end without sending: DNS, TCP, TLS, AUTH on the
    /// provider's SMTP (then QUIT), POP3 login and STAT.
    TestMailbox {
        /// The configuration file, e.g. /etc/pecgate/pecgate.toml (every key: pecgate.toml(5)).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: PathBuf,
        /// Only this mailbox id (default: all).
        #[arg(long)]
        mailbox: Option<String>,
    },
    /// Classify PEC messages and receipts (.eml files): kind, references, daticert.
    Classify {
        /// One JSON object per line (the stable contract) instead of a table.
        #[arg(long)]
        json: bool,
        /// PEM bundle of PEC provider CAs trusted for the signature check, on
        /// top of the built-in AgID CA1 (`pecgate trust show`).
        #[arg(long)]
        trust_store: Option<PathBuf>,
        /// Check the signer's revocation against the CRL files in this
        /// directory (offline).
        #[arg(long, conflicts_with = "fetch_crls")]
        crl_dir: Option<PathBuf>,
        /// Check the signer's revocation by fetching the CRLs its certificate
        /// names (HTTP, 10 s each). Without this or --crl-dir, revocation
        /// reads "not-checked".
        #[arg(long)]
        fetch_crls: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The trust anchors for provider signatures.
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Send a test message over plain SMTP (to try the demo without swaks).
    Send {
        #[arg(long, default_value = "127.0.0.1:2525")]
        server: String,
        #[arg(long)]
        from: String,
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long, default_value = "")]
        cc: Vec<String>,
        #[arg(long, default_value = "[PEC] prova")]
        subject: String,
        #[arg(long, default_value = "Messaggio di prova inviato con pecgate send.")]
        body: String,
    },
}

#[derive(Subcommand)]
pub enum TrustAction {
    /// List the anchors in use: subject, SHA-256 fingerprint, validity, source.
    Show {
        /// What this configuration trusts (default: the built-in anchors only).
        #[arg(long, short, env = "PECGATE_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum QueueAction {
    /// Messages waiting, oldest first.
    List,
    /// One message: recipients, every event, linked receipts.
    Show { id: String },
    /// Make a waiting message due now.
    Retry { id: String },
    /// Give up a waiting message (recorded with who did it).
    Drop {
        id: String,
        /// Required: dropping cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum PinAction {
    /// Set or replace a user's PIN (4 to 12 digits): asked twice on the
    /// terminal without echo; without a terminal, one line of standard input.
    Set {
        /// The mailbox id, e.g. legal.
        #[arg(long)]
        mailbox: String,
        /// The user's company address, e.g. mario.rossi@azienda.it.
        #[arg(long)]
        user: String,
    },
    /// Remove a user's PIN (a require_pin mailbox then refuses the user).
    Remove {
        #[arg(long)]
        mailbox: String,
        #[arg(long)]
        user: String,
    },
    /// Who has a PIN, and since when (never the hashes).
    List {
        /// Only this mailbox id.
        #[arg(long)]
        mailbox: Option<String>,
    },
}

/// Hidden subcommands that generate the documentation (used by .ci/package).
#[derive(Subcommand)]
pub enum Tool {
    /// Write the manual pages into DIR: pecgate(1), one per subcommand, and
    /// pecgate.toml(5) from the example configuration.
    #[command(hide = true)]
    GenerateMan { dir: PathBuf },
    /// Print the completion script for a shell (bash, zsh, fish, ...) on standard output.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

pub enum Invocation {
    Command(Command),
    Tool(Tool),
}

/// Parses the process arguments (exits with clap's message and code 2 on a usage error).
pub fn parse() -> Invocation {
    let matches = Tool::augment_subcommands(Cli::command()).get_matches();
    if let Ok(tool) = Tool::from_arg_matches(&matches) {
        return Invocation::Tool(tool);
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Invocation::Command(cli.command),
        Err(e) => e.exit(),
    }
}
