//! A cheap pre-scan of a message's MIME structure, run before mail-parser
//! builds its tree.
//!
//! mail-parser keeps every part (headers, offsets, decoded body) of a message
//! in memory at once, about 0.7 kB per part: a 52 MB message of 700,000 tiny
//! parts took 450 MB, 100,000 nested multiparts in 7 MB took 110 MB. The
//! scan walks the same structure mail-parser would (the same loose `--boundary`
//! matching, message/rfc822 nesting, encoded nested messages) counting parts,
//! nesting depth and header lines, allocating only per level, and stops at the
//! first limit exceeded. A message over a limit is still stored and injected;
//! it is classified from its headers only (see `classify`).

use std::borrow::Cow;

use memchr::memmem;
use serde::Serialize;

use super::mime;

/// Most parts, all levels and nested messages included. A PEC envelope has
/// about 8 (text, html, daticert.xml, postacert.eml and its parts, the
/// signature); 1000 leaves room for any real original with its attachments
/// while keeping mail-parser's per-part cost under 1 MB.
pub const MAX_PARTS: usize = 1000;
/// Deepest nesting of multiparts and messages. A PEC envelope uses 3 levels
/// (signed, mixed, alternative or postacert.eml) before the original's own
/// 2 or 3; each PEC forwarded inside an original adds about 5. 20 allows
/// three such layers; mail-parser keeps a state per level.
pub const MAX_DEPTH: usize = 20;
/// Most header lines in one part. Real parts have a few; a top-level header
/// with a long Received chain and DKIM signatures has a few hundred at most.
pub const MAX_HEADERS: usize = 1000;
/// Most header bytes in the whole message, as the SMTP listener allows for
/// one header section: address lists are the most expensive thing mail-parser
/// builds (about 15 bytes of memory per byte of `To:`).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// How deep mail-parser decodes and parses base64 or quoted-printable
/// message/rfc822 parts (its `MAX_NESTED_ENCODED`).
const MAX_ENCODED_NESTING: usize = 3;

/// The limit a message went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StructureLimit {
    /// More than [`MAX_PARTS`] MIME parts.
    Parts,
    /// Nesting deeper than [`MAX_DEPTH`].
    Depth,
    /// A part with more than [`MAX_HEADERS`] header lines.
    Headers,
    /// More than [`MAX_HEADER_BYTES`] of headers in all.
    HeaderBytes,
}

impl StructureLimit {
    /// `parts`, `depth`, `headers` or `header-bytes`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StructureLimit::Parts => "parts",
            StructureLimit::Depth => "depth",
            StructureLimit::Headers => "headers",
            StructureLimit::HeaderBytes => "header-bytes",
        }
    }

    /// What was exceeded, for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            StructureLimit::Parts => format!("more than {MAX_PARTS} MIME parts"),
            StructureLimit::Depth => format!("MIME nesting deeper than {MAX_DEPTH}"),
            StructureLimit::Headers => format!("a part with more than {MAX_HEADERS} header lines"),
            StructureLimit::HeaderBytes => format!("more than {MAX_HEADER_BYTES} bytes of headers"),
        }
    }
}

impl std::fmt::Display for StructureLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits [`scan`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) parts: usize,
    pub(crate) depth: usize,
    pub(crate) headers: usize,
    pub(crate) header_bytes: usize,
}

/// The limits of a full parse.
pub(crate) const LIMITS: Limits = Limits { parts: MAX_PARTS, depth: MAX_DEPTH, headers: MAX_HEADERS, header_bytes: MAX_HEADER_BYTES };

/// What the scan counted (up to the limit that stopped it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shape {
    pub(crate) parts: usize,
    pub(crate) depth: usize,
    pub(crate) header_bytes: usize,
}

/// The first limit `raw` goes over, if any. Work is linear in the bytes
/// scanned and stops at the limit.
pub fn check(raw: &[u8]) -> Option<StructureLimit> {
    scan(raw, &LIMITS).1
}

/// True when the header section at the start of `data` alone is within the
/// header limits (so mail-parser may parse just that section).
pub(crate) fn headers_within_limits(data: &[u8]) -> bool {
    header_block(data, 0).is_none_or(|h| h.lines <= MAX_HEADERS && h.end <= MAX_HEADER_BYTES)
}

