//! Response compression: nginx's `ngx_http_gzip_filter_module` (with the gzip
//! directives of the core module: `gzip_vary`, `gzip_http_version`, `gzip_proxied`,
//! `gzip_disable`, and `ngx_http_gzip_ok`), `gzip_static`, and the Brotli family of
//! the third-party `ngx_brotli` module (`brotli`, `brotli_types`, `brotli_comp_level`,
//! `brotli_min_length`, `brotli_window`, `brotli_static`).
//!
//! The decision, as nginx's header filter makes it: gzip is on; the status is 200,
//! 403 or 404; the response has no `Content-Encoding` yet; a known length is at least
//! `gzip_min_length`; the type (without parameters) is in `gzip_types` (`text/html`
//! always is, `*` is any). Then `Vary: Accept-Encoding` is due (with `gzip_vary on`)
//! whatever the client accepts, and [`gzip_ok`] decides from the request: an
//! `Accept-Encoding` with gzip at a non-zero quality, not MSIE 4–6 under
//! `gzip_disable msie6`, the HTTP version, a `Via` request header against
//! `gzip_proxied` (the response's `Expires`, `Cache-Control`, `Last-Modified`, `ETag`,
//! the request's `Authorization`), and the `gzip_disable` regexes on `User-Agent`.
//! Compressing drops `Content-Length` and `Accept-Ranges` and makes a strong ETag
//! weak (`W/"…"`; one that is not quoted is dropped), as `ngx_http_weak_etag`.
//!
//! `gunzip on` (ngx_http_gunzip_filter_module, which nginx runs before gzip): a
//! response with `Content-Encoding: gzip` for a client that does not take gzip (the
//! same test) is decompressed as it streams, `Content-Length`/`Accept-Ranges`
//! dropped, the ETag weakened; `Vary` with `gzip_vary on`.
//!
//! With `brotli on` too, the client's `Accept-Encoding` preference chooses: `br`
//! when its quality is at least gzip's (Brotli is the better of the two at equal
//! preference), else gzip.
//!
//! The body is compressed as it is relayed ([`CompressBody`]): each chunk goes into
//! the encoder at once, and the encoder's output is sent once 4 KB of it is there (a
//! filled nginx `gzip_buffers` buffer), at the end, and on a flush. In a location with
//! `*_buffering off`, when the source has nothing more for now (between two events)
//! the encoder is flushed (`Z_SYNC_FLUSH`, `BROTLI_OPERATION_FLUSH`), so every event
//! reaches the client as soon as it left the upstream, as nginx flushes each upstream
//! buffer then; elsewhere the flush waits until the source has been idle for 20 ms
//! (an `X-Accel-Buffering: no` stream, a slow backend), so a fast body is not cut into
//! flushed blocks between two reads (nginx never flushes there).

use super::Types;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    ETAG, EXPIRES, LAST_MODIFIED, USER_AGENT, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use junction_config::model::{err, invalid, Scope};
use junction_config::ConfigError;
use junction_core::body::Body;
use junction_core::ctx::{CompressStats, RequestCtx};
use smallvec::SmallVec;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

/// `gzip_static` / `brotli_static`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StaticMode {
    /// Not looked for.
    #[default]
    Off,
    /// Served to clients that accept the encoding.
    On,
    /// Served to every client.
    Always,
}

// `gzip_proxied` bits (nginx's NGX_HTTP_GZIP_PROXIED_*).
const P_OFF: u16 = 1 << 0;
const P_EXPIRED: u16 = 1 << 1;
const P_NO_CACHE: u16 = 1 << 2;
const P_NO_STORE: u16 = 1 << 3;
const P_PRIVATE: u16 = 1 << 4;
const P_NO_LM: u16 = 1 << 5;
const P_NO_ETAG: u16 = 1 << 6;
const P_AUTH: u16 = 1 << 7;
const P_ANY: u16 = 1 << 8;

