//! # junction-memcached
//!
//! The client side of nginx's `ngx_http_memcached_module`: Junction answers a request
//! from memcached by sending `get <escaped $memcached_key>\r\n` and turning the reply into
//! an HTTP response. Like nginx, Junction only ever reads from memcached; an application
//! fills the cache.
//!
//! ## Layout
//! - `request`: the key escaping (`ngx_escape_uri`, `NGX_ESCAPE_MEMCACHED`) and the
//!   `get` line — [`encode_get`], [`escape_key`], [`key_missing_error`], [`MAX_KEY_LEN`].
//! - `codec`: [`MemcachedCodec`], the [`UpstreamCodec`](junction_core::codec::UpstreamCodec)
//!   that decodes the reply (nginx's `process_header` + `filter`).
//! - [`directives`]: the `memcached_*` directives for the registry.
//!
//! ## Lifecycle of one request
//! 1. The backend evaluates `$memcached_key`. Unset or empty → [`key_missing_error`]
//!    (500, as nginx: `the "$memcached_key" variable is not set`).
//! 2. [`encode_get`] builds `get <escaped key>\r\n`: `%XX` for bytes `0x00..=0x20` and
//!    `%`, every other byte (UTF-8 included) raw, exactly as nginx. An escaped key longer
//!    than 250 bytes (memcached's limit) → `ErrorKind::Encode` (502) before connecting;
//!    nginx sends it anyway, memcached answers `CLIENT_ERROR` and nginx answers 502.
//! 3. The backend creates `MemcachedCodec::new(escape_key(key)?, memcached_gzip_flag)` and
//!    hands the request bytes and the codec to the shared upstream driver (connect,
//!    timeouts, keepalive pool, `memcached_next_upstream` are the driver's business). There
//!    is no request body: `encode_body` / `encode_end` emit nothing.
//! 4. The codec decodes:
//!    - `VALUE <key> <flags> <bytes>[ <cas>]\r\n` → `Head` 200 with
//!      `Content-Length: <bytes>`, plus `Content-Encoding: gzip` when
//!      `gzip_flag != 0 && flags & gzip_flag != 0`; then the data block, binary-safe, as
//!      zero-copy `Data` chunks as they arrive; then exactly `\r\nEND\r\n` →
//!      `End { reusable: true }`.
//!    - `END\r\n` (a miss) → `Head` 404 (`Content-Length: 0`) then `End { reusable: true }`.
//!      The server answers it like nginx's `intercept_404`: its own 404, or
//!      `error_page 404 = @fallback`.
//!    - `ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`, a `VALUE` line for another key, bad
//!      numbers, a first line over its cap → `ErrorKind::InvalidResponse`
//!      (502) with nginx's log text ("memcached sent invalid response: \"…\"", "memcached
//!      sent invalid key in response …", …; the peer's bytes escaped and truncated).
//!    - A wrong trailer after the data block: as nginx, logged ("memcached sent invalid
//!      trailer …") and the response ends there (`End { reusable: false }`): the value
//!      arrived whole and reaches the client; the connection is dropped.
//!    - The connection closing before the end → `ErrorKind::UpstreamClosed` (502 before
//!      the head went out; after it, the client's response is cut short).
//! 5. The backend sets `Content-Type` from the URI's extension (`types`), as nginx's
//!    handler does with `ngx_http_set_content_type`; the codec does not.
//!
//! ## Where we differ from nginx, on purpose
//! - A trailing `<cas>` field on the `VALUE` line is accepted (nginx rejects it as an
//!   invalid length; memcached only sends it for `gets`, which nginx never sends).
//! - `<flags>` is always checked as a 32-bit decimal, even with `memcached_gzip_flag` off.
//! - The first line is capped (`VALUE ` + 250 + 64 bytes, more if the key is longer):
//!   nginx relies on `memcached_buffer_size` alone.
#![forbid(unsafe_code)]

mod codec;
mod probe;
mod request;

pub use codec::MemcachedCodec;
pub use request::{encode_get, escape_key, key_missing_error, MAX_KEY_LEN};
pub mod backend;
pub mod directives;
