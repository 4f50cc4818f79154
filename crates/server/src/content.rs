//! The content phase: preaccess (`limit_req`, `limit_conn`) and access (`allow`,
//! `auth_basic`) checks, `try_files`, then the location's content handler, one
//! [`junction_core::backend::Backend`] whatever it is (`LocConf::content`): its
//! `*_pass`, `stub_status` or `api`, or its static files
//! (`crate::static_files::StaticFiles`). A handler answers a response, an error (its
//! status page), or an internal redirect (`RequestCtx::internal_redirect`). Also
//! the request's filesystem paths (`$document_root`, `$request_filename`) under
//! `root`/`alias`, which `try_files` and static files read.

use crate::build::LocConf;
use crate::pages::{log_error, status_response, OwnPage};
use crate::phases::Outcome;
use crate::route::Loc;
use http::StatusCode;
use junction_config::model::LocKind;
use junction_core::body::ReqBody;
use junction_core::ctx::RequestCtx;

pub(crate) fn set_paths(cx: &mut RequestCtx, c: &LocConf, loc: &Loc<LocConf>) {
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

pub(crate) async fn content(
    cx: &mut RequestCtx,
    c: &LocConf,
    loc: &Loc<LocConf>,
    body: &mut Option<ReqBody>,
) -> Outcome {
    // nginx's preaccess and access phases: after the rewrite phase, before try_files
    // and content.
    c.realip.apply(cx);
    if let Some(r) = std::pin::pin!(c.limits.preaccess(cx, c.server_tokens)).await {
        return Outcome::Response(r, true);
    }
    if let Some(r) = std::pin::pin!(c.access.check(cx, c.server_tokens)).await {
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
    // The content handler: the location's backend, or its static files (one path).
    let b = &c.content;
    if !b.allows_method(&cx.method) {
        // Before the body is touched, so `error_page 405 = @app` still has it.
        return Outcome::Response(
            status_response(StatusCode::METHOD_NOT_ALLOWED, c.server_tokens),
            true,
        );
    }
    // A handler that does not read the body (static files) leaves it with the
    // request, for the internal redirect it may answer with.
    let rb = if c.content_takes_body {
        body.take().unwrap_or(ReqBody::Empty)
    } else {
        ReqBody::Empty
    };
    match b.handle(cx, rb).await {
        Ok(r) => {
            if let Some(uri) = cx.internal_redirect.take() {
                return Outcome::Redirect(uri);
            }
            // A page Junction made itself (static files' 403/404/416…) is finalized
            // with its status, as nginx's `ngx_http_finalize_request(r, status)`.
            let own = r.extensions().get::<OwnPage>().is_some();
            Outcome::Response(r, own)
        }
        Err(e) => {
            log_error(cx, &e);
            Outcome::Response(status_response(e.status(), c.server_tokens), true)
        }
    }
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
