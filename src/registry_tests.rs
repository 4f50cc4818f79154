//! Tests of the assembled directive registry ([`super::REGISTRY`]): every crate's table
//! together is consistent, and what the restructuring of issue 11 moved around (value
//! kinds once guessed from names, the `PREFIX_*` family once written out per prefix) is
//! exactly what it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{DIRECTIVES, REGISTRY};
use junction_config::registry::{Kind, Spec, Support, HSL, MANY};

#[test]
fn the_assembled_registry_is_consistent() {
    assert_eq!(REGISTRY.conflicts(), Vec::<String>::new());
    // one directive of each crate
    for name in [
        "listen",
        "ssl_certificate",
        "proxy_pass",
        "proxy_buffers",
        "fastcgi_keep_conn",
        "fastcgi_param",
        "uwsgi_modifier1",
        "scgi_pass",
        "memcached_gzip_flag",
        "memcached_bind",
    ] {
        assert_eq!(REGISTRY.lookup(name).count(), 1, "{name}");
    }
    assert_eq!(REGISTRY.lookup("memcached_buffering").count(), 0);
}

/// The value kinds of the table are those the check guessed from the names before
/// the kinds were data (issue 11): the same directives are checked the same way.
#[test]
fn kinds_are_the_old_name_guesses() {
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
    const PREFIXES: &[&str] = &["proxy", "fastcgi", "uwsgi", "scgi", "memcached"];
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
    fn guess(n: &str, block: bool) -> &'static str {
        let fam_flag = FAMILY_FLAGS
            .iter()
            .any(|suf| n.ends_with(suf) && PREFIXES.iter().any(|p| n.starts_with(p)));
        // kinds given since the guesses were replaced (the builds' messages are the same)
        const NUMBERS: &[&str] = &[
            "worker_rlimit_nofile",
            "worker_connections",
            "keepalive_requests",
            "http2_max_concurrent_streams",
            "ssl_verify_depth",
        ];
        if NUMBERS.contains(&n) {
            return "number";
        }
        if fam_flag || FLAGS.contains(&n) {
            "flag"
        } else if n == "server_tokens" || n == "client_body_in_file_only" {
            "custom"
        } else if n.ends_with("_timeout") || n == "keepalive_time" {
            "time"
        } else if n.ends_with("_buffer_size")
            || n.ends_with("_body_size")
            || n.ends_with("_busy_buffers_size")
            || n.ends_with("_max_temp_file_size")
            || n.ends_with("_temp_file_write_size")
        {
            "size"
        } else if n.ends_with("_buffers") && !block {
            "buffers"
        } else {
            "any"
        }
    }
    for (name, s) in REGISTRY.all() {
        let kind = match s.kind {
            Kind::Any => "any",
            Kind::Flag => "flag",
            Kind::Size => "size",
            Kind::Time => "time",
            Kind::Buffers => "buffers",
            Kind::Number => "number",
            Kind::Custom(_) => "custom",
        };
        assert_eq!(kind, guess(&name, s.block), "{name}");
    }
}