/// The compression settings of a location.
#[derive(Debug)]
pub(crate) struct CompressConf {
    gzip: bool,
    gzip_types: Types,
    gzip_min_length: u64,
    gzip_level: u32,
    http_version: Version,
    proxied: u16,
    vary: bool,
    disable: Vec<regex::Regex>,
    disable_msie6: bool,
    /// `gzip_static`.
    pub(crate) gzip_static: StaticMode,
    brotli: bool,
    brotli_types: Types,
    brotli_min_length: u64,
    brotli_level: u32,
    brotli_lgwin: u32,
    /// `brotli_static`.
    pub(crate) brotli_static: StaticMode,
    /// `gunzip`: a gzip response is decompressed for a client that does not take gzip.
    gunzip: bool,
    /// The location relays its upstream unbuffered (`*_buffering off`): every chunk is
    /// flushed to the client at once.
    unbuffered: bool,
}

impl Default for CompressConf {
    fn default() -> Self {
        CompressConf {
            gzip: false,
            gzip_types: Types::List(vec!["text/html".into()]),
            gzip_min_length: 20,
            gzip_level: 1,
            http_version: Version::HTTP_11,
            proxied: P_OFF,
            vary: false,
            disable: Vec::new(),
            disable_msie6: false,
            gzip_static: StaticMode::Off,
            brotli: false,
            brotli_types: Types::List(vec!["text/html".into()]),
            brotli_min_length: 20,
            brotli_level: 6,
            brotli_lgwin: 19,
            brotli_static: StaticMode::Off,
            gunzip: false,
            unbuffered: false,
        }
    }
}

fn types(scope: &Scope<'_>, name: &str) -> Types {
    super::types(scope, name, &["text/html"])
}

fn num(scope: &Scope<'_>, name: &str, lo: u32, hi: u32, default: u32) -> Result<u32, ConfigError> {
    let Some((d, a)) = scope.arg(name) else {
        return Ok(default);
    };
    let n: u32 = a.value.parse().map_err(|_| invalid(d, a))?;
    if n < lo || n > hi {
        return Err(err(
            &a.span,
            format!("value must be between {lo} and {hi} in \"{name}\" directive"),
        ));
    }
    Ok(n)
}

fn static_mode(scope: &Scope<'_>, name: &str) -> Result<StaticMode, ConfigError> {
    Ok(match scope.arg(name) {
        None => StaticMode::Off,
        Some((d, a)) => match a.value.as_str() {
            "off" => StaticMode::Off,
            "on" => StaticMode::On,
            "always" => StaticMode::Always,
            _ => return Err(invalid(d, a)),
        },
    })
}

impl CompressConf {
    /// Reads `gzip*` and `brotli*` at `scope` (each inherited on its own, as nginx
    /// merges them).
    pub(crate) fn build(scope: &Scope<'_>) -> Result<CompressConf, ConfigError> {
        let mut c = CompressConf {
            gzip: scope.flag("gzip", false)?,
            gzip_types: types(scope, "gzip_types"),
            gzip_min_length: scope.size("gzip_min_length", 20)?,
            gzip_level: num(scope, "gzip_comp_level", 1, 9, 1)?,
            vary: scope.flag("gzip_vary", false)?,
            gzip_static: static_mode(scope, "gzip_static")?,
            brotli: scope.flag("brotli", false)?,
            brotli_types: types(scope, "brotli_types"),
            brotli_min_length: scope.size("brotli_min_length", 20)?,
            brotli_level: num(scope, "brotli_comp_level", 0, 11, 6)?,
            brotli_static: static_mode(scope, "brotli_static")?,
            gunzip: scope.flag("gunzip", false)?,
            unbuffered: ["proxy", "fastcgi", "uwsgi", "scgi"]
                .iter()
                .any(|p| matches!(scope.flag(&format!("{p}_buffering"), true), Ok(false))),
            ..CompressConf::default()
        };
        if let Some((d, a)) = scope.arg("brotli_window") {
            // A power of two from 1k to 16m: lgwin 10..=24.
            let w = junction_config::values::parse_size(&a.value)
                .filter(|w| w.is_power_of_two() && (1024..=16 * 1024 * 1024).contains(w))
                .ok_or_else(|| invalid(d, a))?;
            c.brotli_lgwin = w.trailing_zeros();
        }
        if let Some((d, a)) = scope.arg("gzip_http_version") {
            c.http_version = match a.value.as_str() {
                "1.0" => Version::HTTP_10,
                "1.1" => Version::HTTP_11,
                _ => return Err(invalid(d, a)),
            };
        }
        if let Some(d) = scope.get("gzip_proxied") {
            let mut bits = 0;
            for a in &d.args {
                bits |= match a.value.as_str() {
                    "off" => P_OFF,
                    "expired" => P_EXPIRED,
                    "no-cache" => P_NO_CACHE,
                    "no-store" => P_NO_STORE,
                    "private" => P_PRIVATE,
                    "no_last_modified" => P_NO_LM,
                    "no_etag" => P_NO_ETAG,
                    "auth" => P_AUTH,
                    "any" => P_ANY,
                    _ => return Err(invalid(d, a)),
                };
            }
            c.proxied = bits;
        }
        if let Some(d) = scope.get("gzip_disable") {
            for a in &d.args {
                if a.value == "msie6" {
                    c.disable_msie6 = true;
                    continue;
                }
                // nginx compiles these with NGX_REGEX_CASELESS.
                let re = regex::RegexBuilder::new(&a.value)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| err(&a.span, format!("pcre2_compile() failed: {e}")))?;
                c.disable.push(re);
            }
        }
        for (name, n) in [("gzip_buffers", 2), ("gunzip_buffers", 2)] {
            if let Some(d) = scope.get(name) {
                if d.args.len() != n {
                    return Err(err(
                        &d.span,
                        format!("invalid number of arguments in \"{name}\" directive"),
                    ));
                }
            }
        }
        Ok(c)
    }

    fn any(&self) -> bool {
        self.gzip || self.brotli || self.gunzip
    }
}

