//! Manual pages and shell completions, generated from the same sources the
//! program uses: the clap definitions in [`crate::cli_args`] give pecgate(1)
//! and one page per subcommand (pecgate-check-config(1), pecgate-queue-list(1),
//! ...), and conf/pecgate.example.toml, the file the Debian package installs
//! as /etc/pecgate/pecgate.toml, gives pecgate.toml(5) ([`config_page`]).
//! `pecgate generate-man DIR` and `pecgate completions SHELL` (hidden
//! subcommands) call these; .ci/package puts the output in the package.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use roff::{Roff, bold, roman};

use crate::cli_args::Cli;

mod config_page;

pub use config_page::{EXAMPLE_CONFIG, config_page};

/// One manual page: the command, and the pages of its parent and children.
struct Page {
    cmd: clap::Command,
    parent: Option<String>,
    children: Vec<String>,
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned()
}

/// The command tree as the manual pages show it: no `help` subcommand,
/// names like `pecgate-queue-list`. [`Cli`] holds only the documented
/// commands; the generators are [`crate::cli_args::Tool`], parsed beside it.
fn pages() -> Vec<Page> {
    fn walk(cmd: &clap::Command, parent: Option<String>, out: &mut Vec<Page>) {
        let children: Vec<String> = cmd.get_subcommands().map(page_name).collect();
        out.push(Page { cmd: cmd.clone(), parent, children });
        for sub in cmd.get_subcommands() {
            walk(sub, Some(page_name(cmd)), out);
        }
    }
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut all = Vec::new();
    walk(&root, None, &mut all);
    all
}

/// SEE ALSO (the parent, the subcommands, the configuration page) and FILES.
fn see_also(page: &Page) -> String {
    let mut refs: Vec<(String, &str)> = Vec::new();
    if let Some(parent) = &page.parent {
        refs.push((parent.clone(), "1"));
    }
    if page.parent.as_deref().is_some_and(|p| p != "pecgate") {
        refs.push(("pecgate".into(), "1"));
    }
    refs.extend(page.children.iter().map(|c| (c.clone(), "1")));
    refs.push(("pecgate.toml".into(), "5"));
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        line.push(bold(name.as_str()));
        line.push(roman(format!("({section}){}", if i + 1 < refs.len() { ", " } else { "" })));
    }
    roff.text(line);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold("/etc/pecgate/pecgate.toml")]);
    roff.text([roman("The configuration (Debian package; elsewhere give any file with --config or PECGATE_CONFIG).")]);
    roff.control("TP", []);
    roff.text([bold("/var/lib/pecgate")]);
    roff.text([roman("The database and the spool in the example configuration ([store] path, spool_dir).")]);
    roff.render()
}

/// Writes every page into `dir` (created if missing) and returns their paths.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let source = format!("pecgate {}", env!("CARGO_PKG_VERSION"));
    let mut written = Vec::new();
    for page in pages() {
        let man = clap_mangen::Man::new(page.cmd.clone()).manual("pecgate manual").source(source.clone());
        let mut text = Vec::new();
        man.render(&mut text)?;
        text.extend_from_slice(see_also(&page).as_bytes());
        let path = dir.join(man.get_filename());
        std::fs::write(&path, text)?;
        written.push(path);
    }
    let path = dir.join("pecgate.toml.5");
    std::fs::write(&path, config_page())?;
    written.push(path);
    Ok(written)
}

/// The completion script for `shell`, for the `pecgate` binary.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "pecgate", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command_and_hidden_ones_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(dir.path()).unwrap();
        let names: Vec<String> = pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for want in ["pecgate.1", "pecgate-run.1", "pecgate-check-config.1", "pecgate-queue.1", "pecgate-queue-drop.1", "pecgate.toml.5"] {
            assert!(names.contains(&want.to_owned()), "{want} missing from {names:?}");
        }
        for hidden in ["pecgate-generate-man.1", "pecgate-completions.1", "pecgate-help.1"] {
            assert!(!names.contains(&hidden.to_owned()), "{hidden} should not have a page");
        }
        let check = std::fs::read_to_string(dir.path().join("pecgate-check-config.1")).unwrap();
        assert!(check.starts_with(".ie \\n(.g .ds Aq"), "a roff page: {}", &check[..80]);
        assert!(check.contains("PECGATE_CONFIG"), "the option's environment variable is documented");
        assert!(check.contains(".SH \"SEE ALSO\"") && check.contains("pecgate.toml"), "{check}");
        let queue = std::fs::read_to_string(dir.path().join("pecgate-queue.1")).unwrap();
        assert!(queue.contains("pecgate\\-queue\\-list") || queue.contains("pecgate-queue-list"), "queue lists its actions");
    }

    #[test]
    fn completions_cover_the_visible_subcommands() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("check-config") && text.contains("test-mailbox"), "{shell}: {text}");
            assert!(!text.contains("generate-man"), "{shell}: hidden subcommands are not offered");
        }
    }
}
