//! pecgate.toml(5), generated from conf/pecgate.example.toml itself: the
//! example is the documentation (every key with a comment saying what it is
//! for), so the page is rendered from its comments and lines and there is no
//! second copy to keep in step. The rules the example follows, which the
//! renderer relies on:
//!
//! * the comment block at the top, up to the first blank line, describes the file;
//! * `[section]` / `[[section]]` start a table (`# [[section]]` one left out of the example);
//! * comment lines describe the key line(s) right after them; a key line
//!   that is itself commented out (`# tls_cert_file = "..."`) is an optional
//!   key, shown as the example has it;
//! * a comment right before a table header introduces that table.

use roff::{Roff, bold, italic, roman};

/// The example configuration; the Debian package installs it as /etc/pecgate/pecgate.toml.
pub const EXAMPLE_CONFIG: &str = include_str!("../../conf/pecgate.example.toml");

#[derive(Debug, PartialEq)]
enum Line<'a> {
    Blank,
    Prose(&'a str),
    /// A key line, and whether the example comments it out.
    Key(&'a str, bool),
    /// A table header, and whether the example comments it out.
    Table(&'a str, bool),
}

fn is_key(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

fn is_table(line: &str) -> bool {
    let name = line.trim_start_matches('[').trim_end_matches(']');
    line.starts_with('[')
        && line.ends_with(']')
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._".contains(c))
}

fn classify(raw: &str) -> Line<'_> {
    let line = raw.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(body) = line.strip_prefix('#') {
        let body = body.strip_prefix(' ').unwrap_or(body);
        return if is_table(body) {
            Line::Table(body, true)
        } else if is_key(body) {
            Line::Key(body, true)
        } else {
            Line::Prose(body.trim())
        };
    }
    if is_table(line) { Line::Table(line, false) } else { Line::Key(line, false) }
}

/// The key name of a key line (`listen = "..."` -> `listen`).
fn key_name(line: &str) -> &str {
    line.split_once(" = ").map_or(line, |(k, _)| k)
}

/// Builds the page body: prose waits until the key lines it describes (or
/// the table it introduces) arrive.
struct Page {
    roff: Roff,
    prose: Vec<String>,
    keys: Vec<(String, bool)>,
}

impl Page {
    fn paragraph(&mut self) {
        if !self.prose.is_empty() {
            self.roff.control("PP", []);
            self.roff.text([roman(self.prose.join(" "))]);
            self.prose.clear();
        }
    }

    /// One entry: the key names as the tag, then the description, then the lines as the example has them.
    fn entry(&mut self) {
        if self.keys.is_empty() {
            return self.paragraph();
        }
        self.roff.control("TP", []);
        let names: Vec<&str> = self.keys.iter().map(|(k, _)| key_name(k)).collect();
        self.roff.text([bold(names.join(", "))]);
        if !self.prose.is_empty() {
            self.roff.text([roman(self.prose.join(" "))]);
        }
        for (line, commented) in &self.keys {
            self.roff.control("br", []);
            let label = if *commented { "Not set in the example: " } else { "Example: " };
            self.roff.text([italic(label), roman(if *commented { format!("# {line}") } else { line.clone() })]);
        }
        self.prose.clear();
        self.keys.clear();
    }

    fn table(&mut self, name: &str, commented: bool) {
        self.entry_if_keys();
        let heading = if commented { format!("{name} (not in the example; one per entry)") } else { name.to_owned() };
        self.roff.control("SS", [heading.as_str()]);
        self.paragraph();
    }

    fn entry_if_keys(&mut self) {
        if !self.keys.is_empty() {
            self.entry();
        }
    }
}

/// The roff source of pecgate.toml(5).
pub fn config_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut page = Page { roff: Roff::new(), prose: Vec::new(), keys: Vec::new() };
    page.roff.control("TH", ["PECGATE.TOML", "5", "", &format!("pecgate {version}"), "pecgate manual"]);
    page.roff.control("SH", ["NAME"]);
    page.roff.text([roman("pecgate.toml - configuration of the pecgate PEC gateway")]);
    page.roff.control("SH", ["SYNOPSIS"]);
    page.roff.text([bold("/etc/pecgate/pecgate.toml")]);
    page.roff.control("SH", ["DESCRIPTION"]);

    let mut lines = EXAMPLE_CONFIG.lines().map(classify).peekable();
    // The file's own introduction, line by line as written.
    let mut first = true;
    while let Some(Line::Prose(text)) = lines.peek() {
        if !first {
            page.roff.control("br", []);
        }
        page.roff.text([roman(*text)]);
        first = false;
        lines.next();
    }
    page.roff.control("PP", []);
    page.roff.text([roman(
        "This page is generated from the example configuration that comes with pecgate (the Debian package installs it as \
         /etc/pecgate/pecgate.toml and keeps a copy in /usr/share/doc/pecgate/examples/). Each entry names a key, says what \
         it is for and shows its line as the example has it. A line marked \"Not set in the example\" is commented out there: \
         the key is optional and the value is an illustration. Check a file with pecgate check-config --config FILE.",
    )]);
    page.roff.control("SH", ["KEYS"]);
    for line in lines {
        match line {
            Line::Blank => page.entry(),
            Line::Prose(text) => {
                page.entry_if_keys();
                page.prose.push(text.to_owned());
            }
            Line::Key(text, commented) => page.keys.push((text.to_owned(), commented)),
            Line::Table(name, commented) => page.table(name, commented),
        }
    }
    page.entry();
    page.roff.control("SH", ["SEE ALSO"]);
    page.roff.text([
        bold("pecgate"),
        roman("(1), "),
        bold("pecgate-check-config"),
        roman("(1), "),
        bold("pecgate-reload"),
        roman("(1), "),
        bold("pecgate-test-mailbox"),
        roman("(1)"),
    ]);
    page.roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key and table of the example, commented out or not.
    fn example_names() -> (Vec<String>, Vec<String>) {
        let (mut keys, mut tables) = (Vec::new(), Vec::new());
        for line in EXAMPLE_CONFIG.lines().map(classify) {
            match line {
                Line::Key(text, _) => keys.push(key_name(text).to_owned()),
                Line::Table(name, _) => tables.push(name.to_owned()),
                _ => {}
            }
        }
        (keys, tables)
    }

    #[test]
    fn every_key_and_table_of_the_example_is_on_the_page() {
        let page = config_page();
        let (keys, tables) = example_names();
        assert!(keys.len() > 80, "the example has about a hundred keys, found {}", keys.len());
        for key in &keys {
            assert!(page.contains(&format!("\\fR{key} = ")) || page.contains(&format!("\\fR# {key} = ")), "key {key} missing");
        }
        for table in &tables {
            assert!(page.contains(&format!(".SS \"{table}")) || page.contains(&format!(".SS {table}\n")), "table {table} missing");
        }
        assert!(page.contains("\\fBmax_message_size\\fR\nLargest message accepted"), "the comment above a key describes it");
        assert!(page.contains(".SS \"[[smtp.account]] (not in the example"), "commented-out tables are named");
    }

    #[test]
    fn only_known_macros_start_a_line() {
        // Text lines never start with a period: every control line is one the renderer meant.
        for line in config_page().lines().filter(|l| l.starts_with('.') || l.starts_with('\'')) {
            let mac = line[1..].split_whitespace().next().unwrap_or("");
            assert!(["ie", "el", "TH", "SH", "SS", "PP", "TP", "br"].contains(&mac), "unexpected control line {line:?}");
        }
    }

    #[test]
    fn every_key_the_example_comments_out_is_a_real_key() {
        // Uncommenting every optional key and table must still parse into the
        // schema (unknown keys are refused): the example cannot document a key
        // pecgate does not have.
        let uncommented: String = EXAMPLE_CONFIG
            .lines()
            .map(|raw| match classify(raw) {
                Line::Key(text, true) | Line::Table(text, true) => format!("{text}\n"),
                _ => format!("{raw}\n"),
            })
            .collect();
        assert!(!uncommented.contains("\n# tls_cert_file"), "keys were uncommented");
        use figment::providers::Format as _;
        let parsed: Result<crate::config::Config, _> =
            figment::Figment::new().merge(figment::providers::Toml::string(&uncommented)).extract();
        let config = parsed.unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(config.smtp.tls_cert_file.as_deref(), Some(std::path::Path::new("/etc/pecgate/tls/cert.pem")));
    }
}
