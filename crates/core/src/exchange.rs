//! The upstream exchange, written once for every protocol: pick a server, connect
//! (bind, timeout, keepalive pool), send the request head and body with
//! `*_send_timeout` between writes, decode the response head within
//! `*_buffer_size` and `*_read_timeout`, then relay the body through the spool
//! (buffered or not), retrying on another server where `*_next_upstream` allows.

use crate::body::{Body, ReqBody};
use crate::codec::{Decoded, ResponseHead, UpstreamCodec};
use crate::ctx::{RequestCtx, UpstreamName};
use crate::error::{Error, ErrorKind, Retry};
use crate::relay::{BufferPolicy, Spool, SpoolBody};
use crate::upstream::{Conn, Group, InUse, Outcome};
use crate::vars::Template;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `*_connect_timeout`, `*_send_timeout`, `*_read_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connect.
    pub connect: Duration,
    /// Between two writes.
    pub send: Duration,
    /// Between two reads.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(60),
            send: Duration::from_secs(60),
            read: Duration::from_secs(60),
        }
    }
}

/// `*_next_upstream` conditions.
#[derive(Debug, Clone, Copy)]
pub struct NextUpstream {
    /// `error`
    pub error: bool,
    /// `timeout`
    pub timeout: bool,
    /// `invalid_header`
    pub invalid_header: bool,
    /// `http_500` … as a list of statuses.
    pub statuses: [u16; 8],
    /// `non_idempotent`
    pub non_idempotent: bool,
    /// `*_next_upstream_tries` (0 = unlimited)
    pub tries: u32,
    /// `*_next_upstream_timeout` (zero = unlimited)
    pub timeout_total: Duration,
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            statuses: [0; 8],
            non_idempotent: false,
            tries: 0,
            timeout_total: Duration::ZERO,
        }
    }
}

impl NextUpstream {
    /// Whether a response with `status` goes to the next server (`http_500` …).
    fn retries_status(&self, status: u16) -> bool {
        status != 0 && self.statuses.contains(&status)
    }

    /// Whether the condition of `e` is listed (`error`, `timeout`, `invalid_header`).
    fn allows(&self, e: &Error) -> bool {
        match e.kind() {
            ErrorKind::Connect | ErrorKind::UpstreamClosed | ErrorKind::UpstreamIo => self.error,
            ErrorKind::Timeout => self.timeout,
            ErrorKind::InvalidResponse | ErrorKind::TooBigHeader => {
                self.invalid_header || self.error
            }
            _ => false,
        }
    }
}

/// `*_bind`: off, a literal address, or a template evaluated per request.
#[derive(Debug, Clone)]
pub enum Bind {
    /// No bind.
    Off,
    /// A fixed source address.
    Addr(IpAddr),
    /// A template (`$var`): evaluated and parsed per request.
    Dynamic(Template),
}

impl Bind {
    /// The source address for this request (a template is evaluated and parsed).
    pub fn addr(&self, cx: &RequestCtx) -> Result<Option<IpAddr>, Error> {
        match self {
            Bind::Off => Ok(None),
            Bind::Addr(a) => Ok(Some(*a)),
            Bind::Dynamic(t) => {
                let v = t.eval_string(cx);
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse()
                    .map(Some)
                    .map_err(|_| Error::internal(format!("invalid local address \"{v}\"")))
            }
        }
    }
}

/// Everything the driver needs from a location's `*_` directives: the upstream's own
/// connection settings (group, source address, timeouts; pingora's `PeerOptions`),
/// buffering and the retry policy. Read once at load; every protocol's backend hands
/// it to [`exchange`] as it is.
#[derive(Debug, Clone)]
pub struct UpstreamConf {
    /// The server group.
    pub group: Arc<Group>,
    /// `*_bind`: the source address of connections to it.
    pub bind: Bind,
    /// How the error log names the protocol (`http://`, `fastcgi://`, …).
    pub schema: &'static str,
    /// What this configuration's templates read (`$upstream_http_*`).
    pub vars: Arc<crate::vars::UsedVars>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Response buffering.
    pub buffering: BufferPolicy,
    /// Retry policy.
    pub next: NextUpstream,
    /// Whether connections may be kept alive at all (FastCGI: `fastcgi_keep_conn`).
    pub keep_conn: bool,
    /// `fastcgi_catch_stderr`: stderr output before the response head containing one
    /// of these makes the response an invalid header (502, or the next upstream
    /// under `*_next_upstream invalid_header`).
    pub catch_stderr: Arc<[Bytes]>,
    /// TLS to the upstream (`proxy_pass https://…`, `proxy_ssl_*`).
    pub tls: Option<crate::upstream_tls::UpstreamTls>,
}

