//! The request's way through (after `listen` and `http1::conn`): server
//! selection → location → rewrite phase (`set`, `return`, `try_files`) →
//! content (a backend or static files) → `error_page` → output headers
//! (`Server`, `Date`, `add_header`) → access log when the body ends.

use crate::build::{ErrorPage, Listen, LocConf, Runtime, VServer};
use crate::route::{self, Found, Loc};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use junction_config::model::LocKind;
use junction_core::backend::Generated;
use junction_core::body::{self, Body, IncomingBody, ReqBody};
use junction_core::ctx::{Captures, ConnInfo, RequestCtx};
use junction_core::Error;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    Run,
    /// Stop accepting, finish in-flight requests (SIGQUIT).
    Graceful,
    /// Stop now (SIGTERM/SIGINT).
    Fast,
}

/// The version string in `Server` and error pages.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every request of a connection shares: the runtime it runs under.
pub(crate) struct Shared {
    pub(crate) rt: Arc<Runtime>,
}

/// Marks a status page Junction wrote itself (nginx's special responses, some of
/// which end keep-alive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnPage;

/// nginx's reason phrase for a status line.
pub(crate) fn reason_phrase(status: StatusCode) -> &'static str {
    nginx_reason(status)
        .or(status.canonical_reason())
        .unwrap_or("")
}

/// The server signature, written once for the `Server` header and every page Junction
/// makes itself: `junction/VERSION`, or `junction` under `server_tokens off`.
pub(crate) fn server_header_value(tokens: bool) -> &'static str {
    if tokens {
        concat!("junction/", env!("CARGO_PKG_VERSION"))
    } else {
        "junction"
    }
}

/// What a phase decided.
pub(crate) enum Outcome {
    Response(http::Response<Body>, bool),
    Redirect(String),
    Named(String),
    /// `rewrite` changed the URI: search the locations again (server script not rerun).
    Relocate,
}

fn server_header(tokens: bool) -> HeaderValue {
    HeaderValue::from_static(server_header_value(tokens))
}

/// nginx's small error page.
/// nginx's wording where it differs from the RFC's: the title of its own pages
/// (`ngx_http_error_pages`) and the reason phrase of its status lines.
fn nginx_reason(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        302 => "Moved Temporarily",
        401 => "Unauthorized",
        405 => "Not Allowed",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        416 => "Requested Range Not Satisfiable",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => return None,
    })
}

pub(crate) fn error_page_body(status: StatusCode, tokens: bool) -> Bytes {
    // nginx's pages say "302 Found" and "401 Authorization Required" (its status lines
    // say "Moved Temporarily" and "Unauthorized").
    let reason = match status.as_u16() {
        302 => Some("Found"),
        401 => Some("Authorization Required"),
        _ => nginx_reason(status),
    };
    let title = format!(
        "{} {}",
        status.as_u16(),
        reason.or(status.canonical_reason()).unwrap_or("")
    );
    let sig = server_header_value(tokens);
    Bytes::from(format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{sig}</center>\r\n</body>\r\n</html>\r\n"
    ))
}

