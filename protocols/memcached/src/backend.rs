//! The `memcached_pass` location handler: nginx's `ngx_http_memcached_handler`.
//!
//! Built once per location: the server group (`host:port`, `unix:/path` or an
//! `upstream` name), the shared `memcached_*` family (timeouts, bind,
//! `memcached_buffer_size` as the cap on the first line, `memcached_next_upstream`),
//! `memcached_gzip_flag`, the slot of `$memcached_key`, and the location's MIME types.
//!
//! Per request: GET and HEAD only (anything else is the server's 405, before the body
//! is read, as nginx); `$memcached_key` unset or empty → 500 with nginx's log line;
//! `get <escaped key>` through the shared exchange (no request body, keepalive pool);
//! a hit → 200 with the value as body, relayed unbuffered as it arrives (nginx has no
//! `memcached_buffering`), `Content-Type` from the URI's extension, one byte range
//! honoured (nginx's `force_ranges`); a miss → a
//! [`Generated`] 404, which the server answers with its 404 page or the location's
//! `error_page 404` (nginx's `intercept_404`).

use crate::{escape_key, MemcachedCodec};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use junction_config::model::{
    default_type, err, family, invalid, mime_types, BuildCx, Family, LocInfo, Scope,
};
use junction_config::ConfigError;
use junction_core::backend::{Backend, Generated, Response};
use junction_core::body::{self, ReqBody};
use junction_core::codec::UpstreamCodec;
use junction_core::ctx::RequestCtx;
use junction_core::exchange::exchange;
use junction_core::range::{self, Ranged};
use junction_core::Error;
use std::collections::HashMap;
use std::sync::Arc;

/// The words `memcached_next_upstream` accepts (nginx's
/// `ngx_http_memcached_next_upstream_masks`).
const NEXT_UPSTREAM: &[&str] = &["error", "timeout", "invalid_response", "not_found", "off"];

/// The `memcached_pass` backend of one location.
#[derive(Debug)]
pub struct MemcachedPass {
    /// Group, timeouts, bind, next upstream; buffering is always off.
    fam: Box<Family>,
    /// The slot of `$memcached_key`.
    key_slot: usize,
    /// `memcached_gzip_flag` (0 = off).
    gzip_flag: u32,
    /// The location's `types`.
    types: Arc<HashMap<String, Bytes>>,
    /// The location's `default_type`.
    default_type: Bytes,
}

/// Builds the backend when the location has `memcached_pass`.
pub fn build(
    scope: &Scope<'_>,
    _loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    let Some(d) = scope.local("memcached_pass") else {
        return Ok(None);
    };
    let a = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"memcached_pass\" directive",
        )
    })?;
    let target = a.value.as_str();
    if !bx.upstreams.contains_key(target) {
        if target.contains("://") {
            return Err(err(
                &a.span,
                format!("invalid host in upstream \"{target}\""),
            ));
        }
        if !target.starts_with("unix:") && !junction_config::cgi_pass::has_port(target) {
            return Err(err(&a.span, format!("no port in upstream \"{target}\"")));
        }
    }
    // nginx: `$memcached_key` must be declared by some `set`.
    let key_slot = bx
        .vars
        .find("memcached_key")
        .ok_or_else(|| err(&d.span, "unknown \"memcached_key\" variable"))?;
    if let Some(n) = scope.get("memcached_next_upstream") {
        if let Some(bad) = n
            .args
            .iter()
            .find(|x| !NEXT_UPSTREAM.contains(&x.value.as_str()))
        {
            return Err(invalid(n, bad));
        }
    }
    let gzip_flag = match scope.get("memcached_gzip_flag") {
        None => 0,
        Some(g) => g
            .args
            .first()
            .and_then(|x| x.value.parse::<u32>().ok())
            .ok_or_else(|| err(&g.span, "\"memcached_gzip_flag\" directive invalid number"))?,
    };
    let group = bx.group(target, 0, &a.span)?;
    let mut fam = family(scope, "memcached", group, bx)?;
    bx.probe(&fam.upstream.group, crate::probe::probe);
    // nginx's hard-coded memcached settings: no buffering (the value goes to the client
    // as it arrives, through `memcached_buffer_size`), no request headers or body.
    fam.upstream.buffering.buffering = false;
    fam.upstream.keep_conn = true;
    fam.pass_request_body = false;
    fam.body_in_file = junction_core::body_file::BodyInFile::Off;
    fam.pass_request_headers = false;
    Ok(Some(Arc::new(MemcachedPass {
        fam: Box::new(fam),
        key_slot,
        gzip_flag,
        types: Arc::new(mime_types(scope)),
        default_type: default_type(scope),
    })))
}