/// The encodings this filter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `gzip`
    Gzip,
    /// `br`
    Brotli,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// Marks a response whose `Vary: Accept-Encoding` is due (nginx's `r->gzip_vary`,
/// set by `gzip_static` when a `.gz` exists).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VaryMark;

/// nginx's `ngx_http_gzip_accept_encoding`: "gzip" as a token of its own (at the
/// start or after `,` or ` `), then the end, `,`, or `;q=` with a non-zero quality.
fn accepts_gzip(ae: &[u8]) -> bool {
    if ae.len() < 4 {
        return false;
    }
    if ae.starts_with(b"gzip,") {
        return true;
    }
    let mut start = 0;
    let p = loop {
        let Some(i) = find_caseless(ae.get(start..).unwrap_or(&[]), b"gzip") else {
            return false;
        };
        let p = start + i;
        if p == 0 || matches!(ae.get(p - 1), Some(b',' | b' ')) {
            break p + 4;
        }
        start = p + 4;
    };
    let mut rest = ae.get(p..).unwrap_or(&[]).iter();
    loop {
        match rest.next() {
            None | Some(b',') => return true,
            Some(b' ') => continue,
            Some(b';') => break,
            Some(_) => return false,
        }
    }
    loop {
        match rest.next() {
            None => return true,
            Some(b'q' | b'Q') => break,
            Some(b' ') => continue,
            Some(_) => return false,
        }
    }
    let rest = rest.as_slice();
    match rest.split_first() {
        Some((b'=', q)) if !q.is_empty() => quantity(q) > 0,
        _ => false,
    }
}

/// nginx's `ngx_http_gzip_quantity`: `0`/`1`, optionally `.ddd`, in thousandths
/// (0 for anything malformed).
fn quantity(q: &[u8]) -> u32 {
    let mut it = q.iter();
    let v = match it.next() {
        Some(b'0') => 0,
        Some(b'1') => 100,
        _ => return 0,
    };
    match it.next() {
        None | Some(b',' | b' ') => return v,
        Some(b'.') => {}
        Some(_) => return 0,
    }
    let mut v = v;
    let mut n = 0;
    for c in it {
        match c {
            b',' | b' ' => break,
            b'0'..=b'9' => {
                v += u32::from(c - b'0');
                n += 1;
            }
            _ => return 0,
        }
    }
    if v > 100 || n > 3 {
        return 0;
    }
    v
}

