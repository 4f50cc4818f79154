//! One client connection: read a head (nginx's buffers and timers), run the
//! request (`serve::handle`) while feeding its body on demand, write the
//! response, then keep the connection (holding no buffer while it idles), hand
//! it over after a `101`, or close it (lingering while the client may still be
//! sending).

use super::body::Decoder;
use super::parse::{self, Framing, HeadError};
use super::write::{self, Out, ReqInfo, Tail};
use super::{ConnConf, Lingering};
use crate::serve::{Shared, Stop};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use junction_core::backend::NoResponse;
use junction_core::body::{Body, IncomingBody, ReqBody};
use junction_core::client::{BodySender, ClientUpgraded};
use junction_core::ctx::ConnInfo;
use junction_core::{Error, ErrorKind};
use smallvec::SmallVec;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

/// What a body read asks for at once.
const BODY_READ: usize = 16 * 1024;
/// How long an idle connection waits for a request already on its way when a
/// graceful stop (or the removal of its listen address) begins.
const GRACEFUL_IDLE: Duration = Duration::from_secs(1);

/// A client socket: readable-readiness (so an idle connection holds no buffer)
/// and an abortive close (`reset_timedout_connection`).
pub(crate) trait Socket: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
    fn reset(&self);
    /// Whether closing needs a shutdown first when the connection does not linger
    /// (TLS: its close_notify). A plain socket is just closed, as nginx does.
    fn shutdown_on_close(&self) -> bool {
        false
    }
    /// Turns Nagle's algorithm off (`tcp_nodelay`). A plain connection has it on
    /// until it first needs it off, as nginx: when it enters keep-alive, is upgraded,
    /// or a response takes more than one write. A TLS one has it off from the start.
    fn set_nodelay(&self) {}
}

impl Socket for tokio::net::TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_read_ready(cx)
    }
    fn reset(&self) {
        let _ = socket2::SockRef::from(self).set_linger(Some(Duration::ZERO));
    }
    fn set_nodelay(&self) {
        let _ = tokio::net::TcpStream::set_nodelay(self, true);
    }
}

impl Socket for tokio::net::UnixStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_read_ready(cx)
    }
    fn reset(&self) {}
}

fn readable<S: Socket>(io: &S) -> impl Future<Output = std::io::Result<()>> + '_ {
    std::future::poll_fn(move |cx| io.poll_readable(cx))
}

/// Where a connection takes its configuration from: the current runtime at the
/// start of each request (a reload reaches connections already open).
pub(crate) struct Source {
    pub(crate) config: watch::Receiver<Arc<crate::Runtime>>,
    pub(crate) stop: watch::Receiver<Stop>,
    /// The path of a `listen unix:` socket (its listen is found by path).
    pub(crate) unix: Option<Arc<std::path::Path>>,
    /// The worker asks idle keep-alive connections to close when it runs out of
    /// `worker_connections` (nginx's reusable connections), longest idle first.
    pub(crate) drain: Arc<tokio::sync::Notify>,
    /// The worker's shared per-listen configuration.
    pub(crate) cache: Arc<std::sync::Mutex<CurrentCache>>,
    /// The connection's `worker_connections` slot, given back when the connection
    /// ends (held here so the task is the connection's future alone).
    pub(crate) _slot: Option<crate::listen::Slot>,
}

/// The configuration one request runs under.
pub(crate) struct Current {
    pub(crate) shared: Arc<Shared>,
    pub(crate) listen: Arc<crate::build::Listen>,
    pub(crate) conf: Arc<ConnConf>,
}

/// A worker's [`Current`] per listen entry, for the runtime it was made from:
/// connections share them (nothing allocated per connection for its config).
#[derive(Default)]
pub(crate) struct CurrentCache {
    rt: Option<Arc<crate::Runtime>>,
    by_listen: Vec<Option<Arc<Current>>>,
}