/// A response the server answers with its own page (or `error_page`) for `status`.
fn generated(status: StatusCode) -> Response {
    let mut r = http::Response::new(body::empty());
    *r.status_mut() = status;
    r.extensions_mut().insert(Generated);
    r
}

impl MemcachedPass {
    async fn run(&self, cx: &mut RequestCtx) -> Result<Response, Error> {
        if !self.allows_method(&cx.method) {
            return Ok(generated(StatusCode::METHOD_NOT_ALLOWED));
        }
        let raw = match cx.slot(self.key_slot) {
            Some(k) if !k.is_empty() => k.clone(),
            _ => return Err(crate::key_missing_error()),
        };
        let key = escape_key(&raw)?;
        let mut head = BytesMut::with_capacity(key.len() + 6);
        head.put_slice(b"get ");
        head.put_slice(&key);
        head.put_slice(b"\r\n");
        let gzip_flag = self.gzip_flag;
        let mk = move || -> Box<dyn UpstreamCodec> {
            Box::new(MemcachedCodec::new(key.clone(), gzip_flag))
        };
        let up = exchange(&self.fam.upstream, cx, head.freeze(), ReqBody::Empty, &mk).await?;
        if up.head.status == StatusCode::NOT_FOUND {
            return Ok(generated(StatusCode::NOT_FOUND));
        }
        let ctype = junction_core::mime::content_type(&cx.uri, &self.types, &self.default_type);
        let mut resp = junction_core::exchange::client_response(
            up.head.status,
            up.head.headers,
            up.body,
            up.unbuffered,
        );
        if let Ok(v) = HeaderValue::from_maybe_shared(ctype) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        Ok(ranged(cx, resp))
    }
}

/// nginx's range filter on a hit (the memcached module sets `force_ranges`): one byte
/// range → 206; none, several, or an `If-Range` (a value has no validator to match) →
/// the whole value with `Accept-Ranges: bytes`; unsatisfiable → 416.
fn ranged(cx: &RequestCtx, mut resp: Response) -> Response {
    use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, IF_RANGE, RANGE};
    let Some(len) = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return resp;
    };
    let header = cx
        .headers
        .get(RANGE)
        .filter(|_| !cx.headers.contains_key(IF_RANGE))
        .map(HeaderValue::as_bytes);
    match range::single(header, len) {
        Ranged::Full => {
            resp.headers_mut()
                .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            resp
        }
        Ranged::Part { start, end } => {
            let (mut parts, body) = resp.into_parts();
            parts.status = StatusCode::PARTIAL_CONTENT;
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(end - start));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
                parts.headers.insert(CONTENT_RANGE, v);
            }
            http::Response::from_parts(parts, range::slice(body, start, end))
        }
        Ranged::NotSatisfiable => {
            let mut r = generated(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            r
        }
    }
}

impl Backend for MemcachedPass {
    junction_core::handle_by!(|cx, _body| run(cx));

    /// nginx hard-codes `intercept_errors` for memcached; memcached only ever yields
    /// 200 or the (generated) 404, so this changes nothing but is said as nginx says it.
    fn intercept_errors(&self) -> bool {
        true
    }

    fn allows_method(&self, method: &Method) -> bool {
        method == Method::GET || method == Method::HEAD
    }
}
