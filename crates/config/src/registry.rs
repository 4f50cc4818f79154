//! The directive registry: which directives exist, where each may be written, how many
//! arguments it takes and whether it opens a block — checked over a whole tree, with every
//! error collected, in nginx's words:
//!
//! ```text
//! unknown directive "foo" in FILE:LINE
//! "proxy_pass" directive is not allowed here in FILE:LINE
//! invalid number of arguments in "listen" directive in FILE:LINE
//! directive "server" has no opening "{" in FILE:LINE
//! directive "listen" is not terminated by ";" in FILE:LINE
//! ```
//!
//! The table is [`DIRECTIVES`]: one line per directive and context set, with nginx's context
//! flags (`if` blocks are their own contexts, as `NGX_HTTP_SIF_CONF`/`NGX_HTTP_LIF_CONF`:
//! only the directives nginx allows there pass). A name may have several lines for different
//! contexts (`server` is a block in `http`, an address in `upstream`). The entries of
//! `types {}` (`mime/type ext…;`, at least one extension) and `map {}`, `geo {}`,
//! `split_clients {}` (`key value;`, or `hostnames;`/`volatile;`/`ranges;`/
//! `proxy_recursive;`) are free-form.
//!
//! The same walk checks the values of value-typed directives (`crate::value_check`):
//! every error of the file is collected, not only the first (nginx stops at the first).

use crate::tree::{ConfigError, Directive};

/// Where a directive is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// The top level of a full nginx.conf.
    Main,
    /// `events {}`.
    Events,
    /// `http {}`, or the top level of a bare file of `server {}` blocks.
    Http,
    /// `server {}` in http.
    Server,
    /// `location {}`.
    Location,
    /// `if {}` in a server.
    ServerIf,
    /// `if {}` in a location.
    LocationIf,
    /// `limit_except {}`.
    LimitExcept,
    /// `upstream {}`.
    Upstream,
    /// `types {}`: free-form `type ext…;` entries.
    Types,
    /// `map {}`, `geo {}`, `split_clients {}`: free-form `key value;` entries.
    Map,
    /// `match {}`: what a healthy `health_check` answer looks like.
    Match,
}

impl Context {
    /// This context's bit in [`Spec::contexts`].
    pub const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The context of the block a directive named `name` opens in this context, if it is a
    /// block directive known here.
    pub fn child(self, name: &str) -> Option<Context> {
        Some(match (self, name) {
            (_, "events") => Context::Events,
            (_, "http") => Context::Http,
            (_, "server") => Context::Server,
            (_, "location") => Context::Location,
            (Context::Location | Context::LocationIf, "if") => Context::LocationIf,
            (_, "if") => Context::ServerIf,
            (_, "limit_except") => Context::LimitExcept,
            (_, "upstream") => Context::Upstream,
            (_, "types") => Context::Types,
            (_, "map" | "geo" | "split_clients") => Context::Map,
            (_, "match") => Context::Match,
            _ => return None,
        })
    }
}

/// `main`
pub const MAIN: u16 = Context::Main.bit();
/// `events {}`
pub const EVENTS: u16 = Context::Events.bit();
/// `http {}`
pub const HTTP: u16 = Context::Http.bit();
/// `server {}`
pub const SRV: u16 = Context::Server.bit();
/// `location {}`
pub const LOC: u16 = Context::Location.bit();
/// `if {}` in a server
pub const SIF: u16 = Context::ServerIf.bit();
/// `if {}` in a location
pub const LIF: u16 = Context::LocationIf.bit();
/// `limit_except {}`
pub const LMT: u16 = Context::LimitExcept.bit();
/// `upstream {}`
pub const UPS: u16 = Context::Upstream.bit();
/// `match {}`
pub const MATCH: u16 = Context::Match.bit();
/// http, server and location: where most http directives go.
pub const HSL: u16 = HTTP | SRV | LOC;
/// Everywhere.
pub const ANY: u16 = u16::MAX;
/// No upper limit on the number of arguments.
pub const MANY: u8 = u8::MAX;

/// One directive as the registry knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The directive name.
    pub name: &'static str,
    /// The contexts it may be written in (bits of [`Context::bit`]).
    pub contexts: u16,
    /// Fewest arguments.
    pub min: u8,
    /// Most arguments ([`MANY`]: no limit).
    pub max: u8,
    /// Whether it takes a block.
    pub block: bool,
}

impl Spec {
    /// Whether it may be written in `ctx`.
    pub fn allowed_in(&self, ctx: Context) -> bool {
        self.contexts & ctx.bit() != 0
    }

    /// Whether `n` arguments are accepted.
    pub fn accepts(&self, n: usize) -> bool {
        n >= usize::from(self.min) && (self.max == MANY || n <= usize::from(self.max))
    }
}

