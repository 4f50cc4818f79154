//! # junction-core
//!
//! What every part of Junction shares, written once. Nothing here knows a
//! protocol: protocol crates plug in through [`codec::UpstreamCodec`] and
//! [`backend::Backend`].
//!
//! ## Layout
//! - `error`: the one error type (which side failed, what failed) and its single
//!   mapping to an HTTP status.
//! - `vars`, `ctx`: variables compiled once into templates; the request context
//!   they are evaluated against.
//! - `backend`: the `Backend` trait a location dispatches to.
//! - `codec`: the `UpstreamCodec` trait each protocol implements (framing only).
//! - `upstream`: addresses, connect with bind and timeout, keepalive pools,
//!   server groups, their health counters, `max_conns` and the queue.
//! - `balance`: nginx's balancing methods (round robin, least_conn, ip_hash, hash
//!   [consistent], random [two]).
//! - `health`: active health checks (a probe per protocol, one task per group).
//! - `exchange`: the one upstream driver (send, read head, retry, relay).
//! - `relay`: response buffering (memory → temp file, or unbuffered).
//! - `range`: `Range: bytes=…` as nginx's range filter reads it; cutting a body to it.
//! - `body`: request bodies (limits, buffering, replay) and the response body type.
//! - `cgi`: CGI-style params (FastCGI, uwsgi, SCGI).
//! - `time`: log time formats and the `Date` header.
//! - `proxy_protocol`: the PROXY protocol header (v1 text, v2 binary), a pure parser.
//! - `basic_auth`: `Authorization: Basic` credentials (`$remote_user`, auth_basic).
#![forbid(unsafe_code)]

pub mod backend;
pub mod balance;
pub mod basic_auth;
pub mod body;
pub mod cgi;
pub mod codec;
pub mod ctx;
pub mod error;
pub mod exchange;
pub mod health;
pub mod proxy_protocol;
pub mod range;
pub mod relay;
pub mod time;
pub mod upstream;
pub mod vars;

pub use error::{Error, ErrorKind, Result, Side};

/// The machine's host name (`$hostname`), read once.
pub fn hostname() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}
