//! `proxy_pass_trailers on` (nginx 1.27.2+): the trailer fields of a chunked upstream
//! response go to the client after the body, without the ones `proxy_hide_header` (and
//! its defaults) hides, as `ngx_http_upstream_process_trailers`. The codec keeps them
//! only under this directive ([`crate::codec::HttpCodec::keeping_trailers`]), so
//! `$upstream_trailer_NAME` has a value only then, as in nginx. The client side sends
//! them on a chunked HTTP/1.1 response (or HTTP/2); others drop them, as nginx.

use bytes::Bytes;
use http_body_util::BodyExt;
use junction_core::body::Body;
use junction_core::header_set::HeaderSet;
use std::sync::Arc;

/// The response body with the hidden fields taken out of its trailers (in their
/// order, as `ngx_http_upstream_process_trailers`).
pub(crate) fn filter(body: Body, hide: &Arc<HeaderSet>) -> Body {
    let hide = hide.clone();
    body.map_frame(move |f: http_body::Frame<Bytes>| match f.into_trailers() {
        Ok(t) => http_body::Frame::trailers(hide.remove_from(t)),
        Err(f) => f,
    })
    .boxed_unsync()
}