pub(crate) fn current(
    src: &mut Source,
    info: &ConnInfo,
    prev: Option<Arc<Current>>,
) -> Option<Arc<Current>> {
    if prev.is_some() && !src.config.has_changed().unwrap_or(false) {
        return prev;
    }
    let rt = src.config.borrow_and_update().clone();
    let idx = match &src.unix {
        Some(p) => rt
            .listens
            .iter()
            .position(|l| l.unix.as_deref() == Some(&**p)),
        None => crate::listen::listen_for(&rt, info.local)
            .and_then(|l| rt.listens.iter().position(|x| std::ptr::eq(x, l))),
    };
    // A reload removed this connection's listen address: it finishes under the
    // configuration it had (it is draining).
    let Some(idx) = idx else {
        return prev;
    };
    let mut cache = src.cache.lock().unwrap_or_else(|e| e.into_inner());
    if !cache.rt.as_ref().is_some_and(|r| Arc::ptr_eq(r, &rt)) {
        cache.rt = Some(rt.clone());
        cache.by_listen.clear();
    }
    if let Some(Some(c)) = cache.by_listen.get(idx) {
        return Some(c.clone());
    }
    let listen = rt.listens.get(idx)?.clone();
    let conf = listen
        .servers
        .get(listen.default)
        .and_then(|i| rt.servers.get(*i))
        .map(|s| s.conn.clone())?;
    let c = Arc::new(Current {
        shared: Arc::new(Shared { rt }),
        listen: Arc::new(listen),
        conf,
    });
    if cache.by_listen.len() <= idx {
        cache.by_listen.resize(idx + 1, None);
    }
    if let Some(slot) = cache.by_listen.get_mut(idx) {
        *slot = Some(c.clone());
    }
    Some(c)
}

fn stopping(src: &Source) -> bool {
    *src.stop.borrow() != Stop::Run
}

/// What a connection carries from one request to the next.
struct Life {
    /// When it was accepted (`keepalive_time`).
    born: Instant,
    /// Requests begun on it (`keepalive_requests`).
    served: u64,
    /// Whether Nagle's algorithm is off on it yet.
    nodelay: bool,
}

/// What follows a request.
enum Next {
    /// Wait for the next request, this long (`keepalive_timeout`).
    KeepAlive(Duration),
    /// Close, lingering or not (under these settings).
    Close { linger: bool, conf: Arc<ConnConf> },
    /// Drop the connection as it is.
    Drop,
    /// Hand the raw connection over (after a `101`).
    Upgrade(tokio::sync::oneshot::Sender<ClientUpgraded>),
}

/// Serves one client connection until it closes. While it idles, its state is
/// this function's few locals: the request's own state lives in a box for the
/// request's duration only.
/// (A plain fn returning the async block: an `async fn` copies its parameters into
/// locals of its own, and the connection's task then holds them twice.)
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(crate) fn serve<S: Socket>(
    mut io: S,
    info: Arc<ConnInfo>,
    mut src: Source,
) -> impl Future<Output = ()> + 'static {
    async move {
        let _open = junction_core::stats::OpenConnection::open();
        let mut life = Life {
            born: Instant::from_std(junction_core::time::now()),
            served: 0,
            nodelay: false,
        };
        let mut cur: Option<Arc<Current>> = current(&mut src, &info, None);
        let mut buf = BytesMut::new();
        let mut idle = Duration::ZERO;
        loop {
            let Some(c) = cur.as_ref() else {
                return;
            };
            // Idle (before the first byte of a request): no buffer is held.
            if buf.is_empty() {
                buf = BytesMut::new();
                let wait = if life.served == 0 {
                    c.conf.header_timeout
                } else {
                    idle
                };
                let mut stop = src.stop.clone();
                tokio::select! {
                    biased;
                    r = junction_core::time::timeout(wait, readable(&io)) => match r {
                        Ok(Ok(())) => {}
                        _ => return,
                    },
                    _ = stop.changed() => {
                        // A graceful stop: a keep-alive client's next request may be on its
                        // way already, and closing now would reset it. It gets a moment to
                        // arrive and is served with `Connection: close`; then the idle close.
                        let grace = tokio::time::timeout(GRACEFUL_IDLE.min(wait), readable(&io));
                        let graceful = *stop.borrow() == Stop::Graceful;
                        if !graceful || !matches!(grace.await, Ok(Ok(()))) {
                            return;
                        }
                    }
                    _ = src.drain.notified(), if life.served > 0 => return,
                }
            }
            // The configuration current when the request starts (a reload reaches
            // connections opened before it).
            cur = current(&mut src, &info, cur.take());
            let Some(c) = cur.as_ref() else {
                return;
            };
            life.served += 1;
            let next =
                junction_core::box_pin!(exchange(&mut io, &mut buf, &info, c, &mut life, &src))
                    .await;
            match next {
                Next::KeepAlive(t) => {
                    // nginx's ngx_http_set_keepalive: the next response must not wait for
                    // this one's acknowledgement.
                    ensure_nodelay(&io, &mut life.nodelay);
                    idle = t;
                    continue;
                }
                Next::Drop => return,
                Next::Close { linger, conf } => {
                    if !linger {
                        // nginx counts the connection closed before its close(2).
                        drop(_open);
                        if !io.shutdown_on_close() {
                            return;
                        }
                    }
                    // Boxed: its timer and read future live only while closing, not in every
                    // idle connection's task.
                    Box::pin(close(io, linger, &conf)).await;
                    return;
                }
                Next::Upgrade(tx) => {
                    ensure_nodelay(&io, &mut life.nodelay);
                    let _ = tx.send(ClientUpgraded {
                        io: Box::new(io),
                        leftover: buf.freeze(),
                    });
                    return;
                }
            }
        }
    }
}

