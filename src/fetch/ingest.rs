//! What happens to a fetched message, whatever the protocol: stored
//! byte-for-byte, classified, signature checked, receipts correlated with
//! what was sent, routed to company users through the directory, and
//! committed in one transaction with its injection into the corporate
//! server. Only a committed message may be deleted from the provider.

use std::sync::Arc;
use std::time::Duration;

use super::{Error, FetchSource, Listed, Result};
use crate::clock::Clock;
use crate::config::InjectMode;
use crate::correlate::correlate;
use crate::crl::CrlCache;
use crate::enqueue::{self, Enqueue};
use crate::notify::{self, Delivery};
use crate::pec::signature::{NoCrls, SignatureReport};
use crate::pec::{self, Classification};
use crate::queue::spool::Spool;
use crate::route::route;
use crate::runtime::{Mailbox, Runtime};
use crate::store::{self, FetchedRecord, MessageKind, Route, Store};

pub struct Ingest {
    store: Arc<dyn Store>,
    spool: Spool,
    enqueue: Arc<Enqueue>,
    clock: Arc<dyn Clock>,
    /// The CRLs for revocation checks; `None` when the cache could not be opened.
    crls: Option<Arc<CrlCache>>,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, spool: Spool, enqueue: Arc<Enqueue>, clock: Arc<dyn Clock>, crls: Option<Arc<CrlCache>>) -> Self {
        Self { store, spool, enqueue, clock, crls }
    }

    /// A message over [`pec::FULL_PARSE_MAX`] read with bounded memory: its
    /// skeleton classified and its signature checked with the signed part
    /// digested from the file. `None` when the skeleton does not serve (a
    /// line or a part far longer than mail has): the caller reads it whole.
    async fn read_big(
        &self,
        rt: &Runtime,
        mailbox: &str,
        path: &std::path::Path,
    ) -> Option<(pec::skeleton::Skeleton, Classification, SignatureReport)> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(path).await.ok()?;
        let mut builder = pec::skeleton::SkeletonBuilder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => builder.push(&buf[..n]),
                Err(e) => {
                    tracing::warn!(mailbox, path = %path.display(), error = %e, "cannot read the fetched message back; reading it whole");
                    return None;
                }
            }
        }
        let skeleton = match builder.finish() {
            // The wrappers cut the original at its header section (CRLF CRLF): it must be all there too.
            Ok(s) if s.header_whole() && s.whole_up_to(crate::queue::spool::split_header_section(&s.bytes).0.len()) => s,
            Ok(_) => return None,
            Err(e) => {
                tracing::info!(mailbox, path = %path.display(), reason = %e, "big fetched message read whole (no skeleton)");
                return None;
            }
        };
        let c = pec::classify_skeleton(&skeleton.bytes);
        let stored = StoredFile(path);
        let sig = self.verify_skeleton(rt, mailbox, &skeleton, &stored, c.daticert.as_ref().and_then(|d| d.data))?;
        Some((skeleton, c, sig))
    }

    /// The CRLs for the signature check, per `[pec] revocation`.
    fn crl_source(&self, rt: &Runtime) -> Option<&dyn pec::signature::CrlSource> {
        use crate::config::RevocationMode;
        match (rt.config.pec.revocation, &self.crls) {
            (RevocationMode::Off, _) => None,
            (RevocationMode::Crl, Some(crls)) => Some(crls.as_ref()),
            (RevocationMode::Crl, None) => Some(&NoCrls),
        }
    }

    /// The signature check of a message in memory, with revocation from the
    /// CRLs held now; the CRLs that were missing are fetched in the background.
    fn verify(&self, rt: &Runtime, mailbox: &str, raw: &[u8], at: Option<chrono::DateTime<chrono::FixedOffset>>) -> SignatureReport {
        let report = pec::signature::verify_with(raw, &rt.trust, at, self.crl_source(rt));
        self.checked(rt, mailbox, report)
    }

    /// [`verify`](Self::verify) of a big message's skeleton, the signed part
    /// read from `stored`; `None` if the skeleton lacks the signature part.
    fn verify_skeleton(
        &self,
        rt: &Runtime,
        mailbox: &str,
        skeleton: &pec::skeleton::Skeleton,
        stored: &StoredFile<'_>,
        at: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> Option<SignatureReport> {
        let report = pec::signature::verify_stored(skeleton, stored, &rt.trust, at, self.crl_source(rt))?;
        Some(self.checked(rt, mailbox, report))
    }

    fn checked(&self, rt: &Runtime, mailbox: &str, report: SignatureReport) -> SignatureReport {
        if let Some(crls) = &self.crls
            && rt.config.pec.revocation == crate::config::RevocationMode::Crl
        {
            crls.want(&report.crl_urls);
        }
        if report.verdict == pec::signature::Verdict::Valid || matches!(report.revocation, pec::signature::Revocation::Revoked { .. }) {
            metrics::counter!("pecgate_signature_revocation_total", "mailbox" => mailbox.to_owned(), "result" => report.revocation.as_str())
                .increment(1);
        }
        report
    }

    /// Retrieves `item` into the spool and takes it all the way to a commit.
    /// `origin` describes where it came from (`pop3 mailbox legal uidl X`).
    pub async fn fetch(
        &self,
        rt: &Runtime,
        mailbox: &Mailbox,
        source: &mut dyn FetchSource,
        item: &Listed,
        origin: &str,
        timeout: Duration,
    ) -> Result<FetchedRecord> {
        let limit = super::size_limit(&rt.config);
        let deadline = super::transfer_deadline(item, timeout);
        let now = self.clock.now_ms();
        let id = crate::queue::new_queue_id(now);
        let mut writer = self.spool.fetched_writer(&id).await.map_err(Error::Spool)?;
        let size = match source.retrieve(item, writer.output(), limit, deadline).await {
            Ok(size) => size,
            Err(e) => {
                writer.discard().await;
                return Err(e.into());
            }
        };
        writer.commit().await.map_err(Error::Spool)?;
        // Classification reads a copy in memory, of the whole message or of a
        // big one's skeleton; the stored file is only ever read again.
        let path = self.spool.fetched_path(&id);
        let big = match size > pec::FULL_PARSE_MAX as u64 {
            true => self.read_big(rt, &mailbox.id, &path).await,
            false => None,
        };
        let (view, c, sig, stored) = match big {
            Some((skeleton, c, sig)) => (skeleton.bytes, c, sig, Some(path.as_path())),
            None => {
                let raw = tokio::fs::read(&path).await.map_err(Error::Spool)?;
                let c = pec::classify(&raw);
                let sig = self.verify(rt, &mailbox.id, &raw, c.daticert.as_ref().and_then(|d| d.data));
                (raw, c, sig, None)
            }
        };
        let fetched = Fetched { id: &id, uid: &item.uid, size, now, origin, classification: &c, signature: &sig, raw: &view, stored };
        match self.route_and_commit(rt, mailbox, &fetched).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // Not committed: the provider's copy stays and is fetched again next time.
                self.spool.remove_fetched(&id).await;
                Err(e)
            }
        }
    }

    /// Tells the mailbox admin about a problem, through the corporate server.
    pub async fn tell_admin(&self, rt: &Runtime, mailbox: &Mailbox, problem: &str) {
        let members = match rt.directory.members(&mailbox.id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(mailbox = %mailbox.id, error = %e, %problem, "cannot find the mailbox admin to notify");
                return;
            }
        };
        let Some(admin) = crate::directory::admin(&members) else { return };
        let now = self.clock.now_ms();
        let c = &rt.config.corporate;
        let (bytes, message_id) = notify::mailbox_notice(&notify::MailboxNotice {
            from: &c.from,
            to: &admin.address,
            mailbox_address: &mailbox.address,
            problem,
            hostname: &rt.config.smtp.hostname,
            language: c.language,
            date_unix: now / 1000,
            id: &crate::queue::new_queue_id(now),
        });
        match self.enqueue.notice(&c.from, &admin.address, &bytes, message_id, &format!("fetcher of mailbox {}", mailbox.id)).await {
            Ok(qid) => tracing::warn!(mailbox = %mailbox.id, notice = %qid, to = %admin.address, "mailbox admin notified"),
            Err(e) => tracing::error!(mailbox = %mailbox.id, error = %e, "cannot queue the admin notice"),
        }
    }

    async fn route_and_commit(&self, rt: &Runtime, mailbox: &Mailbox, f: &Fetched<'_>) -> Result<FetchedRecord> {
        let c = f.classification;
        let daticert = c.daticert.as_ref();
        let identificativo = daticert.map(|d| d.identificativo.clone()).filter(|s| !s.is_empty());
        let (sent, update, status) = if c.kind.is_receipt() {
            let mut ids: Vec<&str> = Vec::new();
            if let Some(r) = c.riferimento_message_id.as_deref() {
                ids.push(r);
            }
            if let Some(m) = daticert.and_then(|d| d.msgid.as_deref()) {
                ids.push(m);
            }
            match self.store.find_sent(&mailbox.id, &ids, identificativo.as_deref()).await? {
                Some(m) => {
                    let recipients = self.store.recipients(&m.id).await?;
                    let options = crate::correlate::Options { final_preavviso_5xx: mailbox.final_preavviso_5xx };
                    let update = correlate(c, &m.id, m.state, &recipients, options);
                    let status: Vec<String> = recipients
                        .iter()
                        .map(|r| {
                            let state = update
                                .as_ref()
                                .and_then(|u| u.recipients.iter().find(|(a, _)| a == &r.address))
                                .map(|(_, s)| *s)
                                .unwrap_or(r.state);
                            format!("{}: {state}", r.address)
                        })
                        .collect();
                    (Some(m), update, status)
                }
                None => (None, None, Vec::new()),
            }
        } else {
            (None, None, Vec::new())
        };
        if let (Some(m), Some(ident)) = (&sent, &identificativo)
            && let Some(first) = self
                .store
                .fetched_for(&m.id)
                .await?
                .into_iter()
                .find(|r| r.identificativo.as_ref() == Some(ident) && r.kind == c.kind.as_str())
        {
            return self.commit_duplicate(mailbox, f, m, first).await;
        }
        if let Some(first) = self.identical_copy(mailbox, f).await? {
            return self.commit_refetched(mailbox, f, first).await;
        }
        let members = rt.directory.members(&mailbox.id).await?;
        let to = route(c.kind, mailbox.receipts_to, &members, sent.as_ref().map(|m| m.original_sender.as_str()));
        let corp = &rt.config.corporate;
        let delivery = Delivery {
            from: &corp.from,
            to: &to,
            mailbox_id: &mailbox.id,
            mailbox_address: &mailbox.address,
            fetched_id: f.id,
            classification: c,
            status: &status,
            hostname: &rt.config.smtp.hostname,
            language: corp.language,
            date_unix: f.now / 1000,
            signature: Some(f.signature),
        };
        let forged = notify::own_marks(f.raw).len();
        if forged > 0 {
            // Nobody but this gateway writes these: a sender trying to look like a receipt to a corporate filter.
            tracing::warn!(mailbox = %mailbox.id, fetched_id = f.id, fields = forged, "fetched message carries X-Pecgate-* fields of its own; renamed X-Original-Pecgate-* in the copy injected (inline mode)");
            metrics::counter!("pecgate_fetch_forged_marks_total", "mailbox" => mailbox.id.clone()).increment(1);
        }
        let wrapped = match corp.mode {
            InjectMode::Inline => notify::inline_wrap(&delivery, f.original()),
            InjectMode::Attach => notify::attach_wrap(&delivery, f.original()),
        };
        let subject = c.subject.clone().unwrap_or_default();
        let env = enqueue::Envelope {
            kind: MessageKind::Injection,
            route: Route::Corporate,
            mail_from: corp.from.clone(),
            rcpts: to.clone(),
            original_sender: c.daticert.as_ref().map(|d| d.mittente.clone()).unwrap_or_default(),
            message_id: c.message_id.clone().unwrap_or_default(),
            subject: subject.clone(),
            origin: format!("{} ({})", f.origin, c.kind.as_str()),
        };
        let injection = self.enqueue.prepare_pieces(&wrapped.pieces(), env).await?;
        let record = FetchedRecord {
            identificativo,
            related_message: sent.as_ref().map(|m| m.id.clone()),
            routed_to: to.clone(),
            injection: Some(injection.id.clone()),
            ..f.record(&mailbox.id)
        };
        if let Err(e) = self.store.commit_fetched(&record, update.as_ref(), std::slice::from_ref(&injection)).await {
            self.spool.remove(&injection.id).await;
            // Another instance stored it first (lease handover): its copy counts, ours goes.
            if let Ok(Some(theirs)) = self.store.fetched_by_uidl(&mailbox.id, f.uid).await {
                self.spool.remove_fetched(f.id).await;
                tracing::info!(mailbox = %mailbox.id, uidl = %f.uid, by = theirs.fetched_by.as_deref().unwrap_or("-"), "already stored by another instance");
                return Ok(theirs);
            }
            return Err(e.into());
        }
        self.enqueue.kick();
        record_fetch_metrics(&mailbox.id, c, sent.as_ref());
        let sig = f.signature;
        metrics::counter!("pecgate_signature_verdicts_total", "mailbox" => mailbox.id.clone(), "verdict" => sig.verdict.as_str())
            .increment(1);
        if matches!(sig.verdict, pec::signature::Verdict::Invalid | pec::signature::Verdict::Malformed) {
            let problem = format!(
                "message {} ({}, \"{}\") has a {} provider signature: {}. It was delivered marked X-Pecgate-Signature; keep the stored original as evidence.",
                f.id,
                c.kind.as_str(),
                c.subject.as_deref().unwrap_or(""),
                sig.verdict.as_str(),
                sig.detail
            );
            tracing::warn!(mailbox = %mailbox.id, fetched_id = %f.id, verdict = sig.verdict.as_str(), detail = %sig.detail, "signature check failed");
            self.tell_admin(rt, mailbox, &problem).await;
        }
        tracing::info!(
            mailbox = %mailbox.id,
            fetched_id = %f.id,
            uidl = %f.uid,
            kind = %c.kind.as_str(),
            related = %sent.as_ref().map(|m| m.id.as_str()).unwrap_or("-"),
            to = %to.join(","),
            queue_id = %injection.id,
            structure_limit = %c.structure_limit.map_or("-", |l| l.as_str()),
            "fetched"
        );
        if let Some(d) = daticert.filter(|d| d.repaired()) {
            let repairs: Vec<String> = d.repairs.iter().map(ToString::to_string).collect();
            tracing::info!(mailbox = %mailbox.id, fetched_id = %f.id, repairs = %repairs.join(", "), "daticert.xml was not well-formed XML (forbidden characters, replaced by U+FFFD): read leniently");
        }
        if let Some(l) = c.structure_limit {
            tracing::warn!(mailbox = %mailbox.id, fetched_id = %f.id, limit = l.as_str(), "message has {}: classified from its headers and envelope parts only, stored and delivered whole", l.describe());
        }
        if sent.is_none() && c.kind.is_receipt() {
            tracing::info!(mailbox = %mailbox.id, fetched_id = %f.id, "receipt for a message not sent through pecgate (webmail or unknown id); routed to the receivers");
        }
        Ok(record)
    }
}

