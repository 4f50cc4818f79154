//! The directives of ngx_http_fastcgi_module, for the one directive registry
//! (`junction_config::registry::Registry`, assembled in the binary): its own ones, one
//! line each (see `junction_config::registry::d`), and its share of the shared
//! `fastcgi_*` family (`junction_config::registry::FAMILY_BASE`, …), generated from one
//! list for every upstream module.

use junction_config::registry::{
    d, Directives, Prefix, FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS, HSL, LIF, LOC,
};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[
        d("fastcgi_pass", LOC | LIF, 1, 1),
        d("fastcgi_index", HSL, 1, 1),
        d("fastcgi_split_path_info", HSL, 1, 1),
        d("fastcgi_keep_conn", HSL, 1, 1).flag(),
        d("fastcgi_catch_stderr", HSL, 1, 1),
    ],
    family: Some(Prefix {
        prefix: "fastcgi",
        parts: &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS],
    }),
};
