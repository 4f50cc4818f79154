//! The directive registry: which directives exist, where each may be written, how many
//! arguments it takes, whether it opens a block, what its values must look like and
//! whether Junction implements it — checked over a whole tree in one walk, with every
//! error collected, in nginx's words:
//!
//! ```text
//! unknown directive "foo" in FILE:LINE
//! "proxy_pass" directive is not allowed here in FILE:LINE
//! invalid number of arguments in "listen" directive in FILE:LINE
//! directive "server" has no opening "{" in FILE:LINE
//! directive "listen" is not terminated by ";" in FILE:LINE
//! invalid value "maybe" in "proxy_buffering" directive, it must be "on" or "off" in FILE:LINE
//! "ssl_ocsp" directive is not supported by junction yet (see docs/directives.md) in FILE:LINE
//! ```
//! and, for a directive accepted without effect, the warning
//! `"sendfile" directive is accepted but has no effect in junction in FILE:LINE` (once
//! per place).
//!
//! # Who fills it
//! Each crate exports the [`Directives`] of the nginx modules it implements: this crate
//! the core ones ([`CORE`]: main, events, ngx_http_core_module, `upstream {}`,
//! `match {}`), `junction_server::directives` TLS, HTTP/2, logs, rewrite, compression,
//! limits…, and each protocol crate (`junction_http`, `junction_fastcgi`, …) its own
//! directives plus its share of the shared `PREFIX_*` family ([`Prefix`] over
//! [`FAMILY_BASE`], [`FAMILY_BUFFERED`], [`FAMILY_PARAMS`]: written once, generated for
//! every prefix). The binary puts them together in one `static` [`Registry`], as it
//! collects the backends; this crate's unit tests use [`CORE`] and a test registry.
//!
//! # One line per directive
//! `d(name, contexts, min args, max args)` (or `block(…)`), then its value [`Kind`]
//! (`.flag()`, `.size()`, `.time()`, `.buffers()`, `.number()`, `.custom(f)`) and its
//! [`Support`] when not implemented (`.no_effect()`, `.no_effect_except("off")`,
//! `.not_yet()`): adding a directive is adding one line to its crate's table.
//!
//! # Contexts
//! nginx's context flags (`if` blocks are their own contexts, as `NGX_HTTP_SIF_CONF`/
//! `NGX_HTTP_LIF_CONF`: only the directives nginx allows there pass). A name may have
//! several lines for different contexts (`server` is a block in `http`, an address in
//! `upstream`). The entries of `types {}` (`mime/type ext…;`, at least one extension) and
//! `map {}`, `geo {}`, `split_clients {}` (`key value;`, or `hostnames;`/`volatile;`/
//! `ranges;`/`proxy_recursive;`) are free-form.

use crate::tree::{ConfigError, Directive};
use crate::value_check::{client_body_in_file_only, server_tokens};

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
    /// `acme_issuer {}`: an ACME certificate issuer.
    AcmeIssuer,
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
            (_, "map" | "geo" | "split_clients" | "charset_map") => Context::Map,
            (_, "match") => Context::Match,
            (_, "acme_issuer") => Context::AcmeIssuer,
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
/// `acme_issuer {}`
pub const ACME: u16 = Context::AcmeIssuer.bit();
/// http, server and location: where most http directives go.
pub const HSL: u16 = HTTP | SRV | LOC;
/// Everywhere.
pub const ANY: u16 = u16::MAX;
/// No upper limit on the number of arguments.
pub const MANY: u8 = u8::MAX;

/// What the arguments of a directive must look like, checked wherever it is written
/// (`crate::value_check`), as nginx checks them while parsing.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Anything (the directive's own build reads it).
    Any,
    /// `on` or `off` (`ngx_conf_set_flag_slot`).
    Flag,
    /// Sizes: `8`, `4k`, `1m` (`ngx_conf_set_size_slot`), every argument.
    Size,
    /// Times: `500ms`, `60s`, `1m30s` (`ngx_conf_set_msec_slot`), every argument.
    Time,
    /// `N SIZE` (`ngx_conf_set_bufs_slot`).
    Buffers,
    /// A non-negative integer (`ngx_conf_set_num_slot`), every argument.
    Number,
    /// A check of its own.
    Custom(fn(&Directive) -> Result<(), ConfigError>),
}

