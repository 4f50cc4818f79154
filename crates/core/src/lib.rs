//! # junction-core
//!
//! What every part of Junction shares, written once. Nothing here knows a
//! protocol: protocol crates plug in through [`codec::UpstreamCodec`] and
//! [`backend::Backend`].
//!
//! ## Layout
//! - `error`: the one error type (which side failed, what failed, whether the
//!   request may be made again: `Retry`, its source) and its single mapping to an
//!   HTTP status.
//! - `vars`, `ctx`: variables compiled once into templates; the request context
//!   they are evaluated against.
//! - `map`: `map` variables (lookup, lazy per-request cache).
//! - `backend`: the `Backend` trait a location dispatches to (every location has
//!   one: a protocol's `*_pass`, or the server's static files).
//! - `codec`: the `UpstreamCodec` trait each protocol implements (framing only).
//! - `upstream`: addresses, connect with bind and timeout, keepalive pools,
//!   server groups, their health counters, `max_conns` and the queue.
//! - `upstream_tls`: TLS to upstreams (`proxy_ssl_*`): one rustls client per distinct
//!   settings, built at load; the handshake of a new connection; the pool key.
//! - `balance`: nginx's balancing methods (round robin, least_conn, ip_hash, hash
//!   [consistent], random [two]).
//! - `health`: active health checks (a probe per protocol, one task per group).
//! - `logctx`: the request an error-log line belongs to (read only when a line is
//!   written; nothing formatted per request).
//! - `resolver`: nginx's `resolver` (hickory-resolver on the configured servers, its
//!   own TTL/`valid=` cache, nginx's error codes); `*_pass` with variables uses it.
//! - `discovery`: `server NAME … resolve`: a group whose servers follow DNS while
//!   running (generations swapped in the background, health state kept).
//! - `exchange`: the one upstream driver (send, read head, retry, relay: what the
//!   upstream has already sent is read without waiting before a relay task is started,
//!   so a small response, even one ended by the upstream's close, needs none); its retry
//!   rules are pinned in-process in `exchange_tests.rs` over a scripted loopback peer.
//! - `pass`: a location's `*_pass` at request time: the shared `PREFIX_*` family as
//!   data (body preparation, hidden response headers) and the one CGI-style handler
//!   (uwsgi, SCGI) over a protocol's head encoder and codec.
//! - `relay`: response buffering (memory → temp file, or unbuffered).
//! - `mime`: the one Content-Type lookup (extension as nginx finds it → type).
//! - `regex`: nginx's regular expressions (PCRE2), one type for every user.
//! - `range`: `Range: bytes=…` as nginx's range filter reads it; cutting a body to it.
//! - `body`: request bodies (limits, buffering, replay) and the response body type.
//! - `body_file`: `client_body_in_file_only` (the whole body in a named file,
//!   `$request_body_file`).
//! - `client`: what the client connection hands a request: its body as it is
//!   read, the raw connection after a `101`.
//! - `cgi`: CGI-style params (FastCGI, uwsgi, SCGI), evaluated per request into one
//!   buffer of (name, value) spans (`Params`) that each protocol encodes from.
//! - `cgi_head`: the one CGI response-head parser (uwsgi and SCGI: status line or CGI
//!   headers; FastCGI: a CGI header block).
//! - `cgi_response`: `ResponseBodyUntilClose`, the codec state of a response whose body
//!   runs until the upstream closes (uwsgi, SCGI).
//! - `codec_testing` (tests, or the `testing` feature): drive a codec at every split.
//! - `time`: log time formats, the `Date` header, and the timeouts that arm a timer
//!   only when an I/O is not ready at once.
//! - `header_set`: header-name sets tested in a few instructions (`*_hide_header`),
//!   and the fast path for the names peers send most.
//! - `stats`: live counters (connections, requests, durations) for `stub_status`
//!   and `metrics`.
//! - `proxy_protocol`: the PROXY protocol header (v1 text, v2 binary), a pure parser.
//! - `basic_auth`: `Authorization: Basic` credentials (`$remote_user`, auth_basic).
//! - `tls`: what a client connection's TLS handshake established (`TlsInfo`, once per
//!   connection) and the `$ssl_*` variables read from it.
#![forbid(unsafe_code)]

pub mod backend;
pub mod balance;
pub mod basic_auth;
pub mod body;
pub mod body_file;
pub mod cgi;
pub mod cgi_head;
pub mod cgi_response;
pub mod client;
pub mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod codec_testing;
pub mod ctx;
pub mod discovery;
pub mod error;
pub mod exchange;
pub mod header_set;
pub mod health;
pub mod logctx;
pub mod map;
pub mod mime;
pub mod pass;
pub mod proxy_protocol;
pub mod range;
pub mod regex;
pub mod relay;
pub mod resolver;
pub mod stats;
pub mod time;
pub mod tls;
pub mod upstream;
pub mod upstream_tls;
pub mod vars;

pub use async_trait::async_trait;
pub use error::{Error, ErrorKind, Result, Retry, Side};

/// The machine's host name (`$hostname`), read once.
pub fn hostname() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// `Box::pin(expr)` with the box allocated *before* `expr` is evaluated, so that the
/// compiler can build a large future (an `async fn`'s state) straight into the heap
/// instead of on the stack and then copying all of it (`Box::pin(f)` must evaluate
/// `f` first). Used where a request's future is boxed once per request.
#[macro_export]
macro_rules! box_pin {
    ($e:expr) => {{
        let slot = ::std::boxed::Box::new_uninit();
        // Bound first: an expected `dyn` type must not reach `new_uninit`.
        let pinned = ::std::boxed::Box::into_pin(::std::boxed::Box::write(slot, $e));
        pinned
    }};
}

/// `Box::new(expr)` with the box allocated before `expr` is evaluated (see
/// [`box_pin!`]): a large value is built in the heap, not copied there.
#[macro_export]
macro_rules! box_new {
    ($e:expr) => {{
        let slot = ::std::boxed::Box::new_uninit();
        let boxed = ::std::boxed::Box::write(slot, $e);
        boxed
    }};
}
