//! The directives of ngx_http_uwsgi_module, for the one directive registry
//! (`junction_config::registry::Registry`, assembled in the binary): its own ones, one
//! line each (see `junction_config::registry::d`), and its share of the shared
//! `uwsgi_*` family (`junction_config::registry::FAMILY_BASE`, …), generated from one
//! list for every upstream module.

use junction_config::registry::{
    d, Directives, Prefix, FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS, HSL, LIF, LOC, MANY,
};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[
        d("uwsgi_pass", LOC | LIF, 1, 1),
        d("uwsgi_modifier1", HSL, 1, 1),
        d("uwsgi_modifier2", HSL, 1, 1),
        // `uwsgi_pass suwsgi://…` (junction_config::upstream_tls, as proxy_ssl_*)
        d("uwsgi_ssl_server_name", HSL, 1, 1).flag(),
        d("uwsgi_ssl_verify", HSL, 1, 1).flag(),
        d("uwsgi_ssl_name", HSL, 1, 1),
        d("uwsgi_ssl_trusted_certificate", HSL, 1, 1),
        d("uwsgi_ssl_verify_depth", HSL, 1, 1),
        d("uwsgi_ssl_crl", HSL, 1, 1),
        d("uwsgi_ssl_protocols", HSL, 1, MANY),
        d("uwsgi_ssl_ciphers", HSL, 1, 1),
        d("uwsgi_ssl_certificate", HSL, 1, 1),
        d("uwsgi_ssl_certificate_key", HSL, 1, 1),
        d("uwsgi_ssl_certificate_cache", HSL, 1, 3).no_effect(),
        d("uwsgi_ssl_password_file", HSL, 1, 1),
        d("uwsgi_ssl_session_reuse", HSL, 1, 1).flag(),
        d("uwsgi_ssl_conf_command", HSL, 2, 2).no_effect(),
    ],
    family: Some(Prefix {
        prefix: "uwsgi",
        parts: &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS],
    }),
};