/// One request: its head, the request run with its body fed on demand, the response.
async fn exchange<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    info: &Arc<ConnInfo>,
    c: &Current,
    life: &mut Life,
    src: &Source,
) -> Next {
    let served = life.served;
    let nodelay = &mut life.nodelay;
    let conf = &c.conf;
    // The head, within client_header_timeout from its first byte: the deadline is
    // taken when a read first has to wait (most heads arrive whole, and then the clock
    // is not read).
    let mut deadline: Option<Instant> = None;
    let reading = junction_core::stats::ReadingHead::start();
    let head = loop {
        if !buf.is_empty() {
            match parse::parse(buf, conf) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => {
                    head_error(io, e, info, conf, buf).await;
                    return Next::Drop;
                }
            }
        }
        let room = if buf.len() < conf.header_buffer {
            conf.header_buffer
        } else {
            conf.large_size
        };
        buf.reserve(room.saturating_sub(buf.len()).max(1024));
        let read = match io.read_buf(buf).now_or_never() {
            Some(r) => Ok(r),
            None => {
                let d = *deadline.get_or_insert_with(|| {
                    Instant::from_std(junction_core::time::now()) + conf.header_timeout
                });
                junction_core::time::timeout_at(d, io.read_buf(buf)).await
            }
        };
        match read {
            Err(_) => {
                tracing::info!(
                    "*{} client timed out while reading client request headers, client: {}",
                    info.id,
                    info.client()
                );
                if conf.reset_timedout {
                    io.reset();
                }
                return Next::Drop;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return Next::Drop,
            Ok(Ok(_)) => {}
        }
    };
    drop(reading);
    let req_info = ReqInfo::new(&head.parts.method, head.parts.version);
    let parts = head.parts;
    let (body, sender, mut decoder) = match head.framing {
        Framing::None => (ReqBody::Empty, None, Decoder::length(0)),
        Framing::Length(l) => {
            let (b, s) = IncomingBody::channel(Some(l), conf.body_timeout);
            (ReqBody::Incoming(b), Some(s), Decoder::length(l))
        }
        Framing::Chunked => {
            let (b, s) = IncomingBody::channel(None, conf.body_timeout);
            (ReqBody::Incoming(b), Some(s), Decoder::chunked())
        }
    };
    let (upgrade_tx, upgrade_rx) = if head.upgrade {
        let (tx, rx) = tokio::sync::oneshot::channel::<ClientUpgraded>();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let req = http::Request::from_parts(parts, body);
    let mut expect = head.expect_continue && req_info.version == http::Version::HTTP_11;
    // The server the request chose: its keep-alive, send and lingering settings
    // apply from here on (the head was read under the default server's).
    let chosen = std::sync::OnceLock::new();
    let side = Side {
        io: &mut *io,
        buf: &mut *buf,
        decoder: &mut decoder,
        sender,
        expect: &mut expect,
        conf,
    };
    let resp = run(c, info, req, served, head.len, upgrade_rx, &chosen, side).await;
    let Some((resp, body_failed)) = resp else {
        // nginx's broken-connection check: the client left while the request ran.
        tracing::info!(
            "*{} client prematurely closed connection, client: {}",
            info.id,
            info.client()
        );
        return Next::Drop;
    };
    if resp.extensions().get::<NoResponse>().is_some() {
        return Next::Drop;
    }
    let sconf: Arc<ConnConf> = match resp.extensions().get::<crate::serve::LocConn>() {
        Some(l) => l.0.clone(),
        None => chosen.get().cloned().unwrap_or_else(|| c.conf.clone()),
    };
    let conf: &ConnConf = &sconf;
    let mut keep_alive = head.keep_alive
        && !conf.keepalive_timeout.is_zero()
        && served < conf.keepalive_requests.max(1)
        && junction_core::time::since(life.born.into_std()) < conf.keepalive_time;
    let status = resp.status().as_u16();
    // nginx's special responses that end keep-alive (ngx_http_special_response_handler).
    if matches!(status, 400 | 413 | 414 | 500 | 501)
        && resp.extensions().get::<crate::serve::OwnPage>().is_some()
    {
        keep_alive = false;
    }
    if stopping(src) {
        keep_alive = false;
    }
    if body_failed {
        keep_alive = false;
    }
    let unread_body = !decoder.is_done();
    if unread_body && expect {
        if status == 413 {
            // The body is too large: no 100, the client is not to send it
            // (nginx sets `expect_tested` before discarding).
            keep_alive = false;
        } else {
            // nginx discards the body it did not read (`ngx_http_discard_request_body`
            // tests Expect first): the 100 goes out before the response.
            if write::write_all(io, &[b"HTTP/1.1 100 Continue\r\n\r\n"], conf.send_timeout)
                .await
                .is_err()
            {
                return Next::Drop;
            }
            // The response follows at once: a second write.
            ensure_nodelay(io, nodelay);
        }
    }
    let upgrading = status == 101 && upgrade_tx.is_some();
    let wrote = write_response(io, buf, resp, &req_info, &mut keep_alive, conf, nodelay).await;
    if let Err(e) = wrote {
        tracing::info!(
            "*{} {e} while sending response to client, client: {}",
            info.id,
            info.client()
        );
        if e.kind() == std::io::ErrorKind::TimedOut && conf.reset_timedout {
            io.reset();
        }
        return Next::Drop;
    }
    if upgrading {
        if let Some(tx) = upgrade_tx {
            return Next::Upgrade(tx);
        }
    }
    if keep_alive && unread_body {
        keep_alive = discard(io, buf, &mut decoder, conf).await;
    }
    if keep_alive {
        return Next::KeepAlive(conf.keepalive_timeout);
    }
    let linger = match conf.lingering {
        Lingering::Off => false,
        Lingering::Always => true,
        Lingering::On => unread_body || !buf.is_empty(),
    };
    Next::Close {
        linger: linger && status != 400,
        conf: sconf.clone(),
    }
}

/// What the client side of a running request works on (see [`client_side`]).
struct Side<'a, S> {
    io: &'a mut S,
    buf: &'a mut BytesMut,
    decoder: &'a mut Decoder,
    sender: Option<BodySender>,
    expect: &'a mut bool,
    conf: &'a ConnConf,
}

