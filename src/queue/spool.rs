//! The spool: message bytes on disk.
//!
//! Layout under `spool_dir`: `tmp/` for files being written, `msg/` for
//! committed ones. A message is two files, `<id>.head` (the header section,
//! after any rewrite) and `<id>.tail` (the body exactly as received), so a
//! header rewrite never copies a 100 MB body; the message is head ++ tail.
//! Commit protocol (Postfix `mail_stream.c`): write to `tmp/`, fsync each
//! file, rename into `msg/`, fsync `msg/`. Only then does `enqueue` insert the
//! database row, which is the commit marker; files in `msg/` without a row
//! were never acknowledged and are removed at start-up, as is all of `tmp/`.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::fs::{self, File};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::proto::sink::DataSink;

/// The directory of mail fetched from the providers, byte-for-byte.
const FETCHED: &str = "fetched";

/// Largest header section we accept (headers are parsed in memory).
pub const MAX_HEADER_SECTION: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Creates `tmp/`, `msg/` and `fetched/` if needed.
    pub async fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join("tmp")).await?;
        fs::create_dir_all(dir.join("msg")).await?;
        // Spools of version 0.1 kept fetched mail in `inbound/`.
        let (old, new) = (dir.join("inbound"), dir.join(FETCHED));
        if fs::try_exists(&old).await? && !fs::try_exists(&new).await? {
            fs::rename(&old, &new).await?;
            sync_dir(dir).await?;
        }
        fs::create_dir_all(&new).await?;
        Ok(Self { dir: dir.to_owned() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tmp(&self, id: &str, part: &str) -> PathBuf {
        self.dir.join("tmp").join(format!("{id}.{part}"))
    }

    pub fn head_path(&self, id: &str) -> PathBuf {
        self.dir.join("msg").join(format!("{id}.head"))
    }

    pub fn tail_path(&self, id: &str) -> PathBuf {
        self.dir.join("msg").join(format!("{id}.tail"))
    }

    /// Where a fetched message is kept, byte-for-byte as the provider sent it.
    pub fn fetched_path(&self, id: &str) -> PathBuf {
        self.dir.join(FETCHED).join(format!("{id}.eml"))
    }

    /// Starts storing a message fetched from a provider: bytes go to a
    /// temporary file until [`FetchedWriter::commit`] makes them durable.
    pub async fn fetched_writer(&self, id: &str) -> io::Result<FetchedWriter> {
        let tmp = self.tmp(id, "eml");
        let file = File::create(&tmp).await?;
        Ok(FetchedWriter { tmp, path: self.fetched_path(id), dir: self.dir.join(FETCHED), file: BufWriter::with_capacity(64 * 1024, file) })
    }

    /// Whether the stored fetched message `id` holds exactly `bytes`, read
    /// in chunks (a 100 MB original is not read twice into memory).
    pub async fn fetched_equals(&self, id: &str, bytes: &[u8]) -> io::Result<bool> {
        let mut file = File::open(self.fetched_path(id)).await?;
        if file.metadata().await?.len() != bytes.len() as u64 {
            return Ok(false);
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(at == bytes.len());
            }
            if bytes.get(at..at + n) != Some(&buf[..n]) {
                return Ok(false);
            }
            at += n;
        }
    }

    /// Removes a fetched message whose store record was never committed.
    pub async fn remove_fetched(&self, id: &str) {
        let _ = fs::remove_file(self.fetched_path(id)).await;
    }

    /// Start-up cleanup of `fetched/`: files without a store record were
    /// never committed (the POP3 copy is still there and is fetched again).
    pub async fn remove_fetched_orphans(&self, known: &HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        let mut dir = fs::read_dir(self.dir.join(FETCHED)).await?;
        while let Some(e) = dir.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".eml").unwrap_or(&name);
            if !known.contains(id) {
                let _ = fs::remove_file(e.path()).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Starts receiving a message from the SMTP session.
    pub async fn writer(&self, id: &str) -> io::Result<SpoolWriter> {
        let path = self.tmp(id, "tail");
        let file = File::create(&path).await?;
        Ok(SpoolWriter {
            id: id.to_owned(),
            tail_path: path,
            file: BufWriter::with_capacity(64 * 1024, file),
            headers: Vec::new(),
            in_body: false,
            tail_len: 0,
        })
    }

    /// Makes a received message durable: writes the (rewritten) head, fsyncs,
    /// renames both into `msg/`, fsyncs the directory.
    pub async fn commit(&self, received: &Received, head: &[u8]) -> io::Result<()> {
        let head_tmp = self.tmp(&received.id, "head");
        write_synced(&head_tmp, &[Piece::Bytes(head)]).await?;
        fs::rename(&head_tmp, self.head_path(&received.id)).await?;
        fs::rename(&received.tail_path, self.tail_path(&received.id)).await?;
        sync_dir(&self.dir.join("msg")).await
    }

    /// Stores a whole message pecgate wrote itself (notices); same protocol.
    pub async fn store_bytes(&self, id: &str, message: &[u8]) -> io::Result<()> {
        self.store_pieces(id, &[Piece::Bytes(message)]).await
    }

    /// Stores a message given as consecutive pieces (a wrapper's own bytes
    /// around a fetched original, which may be read from its file), written
    /// one after the other without joining them in memory.
    pub async fn store_pieces(&self, id: &str, pieces: &[Piece<'_>]) -> io::Result<()> {
        let (first, rest) = match pieces.split_first() {
            Some((Piece::Bytes(first), rest)) => (*first, rest),
            Some((Piece::File { .. }, _)) => return Err(io::Error::other("a stored message starts with its own header bytes")),
            None => (&[][..], &[][..]),
        };
        if !has_header_end(first) && rest.iter().any(|p| !p.is_empty()) {
            let Some(bytes) = rest.iter().map(|p| if let Piece::Bytes(b) = p { Some(*b) } else { None }).collect::<Option<Vec<&[u8]>>>()
            else {
                return Err(io::Error::other("the header section must end in the first piece"));
            };
            // The header section does not end in the first piece (never so for
            // pecgate's wrappers): joined, so the split below is the same.
            let joined = [&[first][..], &bytes].concat().concat();
            return Box::pin(self.store_pieces(id, &[Piece::Bytes(&joined)])).await;
        }
        let (head, tail) = split_header_section(first);
        let head_tmp = self.tmp(id, "head");
        let tail_tmp = self.tmp(id, "tail");
        write_synced(&head_tmp, &[Piece::Bytes(head)]).await?;
        let mut tail_pieces = vec![Piece::Bytes(tail)];
        tail_pieces.extend_from_slice(rest);
        write_synced(&tail_tmp, &tail_pieces).await?;
        fs::rename(&head_tmp, self.head_path(id)).await?;
        fs::rename(&tail_tmp, self.tail_path(id)).await?;
        sync_dir(&self.dir.join("msg")).await
    }

    /// Opens a committed message as one reader (head then tail).
    pub async fn open_message(&self, id: &str) -> io::Result<impl AsyncRead + Unpin + Send + use<>> {
        let head = File::open(self.head_path(id)).await?;
        let tail = File::open(self.tail_path(id)).await?;
        Ok(head.chain(tail))
    }

    /// Reads a whole committed message into memory (tests, small notices).
    pub async fn read_message(&self, id: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_message(id).await?.read_to_end(&mut out).await?;
        Ok(out)
    }

    pub async fn remove(&self, id: &str) {
        for p in [self.head_path(id), self.tail_path(id), self.tmp(id, "head"), self.tmp(id, "tail")] {
            let _ = fs::remove_file(p).await;
        }
    }

    /// Start-up cleanup: empties `tmp/` and removes `msg/` and `fetched/`
    /// files whose id is not in `known` (never acknowledged). With `grace`
    /// (a spool shared by several instances) only files older than that go:
    /// younger ones may be another instance's message in the making.
    /// Returns how many ids were removed.
    pub async fn remove_orphans(&self, known: &HashSet<String>, grace: Option<Duration>) -> io::Result<usize> {
        let old_enough = |meta: &std::fs::Metadata| match grace {
            None => true,
            Some(g) => meta.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= g),
        };
        let mut tmp = fs::read_dir(self.dir.join("tmp")).await?;
        while let Some(e) = tmp.next_entry().await? {
            if e.metadata().await.is_ok_and(|m| old_enough(&m)) {
                let _ = fs::remove_file(e.path()).await;
            }
        }
        let mut removed = HashSet::new();
        let mut msg = fs::read_dir(self.dir.join("msg")).await?;
        while let Some(e) = msg.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.split('.').next().unwrap_or_default().to_owned();
            if !known.contains(&id) && e.metadata().await.is_ok_and(|m| old_enough(&m)) {
                let _ = fs::remove_file(e.path()).await;
                removed.insert(id);
            }
        }
        Ok(removed.len())
    }

    /// Proves the spool is writable (readiness).
    pub async fn probe(&self) -> io::Result<()> {
        let p = self.dir.join("tmp").join(".probe");
        fs::write(&p, b"ok").await?;
        fs::remove_file(&p).await
    }
}

