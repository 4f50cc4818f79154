//! # junction-uwsgi
//!
//! The uwsgi protocol (nginx `ngx_http_uwsgi_module`). The response head parser and the
//! body-until-close decoding state are shared with SCGI and FastCGI and live in core
//! (`junction_core::cgi_head`, `junction_core::cgi_response`).
//!
//! ## Layout
//! - [`codec`]: the request packet ([`encode_request_head`]: modifier1, u16 LE datasize,
//!   modifier2, then u16-length-prefixed vars; > 65535 bytes of vars is an
//!   `ErrorKind::Encode` error) and [`UwsgiCodec`], the per-request [`UpstreamCodec`].
//! - `backend`: the location's `uwsgi_pass` (core's `CgiPass` over the uwsgi packet);
//!   `suwsgi://` adds TLS with the `uwsgi_ssl_*` directives, read by
//!   `junction_config::upstream_tls` and driven by `junction_core::upstream_tls` as for
//!   `proxy_pass https://`.
//! - [`directives`]: the `uwsgi_*` directives for the registry.
//!
//! ## Lifecycle of a request
//! 1. The backend builds the params (`uwsgi_param`, `HTTP_*` headers, `CONTENT_LENGTH`)
//!    and calls [`encode_request_head`] with `uwsgi_modifier1/2`; an `Encode` error
//!    becomes a 502 before anything is sent.
//! 2. The driver writes that packet, then each body chunk through
//!    [`UpstreamCodec::encode_body`] (passed as-is: the upstream reads `CONTENT_LENGTH`
//!    bytes); [`UpstreamCodec::encode_end`] adds nothing.
//! 3. The driver feeds response bytes to [`UpstreamCodec::decode`]: one `Head` once the
//!    head is complete (a head that does not fit the limit is `TooBigHeader`, anything
//!    that is not a head is `InvalidResponse`), then `Data` with every byte received.
//! 4. When the upstream closes, [`UpstreamCodec::decode_eof`] yields what is left and
//!    `End { reusable: false }` — uwsgi connections are never pooled. A close before the
//!    head is complete is `UpstreamClosed` ("upstream prematurely closed connection").
//!
//! [`UpstreamCodec`]: junction_core::codec::UpstreamCodec
//! [`UpstreamCodec::encode_body`]: junction_core::codec::UpstreamCodec::encode_body
//! [`UpstreamCodec::encode_end`]: junction_core::codec::UpstreamCodec::encode_end
//! [`UpstreamCodec::decode`]: junction_core::codec::UpstreamCodec::decode
//! [`UpstreamCodec::decode_eof`]: junction_core::codec::UpstreamCodec::decode_eof
#![forbid(unsafe_code)]

pub mod codec;

pub use codec::{encode_request_head, UwsgiCodec};
pub mod backend;
pub mod directives;