/// An upstream response: its head and the body being relayed.
pub struct UpstreamResponse {
    /// Status and headers as the upstream sent them.
    pub head: ResponseHead,
    /// The body.
    pub body: Body,
    /// After `101 Switching Protocols`: the upstream connection, handed over whole
    /// for a tunnel (WebSocket); the body is then empty.
    pub upgraded: Option<Upgraded>,
    /// Relayed unbuffered (`*_buffering off`, `X-Accel-Buffering: no`): the head goes
    /// to the client at once, not held for the body's first bytes.
    pub unbuffered: bool,
}

/// The client response of an upstream's relayed body: `status`, `headers`, marked
/// [`crate::body::Unbuffered`] when relayed so ([`UpstreamResponse::unbuffered`]).
pub fn client_response(
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Body,
    unbuffered: bool,
) -> crate::backend::Response {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    if unbuffered {
        resp.extensions_mut().insert(crate::body::Unbuffered);
    }
    resp
}

/// An upstream connection that switched protocols. It keeps the server's
/// connection slot (`max_conns`) until it is dropped.
#[derive(Debug)]
pub struct Upgraded {
    /// The socket.
    pub stream: crate::upstream::Stream,
    /// Bytes the upstream sent after its 101 head, already read.
    pub leftover: Bytes,
    _inuse: InUse,
}

/// How much of a buffered request body is framed before it is written.
const SEND_CHUNK: usize = 64 * 1024;

/// A failed write or read, in nginx's words (`recv() failed (104: Connection reset by
/// peer) while reading response header from upstream`); the peer is the log line's
/// `upstream:` field.
fn io_err(e: std::io::Error, call: &str, doing: &str) -> Error {
    Error::upstream_io(e, call, doing)
}

/// What the exchange is doing when a read fails, for the log.
const READING_HEAD: &str = "reading response header from upstream";
/// The same while the body is relayed.
const READING_BODY: &str = "reading upstream";

/// Bytes written to and read from one attempt's connection, as nginx counts them for
/// `$upstream_bytes_sent` (`c->sent`: the request as framed on the wire) and
/// `$upstream_bytes_received` (the head's reads; the body's are counted by the relay).
#[derive(Debug, Default, Clone, Copy)]
struct Wire {
    sent: u64,
    received: u64,
    /// Of `received`, the bytes up to the end of the response head.
    head: u64,
}

async fn write_frames(
    conn: &mut Conn,
    frames: &mut Vec<Bytes>,
    timeout: Duration,
    wire: &mut Wire,
) -> Result<(), Error> {
    // Coalesce small frames into one write; send large ones as they are. A single
    // frame (a request head alone) goes as it is, not copied.
    if let [one] = frames.as_slice() {
        let one = one.clone();
        frames.clear();
        send(conn, &one, timeout, wire).await?;
        return flush(conn, timeout).await;
    }
    let mut small = BytesMut::new();
    for f in frames.drain(..) {
        if f.len() >= 16 * 1024 {
            if !small.is_empty() {
                send(conn, &small, timeout, wire).await?;
                small.clear();
            }
            send(conn, &f, timeout, wire).await?;
        } else {
            small.extend_from_slice(&f);
        }
    }
    if !small.is_empty() {
        send(conn, &small, timeout, wire).await?;
    }
    flush(conn, timeout).await
}

