//! Output filters: what nginx's header and body filters do to a response after the
//! content handler made it, for every backend and static files alike. Built once
//! per location at load ([`FilterConf`]); applied per response in the output stage
//! ([`apply`]), in nginx's filter order: headers (`expires`) → gzip / brotli.
//!
//! ## Layout
//! - `gzip`: ngx_http_gzip_filter_module (and the Brotli family beside it): the
//!   decision from the request, the response head and `gzip_*`; the streaming
//!   compressed body; `gzip_static` / `brotli_static` for the static handler.

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
}

/// Reads the filter directives that apply at `scope`.
pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<FilterConf, ConfigError> {
    let _ = bx;
    Ok(FilterConf {
        compress: gzip::CompressConf::build(scope)?,
    })
}

/// The output stage's filters over a response about to be sent.
pub(crate) fn apply(
    resp: http::Response<Body>,
    cx: &mut RequestCtx,
    f: &FilterConf,
) -> http::Response<Body> {
    gzip::filter(resp, cx, &f.compress)
}
