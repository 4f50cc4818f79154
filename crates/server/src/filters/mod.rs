//! Output filters: what nginx's header and body filters do to a response after the
//! content handler made it, for every backend and static files alike. Built once
//! per location at load ([`FilterConf`]); applied per response in the output stage
//! ([`apply`]), in nginx's filter order: headers (`expires`, then the server's `add_header`) → charset →
//! gzip / brotli.
//!
//! ## Layout
//! - `expires`: ngx_http_headers_filter_module's `expires` (`Expires`,
//!   `Cache-Control`), run before `add_header` as in nginx.
//! - `charset`: ngx_http_charset_filter_module's decision (which charset, whether to
//!   convert).
//! - `charset_map`: `charset_map` tables and the streaming conversion (8-bit ↔ 8-bit,
//!   8-bit ↔ UTF-8).
//! - `deflate`: the gzip encoder over reused (per-thread pooled) deflate states.
//! - `gzip`: ngx_http_gzip_filter_module (and the Brotli family beside it): the
//!   decision from the request, the response head and `gzip_*`; the streaming
//!   compressed body; `gzip_static` / `brotli_static` for the static handler.

pub(crate) mod charset;
mod charset_map;
mod deflate;
pub(crate) mod expires;
pub(crate) mod gzip;

use junction_config::model::{BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::body::Body;
use junction_core::ctx::RequestCtx;

/// `gzip_types`, `charset_types` …: the MIME types a filter applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Types {
    /// `*`.
    Any,
    /// Lower-case MIME types.
    List(Vec<String>),
}

impl Types {
    /// Whether `ctype` (lower case, without parameters) is one of them.
    pub(crate) fn matches(&self, ctype: &str) -> bool {
        match self {
            Types::Any => true,
            Types::List(l) => !ctype.is_empty() && l.iter().any(|t| t == ctype),
        }
    }
}

/// A `*_types` directive as nginx's `ngx_http_types_slot` reads it: the first default
/// type is always in the list (`text/html`), `*` is any type; not written: `default`.
pub(crate) fn types(scope: &Scope<'_>, name: &str, default: &[&str]) -> Types {
    let Some(d) = scope.get(name) else {
        return Types::List(default.iter().map(|s| (*s).to_string()).collect());
    };
    if d.args.iter().any(|a| a.value == "*") {
        return Types::Any;
    }
    let mut l: Vec<String> = default.iter().take(1).map(|s| (*s).to_string()).collect();
    for a in &d.args {
        let t = a.value.to_ascii_lowercase();
        if !l.contains(&t) {
            l.push(t);
        }
    }
    Types::List(l)
}

/// The type of a response without its parameters, lower case.
pub(crate) fn base_type(h: &http::HeaderMap) -> String {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// A location's output filter settings.
#[derive(Debug, Default)]
pub struct FilterConf {
    /// `gzip*` and `brotli*`.
    pub(crate) compress: std::sync::Arc<gzip::CompressConf>,
    /// `expires`.
    expires: expires::ExpiresConf,
    /// `charset*`.
    charset: charset::CharsetConf,
}

/// Reads the filter directives that apply at `scope`.
pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<FilterConf, ConfigError> {
    Ok(FilterConf {
        compress: std::sync::Arc::new(gzip::CompressConf::build(scope)?),
        expires: expires::ExpiresConf::build(scope, bx)?,
        charset: charset::CharsetConf::build(scope, bx)?,
    })
}

/// The headers filter's part that runs before `add_header` (`expires`).
pub(crate) fn headers(resp: &mut http::Response<Body>, cx: &RequestCtx, f: &FilterConf) {
    expires::apply(resp, cx, &f.expires);
}

/// The output stage's filters over a response about to be sent.
pub(crate) fn apply(
    resp: http::Response<Body>,
    cx: &mut RequestCtx,
    f: &FilterConf,
) -> http::Response<Body> {
    let mut resp = resp;
    charset::apply(&mut resp, cx, &f.charset);
    gzip::filter(resp, cx, &f.compress)
}
