//! A secret value (password, token) that never prints.

use std::fmt;

/// Holds a password or token. `Debug` and `Display` print `***`, so a secret
/// cannot leak through logs, error messages or `check-config` output by
/// accident; the value is reachable only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The cleartext, for the one place that needs it (AUTH on the wire).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads a secret from a file; one trailing newline (LF or CRLF) is trimmed.
    pub fn from_file_contents(contents: &str) -> Self {
        let trimmed = contents.strip_suffix("\r\n").or_else(|| contents.strip_suffix('\n')).unwrap_or(contents);
        Self(trimmed.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn trims_one_newline() {
        for (input, want) in [("pw", "pw"), ("pw\n", "pw"), ("pw\r\n", "pw"), ("pw\n\n", "pw\n"), ("", "")] {
            assert_eq!(Secret::from_file_contents(input).expose(), want, "{input:?}");
        }
    }
}