/// The generated family is exactly the per-prefix lines the table had before it was
/// generated (issue 11), written as they were.
#[test]
fn family_is_the_old_table() {
    const OLD: &[&str] = &[
        "d(\"fastcgi_bind\", HSL, 1, 2),",
        "d(\"fastcgi_buffer_size\", HSL, 1, 1).size(),",
        "d(\"fastcgi_buffering\", HSL, 1, 1).flag(),",
        "d(\"fastcgi_buffers\", HSL, 2, 2).buffers(),",
        "d(\"fastcgi_busy_buffers_size\", HSL, 1, 1).size(),",
        "d(\"fastcgi_connect_timeout\", HSL, 1, 1).time(),",
        "d(\"fastcgi_force_ranges\", HSL, 1, 1).flag().no_effect(),",
        "d(\"fastcgi_hide_header\", HSL, 1, 1),",
        "d(\"fastcgi_ignore_headers\", HSL, 1, MANY).no_effect(),",
        "d(\"fastcgi_intercept_errors\", HSL, 1, 1).flag(),",
        "d(\"fastcgi_limit_rate\", HSL, 1, 1).no_effect(),",
        "d(\"fastcgi_max_temp_file_size\", HSL, 1, 1).size(),",
        "d(\"fastcgi_next_upstream\", HSL, 1, MANY),",
        "d(\"fastcgi_next_upstream_timeout\", HSL, 1, 1).time(),",
        "d(\"fastcgi_next_upstream_tries\", HSL, 1, 1),",
        "d(\"fastcgi_param\", HSL, 2, 3),",
        "d(\"fastcgi_pass_header\", HSL, 1, 1),",
        "d(\"fastcgi_pass_request_body\", HSL, 1, 1).flag(),",
        "d(\"fastcgi_pass_request_headers\", HSL, 1, 1).flag(),",
        "d(\"fastcgi_read_timeout\", HSL, 1, 1).time(),",
        "d(\"fastcgi_request_buffering\", HSL, 1, 1).flag(),",
        "d(\"fastcgi_send_timeout\", HSL, 1, 1).time(),",
        "d(\"fastcgi_socket_keepalive\", HSL, 1, 1).flag().no_effect(),",
        "d(\"fastcgi_temp_file_write_size\", HSL, 1, 1).size().no_effect(),",
        "d(\"fastcgi_temp_path\", HSL, 1, 4),",
        "d(\"memcached_bind\", HSL, 1, 2),",
        "d(\"memcached_buffer_size\", HSL, 1, 1).size(),",
        "d(\"memcached_connect_timeout\", HSL, 1, 1).time(),",
        "d(\"memcached_next_upstream\", HSL, 1, MANY),",
        "d(\"memcached_next_upstream_timeout\", HSL, 1, 1).time(),",
        "d(\"memcached_next_upstream_tries\", HSL, 1, 1),",
        "d(\"memcached_read_timeout\", HSL, 1, 1).time(),",
        "d(\"memcached_send_timeout\", HSL, 1, 1).time(),",
        "d(\"memcached_socket_keepalive\", HSL, 1, 1).flag().no_effect(),",
        "d(\"proxy_bind\", HSL, 1, 2),",
        "d(\"proxy_buffer_size\", HSL, 1, 1).size(),",
        "d(\"proxy_buffering\", HSL, 1, 1).flag(),",
        "d(\"proxy_buffers\", HSL, 2, 2).buffers(),",
        "d(\"proxy_busy_buffers_size\", HSL, 1, 1).size(),",
        "d(\"proxy_connect_timeout\", HSL, 1, 1).time(),",
        "d(\"proxy_force_ranges\", HSL, 1, 1).flag().no_effect(),",
        "d(\"proxy_hide_header\", HSL, 1, 1),",
        "d(\"proxy_ignore_headers\", HSL, 1, MANY).no_effect(),",
        "d(\"proxy_intercept_errors\", HSL, 1, 1).flag(),",
        "d(\"proxy_limit_rate\", HSL, 1, 1).no_effect(),",
        "d(\"proxy_max_temp_file_size\", HSL, 1, 1).size(),",
        "d(\"proxy_next_upstream\", HSL, 1, MANY),",
        "d(\"proxy_next_upstream_timeout\", HSL, 1, 1).time(),",
        "d(\"proxy_next_upstream_tries\", HSL, 1, 1),",
        "d(\"proxy_pass_header\", HSL, 1, 1),",
        "d(\"proxy_pass_request_body\", HSL, 1, 1).flag(),",
        "d(\"proxy_pass_request_headers\", HSL, 1, 1).flag(),",
        "d(\"proxy_read_timeout\", HSL, 1, 1).time(),",
        "d(\"proxy_request_buffering\", HSL, 1, 1).flag(),",
        "d(\"proxy_send_timeout\", HSL, 1, 1).time(),",
        "d(\"proxy_socket_keepalive\", HSL, 1, 1).flag().no_effect(),",
        "d(\"proxy_temp_file_write_size\", HSL, 1, 1).size().no_effect(),",
        "d(\"proxy_temp_path\", HSL, 1, 4),",
        "d(\"scgi_bind\", HSL, 1, 2),",
        "d(\"scgi_buffer_size\", HSL, 1, 1).size(),",
        "d(\"scgi_buffering\", HSL, 1, 1).flag(),",
        "d(\"scgi_buffers\", HSL, 2, 2).buffers(),",
        "d(\"scgi_busy_buffers_size\", HSL, 1, 1).size(),",
        "d(\"scgi_connect_timeout\", HSL, 1, 1).time(),",
        "d(\"scgi_force_ranges\", HSL, 1, 1).flag().no_effect(),",
        "d(\"scgi_hide_header\", HSL, 1, 1),",
        "d(\"scgi_ignore_headers\", HSL, 1, MANY).no_effect(),",
        "d(\"scgi_intercept_errors\", HSL, 1, 1).flag(),",
        "d(\"scgi_limit_rate\", HSL, 1, 1).no_effect(),",
        "d(\"scgi_max_temp_file_size\", HSL, 1, 1).size(),",
        "d(\"scgi_next_upstream\", HSL, 1, MANY),",
        "d(\"scgi_next_upstream_timeout\", HSL, 1, 1).time(),",
        "d(\"scgi_next_upstream_tries\", HSL, 1, 1),",
        "d(\"scgi_param\", HSL, 2, 3),",
        "d(\"scgi_pass_header\", HSL, 1, 1),",
        "d(\"scgi_pass_request_body\", HSL, 1, 1).flag(),",
        "d(\"scgi_pass_request_headers\", HSL, 1, 1).flag(),",
        "d(\"scgi_read_timeout\", HSL, 1, 1).time(),",
        "d(\"scgi_request_buffering\", HSL, 1, 1).flag(),",
        "d(\"scgi_send_timeout\", HSL, 1, 1).time(),",
        "d(\"scgi_socket_keepalive\", HSL, 1, 1).flag().no_effect(),",
        "d(\"scgi_temp_file_write_size\", HSL, 1, 1).size().no_effect(),",
        "d(\"scgi_temp_path\", HSL, 1, 4),",
        "d(\"uwsgi_bind\", HSL, 1, 2),",
        "d(\"uwsgi_buffer_size\", HSL, 1, 1).size(),",
        "d(\"uwsgi_buffering\", HSL, 1, 1).flag(),",
        "d(\"uwsgi_buffers\", HSL, 2, 2).buffers(),",
        "d(\"uwsgi_busy_buffers_size\", HSL, 1, 1).size(),",
        "d(\"uwsgi_connect_timeout\", HSL, 1, 1).time(),",
        "d(\"uwsgi_force_ranges\", HSL, 1, 1).flag().no_effect(),",
        "d(\"uwsgi_hide_header\", HSL, 1, 1),",
        "d(\"uwsgi_ignore_headers\", HSL, 1, MANY).no_effect(),",
        "d(\"uwsgi_intercept_errors\", HSL, 1, 1).flag(),",
        "d(\"uwsgi_limit_rate\", HSL, 1, 1).no_effect(),",
        "d(\"uwsgi_max_temp_file_size\", HSL, 1, 1).size(),",
        "d(\"uwsgi_next_upstream\", HSL, 1, MANY),",
        "d(\"uwsgi_next_upstream_timeout\", HSL, 1, 1).time(),",
        "d(\"uwsgi_next_upstream_tries\", HSL, 1, 1),",
        "d(\"uwsgi_param\", HSL, 2, 3),",
        "d(\"uwsgi_pass_header\", HSL, 1, 1),",
        "d(\"uwsgi_pass_request_body\", HSL, 1, 1).flag(),",
        "d(\"uwsgi_pass_request_headers\", HSL, 1, 1).flag(),",
        "d(\"uwsgi_read_timeout\", HSL, 1, 1).time(),",
        "d(\"uwsgi_request_buffering\", HSL, 1, 1).flag(),",
        "d(\"uwsgi_send_timeout\", HSL, 1, 1).time(),",
        "d(\"uwsgi_socket_keepalive\", HSL, 1, 1).flag().no_effect(),",
        "d(\"uwsgi_temp_file_write_size\", HSL, 1, 1).size().no_effect(),",
        "d(\"uwsgi_temp_path\", HSL, 1, 4),",
    ];
    fn show(name: &str, s: &Spec) -> String {
        let mut line = format!(
            "d(\"{name}\", {}, {}, {})",
            ctx(s.contexts),
            s.min,
            arity(s.max)
        );
        line.push_str(match s.kind {
            Kind::Any => "",
            Kind::Flag => ".flag()",
            Kind::Size => ".size()",
            Kind::Time => ".time()",
            Kind::Buffers => ".buffers()",
            Kind::Number => ".number()",
            Kind::Custom(_) => ".custom(..)",
        });
        line.push_str(match s.support {
            Support::Yes => "",
            Support::NoEffect => ".no_effect()",
            Support::NoEffectExcept(_) => ".no_effect_except(..)",
            Support::NotYet => ".not_yet()",
            Support::Obsolete(_) => ".obsolete(..)",
        });
        line + ","
    }
    fn ctx(c: u16) -> &'static str {
        if c == HSL {
            "HSL"
        } else {
            "?"
        }
    }
    fn arity(n: u8) -> String {
        if n == MANY {
            "MANY".into()
        } else {
            n.to_string()
        }
    }
    let mut generated: Vec<String> = DIRECTIVES
        .iter()
        .filter_map(|p| p.family)
        .flat_map(|f| {
            f.parts
                .iter()
                .flat_map(|x| x.iter())
                .map(move |s| show(&format!("{}_{}", f.prefix, s.name), s))
        })
        .collect();
    generated.sort();
    assert_eq!(generated, OLD);
}