/// Whether Junction does what a directive says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Yes,
    /// Accepted for nginx compatibility without effect: each place it is written logs
    /// `"NAME" directive is accepted but has no effect in junction in FILE:LINE` once
    /// (listed in docs/directives.md).
    NoEffect,
    /// [`Support::NoEffect`], except with this first argument, which is what Junction
    /// does anyway (`daemon off`): no warning then.
    NoEffectExcept(&'static str),
    /// Known to nginx, not implemented yet: a load error with `FILE:LINE`, never ignored.
    NotYet,
    /// Obsolete in nginx, without effect, with nginx's warning: `the "NAME" directive is
    /// obsolete, use the "NEW" directive instead` (`Some(NEW)`) or `…, ignored` (`None`).
    Obsolete(Option<&'static str>),
}

/// One directive as the registry knows it.
#[derive(Debug, Clone, Copy)]
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
    /// What its arguments must look like.
    pub kind: Kind,
    /// Whether Junction implements it.
    pub support: Support,
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

    /// Its arguments are `on|off`.
    pub const fn flag(self) -> Spec {
        self.kind(Kind::Flag)
    }

    /// Its arguments are sizes.
    pub const fn size(self) -> Spec {
        self.kind(Kind::Size)
    }

    /// Its arguments are times.
    pub const fn time(self) -> Spec {
        self.kind(Kind::Time)
    }

    /// Its arguments are `N SIZE`.
    pub const fn buffers(self) -> Spec {
        self.kind(Kind::Buffers)
    }

    /// Its arguments are non-negative integers.
    pub const fn number(self) -> Spec {
        self.kind(Kind::Number)
    }

    /// Its arguments are checked by `f`.
    pub const fn custom(self, f: fn(&Directive) -> Result<(), ConfigError>) -> Spec {
        self.kind(Kind::Custom(f))
    }

    /// Its arguments look like `kind`.
    pub const fn kind(mut self, kind: Kind) -> Spec {
        self.kind = kind;
        self
    }

    /// Accepted without effect ([`Support::NoEffect`]).
    pub const fn no_effect(mut self) -> Spec {
        self.support = Support::NoEffect;
        self
    }

    /// Accepted without effect unless its first argument is `arg`
    /// ([`Support::NoEffectExcept`]).
    pub const fn no_effect_except(mut self, arg: &'static str) -> Spec {
        self.support = Support::NoEffectExcept(arg);
        self
    }

    /// Not supported yet ([`Support::NotYet`]).
    pub const fn not_yet(mut self) -> Spec {
        self.support = Support::NotYet;
        self
    }

    /// Obsolete, use `new` instead ([`Support::Obsolete`]).
    pub const fn obsolete_for(mut self, new: &'static str) -> Spec {
        self.support = Support::Obsolete(Some(new));
        self
    }

    /// Obsolete, ignored ([`Support::Obsolete`]).
    pub const fn obsolete(mut self) -> Spec {
        self.support = Support::Obsolete(None);
        self
    }
}

/// A simple directive: `d(name, contexts, min args, max args)`, then its value kind and
/// support if they are not [`Kind::Any`] and [`Support::Yes`]:
/// `d("sendfile", HSL | LIF, 1, 1).flag().no_effect()`.
pub const fn d(name: &'static str, contexts: u16, min: u8, max: u8) -> Spec {
    Spec {
        name,
        contexts,
        min,
        max,
        block: false,
        kind: Kind::Any,
        support: Support::Yes,
    }
}

/// A directive that opens a block.
pub const fn block(name: &'static str, contexts: u16, min: u8, max: u8) -> Spec {
    Spec {
        name,
        contexts,
        min,
        max,
        block: true,
        kind: Kind::Any,
        support: Support::Yes,
    }
}

