//! The response as nginx's `ngx_http_header_filter` writes it: `HTTP/1.1`, the
//! reason phrase, the headers in title case, `Connection` (and `Keep-Alive:
//! timeout=N`); the body with `Content-Length`, chunked for HTTP/1.1 when the
//! length is unknown, or until close for HTTP/1.0. Writes go out with `writev`:
//! the head and a body that is already there in one call.

use bytes::{BufMut, BytesMut};
use http::{Method, StatusCode, Version};
use std::io::IoSlice;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// No body bytes at all (HEAD, 1xx, 204, 304).
    Nothing,
    /// As is: `Content-Length` framing, or until close.
    Raw,
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The request facts the head depends on.
pub(crate) struct ReqInfo {
    pub(crate) method_head: bool,
    pub(crate) version: Version,
}

impl ReqInfo {
    pub(crate) fn new(method: &Method, version: Version) -> ReqInfo {
        ReqInfo {
            method_head: *method == Method::HEAD,
            version,
        }
    }
}

/// Writes the head of `parts` into `out`; decides the body framing and whether the
/// connection can stay open (`keep_alive` is cleared when the body runs to close).
pub(crate) fn head(
    out: &mut BytesMut,
    parts: &http::response::Parts,
    body_len: Option<u64>,
    req: &ReqInfo,
    keep_alive: &mut bool,
    keepalive_header: Option<u64>,
) -> Out {
    let status = parts.status;
    let code = status.as_u16();
    if req.version == Version::HTTP_09 {
        // HTTP/0.9: the body alone, then the close.
        *keep_alive = false;
        return Out::Raw;
    }
    out.reserve(256);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(r) => out.put_slice(r.as_bytes()),
        None => out.put_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.put_slice(b"\r\n");
    let no_body = (100..200).contains(&code) || code == 204 || code == 304;
    // nginx's order (ngx_http_header_filter): Server, Date, Content-Type,
    // Content-Length, its own Last-Modified and Location, the framing and
    // Connection, then the other headers as they came. One pass finds those and
    // whether there is a Connection; a second writes the rest.
    let mut server = None;
    let mut date = None;
    let mut ctype = None;
    let mut clen = None;
    let mut modified = None;
    let mut location = None;
    let mut ranges = None;
    let mut vary = None;
    let mut has_conn = false;
    let own_vary = parts
        .extensions
        .get::<crate::filters::gzip::OwnVary>()
        .is_some();
    let own = parts.extensions.get::<crate::output::OwnHead>().is_some();
    let passed = parts.extensions.get::<crate::output::Passed>();
    let (own_server, own_date) = passed.map_or((true, true), |p| (!p.server, !p.date));
    for (k, v) in &parts.headers {
        if *k == http::header::SERVER {
            if own_server {
                server = server.or(Some(v));
            }
        } else if *k == http::header::DATE {
            if own_date {
                date = date.or(Some(v));
            }
        } else if *k == http::header::CONTENT_TYPE {
            ctype = ctype.or(Some(v));
        } else if *k == http::header::CONTENT_LENGTH {
            clen = clen.or(Some(v));
        } else if *k == http::header::CONNECTION {
            has_conn = true;
        } else if own && *k == http::header::LAST_MODIFIED {
            modified = modified.or(Some(v));
        } else if own && *k == http::header::LOCATION {
            location = location.or(Some(v));
        } else if own && *k == http::header::ACCEPT_RANGES {
            ranges = ranges.or(Some(v));
        } else if own_vary && *k == http::header::VARY {
            // gzip_vary's is the last one.
            vary = Some(v);
        }
    }
    for (name, v) in [
        (&b"Server: "[..], server),
        (b"Date: ", date),
        (b"Content-Type: ", ctype),
    ] {
        if let Some(v) = v {
            out.put_slice(name);
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
    let has_len = clen.is_some();
    if let Some(v) = clen.filter(|_| !no_body) {
        out.put_slice(b"Content-Length: ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    for (name, v) in [
        (&b"Last-Modified: "[..], modified),
        (b"Location: ", location),
    ] {
        if let Some(v) = v {
            out.put_slice(name);
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
    let framing = if no_body {
        Out::Nothing
    } else if has_len {
        if req.method_head {
            Out::Nothing
        } else {
            Out::Raw
        }
    } else if let Some(len) = body_len {
        if !req.method_head || len > 0 {
            out.put_slice(b"Content-Length: ");
            out.put_slice(itoa::Buffer::new().format(len).as_bytes());
            out.put_slice(b"\r\n");
        }
        if req.method_head {
            Out::Nothing
        } else {
            Out::Raw
        }
    } else if req.method_head {
        Out::Nothing
    } else if req.version == Version::HTTP_11 {
        out.put_slice(b"Transfer-Encoding: chunked\r\n");
        Out::Chunked
    } else {
        *keep_alive = false;
        Out::Raw
    };
    if code == 101 {
        *keep_alive = false;
    } else if !has_conn {
        if *keep_alive {
            out.put_slice(b"Connection: keep-alive\r\n");
            if let Some(t) = keepalive_header {
                out.put_slice(b"Keep-Alive: timeout=");
                out.put_slice(itoa::Buffer::new().format(t).as_bytes());
                out.put_slice(b"\r\n");
            }
        } else {
            out.put_slice(b"Connection: close\r\n");
        }
    }
    if let Some(v) = vary {
        out.put_slice(b"Vary: ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    // The rest, skipping the four written above (by identity: a second value of
    // the same name, such as an `add_header Server`, is written here).
    // A static file's own Accept-Ranges comes last (nginx's range filter adds it
    // after add_header and expires).
    let written = [server, date, ctype, clen, modified, location, vary, ranges];
    for (k, v) in &parts.headers {
        if written
            .iter()
            .any(|w| w.is_some_and(|w| std::ptr::eq(w, v)))
        {
            continue;
        }
        if *k == http::header::TRANSFER_ENCODING || (no_body && *k == http::header::CONTENT_LENGTH)
        {
            // Framing is this layer's: the body is re-framed above.
            continue;
        }
        title_case(out, k.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(v) = ranges {
        out.put_slice(b"Accept-Ranges: ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    framing
}

/// Lower-case hex digits of `n` (a chunk size) into a stack buffer (decimal numbers
/// are `itoa`'s).
struct Hex {
    buf: [u8; 16],
    start: usize,
}

impl Hex {
    fn new(mut n: u64) -> Hex {
        let mut buf = [0u8; 16];
        let mut i = buf.len();
        loop {
            i -= 1;
            if let Some(b) = buf.get_mut(i) {
                *b = b"0123456789abcdef"
                    .get((n & 15) as usize)
                    .copied()
                    .unwrap_or(b'0');
            }
            n >>= 4;
            if n == 0 || i == 0 {
                break;
            }
        }
        Hex { buf, start: i }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
}

/// `content-type` → `Content-Type`.
fn title_case(out: &mut BytesMut, name: &[u8]) {
    if let Some(t) = titled(name) {
        out.put_slice(t);
        return;
    }
    let start = out.len();
    out.extend_from_slice(name);
    let mut up = true;
    for b in out.get_mut(start..).unwrap_or(&mut []) {
        if up {
            b.make_ascii_uppercase();
        }
        up = *b == b'-';
    }
}

/// The title-case form of the names most responses carry, written whole (what
/// [`title_case`] makes of them, byte for byte, pinned by a test; but `ETag` and
/// `WWW-Authenticate`, spelled as nginx spells them).
fn titled(name: &[u8]) -> Option<&'static [u8]> {
    Some(match name {
        b"content-type" => b"Content-Type",
        b"content-length" => b"Content-Length",
        b"last-modified" => b"Last-Modified",
        // nginx's spelling (its own `ETag`; upstreams send it so).
        b"etag" => b"ETag",
        b"www-authenticate" => b"WWW-Authenticate",
        b"accept-ranges" => b"Accept-Ranges",
        b"server" => b"Server",
        b"date" => b"Date",
        b"connection" => b"Connection",
        b"cache-control" => b"Cache-Control",
        b"expires" => b"Expires",
        b"location" => b"Location",
        b"set-cookie" => b"Set-Cookie",
        b"vary" => b"Vary",
        b"content-encoding" => b"Content-Encoding",
        b"x-powered-by" => b"X-Powered-By",
        b"content-range" => b"Content-Range",
        _ => return None,
    })
}

/// The head of a status Junction answers before any server is chosen (a head it
/// cannot parse), with nginx's page and `Connection: close`.
pub(crate) fn error_page(
    status: u16,
    too_large: bool,
    tokens: bool,
    method_head: bool,
) -> BytesMut {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = if too_large {
        crate::serve::bad_request_page("Request Header Or Cookie Too Large", tokens)
    } else {
        crate::serve::error_page_body(status, tokens)
    };
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(crate::serve::reason_phrase(status).as_bytes());
    out.put_slice(b"\r\nServer: ");
    out.put_slice(crate::serve::server_header_value(tokens).as_bytes());
    out.put_slice(b"\r\nDate: ");
    out.put_slice(junction_core::time::http_date().as_bytes());
    out.put_slice(b"\r\nContent-Type: text/html\r\nContent-Length: ");
    out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.put_slice(b"\r\nConnection: close\r\n\r\n");
    if !method_head {
        out.put_slice(&body);
    }
    out
}

/// Writes all of `bufs` with `writev`, each call within `timeout` (nginx's
/// `send_timeout` is between two writes, not for the whole response).
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &[&[u8]],
    timeout: Duration,
) -> std::io::Result<()> {
    let mut idx = 0usize;
    let mut off = 0usize;
    loop {
        while bufs.get(idx).is_some_and(|b| off >= b.len()) {
            idx += 1;
            off = 0;
        }
        let Some(first) = bufs.get(idx) else {
            // A TLS stream may hold the last records back (its socket was full): they
            // go out now, within the same timeout (a no-op on a plain socket).
            return match junction_core::time::timeout(timeout, w.flush()).await {
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client timed out",
                )),
                Ok(r) => r,
            };
        };
        let mut slices: [IoSlice<'_>; BATCH_BUFS + 5] = [IoSlice::new(&[]); BATCH_BUFS + 5];
        let mut k = 0usize;
        if let Some(s) = slices.get_mut(0) {
            *s = IoSlice::new(first.get(off..).unwrap_or(&[]));
            k = 1;
        }
        for b in bufs.iter().skip(idx + 1) {
            if let Some(s) = slices.get_mut(k) {
                *s = IoSlice::new(b);
                k += 1;
            }
        }
        let n = match junction_core::time::timeout(
            timeout,
            w.write_vectored(slices.get(..k).unwrap_or(&[])),
        )
        .await
        {
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client timed out",
                ))
            }
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut n = n;
        while n > 0 {
            let Some(b) = bufs.get(idx) else { break };
            let left = b.len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
}

/// How a batch of body data ends.
pub(crate) enum Tail<'a> {
    /// More of the body follows.
    More,
    /// The body ends with this batch.
    End,
    /// The body ends with these trailer fields (`proxy_pass_trailers`; chunked only).
    Trailers(&'a http::HeaderMap),
}

/// The most data buffers one [`write_batch`] takes (one `writev`, with the head,
/// the chunk framing and the last chunk).
pub(crate) const BATCH_BUFS: usize = 16;

/// Writes `prefix` (the head, before the first data) and the data buffers in one
/// `writev`: as is, or as one chunk of their sum (nginx's chunked filter makes one
/// chunk of what one pass of the output chain carries), followed, when the body ends
/// with them, by the last chunk (and trailer fields) in the same call.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    prefix: &[u8],
    data: &[bytes::Bytes],
    chunked: bool,
    tail: Tail<'_>,
    timeout: Duration,
) -> std::io::Result<()> {
    let len: usize = data.iter().map(|d| d.len()).sum();
    let size = Hex::new(len as u64);
    let mut last = Vec::new();
    let mut bufs: smallvec::SmallVec<[&[u8]; BATCH_BUFS + 5]> = smallvec::SmallVec::new();
    bufs.push(prefix);
    if chunked && len > 0 {
        bufs.push(size.as_bytes());
        bufs.push(b"\r\n");
    }
    bufs.extend(data.iter().map(|d| &d[..]));
    if chunked {
        if len > 0 {
            bufs.push(b"\r\n");
        }
        match tail {
            Tail::More => {}
            Tail::End => bufs.push(b"0\r\n\r\n"),
            Tail::Trailers(trailers) => {
                last.reserve(64);
                last.extend_from_slice(b"0\r\n");
                for (k, v) in trailers {
                    last.extend_from_slice(k.as_str().as_bytes());
                    last.extend_from_slice(b": ");
                    last.extend_from_slice(v.as_bytes());
                    last.extend_from_slice(b"\r\n");
                }
                last.extend_from_slice(b"\r\n");
                bufs.push(&last);
            }
        }
    }
    write_all(w, &bufs, timeout).await
}

/// Flushes and ends the write side.
pub(crate) async fn shutdown<W: AsyncWrite + Unpin>(w: &mut W) {
    let _ = w.shutdown().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn titled_names_are_what_title_case_makes() {
        for n in [
            "content-type",
            "content-length",
            "last-modified",
            "accept-ranges",
            "server",
            "date",
            "connection",
            "cache-control",
            "expires",
            "location",
            "set-cookie",
            "vary",
            "content-encoding",
            "x-powered-by",
            "content-range",
        ] {
            let t = titled(n.as_bytes()).unwrap();
            let mut slow = n.as_bytes().to_vec();
            let mut up = true;
            for b in &mut slow {
                if up {
                    b.make_ascii_uppercase();
                }
                up = *b == b'-';
            }
            assert_eq!(t, &slow[..], "{n}");
        }
        assert!(titled(b"x-custom").is_none());
        // Two names nginx spells otherwise.
        assert_eq!(titled(b"etag"), Some(&b"ETag"[..]));
        assert_eq!(titled(b"www-authenticate"), Some(&b"WWW-Authenticate"[..]));
    }

    #[test]
    fn hex_digits() {
        assert_eq!(Hex::new(0).as_bytes(), b"0");
        assert_eq!(Hex::new(255).as_bytes(), b"ff");
        assert_eq!(Hex::new(0x1000).as_bytes(), b"1000");
        assert_eq!(Hex::new(u64::MAX).as_bytes(), b"ffffffffffffffff");
    }

    #[test]
    fn head_frames_as_nginx() {
        let mut out = BytesMut::new();
        let mut r = http::Response::new(());
        r.headers_mut()
            .insert("x-my-header", http::HeaderValue::from_static("1"));
        let (parts, _) = r.into_parts();
        let mut ka = true;
        let req = ReqInfo::new(&Method::GET, Version::HTTP_11);
        assert_eq!(
            head(&mut out, &parts, None, &req, &mut ka, Some(60)),
            Out::Chunked
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nX-My-Header: 1\r\n\r\n"
        );
        let mut out = BytesMut::new();
        let req = ReqInfo::new(&Method::GET, Version::HTTP_10);
        assert_eq!(head(&mut out, &parts, None, &req, &mut ka, None), Out::Raw);
        assert!(!ka);
        assert!(out.ends_with(b"Connection: close\r\nX-My-Header: 1\r\n\r\n"));
    }

    #[test]
    fn head_orders_as_nginx() {
        let mut r = http::Response::new(());
        let h = r.headers_mut();
        h.insert("etag", http::HeaderValue::from_static("\"e\""));
        h.insert("content-length", http::HeaderValue::from_static("12"));
        h.insert("content-type", http::HeaderValue::from_static("text/plain"));
        h.insert("server", http::HeaderValue::from_static("junction"));
        h.append("server", http::HeaderValue::from_static("added"));
        h.insert(
            "date",
            http::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        let (parts, _) = r.into_parts();
        let mut ka = true;
        let req = ReqInfo::new(&Method::GET, Version::HTTP_11);
        let mut out = BytesMut::new();
        assert_eq!(head(&mut out, &parts, None, &req, &mut ka, None), Out::Raw);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: junction\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\
             ETag: \"e\"\r\nServer: added\r\n\r\n"
        );
    }
}
