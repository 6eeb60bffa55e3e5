//! The SMTP session state machine, generic over the stream and the backend.
//!
//! Why our own engine and not a crate: mailin's sans-IO core fits tokio but
//! advertises no SIZE, PIPELINING or ENHANCEDSTATUSCODES; mailin-embedded
//! runs its own blocking threads; samotop sits on async-std with an old
//! rustls. We need streaming DATA into the spool (never the whole message in
//! memory), strict end-of-data against smuggling, per-recipient replies and
//! STARTTLS on tokio-rustls, so a small engine is the better fit. The engine
//! only parses and sequences; decisions come from the [`Backend`] hooks (the
//! gateway's policy, the simulated provider's PEC rules, the capture sink).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::auth::{self, Credentials, LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE};
use super::command::{self, Command, Param, parse_command};
use crate::proto::codec::{self, CommandLine, Dialect, DotDecoder, MAX_COMMAND_LINE};
use crate::proto::reply::{self, Reply};
use crate::proto::sink::DataSink;

/// What a backend hook may answer besides a reply: drop the connection
/// (used by the simulated provider's fault injection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Reply(Reply),
    Disconnect,
}

impl From<Reply> for Response {
    fn from(r: Reply) -> Self {
        Response::Reply(r)
    }
}

/// Facts about the session that backends decide on.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub helo: Option<String>,
    pub tls: bool,
    /// The authenticated identity (as returned by [`Backend::authenticate`]).
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// SIZE= declared at MAIL, if any.
    pub declared_size: Option<u64>,
}

pub trait Backend: Send + Sync + 'static {
    type Sink: DataSink;

    /// Offer AUTH PLAIN/LOGIN (where TLS allows it, see [`SessionConfig`]).
    fn auth_enabled(&self) -> bool {
        false
    }

    /// Checks credentials; `Ok(identity)` or the reply to send (535 usually),
    /// which counts against [`SessionConfig::max_auth_failures`].
    fn authenticate(&self, _info: &SessionInfo, _user: &str, _password: &str) -> impl Future<Output = Result<String, Response>> + Send {
        async { Err(Response::Reply(reply::r502_not_implemented())) }
    }

    fn mail(&self, info: &SessionInfo, from: &str) -> impl Future<Output = Result<(), Response>> + Send;

    fn rcpt(&self, info: &SessionInfo, envelope: &Envelope, to: &str) -> impl Future<Output = Result<(), Response>> + Send;

    fn data_start(&self, info: &SessionInfo, envelope: &Envelope) -> impl Future<Output = Result<Self::Sink, Response>> + Send;

    /// The whole message was received (`size` decoded bytes); the reply decides its fate.
    fn data_end(&self, info: &SessionInfo, envelope: &Envelope, sink: Self::Sink, size: u64) -> impl Future<Output = Response> + Send;

    /// The message was not kept (too big, write error, timeout, disconnect).
    fn data_abort(&self, _sink: Self::Sink) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Session limits and capabilities.
#[derive(Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// STARTTLS is offered when set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// AUTH is offered only after TLS (RFC 4954 §4), except, when this is
    /// set, to clients connecting from a loopback address.
    pub auth_without_tls_on_loopback: bool,
    /// Failed AUTH attempts before the session is closed with 421.
    pub max_auth_failures: usize,
    /// Errors tolerated before the session is closed (against junk floods).
    pub max_errors: usize,
    /// Early-talker check (Postfix's `smtpd_greet_pause`/postscreen pregreet):
    /// a client that sends before our 220 is refused. `None`: no check;
    /// `Some(ZERO)`: only what has already arrived at greeting time; else wait so long.
    pub greet_pause: Option<Duration>,
}

impl SessionConfig {
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            max_message_size: 100 * 1024 * 1024,
            max_recipients: 1000,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            tls: None,
            auth_without_tls_on_loopback: false,
            max_auth_failures: 3,
            max_errors: 20,
            greet_pause: None,
        }
    }
}

/// How a session on one stream ended.
enum Ended<S> {
    Closed,
    StartTls(S),
}