impl Ingest {
    /// A receipt already stored (providers send some twice; same provider
    /// identifier, same message, same kind): recorded, so its UIDL is known
    /// and retention applies, but neither correlated nor delivered again. A
    /// byte-identical copy is not kept: the first one is the evidence.
    async fn commit_duplicate(
        &self,
        mailbox: &Mailbox,
        f: &Fetched<'_>,
        sent: &store::Message,
        first: FetchedRecord,
    ) -> Result<FetchedRecord> {
        let c = f.classification;
        let record =
            FetchedRecord { identificativo: first.identificativo.clone(), related_message: Some(sent.id.clone()), ..f.record(&mailbox.id) };
        self.store.commit_fetched(&record, None, &[]).await?;
        let identical = f.same_bytes(&self.spool, &first.id).await;
        if identical {
            self.spool.remove_fetched(f.id).await;
        }
        let _ = self
            .store
            .add_event(
                &sent.id,
                None,
                f.now,
                "duplicate-receipt",
                &format!("{} fetched again as {} (first {})", c.kind.as_str(), f.id, first.id),
            )
            .await;
        metrics::counter!("pecgate_pop3_messages_fetched_total", "mailbox" => mailbox.id.clone()).increment(1);
        metrics::counter!("pecgate_receipts_duplicate_total", "mailbox" => mailbox.id.clone()).increment(1);
        tracing::info!(mailbox = %mailbox.id, fetched_id = %f.id, uidl = %f.uid, first = %first.id, identical, kind = %c.kind.as_str(), "duplicate receipt: recorded, not delivered again");
        Ok(record)
    }
}

