//! HTTP/2 to clients (ngx_http_v2_module), on hyper's HTTP/2 server.
//!
//! [`serve_h2`] serves one connection of any kind (`AsyncRead + AsyncWrite`: a
//! plain TCP socket after the h2c preface, or a TLS stream whose ALPN chose `h2`).
//! Every stream runs through the same request code as HTTP/1
//! ([`crate::serve::handle`]) under the configuration current when it starts (a
//! reload reaches open connections), with its body fed through core's
//! [`BodySender`]/[`IncomingBody`] channel on demand, so `client_max_body_size`,
//! `client_body_timeout`, request buffering and every backend work unchanged.
//!
//! nginx's connection rules, from `ngx_http_v2.c`:
//! - the settings are the default server's of the listen socket (`http2_*`,
//!   `keepalive_*`, `large_client_header_buffers`), as nginx reads them from the
//!   connection's `conf_ctx`;
//! - `http2_max_concurrent_streams` is SETTINGS_MAX_CONCURRENT_STREAMS (streams
//!   beyond it are refused with RST_STREAM), `http2_body_preread_size` the initial
//!   stream window, `http2_chunk_size` the most a DATA frame carries;
//! - `keepalive_timeout` closes a connection without streams (GOAWAY), the first
//!   stream is waited for `client_header_timeout`; the stream that reaches
//!   `keepalive_requests` (or `keepalive_time`) makes the connection send GOAWAY
//!   and finish the streams it has, as `ngx_http_v2_state_headers`;
//! - `send_timeout`: a connection whose socket cannot take a write for that long
//!   is closed (nginx's timer on the connection's write event);
//! - a graceful stop (SIGQUIT), a reload and the worker running out of
//!   `worker_connections` (when no stream is open) send GOAWAY; streams in flight
//!   finish; a fast stop drops the connection;
//! - `:authority` is the Host (`$host`), and a `Host` header is made from it when
//!   the client sent none (`$http_host`); `:authority` and `Host` that differ,
//!   neither of them, CONNECT (400 without `:path`, as RFC 9113 has it, else 405)
//!   and TRACE (405) are refused as nginx;
//! - the response carries no connection-specific header (`Connection`,
//!   `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`); WebSocket
//!   is HTTP/1.1 only (no extended CONNECT, as nginx);
//! - `return 444` resets the stream.
//!
//! Where hyper decides instead of Junction: a header list larger than
//! `large_client_header_buffers` (number × size) is answered 431 by the h2 codec
//! (nginx: GOAWAY ENHANCE_YOUR_CALM); connection-specific request headers reset
//! the stream (PROTOCOL_ERROR; nginx answers an `Upgrade` header with 400);
//! `http2_recv_buffer_size` has no counterpart (hyper reads into its own buffer).

use crate::http1::conn::{current, Current, Source};
use crate::serve::Stop;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use junction_config::model::{err, invalid, Scope};
use junction_config::tree::{ConfigError, Directive};
use junction_core::body::{Body, IncomingBody, ReqBody};
use junction_core::client::BodySender;
use junction_core::ctx::ConnInfo;
use junction_core::{Error, ErrorKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// The client connection preface (RFC 9113 §3.4) that starts h2c with prior knowledge.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// nginx's NGX_HTTP_V2_MAX_WINDOW: the largest `http2_body_preread_size`.
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// nginx's NGX_HTTP_V2_MAX_FRAME_SIZE: `http2_chunk_size` is capped there.
const MAX_FRAME_SIZE: u64 = (1 << 24) - 1;
/// nginx's NGX_HTTP_V2_STATE_BUFFER_SIZE: `http2_recv_buffer_size` must exceed it.
const STATE_BUFFER_SIZE: u64 = 16;

/// The `http2_*` settings of one server (http and server level; nginx's
/// `ngx_http_v2_srv_conf_t`, plus `http2_chunk_size` at server level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Conf {
    /// `http2 on|off` (off).
    pub enable: bool,
    /// `http2_max_concurrent_streams` (128).
    pub max_concurrent_streams: u32,
    /// `http2_chunk_size` (8k): the most one DATA frame of a response carries.
    pub chunk_size: usize,
    /// `http2_body_preread_size` (64k): the initial window of each stream.
    pub body_preread_size: u32,
}

