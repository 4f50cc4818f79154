//! Static files: the content handler of a location without a `*_pass`, a
//! [`Backend`] like the others ([`StaticFiles`], built per location at load):
//! `root`/`alias` (the path is `cx.request_filename`, computed by the server's
//! `content` phase, `try_files` included), `index` (an internal redirect, answered
//! through `RequestCtx::internal_redirect`), `autoindex`, Content-Type from `types`,
//! Last-Modified/ETag, conditional requests → 304/412 with nginx's
//! `if_modified_since exact`, a single byte range → 206 (with `If-Range`; several
//! ranges get the whole file), HEAD. Its own pages are `pages::status_response`
//! (marked `OwnPage`, so `error_page` applies to them as to any page Junction makes).

use crate::autoindex::AutoindexConf;
use crate::filters::gzip::CompressConf;
use crate::pages::status_response;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use junction_core::backend::{Backend, Response};
use junction_core::body::{self, ReqBody};
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use junction_core::Error;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The static-files handler of one location (or `if` block): the settings only it
/// reads, taken from the location's configuration at load.
#[derive(Debug)]
pub(crate) struct StaticFiles {
    /// `index`.
    pub(crate) index: Vec<Template>,
    /// `autoindex on` and its settings.
    pub(crate) autoindex: Option<AutoindexConf>,
    /// MIME types.
    pub(crate) types: Arc<HashMap<String, Bytes>>,
    /// `default_type`.
    pub(crate) default_type: Bytes,
    /// `etag`.
    pub(crate) etag: bool,
    /// `log_not_found`.
    pub(crate) log_not_found: bool,
    /// `server_tokens`, for its pages.
    pub(crate) server_tokens: bool,
    /// `gzip_static` / `brotli_static`, and whether a range would be compressed.
    pub(crate) compress: Arc<CompressConf>,
}

#[junction_core::async_trait]
impl Backend for StaticFiles {
    async fn handle(&self, cx: &mut RequestCtx, _body: ReqBody) -> Result<Response, Error> {
        Ok(serve(cx, self).await)
    }

    /// GET and HEAD are served; POST reaches an index (a front controller) but is 405
    /// on a file, as in nginx's static and index modules; other methods are 405.
    fn allows_method(&self, method: &Method) -> bool {
        matches!(*method, Method::GET | Method::HEAD | Method::POST)
    }

    fn takes_body(&self) -> bool {
        false
    }

    fn is_pass(&self) -> bool {
        false
    }
}

fn status(s: StatusCode, c: &StaticFiles) -> Response {
    status_response(s, c.server_tokens)
}

/// Whether an `If-Match` / `If-None-Match` list matches `etag` (nginx's
/// `ngx_http_test_if_match`; `weak` compares ignoring `W/`, as If-None-Match does).
fn etag_matches(list: &str, etag: Option<&str>, weak: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some(etag) = etag else { return false };
    list.split(',').map(str::trim).any(|t| {
        if weak {
            t.trim_start_matches("W/") == etag.trim_start_matches("W/")
        } else {
            t == etag
        }
    })
}

/// A request date header as seconds since the epoch.
fn header_time(cx: &RequestCtx, name: http::header::HeaderName) -> Option<Option<u64>> {
    let v = cx.headers.get(name)?;
    Some(
        v.to_str()
            .ok()
            .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    )
}

/// What nginx's not_modified filter decides for a file with `mtime` and `etag`.
enum Precondition {
    /// Send the file.
    Send,
    /// 304.
    NotModified,
    /// 412.
    Failed,
}

fn precondition(cx: &RequestCtx, mtime: u64, etag: Option<&str>) -> Precondition {
    // If-Unmodified-Since / If-Match first: a failure is 412.
    if let Some(t) = header_time(cx, http::header::IF_UNMODIFIED_SINCE) {
        if t.is_some_and(|t| mtime > t) {
            return Precondition::Failed;
        }
    }
    if let Some(list) = cx
        .headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if !etag_matches(list, etag, false) {
            return Precondition::Failed;
        }
    }
    let ims = header_time(cx, http::header::IF_MODIFIED_SINCE);
    let inm = cx
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if ims.is_none() && inm.is_none() {
        return Precondition::Send;
    }
    // `if_modified_since exact` (nginx's default): only the same time means unchanged.
    if ims.is_some_and(|t| t != Some(mtime)) {
        return Precondition::Send;
    }
    if inm.is_some_and(|list| !etag_matches(list, etag, true)) {
        return Precondition::Send;
    }
    Precondition::NotModified
}