const fn d(name: &'static str, contexts: u16, min: u8, max: u8) -> Spec {
    Spec {
        name,
        contexts,
        min,
        max,
        block: false,
    }
}

const fn block(name: &'static str, contexts: u16, min: u8, max: u8) -> Spec {
    Spec {
        name,
        contexts,
        min,
        max,
        block: true,
    }
}

/// Every known directive: `d(name, contexts, min args, max args)` for a simple directive,
/// `block(…)` for one that opens a block.
pub static DIRECTIVES: &[Spec] = &[
    // main
    d("user", MAIN, 1, 2),
    d("worker_processes", MAIN, 1, 1),
    d("pid", MAIN, 1, 1),
    d("error_log", MAIN | HTTP | SRV | LOC, 1, 2),
    d("daemon", MAIN, 1, 1),
    d("master_process", MAIN, 1, 1),
    d("worker_rlimit_nofile", MAIN, 1, 1),
    d("include", ANY, 1, 1),
    d("load_module", MAIN, 1, 1),
    d("env", MAIN, 1, 1),
    block("events", MAIN, 0, 0),
    block("http", MAIN, 0, 0),
    // events
    d("worker_connections", EVENTS, 1, 1),
    d("use", EVENTS, 1, 1),
    d("multi_accept", EVENTS, 1, 1),
    d("accept_mutex", EVENTS, 1, 1),
    // http core
    block("server", HTTP, 0, 0),
    block("upstream", HTTP, 1, 1),
    block("types", HSL, 0, 0),
    block("map", HTTP, 2, 2),
    block("geo", HTTP, 1, 2),
    block("split_clients", HTTP, 2, 2),
    d("map_hash_max_size", HTTP, 1, 1),
    d("map_hash_bucket_size", HTTP, 1, 1),
    d("default_type", HSL, 1, 1),
    d("log_format", HTTP, 2, MANY),
    d("access_log", HSL | LIF | LMT, 1, MANY),
    d("sendfile", HSL | LIF, 1, 1),
    d("tcp_nopush", HSL, 1, 1),
    d("tcp_nodelay", HSL, 1, 1),
    d("keepalive_timeout", HSL, 1, 2),
    d("keepalive_requests", HSL, 1, 1),
    d("server_tokens", HSL, 1, 1),
    d("client_max_body_size", HSL, 1, 1),
    d("client_body_buffer_size", HSL, 1, 1),
    d("client_body_temp_path", HSL, 1, 4),
    d("client_body_in_single_buffer", HSL, 1, 1),
    d("absolute_redirect", HSL, 1, 1),
    d("port_in_redirect", HSL, 1, 1),
    d("server_name_in_redirect", HSL, 1, 1),
    d("ignore_invalid_headers", HTTP | SRV, 1, 1),
    d("underscores_in_headers", HTTP | SRV, 1, 1),
    d("merge_slashes", HTTP | SRV, 1, 1),
    d("ssl_protocols", HTTP | SRV, 1, MANY),
    d("ssl_prefer_server_ciphers", HTTP | SRV, 1, 1),
    // ngx_http_ssl_module (junction_server::tls)
    d("ssl_certificate", HTTP | SRV, 1, 1),
    d("ssl_certificate_key", HTTP | SRV, 1, 1),
    d("ssl_password_file", HTTP | SRV, 1, 1),
    d("ssl_ciphers", HTTP | SRV, 1, 1),
    d("ssl_ecdh_curve", HTTP | SRV, 1, 1),
    d("ssl_dhparam", HTTP | SRV, 1, 1),
    d("ssl_session_cache", HTTP | SRV, 1, 2),
    d("ssl_session_timeout", HTTP | SRV, 1, 1),
    d("ssl_session_tickets", HTTP | SRV, 1, 1),
    d("ssl_session_ticket_key", HTTP | SRV, 1, 1),
    d("ssl_buffer_size", HTTP | SRV, 1, 1),
    d("ssl_early_data", HTTP | SRV, 1, 1),
    d("ssl_reject_handshake", HTTP | SRV, 1, 1),
    d("ssl_conf_command", HTTP | SRV, 2, 2),
    d("ssl_client_certificate", HTTP | SRV, 1, 1),
    d("ssl_trusted_certificate", HTTP | SRV, 1, 1),
    d("ssl_verify_client", HTTP | SRV, 1, 1),
    d("ssl_verify_depth", HTTP | SRV, 1, 1),
    d("ssl_crl", HTTP | SRV, 1, 1),
    d("ssl_stapling", HTTP | SRV, 1, 1),
    d("ssl_stapling_file", HTTP | SRV, 1, 1),
    d("ssl_stapling_responder", HTTP | SRV, 1, 1),
    d("ssl_stapling_verify", HTTP | SRV, 1, 1),
    d("ssl_ocsp", HTTP | SRV, 1, 1),
    d("ssl_ocsp_cache", HTTP | SRV, 1, 1),
    d("ssl_ocsp_responder", HTTP | SRV, 1, 1),
    d("ssl_certificate_cache", HTTP | SRV, 1, 3),
    d("ssl_ech_file", HTTP | SRV, 1, 1),
    d("ssl_certificate_compression", HTTP | SRV, 1, 1),
    d("client_header_buffer_size", HTTP | SRV, 1, 1),
    d("large_client_header_buffers", HTTP | SRV, 2, 2),
    d("client_header_timeout", HTTP | SRV, 1, 1),
    d("client_body_timeout", HSL, 1, 1),
    d("keepalive_time", HSL, 1, 1),
    d("lingering_close", HSL, 1, 1),
    d("lingering_time", HSL, 1, 1),
    d("lingering_timeout", HSL, 1, 1),
    d("reset_timedout_connection", HSL, 1, 1),
    // ngx_http_v2_module (crates/server/src/http2.rs)
    d("http2", HTTP | SRV, 1, 1),
    d("http2_max_concurrent_streams", HTTP | SRV, 1, 1),
    d("http2_chunk_size", HSL, 1, 1),
    d("http2_body_preread_size", HTTP | SRV, 1, 1),
    d("http2_recv_buffer_size", HTTP, 1, 1),
    d("http2_pool_size", HTTP | SRV, 1, 1),
    d("http2_streams_index_size", HTTP | SRV, 1, 1),
    d("http2_recv_timeout", HTTP | SRV, 1, 1),
    d("http2_idle_timeout", HTTP | SRV, 1, 1),
    d("http2_max_requests", HTTP | SRV, 1, 1),
    d("http2_max_field_size", HTTP | SRV, 1, 1),
    d("http2_max_header_size", HTTP | SRV, 1, 1),
    d("http2_max_concurrent_pushes", HTTP | SRV, 1, 1),
    d("http2_push", HSL, 1, 1),
    d("http2_push_preload", HSL, 1, 1),
    d("send_timeout", HSL, 1, 1),
    d("server_names_hash_bucket_size", HTTP, 1, 1),
    d("server_names_hash_max_size", HTTP, 1, 1),
    d("types_hash_max_size", HSL, 1, 1),
    d("gzip", HSL | LIF, 1, 1),
    d("gzip_types", HSL, 1, MANY),
    d("gzip_min_length", HSL, 1, 1),
    d("gzip_comp_level", HSL, 1, 1),
    d("gzip_buffers", HSL, 2, 2),
    d("gzip_http_version", HSL, 1, 1),
    d("gzip_proxied", HSL, 1, MANY),
    d("gzip_vary", HSL, 1, 1),
    d("gzip_disable", HSL, 1, MANY),
    d("gzip_static", HSL, 1, 1),
    d("gzip_window", HSL, 1, 1),
    d("gzip_hash", HSL, 1, 1),
    d("gzip_no_buffer", HSL, 1, 1),
    d("postpone_gzipping", HSL, 1, 1),
    d("gunzip", HSL, 1, 1),
    d("gunzip_buffers", HSL, 2, 2),
    d("brotli", HSL | LIF, 1, 1),
    d("brotli_types", HSL, 1, MANY),
    d("brotli_comp_level", HSL, 1, 1),
    d("brotli_min_length", HSL, 1, 1),
    d("brotli_window", HSL, 1, 1),
    d("brotli_buffers", HSL, 2, 2),
    d("brotli_static", HSL, 1, 1),
    d("resolver", HSL | UPS, 1, MANY),
    d("resolver_timeout", HSL | UPS, 1, 1),
    d("root", HSL | LIF, 1, 1),
    d("index", HSL, 1, MANY),
    d("charset", HSL | LIF, 1, 1),
    d("charset_types", HSL, 1, MANY),
    d("override_charset", HSL | LIF, 1, 1),
    d("source_charset", HSL | LIF, 1, 1),
    d("log_not_found", HSL, 1, 1),
    d("log_subrequest", HSL, 1, 1),
    d("autoindex_format", HSL, 1, 1),
    d("autoindex_exact_size", HSL, 1, 1),
    d("autoindex_localtime", HSL, 1, 1),
    d("open_file_cache_valid", HSL, 1, 1),
    d("open_file_cache_min_uses", HSL, 1, 1),
    d("open_file_cache_errors", HSL, 1, 1),
    d("open_file_cache_events", HSL, 1, 1),
    d("types_hash_bucket_size", HSL, 1, 1),
    d("variables_hash_max_size", HTTP, 1, 1),
    d("variables_hash_bucket_size", HTTP, 1, 1),
    d("add_header", HSL | LIF, 2, 3),
    d("error_page", HSL | LIF, 2, MANY),
    d("try_files", SRV | LOC, 2, MANY),
    d("internal", LOC, 0, 0),
    d("alias", LOC, 1, 1),
    d("limit_rate", HSL | LIF, 1, 1),
    d("recursive_error_pages", HSL, 1, 1),
    d("autoindex", HSL, 1, 1),
    d("etag", HSL, 1, 1),
    d("if_modified_since", HSL, 1, 1),
    d("satisfy", HSL, 1, 1),
    d("expires", HSL | LIF, 1, 2),
    d("open_file_cache", HSL, 1, 2),
    d("allow", HSL | LMT, 1, 1),
    d("deny", HSL | LMT, 1, 1),
    d("auth_basic", HSL | LMT, 1, 1),
    d("auth_basic_user_file", HSL | LMT, 1, 1),
    d("auth_delay", HSL, 1, 1),
    d("limit_req_zone", HTTP, 3, 4),
    d("limit_req", HSL, 1, 3),
    d("limit_req_status", HSL, 1, 1),
    d("limit_req_log_level", HSL, 1, 1),
    d("limit_req_dry_run", HSL, 1, 1),
    d("limit_conn_zone", HTTP, 2, 2),
    d("limit_conn", HSL, 2, 2),
    d("limit_conn_status", HSL, 1, 1),
    d("limit_conn_log_level", HSL, 1, 1),
    d("limit_conn_dry_run", HSL, 1, 1),
    d("limit_rate_after", HSL | LIF, 1, 1),
    d("set_real_ip_from", HSL, 1, 1),
    d("real_ip_header", HSL, 1, 1),
    d("real_ip_recursive", HSL, 1, 1),
    // server and location
    d("listen", SRV, 1, MANY),
    d("server_name", SRV, 1, MANY),
    block("location", SRV | LOC, 1, 2),
    block("limit_except", LOC, 1, MANY),
    // status handlers: nginx's stub_status; metrics (Prometheus/OpenMetrics, beyond nginx OSS)
    d("stub_status", SRV | LOC, 0, 1),
    d("metrics", LOC, 0, 0),
    // nginx Plus's JSON status API (read-only)
    d("api", LOC, 0, 1),
    // rewrite module
    block("if", SRV | LOC, 1, MANY),
    d("set", SRV | SIF | LOC | LIF, 2, 2),
    d("return", SRV | SIF | LOC | LIF, 1, 2),
    d("rewrite", SRV | SIF | LOC | LIF, 2, 3),
    d("break", SRV | SIF | LOC | LIF, 0, 0),
    d("rewrite_log", HSL | SIF | LIF, 1, 1),
    d("uninitialized_variable_warn", HSL | SIF | LIF, 1, 1),
    // upstream block
    d("server", UPS, 1, MANY),
    d("keepalive", UPS, 1, 1),
    d("keepalive_timeout", UPS, 1, 1),
    d("keepalive_requests", UPS, 1, 1),
    d("keepalive_time", UPS, 1, 1),
    d("least_conn", UPS, 0, 0),
    d("ip_hash", UPS, 0, 0),
    d("hash", UPS, 1, 2),
    d("random", UPS, 0, 2),
    d("zone", UPS, 1, 2),
    d("health_check", UPS, 0, MANY),
    d("queue", UPS, 1, 2),
    // match block (health_check match=NAME)
    block("match", HTTP, 1, 1),
    d("status", MATCH, 1, MANY),
    d("header", MATCH, 1, 3),
    d("body", MATCH, 2, 2),
    // proxy
    d("proxy_pass", LOC | LIF | LMT, 1, 1),
    d("proxy_bind", HSL, 1, 2),
    d("proxy_connect_timeout", HSL, 1, 1),
    d("proxy_read_timeout", HSL, 1, 1),
    d("proxy_send_timeout", HSL, 1, 1),
    d("proxy_buffering", HSL, 1, 1),
    d("proxy_buffers", HSL, 2, 2),
    d("proxy_buffer_size", HSL, 1, 1),
    d("proxy_busy_buffers_size", HSL, 1, 1),
    d("proxy_max_temp_file_size", HSL, 1, 1),
    d("proxy_temp_file_write_size", HSL, 1, 1),
    d("proxy_temp_path", HSL, 1, 4),
    d("proxy_request_buffering", HSL, 1, 1),
    d("proxy_hide_header", HSL, 1, 1),
    d("proxy_pass_header", HSL, 1, 1),
    d("proxy_ignore_headers", HSL, 1, MANY),
    d("proxy_intercept_errors", HSL, 1, 1),
    d("proxy_next_upstream", HSL, 1, MANY),
    d("proxy_next_upstream_tries", HSL, 1, 1),
    d("proxy_next_upstream_timeout", HSL, 1, 1),
    d("proxy_pass_request_headers", HSL, 1, 1),
    d("proxy_pass_request_body", HSL, 1, 1),
    d("proxy_socket_keepalive", HSL, 1, 1),
    d("proxy_force_ranges", HSL, 1, 1),
    d("proxy_limit_rate", HSL, 1, 1),
    d("proxy_set_header", HSL, 2, 2),
    d("proxy_http_version", HSL, 1, 1),
    d("proxy_redirect", HSL, 1, 2),
    d("proxy_set_body", HSL, 1, 1),
    d("proxy_method", HSL, 1, 1),
    d("proxy_cookie_domain", HSL, 1, 2),
    d("proxy_cookie_path", HSL, 1, 2),
    d("proxy_cookie_flags", HSL, 1, MANY),
    d("proxy_headers_hash_max_size", HSL, 1, 1),
    d("proxy_headers_hash_bucket_size", HSL, 1, 1),
    d("proxy_ssl_server_name", HSL, 1, 1),
    d("proxy_ssl_verify", HSL, 1, 1),
    d("proxy_ssl_name", HSL, 1, 1),
    d("proxy_ssl_trusted_certificate", HSL, 1, 1),
    d("proxy_ssl_verify_depth", HSL, 1, 1),
    d("proxy_ssl_crl", HSL, 1, 1),
    d("proxy_ssl_protocols", HSL, 1, MANY),
    d("proxy_ssl_ciphers", HSL, 1, 1),
    d("proxy_ssl_certificate", HSL, 1, 1),
    d("proxy_ssl_certificate_key", HSL, 1, 1),
    d("proxy_ssl_certificate_cache", HSL, 1, 3),
    d("proxy_ssl_password_file", HSL, 1, 1),
    d("proxy_ssl_session_reuse", HSL, 1, 1),
    d("proxy_ssl_conf_command", HSL, 2, 2),
    // fastcgi
    d("fastcgi_pass", LOC | LIF, 1, 1),
    d("fastcgi_bind", HSL, 1, 2),
    d("fastcgi_connect_timeout", HSL, 1, 1),
    d("fastcgi_read_timeout", HSL, 1, 1),
    d("fastcgi_send_timeout", HSL, 1, 1),
    d("fastcgi_buffering", HSL, 1, 1),
    d("fastcgi_buffers", HSL, 2, 2),
    d("fastcgi_buffer_size", HSL, 1, 1),
    d("fastcgi_busy_buffers_size", HSL, 1, 1),
    d("fastcgi_max_temp_file_size", HSL, 1, 1),
    d("fastcgi_temp_file_write_size", HSL, 1, 1),
    d("fastcgi_temp_path", HSL, 1, 4),
    d("fastcgi_request_buffering", HSL, 1, 1),
    d("fastcgi_hide_header", HSL, 1, 1),
    d("fastcgi_pass_header", HSL, 1, 1),
    d("fastcgi_ignore_headers", HSL, 1, MANY),
    d("fastcgi_intercept_errors", HSL, 1, 1),
    d("fastcgi_next_upstream", HSL, 1, MANY),
    d("fastcgi_next_upstream_tries", HSL, 1, 1),
    d("fastcgi_next_upstream_timeout", HSL, 1, 1),
    d("fastcgi_pass_request_headers", HSL, 1, 1),
    d("fastcgi_pass_request_body", HSL, 1, 1),
    d("fastcgi_socket_keepalive", HSL, 1, 1),
    d("fastcgi_force_ranges", HSL, 1, 1),
    d("fastcgi_limit_rate", HSL, 1, 1),
    d("fastcgi_param", HSL, 2, 3),
    d("fastcgi_index", HSL, 1, 1),
    d("fastcgi_split_path_info", HSL, 1, 1),
    d("fastcgi_keep_conn", HSL, 1, 1),
    d("fastcgi_catch_stderr", HSL, 1, 1),
    // uwsgi
    d("uwsgi_pass", LOC | LIF, 1, 1),
    d("uwsgi_ssl_server_name", HSL, 1, 1),
    d("uwsgi_ssl_verify", HSL, 1, 1),
    d("uwsgi_ssl_name", HSL, 1, 1),
    d("uwsgi_ssl_trusted_certificate", HSL, 1, 1),
    d("uwsgi_ssl_verify_depth", HSL, 1, 1),
    d("uwsgi_ssl_crl", HSL, 1, 1),
    d("uwsgi_ssl_protocols", HSL, 1, MANY),
    d("uwsgi_ssl_ciphers", HSL, 1, 1),
    d("uwsgi_ssl_certificate", HSL, 1, 1),
    d("uwsgi_ssl_certificate_key", HSL, 1, 1),
    d("uwsgi_ssl_certificate_cache", HSL, 1, 3),
    d("uwsgi_ssl_password_file", HSL, 1, 1),
    d("uwsgi_ssl_session_reuse", HSL, 1, 1),
    d("uwsgi_ssl_conf_command", HSL, 2, 2),
    d("uwsgi_bind", HSL, 1, 2),
    d("uwsgi_connect_timeout", HSL, 1, 1),
    d("uwsgi_read_timeout", HSL, 1, 1),
    d("uwsgi_send_timeout", HSL, 1, 1),
    d("uwsgi_buffering", HSL, 1, 1),
    d("uwsgi_buffers", HSL, 2, 2),
    d("uwsgi_buffer_size", HSL, 1, 1),
    d("uwsgi_busy_buffers_size", HSL, 1, 1),
    d("uwsgi_max_temp_file_size", HSL, 1, 1),
    d("uwsgi_temp_file_write_size", HSL, 1, 1),
    d("uwsgi_temp_path", HSL, 1, 4),
    d("uwsgi_request_buffering", HSL, 1, 1),
    d("uwsgi_hide_header", HSL, 1, 1),
    d("uwsgi_pass_header", HSL, 1, 1),
    d("uwsgi_ignore_headers", HSL, 1, MANY),
    d("uwsgi_intercept_errors", HSL, 1, 1),
    d("uwsgi_next_upstream", HSL, 1, MANY),
    d("uwsgi_next_upstream_tries", HSL, 1, 1),
    d("uwsgi_next_upstream_timeout", HSL, 1, 1),
    d("uwsgi_pass_request_headers", HSL, 1, 1),
    d("uwsgi_pass_request_body", HSL, 1, 1),
    d("uwsgi_socket_keepalive", HSL, 1, 1),
    d("uwsgi_force_ranges", HSL, 1, 1),
    d("uwsgi_limit_rate", HSL, 1, 1),
    d("uwsgi_param", HSL, 2, 3),
    d("uwsgi_modifier1", HSL, 1, 1),
    d("uwsgi_modifier2", HSL, 1, 1),
    // scgi
    d("scgi_pass", LOC | LIF, 1, 1),
    d("scgi_bind", HSL, 1, 2),
    d("scgi_connect_timeout", HSL, 1, 1),
    d("scgi_read_timeout", HSL, 1, 1),
    d("scgi_send_timeout", HSL, 1, 1),
    d("scgi_buffering", HSL, 1, 1),
    d("scgi_buffers", HSL, 2, 2),
    d("scgi_buffer_size", HSL, 1, 1),
    d("scgi_busy_buffers_size", HSL, 1, 1),
    d("scgi_max_temp_file_size", HSL, 1, 1),
    d("scgi_temp_file_write_size", HSL, 1, 1),
    d("scgi_temp_path", HSL, 1, 4),
    d("scgi_request_buffering", HSL, 1, 1),
    d("scgi_hide_header", HSL, 1, 1),
    d("scgi_pass_header", HSL, 1, 1),
    d("scgi_ignore_headers", HSL, 1, MANY),
    d("scgi_intercept_errors", HSL, 1, 1),
    d("scgi_next_upstream", HSL, 1, MANY),
    d("scgi_next_upstream_tries", HSL, 1, 1),
    d("scgi_next_upstream_timeout", HSL, 1, 1),
    d("scgi_pass_request_headers", HSL, 1, 1),
    d("scgi_pass_request_body", HSL, 1, 1),
    d("scgi_socket_keepalive", HSL, 1, 1),
    d("scgi_force_ranges", HSL, 1, 1),
    d("scgi_limit_rate", HSL, 1, 1),
    d("scgi_param", HSL, 2, 3),
    // memcached
    d("memcached_pass", LOC | LIF, 1, 1),
    d("memcached_bind", HSL, 1, 2),
    d("memcached_connect_timeout", HSL, 1, 1),
    d("memcached_read_timeout", HSL, 1, 1),
    d("memcached_send_timeout", HSL, 1, 1),
    d("memcached_buffer_size", HSL, 1, 1),
    d("memcached_gzip_flag", HSL, 1, 1),
    d("memcached_next_upstream", HSL, 1, MANY),
    d("memcached_next_upstream_tries", HSL, 1, 1),
    d("memcached_next_upstream_timeout", HSL, 1, 1),
    d("memcached_socket_keepalive", HSL, 1, 1),
];

