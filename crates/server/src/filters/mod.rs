//! Output filters: what nginx's header and body filters do to a response after the
//! content handler made it, for every backend and static files alike. Built once
//! per location at load ([`FilterConf`]); applied per response in the output stage
//! ([`apply`]), in nginx's filter order: headers (`expires`, then the server's `add_header`) → gzip /
//! brotli.
//!
//! ## Layout
//! - `expires`: ngx_http_headers_filter_module's `expires` (`Expires`,
//!   `Cache-Control`), run before `add_header` as in nginx.
//! - `gzip`: ngx_http_gzip_filter_module (and the Brotli family beside it): the
//!   decision from the request, the response head and `gzip_*`; the streaming
//!   compressed body; `gzip_static` / `brotli_static` for the static handler.

pub(crate) mod expires;
pub(crate) mod gzip;

use junction_config::model::{BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::body::Body;
use junction_core::ctx::RequestCtx;

/// A location's output filter settings.
#[derive(Debug, Default)]
pub struct FilterConf {
    /// `gzip*` and `brotli*`.
    pub(crate) compress: gzip::CompressConf,
    /// `expires`.
    expires: expires::ExpiresConf,
}

/// Reads the filter directives that apply at `scope`.
pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<FilterConf, ConfigError> {
    Ok(FilterConf {
        compress: gzip::CompressConf::build(scope)?,
        expires: expires::ExpiresConf::build(scope, bx)?,
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
    gzip::filter(resp, cx, &f.compress)
}
