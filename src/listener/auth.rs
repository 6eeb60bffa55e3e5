//! SMTP AUTH responses (RFC 4954): decoding of the PLAIN (RFC 4616) and LOGIN
//! mechanisms, pure. The session runs the exchange and asks the backend to
//! check the credentials; nothing here logs, and the password lives in a
//! [`Secret`] so that a stray `{:?}` cannot print it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::{MAX_AUTH_FIELD, Secret};
use crate::proto::reply::{self, Reply};

/// The LOGIN mechanism's challenges, base64 of `Username:` and `Password:`.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// What a client sent, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

/// Why a response was not accepted; [`Error::reply`] is what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("client cancelled the exchange")]
    Cancelled,
    #[error("response is not base64")]
    Base64,
    #[error("response is malformed")]
    Malformed,
    /// PLAIN with an authorization identity other than the login: pecgate
    /// has no proxy authorization, so this is a failed authentication.
    #[error("authorization identity differs from the login")]
    Authorization,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn reply(&self) -> Reply {
        match self {
            Error::Cancelled => reply::r501_auth_cancelled(),
            Error::Base64 => reply::r501_auth_base64(),
            Error::Malformed => reply::r501_auth_malformed(),
            Error::Authorization => reply::r535_auth_failed(),
        }
    }

    /// Whether this counts against the session's AUTH failure limit.
    pub fn is_failure(&self) -> bool {
        matches!(self, Error::Authorization)
    }
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64. An empty response
/// (`=` as initial response) is malformed, `*` cancels (RFC 4954 §4).
pub fn decode_plain(response: &str) -> Result<Credentials> {
    let bytes = decode(response)?;
    let mut parts = bytes.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Malformed);
    };
    let authzid = field(authzid, true)?;
    let username = field(authcid, false)?;
    let password = field(passwd, false)?;
    if !authzid.is_empty() && authzid != username {
        return Err(Error::Authorization);
    }
    Ok(Credentials { username, password: Secret::new(password) })
}

/// One LOGIN response (the username or the password), base64.
pub fn decode_login(response: &str) -> Result<Secret> {
    let bytes = decode(response)?;
    if bytes.contains(&0) {
        return Err(Error::Malformed);
    }
    field(&bytes, false).map(Secret::new)
}

fn decode(response: &str) -> Result<Vec<u8>> {
    let response = response.trim();
    if response == "*" {
        return Err(Error::Cancelled);
    }
    // Three fields of MAX_AUTH_FIELD plus two NULs, base64-encoded; longer is refused before decoding.
    if response.len() > (3 * MAX_AUTH_FIELD + 2).div_ceil(3) * 4 {
        return Err(Error::Malformed);
    }
    B64.decode(response).map_err(|_| Error::Base64)
}

/// A UTF-8 field of at most [`MAX_AUTH_FIELD`] bytes; empty only where allowed.
fn field(bytes: &[u8], may_be_empty: bool) -> Result<String> {
    if (bytes.is_empty() && !may_be_empty) || bytes.len() > MAX_AUTH_FIELD {
        return Err(Error::Malformed);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        B64.encode(bytes)
    }

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials { username: user.into(), password: Secret::new(password) }
    }

    #[test]
    fn plain_table() {
        let long = "x".repeat(MAX_AUTH_FIELD + 1);
        let max = "y".repeat(MAX_AUTH_FIELD);
        let cases: Vec<(String, Result<Credentials>)> = vec![
            (b64(b"\0scanner\0s3cret"), Ok(creds("scanner", "s3cret"))),
            (b64(b"scanner\0scanner\0s3cret"), Ok(creds("scanner", "s3cret"))),
            (b64("\0utente\0pässwörd".as_bytes()), Ok(creds("utente", "pässwörd"))),
            (b64(format!("\0{max}\0{max}").as_bytes()), Ok(creds(&max, &max))),
            (format!(" {} ", b64(b"\0u\0p")), Ok(creds("u", "p"))),
            ("*".into(), Err(Error::Cancelled)),
            ("not base64!".into(), Err(Error::Base64)),
            ("AHUAcA".into(), Err(Error::Base64)), // padding missing
            ("AHUA cA==".into(), Err(Error::Base64)),
            (String::new(), Err(Error::Malformed)),
            (b64(b"scanner s3cret"), Err(Error::Malformed)),
            (b64(b"\0scanner"), Err(Error::Malformed)),
            (b64(b"\0scanner\0s3cret\0extra"), Err(Error::Malformed)),
            (b64(b"\0\0s3cret"), Err(Error::Malformed)),
            (b64(b"\0scanner\0"), Err(Error::Malformed)),
            (b64(b"\0scanner\0\xff\xfe"), Err(Error::Malformed)),
            (b64(format!("\0{long}\0p").as_bytes()), Err(Error::Malformed)),
            (b64(format!("\0u\0{long}").as_bytes()), Err(Error::Malformed)),
            (b64(format!("{long}\0u\0p").as_bytes()), Err(Error::Malformed)),
            (b64(&vec![b'a'; 4000]), Err(Error::Malformed)),
            (b64(b"admin\0scanner\0s3cret"), Err(Error::Authorization)),
        ];
        for (response, want) in cases {
            assert_eq!(decode_plain(&response), want, "{response:?}");
        }
    }

    #[test]
    fn login_table() {
        let cases: Vec<(String, Result<&str>)> = vec![
            (b64(b"scanner"), Ok("scanner")),
            (b64("pässwörd".as_bytes()), Ok("pässwörd")),
            ("*".into(), Err(Error::Cancelled)),
            ("%%%".into(), Err(Error::Base64)),
            (String::new(), Err(Error::Malformed)),
            (b64(b"a\0b"), Err(Error::Malformed)),
            (b64(b"\xc3"), Err(Error::Malformed)),
            (b64("z".repeat(MAX_AUTH_FIELD + 1).as_bytes()), Err(Error::Malformed)),
        ];
        for (response, want) in cases {
            assert_eq!(decode_login(&response).as_ref().map(Secret::expose).map_err(|e| *e), want, "{response:?}");
        }
    }

    #[test]
    fn errors_map_to_replies() {
        let cases = [
            (Error::Cancelled, "501 5.7.0 authentication cancelled", false),
            (Error::Base64, "501 5.5.2 invalid base64 in AUTH response", false),
            (Error::Malformed, "501 5.5.2 malformed AUTH response", false),
            (Error::Authorization, "535 5.7.8 authentication credentials invalid", true),
        ];
        for (e, wire, failure) in cases {
            assert_eq!(e.reply().to_wire(), format!("{wire}\r\n"));
            assert_eq!(e.is_failure(), failure, "{e:?}");
        }
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = decode_plain(&b64(b"\0scanner\0pw-debug-leak")).unwrap();
        assert!(!format!("{c:?}").contains("pw-debug-leak"));
    }
}