/// The registry lines for `name` (several when it differs between contexts).
pub fn lookup(name: &str) -> impl Iterator<Item = &'static Spec> + '_ {
    DIRECTIVES.iter().filter(move |s| s.name == name)
}

/// The spec for `name` in `ctx`, if it may be written there.
pub fn spec(name: &str, ctx: Context) -> Option<&'static Spec> {
    lookup(name).find(|s| s.allowed_in(ctx))
}

/// True when the top level is a bare http-level file: no `http` block, and `server` or
/// `upstream` blocks (a "sites-available" file). Its top level is checked as http context.
pub fn is_bare_http(tree: &[Directive]) -> bool {
    !tree.iter().any(|d| d.name == "http")
        && tree
            .iter()
            .any(|d| d.block.is_some() && (d.name == "server" || d.name == "upstream"))
}

/// The context of the top level of `tree`: [`Context::Http`] for a bare file, else
/// [`Context::Main`].
pub fn top_context(tree: &[Directive]) -> Context {
    if is_bare_http(tree) {
        Context::Http
    } else {
        Context::Main
    }
}

/// Check every directive of `tree` (its top level in [`top_context`]): known, allowed where
/// it is, right number of arguments, block or not. All errors are collected, in file order.
pub fn check(tree: &[Directive]) -> Result<(), Vec<ConfigError>> {
    check_in(tree, top_context(tree))
}