/// Serves `cx.request_filename`: the index files for a URI ending in `/`, else the
/// file (the method is checked before, by [`StaticFiles::allows_method`]).
async fn serve(cx: &mut RequestCtx, c: &StaticFiles) -> Response {
    let path = String::from_utf8_lossy(&cx.request_filename).into_owned();
    if cx.uri.ends_with('/') {
        return index(cx, c, &path).await;
    }
    // gzip_static / brotli_static: a precompressed file beside the file goes instead.
    let mut vary = false;
    let pre = crate::filters::gzip::static_file(cx, &c.compress, &path, &mut vary).await;
    let (path, meta, encoding) = match pre {
        Some((p, m, e)) => (p, Ok(m), Some(e)),
        None => {
            let m = tokio::fs::metadata(&path).await;
            (path, m, None)
        }
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            let (s, code) = match e.kind() {
                std::io::ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, 13),
                _ => (StatusCode::NOT_FOUND, 2),
            };
            // The request's span adds client, server, request and host.
            // `log_not_found off` silences only a missing file (nginx's NGX_ENOENT).
            if code == 13 || c.log_not_found {
                let why = match e.raw_os_error() {
                    Some(_) => junction_core::error::os_error_text(&e),
                    None => format!("{code}: {e}"),
                };
                tracing::error!("open() \"{path}\" failed ({why})");
            }
            return status(s, c);
        }
    };
    if meta.is_dir() {
        let mut r = status(StatusCode::MOVED_PERMANENTLY, c);
        let mut loc = format!("http://{}{}/", crate::pages::host_port(cx), cx.uri);
        if !cx.args.is_empty() {
            loc.push('?');
            loc.push_str(&cx.args);
        }
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(http::header::LOCATION, v);
            r.extensions_mut().insert(crate::output::OwnHead);
        }
        return r;
    }
    if cx.method == Method::POST {
        return status(StatusCode::METHOD_NOT_ALLOWED, c);
    }
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
    let etag = c.etag.then(|| format!("\"{mtime:x}-{len:x}\""));
    let ctype = junction_core::mime::content_type(&cx.uri, &c.types, &c.default_type);
    let mut builder = http::Response::builder()
        .header(http::header::LAST_MODIFIED, last_modified.as_str())
        .extension(crate::output::OwnHead);
    if let Some(etag) = &etag {
        builder = builder.header(http::header::ETAG, etag.as_str());
    }
    if vary {
        builder = builder.extension(crate::filters::gzip::VaryMark);
    }
    match precondition(cx, mtime, etag.as_deref()) {
        Precondition::Send => {}
        Precondition::Failed => return status(StatusCode::PRECONDITION_FAILED, c),
        Precondition::NotModified => {
            // nginx drops Content-Type, Content-Length and Accept-Ranges from a 304.
            return match builder.status(StatusCode::NOT_MODIFIED).body(body::empty()) {
                Ok(r) => r,
                Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR, c),
            };
        }
    }
    let ctype_bytes = ctype.clone();
    builder = builder
        .header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_maybe_shared(ctype).unwrap_or(HeaderValue::from_static("text/plain")),
        )
        .header(http::header::ACCEPT_RANGES, "bytes");
    if let Some(e) = encoding {
        builder = builder.header(
            http::header::CONTENT_ENCODING,
            crate::filters::gzip::encoding_value(e),
        );
    }
    // Range (one range; If-Range must name this version, else the whole file).
    let mut range: Option<(u64, u64)> = None;
    let if_range_ok = match cx
        .headers
        .get(http::header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(v) if v.trim_start().starts_with('"') || v.trim_start().starts_with("W/") => {
            etag.as_deref() == Some(v.trim())
        }
        Some(_) => header_time(cx, http::header::IF_RANGE).flatten() == Some(mtime),
    };
    if let Some(r) = cx
        .headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_ok)
        .filter(|_| {
            encoding.is_some()
                || !crate::filters::gzip::compresses_file(
                    cx,
                    &c.compress,
                    &ctype_bytes,
                    len,
                    etag.is_some(),
                )
        })
    {
        match parse_range(r, len) {
            Some(Ok(x)) => range = Some(x),
            Some(Err(())) => {
                let mut resp = status(StatusCode::RANGE_NOT_SATISFIABLE, c);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
                }
                return resp;
            }
            None => {}
        }
    }
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let count = if len == 0 { 0 } else { end - start + 1 };
    let mut st = StatusCode::OK;
    if range.is_some() {
        st = StatusCode::PARTIAL_CONTENT;
        builder = builder.header(
            http::header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{len}"),
        );
    }
    builder = builder
        .status(st)
        .header(http::header::CONTENT_LENGTH, count);
    let body = if cx.method == Method::HEAD || count == 0 {
        body::empty()
    } else if count <= 64 * 1024 {
        match read_range(&path, start, count).await {
            Ok(b) => body::full(b),
            Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR, c),
        }
    } else {
        match tokio::fs::File::open(&path).await {
            Ok(mut f) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
                    return status(StatusCode::INTERNAL_SERVER_ERROR, c);
                }
                let stream = tokio_util::io::ReaderStream::with_capacity(f.take(count), 64 * 1024);
                http_body_util::StreamBody::new(futures_util::StreamExt::map(stream, |r| {
                    r.map(http_body::Frame::data)
                }))
                .boxed_unsync()
            }
            Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR, c),
        }
    };
    match builder.body(body) {
        Ok(r) => r,
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR, c),
    }
}