/// The core directives (main, events, ngx_http_core_module, `upstream {}`, `match {}`):
/// `d(name, contexts, min args, max args)` for a simple directive, `block(…)` for one
/// that opens a block (see [`d`]). The other crates' directives are in their own tables.
pub static DIRECTIVES: &[Spec] = &[
    // main
    d("user", MAIN, 1, 2).no_effect(),
    d("worker_processes", MAIN, 1, 1),
    d("pid", MAIN, 1, 1),
    d("error_log", MAIN | HTTP | SRV | LOC, 1, 2),
    d("daemon", MAIN, 1, 1).flag().no_effect_except("off"),
    d("master_process", MAIN, 1, 1).flag().no_effect(),
    d("worker_rlimit_nofile", MAIN, 1, 1).number(),
    d("include", ANY, 1, 1),
    d("load_module", MAIN, 1, 1).no_effect(),
    d("env", MAIN, 1, 1).no_effect(),
    block("events", MAIN, 0, 0),
    block("http", MAIN, 0, 0),
    // events
    d("worker_connections", EVENTS, 1, 1).number(),
    d("use", EVENTS, 1, 1).no_effect(),
    d("multi_accept", EVENTS, 1, 1).flag().no_effect(),
    d("accept_mutex", EVENTS, 1, 1).flag().no_effect(),
    // http core
    block("server", HTTP, 0, 0),
    block("upstream", HTTP, 1, 1),
    block("types", HSL, 0, 0),
    d("default_type", HSL, 1, 1),
    d("sendfile", HSL | LIF, 1, 1).flag().no_effect(),
    d("tcp_nopush", HSL, 1, 1).flag().no_effect(),
    d("tcp_nodelay", HSL, 1, 1).flag().no_effect(),
    d("keepalive_timeout", HSL, 1, 2).time(),
    d("keepalive_requests", HSL, 1, 1).number(),
    d("server_tokens", HSL, 1, 1).custom(server_tokens),
    d("client_max_body_size", HSL, 1, 1).size(),
    d("client_body_buffer_size", HSL, 1, 1).size(),
    d("client_body_temp_path", HSL, 1, 4),
    d("client_body_in_single_buffer", HSL, 1, 1).flag(),
    d("client_body_in_file_only", HSL, 1, 1).custom(client_body_in_file_only),
    d("absolute_redirect", HSL, 1, 1).flag().no_effect(),
    d("port_in_redirect", HSL, 1, 1).flag().no_effect(),
    d("server_name_in_redirect", HSL, 1, 1).flag().no_effect(),
    d("ignore_invalid_headers", HTTP | SRV, 1, 1).flag(),
    d("underscores_in_headers", HTTP | SRV, 1, 1).flag(),
    d("merge_slashes", HTTP | SRV, 1, 1).flag(),
    d("client_header_buffer_size", HTTP | SRV, 1, 1).size(),
    d("large_client_header_buffers", HTTP | SRV, 2, 2).buffers(),
    d("client_header_timeout", HTTP | SRV, 1, 1).time(),
    d("client_body_timeout", HSL, 1, 1).time(),
    d("keepalive_time", HSL, 1, 1).time(),
    d("lingering_close", HSL, 1, 1),
    d("lingering_time", HSL, 1, 1),
    d("lingering_timeout", HSL, 1, 1).time(),
    d("reset_timedout_connection", HSL, 1, 1),
    d("send_timeout", HSL, 1, 1).time(),
    d("server_names_hash_bucket_size", HTTP, 1, 1).no_effect(),
    d("server_names_hash_max_size", HTTP, 1, 1).no_effect(),
    d("types_hash_max_size", HSL, 1, 1).no_effect(),
    d("resolver", HSL | UPS, 1, MANY),
    d("resolver_timeout", HSL | UPS, 1, 1).time(),
    d("root", HSL | LIF, 1, 1),
    d("log_not_found", HSL, 1, 1).flag(),
    d("log_subrequest", HSL, 1, 1).flag().no_effect(),
    d("open_file_cache_valid", HSL, 1, 1).no_effect(),
    d("open_file_cache_min_uses", HSL, 1, 1).no_effect(),
    d("open_file_cache_errors", HSL, 1, 1).flag().no_effect(),
    d("open_file_cache_events", HSL, 1, 1).flag().no_effect(),
    d("types_hash_bucket_size", HSL, 1, 1).no_effect(),
    d("variables_hash_max_size", HTTP, 1, 1).no_effect(),
    d("variables_hash_bucket_size", HTTP, 1, 1).no_effect(),
    d("error_page", HSL | LIF, 2, MANY),
    d("try_files", SRV | LOC, 2, MANY),
    d("internal", LOC, 0, 0),
    d("alias", LOC, 1, 1),
    d("limit_rate", HSL | LIF, 1, 1),
    d("recursive_error_pages", HSL, 1, 1).flag(),
    d("etag", HSL, 1, 1).flag(),
    d("if_modified_since", HSL, 1, 1).no_effect(),
    d("satisfy", HSL, 1, 1),
    d("open_file_cache", HSL, 1, 2).no_effect(),
    d("auth_delay", HSL, 1, 1),
    d("limit_rate_after", HSL | LIF, 1, 1),
    // server and location
    d("listen", SRV, 1, MANY),
    d("server_name", SRV, 1, MANY),
    block("location", SRV | LOC, 1, 2),
    block("limit_except", LOC, 1, MANY),
    // upstream block
    d("server", UPS, 1, MANY),
    d("keepalive", UPS, 1, 1),
    d("keepalive_timeout", UPS, 1, 1).time(),
    d("keepalive_requests", UPS, 1, 1).number(),
    d("keepalive_time", UPS, 1, 1).time(),
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
];