/// The request run (`serve::handle`) beside its client side: the response and whether
/// the request body failed, or `None` when the client left first.
///
/// An async fn of its own because its two pinned futures live across two awaits: in
/// [`exchange`]'s state they took a slot that no later await could share, and that
/// state (5.4 KB then, 4.4 KB now) is copied into its box on every request.
#[allow(clippy::too_many_arguments)]
async fn run<S: Socket>(
    c: &Current,
    info: &Arc<ConnInfo>,
    req: http::Request<ReqBody>,
    served: u64,
    head_len: usize,
    upgrade_rx: Option<junction_core::client::OnUpgrade>,
    chosen: &std::sync::OnceLock<Arc<ConnConf>>,
    side: Side<'_, S>,
) -> Option<(http::Response<Body>, bool)> {
    // Pinned where they are made: a future first bound to a name keeps a second
    // slot in this future's state.
    let mut fut = std::pin::pin!(crate::serve::handle(
        &c.shared,
        info.clone(),
        &c.listen,
        req,
        served,
        head_len,
        upgrade_rx,
        chosen,
    ));
    let mut side = std::pin::pin!(client_side(side));
    tokio::select! {
        biased;
        r = &mut fut => Some((r, false)),
        ended = &mut side => match ended {
            Ended::BodyError => Some((fut.await, true)),
            Ended::Gone => None,
        },
    }
}

/// How the client side of a running request ended.
enum Ended {
    /// The body was invalid or cut (the request side got the error).
    BodyError,
    /// The client closed the connection.
    Gone,
}

