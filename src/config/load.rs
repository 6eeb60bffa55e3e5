//! Reading the configuration: the TOML file, then `PECGATE_` environment
//! overrides, then validation. Parse errors name the key in the same style as
//! validation problems (`mailbox[0].receipts`) and the place the bad value
//! came from (the file or an environment variable).

use std::path::Path;

use figment::Figment;
use figment::error::{Actual, Kind};
use figment::providers::{Env, Format, Serialized, Toml};

use super::{Config, Error, Loaded, Problem, Result};

/// Loads `path`, applies `PECGATE_*` overrides (`PECGATE_SMTP__LISTEN=...`),
/// validates, and resolves secrets.
pub fn load(path: &Path) -> Result<Loaded> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { file: file.clone(), source })?;
    let figment = Figment::new().merge(Toml::string(&text)).merge(env_overrides());
    let mut loaded = finish(figment, &file, path.parent())?;
    if let Some(w) = literal_secret_in_readable_file(path, &loaded.config) {
        loaded.warnings.push(w);
    }
    Ok(loaded)
}

/// `PECGATE_SECTION__KEY=value` overrides. Only names with a section (or the
/// one top-level key) count, so `PECGATE_CONFIG` and other variables of the
/// same prefix are not mistaken for unknown keys.
fn env_overrides() -> Env {
    Env::prefixed("PECGATE_").filter(|k| k.as_str().contains("__") || k == "allow_plaintext_secrets").split("__")
}

/// Reads the file and overrides without validating (the simulator needs the
/// paths before the files they name exist).
pub fn load_unvalidated(path: &Path) -> Result<Config> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { file: file.clone(), source })?;
    extract(Figment::new().merge(Toml::string(&text)).merge(env_overrides()), &file)
}

/// Where the instance configured by `path` listens for `pecgate reload`:
/// read leniently, so that the running gateway (not this lookup) reports
/// what is wrong with a file being reloaded.
pub fn control_socket(path: &Path) -> std::path::PathBuf {
    let configured: Option<std::path::PathBuf> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| Figment::new().merge(Toml::string(&text)).merge(env_overrides()).extract_inner("control.socket").ok());
    let socket = configured.unwrap_or_else(|| super::ControlConfig::default().socket);
    match (socket.is_relative(), path.parent()) {
        (true, Some(dir)) => dir.join(socket),
        _ => socket,
    }
}

/// Like [`load`] but from a string (tests); relative paths resolve from `base`.
pub fn load_str(text: &str, base: Option<&Path>) -> Result<Loaded> {
    finish(Figment::new().merge(Toml::string(text)), "<config>", base)
}

fn finish(figment: Figment, file: &str, base: Option<&Path>) -> Result<Loaded> {
    extract(figment, file)?.validated(file, base)
}

fn extract(figment: Figment, file: &str) -> Result<Config> {
    let parse_error = |e| Error::Parse { file: file.to_owned(), problems: describe(e) };
    let mut tree: figment::value::Dict = figment.extract().map_err(parse_error)?;
    let filled = super::profiles::apply(&mut tree);
    // Without a provider profile the file is read as it is (nothing re-serialised).
    let mut config: Config =
        if filled.is_empty() { figment.extract() } else { Figment::from(Serialized::defaults(tree)).extract() }.map_err(parse_error)?;
    for (i, _, values) in filled {
        if let Some(m) = config.mailboxes.get_mut(i) {
            m.profile_filled = values;
        }
    }
    Ok(config)
}

/// One problem per figment error, in validation's key style.
fn describe(e: figment::Error) -> Vec<Problem> {
    e.into_iter()
        .map(|e| {
            let path = &e.path;
            let key = key_of(path);
            let message = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    let known = if expected.is_empty() { String::new() } else { format!(" (known keys here: {})", expected.join(", ")) };
                    format!("unknown key {field:?}{known}")
                }
                Kind::InvalidValue(actual, expected) | Kind::InvalidType(actual, expected) => invalid(&key, actual, expected),
                Kind::UnknownVariant(found, expected) => format!("{found:?} is not one of: {}", expected.join(", ")),
                other => other.to_string(),
            };
            let origin = match env_var_of(path) {
                Some(var) => format!(" (from environment variable {var})"),
                None => String::new(),
            };
            Problem { key: format!("{key}{origin}"), message }
        })
        .collect()
}

/// `["mailbox", "0", "smtp", "port"]` -> `mailbox[0].smtp.port`.
fn key_of(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    if key.is_empty() { "(top level)".to_owned() } else { key }
}

/// What an admin should read instead of serde's `invalid value: integer
/// 99999, expected u16`.
fn invalid(key: &str, actual: &Actual, expected: &str) -> String {
    let range = match expected {
        "u8" => Some(u8::MAX as u64),
        "u16" => Some(u16::MAX as u64),
        "u32" => Some(u32::MAX as u64),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    let field = key.rsplit('.').next().unwrap_or(key);
    let actual = match actual {
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Bool(b) => b.to_string(),
        Actual::Str(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    match range {
        Some(_) if field == "port" => format!("{actual} is not a TCP port; write a number from 1 to 65535 (e.g. 465)"),
        Some(max) => format!("{actual} is not a whole number from 0 to {max}"),
        None if expected.contains("string") => format!("{actual} must be a quoted string"),
        None => format!("{actual} is not valid here: expected {expected}"),
    }
}

/// The `PECGATE_` variable that set `path`, if the environment set it.
fn env_var_of(path: &[String]) -> Option<String> {
    let dotted = path.join(".");
    if dotted.is_empty() {
        return None;
    }
    Figment::from(env_overrides()).find_value(&dotted).ok()?;
    Some(format!("PECGATE_{}", path.iter().map(|p| p.to_ascii_uppercase()).collect::<Vec<_>>().join("__")))
}

/// A literal password in a file others can read is a password others can read.
#[cfg(unix)]
fn literal_secret_in_readable_file(path: &Path, config: &Config) -> Option<Problem> {
    use std::os::unix::fs::PermissionsExt;
    let literal = config.mailboxes.iter().any(|m| m.password.is_some())
        || config.smtp.accounts.iter().any(|a| a.password.is_some())
        || config.corporate.password.is_some()
        || config.store.password.is_some()
        || config.directory.password.is_some();
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (literal && mode & 0o007 != 0).then(|| Problem {
        key: "allow_plaintext_secrets".into(),
        message: format!(
            "{} holds a literal password and is readable by others (mode {:o}); chmod 640 it (owner root, group pecgate), or move the password to a password_file",
            path.display(),
            mode & 0o777
        ),
    })
}

#[cfg(not(unix))]
fn literal_secret_in_readable_file(_: &Path, _: &Config) -> Option<Problem> {
    None
}