async fn flush(conn: &mut Conn, timeout: Duration) -> Result<(), Error> {
    // TLS keeps what it could not write yet in its own buffer (TCP: nothing to do).
    match crate::time::timeout(timeout, conn.stream.flush()).await {
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            "upstream timed out (110: Connection timed out) while sending request to upstream",
        )),
        Ok(Err(e)) => Err(io_err(e, "writev()", "sending request to upstream")),
        Ok(Ok(())) => Ok(()),
    }
}

async fn send(
    conn: &mut Conn,
    data: &[u8],
    timeout: Duration,
    wire: &mut Wire,
) -> Result<(), Error> {
    if wire.sent > 0 {
        conn.nodelay();
    }
    let mut off = 0;
    while off < data.len() {
        if off > 0 {
            conn.nodelay();
        }
        let rest = data.get(off..).unwrap_or(&[]);
        match crate::time::timeout(timeout, conn.stream.write(rest)).await {
            Err(_) => return Err(Error::new(
                ErrorKind::Timeout,
                "upstream timed out (110: Connection timed out) while sending request to upstream",
            )),
            Ok(Err(e)) => return Err(io_err(e, "writev()", "sending request to upstream")),
            Ok(Ok(0)) => {
                return Err(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream closed the connection while sending request to upstream",
                ))
            }
            Ok(Ok(n)) => {
                off += n;
                wire.sent += n as u64;
            }
        }
    }
    Ok(())
}

/// Room for the next read of a response. An empty buffer with 1 KB or more left (the
/// rest of the `*_buffer_size` after a small response) is read into as it is: that read
/// is mostly the upstream's close, which then needs no new 16 KB buffer.
fn make_room(buf: &mut BytesMut) {
    let spare = buf.capacity() - buf.len();
    if spare < 4096 && !(buf.is_empty() && spare >= 1024) {
        buf.reserve(16 * 1024);
    }
}

async fn read_more(
    conn: &mut Conn,
    buf: &mut BytesMut,
    timeout: Duration,
    doing: &str,
) -> Result<usize, Error> {
    make_room(buf);
    match crate::time::timeout(timeout, conn.stream.read_buf(buf)).await {
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("upstream timed out (110: Connection timed out) while {doing}"),
        )),
        Ok(Err(e)) => Err(io_err(e, "recv()", doing)),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Runs the exchange: `head` is the protocol-encoded request head; `new_codec`