impl Default for H2Conf {
    fn default() -> Self {
        H2Conf {
            enable: false,
            max_concurrent_streams: 128,
            chunk_size: 8 * 1024,
            body_preread_size: 65536,
        }
    }
}

impl H2Conf {
    /// Reads the settings at a server's scope (inheriting from http).
    pub fn from_scope(scope: &Scope<'_>) -> Result<H2Conf, ConfigError> {
        let d = H2Conf::default();
        let max_concurrent_streams = match scope.arg("http2_max_concurrent_streams") {
            None => d.max_concurrent_streams,
            Some((dir, a)) => a.value.parse().map_err(|_| invalid(dir, a))?,
        };
        let chunk_size = match scope.get("http2_chunk_size") {
            None => d.chunk_size as u64,
            Some(dir) => {
                let v = scope.size("http2_chunk_size", 8 * 1024)?;
                if v == 0 {
                    return Err(err(&dir.span, "the http2 chunk size cannot be zero"));
                }
                v.min(MAX_FRAME_SIZE)
            }
        };
        let preread = scope.size("http2_body_preread_size", 65536)?;
        if preread > MAX_WINDOW {
            if let Some(dir) = scope.get("http2_body_preread_size") {
                return Err(err(
                    &dir.span,
                    format!("the maximum body preread buffer size is {MAX_WINDOW}"),
                ));
            }
        }
        if let Some((dir, a)) = scope.arg("http2_recv_buffer_size") {
            if scope.size("http2_recv_buffer_size", 256 * 1024)? <= STATE_BUFFER_SIZE {
                return Err(err(
                    &a.span,
                    format!(
                        "\"http2_recv_buffer_size\" directive value is too small in {}",
                        dir.span
                    ),
                ));
            }
        }
        Ok(H2Conf {
            enable: scope.flag("http2", false)?,
            max_concurrent_streams,
            chunk_size: usize::try_from(chunk_size).unwrap_or(d.chunk_size),
            body_preread_size: u32::try_from(preread).unwrap_or(d.body_preread_size),
        })
    }
}

/// nginx's warning for the deprecated `listen … http2`, one per use, and Junction's for
/// `http2_chunk_size` in a location (the obsolete `http2_*` directives are the
/// registry's: `Support::Obsolete`).
pub(crate) fn warnings(tree: &[Directive], out: &mut Vec<String>) {
    warnings_in(tree, false, out);
}

fn warnings_in(tree: &[Directive], in_location: bool, out: &mut Vec<String>) {
    for d in tree {
        if in_location && d.name == "http2_chunk_size" {
            out.push(format!(
                "\"http2_chunk_size\" in a location takes the server's value in junction in {}",
                d.span
            ));
        }
        if d.name == "listen" && d.args.iter().skip(1).any(|a| a.value == "http2") {
            out.push(format!(
                "the \"listen ... http2\" directive is deprecated, use the \"http2\" directive instead in {}",
                d.span
            ));
        }
        if let Some(b) = &d.block {
            if d.name != "types" && d.name != "map" {
                warnings_in(b, in_location || d.name == "location", out);
            }
        }
    }
}

/// Whether a plain connection to `local` may start h2c with prior knowledge: its
/// listen says `http2`, or `http2 on` holds in the listen's default server
/// (`ngx_http_wait_request_handler` reads the default server's setting). Then the
/// time its first bytes may take (the default server's `client_header_timeout`).
pub(crate) fn h2c_timeout(rt: &crate::Runtime, local: std::net::SocketAddr) -> Option<Duration> {
    let l = crate::listen::listen_for(rt, local)?;
    let srv = l.servers.get(l.default).and_then(|i| rt.servers.get(*i))?;
    (l.http2 || srv.conn.h2.enable).then_some(srv.conn.header_timeout)
}