/// The client side while a request runs: feeds its body as the request side asks
/// for it (the `100 Continue` first), then watches the connection: bytes that
/// arrive are kept (pipelined requests), EOF means the client left. Never ends
/// otherwise.
async fn client_side<S: Socket>(side: Side<'_, S>) -> Ended {
    let Side {
        io,
        buf,
        decoder,
        sender,
        expect,
        conf,
    } = side;
    if let Some(sender) = sender {
        if !feed(io, buf, decoder, sender, expect, conf).await {
            return Ended::BodyError;
        }
    }
    client_gone(io, buf, conf.head_limit()).await;
    Ended::Gone
}

/// Resolves when the client closes the connection; what it sends meanwhile is
/// kept in `buf` (up to `limit`; past it the socket is not read).
async fn client_gone<S: Socket>(io: &mut S, buf: &mut BytesMut, limit: usize) {
    loop {
        if buf.len() >= limit || readable(io).await.is_err() {
            std::future::pending::<()>().await;
        }
        buf.reserve(1024);
        match io.read_buf(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Feeds the request body to the request side as it asks for it; `false` on a
/// body error (sent to the request side too).
async fn feed<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    sender: BodySender,
    expect: &mut bool,
    conf: &ConnConf,
) -> bool {
    loop {
        sender.wanted().await;
        if *expect {
            *expect = false;
            if write::write_all(io, &[b"HTTP/1.1 100 Continue\r\n\r\n"], conf.send_timeout)
                .await
                .is_err()
            {
                return false;
            }
        }
        loop {
            match decoder.decode(buf) {
                Ok(Some(chunk)) if !chunk.is_empty() => {
                    if !sender.send(Ok(chunk)).await {
                        return true;
                    }
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) if decoder.is_done() => return true,
                Ok(None) => {}
                Err(msg) => {
                    let _ = sender
                        .send(Err(Error::new(ErrorKind::BadRequest, msg)))
                        .await;
                    return false;
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(BODY_READ);
            }
            match io.read_buf(buf).await {
                Ok(0) | Err(_) => {
                    let _ = sender
                        .send(Err(Error::new(
                            ErrorKind::BadRequest,
                            "client prematurely closed connection",
                        )))
                        .await;
                    return false;
                }
                Ok(_) => {}
            }
        }
    }
}

/// Reads and drops the rest of a body nobody read (nginx's
/// `ngx_http_discard_request_body`); `false` when the connection cannot be kept.
async fn discard<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    conf: &ConnConf,
) -> bool {
    loop {
        match decoder.decode(buf) {
            Ok(Some(_)) => continue,
            Ok(None) if decoder.is_done() => return true,
            Ok(None) => {}
            Err(_) => return false,
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(BODY_READ);
        }
        match tokio::time::timeout(conf.lingering_timeout, io.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

/// Closes the connection; with lingering, the write side first, then what the
/// client still sends is read and dropped for up to `lingering_time`, as long as
/// each read comes within `lingering_timeout` (so a client still sending its
/// body reads the response instead of a reset).
async fn close<S: Socket>(mut io: S, linger: bool, conf: &ConnConf) {
    if !linger {
        if io.shutdown_on_close() {
            write::shutdown(&mut io).await;
        }
        return;
    }
    write::shutdown(&mut io).await;
    let end = Instant::now() + conf.lingering_time;
    let mut scratch = vec![0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        let wait = conf.lingering_timeout.min(end - now);
        match tokio::time::timeout(wait, io.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// A head that cannot be parsed: nginx's page, then close.
async fn head_error<S: Socket>(
    io: &mut S,
    e: HeadError,
    info: &ConnInfo,
    conf: &ConnConf,
    buf: &BytesMut,
) {
    tracing::info!("*{} {}, client: {}", info.id, e.msg, info.client());
    let method_head = buf.starts_with(b"HEAD ");
    let page = write::error_page(e.status, e.too_large, conf.server_tokens, method_head);
    // An HTTP/0.9 request gets the page alone.
    let page = if parse::is_http09(buf) {
        page.get(
            page.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |p| p + 4)..,
        )
        .unwrap_or(&[])
    } else {
        &page[..]
    };
    let _ = write::write_all(io, &[page], conf.send_timeout).await;
    write::shutdown(io).await;
}

/// The most body bytes gathered into one write from frames that are ready.
const BATCH_BYTES: usize = 64 * 1024;

/// Writes the head and the body; the body (and with it the request's access log
/// entry) is dropped when this returns.
async fn write_response<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    resp: http::Response<Body>,
    req: &ReqInfo,
    keep_alive: &mut bool,
    conf: &ConnConf,
    nodelay: &mut bool,
) -> std::io::Result<()> {
    let (parts, mut body) = resp.into_parts();
    let hint = http_body::Body::size_hint(&body);
    let len = if http_body::Body::is_end_stream(&body) {
        Some(0)
    } else {
        hint.exact()
    };
    let mut head = BytesMut::new();
    let out = write::head(
        &mut head,
        &parts,
        len,
        req,
        keep_alive,
        conf.keepalive_header,
    );
    let t = conf.send_timeout;
    let limit = conf.head_limit();
    if out == Out::Nothing {
        // The request is over before its last byte goes out, as nginx frees it
        // (access log, counters) in the same step as its last write.
        drop(body);
        return write::write_all(io, &[&head], t).await;
    }
    let chunked = out == Out::Chunked;
    let unbuffered = parts
        .extensions
        .get::<junction_core::body::Unbuffered>()
        .is_some();
    let mut pending: Option<&[u8]> = Some(&head[..]);
    let mut data: SmallVec<[Bytes; 4]> = SmallVec::new();
    loop {
        // The first frame goes out with the head: a buffered body's head waits for
        // it (as nginx's write filter holds a head under `postpone_output`); an
        // unbuffered relay's head goes alone at once when its first frame is not
        // there yet.
        let frame = match pending {
            Some(h) if unbuffered => match body.frame().now_or_never() {
                Some(f) => f,
                None => {
                    write::write_all(io, &[h], t).await?;
                    ensure_nodelay(io, nodelay);
                    pending = None;
                    next_frame(io, buf, &mut body, limit).await?
                }
            },
            _ => next_frame(io, buf, &mut body, limit).await?,
        };
        // Then whatever else the body has ready goes into the same write, and the
        // last chunk too when the body ends with it, as nginx writes what one pass
        // of its output chain holds in one `writev`.
        data.clear();
        let mut bytes = 0usize;
        let mut trailers = None;
        let mut end = false;
        let mut frame = Some(frame);
        loop {
            match frame.take() {
                Some(None) => end = true,
                Some(Some(Err(e))) => {
                    // The body broke off (an upstream error after the head): what came
                    // before goes out, then nginx closes.
                    drop(body);
                    let h = pending.take().unwrap_or(&[]);
                    write::write_batch(io, h, &data, chunked, Tail::More, t).await?;
                    *keep_alive = false;
                    return Err(std::io::Error::other(e));
                }
                Some(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => {
                        if !d.is_empty() {
                            bytes += d.len();
                            data.push(d);
                        }
                    }
                    // Trailers (`proxy_pass_trailers`): the last frame; only a chunked
                    // response can carry them.
                    Err(f) => {
                        if let (Ok(tr), true) = (f.into_trailers(), chunked) {
                            trailers = Some(tr);
                            end = true;
                        }
                    }
                },
                None => {}
            }
            if end || http_body::Body::is_end_stream(&body) {
                end = true;
                break;
            }
            if data.len() >= write::BATCH_BUFS || bytes >= BATCH_BYTES {
                break;
            }
            match body.frame().now_or_never() {
                Some(f) => frame = Some(f),
                None => break,
            }
        }
        let h = pending.take().unwrap_or(&[]);
        if end {
            // The request ends before its last write, as nginx frees it (access log,
            // counters) in the same step.
            drop(body);
            let tail = match &trailers {
                Some(tr) => Tail::Trailers(tr),
                None => Tail::End,
            };
            return write::write_batch(io, h, &data, chunked, tail, t).await;
        }
        if h.is_empty() && data.is_empty() {
            continue;
        }
        write::write_batch(io, h, &data, chunked, Tail::More, t).await?;
        ensure_nodelay(io, nodelay);
    }
}

/// Before a response's second write: Nagle's algorithm would hold a small write back
/// until the first is acknowledged (up to the client's delayed-ACK time).
fn ensure_nodelay<S: Socket>(io: &S, nodelay: &mut bool) {
    if !*nodelay {
        io.set_nodelay();
        *nodelay = true;
    }
}

/// The body's next frame, unless the client leaves first (then the body is
/// dropped: an upstream waited for is released at once).
async fn next_frame<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    body: &mut Body,
    limit: usize,
) -> std::io::Result<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
    tokio::select! {
        biased;
        f = body.frame() => Ok(f),
        _ = client_gone(io, buf, limit) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "client prematurely closed connection",
        )),
    }
}