/// makes a fresh codec for each attempt; the source address is `conf.bind`'s for this
/// request.
///
/// The group's method picks a server ([`Group::select`]: it may wait in the group's
/// queue); an attempt that fails, or whose status is listed in `*_next_upstream`, goes
/// to the next server as nginx's `ngx_http_upstream_next` allows: the error's
/// [`Retry`] is not `Never`, the condition is listed, tries are left (one per server,
/// and `*_next_upstream_tries`), the `*_next_upstream_timeout` has not passed, and —
/// once the request was sent — the method is idempotent (or `non_idempotent` is
/// listed) and the body can be sent again. A connection reused from the keepalive pool
/// that fails before the first response byte ([`Retry::ReusedOnly`]) is retried on a
/// fresh connection to the same server under the same rules but without using a try
/// (so also with a single server) and without counting as a failure of that server.
/// Nothing is retried once the response head was taken: no byte reached the client
/// before. With no tries left, a listed status is passed to the client as it is.
pub async fn exchange(
    conf: &UpstreamConf,
    cx: &mut RequestCtx,
    head: Bytes,
    mut body: ReqBody,
    new_codec: &(dyn Fn() -> Box<dyn UpstreamCodec> + Send + Sync),
) -> Result<UpstreamResponse, Error> {
    let started = crate::time::now();
    cx.upstream.begin();
    let bind = conf.bind.addr(cx)?;
    let tls = conf.tls.as_ref().map(|t| t.target(cx));
    cx.upstream.schema = conf.schema;
    // A resolving group (`server … resolve`): its servers now, for every try; a
    // `*_pass` with variables: the group its value names.
    let group = &std::pin::pin!(conf.group.for_request(cx)).await?;
    let mut st = group.pick_state(cx);
    let policy = Policy {
        next: &conf.next,
        idempotent: !matches!(cx.method.as_str(), "POST" | "LOCK" | "PATCH"),
    };
    let total = group.servers.len();
    'servers: loop {
        let inuse = std::pin::pin!(group.select(&mut st)).await?;
        let i = inuse.index();
        let Some(server) = group.servers.get(i).cloned() else {
            return Err(Error::internal("upstream server vanished"));
        };
        // A fresh connection after a reused one failed before any response byte.
        let mut fresh = false;
        loop {
            let t0 = crate::time::now();
            let mut sent = false;
            let mut connect = None;
            let mut wire = Wire::default();
            let r = std::pin::pin!(attempt(
                conf,
                group,
                i,
                fresh,
                bind,
                tls.as_ref(),
                &head,
                &mut body,
                new_codec,
                &mut sent,
                &mut connect,
                &mut wire,
            ))
            .await;
            let tried = st.tried.len();
            let tries_left = tried < total
                && (conf.next.tries == 0 || (tried as u64) < u64::from(conf.next.tries))
                && (conf.next.timeout_total.is_zero()
                    || crate::time::since(started) < conf.next.timeout_total);
            let h = match r {
                Ok(h) => h,
                Err(e) => {
                    cx.upstream.attempt(&server, None, crate::time::since(t0));
                    if let Some(a) = cx.upstream.last_mut() {
                        (a.connect, a.bytes_sent, a.bytes_received) =
                            (connect, wire.sent, wire.received);
                    }
                    if e.retry() == Retry::ReusedOnly
                        && !fresh
                        && policy.may_repeat(&e, sent, &body)
                    {
                        tracing::debug!(
                            upstream = %cx.upstream.shown(),
                            "{} (keepalive connection was closed by the peer: retrying on a new connection)",
                            e.message()
                        );
                        fresh = true;
                        continue;
                    }
                    if !matches!(e.kind(), ErrorKind::Encode | ErrorKind::Internal) {
                        group.report(i, Outcome::Failed);
                    }
                    drop(inuse);
                    if tries_left && policy.may_repeat(&e, sent, &body) {
                        tracing::warn!(
                            upstream = %cx.upstream.shown(),
                            "{} (trying next upstream)",
                            e.message()
                        );
                        continue 'servers;
                    }
                    return Err(e);
                }
            };
            let status = h.head.status.as_u16();
            cx.upstream
                .attempt(&server, Some(status), crate::time::since(t0));
            if let Some(a) = cx.upstream.last_mut() {
                (a.connect, a.header, a.bytes_sent, a.bytes_received) =
                    (connect, Some(a.took), wire.sent, wire.received);
                a.head_len = wire.head;
            }
            if conf.next.retries_status(status) && tries_left && policy.repeatable(true, &body) {
                let outcome = if matches!(status, 403 | 404) {
                    Outcome::Next
                } else {
                    Outcome::Failed
                };
                group.report(i, outcome);
                tracing::debug!(
                    "upstream {} answered {status} (trying next upstream)",
                    server.name
                );
                continue 'servers;
            }
            group.report(i, Outcome::Ok);
            if conf.vars.upstream_headers() {
                cx.upstream.headers = h.head.headers.clone();
            }
            let Headed {
                head: rhead,
                conn,
                codec,
                buf,
            } = h;
            if rhead.status == http::StatusCode::SWITCHING_PROTOCOLS {
                // nginx's ngx_http_upstream_upgrade: small writes both ways from here.
                let mut conn = conn;
                conn.nodelay();
                return Ok(UpstreamResponse {
                    unbuffered: true,
                    head: rhead,
                    body: crate::body::empty(),
                    upgraded: Some(Upgraded {
                        stream: conn.stream,
                        leftover: buf.freeze(),
                        _inuse: inuse,
                    }),
                });
            }
            // From here on nothing is made again: the head is taken.
            let stats = conf
                .vars
                .upstream_body_stats()
                .then(|| Arc::new(crate::ctx::BodyStats::default()));
            let buffered = buffered(conf, &rhead);
            let body = std::pin::pin!(relay(
                conf,
                group,
                i,
                inuse,
                conn,
                codec,
                buf,
                buffered,
                &server.name,
                cx.upstream.uri.clone(),
                stats.clone(),
            ))
            .await
            .map_err(|e| e.with_retry(Retry::Never))?;
            let body = crate::body::counted(body, cx.upstream.last_mut(), t0, stats);
            return Ok(UpstreamResponse {
                unbuffered: !buffered,
                head: rhead,
                body,
                upgraded: None,
            });
        }
    }
}