/// Count the structure of `raw`, stopping at the first limit exceeded:
/// what was counted, and that limit.
pub(crate) fn scan(raw: &[u8], limits: &Limits) -> (Shape, Option<StructureLimit>) {
    let mut s = Scan { limits, shape: Shape::default() };
    let limit = s.message(raw, 0, MAX_ENCODED_NESTING).err();
    (s.shape, limit)
}

struct Scan<'l> {
    limits: &'l Limits,
    shape: Shape,
}

/// mail-parser's parser state for one level.
struct Frame {
    /// The delimiter that ends the current part (`None`: the end of the data).
    boundary: Option<Vec<u8>>,
    /// A (nested) message, ended by its parent's delimiter.
    message: bool,
    /// multipart/digest: parts without Content-Type are messages.
    digest: bool,
}

impl Scan<'_> {
    /// One message, following mail-parser's `parse_` loop.
    fn message(&mut self, data: &[u8], base_depth: usize, encoded_left: usize) -> Result<(), StructureLimit> {
        let mut pos = 0usize;
        let mut state = Frame { boundary: None, message: true, digest: false };
        let mut stack: Vec<Frame> = Vec::new();
        'outer: while let Some(h) = header_block(data, pos) {
            self.shape.parts += 1;
            if self.shape.parts > self.limits.parts {
                return Err(StructureLimit::Parts);
            }
            if h.lines > self.limits.headers {
                return Err(StructureLimit::Headers);
            }
            self.shape.header_bytes += h.end - pos;
            if self.shape.header_bytes > self.limits.header_bytes {
                return Err(StructureLimit::HeaderBytes);
            }
            pos = h.end;
            let ct = h.content_type.as_deref().map(mime::parse_content_type);
            let (ctype, subtype) = ct.as_ref().map_or(("", ""), |c| c.mime.split_once('/').unwrap_or((c.mime.as_str(), "")));
            let is_message = if ct.is_some() { ctype == "message" && matches!(subtype, "rfc822" | "global") } else { state.digest };
            let encoded = h.encoding.as_deref().is_some_and(|e| {
                let e = e.trim();
                e.eq_ignore_ascii_case("base64") || e.eq_ignore_ascii_case("quoted-printable")
            });

            if ctype == "multipart"
                && let Some(b) = ct.as_ref().and_then(boundary).filter(|b| !b.is_empty())
                && let Some((_, after)) = find_delimiter(data, pos, &b)
            {
                stack.push(std::mem::replace(&mut state, Frame { boundary: Some(b), message: false, digest: subtype == "digest" }));
                self.depth(base_depth + stack.len())?;
                pos = skip_crlf(data, after);
                continue;
            }
            if is_message && !encoded {
                let boundary = state.boundary.take();
                stack.push(std::mem::replace(&mut state, Frame { boundary, message: true, digest: false }));
                self.depth(base_depth + stack.len())?;
                continue;
            }

            // A leaf: its body runs to the next delimiter.
            let found = match &state.boundary {
                None => Some((data.len(), data.len())),
                Some(b) => find_delimiter(data, pos, b),
            };
            let Some((body_end, after)) = found else {
                // No delimiter: mail-parser keeps the rest as text and stops.
                break;
            };
            if is_message && encoded && encoded_left > 0 {
                let body = data.get(pos..body_end).unwrap_or_default();
                let decoded = mime::transfer_decode(body, h.encoding.as_deref());
                self.depth(base_depth + stack.len() + 1)?;
                self.message(&decoded, base_depth + stack.len() + 1, encoded_left - 1)?;
            }
            pos = after;
            if state.boundary.is_none() {
                break;
            }

            loop {
                if state.message {
                    // A nested message ends with its parent's delimiter.
                    let Some(prev) = stack.pop() else { break 'outer };
                    let b = state.boundary.take();
                    state = prev;
                    state.boundary = b;
                }
                match (data.get(pos), data.get(pos + 1)) {
                    (Some(b'\r'), Some(b'\n')) => pos += 2,
                    (Some(b'-'), Some(b'-')) => {
                        // Closing delimiter: back to the parent's boundary.
                        pos += 2;
                        let Some(prev) = stack.pop() else { break 'outer };
                        state = prev;
                        if let Some((_, after)) = state.boundary.as_deref().and_then(|b| find_delimiter(data, pos, b)) {
                            pos = after;
                            continue;
                        }
                        break 'outer;
                    }
                    (Some(b'\n'), _) => pos += 1,
                    (Some(c), _) if c.is_ascii_whitespace() => pos = skip_crlf(data, pos + 1),
                    _ => {}
                }
                break;
            }
        }
        Ok(())
    }

    fn depth(&mut self, depth: usize) -> Result<(), StructureLimit> {
        self.shape.depth = self.shape.depth.max(depth);
        if depth > self.limits.depth { Err(StructureLimit::Depth) } else { Ok(()) }
    }
}