fn find_caseless(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The quality the client gives `token` in `Accept-Encoding` (0–1000; `*` counts
/// when the token is not named), for choosing between gzip and Brotli.
fn preference(ae: &str, token: &str) -> u32 {
    let mut star = None;
    for part in ae.split(',') {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        let mut q = 1000;
        for p in it {
            if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                q = parse_q(v.trim());
            }
        }
        if name.eq_ignore_ascii_case(token) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0)
}

fn parse_q(v: &str) -> u32 {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let i: u32 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    let mut f = 0;
    let mut scale = 100;
    for c in frac.bytes().take(3) {
        if !c.is_ascii_digit() {
            return 0;
        }
        f += u32::from(c - b'0') * scale;
        scale /= 10;
    }
    (i + f).min(1000)
}

/// nginx's `r->headers_in.msie6`: MSIE 4, 5, or 6 without SV1, and not Opera.
fn is_msie6(ua: &[u8]) -> bool {
    if ua.windows(5).any(|w| w == b"Opera") {
        return false;
    }
    let Some(m) = ua.windows(5).position(|w| w == b"MSIE ") else {
        return false;
    };
    if m + 7 >= ua.len() || ua.get(m + 6) != Some(&b'.') {
        return false;
    }
    match ua.get(m + 5) {
        Some(b'4' | b'5') => true,
        Some(b'6') => !ua
            .get(m + 8..)
            .unwrap_or(&[])
            .windows(3)
            .any(|w| w == b"SV1"),
        _ => false,
    }
}

/// Whether `name` is one of the comma-separated directives of a `Cache-Control`.
fn cache_control_has(h: &HeaderMap, name: &str) -> bool {
    h.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').any(|p| {
                let p = p.trim();
                let k = p.split(['=', ';', ' ']).next().unwrap_or("");
                k.eq_ignore_ascii_case(name)
            })
        })
    })
}

/// nginx's `ngx_http_gzip_ok` past the `Accept-Encoding` test (which differs per
/// encoding): the client and the `gzip_proxied` rules against this response.
fn client_ok(cx: &RequestCtx, resp: &HeaderMap, c: &CompressConf) -> bool {
    let ua = cx.headers.get(USER_AGENT);
    if c.disable_msie6 && ua.is_some_and(|u| is_msie6(u.as_bytes())) {
        return false;
    }
    if cx.version < c.http_version {
        return false;
    }
    let proxied_ok = || {
        if !cx.headers.contains_key("via") {
            return true;
        }
        let p = c.proxied;
        if p & P_OFF != 0 {
            return false;
        }
        if p & P_ANY != 0 {
            return true;
        }
        if cx.headers.contains_key(AUTHORIZATION) && p & P_AUTH != 0 {
            return true;
        }
        if let Some(e) = resp.get(EXPIRES) {
            if p & P_EXPIRED == 0 {
                return false;
            }
            let Some(expires) = e
                .to_str()
                .ok()
                .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
            else {
                return false;
            };
            return expires < std::time::SystemTime::now();
        }
        if resp.contains_key(CACHE_CONTROL) {
            return (p & P_NO_CACHE != 0 && cache_control_has(resp, "no-cache"))
                || (p & P_NO_STORE != 0 && cache_control_has(resp, "no-store"))
                || (p & P_PRIVATE != 0 && cache_control_has(resp, "private"));
        }
        if p & P_NO_LM != 0 && resp.contains_key(LAST_MODIFIED) {
            return false;
        }
        if p & P_NO_ETAG != 0 && resp.contains_key(ETAG) {
            return false;
        }
        true
    };
    if !proxied_ok() {
        return false;
    }
    if let Some(ua) = ua.and_then(|u| u.to_str().ok()) {
        if c.disable.iter().any(|re| re.is_match(ua)) {
            return false;
        }
    }
    true
}

fn accept_encoding(cx: &RequestCtx) -> Option<&HeaderValue> {
    cx.headers.get(ACCEPT_ENCODING)
}

/// Which encoding the client gets, given which ones fit the response.
fn choose(
    cx: &RequestCtx,
    resp: &HeaderMap,
    c: &CompressConf,
    gz: bool,
    br: bool,
) -> Option<Encoding> {
    let ae = accept_encoding(cx)?;
    let gz = gz && accepts_gzip(ae.as_bytes());
    let ae_str = ae.to_str().unwrap_or("");
    let br = br && preference(ae_str, "br") > 0;
    if !(gz || br) || !client_ok(cx, resp, c) {
        return None;
    }
    match (gz, br) {
        (true, true) => {
            if preference(ae_str, "br") >= preference(ae_str, "gzip") {
                Some(Encoding::Brotli)
            } else {
                Some(Encoding::Gzip)
            }
        }
        (true, false) => Some(Encoding::Gzip),
        (false, true) => Some(Encoding::Brotli),
        (false, false) => None,
    }
}