/// The part of `ngx_http_upstream_next` that does not depend on the tries left.
struct Policy<'a> {
    next: &'a NextUpstream,
    idempotent: bool,
}

impl Policy<'_> {
    /// Once sent, a request goes again only if it may be repeated (idempotent, or
    /// `non_idempotent` listed) and its body can be replayed (a streamed body,
    /// `*_request_buffering off`, was consumed: nginx's `request_body_no_buffering`).
    fn repeatable(&self, sent: bool, body: &ReqBody) -> bool {
        !sent
            || ((self.idempotent || self.next.non_idempotent)
                && !matches!(body, ReqBody::Incoming(_)))
    }

    /// Whether the request may be made again after `e` (tries aside).
    fn may_repeat(&self, e: &Error, sent: bool, body: &ReqBody) -> bool {
        e.retry() != Retry::Never && self.next.allows(e) && self.repeatable(sent, body)
    }
}

/// A response head taken from one server, the body still to be relayed.
struct Headed {
    head: ResponseHead,
    conn: Conn,
    codec: Box<dyn UpstreamCodec>,
    buf: BytesMut,
}

/// One attempt on server `i`: connect (or reuse a pooled connection, unless `fresh`),
/// send, read the head. `sent` is set once the first byte of the request is about to
/// be written (nginx's `request_sent`). An error's [`Retry::ReusedOnly`] is settled
/// here: it stays only when the connection came from the pool.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    conf: &UpstreamConf,
    group: &Arc<Group>,
    i: usize,
    fresh: bool,
    bind: Option<IpAddr>,
    tls: Option<&crate::upstream_tls::TlsTarget>,
    head: &Bytes,
    body: &mut ReqBody,
    new_codec: &(dyn Fn() -> Box<dyn UpstreamCodec> + Send + Sync),
    sent: &mut bool,
    connect_time: &mut Option<Duration>,
    wire: &mut Wire,
) -> Result<Headed, Error> {
    let started = crate::time::now();
    let peer = group
        .servers
        .get(i)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let mut conn = if fresh {
        Box::pin(group.connect_new(i, bind, conf.timeouts.connect, tls)).await?
    } else {
        std::pin::pin!(group.get(i, bind, conf.timeouts.connect, tls)).await?
    };
    *connect_time = Some(crate::time::since(started));
    let reused = conn.reused;
    let mut codec = new_codec();
    *sent = true;
    let r = std::pin::pin!(send_and_read_head(
        conf,
        &mut conn,
        &peer,
        head,
        body,
        codec.as_mut(),
        wire
    ))
    .await;
    match r {
        Ok((rhead, buf)) => Ok(Headed {
            head: rhead,
            conn,
            codec,
            buf,
        }),
        Err(e) => Err(e.decide_reuse(reused)),
    }
}

/// A write or read failure before the first response byte: the connection may just
/// have been closed by the peer while idle in the pool ([`Retry::ReusedOnly`]).
/// Timeouts are not: a peer that is slow on a reused connection is slow.
fn before_first_byte(e: Error) -> Error {
    match e.kind() {
        ErrorKind::UpstreamClosed | ErrorKind::UpstreamIo => e.with_retry(Retry::ReusedOnly),
        _ => e,
    }
}

