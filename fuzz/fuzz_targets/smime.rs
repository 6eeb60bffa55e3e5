//! S/MIME verification (`pec::signature::verify`): the MIME split of
//! multipart/signed, the BER-to-DER normaliser, CMS SignedData decoding and
//! the certificate path, against the TEST-ONLY trust store.
//!
//! Every input is tried twice: as a whole message, and as the bytes of the
//! `smime.p7s` part of a fixed message (so mutations reach the BER/CMS code
//! directly instead of dying in the base64 or MIME layer).
#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset};
use libfuzzer_sys::fuzz_target;
use pecgate::pec::signature::{TestSigner, TrustStore, Verdict, verify};

static TRUST: LazyLock<TrustStore> = LazyLock::new(|| {
    let signer = TestSigner::load().expect("TEST-ONLY signer");
    TrustStore::from_pem(signer.ca_pem()).expect("TEST-ONLY CA")
});

/// A fixed verification time inside the TEST-ONLY certificates' validity, so runs are reproducible.
static AT: LazyLock<DateTime<FixedOffset>> =
    LazyLock::new(|| DateTime::parse_from_rfc3339("2026-11-23T10:15:00+01:00").expect("fixed time"));

const HEAD: &[u8] = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n\
\tboundary=\"fuzz-7d1e0c5a9b\"\r\n\
\r\n\
--fuzz-7d1e0c5a9b\r\n\
Content-Type: text/plain\r\n\
\r\n\
content the fuzzer cannot have signed\r\n\
--fuzz-7d1e0c5a9b\r\n\
Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
Content-Transfer-Encoding: binary\r\n\
\r\n";
const TAIL: &[u8] = b"\r\n--fuzz-7d1e0c5a9b--\r\n";

fuzz_target!(|data: &[u8]| {
    let _ = verify(data, &TRUST, Some(*AT));

    let wrapped = [HEAD, data, TAIL].concat();
    let report = verify(&wrapped, &TRUST, Some(*AT));
    // Nobody holding a signing key takes part, so no input may verify over the fixed content.
    assert!(
        !matches!(report.verdict, Verdict::Valid | Verdict::ValidUntrustedSigner | Verdict::Unsigned),
        "{:?}: {}",
        report.verdict,
        report.detail
    );
});