/// `ngx_http_weak_etag`.
fn weak_etag(h: &mut HeaderMap) {
    let Some(e) = h.get(ETAG) else { return };
    let b = e.as_bytes();
    if b.len() > 2 && b.starts_with(b"W/") {
        return;
    }
    if !b.starts_with(b"\"") {
        h.remove(ETAG);
        return;
    }
    let mut v = Vec::with_capacity(b.len() + 2);
    v.extend_from_slice(b"W/");
    v.extend_from_slice(b);
    match HeaderValue::from_bytes(&v) {
        Ok(v) => {
            h.insert(ETAG, v);
        }
        Err(_) => {
            h.remove(ETAG);
        }
    }
}

/// `gzip_vary`'s `Vary: Accept-Encoding`, marked as the filter's own (nginx writes it
/// right after `Connection`, where an upstream's `Vary` comes among the others).
fn add_vary(resp: &mut http::Response<Body>) {
    resp.headers_mut()
        .append(VARY, HeaderValue::from_static("Accept-Encoding"));
    resp.extensions_mut().insert(OwnVary);
}

/// Marks a response whose last `Vary` is `gzip_vary`'s (see [`add_vary`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnVary;

/// The map without `names`, in its order (`HeaderMap::remove` moves the last
/// entry into the removed one's place).
fn drop_names(h: &mut HeaderMap, names: &[http::HeaderName]) {
    if !h.keys().any(|k| names.contains(k)) {
        return;
    }
    let old = std::mem::take(h);
    h.reserve(old.len());
    let mut name: Option<http::HeaderName> = None;
    let mut keep = true;
    for (k, v) in old {
        if let Some(k) = k {
            keep = !names.contains(&k);
            name = Some(k);
        }
        if let (true, Some(k)) = (keep, &name) {
            h.append(k.clone(), v);
        }
    }
}

/// The gzip (and Brotli) header filter, and the body wrapped for compression.
pub(crate) fn filter(
    mut resp: http::Response<Body>,
    cx: &mut RequestCtx,
    c: &CompressConf,
) -> http::Response<Body> {
    let marked = resp.extensions_mut().remove::<VaryMark>().is_some();
    if !c.any() {
        if marked && c.vary {
            add_vary(&mut resp);
        }
        return resp;
    }
    // ngx_http_gunzip_filter_module (before gzip in nginx's chain): a gzip response
    // for a client that does not take gzip is decompressed.
    let is_gzip = resp
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if c.gunzip && is_gzip {
        if c.vary {
            add_vary(&mut resp);
        }
        let takes_gzip = accept_encoding(cx).is_some_and(|a| accepts_gzip(a.as_bytes()))
            && client_ok(cx, resp.headers(), c);
        if takes_gzip {
            return resp;
        }
        let h = resp.headers_mut();
        drop_names(h, &[CONTENT_ENCODING, CONTENT_LENGTH, ACCEPT_RANGES]);
        weak_etag(h);
        if cx.method == Method::HEAD {
            return resp;
        }
        let decoder = Encoder::Gunzip(Box::new(flate2::write::MultiGzDecoder::new(
            BytesMut::new().writer(),
        )));
        return resp.map(|inner| {
            CompressBody {
                inner,
                encoder: decoder,
                unflushed: false,
                done: false,
                stats: Arc::new(CompressStats::default()),
                flush_now: true,
                idle: None,
                trailers: None,
                held: SmallVec::new(),
                held_len: 0,
            }
            .boxed_unsync()
        });
    }
    let h = resp.headers();
    let status_ok = matches!(resp.status().as_u16(), 200 | 403 | 404);
    let encoded = h.get(CONTENT_ENCODING).is_some_and(|v| !v.is_empty());
    let length: Option<u64> = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok());
    let (gz, br) = if status_ok && !encoded {
        let t = super::base_type(h);
        let fits = |on: bool, types: &Types, min: u64| {
            on && length.is_none_or(|l| l >= min) && types.matches(&t)
        };
        (
            fits(c.gzip, &c.gzip_types, c.gzip_min_length),
            fits(c.brotli, &c.brotli_types, c.brotli_min_length),
        )
    } else {
        (false, false)
    };
    if (marked || gz || br) && c.vary {
        add_vary(&mut resp);
    }
    if !(gz || br) {
        return resp;
    }
    let Some(enc) = choose(cx, resp.headers(), c, gz, br) else {
        return resp;
    };
    let h = resp.headers_mut();
    drop_names(h, &[CONTENT_LENGTH, ACCEPT_RANGES]);
    h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc.token()));
    weak_etag(h);
    if cx.method == Method::HEAD {
        return resp;
    }
    let stats = Arc::new(CompressStats {
        gzip: enc == Encoding::Gzip,
        ..CompressStats::default()
    });
    cx.compress_stats = Some(stats.clone());
    let encoder = match enc {
        Encoding::Gzip => Encoder::Gzip(Box::new(super::deflate::PooledGzip::new(c.gzip_level))),
        Encoding::Brotli => Encoder::Brotli(Some(Box::new(brotli::CompressorWriter::new(
            BytesMut::new().writer(),
            4096,
            c.brotli_level,
            c.brotli_lgwin,
        )))),
    };
    resp.map(|inner| {
        CompressBody {
            inner,
            encoder,
            unflushed: false,
            done: false,
            stats,
            flush_now: c.unbuffered,
            idle: None,
            trailers: None,
            held: SmallVec::new(),
            held_len: 0,
        }
        .boxed_unsync()
    })
}