/// The `PREFIX_*` directives every upstream module has (`proxy_`, `fastcgi_`, `uwsgi_`,
/// `scgi_`, `memcached_`), each [`Spec::name`] the part after `PREFIX_`.
pub static FAMILY_BASE: &[Spec] = &[
    d("bind", HSL, 1, 2),
    d("connect_timeout", HSL, 1, 1).time(),
    d("read_timeout", HSL, 1, 1).time(),
    d("send_timeout", HSL, 1, 1).time(),
    d("buffer_size", HSL, 1, 1).size(),
    d("next_upstream", HSL, 1, MANY),
    d("next_upstream_tries", HSL, 1, 1),
    d("next_upstream_timeout", HSL, 1, 1).time(),
    d("socket_keepalive", HSL, 1, 1).flag().no_effect(),
];

/// The `PREFIX_*` directives of the modules that relay an HTTP-like response through
/// the buffering machinery (all but memcached).
pub static FAMILY_BUFFERED: &[Spec] = &[
    d("buffering", HSL, 1, 1).flag(),
    d("buffers", HSL, 2, 2).buffers(),
    d("busy_buffers_size", HSL, 1, 1).size(),
    d("max_temp_file_size", HSL, 1, 1).size(),
    d("temp_file_write_size", HSL, 1, 1).size().no_effect(),
    d("temp_path", HSL, 1, 4),
    d("request_buffering", HSL, 1, 1).flag(),
    d("hide_header", HSL, 1, 1),
    d("pass_header", HSL, 1, 1),
    d("ignore_headers", HSL, 1, MANY).no_effect(),
    d("intercept_errors", HSL, 1, 1).flag(),
    d("pass_request_headers", HSL, 1, 1).flag(),
    d("pass_request_body", HSL, 1, 1).flag(),
    d("force_ranges", HSL, 1, 1).flag().no_effect(),
    d("limit_rate", HSL, 1, 1).no_effect(),
];

/// `PREFIX_param NAME VALUE [if_not_empty]`: the CGI-style modules (FastCGI, uwsgi, SCGI).
pub static FAMILY_PARAMS: &[Spec] = &[d("param", HSL, 2, 3)];

/// One module's share of the `PREFIX_*` family: its prefix and the parts of the family
/// it has (nginx gives memcached only [`FAMILY_BASE`]).
#[derive(Debug, Clone, Copy)]
pub struct Prefix {
    /// `proxy`, `fastcgi`, …
    pub prefix: &'static str,
    /// Its parts of the family.
    pub parts: &'static [&'static [Spec]],
}