/// The ALPN protocol id the TLS side offers when [`alpn_h2`] says so (before
/// `http/1.1`).
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// Whether a TLS connection may choose `h2` by ALPN: `listen … http2` on its address,
/// or `http2 on` in the server its SNI chose (`ngx_http_ssl_alpn_select` reads the
/// server found by name). When ALPN chose `h2`, call [`serve_h2`] with the TLS stream.
pub(crate) fn alpn_h2(listen: &crate::build::Listen, server: &crate::http1::ConnConf) -> bool {
    listen.http2 || server.h2.enable
}

/// What the first bytes of a plain connection are.
pub(crate) enum Sniffed {
    /// The HTTP/2 preface: serve h2c.
    H2,
    /// Anything else: HTTP/1.
    Http1,
    /// Closed, or nothing came in time.
    Gone,
}

/// Looks at the first bytes of a connection without taking them (nginx compares
/// what it read with the preface in `ngx_http_wait_request_handler`): as soon as
/// they differ from the preface it is HTTP/1; the whole preface is h2c. A client
/// that sent only part of the preface is looked at again shortly (rare: clients
/// send the preface in one packet).
pub(crate) async fn sniff(stream: &tokio::net::TcpStream, timeout: Duration) -> Sniffed {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; PREFACE.len()];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Sniffed::Gone,
            Ok(Ok(n)) => n,
        };
        let seen = buf.get(..n).unwrap_or(&[]);
        if !PREFACE.starts_with(seen) {
            return Sniffed::Http1;
        }
        if n == PREFACE.len() {
            return Sniffed::H2;
        }
        if Instant::now() + pause > deadline {
            return Sniffed::Gone;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// What [`serve_h2`] serves: any byte stream (TCP, unix, TLS).
pub(crate) trait Http2Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Http2Io for T {}

/// What the streams of one connection share.
struct Conn {
    info: Arc<ConnInfo>,
    /// The configuration source, and the configuration the last stream ran under.
    src: Mutex<(Source, Option<Arc<Current>>)>,
    /// Streams begun (`keepalive_requests`).
    streams: AtomicU64,
    /// Streams whose response is not finished.
    active: AtomicUsize,
    /// A stream began or ended (the idle timer is set again).
    activity: tokio::sync::Notify,
    /// A stream asked for GOAWAY (`keepalive_requests`, `keepalive_time`).
    goaway: tokio::sync::Notify,
    born: Instant,
    /// `keepalive_requests`, `keepalive_time`, `keepalive_timeout` of the default server.
    keepalive_requests: u64,
    keepalive_time: Duration,
    keepalive_off: bool,
}

/// Counts a stream as active until its response body is dropped.
struct Active(Arc<Conn>);

impl Active {
    fn start(c: &Arc<Conn>) -> Active {
        if c.active.fetch_add(1, Ordering::AcqRel) == 0 {
            c.activity.notify_one();
        }
        Active(c.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.activity.notify_one();
        }
    }
}

/// Serves one HTTP/2 connection until it closes: the TLS side calls this when
/// ALPN chose `h2`; a plain listen calls it after the h2c preface.
pub(crate) async fn serve_h2<IO: Http2Io>(io: IO, info: Arc<ConnInfo>, mut src: Source) {
    let _open = junction_core::stats::OpenConnection::open();
    let Some(cur) = current(&mut src, &info, None) else {
        return;
    };
    let conf = cur.conf.clone();
    let h2 = &conf.h2;
    let mut stop = src.stop.clone();
    let mut reload = src.config.clone();
    let drain = src.drain.clone();
    let conn = Arc::new(Conn {
        info,
        src: Mutex::new((src, Some(cur))),
        streams: AtomicU64::new(0),
        active: AtomicUsize::new(0),
        activity: tokio::sync::Notify::new(),
        goaway: tokio::sync::Notify::new(),
        born: Instant::now(),
        keepalive_requests: conf.keepalive_requests.max(1),
        keepalive_time: conf.keepalive_time,
        keepalive_off: conf.keepalive_timeout.is_zero(),
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .auto_date_header(false)
        .max_concurrent_streams(h2.max_concurrent_streams)
        .initial_stream_window_size(h2.body_preread_size)
        .max_header_list_size(u32::try_from(conf.head_limit()).unwrap_or(u32::MAX));
    let svc_conn = conn.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let c = svc_conn.clone();
        async move { stream(c, req).await }
    });
    let io = TimedIo {
        io,
        timeout: conf.send_timeout,
        timer: None,
        armed: false,
        id: conn.info.id,
    };
    let served = b.serve_connection(TokioIo::new(io), svc);
    let mut served = std::pin::pin!(served);
    let mut closing = false;
    let mut stop_open = true;
    let mut reload_open = true;
    // Before the first stream: client_header_timeout; between streams: keepalive_timeout.
    let mut idle_limit = conf.header_timeout;
    let mut idle_since = Instant::now();
    let mut closed_at = idle_since;
    loop {
        let idle = conn.active.load(Ordering::Acquire) == 0;
        let close = tokio::select! {
            _ = served.as_mut() => return,
            _ = conn.activity.notified() => {
                if conn.active.load(Ordering::Acquire) == 0 {
                    idle_since = Instant::now();
                    idle_limit = conf.keepalive_timeout;
                }
                false
            }
            _ = tokio::time::sleep_until(idle_since + idle_limit), if idle && !closing => {
                if conn.streams.load(Ordering::Acquire) == 0 {
                    tracing::info!(
                        "*{} client timed out, client: {}",
                        conn.info.id,
                        conn.info.remote.ip()
                    );
                }
                true
            }
            _ = conn.goaway.notified(), if !closing => true,
            r = stop.changed(), if stop_open => {
                // The sender goes away after its last word (main returns after sending
                // Graceful): the value it left decides.
                stop_open = r.is_ok();
                match *stop.borrow() {
                    Stop::Fast => return,
                    Stop::Graceful => true,
                    Stop::Run => false,
                }
            }
            r = reload.changed(), if !closing && reload_open => {
                reload_open = r.is_ok();
                reload_open
            }
            _ = drain.notified(), if idle && !closing => true,
            // After GOAWAY, with no stream left: the client has lingering_timeout to
            // answer the GOAWAY's PING and close (nginx's ngx_http_v2_lingering_close);
            // a silent client does not keep the connection.
            _ = tokio::time::sleep_until(idle_since.max(closed_at) + conf.lingering_timeout),
                if idle && closing => return,
        };
        if close && !closing {
            // GOAWAY; the streams the connection has finish, then it closes.
            closing = true;
            closed_at = Instant::now();
            served.as_mut().graceful_shutdown();
        }
    }
}

/// The connection with nginx's `send_timeout` on its writes: a write that cannot
/// go on for that long ends the connection (`ngx_http_v2_send_output_queue` sets
/// the timer when the socket is not ready; `ngx_http_v2_write_handler` closes on it).
struct TimedIo<IO> {
    io: IO,
    timeout: Duration,
    /// Made when a write first blocks, reused after.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    id: u64,
}

impl<IO> TimedIo<IO> {
    /// After a write attempt: `Ready` resets the timer, `Pending` arms it (once) and
    /// turns into a timeout error when it fires.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        let deadline = Instant::now() + self.timeout;
        if !self.armed {
            self.armed = true;
            match self.timer.as_mut() {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(t) = self.timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                tracing::info!("*{} client timed out while sending to client", self.id);
                return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
            }
        }
        Poll::Pending
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for TimedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for TimedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The response of a stream that is reset instead (`return 444`).
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream closed without a response")
    }
}

