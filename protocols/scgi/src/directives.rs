//! The directives of ngx_http_scgi_module, for the one directive registry
//! (`junction_config::registry::Registry`, assembled in the binary): its own ones, one
//! line each (see `junction_config::registry::d`), and its share of the shared
//! `scgi_*` family (`junction_config::registry::FAMILY_BASE`, …), generated from one
//! list for every upstream module.

use junction_config::registry::{
    d, Directives, Prefix, FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS, LIF, LOC,
};

/// This crate's directives.
pub static DIRECTIVES: Directives = Directives {
    specs: &[d("scgi_pass", LOC | LIF, 1, 1)],
    family: Some(Prefix {
        prefix: "scgi",
        parts: &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS],
    }),
};
