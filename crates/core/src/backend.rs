//! The `Backend` trait: what a location hands a request to. Built once per
//! location at config load; called per request with the request context and body.

use crate::body::{Body, ReqBody};
use crate::ctx::RequestCtx;
use crate::error::Error;
use std::future::Future;
use std::pin::Pin;

/// A boxed, type-erased future (the one allocation per request a `dyn Backend` costs).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The response type backends produce.
pub type Response = http::Response<Body>;

/// Marks a response produced by Junction itself (e.g. memcached's 404 on a miss):
/// `error_page` applies to it even without `*_intercept_errors`.
#[derive(Debug, Clone, Copy)]
pub struct Generated;

/// A content handler: HTTP proxy, FastCGI, uwsgi, SCGI, memcached, static files.
pub trait Backend: Send + Sync + 'static {
    /// Produces the response for the request in `cx`.
    fn handle<'a>(
        &'a self,
        cx: &'a mut RequestCtx,
        body: ReqBody,
    ) -> BoxFuture<'a, Result<Response, Error>>;

    /// `*_intercept_errors`: whether upstream statuses >= 300 may be replaced by `error_page`.
    fn intercept_errors(&self) -> bool {
        false
    }

    /// Whether this backend is an upstream `*_pass` (for the trailing-slash 301 rule).
    fn is_pass(&self) -> bool {
        true
    }
}