impl std::error::Error for Reset {}

/// One stream: the request under the configuration current now, its body fed as
/// it is asked for, the response framed in `http2_chunk_size` pieces.
async fn stream(
    c: Arc<Conn>,
    req: http::Request<Incoming>,
) -> Result<http::Response<H2Body>, Reset> {
    let active = Active::start(&c);
    let n = c.streams.fetch_add(1, Ordering::AcqRel) + 1;
    // ngx_http_v2_state_headers: the stream that reaches the limits is served, and
    // the connection says GOAWAY.
    if c.keepalive_off || n >= c.keepalive_requests || c.born.elapsed() > c.keepalive_time {
        c.goaway.notify_one();
    }
    let cur = {
        let mut g = c.src.lock().unwrap_or_else(|e| e.into_inner());
        let (src, prev) = &mut *g;
        let cur = current(src, &c.info, prev.take());
        prev.clone_from(&cur);
        cur
    };
    let Some(cur) = cur else {
        return Err(Reset);
    };
    let (mut parts, mut incoming) = req.into_parts();
    let chosen = std::sync::OnceLock::new();
    let refused = check_head(&mut parts, &c.info);
    let resp = match refused {
        Some(status) => {
            let tokens = cur.conf.server_tokens;
            let mut r = crate::serve::status_response(status, tokens);
            r.headers_mut().insert(
                header::SERVER,
                HeaderValue::from_static(crate::serve::server_header_value(tokens)),
            );
            r.headers_mut()
                .insert(header::DATE, junction_core::time::http_date());
            r
        }
        None => {
            let body_timeout = cur.conf.body_timeout;
            let (body, feeder) = if incoming.is_end_stream() {
                (ReqBody::Empty, None)
            } else {
                let length = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.trim().parse::<u64>().ok());
                let (b, tx) = IncomingBody::channel(length, body_timeout);
                (ReqBody::Incoming(b), Some(feed(&mut incoming, tx)))
            };
            let req = http::Request::from_parts(parts, body);
            let fut = crate::serve::handle(
                &cur.shared,
                c.info.clone(),
                &cur.listen,
                req,
                n,
                0,
                None,
                &chosen,
            );
            let mut fut = std::pin::pin!(fut);
            match feeder {
                None => fut.await,
                Some(feeder) => {
                    let mut feeder = std::pin::pin!(feeder);
                    tokio::select! {
                        biased;
                        r = &mut fut => r,
                        () = &mut feeder => fut.await,
                    }
                }
            }
        }
    };
    if resp
        .extensions()
        .get::<junction_core::backend::NoResponse>()
        .is_some()
    {
        return Err(Reset);
    }
    let chunk = chosen
        .get()
        .map_or(cur.conf.h2.chunk_size, |s| s.h2.chunk_size)
        .max(1);
    let (mut parts, body) = resp.into_parts();
    strip_connection_headers(&mut parts.headers);
    // A body nobody read is read and dropped once the response is out (as nginx
    // discards it), not reset under a client still sending it.
    let discard = Discard {
        inc: (!incoming.is_end_stream()).then_some(incoming),
        timeout: cur.conf.lingering_timeout,
        total: cur.conf.lingering_time,
    };
    Ok(http::Response::from_parts(
        parts,
        H2Body {
            inner: body,
            rest: Bytes::new(),
            chunk,
            _active: Some(active),
            _discard: discard,
        },
    ))
}