/// [`check`] with the top level in `ctx`.
pub fn check_in(tree: &[Directive], ctx: Context) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    check_block(tree, ctx, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_block(tree: &[Directive], ctx: Context, errors: &mut Vec<ConfigError>) {
    for d in tree {
        match ctx {
            Context::Types | Context::Map => check_entry(d, ctx, errors),
            _ => check_directive(d, ctx, errors),
        }
    }
}

/// A `types {}` or `map {}` entry.
fn check_entry(d: &Directive, ctx: Context, errors: &mut Vec<ConfigError>) {
    if d.block.is_some() {
        errors.push(d.error("unexpected \"{\""));
        return;
    }
    let n = d.args.len();
    let ok = match ctx {
        Context::Map => {
            n == 1
                || (n == 0
                    && matches!(
                        d.name.as_str(),
                        "hostnames" | "volatile" | "ranges" | "proxy_recursive"
                    ))
        }
        _ => n >= 1,
    };
    if !ok {
        errors.push(d.error(match ctx {
            Context::Map => "invalid number of the map parameters".to_string(),
            _ => format!("invalid number of arguments in \"{}\" directive", d.name),
        }));
    }
}

fn check_directive(d: &Directive, ctx: Context, errors: &mut Vec<ConfigError>) {
    let name = d.name.as_str();
    let Some(any) = lookup(name).next() else {
        errors.push(d.error(format!("unknown directive \"{name}\"")));
        return;
    };
    let spec = spec(name, ctx);
    match spec {
        None => errors.push(d.error(format!("\"{name}\" directive is not allowed here"))),
        Some(s) if !s.block && d.block.is_some() => {
            errors.push(d.error(format!("directive \"{name}\" is not terminated by \";\"")))
        }
        Some(s) if s.block && d.block.is_none() => {
            errors.push(d.error(format!("directive \"{name}\" has no opening \"{{\"")))
        }
        Some(s) if !s.accepts(d.args.len()) => errors.push(d.error(format!(
            "invalid number of arguments in \"{name}\" directive"
        ))),
        Some(_) => crate::value_check::check_values(d, errors),
    }
    // Check inside a block even when the block itself is misplaced, so one run reports all.
    if let Some(block) = &d.block {
        if spec.unwrap_or(any).block {
            if let Some(child) = ctx.child(name) {
                check_block(block, child, errors);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::tree::parse_nginx_str;
    use std::path::Path;

    fn parse(src: &str) -> Vec<Directive> {
        parse_nginx_str(src, Path::new("/nonexistent/r.conf")).unwrap()
    }

    fn errors(src: &str) -> Vec<String> {
        check(&parse(src))
            .unwrap_err()
            .iter()
            .map(|e| e.to_string().replace(" in /nonexistent/r.conf:", " @"))
            .collect()
    }

    #[test]
    fn table_is_consistent() {
        for (i, s) in DIRECTIVES.iter().enumerate() {
            assert!(s.max == MANY || s.min <= s.max, "{}", s.name);
            for t in DIRECTIVES.iter().skip(i + 1) {
                assert!(
                    s.name != t.name || s.contexts & t.contexts == 0,
                    "{} listed twice for one context",
                    s.name
                );
            }
        }
        assert_eq!(spec("server", Context::Http).map(|s| s.block), Some(true));
        assert_eq!(
            spec("server", Context::Upstream).map(|s| s.block),
            Some(false)
        );
        assert!(spec("uwsgi_temp_path", Context::Location).is_some());
        assert!(spec("scgi_pass", Context::LocationIf).is_some());
        assert!(spec("scgi_pass", Context::Server).is_none());
    }

    #[test]
    fn full_nginx_conf_passes() {
        let tree = parse(
            r#"
user www-data;
worker_processes 4;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log warn;
worker_rlimit_nofile 8192;
events {
    worker_connections 768;
    multi_accept on;
}
http {
    include mime.types;
    types { application/x-custom cst; }
    default_type application/octet-stream;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent';
    access_log /var/log/nginx/access.log main;
    sendfile on;
    keepalive_timeout 65 60;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' close;
        hostnames;
    }
    upstream app {
        least_conn;
        server 127.0.0.1:9000 weight=2;
        server unix:/run/app.sock backup;
        keepalive 16;
        keepalive_timeout 60s;
    }
    proxy_buffers 8 4k;
    fastcgi_temp_path /tmp/fcgi 1 2;
    server {
        listen 80 default_server;
        listen [::]:80;
        server_name example.com *.example.com;
        root /srv/www;
        if ($host = bad) { return 444; }
        location / {
            try_files $uri $uri/ @app;
            limit_except GET { deny all; }
        }
        location @app {
            proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_http_version 1.1;
        }
        location ~ \.php$ {
            include fastcgi_params;
            fastcgi_pass unix:/run/php.sock;
            if ($request_method = POST) {
                fastcgi_pass unix:/run/php-post.sock;
                add_header X-Post 1 always;
                set $post 1;
                break;
            }
        }
        location /mc { memcached_pass 127.0.0.1:11211; memcached_gzip_flag 2; }
        location /u { uwsgi_pass 127.0.0.1:3031; include uwsgi_params; uwsgi_modifier1 5; }
        location /s { scgi_pass 127.0.0.1:4000; include scgi_params; }
        location = /x { internal; alias /srv/x; expires 1h; }
        error_page 404 /404.html;
    }
}
"#,
        );
        assert!(!is_bare_http(&tree));
        assert_eq!(top_context(&tree), Context::Main);
        check(&tree).unwrap();
    }

    #[test]
    fn bare_file_is_http_context() {
        let tree = parse(
            "upstream b { server 127.0.0.1:8000; }\n\
             map $uri $x { default 1; }\n\
             proxy_read_timeout 5s;\n\
             server { listen 8080; location / { proxy_pass http://b; } }\n",
        );
        assert!(is_bare_http(&tree));
        check(&tree).unwrap();
        assert!(is_bare_http(&parse("server {}")));
        assert!(!is_bare_http(&parse("events {} http { server {} }")));
        assert!(!is_bare_http(&parse("user x;")));
        // a bare file is not main context: main directives are misplaced there
        assert_eq!(
            errors("server { listen 80; }\nuser nobody;\n"),
            ["\"user\" directive is not allowed here @2"]
        );
    }

    #[test]
    fn errors_are_collected_with_lines() {
        let src = r#"http {
    foo on;
    proxy_pass http://x;
    server {
        listen;
        location / {
            proxy_set_header Host;
            if ($x) {
                proxy_set_header A b;
                return 403;
            }
            internal;
        }
        location /x;
        root /a { }
        types { text/html; a/b c { } }
    }
    upstream u { server; keepalive 1 2; }
    map $a $b { default 0; a b c; }
    location /y { bar; }
}
worker_connections 10;
events { bogus { inner; } }
"#;
        assert_eq!(
            errors(src),
            [
                "unknown directive \"foo\" @2",
                "\"proxy_pass\" directive is not allowed here @3",
                "invalid number of arguments in \"listen\" directive @5",
                "invalid number of arguments in \"proxy_set_header\" directive @7",
                "\"proxy_set_header\" directive is not allowed here @9",
                "directive \"location\" has no opening \"{\" @14",
                "directive \"root\" is not terminated by \";\" @15",
                "invalid number of arguments in \"text/html\" directive @16",
                "unexpected \"{\" @16",
                "invalid number of arguments in \"server\" directive @18",
                "invalid number of arguments in \"keepalive\" directive @18",
                "invalid number of the map parameters @19",
                "\"location\" directive is not allowed here @20",
                "unknown directive \"bar\" @20",
                "\"worker_connections\" directive is not allowed here @22",
                "unknown directive \"bogus\" @23",
            ]
        );
    }
}