pub(crate) fn status_response(status: StatusCode, tokens: bool) -> http::Response<Body> {
    let with_body = status.as_u16() >= 300 && !matches!(status.as_u16(), 304);
    let body = if with_body {
        error_page_body(status, tokens)
    } else {
        Bytes::new()
    };
    let mut r = http::Response::new(body::full(body.clone()));
    *r.status_mut() = status;
    r.extensions_mut().insert(OwnPage);
    if let Some(reason) = nginx_reason(status) {
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    if with_body {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html"),
        );
    }
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

pub(crate) fn log_error_pub(cx: &RequestCtx, e: &Error) {
    log_error(cx, e)
}

/// Logs `e` in the request's span (`crate::error_log` adds client, server, request and
/// host), naming the upstream tried last.
fn log_error(cx: &RequestCtx, e: &Error) {
    if e.is_logged() {
        return;
    }
    let upstream = cx.upstream.shown();
    match e.side() {
        junction_core::Side::Client => tracing::info!(upstream = %upstream, "{}", e.message()),
        _ => tracing::error!(upstream = %upstream, "{}", e.message()),
    }
}

/// `$host`: from the request line, else the Host header; lower case, no port.
fn parse_host(raw: &str) -> Option<String> {
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
    if h.bytes()
        .any(|c| c == b'/' || c == b'\\' || c == 0 || c.is_ascii_whitespace())
        || h.contains("..")
    {
        return None;
    }
    Some(h.to_ascii_lowercase())
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: Arc<ConnInfo>,
    listen: &Listen,
    req: http::Request<ReqBody>,
    n: u64,
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
        (Some(raw), _) => String::from_utf8_lossy(&raw.0).into_owned(),
        (None, Some(pq)) => pq.as_str().to_string(),
        (None, None) => parts.uri.to_string(),
    };
    // Boxed: every future on the request's way holds a pointer, not a copy (the
    // state of a moved-from local stays in an async fn's future).
    let mut cx = Box::new(RequestCtx::new(
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
    cx.request_length = parts
        .extensions
        .get::<junction_core::client::HeadLength>()
        .map_or(0, |h| h.0 as u64);
    // Host
    let parsed_host = match parts.uri.authority() {
        Some(a) => Some(parse_host(a.as_str())),
        None => cx
            .headers
            .get(http::header::HOST)
            .map(|h| parse_host(&String::from_utf8_lossy(h.as_bytes()))),
    };
    let host = match parsed_host {
        Some(Some(h)) => Some(h),
        Some(None) => None,
        None => Some(String::new()),
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
    match host {
        None => {
            return finish(
                bad(
                    &cx,
                    "client sent invalid host header while reading client request headers",
                    StatusCode::BAD_REQUEST,
                ),
                cx,
                &srv.base.data,
            )
        }
        Some(h) if h.is_empty() => {
            if cx.version == http::Version::HTTP_11 {
                return finish(
                    bad(
                        &cx,
                        "client sent HTTP/1.1 request without \"Host\" header",
                        StatusCode::BAD_REQUEST,
                    ),
                    cx,
                    &srv.base.data,
                );
            }
            cx.host = srv.name0.to_string();
        }
        Some(h) => cx.host = h,
    }
    if cx.headers.get_all(http::header::HOST).iter().count() > 1 {
        return finish(
            bad(
                &cx,
                "client sent duplicate host header",
                StatusCode::BAD_REQUEST,
            ),
            cx,
            &srv.base.data,
        );
    }
    if cx.headers.contains_key(http::header::TRANSFER_ENCODING)
        && cx.headers.contains_key(http::header::CONTENT_LENGTH)
    {
        return finish(
            bad(
                &cx,
                "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
                StatusCode::BAD_REQUEST,
            ),
            cx,
            &srv.base.data,
        );
    }
    if cx
        .headers
        .iter()
        .any(|(k, v)| k.as_str().len() + v.len() + 4 > srv.large_header_size)
    {
        return finish(
            bad(
                &cx,
                "client sent too long header line",
                StatusCode::BAD_REQUEST,
            ),
            cx,
            &srv.base.data,
        );
    }
    if cx.request_uri.len() > srv.large_header_size {
        return finish(
            bad(&cx, "client sent too long URI", StatusCode::URI_TOO_LONG),
            cx,
            &srv.base.data,
        );
    }
    match route::normalize_with(parts.uri.path(), srv.conn.merge_slashes) {
        Ok(u) => cx.uri = u,
        Err(_) => {
            return finish(
                bad(&cx, "client sent invalid request", StatusCode::BAD_REQUEST),
                cx,
                &srv.base.data,
            )
        }
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
    junction_core::logctx::in_request(process(&srv, cx, incoming, length, reject), log).await
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

/// nginx's `NGX_HTTP_MAX_URI_CHANGES`: internal redirects (URI or named) a request
/// may take; the next one is a "rewrite or internal redirection cycle" (500).
const MAX_URI_CHANGES: u8 = 10;

/// Where the location loop goes next.
enum Step {
    /// Answer with this response, under the given location's settings.
    Done(http::Response<Body>),
    /// Find the location for `cx.uri` again (after an internal redirect).
    Find,
    /// Find the location again after `rewrite … last` (no server rewrites first).
    Relocate,
    /// Enter a named location (its own phases; server-level `set` does not run again).
    Named(Arc<Loc<LocConf>>),
}

/// nginx's `r->error_page` and `r->err_status`: whether an `error_page` was already
/// followed (only one, unless `recursive_error_pages`), and the status the final
/// response is sent with (`None`: its own status).
#[derive(Default)]
struct ErrorState {
    used: bool,
    status: Option<u16>,
    /// auth_basic's `WWW-Authenticate`, kept through `error_page` (nginx's
    /// `headers_out` survive the internal redirect).
    auth: Option<HeaderValue>,
}

/// The request's way through the locations: server-level `set`, location match,
/// `internal`, body limit, location-level `set`, content; then internal redirects,
/// named locations and `error_page` exactly as nginx's `ngx_http_internal_redirect`,
/// `ngx_http_named_location`, `ngx_http_special_response_handler` and
/// `ngx_http_send_error_page`, with nginx's limit of 10 URI changes.
async fn process(
    srv: &Arc<VServer>,
    mut cx: Box<RequestCtx>,
    body: ReqBody,
    length: Option<u64>,
    reject: Option<u16>,
) -> http::Response<Body> {
    crate::error_log::enter(srv.base.data.error_log);
    let mut body = Some(body);
    let mut err = ErrorState::default();
    let mut next = Step::Find;
    if let Some(code) = reject {
        // 495/496/497: nginx's page (a 400), or the server's `error_page` for the code.
        let c = &srv.base.data;
        let page = crate::tls::reject_page(code, c.server_tokens);
        match c.error_pages.iter().find(|e| e.codes.contains(&code)) {
            Some(ep) => {
                err.used = !c.recursive_error_pages;
                err.status = Some(code);
                next = send_error_page(srv, &mut cx, c, &mut err, ep);
            }
            None => return finish(page, cx, c),
        }
    }
    loop {
        let mut pre = None;
        let loc = match std::mem::replace(&mut next, Step::Find) {
            Step::Named(l) => l,
            Step::Done(r) => return finish(r, cx, &srv.base.data),
            step @ (Step::Find | Step::Relocate) => {
                // nginx's server rewrite phase: runs for every URI, before the location is
                // found (not again after a location's `rewrite … last`).
                if matches!(step, Step::Find) {
                    cx.uninit_warn = srv.base.data.uninit_warn;
                    cx.script_split.clone_from(&srv.base.data.script_split);
                    let mut ex = crate::rewrite::Exec::default();
                    let base = &srv.base;
                    // `$request_filename` at server level: under the server's root.
                    let refresh = |cx: &mut RequestCtx| set_paths(cx, &base.data, base);
                    if !base.data.script.is_empty() {
                        refresh(&mut cx);
                    }
                    pre = crate::rewrite::run(
                        &base.data.script,
                        &mut cx,
                        &base.data,
                        &mut ex,
                        &refresh,
                    );
                }
                if pre.is_some() {
                    srv.base.clone()
                } else {
                    match route::find(&srv.base.statics, &srv.base.regexes, &cx.uri) {
                        Found::Loc(l, caps) => {
                            if let Some(spans) = caps {
                                let subject: Arc<str> = Arc::from(cx.uri.as_str());
                                cx.captures = Captures { subject, spans };
                                set_named_captures(&mut cx, &l.data.named_captures);
                            }
                            l
                        }
                        Found::SlashRedirect => {
                            let mut loc = format!("http://{}{}/", host_port(&cx), cx.uri);
                            if !cx.args.is_empty() {
                                loc.push('?');
                                loc.push_str(&cx.args);
                            }
                            let mut r = status_response(
                                StatusCode::MOVED_PERMANENTLY,
                                srv.base.data.server_tokens,
                            );
                            if let Ok(v) = HeaderValue::from_str(&loc) {
                                r.headers_mut().insert(http::header::LOCATION, v);
                            }
                            return finish(r, cx, &srv.base.data);
                        }
                        Found::None => srv.base.clone(),
                    }
                }
            }
        };
        crate::error_log::enter(loc.data.error_log);
        let mut cur = loc.clone();
        let c = &loc.data;
        let tokens = c.server_tokens;
        let outcome = if let Some(o) = pre {
            o
        } else if c.internal && cx.redirects == 0 {
            // nginx: an `internal` location reached from outside is a 404 of that location.
            Outcome::Response(status_response(StatusCode::NOT_FOUND, tokens), true)
        } else {
            let mut outcome = None;
            // Request body limit (nginx checks Content-Length once the location is known).
            if let (Some(len), true) = (length, c.client_max_body_size > 0) {
                if len > c.client_max_body_size && body.is_some() && cx.redirects == 0 {
                    let e = Error::new(
                        junction_core::ErrorKind::BodyTooLarge,
                        format!("client intended to send too large body: {len} bytes"),
                    );
                    log_error(&cx, &e);
                    body = None;
                    outcome = Some(Outcome::Response(status_response(e.status(), tokens), true));
                }
            }
            match outcome {
                Some(o) => o,
                None => {
                    // The body not read yet follows the request through redirects (as in nginx).
                    body = Some(match body.take() {
                        Some(ReqBody::Incoming(inc)) => ReqBody::Incoming(rewrap(inc, c)),
                        Some(other) => other,
                        None => ReqBody::Empty,
                    });
                    set_paths(&mut cx, c, &loc);
                    cx.uninit_warn = c.uninit_warn;
                    cx.script_split.clone_from(&c.script_split);
                    let mut ex = crate::rewrite::Exec::default();
                    // nginx skips the location rewrite phase for the server's null location.
                    let answer = if Arc::ptr_eq(&loc, &srv.base) {
                        None
                    } else {
                        let refresh = |cx: &mut RequestCtx| set_paths(cx, c, &loc);
                        crate::rewrite::run(&c.script, &mut cx, c, &mut ex, &refresh)
                    };
                    if let Some(l) = ex.loc.take() {
                        // An `if` block's own settings apply from here on.
                        cx.script_split.clone_from(&l.data.script_split);
                        cur = l;
                        cx.uninit_warn = cur.data.uninit_warn;
                    }
                    match answer {
                        Some(o) => o,
                        None if ex.uri_changed => Outcome::Relocate,
                        None => {
                            if ex.touched {
                                set_paths(&mut cx, &cur.data, &cur);
                            }
                            content(&mut cx, &cur.data, &cur, &mut body).await
                        }
                    }
                }
            }
        };
        let c = &cur.data;
        let step = match outcome {
            Outcome::Relocate => {
                let what = format!("processing \"{}\"", cx.uri);
                uri_change(&mut cx, c, &mut err, &what).unwrap_or(Step::Relocate)
            }
            Outcome::Redirect(uri) => {
                // try_files / index: arguments kept unless the target has its own.
                let (u, a) = match uri.split_once('?') {
                    Some((u, a)) => (u.to_string(), Some(a.to_string())),
                    None => (uri.clone(), None),
                };
                let u = route::normalize(&u).unwrap_or(u);
                redirect_uri(srv, &mut cx, c, &mut err, u, a)
            }
            Outcome::Named(name) => named(srv, &mut cx, c, &mut err, &name),
            Outcome::Response(mut resp, generated) => {
                let status = resp.status().as_u16();
                let special = if generated || resp.extensions().get::<Generated>().is_some() {
                    // Junction's own answer (or a backend's, e.g. memcached's miss):
                    // nginx's `ngx_http_finalize_request(r, status)`.
                    if !generated {
                        // Its own page; headers other than the body's stay (a 416's
                        // Content-Range).
                        let mut page = status_response(resp.status(), tokens);
                        for (k, v) in resp.headers() {
                            if !matches!(
                                *k,
                                http::header::CONTENT_LENGTH
                                    | http::header::CONTENT_TYPE
                                    | http::header::CONTENT_ENCODING
                                    | http::header::TRANSFER_ENCODING
                            ) {
                                page.headers_mut().append(k.clone(), v.clone());
                            }
                        }
                        resp = page;
                    }
                    status >= 300
                } else if status >= 300
                    && c.backend.as_ref().is_some_and(|b| b.intercept_errors())
                    && c.error_pages.iter().any(|e| e.codes.contains(&status))
                {
                    // `*_intercept_errors on` and an error_page for this status: the
                    // upstream's response is replaced (WWW-Authenticate kept for 401).
                    let auth = resp.headers().get(http::header::WWW_AUTHENTICATE).cloned();
                    resp = status_response(resp.status(), tokens);
                    if let (401, Some(v)) = (status, auth) {
                        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
                    }
                    true
                } else {
                    false
                };
                if special {
                    special_response(srv, &mut cx, c, &mut err, resp)
                } else {
                    Step::Done(resp)
                }
            }
        };
        match step {
            Step::Done(mut resp) => {
                // nginx's `r->err_status` decides the status line of whatever is sent.
                if let Some(s) = err.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                    *resp.status_mut() = s;
                }
                if let Some(v) = err.auth.take() {
                    resp.headers_mut()
                        .entry(http::header::WWW_AUTHENTICATE)
                        .or_insert(v);
                }
                return finish(resp, cx, c);
            }
            other => next = other,
        }
    }
}

/// Counts one URI change; past the limit, logs the cycle and answers 500 (nginx does
/// not apply `error_page` any more then).
fn uri_change(cx: &mut RequestCtx, c: &LocConf, err: &mut ErrorState, what: &str) -> Option<Step> {
    cx.redirects = cx.redirects.saturating_add(1);
    if cx.redirects <= MAX_URI_CHANGES {
        return None;
    }
    let e = Error::internal(format!(
        "rewrite or internal redirection cycle while {what}"
    ));
    log_error(cx, &e);
    err.status = Some(500);
    Some(Step::Done(status_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        c.server_tokens,
    )))
}

/// `ngx_http_internal_redirect`: a new URI (not normalized again, as nginx) and
/// arguments (`None`: keep the current ones), then the location is found anew.
fn redirect_uri(
    _srv: &Arc<VServer>,
    cx: &mut RequestCtx,
    c: &LocConf,
    err: &mut ErrorState,
    uri: String,
    args: Option<String>,
) -> Step {
    if let Some(s) = uri_change(cx, c, err, &format!("internally redirecting to \"{uri}\"")) {
        return s;
    }
    cx.uri = uri;
    if let Some(a) = args {
        cx.args = a;
    }
    cx.uri_changed = true;
    // nginx clears the modules' request contexts on an internal redirect.
    cx.reset_script_split();
    Step::Find
}

/// `ngx_http_named_location`: the method and URI stay as they are.
fn named(
    srv: &Arc<VServer>,
    cx: &mut RequestCtx,
    c: &LocConf,
    err: &mut ErrorState,
    name: &str,
) -> Step {
    if let Some(s) = uri_change(
        cx,
        c,
        err,
        &format!("redirect to named location \"{name}\""),
    ) {
        return s;
    }
    match srv.named.get(name) {
        Some(l) => {
            cx.reset_script_split();
            Step::Named(l.clone())
        }
        None => {
            let e = Error::internal(format!("could not find named location \"{name}\""));
            log_error(cx, &e);
            special_response(
                srv,
                cx,
                c,
                err,
                status_response(StatusCode::INTERNAL_SERVER_ERROR, c.server_tokens),
            )
        }
    }
}

/// `ngx_http_special_response_handler`: a status Junction answers itself. The first
/// matching `error_page` of the location applies (once per request unless
/// `recursive_error_pages`, and not after the redirect limit); else `resp`, the
/// default page.
fn special_response(
    srv: &Arc<VServer>,
    cx: &mut RequestCtx,
    c: &LocConf,
    err: &mut ErrorState,
    resp: http::Response<Body>,
) -> Step {
    let status = resp.status().as_u16();
    err.status = Some(status);
    if let Some(v) = resp.headers().get(http::header::WWW_AUTHENTICATE) {
        err.auth = Some(v.clone());
    }
    if !err.used && !c.error_pages.is_empty() && cx.redirects <= MAX_URI_CHANGES {
        // nginx marks the request as soon as the location has error pages at all.
        if !c.recursive_error_pages {
            err.used = true;
        }
        if let Some(ep) = c.error_pages.iter().find(|e| e.codes.contains(&status)) {
            return send_error_page(srv, cx, c, err, ep);
        }
    }
    Step::Done(resp)
}

/// `ngx_http_send_error_page`: `=CODE` / `=` set the final status; a `/uri` target is
/// an internal redirect as GET (HEAD stays HEAD; the arguments are the target's own);
/// `@name` keeps the method; anything else is a redirect of the client (302, or the
/// `=CODE` given if it is 301/302/303/307/308).
fn send_error_page(
    srv: &Arc<VServer>,
    cx: &mut RequestCtx,
    c: &LocConf,
    err: &mut ErrorState,
    ep: &ErrorPage,
) -> Step {
    match ep.overwrite {
        None => {}
        Some(None) => err.status = None,
        Some(Some(code)) => err.status = Some(code),
    }
    let target = ep.target.eval_string(cx);
    if target.starts_with('/') {
        if cx.method != Method::HEAD {
            cx.method = Method::GET;
        }
        let (u, a) = match target.split_once('?') {
            Some((u, a)) => (u.to_string(), a.to_string()),
            None => (target, String::new()),
        };
        return redirect_uri(srv, cx, c, err, u, Some(a));
    }
    if target.starts_with('@') {
        return named(srv, cx, c, err, &target);
    }
    let code = match ep.overwrite {
        Some(Some(code @ (301 | 302 | 303 | 307 | 308))) => code,
        _ => 302,
    };
    err.status = Some(code);
    let mut r = status_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND),
        c.server_tokens,
    );
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    Step::Done(r)
}

/// The named captures of the matched location regex (`(?<name>…)`) set `$name`.
fn set_named_captures(cx: &mut RequestCtx, names: &[(usize, usize)]) {
    for &(group, slot) in names {
        let v = cx
            .captures
            .get(group)
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .unwrap_or_default();
        cx.set_slot(slot, v);
    }
}

fn rewrap(inc: IncomingBody, c: &LocConf) -> IncomingBody {
    inc.with_limits(c.client_max_body_size, c.client_body_timeout)
}

pub(crate) fn host_port_pub(cx: &RequestCtx) -> String {
    host_port(cx)
}

fn host_port(cx: &RequestCtx) -> String {
    let port = cx.conn.local.port();
    if port == 80 {
        cx.host.clone()
    } else {
        format!("{}:{port}", cx.host)
    }
}

fn set_paths(cx: &mut RequestCtx, c: &LocConf, loc: &Loc<LocConf>) {
    // `$request_filename` costs an allocation: a `*_pass` location builds it only
    // when some template reads it (static files always need it).
    let need_file = c.backend.is_none() || c.vars_used.request_filename();
    if !need_file {
        cx.document_root = match &c.alias {
            Some(alias) => alias.eval(cx),
            None => c.root.eval(cx),
        };
        return;
    }
    let mut file = bytes::BytesMut::new();
    match &c.alias {
        Some(alias) => {
            let a = alias.eval(cx);
            cx.document_root = a.clone();
            file.extend_from_slice(&a);
            let rest = if matches!(loc.kind, LocKind::Regex { .. }) {
                ""
            } else {
                cx.uri.get(loc.name.len().min(cx.uri.len())..).unwrap_or("")
            };
            file.extend_from_slice(rest.as_bytes());
        }
        None => {
            let r = c.root.eval(cx);
            cx.document_root = r.clone();
            file.extend_from_slice(&r);
            file.extend_from_slice(cx.uri.as_bytes());
        }
    }
    cx.request_filename = file.freeze();
}

async fn content(
    cx: &mut RequestCtx,
    c: &LocConf,
    loc: &Loc<LocConf>,
    body: &mut Option<ReqBody>,
) -> Outcome {
    // nginx's preaccess and access phases: after the rewrite phase, before try_files
    // and content.
    c.realip.apply(cx);
    if let Some(r) = c.limits.preaccess(cx, c.server_tokens).await {
        return Outcome::Response(r, true);
    }
    if let Some(r) = c.access.check(cx, c.server_tokens).await {
        return Outcome::Response(r, true);
    }
    if let Some((last, tries)) = c.try_files.split_last() {
        if !Box::pin(try_files(cx, c, loc, tries)).await {
            let last = last.eval_string(cx);
            if let Some(code) = last.strip_prefix('=') {
                let s = code
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::NOT_FOUND);
                return Outcome::Response(status_response(s, c.server_tokens), true);
            }
            if last.starts_with('@') {
                return Outcome::Named(last);
            }
            // nginx: the fallback URI carries only its own arguments.
            let mut last = last;
            if !last.contains('?') {
                last.push('?');
            }
            return Outcome::Redirect(last);
        }
    }
    if let Some(b) = &c.backend {
        if !b.allows_method(&cx.method) {
            // Before the body is touched, so `error_page 405 = @app` still has it.
            return Outcome::Response(
                status_response(StatusCode::METHOD_NOT_ALLOWED, c.server_tokens),
                true,
            );
        }
        let rb = body.take().unwrap_or(ReqBody::Empty);
        return match b.handle(cx, rb).await {
            Ok(r) => Outcome::Response(r, false),
            Err(e) => {
                log_error(cx, &e);
                Outcome::Response(status_response(e.status(), c.server_tokens), true)
            }
        };
    }
    // Boxed: a proxy's request does not carry the static path's state.
    Box::pin(crate::static_files::serve(cx, c)).await
}