/// nginx's checks of an HTTP/2 request head (`ngx_http_v2_construct_request`,
/// `ngx_http_v2_parse_authority`): the status to refuse it with, if any. A `Host`
/// header is made from `:authority` when the client sent none.
fn check_head(parts: &mut http::request::Parts, info: &ConnInfo) -> Option<StatusCode> {
    let refuse = |msg: &str, status: StatusCode| {
        tracing::info!("*{} {msg}, client: {}", info.id, info.remote.ip());
        Some(status)
    };
    if parts.method == Method::CONNECT {
        // RFC 9113's CONNECT has neither :scheme nor :path, which nginx wants first.
        if parts.uri.path_and_query().is_none() {
            return refuse("client sent no :scheme header", StatusCode::BAD_REQUEST);
        }
        return refuse("client sent CONNECT method", StatusCode::METHOD_NOT_ALLOWED);
    }
    if parts.method == Method::TRACE {
        return refuse("client sent TRACE method", StatusCode::METHOD_NOT_ALLOWED);
    }
    let authority = parts.uri.authority().map(|a| a.as_str());
    match (authority, parts.headers.get(header::HOST)) {
        (None, None) => refuse(
            "client sent neither \":authority\" nor \"Host\" header",
            StatusCode::BAD_REQUEST,
        ),
        (Some(a), Some(h)) if a.as_bytes() != h.as_bytes() => refuse(
            "client sent \":authority\" and \"Host\" headers with different values",
            StatusCode::BAD_REQUEST,
        ),
        (Some(a), None) => {
            // Compatibility for `$http_host` (and `proxy_set_header Host $http_host`).
            if let Ok(v) = HeaderValue::from_str(a) {
                parts.headers.insert(header::HOST, v);
            }
            None
        }
        _ => None,
    }
}

