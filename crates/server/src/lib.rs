//! # junction-server
//!
//! The HTTP front of Junction: what happens between accepting a client and
//! handing the request to a backend, and after.
//!
//! ## Layout
//! A request's way, one module per stage: `listen` (accept) → `http1` / `http2` (the
//! connection) → `request` (the context built and checked, the server chosen) →
//! `phases` (rewrite, locations, internal redirects, `error_page`) → `content` (one
//! `Backend` per location: a `*_pass` or `static_files`) → `pages` (what Junction
//! answers itself) and `output` (headers, filters, access log).
//!
//! - `build`: directive tree → [`build::Runtime`] (servers, the location tree
//!   with compiled settings and backends, listen addresses, logs), once at load;
//!   [`build_all`] reports every error it can (one per `upstream`/`server` block) for
//!   `junction -t`, after the registry's walk reported every syntax, value and
//!   not-yet-supported error.
//! - [`directives`]: the directives of the nginx modules this crate implements (TLS,
//!   HTTP/2, logs, rewrite, compression, access, limits, status…), one line each, for
//!   the registry the binary assembles (`junction_config::registry::Registry`).
//! - `route`: `server_name` selection, location matching (nginx's order), URI
//!   normalization.
//! - `listen`: binding, the accept loop (`worker_connections`), the pre-HTTP
//!   hook's place, graceful/fast stop.
//! - `listeners`: the process's listening sockets across reloads (kept, bound, closed
//!   by address) and binary upgrades (inherited by address), and the worker loop that
//!   takes sockets added and removed while it runs.
//! - `http1`: Junction's own HTTP/1.x client connection (parsing, buffers,
//!   timers, body on demand, response writing, upgrade handover).
//! - `http2`: HTTP/2 to clients on hyper's HTTP/2 server (h2c with prior knowledge
//!   on a plain listen, and the entry the TLS side calls when ALPN chose `h2`): each
//!   stream through `request::handle`, nginx's connection rules (GOAWAY, idle timer,
//!   stream limits), `http2_*` directives.
//! - `serve`: what a connection's requests share (`Shared`, [`Stop`]), and the old
//!   paths (`serve::handle`, `serve::status_response`, …) re-exported for the
//!   connections.
//! - `request`: the request context built from the parsed head and checked (Host,
//!   `Content-Length` with `Transfer-Encoding`, header and URI length), the server
//!   chosen; `request::handle` is the entry both connections call.
//! - `phases`: `phases::process`, the request's way through the locations: the
//!   server and location rewrite phases, `internal`, the body limit, internal
//!   redirects, named locations, `error_page` (nginx's limit of 10 URI changes),
//!   `return`.
//! - `content`: the preaccess/access checks, `try_files`, then the content handler
//!   on one path: every location has one `Backend` (`LocConf::content`), its
//!   `*_pass` or its static files; `$document_root` and `$request_filename`.
//! - `pages`: status responses, nginx's error page bodies and reason phrases, the
//!   server signature and the page frame (written once, for `Server`, every status
//!   page and the 494–497 pages of `http1` and `tls`), the error line logged where
//!   an error becomes a response.
//! - `output`: the output headers (`Server`, `Date`, `add_header`), the output
//!   filters, the access log written when the body ends.
//! - `map`: `map {}` blocks → the runtime maps of `core::map`, once at load.
//! - `rewrite`: ngx_http_rewrite_module (`set`, `rewrite`, `return`, `break`,
//!   `if`): compiled scripts per server/location, run in nginx's phase order.
//! - `static_files`: the default content handler, a `Backend` like the others
//!   (`StaticFiles`, built per location at load: `index`, `autoindex`, types, ETag,
//!   conditional requests, ranges, `gzip_static`), serving `$request_filename`.
//! - `access`, `auth_basic`: the access phase (`allow`/`deny`, `auth_basic`, `satisfy`,
//!   `limit_except`).
//! - `limits`, `limit_req`, `limit_conn`: the preaccess phase (`limit_req`, `limit_conn`)
//!   and `limit_rate` on the response body.
//! - `proxy_protocol`: reads the PROXY protocol header of a `listen … proxy_protocol`
//!   connection (one call, before HTTP).
//! - `tls`: `listen … ssl` (rustls): certificates and `ssl_*` settings built at load,
//!   the handshake after the PROXY protocol header, SNI → server, `$ssl_*` facts,
//!   the 495/496/497 checks; the ALPN dispatch point.
//! - `acme`: `acme_issuer`/`acme_certificate` (nginx's ACME module): certificates
//!   ordered, renewed and kept in `state_path` by a background task each, HTTP-01
//!   answered by the plain listeners, served through `tls` without a restart.
//! - `tls_offered`: `$ssl_ciphers`/`$ssl_curves` from the client's ClientHello.
//! - `ocsp`: OCSP stapling fetched from the responder (`ssl_stapling on`): the request
//!   built at load, one refresh task per certificate (spawned by the binary), the
//!   response checked (`ssl_stapling_verify`) before the handshake staples it.
//! - `realip`: the client address from `X-Forwarded-For`/`X-Real-IP` (`set_real_ip_from`).
//! - `autoindex`: directory listings (`autoindex on`) in html, json, jsonp, xml.
//! - `filters`: output filters over every response (gzip/Brotli, …), built per
//!   location at load.
//! - `log`: access and error logs, written by background threads; reopen on SIGUSR1.
//! - `log_format`: `log_format … escape=default|json|none`, compiled at load; the
//!   escaping of variable values into a log line.
//! - `error_log`: the error log's `tracing` layer; it ends every line of a request
//!   as nginx's do (`client: …, server: …, request: …`) from the request being
//!   polled (`junction_core::logctx`, formatted only when a line is written).
//! - `syslog`: `syslog:server=…` targets of `error_log` and `access_log` (RFC 3164
//!   datagrams over UDP or a unix socket, as nginx's `ngx_syslog.c`).
//! - `api`: the `api` handler, a read-only JSON status API in nginx Plus's shape
//!   (version 9) over the same counters as `status`.
//! - `status`: the `stub_status` and `metrics` handlers (counters in
//!   `junction_core::stats`).
#![forbid(unsafe_code)]

mod access;
pub mod acme;
pub mod api;
mod auth_basic;
mod autoindex;
pub mod build;
mod content;
pub mod directives;
pub mod error_log;
mod filters;
pub mod http1;
pub mod http2;
mod limit_conn;
mod limit_req;
mod limits;
pub mod listen;
pub mod listeners;
pub mod log;
pub mod log_format;
mod map;
pub mod ocsp;
mod output;
mod pages;
mod phases;
mod proxy_protocol;
mod realip;
mod request;
pub mod rewrite;
pub mod route;
pub mod serve;
mod static_files;
pub mod status;
pub mod syslog;
mod tls;
mod tls_offered;

pub use build::{build, build_all, Runtime};
pub use listen::{bind_all, serve};
pub use serve::Stop;