impl Ingest {
    /// A stored message of this mailbox with the same Message-ID and the
    /// same bytes under another id: the message fetched again, as after a
    /// folder's UIDVALIDITY reset, or found in a second folder.
    async fn identical_copy(&self, mailbox: &Mailbox, f: &Fetched<'_>) -> Result<Option<FetchedRecord>> {
        let Some(message_id) = f.classification.message_id.as_deref() else { return Ok(None) };
        for r in self.store.fetched_by_message_id(&mailbox.id, message_id).await? {
            if r.uidl != f.uid && r.size == f.size && f.same_bytes(&self.spool, &r.id).await {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Records the id, so retention applies to it, without delivering the
    /// message again; the stored first copy stays the evidence.
    async fn commit_refetched(&self, mailbox: &Mailbox, f: &Fetched<'_>, first: FetchedRecord) -> Result<FetchedRecord> {
        let record = FetchedRecord {
            identificativo: first.identificativo.clone(),
            related_message: first.related_message.clone(),
            ..f.record(&mailbox.id)
        };
        self.store.commit_fetched(&record, None, &[]).await?;
        self.spool.remove_fetched(f.id).await;
        metrics::counter!("pecgate_fetch_duplicates_total", "mailbox" => mailbox.id.clone()).increment(1);
        tracing::info!(
            mailbox = %mailbox.id,
            fetched_id = %f.id,
            uidl = %f.uid,
            first = %first.id,
            first_uidl = %first.uidl,
            kind = %f.classification.kind.as_str(),
            "fetched again under a new id, byte-identical to the stored copy: recorded, not delivered again"
        );
        Ok(record)
    }
}

/// The fetched message's file, read back by range for the signature digest.
struct StoredFile<'a>(&'a std::path::Path);

impl pec::signature::StoredBytes for StoredFile<'_> {
    fn read_range(&self, start: u64, end: u64, each: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
        use std::io::{Read, Seek};
        // Synchronous like the hashing it feeds (a 100 MB part: about 0.1 s from the page cache).
        let mut file = std::fs::File::open(self.0)?;
        file.seek(std::io::SeekFrom::Start(start))?;
        let mut left = end.saturating_sub(start);
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stored message is shorter than its skeleton says"));
            }
            each(&buf[..n]);
            left -= n as u64;
        }
        Ok(())
    }
}