impl Prefix {
    /// The family member `name` is (`fastcgi_buffers` → the `buffers` spec), if any.
    pub fn member(&self, name: &str) -> Option<&'static Spec> {
        let rest = name.strip_prefix(self.prefix)?.strip_prefix('_')?;
        self.parts
            .iter()
            .flat_map(|p| p.iter())
            .find(|s| s.name == rest)
    }
}

/// One crate's directives: its table and its share of the `PREFIX_*` family. Each crate
/// that implements directives exports one (`junction_config::registry::CORE`,
/// `junction_server::directives::DIRECTIVES`, `junction_fastcgi::directives::DIRECTIVES`,
/// …); the binary assembles them into a [`Registry`].
#[derive(Debug, Clone, Copy)]
pub struct Directives {
    /// Its directives, one line each.
    pub specs: &'static [Spec],
    /// Its `PREFIX_*` family, if it is an upstream module.
    pub family: Option<Prefix>,
}

/// The core directives: main, events, ngx_http_core_module, `upstream {}`, `match {}`.
pub static CORE: Directives = Directives {
    specs: DIRECTIVES,
    family: None,
};

/// Every directive Junction knows: the [`Directives`] of each crate, put together once
/// (a `static` in the binary). It checks a tree ([`Registry::check`]).
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    parts: &'static [&'static Directives],
}

