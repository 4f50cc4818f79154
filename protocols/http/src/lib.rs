//! # junction-http
//!
//! The HTTP reverse proxy backend (`proxy_pass`).
//!
//! ## Layout
//! - `codec`: HTTP/1.x client framing over the shared exchange driver (request
//!   body framing, response head within `proxy_buffer_size`, body by length,
//!   chunks or close).
//! - `backend`: the `proxy_pass` location handler: the URI rule (NGINX-SEMANTICS
//!   §4–5), request headers (`proxy_set_header` over the defaults `Host:
//!   $proxy_host` and no `Connection`, hop-by-hop removal), response filtering
//!   (hidden headers, `proxy_redirect`), `proxy_method`, `proxy_set_body`.
//! - `cookie`: `proxy_cookie_domain`, `proxy_cookie_path`, `proxy_cookie_flags` on
//!   the upstream's `Set-Cookie`.
//! - `trailers`: `proxy_pass_trailers` (the upstream's chunked trailers to the
//!   client, hidden fields dropped).
//! - `probe`: the active health probe (`GET uri`), over TLS for `https://` groups.
//! - [`directives`]: the `proxy_*` directives for the registry (its own lines, the
//!   `proxy_ssl_*` ones, and the shared family's part it has).
//! - TLS (`proxy_pass https://…`): the `proxy_ssl_*` directives are read by
//!   `junction_config::upstream_tls` into the location's `UpstreamConf::tls`; the
//!   handshake and the pool key live in `junction_core::upstream_tls`, so the exchange
//!   is the same over TLS.
//! - `tunnel`: after `101 Switching Protocols` (WebSocket), bytes both ways between
//!   the client and the upstream until either closes or both are idle for
//!   `proxy_read_timeout`.
//!
//! ## Lifecycle of a request
//! build (load time) → `HttpProxy::handle`: body buffered or streamed per
//! `proxy_request_buffering` → request head encoded → `exchange` (pick, connect,
//! send, head) → headers filtered → body relayed by the shared spool.
#![forbid(unsafe_code)]

pub mod backend;
pub mod codec;
mod cookie;
pub mod directives;
mod probe;
mod trailers;
mod tunnel;

pub use backend::{build, HttpProxy};
