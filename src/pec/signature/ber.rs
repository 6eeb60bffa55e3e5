//! Minimal BER/DER TLV handling: indefinite-length BER (as written by
//! `openssl smime -sign` when streaming) is turned into definite-length DER
//! so the `der` crate can decode it, and the raw bytes of a SignerInfo's
//! signedAttrs are located so the signature can be checked over the bytes
//! exactly as the signer encoded them.

/// Nesting deeper than this is rejected (no stack exhaustion on hostile input).
const MAX_DEPTH: usize = 48;

struct Header {
    /// Bytes of the identifier octets.
    tag_len: usize,
    constructed: bool,
    /// `None` for the indefinite form.
    len: Option<usize>,
    /// Identifier + length octets.
    hdr_len: usize,
}

fn read_header(data: &[u8]) -> Option<Header> {
    let first = *data.first()?;
    let constructed = first & 0x20 != 0;
    let mut i = 1;
    if first & 0x1f == 0x1f {
        // High tag number: base-128 continuation bytes.
        loop {
            let b = *data.get(i)?;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 6 {
                return None;
            }
        }
    }
    let tag_len = i;
    let l = *data.get(i)?;
    i += 1;
    let len = if l < 0x80 {
        Some(l as usize)
    } else if l == 0x80 {
        if !constructed {
            return None;
        }
        None
    } else {
        let n = (l & 0x7f) as usize;
        if n > 4 {
            return None;
        }
        let mut v = 0usize;
        for _ in 0..n {
            v = (v << 8) | *data.get(i)? as usize;
            i += 1;
        }
        Some(v)
    };
    if let Some(len) = len
        && data.len() - i < len
    {
        return None;
    }
    Some(Header { tag_len, constructed, len, hdr_len: i })
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Re-encode one element at the start of `data` with definite lengths into
/// `out`; returns the number of input bytes consumed.
fn convert(data: &[u8], depth: usize, out: &mut Vec<u8>) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let h = read_header(data)?;
    out.extend_from_slice(&data[..h.tag_len]);
    match (h.constructed, h.len) {
        (false, Some(len)) => {
            push_len(out, len);
            out.extend_from_slice(&data[h.hdr_len..h.hdr_len + len]);
            Some(h.hdr_len + len)
        }
        (true, Some(len)) => {
            let inner = &data[h.hdr_len..h.hdr_len + len];
            let mut buf = Vec::with_capacity(len);
            let mut pos = 0;
            while pos < inner.len() {
                pos += convert(&inner[pos..], depth + 1, &mut buf)?;
            }
            push_len(out, buf.len());
            out.extend_from_slice(&buf);
            Some(h.hdr_len + len)
        }
        (true, None) => {
            let mut buf = Vec::new();
            let mut pos = h.hdr_len;
            loop {
                let rest = data.get(pos..)?;
                if rest.starts_with(&[0, 0]) {
                    pos += 2;
                    break;
                }
                if rest.is_empty() {
                    return None;
                }
                pos += convert(rest, depth + 1, &mut buf)?;
            }
            push_len(out, buf.len());
            out.extend_from_slice(&buf);
            Some(pos)
        }
        (false, None) => None,
    }
}

/// The first element of `data` with every indefinite length made definite.
/// Trailing bytes other than zero padding make it fail.
pub(super) fn normalize(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let used = convert(data, 0, &mut out)?;
    if data[used..].iter().any(|&b| b != 0) {
        return None;
    }
    Some(out)
}

/// `(identifier byte, whole element, value)`.
type Child<'a> = (u8, &'a [u8], &'a [u8]);

/// `(identifier byte, whole element, value)` of each child of the
/// constructed (definite-length) element `elem`.
fn children(elem: &[u8]) -> Option<Vec<Child<'_>>> {
    let h = read_header(elem)?;
    let len = h.len?;
    let inner = elem.get(h.hdr_len..h.hdr_len + len)?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < inner.len() {
        let c = read_header(&inner[pos..])?;
        let total = c.hdr_len + c.len?;
        let whole = &inner[pos..pos + total];
        out.push((whole[0], whole, &whole[c.hdr_len..]));
        pos += total;
    }
    Some(out)
}

/// The DER bytes a CMS signature covers for each SignerInfo, in encoded
/// order: its `[0] IMPLICIT signedAttrs` element re-tagged as a SET (0x31),
/// taken from the (definite-length) ContentInfo `content_info`.
pub(super) fn raw_signed_attrs(content_info: &[u8]) -> Vec<Vec<u8>> {
    let found = || -> Option<Vec<Vec<u8>>> {
        let ci = children(content_info)?;
        let (_, explicit, _) = *ci.get(1)?;
        let (_, signed_data, _) = *children(explicit)?.first()?;
        let sd = children(signed_data)?;
        let (tag, signer_infos, _) = *sd.last()?;
        if tag != 0x31 {
            return None;
        }
        let mut out = Vec::new();
        for (_, signer_info, _) in children(signer_infos)? {
            if let Some((_, attrs, _)) = children(signer_info)?.into_iter().find(|(t, _, _)| *t == 0xa0) {
                let mut v = attrs.to_vec();
                v[0] = 0x31;
                out.push(v);
            }
        }
        Some(out)
    };
    found().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_to_definite() {
        // SEQUENCE (indef) { INTEGER 5, [0] (indef) { OCTET STRING "ab" } }
        let ber = [0x30, 0x80, 0x02, 0x01, 0x05, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0, 0, 0, 0];
        let der = [0x30, 0x09, 0x02, 0x01, 0x05, 0xa0, 0x04, 0x04, 0x02, b'a', b'b'];
        assert_eq!(normalize(&ber).as_deref(), Some(&der[..]));
        assert_eq!(normalize(&der).as_deref(), Some(&der[..]));
        let mut padded = der.to_vec();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(normalize(&padded).as_deref(), Some(&der[..]));
        for bad in [&[0x30, 0x80, 0x02, 0x01][..], &[0x30, 0x05, 0x02], &[0x04, 0x80, 0, 0], &[], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]] {
            assert_eq!(normalize(bad), None);
        }
        let mut deep = [0x30u8, 0x80].repeat(200);
        deep.extend(vec![0; 400]);
        assert_eq!(normalize(&deep), None);
        let mut trailing = der.to_vec();
        trailing.push(1);
        assert_eq!(normalize(&trailing), None);
    }
}