impl Registry {
    /// The registry of these crates' directives.
    pub const fn new(parts: &'static [&'static Directives]) -> Registry {
        Registry { parts }
    }

    /// The registry lines for `name` (several when it differs between contexts).
    pub fn lookup<'a>(&self, name: &'a str) -> impl Iterator<Item = &'static Spec> + 'a {
        let parts = self.parts;
        parts.iter().flat_map(move |p| {
            p.specs
                .iter()
                .filter(move |s| s.name == name)
                .chain(p.family.and_then(|f| f.member(name)))
        })
    }

    /// The spec for `name` in `ctx`, if it may be written there.
    pub fn spec(&self, name: &str, ctx: Context) -> Option<&'static Spec> {
        self.lookup(name).find(|s| s.allowed_in(ctx))
    }

    /// Every line, `(name, spec)`, the families written out (`fastcgi_buffers`, …).
    pub fn all(&self) -> impl Iterator<Item = (String, &'static Spec)> + '_ {
        self.parts.iter().flat_map(|p| {
            let family = p.family.into_iter().flat_map(|f| {
                f.parts
                    .iter()
                    .flat_map(|x| x.iter())
                    .map(move |s| (format!("{}_{}", f.prefix, s.name), s))
            });
            p.specs
                .iter()
                .map(|s| (s.name.to_string(), s))
                .chain(family)
        })
    }

    /// What is wrong with the table itself: a name listed twice for one context, fewer
    /// arguments allowed than required (a test of every registry asserts none).
    pub fn conflicts(&self) -> Vec<String> {
        let all: Vec<(String, &Spec)> = self.all().collect();
        let mut out = Vec::new();
        for (i, (n, s)) in all.iter().enumerate() {
            if s.max != MANY && s.min > s.max {
                out.push(format!("{n}: min > max"));
            }
            for (m, t) in all.iter().skip(i + 1) {
                if n == m && s.contexts & t.contexts != 0 {
                    out.push(format!("{n} listed twice for one context"));
                }
            }
        }
        out
    }

    /// Check every directive of `tree` (its top level in [`top_context`]): known, allowed
    /// where it is, right number of arguments, block or not, values of its [`Kind`], and
    /// its [`Support`]. All errors are collected, in file order; without errors, the
    /// warnings for the directives accepted without effect.
    pub fn check(&self, tree: &[Directive]) -> Result<Vec<String>, Vec<ConfigError>> {
        self.check_in(tree, top_context(tree))
    }

    /// [`Registry::check`] with the top level in `ctx`.
    pub fn check_in(
        &self,
        tree: &[Directive],
        ctx: Context,
    ) -> Result<Vec<String>, Vec<ConfigError>> {
        let mut walk = Walk {
            registry: self,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        walk.block(tree, ctx);
        if walk.errors.is_empty() {
            Ok(walk.warnings)
        } else {
            Err(walk.errors)
        }
    }
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

/// One walk over a tree: the errors, and warnings for the directives accepted without
/// effect (each once, in file order).
struct Walk<'r> {
    registry: &'r Registry,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    fn block(&mut self, tree: &[Directive], ctx: Context) {
        for d in tree {
            match ctx {
                Context::Types | Context::Map => check_entry(d, ctx, &mut self.errors),
                _ => self.directive(d, ctx),
            }
        }
    }

    fn directive(&mut self, d: &Directive, ctx: Context) {
        let name = d.name.as_str();
        let errors = &mut self.errors;
        let Some(any) = self.registry.lookup(name).next() else {
            errors.push(d.error(format!("unknown directive \"{name}\"")));
            return;
        };
        let spec = self.registry.spec(name, ctx);
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
            Some(s) => self.support(d, s),
        }
        // Check inside a block even when the block itself is misplaced, so one run reports
        // all.
        if let Some(block) = &d.block {
            if spec.unwrap_or(any).block {
                if let Some(child) = ctx.child(name) {
                    self.block(block, child);
                }
            }
        }
    }

    /// The value check and the support of a well-placed directive `d` of spec `s`.
    fn support(&mut self, d: &Directive, s: &Spec) {
        let name = &d.name;
        let warning = match s.support {
            Support::NotYet => {
                self.errors.push(d.error(format!(
                    "\"{name}\" directive is not supported by junction yet (see docs/directives.md)"
                )));
                return;
            }
            Support::Yes => None,
            Support::NoEffectExcept(arg) if d.args.first().is_some_and(|a| a.value == arg) => None,
            Support::NoEffect | Support::NoEffectExcept(_) => Some(format!(
                "\"{name}\" directive is accepted but has no effect in junction in {}",
                d.span
            )),
            Support::Obsolete(Some(new)) => Some(format!(
                "the \"{name}\" directive is obsolete, use the \"{new}\" directive instead in {}",
                d.span
            )),
            Support::Obsolete(None) => Some(format!(
                "the \"{name}\" directive is obsolete, ignored in {}",
                d.span
            )),
        };
        crate::value_check::check_values(d, s.kind, &mut self.errors);
        if let Some(w) = warning {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
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

/// The registry of this crate's unit tests: [`CORE`], the five families, and stand-ins
/// for the few directives of the other crates the tests write.
#[cfg(test)]
pub(crate) static TEST: Registry = Registry::new(&[
    &CORE,
    &testing::OTHERS,
    &testing::PROXY,
    &testing::FASTCGI,
    &testing::UWSGI,
    &testing::SCGI,
    &testing::MEMCACHED,
]);

#[cfg(test)]
mod testing {
    use super::*;

    pub(super) static OTHERS: Directives = Directives {
        specs: &[
            d("proxy_pass", LOC | LIF | LMT, 1, 1),
            d("proxy_set_header", HSL, 2, 2),
            d("proxy_http_version", HSL, 1, 1),
            d("fastcgi_pass", LOC | LIF, 1, 1),
            d("uwsgi_pass", LOC | LIF, 1, 1),
            d("uwsgi_modifier1", HSL, 1, 1),
            d("scgi_pass", LOC | LIF, 1, 1),
            d("memcached_pass", LOC | LIF, 1, 1),
            d("memcached_gzip_flag", HSL, 1, 1),
            block("map", HTTP, 2, 2),
            d("log_format", HTTP, 2, MANY),
            d("access_log", HSL | LIF | LMT, 1, MANY),
            block("if", SRV | LOC, 1, MANY),
            d("set", SRV | SIF | LOC | LIF, 2, 2),
            d("return", SRV | SIF | LOC | LIF, 1, 2),
            d("break", SRV | SIF | LOC | LIF, 0, 0),
            d("add_header", HSL | LIF, 2, 3),
            d("expires", HSL | LIF, 1, 2),
            d("deny", HSL | LMT, 1, 1),
            d("ssl_ocsp", HTTP | SRV, 1, 1).not_yet(),
            d("http2_idle_timeout", HTTP | SRV, 1, 1)
                .time()
                .obsolete_for("keepalive_timeout"),
            d("http2_push", HSL, 1, 1).obsolete(),
        ],
        family: None,
    };

    const fn family(prefix: &'static str, parts: &'static [&'static [Spec]]) -> Directives {
        Directives {
            specs: &[],
            family: Some(Prefix { prefix, parts }),
        }
    }

    pub(super) static PROXY: Directives = family("proxy", &[FAMILY_BASE, FAMILY_BUFFERED]);
    pub(super) static FASTCGI: Directives =
        family("fastcgi", &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS]);
    pub(super) static UWSGI: Directives =
        family("uwsgi", &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS]);
    pub(super) static SCGI: Directives =
        family("scgi", &[FAMILY_BASE, FAMILY_BUFFERED, FAMILY_PARAMS]);
    pub(super) static MEMCACHED: Directives = family("memcached", &[FAMILY_BASE]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::tree::parse_nginx_str;
    use std::path::Path;

    fn check(tree: &[Directive]) -> Result<Vec<String>, Vec<ConfigError>> {
        TEST.check(tree)
    }

    fn check_in(tree: &[Directive], ctx: Context) -> Result<Vec<String>, Vec<ConfigError>> {
        TEST.check_in(tree, ctx)
    }

    fn spec(name: &str, ctx: Context) -> Option<&'static Spec> {
        TEST.spec(name, ctx)
    }

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
        assert_eq!(TEST.conflicts(), Vec::<String>::new());
        assert_eq!(spec("server", Context::Http).map(|s| s.block), Some(true));
        assert_eq!(
            spec("server", Context::Upstream).map(|s| s.block),
            Some(false)
        );
        assert!(spec("uwsgi_temp_path", Context::Location).is_some());
        assert!(spec("scgi_pass", Context::LocationIf).is_some());
        assert!(spec("scgi_pass", Context::Server).is_none());
        assert_eq!(TEST.lookup("fastcgi_buffers").count(), 1);
        assert_eq!(TEST.lookup("memcached_buffers").count(), 0);
        assert_eq!(TEST.lookup("fastcgi_").count(), 0);
        assert_eq!(TEST.lookup("fastcgibuffers").count(), 0);
    }

    #[test]
    fn no_effect_warns_once_per_place_and_not_yet_is_an_error() {
        let src = "daemon off;\ndaemon on;\nhttp {\n    sendfile on;\n    server {\n        \
                   location / { proxy_force_ranges on; memcached_socket_keepalive on; }\n    \
                   }\n}\n";
        let warnings: Vec<String> = check(&parse(src))
            .unwrap()
            .iter()
            .map(|w| w.replace(" in /nonexistent/r.conf:", " @"))
            .collect();
        let no = |n: &str, l: u32| {
            format!("\"{n}\" directive is accepted but has no effect in junction @{l}")
        };
        assert_eq!(
            warnings,
            [
                no("daemon", 2),
                no("sendfile", 4),
                no("proxy_force_ranges", 6),
                no("memcached_socket_keepalive", 6)
            ]
        );
        let obsolete = check(&parse(
            "http {\n    http2_idle_timeout 3m;\n    http2_push /a;\n}\n",
        ))
        .unwrap();
        assert_eq!(
            obsolete,
            [
                "the \"http2_idle_timeout\" directive is obsolete, use the \"keepalive_timeout\" directive instead in /nonexistent/r.conf:2",
                "the \"http2_push\" directive is obsolete, ignored in /nonexistent/r.conf:3",
            ]
        );
        // the same place twice (an included file expanded twice): one warning
        let tree = parse("sendfile on;");
        let twice: Vec<Directive> = tree.iter().chain(&tree).cloned().collect();
        assert_eq!(check_in(&twice, Context::Http).unwrap().len(), 1);
        assert_eq!(
            errors("http { server { ssl_ocsp on; sendfile maybe; keepalive_requests 1k; } }"),
            [
                "\"ssl_ocsp\" directive is not supported by junction yet (see docs/directives.md) @1",
                "invalid value \"maybe\" in \"sendfile\" directive, it must be \"on\" or \"off\" @1",
                "invalid value \"1k\" in \"keepalive_requests\" directive @1",
            ]
        );
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