/// `try_files` (all but the last argument): the first that exists under the root or
/// alias becomes `$uri`, and the request stays in this location. As nginx does, an
/// argument *written* with a trailing `/` tests a directory and is tried without that
/// slash (`$uri/` for `/docs` makes `$uri` `/docs`, which the static handler then
/// redirects to `/docs/`; for `/docs/` it stays `/docs/`, and `index` applies); any
/// other argument must exist and not be a directory.
async fn try_files(
    cx: &mut RequestCtx,
    c: &LocConf,
    loc: &Loc<LocConf>,
    tries: &[junction_core::vars::Template],
) -> bool {
    use junction_core::vars::Piece;
    for t in tries {
        let mut v = t.eval_string(cx);
        let test_dir = matches!(t.pieces().last(), Some(Piece::Lit(l)) if l.ends_with(b"/"));
        if test_dir {
            v.pop();
        }
        let path = fs_path(cx, c, loc, &v);
        let found = match tokio::fs::metadata(&path).await {
            Ok(m) => m.is_dir() == test_dir,
            Err(_) => false,
        };
        if found {
            if v.is_empty() {
                v.push('/');
            }
            cx.uri = v;
            set_paths(cx, c, loc);
            return true;
        }
    }
    false
}

fn fs_path(cx: &RequestCtx, c: &LocConf, loc: &Loc<LocConf>, uri: &str) -> std::path::PathBuf {
    let mut p = String::new();
    match &c.alias {
        Some(a) if !matches!(loc.kind, LocKind::Regex { .. }) => {
            p.push_str(&a.eval_string(cx));
            p.push_str(uri.get(loc.name.len().min(uri.len())..).unwrap_or(""));
        }
        Some(a) => p.push_str(&a.eval_string(cx)),
        None => {
            p.push_str(&c.root.eval_string(cx));
            p.push_str(uri);
        }
    }
    std::path::PathBuf::from(p)
}

