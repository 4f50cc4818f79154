//! The directives of the nginx modules this crate implements, for the one directive
//! registry (`junction_config::registry::Registry`, assembled in the binary): TLS,
//! HTTP/2, logs, `map`/`geo`/`split_clients`, rewrite, index, autoindex, headers,
//! charset, compression, access, auth_basic, limits, realip, status. The core http
//! directives (`listen`, `location`, `root`, timeouts, client buffers, `upstream {}`)
//! are `junction_config`'s own. One line per directive: name, contexts, arity, value kind
//! and support (see `junction_config::registry::d`).

use junction_config::registry::{
    block, d, Directives, ACME, HSL, HTTP, LIF, LMT, LOC, MANY, SIF, SRV,
};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[
        // ngx_http_ssl_module (tls.rs)
        d("ssl_protocols", HTTP | SRV, 1, MANY),
        d("ssl_prefer_server_ciphers", HTTP | SRV, 1, 1).flag(),
        d("ssl_certificate", HTTP | SRV, 1, 1),
        d("ssl_certificate_key", HTTP | SRV, 1, 1),
        d("ssl_password_file", HTTP | SRV, 1, 1),
        d("ssl_ciphers", HTTP | SRV, 1, 1),
        d("ssl_ecdh_curve", HTTP | SRV, 1, 1),
        d("ssl_dhparam", HTTP | SRV, 1, 1),
        d("ssl_session_cache", HTTP | SRV, 1, 2),
        d("ssl_session_timeout", HTTP | SRV, 1, 1).time(),
        d("ssl_session_tickets", HTTP | SRV, 1, 1),
        d("ssl_session_ticket_key", HTTP | SRV, 1, 1),
        d("ssl_buffer_size", HTTP | SRV, 1, 1).size(),
        d("ssl_early_data", HTTP | SRV, 1, 1),
        d("ssl_reject_handshake", HTTP | SRV, 1, 1),
        d("ssl_conf_command", HTTP | SRV, 2, 2),
        d("ssl_client_certificate", HTTP | SRV, 1, 1),
        d("ssl_trusted_certificate", HTTP | SRV, 1, 1),
        d("ssl_verify_client", HTTP | SRV, 1, 1),
        d("ssl_verify_depth", HTTP | SRV, 1, 1).number(),
        d("ssl_crl", HTTP | SRV, 1, 1),
        d("ssl_stapling", HTTP | SRV, 1, 1),
        d("ssl_stapling_file", HTTP | SRV, 1, 1),
        d("ssl_stapling_responder", HTTP | SRV, 1, 1),
        d("ssl_stapling_verify", HTTP | SRV, 1, 1),
        d("ssl_ocsp", HTTP | SRV, 1, 1).not_yet(),
        d("ssl_ocsp_cache", HTTP | SRV, 1, 1).not_yet(),
        d("ssl_ocsp_responder", HTTP | SRV, 1, 1).not_yet(),
        // Accepted only beside `$acme_certificate` (checked in tls.rs); else not yet.
        d("ssl_certificate_cache", HTTP | SRV, 1, 3),
        d("ssl_ech_file", HTTP | SRV, 1, 1).not_yet(),
        d("ssl_certificate_compression", HTTP | SRV, 1, 1).no_effect(),
        // ngx_http_v2_module (http2.rs)
        d("http2", HTTP | SRV, 1, 1),
        d("http2_max_concurrent_streams", HTTP | SRV, 1, 1).number(),
        d("http2_chunk_size", HSL, 1, 1),
        d("http2_body_preread_size", HTTP | SRV, 1, 1),
        d("http2_recv_buffer_size", HTTP, 1, 1).size().no_effect(),
        d("http2_pool_size", HTTP | SRV, 1, 1).no_effect(),
        d("http2_streams_index_size", HTTP | SRV, 1, 1).no_effect(),
        d("http2_recv_timeout", HTTP | SRV, 1, 1)
            .time()
            .obsolete_for("client_header_timeout"),
        d("http2_idle_timeout", HTTP | SRV, 1, 1)
            .time()
            .obsolete_for("keepalive_timeout"),
        d("http2_max_requests", HTTP | SRV, 1, 1).obsolete_for("keepalive_requests"),
        d("http2_max_field_size", HTTP | SRV, 1, 1).obsolete_for("large_client_header_buffers"),
        d("http2_max_header_size", HTTP | SRV, 1, 1).obsolete_for("large_client_header_buffers"),
        d("http2_max_concurrent_pushes", HTTP | SRV, 1, 1).obsolete(),
        d("http2_push", HSL, 1, 1).obsolete(),
        d("http2_push_preload", HSL, 1, 1).obsolete(),
        // ngx_http_log_module (log.rs, log_format.rs)
        d("log_format", HTTP, 2, MANY),
        d("access_log", HSL | LIF | LMT, 1, MANY),
        // ngx_http_map_module, ngx_http_geo_module, ngx_http_split_clients_module (map.rs)
        block("map", HTTP, 2, 2),
        block("geo", HTTP, 1, 2),
        block("split_clients", HTTP, 2, 2),
        d("map_hash_max_size", HTTP, 1, 1).no_effect(),
        d("map_hash_bucket_size", HTTP, 1, 1).no_effect(),
        // ngx_http_rewrite_module (rewrite.rs)
        block("if", SRV | LOC, 1, MANY),
        d("set", SRV | SIF | LOC | LIF, 2, 2),
        d("return", SRV | SIF | LOC | LIF, 1, 2),
        d("rewrite", SRV | SIF | LOC | LIF, 2, 3),
        d("break", SRV | SIF | LOC | LIF, 0, 0),
        d("rewrite_log", HSL | SIF | LIF, 1, 1).flag(),
        d("uninitialized_variable_warn", HSL | SIF | LIF, 1, 1).flag(),
        // ngx_http_index_module (static_files.rs)
        d("index", HSL, 1, MANY),
        // ngx_http_autoindex_module (autoindex.rs)
        d("autoindex_format", HSL, 1, 1),
        d("autoindex_exact_size", HSL, 1, 1).flag(),
        d("autoindex_localtime", HSL, 1, 1).flag(),
        d("autoindex", HSL, 1, 1).flag(),
        // ngx_http_acme_module (acme.rs)
        block("acme_issuer", HTTP, 1, 1),
        d("uri", ACME, 1, 1),
        d("account_key", ACME, 1, 1),
        d("challenge", ACME, 1, 1),
        d("contact", ACME, 1, 1),
        d("external_account_key", ACME, 2, 2),
        d("preferred_chain", ACME, 1, 1),
        d("profile", ACME, 1, 2),
        d("ssl_trusted_certificate", ACME, 1, 1),
        d("ssl_verify", ACME, 1, 1).flag(),
        d("state_path", ACME, 1, 1),
        d("accept_terms_of_service", ACME, 0, 0),
        d("acme_shared_zone", HTTP, 1, 1),
        d("acme_certificate", SRV, 1, MANY),
        // ngx_http_headers_module (filters/mod.rs, filters/expires.rs)
        d("add_header", HSL | LIF, 2, 3),
        d("expires", HSL | LIF, 1, 2),
        // ngx_http_charset_module (filters/charset.rs)
        d("charset", HSL | LIF, 1, 1),
        d("charset_types", HSL, 1, MANY),
        d("override_charset", HSL | LIF, 1, 1).flag(),
        d("source_charset", HSL | LIF, 1, 1),
        block("charset_map", HTTP, 2, 2),
        // ngx_http_gzip_module, gzip_static, gunzip; brotli as ngx_brotli names it (filters/gzip.rs)
        d("gzip", HSL | LIF, 1, 1).flag(),
        d("gzip_types", HSL, 1, MANY),
        d("gzip_min_length", HSL, 1, 1),
        d("gzip_comp_level", HSL, 1, 1),
        d("gzip_buffers", HSL, 2, 2).buffers().no_effect(),
        d("gzip_http_version", HSL, 1, 1),
        d("gzip_proxied", HSL, 1, MANY),
        d("gzip_vary", HSL, 1, 1).flag(),
        d("gzip_disable", HSL, 1, MANY),
        d("gzip_static", HSL, 1, 1),
        d("gzip_window", HSL, 1, 1).no_effect(),
        d("gzip_hash", HSL, 1, 1).no_effect(),
        d("gzip_no_buffer", HSL, 1, 1).no_effect(),
        d("postpone_gzipping", HSL, 1, 1).no_effect(),
        d("gunzip", HSL, 1, 1).flag(),
        d("gunzip_buffers", HSL, 2, 2).buffers().no_effect(),
        d("brotli", HSL | LIF, 1, 1).flag(),
        d("brotli_types", HSL, 1, MANY),
        d("brotli_comp_level", HSL, 1, 1),
        d("brotli_min_length", HSL, 1, 1),
        d("brotli_window", HSL, 1, 1),
        d("brotli_buffers", HSL, 2, 2).buffers().no_effect(),
        d("brotli_static", HSL, 1, 1),
        // ngx_http_access_module (access.rs)
        d("allow", HSL | LMT, 1, 1),
        d("deny", HSL | LMT, 1, 1),
        // ngx_http_auth_basic_module (auth_basic.rs)
        d("auth_basic", HSL | LMT, 1, 1),
        d("auth_basic_user_file", HSL | LMT, 1, 1),
        // ngx_http_limit_req_module, ngx_http_limit_conn_module (limits.rs, limit_req.rs, limit_conn.rs)
        d("limit_req_zone", HTTP, 3, 4),
        d("limit_req", HSL, 1, 3),
        d("limit_req_status", HSL, 1, 1),
        d("limit_req_log_level", HSL, 1, 1),
        d("limit_req_dry_run", HSL, 1, 1).flag(),
        d("limit_conn_zone", HTTP, 2, 2),
        d("limit_conn", HSL, 2, 2),
        d("limit_conn_status", HSL, 1, 1),
        d("limit_conn_log_level", HSL, 1, 1),
        d("limit_conn_dry_run", HSL, 1, 1).flag(),
        // ngx_http_realip_module (realip.rs)
        d("set_real_ip_from", HSL, 1, 1),
        d("real_ip_header", HSL, 1, 1),
        d("real_ip_recursive", HSL, 1, 1).flag(),
        // nginx's stub_status; metrics (Prometheus/OpenMetrics, beyond nginx OSS); nginx Plus's read-only JSON API (status.rs, api.rs)
        d("stub_status", SRV | LOC, 0, 1),
        d("metrics", LOC, 0, 0),
        d("api", LOC, 0, 1),
    ],
    family: None,
};