/// A piece of a message being stored: bytes in memory, or a range of a file.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    File { path: &'a Path, offset: u64, len: u64 },
}

impl Piece<'_> {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn write_synced(path: &Path, pieces: &[Piece<'_>]) -> io::Result<()> {
    let mut f = File::create(path).await?;
    for piece in pieces {
        match *piece {
            Piece::Bytes(bytes) => f.write_all(bytes).await?,
            Piece::File { path: from, offset, len } => {
                use tokio::io::AsyncSeekExt;
                let mut source = File::open(from).await?;
                source.seek(io::SeekFrom::Start(offset)).await?;
                let copied = tokio::io::copy(&mut source.take(len), &mut f).await?;
                if copied != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ended {} bytes early", from.display(), len - copied),
                    ));
                }
            }
        }
    }
    f.sync_all().await
}

/// Whether two files hold the same bytes, read in chunks.
pub async fn files_equal(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a).await?, File::open(b).await?);
    if fa.metadata().await?.len() != fb.metadata().await?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba).await?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).await?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir).await?;
    d.sync_all().await
}

/// Splits a message at the end of its header section (after the first empty
/// line); with no empty line the whole message is header.
pub fn split_header_section(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return (&message[..2], &message[2..]);
    }
    match find(message, b"\r\n\r\n") {
        Some(i) => message.split_at(i + 4),
        None => (message, &[]),
    }
}