/// A retrieved message on its way to the commit.
struct Fetched<'a> {
    id: &'a str,
    uid: &'a str,
    size: u64,
    now: i64,
    origin: &'a str,
    classification: &'a Classification,
    signature: &'a pec::signature::SignatureReport,
    /// The message, or a big one's skeleton (then `stored` is its file).
    raw: &'a [u8],
    stored: Option<&'a std::path::Path>,
}

impl Fetched<'_> {
    fn original(&self) -> notify::Original<'_> {
        notify::Original { view: self.raw, stored: self.stored.map(|p| (p, self.size)) }
    }

    /// Whether the stored fetched message `other` has exactly this message's bytes.
    async fn same_bytes(&self, spool: &Spool, other: &str) -> bool {
        match self.stored {
            Some(path) => crate::queue::spool::files_equal(&spool.fetched_path(other), path).await.unwrap_or(false),
            None => spool.fetched_equals(other, self.raw).await.unwrap_or(false),
        }
    }

    /// What is known of this message before correlation and routing: the
    /// record as both the normal and the duplicate path store it.
    fn record(&self, mailbox_id: &str) -> FetchedRecord {
        let c = self.classification;
        FetchedRecord {
            id: self.id.to_owned(),
            mailbox_id: mailbox_id.to_owned(),
            uidl: self.uid.to_owned(),
            fetched_at: self.now,
            size: self.size,
            kind: c.kind.as_str().to_owned(),
            subject: c.subject.clone().unwrap_or_default(),
            message_id: c.message_id.clone(),
            riferimento: c.riferimento_message_id.clone(),
            identificativo: None,
            consegna: c.daticert.as_ref().and_then(|d| d.consegna.clone()),
            related_message: None,
            routed_to: Vec::new(),
            injection: None,
            signature: Some(self.signature.verdict.as_str().to_owned()),
            signer: self.signature.signer.clone(),
            deleted_at: None,
            fetched_by: None,
        }
    }
}

