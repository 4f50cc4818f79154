//! The `Backend` trait: what a location hands a request to. Built once per
//! location at config load; called per request with the request context and body.
//! Implementors write a plain `async fn handle` under `#[junction_core::async_trait]`
//! (the one boxed future per request a `dyn Backend` costs).

use crate::body::{Body, ReqBody};
use crate::ctx::RequestCtx;
use crate::error::Error;

/// The response type backends produce.
pub type Response = http::Response<Body>;

/// The future [`Backend::handle`] returns: what `async_trait` makes of its `async fn`.
/// A backend on the request path writes `handle` by hand with
/// [`box_pin!`](crate::box_pin), so that its (kilobytes large) future is built in
/// its box instead of being copied there on every request.
pub type HandleFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Error>> + Send + 'a>>;

/// [`Backend::handle`] as the future of `self.run(args)`, built in its box
/// ([`box_pin!`](crate::box_pin)): `handle_by!(|cx, body| run(cx, body))`.
#[macro_export]
macro_rules! handle_by {
    (|$cx:ident, $body:ident| $run:ident($($arg:ident),*)) => {
        fn handle<'s, 'c, 'f>(
            &'s self,
            $cx: &'c mut $crate::ctx::RequestCtx,
            $body: $crate::body::ReqBody,
        ) -> $crate::backend::HandleFuture<'f>
        where
            's: 'f,
            'c: 'f,
            Self: 'f,
        {
            $crate::box_pin!(self.$run($($arg),*))
        }
    };
}

/// Marks a response as a status Junction answers itself (e.g. memcached's 404 on a
/// miss), like nginx's `ngx_http_finalize_request(r, status)`: for a status >= 300 the
/// server replaces the response with its own page for that status, or follows the
/// location's `error_page` for it, even without `*_intercept_errors`. The response's
/// headers other than the body's (`Content-Length`, `Content-Type`, `Content-Encoding`,
/// `Transfer-Encoding`) are kept on that page (a 416's `Content-Range`).
#[derive(Debug, Clone, Copy)]
pub struct Generated;

/// A response extension: close the client connection without writing anything
/// (nginx's `return 444`, `NGX_HTTP_CLOSE`).
#[derive(Debug, Clone, Copy)]
pub struct NoResponse;

/// A content handler: HTTP proxy, FastCGI, uwsgi, SCGI, memcached, static files.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Produces the response for the request in `cx`.
    async fn handle(&self, cx: &mut RequestCtx, body: ReqBody) -> Result<Response, Error>;

    /// `*_intercept_errors`: whether upstream statuses >= 300 may be replaced by `error_page`.
    fn intercept_errors(&self) -> bool {
        false
    }

    /// Whether the backend serves `method`. When it does not, the server answers 405
    /// itself before the request body is touched (nginx's memcached handler answers
    /// `NGX_HTTP_NOT_ALLOWED` for anything but GET and HEAD), so an
    /// `error_page 405 = @app` fallback still gets the body.
    fn allows_method(&self, _method: &http::Method) -> bool {
        true
    }

    /// Whether the backend reads the request body. One that does not (static files) is
    /// handed `ReqBody::Empty`, and the body stays with the request for the internal
    /// redirect it may answer with (`RequestCtx::internal_redirect`: a POST to a
    /// directory reaches its `index.php`). Asked once at config load.
    fn takes_body(&self) -> bool {
        true
    }

    /// Whether this backend is an upstream `*_pass` (for the trailing-slash 301 rule).
    fn is_pass(&self) -> bool {
        true
    }
}
