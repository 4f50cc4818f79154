//! `proxy_pass_trailers on` (nginx 1.27.2+): the trailer fields of a chunked upstream
//! response go to the client after the body, without the ones `proxy_hide_header` (and
//! its defaults) hides, as `ngx_http_upstream_process_trailers`. The codec keeps them
//! only under this directive ([`crate::codec::HttpCodec::keeping_trailers`]), so
//! `$upstream_trailer_NAME` has a value only then, as in nginx. The client side sends
//! them on a chunked HTTP/1.1 response (or HTTP/2); others drop them, as nginx.

use bytes::Bytes;
use http::HeaderName;
use http_body_util::BodyExt;
use junction_core::body::Body;
use std::sync::Arc;

/// The response body with the hidden fields taken out of its trailers.
pub(crate) fn filter(body: Body, hide: &Arc<[HeaderName]>) -> Body {
    let hide = hide.clone();
    body.map_frame(move |f: http_body::Frame<Bytes>| match f.into_trailers() {
        Ok(t) => {
            // Rebuilt rather than removed from: the fields keep the upstream's order.
            let mut out = http::HeaderMap::with_capacity(t.len());
            for (k, v) in &t {
                if !hide.contains(k) {
                    out.append(k.clone(), v.clone());
                }
            }
            http_body::Frame::trailers(out)
        }
        Err(f) => f,
    })
    .boxed_unsync()
}