/// The message's header section ends in these bytes (an empty line is in them).
fn has_header_end(message: &[u8]) -> bool {
    message.starts_with(b"\r\n") || find(message, b"\r\n\r\n").is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A fetched message being written; dropped without [`commit`](Self::commit)
/// (or after [`discard`](Self::discard)) it never reaches `fetched/`.
pub struct FetchedWriter {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    file: BufWriter<File>,
}

impl FetchedWriter {
    /// Where the retrieved bytes go, exactly as the server sends them.
    pub fn output(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        &mut self.file
    }

    /// Flushes, fsyncs, renames into `fetched/` and fsyncs the directory.
    pub async fn commit(mut self) -> io::Result<()> {
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        fs::rename(&self.tmp, &self.path).await?;
        sync_dir(&self.dir).await
    }

    pub async fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.tmp).await;
    }
}

/// Receives DATA: keeps the header section in memory (bounded), streams the
/// body to `tmp/<id>.tail`.
pub struct SpoolWriter {
    id: String,
    tail_path: PathBuf,
    file: BufWriter<File>,
    headers: Vec<u8>,
    in_body: bool,
    tail_len: u64,
}

/// A fully received, fsynced message still in `tmp/`.
#[derive(Debug)]
pub struct Received {
    pub id: String,
    pub tail_path: PathBuf,
    /// The header section as received, with its final empty line.
    pub headers: Vec<u8>,
    pub tail_len: u64,
}

impl SpoolWriter {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Flushes and fsyncs the body; the message is then ready for [`Spool::commit`].
    pub async fn finish(mut self) -> io::Result<Received> {
        if !self.in_body {
            // No empty line: everything was header; normalise to a header section.
            if !self.headers.is_empty() && !self.headers.ends_with(b"\r\n") {
                self.headers.extend_from_slice(b"\r\n");
            }
            self.headers.extend_from_slice(b"\r\n");
        }
        self.file.flush().await?;
        self.file.get_mut().sync_all().await?;
        Ok(Received { id: self.id, tail_path: self.tail_path, headers: self.headers, tail_len: self.tail_len })
    }

    pub async fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.tail_path).await;
    }
}