pub(crate) fn do_return(cx: &RequestCtx, c: &LocConf, ret: &crate::build::Return) -> Outcome {
    let code = ret.code;
    if code == 444 {
        let mut r = status_response(
            StatusCode::from_u16(444).unwrap_or(StatusCode::BAD_REQUEST),
            c.server_tokens,
        );
        r.extensions_mut()
            .insert(junction_core::backend::NoResponse);
        return Outcome::Response(r, false);
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = ret.text.as_ref().map(|t| t.eval(cx));
    if matches!(code, 301 | 302 | 303 | 307 | 308) {
        let mut r = status_response(status, c.server_tokens);
        if let Some(t) = text {
            let loc = if t.starts_with(b"/") {
                let mut s = format!("http://{}", host_port(cx)).into_bytes();
                s.extend_from_slice(&t);
                Bytes::from(s)
            } else {
                t
            };
            if let Ok(v) = HeaderValue::from_maybe_shared(loc) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
        }
        // nginx finalizes with the code: `error_page 301 …` applies.
        return Outcome::Response(r, true);
    }
    match text {
        Some(t) => {
            let mut r = http::Response::new(body::full(t.clone()));
            *r.status_mut() = status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_maybe_shared(c.default_type.clone())
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            );
            r.headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(t.len()));
            Outcome::Response(r, false)
        }
        None => Outcome::Response(status_response(status, c.server_tokens), true),
    }
}

/// Output headers, then the access log once the body ends.
/// A response's location-level connection settings ([`LocConf::conn`]).
#[derive(Clone)]
pub(crate) struct LocConn(pub(crate) Arc<crate::http1::ConnConf>);

fn finish(
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
    h.insert(http::header::SERVER, server_header(c.server_tokens));
    if let Some(t) = &c.server_tokens_string {
        let s = t.eval(&cx);
        match HeaderValue::from_maybe_shared(s.clone()) {
            Ok(v) if !s.is_empty() => h.insert(http::header::SERVER, v),
            _ => h.remove(http::header::SERVER),
        };
    }
    h.insert(http::header::DATE, junction_core::time::http_date());
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
