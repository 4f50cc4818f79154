//! The request: its context built from the parsed head ([`handle`], the entry the
//! HTTP/1 and HTTP/2 connections call), the server chosen (listen socket, Host), the
//! checks nginx makes before any phase (Host, duplicate Host, `Content-Length` with
//! `Transfer-Encoding`, header line and URI length, the URI normalized), the TLS
//! checks and realip; then [`crate::phases::process`].

use crate::build::{Listen, Runtime};
use crate::output::finish;
use crate::pages::status_response;
use crate::phases::process;
use crate::route;
use crate::serve::Shared;
use http::StatusCode;
use junction_core::body::{Body, ReqBody};
use junction_core::ctx::{ConnInfo, RequestCtx};
use std::sync::Arc;

/// `$host`: from the request line, else the Host header; lower case, no port.
fn parse_host(raw: &str) -> Option<Arc<str>> {
    let h = if raw.starts_with('[') {
        let (a, _) = raw.split_once(']')?;
        raw.get(..a.len() + 1)?
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, p)| {
            if p.bytes().all(|c| c.is_ascii_digit()) {
                h
            } else {
                raw
            }
        })
    };
    let h = h.trim_end_matches('.');
    // One pass: nginx's refusals (`/`, `\`, NUL, white space, `..`) and whether the
    // name needs lower-casing (a substring search for ".." cost more than the rest).
    let (mut upper, mut prev_dot) = (false, false);
    for c in h.bytes() {
        if c == b'/' || c == b'\\' || c == 0 || c.is_ascii_whitespace() || (c == b'.' && prev_dot) {
            return None;
        }
        prev_dot = c == b'.';
        upper |= c.is_ascii_uppercase();
    }
    // One allocation when the name is lower case already, as it mostly is.
    Some(if upper {
        Arc::from(h.to_ascii_lowercase())
    } else {
        Arc::from(h)
    })
}

/// One request of a connection (HTTP/1 or an HTTP/2 stream), from its parsed head to
/// the response the connection writes: the context built (`$request_uri`, headers,
/// `$host`), the server chosen and the head checked under its settings, then the
/// phases ([`process`]). `n` is the request's number on its connection, `head_len`
/// the bytes of its head as received (`$request_length`); `chosen`
/// receives the chosen server's connection settings.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    shared: &Shared,
    conn: Arc<ConnInfo>,
    listen: &Listen,
    req: http::Request<ReqBody>,
    n: u64,
    head_len: usize,
    upgrade: Option<junction_core::client::OnUpgrade>,
    chosen: &std::sync::OnceLock<Arc<crate::http1::ConnConf>>,
) -> http::Response<Body> {
    let rt = &shared.rt;
    let (parts, incoming) = req.into_parts();
    let request_uri = match (
        parts.extensions.get::<crate::http1::RawTarget>(),
        parts.uri.path_and_query(),
    ) {
        // A target with raw bytes `http::Uri` refuses: `$request_uri` is what was sent.
        (Some(raw), _) => Arc::from(String::from_utf8_lossy(&raw.0)),
        (None, Some(pq)) => Arc::from(pq.as_str()),
        (None, None) => Arc::from(parts.uri.to_string()),
    };
    // Boxed: every future on the request's way holds a pointer, not a copy (the
    // state of a moved-from local stays in an async fn's future).
    let mut cx = junction_core::box_new!(RequestCtx::new(
        conn,
        parts.method,
        parts.version,
        request_uri,
    ));
    cx.in_flight = Some(junction_core::stats::InFlight::start());
    cx.upgrade = upgrade;
    if !rt.maps.maps.is_empty() {
        cx.maps = Some(rt.maps.clone());
    }
    cx.conn_requests = n;
    cx.headers = parts.headers;
    cx.request_length = head_len as u64;
    // Host
    let parsed_host =
        match parts.uri.authority() {
            Some(a) => Some(parse_host(a.as_str())),
            None => cx.headers.get(http::header::HOST).map(|h| {
                match std::str::from_utf8(h.as_bytes()) {
                    Ok(s) => parse_host(s),
                    Err(_) => parse_host(&String::from_utf8_lossy(h.as_bytes())),
                }
            }),
        };
    let host = match parsed_host {
        Some(Some(h)) => Some(h),
        Some(None) => None,
        None => Some(Arc::from("")),
    };
    let si = select(rt, listen, host.as_deref().unwrap_or(""));
    let srv = listen
        .servers
        .get(si)
        .and_then(|i| rt.servers.get(*i))
        .or_else(|| rt.servers.first())
        .cloned();
    let Some(srv) = srv else {
        return status_response(StatusCode::INTERNAL_SERVER_ERROR, true);
    };
    cx.server_name = srv.name0.clone();
    cx.stats = Some(srv.stats.clone());
    if let Some(h) = host.as_deref() {
        crate::rewrite::server_name_captures(&mut cx, &srv.names, h);
    }
    let _ = chosen.set(srv.conn.clone());
    let tokens = srv.base.data.server_tokens;
    let bad = |cx: &RequestCtx, msg: &str, status: StatusCode| {
        tracing::info!(
            "*{} {msg}, client: {}, server: {}",
            cx.conn.id,
            cx.conn.client(),
            cx.server_name
        );
        status_response(status, tokens)
    };
    let invalid = match host {
        None => Some((
            "client sent invalid host header while reading client request headers",
            StatusCode::BAD_REQUEST,
        )),
        Some(h) if h.is_empty() && cx.version == http::Version::HTTP_11 => Some((
            "client sent HTTP/1.1 request without \"Host\" header",
            StatusCode::BAD_REQUEST,
        )),
        Some(h) => {
            cx.host = if h.is_empty() { srv.name0.clone() } else { h };
            head_error(&cx, srv.large_header_size)
        }
    };
    let invalid = match invalid {
        Some(e) => Some(e),
        None => match route::normalize_with(parts.uri.path(), srv.conn.merge_slashes) {
            Ok(u) => {
                cx.uri = u;
                None
            }
            Err(_) => Some(("client sent invalid request", StatusCode::BAD_REQUEST)),
        },
    };
    if let Some((msg, status)) = invalid {
        return finish(bad(&cx, msg, status), cx, &srv.base.data);
    }
    // HTTP-01 validation of an ACME certificate being ordered (`crate::acme`).
    if let Some(r) = crate::acme::challenge_response(&cx.method, &cx.uri) {
        return finish(r, cx, &srv.base.data);
    }
    cx.args = parts.uri.query().unwrap_or("").to_string();
    let length = cx
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    // `$request_length`: the head, and the body as announced (a chunked body counts
    // only its head here).
    cx.request_length += length.unwrap_or(0);
    // A TLS port's checks (plain HTTP, client certificate, SNI ≠ Host): `crate::tls`.
    let reject = crate::tls::request_check(&cx.conn, listen, &srv, &cx.host);
    if reject == Some(421) {
        let r = status_response(StatusCode::MISDIRECTED_REQUEST, tokens);
        return finish(r, cx, &srv.base.data);
    }
    // nginx's post-read phase: realip with the server's settings.
    srv.base.data.realip.apply(&mut cx);
    let log = junction_core::logctx::ReqLog::of(&cx);
    let resp = std::pin::pin!(junction_core::logctx::in_request(
        process(&srv, cx, incoming, length, reject),
        log
    ))
    .await;
    resp
}