/// Sends the request and reads the response head.
async fn send_and_read_head(
    conf: &UpstreamConf,
    conn: &mut Conn,
    peer: &str,
    head: &Bytes,
    body: &mut ReqBody,
    codec: &mut dyn UpstreamCodec,
    wire: &mut Wire,
) -> Result<(ResponseHead, BytesMut), Error> {
    let t = conf.timeouts;
    let mut frames = vec![head.clone()];
    match body {
        ReqBody::Empty => {
            codec.encode_end(&mut frames);
            std::pin::pin!(write_frames(conn, &mut frames, t.send, wire))
                .await
                .map_err(before_first_byte)?;
        }
        ReqBody::Buffered(b) => {
            // Sent as it is read back: a body spilled to a temp file never sits in
            // memory whole.
            let mut pending = 0;
            for chunk in b.chunks()? {
                let chunk = chunk?;
                pending += chunk.len();
                codec.encode_body(chunk, &mut frames);
                if pending >= SEND_CHUNK {
                    write_frames(conn, &mut frames, t.send, wire)
                        .await
                        .map_err(before_first_byte)?;
                    pending = 0;
                }
            }
            codec.encode_end(&mut frames);
            std::pin::pin!(write_frames(conn, &mut frames, t.send, wire))
                .await
                .map_err(before_first_byte)?;
        }
        ReqBody::Incoming(inc) => {
            // The exchange never repeats a streamed body once sent (see `Policy`); the
            // retry kinds still say what happened.
            std::pin::pin!(write_frames(conn, &mut frames, t.send, wire))
                .await
                .map_err(before_first_byte)?;
            while let Some(chunk) = inc.next_chunk().await? {
                codec.encode_body(chunk, &mut frames);
                std::pin::pin!(write_frames(conn, &mut frames, t.send, wire))
                    .await
                    .map_err(before_first_byte)?;
            }
            codec.encode_end(&mut frames);
            std::pin::pin!(write_frames(conn, &mut frames, t.send, wire))
                .await
                .map_err(before_first_byte)?;
        }
    }
    let limit = conf.buffering.buffer_size.max(1);
    let mut buf = BytesMut::with_capacity(limit.max(4096));
    let mut received = false;
    loop {
        match codec.decode(&mut buf)? {
            Some(Decoded::Head(h)) => {
                wire.head = wire.received.saturating_sub(buf.len() as u64);
                return Ok((h, buf));
            }
            Some(Decoded::Stderr(s)) => {
                // More records (the head) may already be buffered: decode before reading.
                log_stderr(
                    &s,
                    UpstreamName {
                        schema: conf.schema,
                        peer,
                        uri: &[],
                    },
                );
                if catches(&conf.catch_stderr, &s) {
                    // nginx's NGX_HTTP_UPSTREAM_INVALID_HEADER: the stderr line above
                    // is all the error log gets.
                    return Err(Error::invalid("FastCGI sent in stderr a caught string").logged());
                }
                continue;
            }
            Some(Decoded::Data(_)) | Some(Decoded::End { .. }) => {
                return Err(Error::invalid(
                    "upstream sent data before the response header",
                ))
            }
            None => {}
        }
        if buf.len() >= limit {
            return Err(Error::new(
                ErrorKind::TooBigHeader,
                "upstream sent too big header while reading response header from upstream",
            ));
        }
        let n = match std::pin::pin!(read_more(conn, &mut buf, t.read, READING_HEAD)).await {
            Ok(n) => {
                wire.received += n as u64;
                n
            }
            Err(e) if !received => return Err(before_first_byte(e)),
            Err(e) => return Err(e),
        };
        if n == 0 {
            let closed = || {
                Error::new(ErrorKind::UpstreamClosed, "upstream prematurely closed connection while reading response header from upstream")
            };
            if !received {
                return Err(closed().with_retry(Retry::ReusedOnly));
            }
            return match codec.decode_eof(&mut buf)? {
                Some(Decoded::Head(h)) => {
                    wire.head = wire.received.saturating_sub(buf.len() as u64);
                    Ok((h, buf))
                }
                _ => Err(closed()),
            };
        }
        received = true;
    }
}

