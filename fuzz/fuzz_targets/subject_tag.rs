//! Subject tag handling (`policy::tag`): finding and cutting "[PEC]" /
//! "[PEC:id]" in raw Subject values, RFC 2047 encoded words included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pecgate::policy::tag::{decode_subject, default_markers, encode_subject, strip_tag, tagged_marker};

fuzz_target!(|data: &[u8]| {
    // Input: [custom marker 0xFF] raw subject. 0xFF never occurs in UTF-8, so
    // the split cannot eat a subject byte.
    let (marker, subject) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(raw) = std::str::from_utf8(subject) else { return };

    let decoded = decode_subject(raw);

    if let Some(marker) = marker {
        // Any configured marker, even odd ones: must not panic.
        let markers = vec![String::from_utf8_lossy(marker).into_owned(), "[PEC]".to_string()];
        let _ = strip_tag(raw, &markers);
        let _ = tagged_marker(&markers[0], "legal");
        return;
    }

    let markers = default_markers();
    if let Some((tag, new_raw)) = strip_tag(raw, &markers) {
        assert!(markers.contains(&tag.marker), "marker {:?}", tag.marker);
        if let Some(id) = &tag.mailbox {
            assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "mailbox id {id:?}");
        }
        // The tag (at least "[PEC]", 5 bytes) left the decoded text, and nothing was added.
        let after = decode_subject(&new_raw);
        assert!(after.len() + 5 <= decoded.len(), "{raw:?} -> {new_raw:?}: decoded {decoded:?} -> {after:?}");
        // What we write stays on the wire's rules: no bare CR or LF, and every
        // line break is a fold (CRLF + whitespace) unless the client sent it.
        if !raw.contains(['\r', '\n']) {
            for (i, _) in new_raw.match_indices("\r\n") {
                assert!(matches!(new_raw.as_bytes().get(i + 2), Some(b' ' | b'\t')), "unfolded CRLF in {new_raw:?}");
            }
        }
    } else {
        // No tag: the decoded text really has none (ASCII case-insensitive).
        let lower = decoded.to_ascii_lowercase();
        assert!(!lower.contains("[pec]") && !lower.contains("[gpec]"), "missed a tag in {raw:?} ({decoded:?})");
    }

    // Encoding the decoded text and decoding it again gives it back.
    assert_eq!(decode_subject(&encode_subject(&decoded)), decoded, "encode/decode of {decoded:?}");
});