/// nginx's checks of the head that need the server (its
/// `large_client_header_buffers`), in nginx's order: the error line and the status
/// of the first that fails.
fn head_error(cx: &RequestCtx, large_header_size: usize) -> Option<(&'static str, StatusCode)> {
    // One pass over the headers (names compared, not hashed); the checks keep their
    // order of precedence.
    let (mut hosts, mut te, mut cl, mut long) = (0u32, false, false, false);
    for (k, v) in cx.headers.iter() {
        if k == http::header::HOST {
            hosts += 1;
        } else if k == http::header::TRANSFER_ENCODING {
            te = true;
        } else if k == http::header::CONTENT_LENGTH {
            cl = true;
        }
        long |= k.as_str().len() + v.len() + 4 > large_header_size;
    }
    let msg = if hosts > 1 {
        "client sent duplicate host header"
    } else if te && cl {
        "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time"
    } else if long {
        "client sent too long header line"
    } else if cx.request_uri.len() > large_header_size {
        return Some(("client sent too long URI", StatusCode::URI_TOO_LONG));
    } else {
        return None;
    };
    Some((msg, StatusCode::BAD_REQUEST))
}

fn select(rt: &Runtime, listen: &Listen, host: &str) -> usize {
    let names = |i: usize| {
        listen
            .servers
            .get(i)
            .and_then(|s| rt.servers.get(*s))
            .map_or(&[][..], |s| s.names.as_slice())
    };
    route::select_server(listen.servers.len(), names, host, listen.default)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_host;

    #[test]
    fn host_as_nginx_reads_it() {
        let h = |s: &str| parse_host(s).map(|h| h.to_string());
        assert_eq!(h("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(h("a.b.").as_deref(), Some("a.b"), "trailing dot dropped");
        assert_eq!(h("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(h("host:port").as_deref(), Some("host:port"));
        assert_eq!(h("").as_deref(), Some(""));
        for bad in ["a..b", "a/b", "a\\b", "a b", "a\0b", "..x"] {
            assert_eq!(h(bad), None, "{bad:?}");
        }
    }
}
