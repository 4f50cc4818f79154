//! Argument values of the value-typed directives (`on|off` flags, sizes, times,
//! `*_buffers N SIZE`), checked wherever a directive is written — nginx checks them
//! while parsing, not only where a value is used — as part of the registry's one walk
//! over the tree ([`crate::registry::check`]), so `junction -t` reports every bad value
//! of a file, each with `FILE:LINE`, next to the syntax errors.

use crate::model::{err, invalid};
use crate::tree::{ConfigError, Directive};
use crate::values::{parse_flag, parse_size, parse_time_ms};

/// Flag directives (`on|off`) outside the `*_` families.
const FLAGS: &[&str] = &[
    "sendfile",
    "tcp_nopush",
    "tcp_nodelay",
    "gzip",
    "gzip_vary",
    "override_charset",
    "log_not_found",
    "log_subrequest",
    "client_body_in_single_buffer",
    "autoindex_exact_size",
    "autoindex_localtime",
    "open_file_cache_errors",
    "open_file_cache_events",
    "brotli",
    "gunzip",
    "etag",
    "recursive_error_pages",
    "absolute_redirect",
    "port_in_redirect",
    "server_name_in_redirect",
    "ignore_invalid_headers",
    "underscores_in_headers",
    "merge_slashes",
    "fastcgi_keep_conn",
    "autoindex",
    "multi_accept",
    "accept_mutex",
    "master_process",
    "daemon",
    "ssl_prefer_server_ciphers",
    "rewrite_log",
    "uninitialized_variable_warn",
    "limit_req_dry_run",
    "limit_conn_dry_run",
    "real_ip_recursive",
    "ssl_verify",
    "proxy_pass_trailers",
];

/// The upstream directive families (`proxy_*`, `fastcgi_*`, …).
const FAMILIES: &[&str] = &["proxy", "fastcgi", "uwsgi", "scgi", "memcached"];

/// Flag members of every family (`proxy_buffering`, `fastcgi_intercept_errors`, …).
const FAMILY_FLAGS: &[&str] = &[
    "_buffering",
    "_request_buffering",
    "_intercept_errors",
    "_pass_request_headers",
    "_pass_request_body",
    "_socket_keepalive",
    "_force_ranges",
    "_ssl_verify",
    "_ssl_server_name",
    "_ssl_session_reuse",
];

/// Checks the values of `d` (not its block); pushes at most one error.
pub fn check_values(d: &Directive, errors: &mut Vec<ConfigError>) {
    if let Err(e) = check(d) {
        errors.push(e);
    }
}

fn check(d: &Directive) -> Result<(), ConfigError> {
    let n = d.name.as_str();
    let fam_flag = FAMILY_FLAGS
        .iter()
        .any(|suf| n.ends_with(suf) && FAMILIES.iter().any(|p| n.starts_with(p)));
    if fam_flag || FLAGS.contains(&n) {
        for a in &d.args {
            if parse_flag(&a.value).is_none() {
                return Err(err(
                    &d.span,
                    format!(
                        "invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                        a.value, n
                    ),
                ));
            }
        }
    } else if n == "server_tokens" {
        // on | off | build; a quoted string or one with variables is nginx Plus's
        // `server_tokens string` (the `Server` value); any other word is a typo, as
        // nginx OSS says.
        for a in &d.args {
            if !matches!(a.value.as_str(), "on" | "off" | "build")
                && !a.quoted
                && !a.value.contains('$')
            {
                return Err(invalid(d, a));
            }
        }
    } else if n == "client_body_in_file_only" {
        for a in &d.args {
            if junction_core::body_file::BodyInFile::parse(&a.value).is_none() {
                return Err(invalid(d, a));
            }
        }
    } else if n.ends_with("_timeout") || n == "keepalive_time" {
        for a in &d.args {
            if parse_time_ms(&a.value).is_none() {
                return Err(invalid(d, a));
            }
        }
    } else if n.ends_with("_buffer_size")
        || n.ends_with("_body_size")
        || n.ends_with("_busy_buffers_size")
        || n.ends_with("_max_temp_file_size")
        || n.ends_with("_temp_file_write_size")
        || n == "memcached_buffer_size"
    {
        for a in &d.args {
            if parse_size(&a.value).is_none() {
                return Err(invalid(d, a));
            }
        }
    } else if n.ends_with("_buffers") && d.block.is_none() {
        let (Some(num), Some(size)) = (d.args.first(), d.args.get(1)) else {
            return Err(err(
                &d.span,
                format!("invalid number of arguments in \"{n}\" directive"),
            ));
        };
        if num.value.parse::<usize>().is_err() {
            return Err(invalid(d, num));
        }
        if parse_size(&size.value).is_none() {
            return Err(invalid(d, size));
        }
    }
    Ok(())
}
