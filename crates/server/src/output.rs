//! The output: the response's headers (`Server`, `Date`, the filters' headers,
//! `add_header`), the output filters, and the access log written when the body ends
//! ([`LoggedBody`]).

use crate::build::LocConf;
use crate::pages::server_header;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;
use junction_core::body::Body;
use junction_core::ctx::RequestCtx;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Marks a response whose `Last-Modified` and `Location` Junction made itself (a
/// static file, a redirect): nginx writes those right after `Content-Length`,
/// where an upstream's come among the other headers.
#[derive(Clone, Copy)]
pub(crate) struct OwnHead;

/// Marks a response whose `Server` or `Date` came from its upstream (nginx writes
/// those among the other headers, where its own come first).
#[derive(Clone, Copy)]
pub(crate) struct Passed {
    pub(crate) server: bool,
    pub(crate) date: bool,
}

/// A response's location-level connection settings ([`LocConf::conn`]).
#[derive(Clone)]
pub(crate) struct LocConn(pub(crate) Arc<crate::http1::ConnConf>);

/// Output headers, then the access log once the body ends.
pub(crate) fn finish(
    resp: http::Response<Body>,
    mut cx: Box<RequestCtx>,
    c: &LocConf,
) -> http::Response<Body> {
    let mut resp = c.limits.output(resp, &mut cx);
    if let Some(conn) = &c.conn {
        resp.extensions_mut().insert(LocConn(conn.clone()));
    }
    let status = resp.status().as_u16();
    let h = resp.headers_mut();
    // nginx's own `Server` and `Date` go out unless the response has them already
    // (a FastCGI script's, or an HTTP upstream's under `proxy_pass_header`).
    let (own_server, own_date) = own_server_date(h);
    if own_server {
        match &c.server_tokens_string {
            None => {
                h.insert(http::header::SERVER, server_header(c.server_tokens));
            }
            Some(t) => {
                let s = t.eval(&cx);
                if let Ok(v) = HeaderValue::from_maybe_shared(s.clone()) {
                    if !s.is_empty() {
                        h.insert(http::header::SERVER, v);
                    }
                }
            }
        }
    }
    if own_date {
        h.insert(http::header::DATE, junction_core::time::http_date());
    }
    if !(own_server && own_date) {
        resp.extensions_mut().insert(Passed {
            server: !own_server,
            date: !own_date,
        });
    }
    crate::filters::headers(&mut resp, &cx, &c.filters);
    let h = resp.headers_mut();
    let ok_status = matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    );
    for (name, t, always) in &c.add_headers {
        if *always || ok_status {
            let v = t.eval(&cx);
            if v.is_empty() {
                continue;
            }
            if let Ok(v) = HeaderValue::from_maybe_shared(v) {
                h.append(name.clone(), v);
            }
        }
    }
    let resp = crate::filters::apply(resp, &mut cx, &c.filters);
    cx.status = status;
    if c.access_logs.iter().any(|l| l.needs_sent_headers()) {
        cx.sent_headers = resp.headers().clone();
    }
    let logs = c.access_logs.clone();
    let (parts, inner) = resp.into_parts();
    let body = LoggedBody {
        inner,
        cx: Some(cx),
        logs,
    };
    http::Response::from_parts(parts, body.boxed_unsync())
}

/// Whether the response still needs Junction's own `Server` and `Date`: one pass
/// over the names (most responses have a handful), not two lookups.
fn own_server_date(h: &http::HeaderMap) -> (bool, bool) {
    let (mut server, mut date) = (true, true);
    for k in h.keys() {
        if *k == http::header::SERVER {
            server = false;
        } else if *k == http::header::DATE {
            date = false;
        }
    }
    (server, date)
}

/// Counts body bytes, records the request's counters and writes the access log lines
/// when the body ends or is dropped.
struct LoggedBody {
    inner: Body,
    cx: Option<Box<RequestCtx>>,
    logs: Vec<Arc<crate::log::AccessLog>>,
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(mut cx) = self.cx.take() {
            cx.completed = http_body::Body::is_end_stream(&self.inner);
            cx.record_stats();
            for l in &self.logs {
                l.log(&cx);
            }
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                if let Some(c) = self.cx.as_mut() {
                    c.body_bytes_sent += d.len() as u64;
                }
            }
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