/// The headers HTTP/2 forbids in a response (RFC 9113 §8.2.2), removed as nginx
/// never writes them there: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-Connection`, `Transfer-Encoding`, `Upgrade`.
pub(crate) fn strip_connection_headers(h: &mut http::HeaderMap) {
    static NAMES: [HeaderName; 4] = [
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    if let Some(v) = h.remove(header::CONNECTION) {
        if let Ok(list) = v.to_str() {
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                h.remove(name);
            }
        }
    }
    for n in &NAMES {
        h.remove(n);
    }
}

/// Feeds a stream's DATA to the request side as it asks for it (the stream's
/// window opens only as it is read, so a body nobody reads stays at the client).
async fn feed(inc: &mut Incoming, tx: BodySender) {
    loop {
        tx.wanted().await;
        loop {
            match inc.frame().await {
                None => return,
                Some(Ok(f)) => {
                    let Ok(d) = f.into_data() else { continue };
                    if d.is_empty() {
                        continue;
                    }
                    if !tx.send(Ok(d)).await {
                        return;
                    }
                    break;
                }
                Some(Err(_)) => {
                    let _ = tx
                        .send(Err(Error::new(
                            ErrorKind::BadRequest,
                            "client prematurely closed stream",
                        )))
                        .await;
                    return;
                }
            }
        }
    }
}

/// The unread rest of a request body, drained when the response is done: each
/// read within `lingering_timeout`, all within `lingering_time`.
struct Discard {
    inc: Option<Incoming>,
    timeout: Duration,
    total: Duration,
}

impl Drop for Discard {
    fn drop(&mut self) {
        let Some(mut inc) = self.inc.take() else {
            return;
        };
        let (timeout, total) = (self.timeout, self.total);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let end = Instant::now() + total;
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout_at(end.min(Instant::now() + timeout), inc.frame()).await
                {
                }
            });
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body sent in pieces of at most `http2_chunk_size` (nginx's DATA
    /// frames); the stream counts as active until it is dropped.
    struct H2Body {
        #[pin]
        inner: Body,
        rest: Bytes,
        chunk: usize,
        _active: Option<Active>,
        _discard: Discard,
    }
}

impl http_body::Body for H2Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.project();
        if !this.rest.is_empty() {
            let n = (*this.chunk).min(this.rest.len());
            return Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(n)))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => match f.into_data() {
                Ok(mut d) => {
                    if d.len() > *this.chunk {
                        *this.rest = d.split_off(*this.chunk);
                    }
                    Poll::Ready(Some(Ok(Frame::data(d))))
                }
                Err(f) => Poll::Ready(Some(Ok(f))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        let extra = self.rest.len() as u64;
        h.set_lower(h.lower().saturating_add(extra));
        if let Some(u) = h.upper() {
            h.set_upper(u.saturating_add(extra));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_go_with_the_ones_connection_names() {
        let mut h = http::HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_connection_headers(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[tokio::test]
    async fn a_body_goes_in_chunk_size_pieces_without_copies() {
        let data = Bytes::from(vec![7u8; 20_000]);
        let mut b = H2Body {
            inner: junction_core::body::full(data.clone()),
            rest: Bytes::new(),
            chunk: 8192,
            _active: None,
            _discard: Discard {
                inc: None,
                timeout: Duration::ZERO,
                total: Duration::ZERO,
            },
        };
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(f) = b.frame().await {
            let d = f.unwrap_or_else(|_| Frame::data(Bytes::new())).into_data();
            let d = d.unwrap_or_default();
            sizes.push(d.len());
            all.extend_from_slice(&d);
        }
        assert_eq!(sizes, [8192, 8192, 3616]);
        assert_eq!(all, data);
        assert!(b.is_end_stream());
    }
}
