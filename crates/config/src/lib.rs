//! junction-config: nginx and TOML config syntax into one directive tree (work in progress).
#![forbid(unsafe_code)]

pub mod registry;
pub mod tree;
pub mod values;

pub use tree::{
    load, parse_nginx_str, parse_toml_str, print_nginx, Arg, ConfigError, Directive, Span,
};
