//! The directives of ngx_http_memcached_module, for the one directive registry
//! (`junction_config::registry::Registry`, assembled in the binary): its own ones, one
//! line each (see `junction_config::registry::d`), and its share of the shared
//! `memcached_*` family (`junction_config::registry::FAMILY_BASE`, …), generated from one
//! list for every upstream module.

use junction_config::registry::{d, Directives, Prefix, FAMILY_BASE, HSL, LIF, LOC};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[
        d("memcached_pass", LOC | LIF, 1, 1),
        d("memcached_gzip_flag", HSL, 1, 1),
    ],
    family: Some(Prefix {
        prefix: "memcached",
        parts: &[FAMILY_BASE],
    }),
};