type Sink = bytes::buf::Writer<BytesMut>;

enum Encoder {
    Gzip(Box<super::deflate::PooledGzip>),
    /// `None` once finished (the writer is consumed by its last write).
    Brotli(Option<Box<brotli::CompressorWriter<Sink>>>),
    /// `gunzip`: the other way.
    Gunzip(Box<flate2::write::MultiGzDecoder<Sink>>),
}

impl Encoder {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write(data),
            Encoder::Gunzip(e) => e.write_all(data),
            Encoder::Brotli(Some(e)) => e.write_all(data),
            Encoder::Brotli(None) => Ok(()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Gunzip(e) => e.flush(),
            Encoder::Brotli(Some(e)) => e.flush(),
            Encoder::Brotli(None) => Ok(()),
        }
    }

    /// Ends the stream; returns the last output.
    fn finish(&mut self) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Gunzip(e) => {
                e.try_finish()?;
                Ok(self.take())
            }
            Encoder::Brotli(e) => Ok(match e.take() {
                Some(w) => w.into_inner().into_inner().freeze(),
                None => Bytes::new(),
            }),
        }
    }

    /// Output bytes not taken yet.
    fn pending(&self) -> usize {
        match self {
            Encoder::Gzip(e) => e.pending(),
            Encoder::Gunzip(e) => e.get_ref().get_ref().len(),
            Encoder::Brotli(Some(e)) => e.get_ref().get_ref().len(),
            Encoder::Brotli(None) => 0,
        }
    }

    /// What the encoder wrote so far.
    fn take(&mut self) -> Bytes {
        match self {
            Encoder::Gzip(e) => e.take(),
            Encoder::Gunzip(e) => e.get_mut().get_mut().split().freeze(),
            Encoder::Brotli(Some(e)) => e.get_mut().get_mut().split().freeze(),
            Encoder::Brotli(None) => Bytes::new(),
        }
    }
}

/// A response body compressed as it is read.
struct CompressBody {
    inner: Body,
    encoder: Encoder,
    /// Input went in since the encoder was last flushed.
    unflushed: bool,
    done: bool,
    stats: Arc<CompressStats>,
    /// Flush as soon as the source waits (an unbuffered upstream), else only after it
    /// waited [`IDLE_FLUSH`].
    flush_now: bool,
    /// The idle timer (armed while the source waits with input not flushed).
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The source's trailers (`proxy_pass_trailers`), sent after the last compressed
    /// bytes, as nginx's chunked filter sends them after the gzip filter's output.
    trailers: Option<http::HeaderMap>,
    /// Input not compressed yet ([`HOLD`]), and its length.
    held: SmallVec<[Bytes; 8]>,
    held_len: usize,
}

