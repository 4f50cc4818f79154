//! The directives of ngx_http_proxy_module (`proxy_*`, also `proxy_ssl_*`, which `junction_config::upstream_tls` builds), for the one directive registry
//! (`junction_config::registry::Registry`, assembled in the binary): its own ones, one
//! line each (see `junction_config::registry::d`), and its share of the shared
//! `proxy_*` family (`junction_config::registry::FAMILY_BASE`, …), generated from one
//! list for every upstream module.

use junction_config::registry::{
    d, Directives, Prefix, FAMILY_BASE, FAMILY_BUFFERED, HSL, LIF, LMT, LOC, MANY,
};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[
        d("proxy_pass", LOC | LIF | LMT, 1, 1),
        d("proxy_set_header", HSL, 2, 2),
        d("proxy_http_version", HSL, 1, 1),
        d("proxy_redirect", HSL, 1, 2),
        d("proxy_set_body", HSL, 1, 1),
        d("proxy_method", HSL, 1, 1),
        d("proxy_pass_trailers", HSL, 1, 1).flag(),
        d("proxy_cookie_domain", HSL, 1, 2),
        d("proxy_cookie_path", HSL, 1, 2),
        d("proxy_cookie_flags", HSL, 1, MANY),
        d("proxy_headers_hash_max_size", HSL, 1, 1).no_effect(),
        d("proxy_headers_hash_bucket_size", HSL, 1, 1).no_effect(),
        d("proxy_ssl_server_name", HSL, 1, 1).flag(),
        d("proxy_ssl_verify", HSL, 1, 1).flag(),
        d("proxy_ssl_name", HSL, 1, 1),
        d("proxy_ssl_trusted_certificate", HSL, 1, 1),
        d("proxy_ssl_verify_depth", HSL, 1, 1),
        d("proxy_ssl_crl", HSL, 1, 1),
        d("proxy_ssl_protocols", HSL, 1, MANY),
        d("proxy_ssl_ciphers", HSL, 1, 1),
        d("proxy_ssl_certificate", HSL, 1, 1),
        d("proxy_ssl_certificate_key", HSL, 1, 1),
        d("proxy_ssl_certificate_cache", HSL, 1, 3).no_effect(),
        d("proxy_ssl_password_file", HSL, 1, 1),
        d("proxy_ssl_session_reuse", HSL, 1, 1).flag(),
        d("proxy_ssl_conf_command", HSL, 2, 2).no_effect(),
    ],
    family: Some(Prefix {
        prefix: "proxy",
        parts: &[FAMILY_BASE, FAMILY_BUFFERED],
    }),
};