fn record_fetch_metrics(mailbox: &str, c: &Classification, sent: Option<&store::Message>) {
    let mb = mailbox.to_owned();
    metrics::counter!("pecgate_pop3_messages_fetched_total", "mailbox" => mb.clone()).increment(1);
    let kind = c.kind.as_str();
    if !c.kind.is_receipt() {
        metrics::counter!("pecgate_inbound_messages_total", "mailbox" => mb, "kind" => kind).increment(1);
        return;
    }
    metrics::counter!("pecgate_receipts_total", "mailbox" => mb.clone(), "kind" => kind).increment(1);
    let Some(m) = sent else {
        metrics::counter!("pecgate_receipts_unmatched_total", "mailbox" => mb).increment(1);
        return;
    };
    // From acceptance by pecgate to the provider's time in daticert.
    if matches!(c.kind, pec::Kind::Accettazione | pec::Kind::AvvenutaConsegna)
        && let Some(at) = c.daticert.as_ref().and_then(|d| d.data)
    {
        // daticert times have whole seconds: a fast receipt may look up to 1 s early.
        let secs = (at.timestamp_millis() - m.created_at) as f64 / 1000.0;
        if secs > -2.0 {
            metrics::histogram!("pecgate_receipt_latency_seconds", "mailbox" => mb, "kind" => kind).record(secs.max(0.0));
        }
    }
}
