//! The request an error-log line belongs to, kept the way nginx keeps it: a
//! pointer to the request, read only when a line is written. Nothing is formatted
//! for a request that logs nothing (a `tracing` span would format its fields when it
//! is made, and enter and leave its registry on every poll).
//!
//! [`in_request`] wraps a request's future (and the body relay task it spawns):
//! while it is polled, [`current`] names its [`ReqLog`] on this thread, and the
//! error log writes `*CONN MESSAGE, client: …, server: …, request: "…", host: "…"`
//! from it. [`set_level`] records which `error_log` set the request's location uses.

use crate::ctx::{ConnInfo, RequestCtx};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// What the error log writes after a request's messages.
#[derive(Debug)]
pub struct ReqLog {
    /// The client connection (`*ID`, `client:`).
    pub conn: Arc<ConnInfo>,
    /// `server:`.
    pub server: Arc<str>,
    /// The method of the request line.
    pub method: http::Method,
    /// The target as sent.
    pub request_uri: Arc<str>,
    /// The version of the request line.
    pub version: http::Version,
    /// `host:`.
    pub host: Arc<str>,
    /// The `error_log` set of the location the request is in (0: the main level's).
    elog: AtomicU64,
}

impl ReqLog {
    /// The context of `cx` (its server and host chosen).
    pub fn of(cx: &RequestCtx) -> Arc<ReqLog> {
        Arc::new(ReqLog {
            conn: cx.conn.clone(),
            server: cx.server_name.clone(),
            method: cx.method.clone(),
            request_uri: cx.request_uri.clone(),
            version: cx.version,
            host: cx.host.clone(),
            elog: AtomicU64::new(0),
        })
    }

    /// The `error_log` set index recorded by [`set_level`] (0: none).
    pub fn level(&self) -> u64 {
        self.elog.load(Ordering::Relaxed)
    }

    /// Writes nginx's request context around `message` (and `upstream`, when one
    /// is named): `*5 MESSAGE, client: …, server: …, request: "GET / HTTP/1.1",
    /// upstream: "…", host: "…"`.
    pub fn write_line(&self, out: &mut String, message: &str, upstream: &str) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "*{} {}, client: {}, server: {}, request: \"{} {} {:?}\"",
            self.conn.id,
            message,
            self.conn.client(),
            self.server,
            self.method,
            self.request_uri,
            self.version
        );
        if !upstream.is_empty() {
            let _ = write!(out, ", upstream: \"{upstream}\"");
        }
        let _ = write!(out, ", host: \"{}\"", self.host);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<ReqLog>>> = const { RefCell::new(None) };
}

/// The request being polled on this thread, if any.
pub fn current() -> Option<Arc<ReqLog>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether a request is being polled on this thread.
pub fn polling_request() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// Records the `error_log` set (an index; 0: the main level's) of the location the
/// current request is in.
pub fn set_level(id: u64) {
    CURRENT.with(|c| {
        if let Some(r) = c.borrow().as_ref() {
            r.elog.store(id, Ordering::Relaxed);
        }
    });
}

pin_project_lite::pin_project! {
    /// A future polled as the request `log` (see [`in_request`]).
    pub struct InRequest<F> {
        #[pin]
        fut: F,
        log: Arc<ReqLog>,
    }
}

/// Runs `fut` as the request `log`: the error log lines it writes carry its context.
pub fn in_request<F: Future>(fut: F, log: Arc<ReqLog>) -> InRequest<F> {
    InRequest { fut, log }
}

/// Puts the previous request back when a poll ends (also when it unwinds).
struct Restore(Option<Arc<ReqLog>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let prev = CURRENT.with(|c| c.borrow_mut().replace(this.log.clone()));
        let _restore = Restore(prev);
        this.fut.poll(cx)
    }
}
