//! Unit tests of the POP3 client's pure parts; the client against a server
//! (the simulator and scripted peers) is tested in `tests/pop3_client.rs`.

use super::*;

#[test]
fn error_classes() {
    let cases: Vec<(Error, bool, bool)> = vec![
        (Error::Auth { reply: "[AUTH] no".into() }, true, false),
        (Error::Server { command: "login".into(), reply: "[IN-USE] locked".into() }, false, true),
        (Error::Server { command: "RETR 1".into(), reply: "[SYS/PERM] gone".into() }, false, false),
        (Error::Timeout { stage: "x" }, false, true),
        (Error::Io { stage: "x", source: io::ErrorKind::UnexpectedEof.into() }, false, true),
        (Error::Tls { host: "h".into(), source: io::ErrorKind::InvalidData.into() }, false, false),
        (Error::Tls { host: "h".into(), source: io::ErrorKind::ConnectionReset.into() }, false, true),
        (Error::TooLarge { limit: 1 }, false, false),
        (Error::NoStls, false, false),
        (Error::Protocol { stage: "x", line: "y".into() }, false, true),
    ];
    for (e, auth, temporary) in cases {
        assert_eq!((e.is_auth(), e.is_temporary()), (auth, temporary), "{e:?}");
    }
}

#[test]
fn login_replies() {
    let err = |t: &str| auth_result(Reply { ok: false, text: t.into() });
    assert!(auth_result(Reply { ok: true, text: String::new() }).is_ok());
    assert!(matches!(err("invalid password"), Err(Error::Auth { .. })));
    assert!(matches!(err("[AUTH] invalid"), Err(Error::Auth { .. })));
    assert!(matches!(err("[IN-USE] locked"), Err(Error::Server { .. })));
    assert!(matches!(err("[SYS/TEMP] later"), Err(Error::Server { .. })));
}
