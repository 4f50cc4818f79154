//! The phases after the server is chosen: server-level rewrite, location match,
//! `internal`, the body limit, the location's rewrite phase (`set`, `rewrite`,
//! `return`, `if`), then [`crate::content`]; and the ways a request goes on from
//! there: internal redirects (`try_files`, `index`, `rewrite … last`), named
//! locations and `error_page`, with nginx's limit of 10 URI changes.

use crate::build::{ErrorPage, LocConf, VServer};
use crate::content::{content, set_paths};
use crate::output::finish;
use crate::pages::{host_port, log_error, status_response};
use crate::route::{self, Found, Loc};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use junction_core::backend::Generated;
use junction_core::body::{self, Body, IncomingBody, ReqBody};
use junction_core::ctx::{Captures, RequestCtx};
use junction_core::Error;
use std::sync::Arc;

/// What a phase decided.
pub(crate) enum Outcome {
    Response(http::Response<Body>, bool),
    Redirect(String),
    Named(String),
    /// `rewrite` changed the URI: search the locations again (server script not rerun).
    Relocate,
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
pub(crate) async fn process(
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
                                r.extensions_mut().insert(crate::output::OwnHead);
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
                            std::pin::pin!(content(&mut cx, &cur.data, &cur, &mut body)).await
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
                    None => (uri, None),
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
        r.extensions_mut().insert(crate::output::OwnHead);
    }
    Step::Done(r)
}

/// The named captures of the last regex match (`(?<name>…)`: a location's, a
/// `rewrite`'s or an `if`'s) set `$name`.
pub(crate) fn set_named_captures(cx: &mut RequestCtx, names: &[(usize, usize)]) {
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
                r.extensions_mut().insert(crate::output::OwnHead);
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