/// FastCGI stderr text: logged at `error`, trailing newlines, dots and spaces cut, as
/// nginx does (`NGX_LOG_ERR`), so PHP warnings show with the default log level.
/// Whether stderr output `s` (trimmed as nginx logs it) contains one of `patterns`.
fn catches(patterns: &[Bytes], s: &[u8]) -> bool {
    if patterns.is_empty() {
        return false;
    }
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b'.' | b' '))
        .map_or(0, |p| p + 1);
    let s = s.get(..end).unwrap_or(s);
    patterns
        .iter()
        .any(|p| !p.is_empty() && s.windows(p.len()).any(|w| w == &p[..]))
}

fn log_stderr(s: &[u8], upstream: UpstreamName<'_>) {
    tracing::error!(
        upstream = %upstream,
        "FastCGI sent in stderr: \"{}\" while reading response header from upstream",
        String::from_utf8_lossy(s).trim_end_matches(['\r', '\n', '.', ' '])
    );
}

/// How much of a body is read ahead, without waiting, before the relay task is
/// started.
const EAGER_READ: usize = 64 * 1024;

/// Whether the response is buffered: `*_buffering on` and no `X-Accel-Buffering: no`.
fn buffered(conf: &UpstreamConf, head: &ResponseHead) -> bool {
    conf.buffering.buffering
        && !head
            .headers
            .get("x-accel-buffering")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no"))
}