/// Runs a whole SMTP session, upgrading to TLS on STARTTLS. `implicit_tls`
/// says the stream is already TLS (SMTPS), which disables STARTTLS.
pub async fn serve<S, B>(
    stream: S,
    backend: Arc<B>,
    config: Arc<SessionConfig>,
    mut info: SessionInfo,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    let mut session = Session { backend: backend.clone(), config: config.clone(), shutdown: shutdown.clone(), auth_failures: 0 };
    match session.run(stream, &mut info, true).await? {
        Ended::Closed => Ok(()),
        Ended::StartTls(stream) => {
            let Some(acceptor) = config.tls.clone() else { return Ok(()) };
            let tls = match tokio::time::timeout(config.command_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(session = info.id, peer = %info.peer, error = %e, "TLS handshake failed");
                    metrics::counter!("pecgate_smtp_tls_handshake_failures_total").increment(1);
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            // RFC 3207 §4.2: forget everything learned before TLS.
            info.tls = true;
            info.helo = None;
            info.auth = None;
            match session.run(tls, &mut info, false).await? {
                Ended::Closed | Ended::StartTls(_) => Ok(()),
            }
        }
    }
}

struct Session<B: Backend> {
    backend: Arc<B>,
    config: Arc<SessionConfig>,
    shutdown: watch::Receiver<bool>,
    /// Failed AUTH attempts, over the whole connection (STARTTLS does not reset it).
    auth_failures: usize,
}

/// One step of an AUTH exchange: a value, a reply that ends the exchange, or a closed session.
enum Step<T> {
    Got(T),
    Reply(Reply),
    Close,
}

/// Unwraps a [`Step`] inside a function returning `io::Result<Step<_>>`.
macro_rules! step {
    ($e:expr) => {
        match $e {
            Step::Got(v) => v,
            Step::Reply(r) => return Ok(Step::Reply(r)),
            Step::Close => return Ok(Step::Close),
        }
    };
}

/// Outcome of waiting for input.
enum Input {
    Line(CommandLine),
    Eof,
    Timeout,
    Shutdown,
}

impl<B: Backend> Session<B> {
    async fn run<S>(&mut self, stream: S, info: &mut SessionInfo, greet: bool) -> io::Result<Ended<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut io = BufReader::with_capacity(16 * 1024, stream);
        let mut out = String::new();
        if greet {
            if let Some(pause) = self.config.greet_pause {
                // A timeout polls the read once even at zero: data already there means the client did not wait.
                match tokio::time::timeout(pause, io.fill_buf()).await {
                    Ok(Ok([])) | Ok(Err(_)) => return Ok(Ended::Closed),
                    Ok(Ok(early)) => {
                        tracing::info!(session = info.id, peer = %info.peer, bytes = early.len(), "client sent data before the greeting; refused");
                        metrics::counter!("pecgate_smtp_early_talkers_total").increment(1);
                        out.push_str(&reply::r554_early_talker().to_wire());
                        let _ = flush(&mut io, &mut out).await;
                        return Ok(Ended::Closed);
                    }
                    Err(_) => {}
                }
            }
            out.push_str(&Reply::new(220, None, format!("{} ESMTP pecgate", self.config.hostname)).to_wire());
            flush(&mut io, &mut out).await?;
        }
        let mut envelope: Option<Envelope> = None;
        let mut errors = 0usize;

        loop {
            // PIPELINING (RFC 2920): answer a batch at once, flush when the client waits.
            if io.buffer().is_empty() {
                flush(&mut io, &mut out).await?;
            }
            let line = match self.read_command(&mut io).await? {
                Input::Line(CommandLine::Line(line)) => line,
                Input::Line(CommandLine::TooLong) => {
                    out.push_str(&reply::r500_line_too_long().to_wire());
                    errors += 1;
                    if self.too_many_errors(errors, &mut io, &mut out).await? {
                        return Ok(Ended::Closed);
                    }
                    continue;
                }
                Input::Eof => return Ok(Ended::Closed),
                Input::Timeout => {
                    out.push_str(&reply::r421_timeout().to_wire());
                    let _ = flush(&mut io, &mut out).await;
                    return Ok(Ended::Closed);
                }
                Input::Shutdown => {
                    out.push_str(&reply::r421_shutdown().to_wire());
                    let _ = flush(&mut io, &mut out).await;
                    return Ok(Ended::Closed);
                }
            };
            tracing::debug!(session = info.id, command = %command::loggable(&line), "received");
            let command = match parse_command(&line) {
                Ok(c) => c,
                Err(r) => {
                    out.push_str(&r.to_wire());
                    errors += 1;
                    if self.too_many_errors(errors, &mut io, &mut out).await? {
                        return Ok(Ended::Closed);
                    }
                    continue;
                }
            };
            let reply = match command {
                Command::Ehlo(name) => {
                    info.helo = Some(name);
                    envelope = None;
                    self.ehlo_reply(info)
                }
                Command::Helo(name) => {
                    info.helo = Some(name);
                    envelope = None;
                    Reply::new(250, None, self.config.hostname.clone())
                }
                Command::Quit => {
                    out.push_str(&reply::r221_bye().to_wire());
                    flush(&mut io, &mut out).await?;
                    let _ = io.get_mut().shutdown().await;
                    return Ok(Ended::Closed);
                }
                Command::Noop => reply::r250_noop(),
                Command::Rset => {
                    envelope = None;
                    reply::r250_reset()
                }
                Command::Vrfy => Reply::new(252, Some("2.5.0"), "cannot verify, send some mail"),
                Command::Help => Reply::new(214, Some("2.0.0"), "see RFC 5321"),
                Command::StartTls => {
                    if info.tls {
                        reply::r503_already_tls()
                    } else if self.config.tls.is_none() {
                        reply::r454_tls_unavailable()
                    } else {
                        out.push_str(&reply::r220_ready_tls().to_wire());
                        flush(&mut io, &mut out).await?;
                        // Bytes pipelined after STARTTLS were sent in clear: drop them
                        // (the CVE-2011-0411 command injection).
                        return Ok(Ended::StartTls(io.into_inner()));
                    }
                }
                Command::Auth { mechanism, initial } => {
                    match self.handle_auth(&mut io, &mut out, info, &mechanism, initial, envelope.is_some()).await? {
                        Some(r) => r,
                        None => return Ok(Ended::Closed),
                    }
                }
                _ if info.helo.is_none() => reply::r503_need_ehlo(),
                Command::Mail { from, params } => {
                    if envelope.is_some() {
                        reply::r503_nested_mail()
                    } else {
                        match self.handle_mail(info, &from, &params).await {
                            Ok(declared_size) => {
                                envelope = Some(Envelope { mail_from: from, rcpts: Vec::new(), declared_size });
                                reply::r250_sender_ok()
                            }
                            Err(Response::Reply(r)) => r,
                            Err(Response::Disconnect) => return Ok(Ended::Closed),
                        }
                    }
                }
                Command::Rcpt { to, params } => match envelope.as_mut() {
                    None => reply::r503_need_mail(),
                    Some(env) => {
                        if !params.is_empty() {
                            reply::r555_unknown_param()
                        } else if env.rcpts.len() >= self.config.max_recipients {
                            reply::r452_too_many_rcpts()
                        } else {
                            match self.backend.rcpt(info, env, &to).await {
                                Ok(()) => {
                                    env.rcpts.push(to);
                                    reply::r250_rcpt_ok()
                                }
                                Err(Response::Reply(r)) => r,
                                Err(Response::Disconnect) => return Ok(Ended::Closed),
                            }
                        }
                    }
                },
                Command::Data => match envelope.take() {
                    None => reply::r503_need_mail(),
                    Some(env) if env.rcpts.is_empty() => {
                        envelope = Some(env);
                        reply::r554_no_valid_rcpts()
                    }
                    Some(env) => {
                        flush(&mut io, &mut out).await?;
                        match self.handle_data(&mut io, &mut out, info, &env).await? {
                            Some(r) => r,
                            None => return Ok(Ended::Closed),
                        }
                    }
                },
            };
            if reply.code >= 500 && reply.code != 552 {
                errors += 1;
            }
            out.push_str(&reply.to_wire());
            if self.too_many_errors(errors, &mut io, &mut out).await? {
                return Ok(Ended::Closed);
            }
        }
    }

    async fn too_many_errors<S>(&self, errors: usize, io: &mut BufReader<S>, out: &mut String) -> io::Result<bool>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if errors < self.config.max_errors {
            return Ok(false);
        }
        out.push_str(&Reply::new(421, Some("4.7.0"), "too many errors, closing connection").to_wire());
        let _ = flush(io, out).await;
        Ok(true)
    }

    fn ehlo_reply(&self, info: &SessionInfo) -> Reply {
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size),
            "8BITMIME".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.config.tls.is_some() && !info.tls {
            lines.push("STARTTLS".into());
        }
        if self.backend.auth_enabled() && self.auth_allowed_here(info) {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Reply::multiline(250, None, lines)
    }

    async fn handle_mail(&self, info: &SessionInfo, from: &str, params: &[Param]) -> Result<Option<u64>, Response> {
        let mut declared = None;
        for p in params {
            match (p.keyword.as_str(), p.value.as_deref()) {
                ("SIZE", Some(v)) => {
                    let size: u64 = v.parse().map_err(|_| Response::Reply(reply::r501_syntax()))?;
                    if size > self.config.max_message_size {
                        return Err(reply::r552_too_big(self.config.max_message_size).into());
                    }
                    declared = Some(size);
                }
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {}
                ("AUTH", Some(_)) => {} // RFC 4954 §5: may be ignored
                _ => return Err(reply::r555_unknown_param().into()),
            }
        }
        self.backend.mail(info, from).await?;
        Ok(declared)
    }

    /// AUTH needs TLS, or a loopback peer when the configuration allows that
    /// (IPv4-mapped loopback on a dual-stack listener counts).
    fn auth_allowed_here(&self, info: &SessionInfo) -> bool {
        info.tls || (self.config.auth_without_tls_on_loopback && info.peer.ip().to_canonical().is_loopback())
    }

    /// AUTH PLAIN (RFC 4616) and LOGIN; `None` means the connection must close.
    /// Neither the responses nor the decoded credentials are ever logged.
    async fn handle_auth<S>(
        &mut self,
        io: &mut BufReader<S>,
        out: &mut String,
        info: &mut SessionInfo,
        mechanism: &str,
        initial: Option<String>,
        in_transaction: bool,
    ) -> io::Result<Option<Reply>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if !self.backend.auth_enabled() {
            return Ok(Some(reply::r502_not_implemented()));
        }
        if info.helo.is_none() {
            return Ok(Some(reply::r503_need_ehlo()));
        }
        if info.auth.is_some() {
            return Ok(Some(reply::r503_already_authed()));
        }
        if in_transaction {
            return Ok(Some(reply::r503_auth_in_transaction()));
        }
        if !self.auth_allowed_here(info) {
            return Ok(Some(reply::r538_auth_needs_tls()));
        }
        let credentials = match self.auth_exchange(io, out, mechanism, initial).await? {
            Step::Got(Ok(c)) => c,
            Step::Got(Err(e)) if e.is_failure() => return self.auth_failed(io, out, e.reply()).await,
            Step::Got(Err(e)) => return Ok(Some(e.reply())),
            Step::Reply(r) => return Ok(Some(r)),
            Step::Close => return Ok(None),
        };
        match self.backend.authenticate(info, &credentials.username, credentials.password.expose()).await {
            Ok(identity) => {
                info.auth = Some(identity);
                Ok(Some(reply::r235_auth_ok()))
            }
            Err(Response::Reply(r)) => self.auth_failed(io, out, r).await,
            Err(Response::Disconnect) => Ok(None),
        }
    }

    /// Reads the client's responses for `mechanism` and decodes them.
    async fn auth_exchange<S>(
        &mut self,
        io: &mut BufReader<S>,
        out: &mut String,
        mechanism: &str,
        initial: Option<String>,
    ) -> io::Result<Step<auth::Result<Credentials>>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        Ok(Step::Got(match mechanism {
            "PLAIN" => {
                let response = match initial {
                    // RFC 4954 §4: "=" is an empty initial response.
                    Some(r) if r == "=" => String::new(),
                    Some(r) => r,
                    None => step!(self.challenge(io, out, "").await?),
                };
                auth::decode_plain(&response)
            }
            "LOGIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => step!(self.challenge(io, out, LOGIN_USERNAME_CHALLENGE).await?),
                };
                match auth::decode_login(&response) {
                    Err(e) => Err(e),
                    Ok(username) => {
                        let response = step!(self.challenge(io, out, LOGIN_PASSWORD_CHALLENGE).await?);
                        auth::decode_login(&response).map(|password| Credentials { username: username.expose().to_owned(), password })
                    }
                }
            }
            _ => return Ok(Step::Reply(reply::r504_auth_mech())),
        }))
    }

    /// Counts a failed AUTH; the last one allowed is answered and followed by 421 and close.
    async fn auth_failed<S>(&mut self, io: &mut BufReader<S>, out: &mut String, reply: Reply) -> io::Result<Option<Reply>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.auth_failures += 1;
        if self.auth_failures < self.config.max_auth_failures {
            return Ok(Some(reply));
        }
        out.push_str(&reply.to_wire());
        out.push_str(&reply::r421_auth_failures().to_wire());
        let _ = flush(io, out).await;
        Ok(None)
    }

    /// Sends a 334 challenge and reads the client's line (never logged).
    async fn challenge<S>(&mut self, io: &mut BufReader<S>, out: &mut String, text: &str) -> io::Result<Step<String>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        out.push_str(&reply::r334_challenge(text).to_wire());
        flush(io, out).await?;
        Ok(match self.read_command(io).await? {
            Input::Line(CommandLine::Line(l)) => Step::Got(String::from_utf8_lossy(&l).trim().to_owned()),
            Input::Line(CommandLine::TooLong) => Step::Reply(reply::r500_line_too_long()),
            Input::Timeout => {
                out.push_str(&reply::r421_timeout().to_wire());
                let _ = flush(io, out).await;
                Step::Close
            }
            Input::Shutdown => {
                out.push_str(&reply::r421_shutdown().to_wire());
                let _ = flush(io, out).await;
                Step::Close
            }
            Input::Eof => Step::Close,
        })
    }

    async fn read_command<S>(&mut self, io: &mut BufReader<S>) -> io::Result<Input>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let timeout = self.config.command_timeout;
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            r = tokio::time::timeout(timeout, read_line(io, MAX_COMMAND_LINE)) => match r {
                Ok(Ok(Some(line))) => Ok(Input::Line(line)),
                Ok(Ok(None)) => Ok(Input::Eof),
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(Input::Timeout),
            },
            _ = wait_shutdown(&mut shutdown) => Ok(Input::Shutdown),
        }
    }

    /// Receives DATA; `None` means the connection must close (EOF, timeout, backend said so).
    async fn handle_data<S>(
        &mut self,
        io: &mut BufReader<S>,
        out: &mut String,
        info: &SessionInfo,
        env: &Envelope,
    ) -> io::Result<Option<Reply>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut sink = match self.backend.data_start(info, env).await {
            Ok(sink) => Some(sink),
            Err(Response::Reply(r)) => return Ok(Some(r)),
            Err(Response::Disconnect) => return Ok(None),
        };
        out.push_str(&reply::r354_start_data().to_wire());
        flush(io, out).await?;

        let mut decoder = DotDecoder::new(Dialect::SmtpData);
        let mut chunk = Vec::with_capacity(64 * 1024);
        let mut size: u64 = 0;
        let mut too_big = false;
        let mut write_error: Option<io::Error> = None;
        let deadline = tokio::time::Instant::now() + self.config.data_timeout;
        loop {
            let mut shutdown = self.shutdown.clone();
            let filled = tokio::select! {
                r = tokio::time::timeout_at(deadline, io.fill_buf()) => match r {
                    Ok(Ok(buf)) => Some(buf.to_vec()),
                    Ok(Err(e)) => { self.abort(sink).await; return Err(e); }
                    Err(_) => None,
                },
                _ = wait_shutdown(&mut shutdown) => None,
            };
            let Some(buf) = filled else {
                self.abort(sink).await;
                out.push_str(&reply::r421_timeout().to_wire());
                let _ = flush(io, out).await;
                return Ok(None);
            };
            if buf.is_empty() {
                self.abort(sink).await;
                return Ok(None);
            }
            let before = chunk.len();
            let end = decoder.feed(&buf, &mut chunk);
            io.consume(end.unwrap_or(buf.len()));
            size += (chunk.len() - before) as u64;
            if size > self.config.max_message_size {
                too_big = true;
            }
            if !too_big && write_error.is_none() && (chunk.len() >= 64 * 1024 || end.is_some()) {
                if let Some(s) = sink.as_mut()
                    && let Err(e) = s.write(&chunk).await
                {
                    write_error = Some(e);
                }
                chunk.clear();
            } else if too_big || write_error.is_some() {
                // Keep reading to the terminator, keep nothing.
                chunk.clear();
            }
            if end.is_some() {
                break;
            }
        }
        let sink = sink.take();
        if too_big {
            self.abort(sink).await;
            return Ok(Some(reply::r552_too_big(self.config.max_message_size)));
        }
        if let Some(e) = write_error {
            self.abort(sink).await;
            // A sink refuses what exceeds its own limits with InvalidData: a
            // property of the message, permanent. Anything else is our trouble.
            if e.kind() == io::ErrorKind::InvalidData {
                tracing::info!(session = info.id, reason = %e, "message refused by a limit; answered 552");
                return Ok(Some(reply::r552_limit(&e.to_string())));
            }
            tracing::error!(session = info.id, error = %e, "spool write failed; answered 452");
            return Ok(Some(reply::r452_storage()));
        }
        let Some(sink) = sink else { return Ok(Some(reply::r451_local_error())) };
        match self.backend.data_end(info, env, sink, size).await {
            Response::Reply(r) => Ok(Some(r)),
            Response::Disconnect => Ok(None),
        }
    }

    async fn abort(&self, sink: Option<B::Sink>) {
        if let Some(s) = sink {
            self.backend.data_abort(s).await;
        }
    }
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            // Sender gone: no shutdown will ever be signalled.
            std::future::pending::<()>().await;
        }
    }
}

async fn flush<S>(io: &mut BufReader<S>, out: &mut String) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if !out.is_empty() {
        io.get_mut().write_all(out.as_bytes()).await?;
        io.get_mut().flush().await?;
        out.clear();
    }
    Ok(())
}

/// Reads one line of at most `max` bytes (CRLF included); longer lines are
/// consumed to their end and reported as [`CommandLine::TooLong`]. `None` on EOF.
pub async fn read_line<R>(io: &mut BufReader<R>, max: usize) -> io::Result<Option<CommandLine>>
where
    R: AsyncRead + Unpin,
{
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = io.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        if let Some((part, used)) = codec::split_line(buf) {
            if !too_long && line.len() + used <= max {
                line.extend_from_slice(part);
                // A CR that ended the previous fill belongs to this CRLF.
                if line.last() == Some(&b'\r') && part.is_empty() {
                    line.pop();
                }
            } else {
                too_long = true;
            }
            io.consume(used);
            return Ok(Some(if too_long { CommandLine::TooLong } else { CommandLine::Line(line) }));
        }
        let n = buf.len();
        if !too_long && line.len() + n <= max {
            line.extend_from_slice(buf);
        } else {
            too_long = true;
            line.clear();
        }
        io.consume(n);
    }
}