/// How long a buffered source may wait, with input not yet flushed, before what came
/// so far is flushed to the client (a backend that asked for no buffering with
/// `X-Accel-Buffering: no`, or a slow one): a flush costs compression, so a fast
/// source is not flushed between its reads.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(20);

/// A buffered source's input is compressed once this much came (or at the end, or
/// when it is flushed), not a read at a time: a response is then compressed in one go
/// while its deflate state is in the cache — as nginx compresses what it read from
/// the upstream in one event — instead of a slice per spool turn, interleaved with
/// every other response's slices (which, with many responses at once, evicted each
/// one's state between its slices: 3x the compression time at 64 connections).
const HOLD: usize = 128 * 1024;

/// Compressed output is passed on once this much is there (nginx's `gzip_buffers`
/// size on x86-64), or when the source waits, or at the end.
const EMIT_MIN: usize = 4096;

impl CompressBody {
    fn out(&self, b: &Bytes) {
        self.stats.zout.fetch_add(b.len() as u64, Ordering::Relaxed);
    }

    /// Compresses the held input.
    fn compress_held(&mut self) -> std::io::Result<()> {
        for b in self.held.drain(..) {
            self.encoder.write(&b)?;
        }
        self.held_len = 0;
        Ok(())
    }
}

impl http_body::Body for CompressBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(frame) => {
                            // Trailers end the body: the stream is finished before them.
                            if let Ok(t) = frame.into_trailers() {
                                this.trailers = Some(t);
                                this.done = true;
                                this.compress_held()?;
                                let out = this.encoder.finish()?;
                                this.out(&out);
                                return Poll::Ready(Some(Ok(Frame::data(out))));
                            }
                            continue;
                        }
                    };
                    if data.is_empty() {
                        continue;
                    }
                    this.stats
                        .zin
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    this.unflushed = true;
                    this.idle = None;
                    if this.flush_now {
                        this.encoder.write(&data)?;
                    } else {
                        this.held_len += data.len();
                        this.held.push(data);
                        if this.held_len < HOLD {
                            continue;
                        }
                        this.compress_held()?;
                    }
                    // Sent a buffer at a time, as nginx's gzip filter passes on its
                    // filled `gzip_buffers` (4k): a frame per upstream read was a write
                    // (and a fresh output buffer) per ~1 KB of compressed output.
                    if this.encoder.pending() >= EMIT_MIN {
                        let out = this.encoder.take();
                        this.out(&out);
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.done = true;
                    this.compress_held()?;
                    let out = this.encoder.finish()?;
                    this.out(&out);
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Poll::Pending => {
                    if !this.unflushed {
                        return Poll::Pending;
                    }
                    if !this.flush_now {
                        let idle = this
                            .idle
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(IDLE_FLUSH)));
                        if std::future::Future::poll(idle.as_mut(), cx).is_pending() {
                            return Poll::Pending;
                        }
                        this.idle = None;
                    }
                    // The source waits: what came in so far goes out now.
                    this.unflushed = false;
                    this.compress_held()?;
                    this.encoder.flush()?;
                    let out = this.encoder.take();
                    if out.is_empty() {
                        return Poll::Pending;
                    }
                    this.out(&out);
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }
}

/// Whether the filter will compress a static file's 200 of type `ctype` and `len`
/// bytes: then nginx answers a `Range` request with the whole compressed file (its
/// range filter runs after gzip has dropped the length), and so does the static handler.
pub(crate) fn compresses_file(
    cx: &RequestCtx,
    c: &CompressConf,
    ctype: &[u8],
    len: u64,
    has_etag: bool,
) -> bool {
    if !(c.gzip || c.brotli) {
        return false;
    }
    let t = std::str::from_utf8(ctype)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let gz = c.gzip && len >= c.gzip_min_length && c.gzip_types.matches(&t);
    let br = c.brotli && len >= c.brotli_min_length && c.brotli_types.matches(&t);
    if !(gz || br) {
        return false;
    }
    let mut h = HeaderMap::new();
    h.insert(LAST_MODIFIED, HeaderValue::from_static("x"));
    if has_etag {
        h.insert(ETAG, HeaderValue::from_static("\"x\""));
    }
    choose(cx, &h, c, gz, br).is_some()
}