#[allow(clippy::too_many_arguments)]
async fn relay(
    conf: &UpstreamConf,
    group: &Arc<Group>,
    i: usize,
    inuse: InUse,
    mut conn: Conn,
    mut codec: Box<dyn UpstreamCodec>,
    mut buf: BytesMut,
    buffered: bool,
    peer: &str,
    uri: Bytes,
    stats: Option<Arc<crate::ctx::BodyStats>>,
) -> Result<Body, Error> {
    // Fast path: the whole body is already here.
    let mut pieces: Vec<Bytes> = Vec::new();
    // A read error met here is the relay task's first event.
    let mut first_err: Option<Error> = None;
    let mut held = 0usize;
    loop {
        let ev = match codec.decode(&mut buf)? {
            Some(ev) => ev,
            // What the upstream has sent already is read without waiting: a body that
            // ends with the upstream's close (uwsgi and SCGI servers) is most often all
            // in the socket by now, and then needs no relay task.
            None if held < EAGER_READ => {
                make_room(&mut buf);
                match conn.stream.read_buf(&mut buf).now_or_never() {
                    Some(Ok(0)) => match codec.decode_eof(&mut buf) {
                        Ok(ev) => ev.unwrap_or(Decoded::End { reusable: false }),
                        Err(e) => {
                            first_err = Some(e);
                            break;
                        }
                    },
                    Some(Ok(n)) => {
                        if let Some(st) = &stats {
                            st.received
                                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        first_err = Some(io_err(e, "recv()", READING_BODY));
                        break;
                    }
                    None => break,
                }
            }
            None => break,
        };
        match ev {
            Decoded::Data(d) => {
                held += d.len();
                pieces.push(d);
            }
            Decoded::Stderr(s) => log_stderr(
                &s,
                UpstreamName {
                    schema: conf.schema,
                    peer,
                    uri: &uri,
                },
            ),
            Decoded::End { reusable } => {
                group.put(i, conn, reusable && conf.keep_conn && buf.is_empty());
                drop(inuse);
                if let Some(t) = codec.take_trailers() {
                    if let Some(st) = &stats {
                        let _ = st.trailers.set(t.clone());
                    }
                    let data = match pieces.len() {
                        0 => None,
                        1 => pieces.pop(),
                        _ => Some(Bytes::from(pieces.concat())),
                    };
                    let body = crate::relay::WithTrailers {
                        data,
                        trailers: Some(t),
                    };
                    return Ok(body.boxed_unsync());
                }
                let body = match pieces.len() {
                    0 => crate::body::empty(),
                    1 => crate::body::full(pieces.pop().unwrap_or_default()),
                    _ => {
                        let mut all = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
                        for p in &pieces {
                            all.extend_from_slice(p);
                        }
                        crate::body::full(all.freeze())
                    }
                };
                return Ok(body);
            }
            Decoded::Head(_) => return Err(Error::invalid("upstream sent a second header")),
        }
    }
    let spool = Spool::new(&conf.buffering, buffered);
    let group = group.clone();
    let read_timeout = conf.timeouts.read;
    let keep = conf.keep_conn;
    let peer = peer.to_string();
    let writer = spool.clone();
    let schema = conf.schema;
    // Errors of the body read out here are logged in the request's span, naming the
    // upstream as nginx does.
    let log = crate::logctx::current();
    let task = async move {
        let failed = |msg: &str| {
            let upstream = UpstreamName {
                schema,
                peer: &peer,
                uri: &uri,
            };
            if msg.contains(" while ") {
                tracing::error!(upstream = %upstream, "{msg}");
            } else {
                tracing::error!(upstream = %upstream, "{msg} while reading upstream");
            }
        };
        // Counted in the server's connections until the upstream side is done (or the
        // client went away): dropped with this task on every path.
        let _inuse = inuse;
        for p in pieces {
            if writer.push(p).await.is_err() {
                return;
            }
        }
        if let Some(e) = first_err {
            failed(e.message());
            writer.finish(Err(e.message().to_string()));
            return;
        }
        loop {
            let ev = match codec.decode(&mut buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    let read = tokio::select! {
                        r = read_more(&mut conn, &mut buf, read_timeout, READING_BODY) => r,
                        // The client went away while the upstream is silent: give up the
                        // upstream connection now (and with it the server's slot).
                        () = writer.reader_closed() => return,
                    };
                    let n = match read {
                        Ok(n) => {
                            if let Some(st) = &stats {
                                st.received
                                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            n
                        }
                        Err(e) => {
                            failed(e.message());
                            writer.finish(Err(e.message().to_string()));
                            return;
                        }
                    };
                    if n > 0 {
                        continue;
                    }
                    match codec.decode_eof(&mut buf) {
                        Ok(Some(ev)) => ev,
                        Ok(None) => Decoded::End { reusable: false },
                        Err(e) => {
                            failed(e.message());
                            writer.finish(Err(e.message().to_string()));
                            return;
                        }
                    }
                }
                Err(e) => {
                    failed(e.message());
                    writer.finish(Err(e.message().to_string()));
                    return;
                }
            };
            match ev {
                Decoded::Data(d) => {
                    if writer.push(d).await.is_err() {
                        return; // client gone: drop the upstream connection
                    }
                }
                Decoded::Stderr(s) => log_stderr(
                    &s,
                    UpstreamName {
                        schema,
                        peer: &peer,
                        uri: &uri,
                    },
                ),
                Decoded::End { reusable } => {
                    group.put(i, conn, reusable && keep && buf.is_empty());
                    if let Some(t) = codec.take_trailers() {
                        if let Some(st) = &stats {
                            let _ = st.trailers.set(t.clone());
                        }
                        writer.set_trailers(t);
                    }
                    writer.finish(Ok(()));
                    return;
                }
                Decoded::Head(_) => {
                    failed("upstream sent a second header");
                    writer.finish(Err("upstream sent a second header".into()));
                    return;
                }
            }
        }
    };
    match log {
        Some(log) => drop(tokio::spawn(crate::logctx::in_request(task, log))),
        None => drop(tokio::spawn(task)),
    }
    Ok(SpoolBody { spool }.boxed_unsync())
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