impl DataSink for SpoolWriter {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut bytes = bytes;
        if !self.in_body {
            // Find the end of the header section across chunk boundaries.
            let start = self.headers.len().saturating_sub(3);
            self.headers.extend_from_slice(bytes);
            let end =
                if self.headers.starts_with(b"\r\n") { Some(2) } else { find(&self.headers[start..], b"\r\n\r\n").map(|i| start + i + 4) };
            match end {
                Some(end) => {
                    let body_start_in_chunk = bytes.len() - (self.headers.len() - end);
                    self.headers.truncate(end);
                    self.in_body = true;
                    bytes = &bytes[body_start_in_chunk..];
                }
                None => {
                    if self.headers.len() > MAX_HEADER_SECTION {
                        // InvalidData: the session answers 552 with this text, not 452.
                        let what = format!("the header section exceeds {MAX_HEADER_SECTION} bytes");
                        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
                    }
                    return Ok(());
                }
            }
        }
        self.tail_len += bytes.len() as u64;
        self.file.write_all(bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sections() {
        assert_eq!(split_header_section(b"A: b\r\n\r\nbody"), (&b"A: b\r\n\r\n"[..], &b"body"[..]));
        assert_eq!(split_header_section(b"A: b\r\n"), (&b"A: b\r\n"[..], &b""[..]));
        assert_eq!(split_header_section(b"\r\nbody"), (&b"\r\n"[..], &b"body"[..]));
    }

    #[tokio::test]
    async fn an_old_inbound_directory_becomes_fetched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("inbound")).unwrap();
        std::fs::write(dir.path().join("inbound/I1.eml"), b"evidence").unwrap();
        let spool = Spool::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read(spool.fetched_path("I1")).unwrap(), b"evidence");
        assert!(!dir.path().join("inbound").exists());
    }

    #[tokio::test]
    async fn writer_splits_across_chunks_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).await.unwrap();
        let msg = b"Subject: x\r\nFrom: a@b.it\r\n\r\nline 1\r\nline 2\r\n";
        for cut in 1..msg.len() {
            let id = format!("T{cut}");
            let mut w = spool.writer(&id).await.unwrap();
            w.write(&msg[..cut]).await.unwrap();
            w.write(&msg[cut..]).await.unwrap();
            let r = w.finish().await.unwrap();
            assert_eq!(r.headers, b"Subject: x\r\nFrom: a@b.it\r\n\r\n", "cut {cut}");
            spool.commit(&r, &r.headers).await.unwrap();
            assert_eq!(spool.read_message(&id).await.unwrap(), msg, "cut {cut}");
        }
        let known: HashSet<String> = ["T1".to_string()].into();
        assert_eq!(spool.remove_orphans(&known, None).await.unwrap(), msg.len() - 2);
        assert_eq!(spool.read_message("T1").await.unwrap(), msg);
        assert!(spool.read_message("T2").await.is_err());
    }

    /// Pieces are stored exactly as their concatenation would be, with the
    /// same head/tail split, wherever the pieces are cut.
    #[tokio::test]
    async fn pieces_are_stored_as_their_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).await.unwrap();
        let msg: &[u8] = b"X-A: 1\r\nSubject: x\r\n\r\nbody 1\r\n\r\nbody 2\r\n";
        for a in 0..=msg.len() {
            for b in a..=msg.len() {
                let id = format!("P{a}-{b}");
                spool.store_pieces(&id, &[Piece::Bytes(&msg[..a]), Piece::Bytes(&msg[a..b]), Piece::Bytes(&msg[b..])]).await.unwrap();
                assert_eq!(spool.read_message(&id).await.unwrap(), msg, "cut {a} {b}");
                let head = std::fs::read(spool.head_path(&id)).unwrap();
                assert_eq!(head, b"X-A: 1\r\nSubject: x\r\n\r\n", "cut {a} {b}");
            }
        }
        spool.store_pieces("E", &[]).await.unwrap();
        assert_eq!(spool.read_message("E").await.unwrap(), b"");
        // A range of a file as the body, as a big fetched original is written.
        let original = dir.path().join("original.eml");
        std::fs::write(&original, b"Subject: o\r\n\r\nthe original's body\r\n").unwrap();
        let body = Piece::File { path: &original, offset: 14, len: 21 };
        spool.store_pieces("F", &[Piece::Bytes(b"X-A: 1\r\nSubject: o\r\n\r\n"), body, Piece::Bytes(b"--end\r\n")]).await.unwrap();
        assert_eq!(spool.read_message("F").await.unwrap(), b"X-A: 1\r\nSubject: o\r\n\r\nthe original's body\r\n--end\r\n");
        let short = Piece::File { path: &original, offset: 14, len: 99 };
        assert!(spool.store_pieces("G", &[Piece::Bytes(b"A: 1\r\n\r\n"), short]).await.is_err(), "a file shorter than said");
        assert!(files_equal(&original, &original).await.unwrap());
        std::fs::write(dir.path().join("other.eml"), b"Subject: o\r\n\r\nthe original's bodY\r\n").unwrap();
        assert!(!files_equal(&original, &dir.path().join("other.eml")).await.unwrap());
    }

    #[tokio::test]
    async fn header_only_message() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).await.unwrap();
        let mut w = spool.writer("H").await.unwrap();
        w.write(b"Subject: x\r\n").await.unwrap();
        let r = w.finish().await.unwrap();
        assert_eq!(r.headers, b"Subject: x\r\n\r\n");
        assert_eq!(r.tail_len, 0);
    }
}