/// `gzip_static` / `brotli_static` for the static handler: the precompressed file
/// beside `path` to send instead, if any (`.br` first when the client prefers it),
/// with its metadata and encoding. Sets `vary` when nginx's `gzip_static on` would
/// (a `.gz` exists, whether or not the client accepts it).
pub(crate) async fn static_file(
    cx: &RequestCtx,
    c: &CompressConf,
    path: &str,
    vary: &mut bool,
) -> Option<(String, std::fs::Metadata, Encoding)> {
    if !matches!(cx.method, Method::GET | Method::HEAD) || cx.uri.ends_with('/') {
        return None;
    }
    if c.gzip_static == StaticMode::Off && c.brotli_static == StaticMode::Off {
        return None;
    }
    let empty = HeaderMap::new();
    let ok = client_ok(cx, &empty, c);
    let ae = accept_encoding(cx);
    let mut order: Vec<(Encoding, StaticMode, bool)> = Vec::with_capacity(2);
    let br_q = ae.map_or(0, |a| preference(a.to_str().unwrap_or(""), "br"));
    let gz_q = ae.map_or(0, |a| preference(a.to_str().unwrap_or(""), "gzip"));
    let gz_accept = ae.is_some_and(|a| accepts_gzip(a.as_bytes()));
    if c.brotli_static != StaticMode::Off {
        order.push((Encoding::Brotli, c.brotli_static, br_q > 0 && ok));
    }
    if c.gzip_static != StaticMode::Off {
        order.push((Encoding::Gzip, c.gzip_static, gz_accept && ok));
    }
    if br_q < gz_q {
        order.reverse();
    }
    for (enc, mode, accepted) in order {
        if mode == StaticMode::On && !accepted && !c.vary {
            continue;
        }
        let candidate = format!("{path}.{}", if enc == Encoding::Gzip { "gz" } else { "br" });
        let Ok(meta) = tokio::fs::metadata(&candidate).await else {
            continue;
        };
        if mode == StaticMode::On {
            *vary = true;
            if !accepted {
                continue;
            }
        }
        if meta.is_dir() {
            continue;
        }
        return Some((candidate, meta, enc));
    }
    None
}

/// The `Content-Encoding` value of a precompressed file.
pub(crate) fn encoding_value(e: Encoding) -> HeaderValue {
    HeaderValue::from_static(e.token())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_as_nginx_reads_it() {
        for (ae, ok) in [
            ("gzip, deflate", true),
            ("gzip,deflate", true),
            ("deflate, gzip", true),
            ("GZIP", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("gzip;q=0.001", true),
            ("gzip;q=1", true),
            ("gzip;q=1.5", false),
            ("x-gzip", false),
            ("gzipx", false),
            ("br", false),
            ("identity", false),
            ("deflate,gzip ;q=0.5", true),
        ] {
            assert_eq!(accepts_gzip(ae.as_bytes()), ok, "{ae}");
        }
    }

    #[test]
    fn preference_reads_qualities() {
        assert_eq!(preference("gzip, br", "br"), 1000);
        assert_eq!(preference("gzip;q=0.8, br;q=0.5", "br"), 500);
        assert_eq!(preference("gzip;q=0.8, br;q=0.5", "gzip"), 800);
        assert_eq!(preference("*;q=0.3", "br"), 300);
        assert_eq!(preference("gzip", "br"), 0);
    }

    #[test]
    fn msie6_detection() {
        assert!(is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
        ));
        assert!(!is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"
        ));
        assert!(is_msie6(b"Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)"));
        assert!(!is_msie6(
            b"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)"
        ));
        assert!(!is_msie6(b"Opera/9.80 (compatible; MSIE 6.0)"));
    }

    #[test]
    fn weak_etag_rules() {
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_static("\"abc\""));
        weak_etag(&mut h);
        assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
        weak_etag(&mut h);
        assert_eq!(h.get(ETAG).unwrap(), "W/\"abc\"");
        h.insert(ETAG, HeaderValue::from_static("abc"));
        weak_etag(&mut h);
        assert!(h.get(ETAG).is_none());
    }
}