/// One header section: where it ends and the two headers the scan needs.
struct HeaderBlock {
    /// Just after the line that ends it (or the end of the data).
    end: usize,
    lines: usize,
    /// The last Content-Type, unfolded (mail-parser uses the last one).
    content_type: Option<String>,
    /// The last Content-Transfer-Encoding, unfolded.
    encoding: Option<String>,
}

/// The header section at `pos`, ended (as mail-parser ends it) by a line
/// holding only whitespace. `None` at the end of the data.
fn header_block(data: &[u8], pos: usize) -> Option<HeaderBlock> {
    if pos >= data.len() {
        return None;
    }
    let mut end_of_block = data.len();
    let mut lines = 0usize;
    // Byte ranges of the two values; `open` is the one a folded line continues.
    let mut ranges: [Option<(usize, usize)>; 2] = [None, None];
    let mut open: Option<usize> = None;
    let mut i = pos;
    while i < data.len() {
        let end = memchr::memchr(b'\n', &data[i..]).map_or(data.len(), |p| i + p + 1);
        let line = &data[i..end];
        if line.iter().all(u8::is_ascii_whitespace) {
            end_of_block = end;
            break;
        }
        lines += 1;
        if matches!(line[0], b' ' | b'\t') {
            if let Some(r) = open.and_then(|k| ranges[k].as_mut()) {
                r.1 = end;
            }
        } else {
            let name = memchr::memchr(b':', line).map(|colon| (line[..colon].trim_ascii(), i + colon + 1));
            open = match name {
                Some((n, _)) if n.eq_ignore_ascii_case(b"content-type") => Some(0),
                Some((n, _)) if n.eq_ignore_ascii_case(b"content-transfer-encoding") => Some(1),
                _ => None,
            };
            if let (Some(k), Some((_, value))) = (open, name) {
                ranges[k] = Some((value, end));
            }
        }
        i = end;
    }
    let unfold = |r: (usize, usize)| -> String {
        let raw = data.get(r.0..r.1).unwrap_or_default();
        mime::decode_lossy(raw).split(['\r', '\n']).collect::<Vec<_>>().concat()
    };
    Some(HeaderBlock { end: end_of_block, lines, content_type: ranges[0].map(unfold), encoding: ranges[1].map(unfold) })
}

/// The boundary parameter, also in RFC 2231 form (`boundary*0`, `boundary*`).
fn boundary(ct: &mime::ContentType) -> Option<Vec<u8>> {
    if let Some(b) = ct.param("boundary") {
        return Some(b.as_bytes().to_vec());
    }
    let mut out: Vec<u8> = Vec::new();
    for (name, value) in ct.params.iter().filter(|(n, _)| n.starts_with("boundary*")) {
        let v: Cow<str> = match value.split_once("''") {
            Some((_, rest)) if name.ends_with('*') => Cow::Owned(rest.to_string()),
            _ => Cow::Borrowed(value.as_str()),
        };
        out.extend_from_slice(v.as_bytes());
    }
    if out.is_empty() { None } else { Some(out) }
}

/// The next `--boundary` at or after `from`, matched anywhere as mail-parser
/// does: (start of the dashes, just after the boundary).
fn find_delimiter(data: &[u8], from: usize, boundary: &[u8]) -> Option<(usize, usize)> {
    let hay = data.get(from..)?;
    let needle = [b"--", boundary].concat();
    let at = memmem::find(hay, &needle)? + from;
    Some((at, at + needle.len()))
}

/// mail-parser's `skip_crlf`: spaces, tabs and CRs, then one LF.
fn skip_crlf(data: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = data.get(pos) {
        match c {
            b'\r' | b' ' | b'\t' => pos += 1,
            b'\n' => return pos + 1,
            _ => break,
        }
    }
    pos
}

#[cfg(test)]
mod tests;
