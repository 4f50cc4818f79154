//! The exchange driver's retry rules, in-process: a scripted upstream on a loopback
//! listener (port 0) answers each request of each connection as its script says, and a
//! small line codec frames the exchange. One test per rule of `ngx_http_upstream_next`
//! as Junction applies it (see [`super::exchange`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::ctx::ConnInfo;
use crate::upstream::PeerAddr;
use http::{HeaderMap, Method, StatusCode, Version};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the scripted upstream does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// `200`, body `ok`, the connection kept.
    Answer,
    /// Closes the connection without a byte (a peer closing an idle keep-alive
    /// connection just as the request arrives).
    CloseSilently,
    /// Sends part of a response head, then closes.
    PartialHead,
    /// Never answers (the read times out).
    Hang,
    /// Sends the head and part of the body, then closes.
    CutBody,
}

/// A loopback upstream: connection `n` (in accept order) plays `scripts[n]`, one act
/// per request; requests past the script, and connections past the list, are answered.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(scripts: Vec<Vec<Act>>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let scripts = Arc::new(Mutex::new(scripts.into_iter()));
        let (acc, reqs) = (accepted.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let script = scripts.lock().unwrap().next().unwrap_or_default();
                let reqs = reqs.clone();
                tokio::spawn(async move {
                    let mut acts = script.into_iter();
                    let mut buf = Vec::new();
                    loop {
                        // One request: everything up to a blank line.
                        while !buf.windows(2).any(|w| w == b"\n\n") {
                            let mut chunk = [0u8; 1024];
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
                        buf.drain(..end);
                        reqs.fetch_add(1, Ordering::SeqCst);
                        match acts.next().unwrap_or(Act::Answer) {
                            Act::Answer => {
                                if sock.write_all(b"200\n\nok\0").await.is_err() {
                                    return;
                                }
                            }
                            Act::CloseSilently => return,
                            Act::PartialHead => {
                                let _ = sock.write_all(b"20").await;
                                return;
                            }
                            Act::Hang => {
                                let _ = sock.read(&mut [0u8; 1]).await;
                                return;
                            }
                            Act::CutBody => {
                                let _ = sock.write_all(b"200\n\npart of the bo").await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            accepted,
            requests,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A line codec: the head is `NNN\n\n`, the body runs to a NUL byte (the connection
/// then reusable) or to EOF.
struct LineCodec {
    head_done: bool,
}

impl UpstreamCodec for LineCodec {
    fn encode_body(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        out.push(chunk);
    }

    fn encode_end(&mut self, _out: &mut Vec<Bytes>) {}

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if !self.head_done {
            let Some(end) = buf.windows(2).position(|w| w == b"\n\n") else {
                return Ok(None);
            };
            let line = buf.split_to(end + 2);
            let status = std::str::from_utf8(&line[..end])
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| Error::invalid("bad status line"))?;
            self.head_done = true;
            return Ok(Some(Decoded::Head(ResponseHead {
                status,
                headers: HeaderMap::new(),
            })));
        }
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            if nul == 0 {
                buf.clear();
                return Ok(Some(Decoded::End { reusable: true }));
            }
            return Ok(Some(Decoded::Data(buf.split_to(nul).freeze())));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        Ok(Some(Decoded::Data(buf.split().freeze())))
    }

    fn decode_eof(&mut self, _buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if self.head_done {
            Err(Error::new(
                ErrorKind::UpstreamClosed,
                "upstream prematurely closed connection while reading upstream",
            ))
        } else {
            Ok(None)
        }
    }
}

fn new_codec() -> Box<dyn UpstreamCodec> {
    Box::new(LineCodec { head_done: false })
}

fn conf(servers: &[SocketAddr], next: NextUpstream) -> UpstreamConf {
    let addrs = servers.iter().map(|a| PeerAddr::Tcp(*a)).collect();
    UpstreamConf {
        group: Group::implicit("test".into(), addrs),
        bind: Bind::Off,
        schema: "test://",
        vars: Default::default(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            send: Duration::from_secs(5),
            read: Duration::from_millis(300),
        },
        buffering: BufferPolicy::default(),
        next,
        keep_conn: true,
        catch_stderr: Arc::from([]),
        tls: None,
    }
}

fn cx(method: Method) -> RequestCtx {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let conn = Arc::new(ConnInfo {
        remote: a,
        local: a,
        scheme: "http",
        id: 1,
        proxy_protocol: None,
    });
    RequestCtx::new(conn, method, Version::HTTP_11, "/".into())
}

/// A request through `conf`: the status and body, or the error.
async fn run(
    conf: &UpstreamConf,
    method: Method,
    body: ReqBody,
) -> (RequestCtx, Result<(u16, Bytes), Error>) {
    let mut cx = cx(method);
    let r = exchange(
        conf,
        &mut cx,
        Bytes::from_static(b"REQ\n\n"),
        body,
        &new_codec,
    )
    .await;
    let r = match r {
        Err(e) => Err(e),
        Ok(up) => {
            let status = up.head.status.as_u16();
            match up.body.collect().await {
                Ok(b) => Ok((status, b.to_bytes())),
                Err(e) => {
                    Err(Error::new(ErrorKind::UpstreamIo, e.to_string()).with_retry(Retry::Never))
                }
            }
        }
    };
    (cx, r)
}

fn post_body() -> ReqBody {
    ReqBody::Buffered(Bytes::from_static(b"a=1").into())
}

/// An address nothing listens on.
async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[tokio::test]
async fn refused_connect_goes_to_the_next_server_and_alone_is_502() {
    let dead = refused_addr().await;
    let up = Scripted::start(vec![]).await;
    // Two servers: the refused one costs a try, the next answers.
    let c = conf(&[dead, up.addr], NextUpstream::default());
    // Round robin may start at either: both orders end on the live server.
    for _ in 0..2 {
        let (_, r) = run(&c, Method::POST, post_body()).await;
        assert_eq!(
            r.unwrap().0,
            200,
            "a POST is retried when it was never sent"
        );
    }
    // Alone, a refused connect is the answer.
    let c = conf(&[dead], NextUpstream::default());
    let (cx, r) = run(&c, Method::GET, ReqBody::Empty).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert_eq!(e.retry(), Retry::NextUpstream);
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(cx.upstream.attempts().count(), 1);
}

#[tokio::test]
async fn reused_connection_closed_before_any_byte_is_retried_fresh_without_a_try() {
    // Connection 1 answers its first request and closes at the second, silently.
    let up = Scripted::start(vec![vec![Act::Answer, Act::CloseSilently]]).await;
    let c = conf(&[up.addr], NextUpstream::default());
    let (_, r) = run(&c, Method::GET, ReqBody::Empty).await;
    assert_eq!(r.unwrap(), (200, Bytes::from_static(b"ok")));
    // A single server: the retry uses no try, and goes to a new connection.
    let (cx, r) = run(&c, Method::GET, ReqBody::Empty).await;
    assert_eq!(r.unwrap(), (200, Bytes::from_static(b"ok")));
    assert_eq!(up.accepted(), 2);
    assert_eq!(up.requests(), 3);
    // Both tries show in $upstream_addr / $upstream_status, as nginx logs them.
    let statuses: Vec<Option<u16>> = cx.upstream.attempts().map(|a| a.status).collect();
    assert_eq!(statuses, vec![None, Some(200)]);
    // The server is not counted as failed: it still serves (max_fails=1).
    let (_, r) = run(&c, Method::GET, ReqBody::Empty).await;
    assert_eq!(r.unwrap().0, 200);
}

#[tokio::test]
async fn reused_connection_closed_before_any_byte_post_is_not_sent_again() {
    let up = Scripted::start(vec![vec![Act::Answer, Act::CloseSilently]]).await;
    let c = conf(&[up.addr], NextUpstream::default());
    assert_eq!(run(&c, Method::GET, ReqBody::Empty).await.1.unwrap().0, 200);
    // The POST was sent: without `non_idempotent` it is not made again (nginx: 502).
    let (_, r) = run(&c, Method::POST, post_body()).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamClosed);
    assert_eq!(e.retry(), Retry::ReusedOnly);
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert_eq!((up.accepted(), up.requests()), (1, 2));

    // With `non_idempotent` listed, it goes again on a fresh connection.
    let up = Scripted::start(vec![vec![Act::Answer, Act::CloseSilently]]).await;
    let next = NextUpstream {
        non_idempotent: true,
        ..NextUpstream::default()
    };
    let c = conf(&[up.addr], next);
    assert_eq!(run(&c, Method::GET, ReqBody::Empty).await.1.unwrap().0, 200);
    assert_eq!(run(&c, Method::POST, post_body()).await.1.unwrap().0, 200);
    assert_eq!((up.accepted(), up.requests()), (2, 3));

    // `*_next_upstream off`: not even the free retry.
    let up = Scripted::start(vec![vec![Act::Answer, Act::CloseSilently]]).await;
    let next = NextUpstream {
        error: false,
        timeout: false,
        ..NextUpstream::default()
    };
    let c = conf(&[up.addr], next);
    assert_eq!(run(&c, Method::GET, ReqBody::Empty).await.1.unwrap().0, 200);
    let e = run(&c, Method::GET, ReqBody::Empty).await.1.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamClosed);
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn a_fresh_connection_closed_before_any_byte_uses_a_try() {
    // The first connection of all closes at once: it was not reused, so no free retry.
    let up = Scripted::start(vec![vec![Act::CloseSilently]]).await;
    let c = conf(&[up.addr], NextUpstream::default());
    let (_, r) = run(&c, Method::GET, ReqBody::Empty).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamClosed);
    assert_eq!(e.retry(), Retry::NextUpstream);
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn eof_after_part_of_the_head_is_an_ordinary_failure() {
    // Reused, but bytes had arrived: the peer did take the request. One server: 502.
    let up = Scripted::start(vec![vec![Act::Answer, Act::PartialHead]]).await;
    let c = conf(&[up.addr], NextUpstream::default());
    assert_eq!(run(&c, Method::GET, ReqBody::Empty).await.1.unwrap().0, 200);
    let e = run(&c, Method::GET, ReqBody::Empty).await.1.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamClosed);
    assert_eq!(e.retry(), Retry::NextUpstream);
    assert_eq!((up.accepted(), up.requests()), (1, 2));

    // Two servers: the next one is tried (a try is used).
    let bad = Scripted::start(vec![vec![Act::PartialHead]; 4]).await;
    let good = Scripted::start(vec![]).await;
    let c = conf(&[bad.addr, good.addr], NextUpstream::default());
    let (cx, r) = run(&c, Method::GET, ReqBody::Empty).await;
    assert_eq!(r.unwrap().0, 200);
    assert!(cx.upstream.attempts().count() <= 2);
}

#[tokio::test]
async fn timeout_on_a_reused_connection_is_not_retried_fresh() {
    let up = Scripted::start(vec![vec![Act::Answer, Act::Hang]]).await;
    let c = conf(&[up.addr], NextUpstream::default());
    assert_eq!(run(&c, Method::GET, ReqBody::Empty).await.1.unwrap().0, 200);
    let e = run(&c, Method::GET, ReqBody::Empty).await.1.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.retry(), Retry::NextUpstream);
    assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!((up.accepted(), up.requests()), (1, 2));
}

#[tokio::test]
async fn an_error_after_the_client_got_bytes_is_not_retried() {
    // The head (and a piece of body) went on to the client: the cut body is an
    // error of the response, and the request is not made again anywhere.
    let up = Scripted::start(vec![vec![Act::CutBody]]).await;
    let other = Scripted::start(vec![]).await;
    let c = conf(&[up.addr, other.addr], NextUpstream::default());
    // Round robin: find the request that went to the cutting server first.
    let mut cut = None;
    for _ in 0..2 {
        let (_, r) = run(&c, Method::GET, ReqBody::Empty).await;
        if up.requests() == 1 && cut.is_none() {
            cut = Some(r);
        }
    }
    let e = cut
        .expect("a request reached the cutting server")
        .unwrap_err();
    assert_eq!(e.retry(), Retry::Never);
    assert_eq!(up.requests(), 1);
    assert_eq!(other.requests(), 1, "the cut request was not made again");
}
