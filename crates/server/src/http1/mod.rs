//! Junction's own client-side HTTP/1.x connection, on `httparse` + tokio (hyper
//! stays for HTTP/2). It follows nginx's `ngx_http_request.c` and
//! `ngx_http_parse.c` where they decide what a client sees:
//!
//! - `parse`: the request head — `httparse` for the syntax, then nginx's own rules
//!   (method letters, version 505, `Content-Length`/`Transfer-Encoding`, invalid
//!   and underscored header names) — into `http::request::Parts` whose header
//!   values slice the one `Bytes` the head was read into.
//! - `body`: the request body decoder (`Content-Length`, chunked with
//!   `ngx_http_parse_chunked`'s rules).
//! - `write`: the response head (nginx's reason phrases, `Connection`,
//!   `Keep-Alive`) and body framing, written with `writev` (head and a small body
//!   in one call).
//! - `conn`: the connection loop — nginx's buffer model
//!   (`client_header_buffer_size`, then `large_client_header_buffers`; nothing
//!   held while a keep-alive connection idles), its timers
//!   (`client_header_timeout` from the first byte, `keepalive_timeout`,
//!   `keepalive_requests`, `keepalive_time`, `send_timeout`, lingering close),
//!   the body read on demand (`100 Continue` only then), pipelining in order, and
//!   the raw connection handed over after a `101`.

mod body;
pub(crate) mod conn;
mod parse;
mod write;

use junction_config::model::Scope;
use junction_config::tree::ConfigError;
use std::time::Duration;

/// A request extension: the request target exactly as sent, when it holds bytes
/// `http::Uri` refuses (raw UTF-8, `"`, `{` …); the `Uri` has them percent-encoded.
#[derive(Debug, Clone)]
pub struct RawTarget(pub bytes::Bytes);

/// `lingering_close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lingering {
    /// `off`: close at once.
    Off,
    /// `on` (default): linger when the client may still be sending.
    On,
    /// `always`.
    Always,
}

/// The connection directives nginx also reads at location level (the location a
/// request ends in decides what follows it on the connection).
pub(crate) const LOCATION_CONN: &[&str] = &[
    "keepalive_timeout",
    "keepalive_requests",
    "keepalive_time",
    "send_timeout",
    "lingering_close",
    "lingering_time",
    "lingering_timeout",
    "reset_timedout_connection",
];

/// The client connection's settings of one server. The head is read under the
/// default server's of the listen socket (as nginx, before the request's server
/// is known); keep-alive, sending and lingering follow the server the request chose.
#[derive(Debug, Clone)]
pub struct ConnConf {
    /// `client_header_buffer_size` (1k).
    pub header_buffer: usize,
    /// `large_client_header_buffers` number (4).
    pub large_num: usize,
    /// `large_client_header_buffers` size (8k).
    pub large_size: usize,
    /// `client_header_timeout` (60s).
    pub header_timeout: Duration,
    /// `keepalive_timeout` (75s; zero: no keep-alive).
    pub keepalive_timeout: Duration,
    /// The optional second argument of `keepalive_timeout` (`Keep-Alive: timeout=N`).
    pub keepalive_header: Option<u64>,
    /// `keepalive_requests` (1000).
    pub keepalive_requests: u64,
    /// `keepalive_time` (1h).
    pub keepalive_time: Duration,
    /// `send_timeout` (60s).
    pub send_timeout: Duration,
    /// `client_body_timeout` (60s).
    pub body_timeout: Duration,
    /// `lingering_close`.
    pub lingering: Lingering,
    /// `lingering_time` (30s).
    pub lingering_time: Duration,
    /// `lingering_timeout` (5s).
    pub lingering_timeout: Duration,
    /// `reset_timedout_connection` (off).
    pub reset_timedout: bool,
    /// `ignore_invalid_headers` (on).
    pub ignore_invalid_headers: bool,
    /// `underscores_in_headers` (off).
    pub underscores_in_headers: bool,
    /// `server_tokens` of the default server (pages written before a server is chosen).
    pub server_tokens: bool,
    /// `merge_slashes` (on).
    pub merge_slashes: bool,
    /// The `http2_*` settings.
    pub h2: crate::http2::H2Conf,
}

impl ConnConf {
    /// Reads the settings at a server's scope.
    pub fn from_scope(scope: &Scope<'_>, server_tokens: bool) -> Result<ConnConf, ConfigError> {
        use junction_config::model::{err, invalid};
        use junction_config::values::{parse_size, parse_time_ms};
        let (large_num, large_size) = match scope.get("large_client_header_buffers") {
            Some(d) => {
                let (Some(n), Some(s)) = (d.args.first(), d.args.get(1)) else {
                    return Err(err(
                        &d.span,
                        "invalid number of arguments in \"large_client_header_buffers\" directive",
                    ));
                };
                let num: usize = n.value.parse().map_err(|_| invalid(d, n))?;
                let size = parse_size(&s.value).ok_or_else(|| invalid(d, s))? as usize;
                if num == 0 || size == 0 {
                    return Err(invalid(d, n));
                }
                (num, size)
            }
            None => (4, 8192),
        };
        let (keepalive_timeout, keepalive_header) = match scope.get("keepalive_timeout") {
            Some(d) => {
                let t = match d.args.first() {
                    Some(a) => parse_time_ms(&a.value).ok_or_else(|| invalid(d, a))?,
                    None => 75_000,
                };
                let h = match d.args.get(1) {
                    Some(a) => Some(parse_time_ms(&a.value).ok_or_else(|| invalid(d, a))? / 1000),
                    None => None,
                };
                (Duration::from_millis(t), h)
            }
            None => (Duration::from_secs(75), None),
        };
        let lingering = match scope.arg("lingering_close") {
            None => Lingering::On,
            Some((d, a)) => match a.value.as_str() {
                "on" => Lingering::On,
                "off" => Lingering::Off,
                "always" => Lingering::Always,
                _ => return Err(invalid(d, a)),
            },
        };
        let keepalive_requests = match scope.arg("keepalive_requests") {
            None => 1000,
            Some((d, a)) => a.value.parse().map_err(|_| invalid(d, a))?,
        };
        Ok(ConnConf {
            header_buffer: scope.size("client_header_buffer_size", 1024)?.max(1) as usize,
            large_num,
            large_size,
            header_timeout: scope.time("client_header_timeout", Duration::from_secs(60))?,
            keepalive_timeout,
            keepalive_header,
            keepalive_requests,
            keepalive_time: scope.time("keepalive_time", Duration::from_secs(3600))?,
            send_timeout: scope.time("send_timeout", Duration::from_secs(60))?,
            body_timeout: scope.time("client_body_timeout", Duration::from_secs(60))?,
            lingering,
            lingering_time: scope.time("lingering_time", Duration::from_secs(30))?,
            lingering_timeout: scope.time("lingering_timeout", Duration::from_secs(5))?,
            reset_timedout: scope.flag("reset_timedout_connection", false)?,
            ignore_invalid_headers: scope.flag("ignore_invalid_headers", true)?,
            underscores_in_headers: scope.flag("underscores_in_headers", false)?,
            server_tokens,
            merge_slashes: scope.flag("merge_slashes", true)?,
            h2: crate::http2::H2Conf::from_scope(scope)?,
        })
    }

    /// The most a request head may take (`large_client_header_buffers` in all).
    pub(crate) fn head_limit(&self) -> usize {
        self.large_num
            .saturating_mul(self.large_size)
            .max(self.header_buffer)
    }
}