/// `index` for a URI ending in `/`: the first index file that exists is an internal
/// redirect to `$uri` + its name (an absolute last name is redirected to as is),
/// set in `cx.internal_redirect` with an empty response the server does not send;
/// none: 403 for an existing directory, else 404.
async fn index(cx: &mut RequestCtx, c: &StaticFiles, path: &str) -> Response {
    for idx in &c.index {
        let name = idx.eval_string(cx);
        if name.starts_with('/') {
            cx.internal_redirect = Some(name);
            return http::Response::new(body::empty());
        }
        let candidate = format!("{path}{name}");
        if tokio::fs::metadata(&candidate).await.is_ok() {
            cx.internal_redirect = Some(format!("{}{name}", cx.uri));
            return http::Response::new(body::empty());
        }
    }
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_dir() && c.autoindex.is_some() && cx.method != Method::POST => {
            match &c.autoindex {
                Some(a) => crate::autoindex::listing(cx, a, path, c.server_tokens)
                    .await
                    .unwrap_or_else(|| status(StatusCode::FORBIDDEN, c)),
                None => status(StatusCode::FORBIDDEN, c),
            }
        }
        Ok(m) if m.is_dir() => {
            tracing::error!("directory index of \"{path}\" is forbidden");
            status(StatusCode::FORBIDDEN, c)
        }
        _ if !c.log_not_found => status(StatusCode::NOT_FOUND, c),
        _ => {
            tracing::error!(
                "\"{path}{}\" is not found (2: No such file or directory)",
                c.index
                    .first()
                    .map(|t| t.eval_string(cx))
                    .unwrap_or_default()
            );
            status(StatusCode::NOT_FOUND, c)
        }
    }
}

async fn read_range(path: &str, start: u64, count: u64) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let mut buf = Vec::with_capacity(count as usize);
    f.take(count).read_to_end(&mut buf).await?;
    Ok(Bytes::from(buf))
}

/// `bytes=a-b` / `bytes=a-` / `bytes=-n` (one range). `None`: ignore the header;
/// `Some(Err)`: 416.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: answer 200 with the whole file
    }
    let (a, b) = spec.trim().split_once('-')?;
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let s: u64 = a.parse().ok()?;
        let e: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse().ok()?
        };
        if s >= len || e < s {
            return Some(Err(()));
        }
        (s, e.min(len - 1))
    };
    Some(Ok(r))
}
