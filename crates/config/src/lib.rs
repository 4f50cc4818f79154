//! junction-config: Junction's configuration, in nginx syntax or in TOML, parsed into one
//! directive tree, checked against one directive registry.
//!
//! ```text
//! nginx text ──lexer/parser──┐
//!                            ├─→ Vec<Directive> { name, args, block, span }
//! TOML ───────toml_edit──────┘        └─→ Registry::check (names, contexts, arity,
//!                                              │    values, no-effect warnings, not-yet errors)
//!                                              └─→ typed model
//! ```
//!
//! Both syntaxes produce the same tree, so every check and every error message downstream is
//! written once, and an error points at `FILE:LINE` (nginx syntax, like nginx itself) or
//! `FILE:LINE:COL` (TOML).
//!
//! # Layout
//! - [`tree`]: [`Span`], [`Arg`], [`Directive`], [`ConfigError`]; [`load`] and the
//!   [`Loader`] (syntax by file extension, `include` expansion, built-in copies of
//!   `mime.types`, `fastcgi_params`, `fastcgi.conf`, `uwsgi_params`, `scgi_params`);
//!   [`print_nginx`] for `junction -T`.
//! - `lexer` (private): nginx's `ngx_conf_read_token()`, ported with its quirks and messages.
//! - `toml_syntax` (private): the TOML mapping below.
//! - [`registry`]: the mechanism of the one directive registry ([`registry::Spec`]: name,
//!   contexts, arity, value kind, support; [`registry::Registry`]: the crates' tables put
//!   together, and its one walk over a tree), the core directives
//!   ([`registry::CORE`]) and the shared `PREFIX_*` family each upstream module takes its
//!   part of. The other crates export their own tables; the binary assembles them.
//! - [`values`]: `on`/`off`, sizes and times with nginx's rules.
//! - [`value_check`]: those values checked from each directive's kind wherever it is
//!   written, in the registry's walk (every bad value of a file reported, each with
//!   `FILE:LINE`).
//! - [`model`]: scopes with nginx's inheritance, the shared `*_` directive family.
//! - [`cgi_pass`]: builds a CGI-style `*_pass` (uwsgi, SCGI) at load; its handler runs
//!   in `junction_core::pass`.
//! - [`upstream_tls`]: the `proxy_ssl_*` directives → one rustls client per distinct
//!   settings (`proxy_pass https://…`).
//! - [`upstream`]: `upstream {}` blocks (servers, balancing method, keepalive,
//!   `health_check`, `queue`, `server … resolve`) and `match {}` blocks → server groups.
//! - [`resolver`]: `resolver` / `resolver_timeout` → the core's resolver, one per
//!   directive, shared where inherited.
//!
//! # nginx syntax
//! Exactly nginx's lexer: words separated by whitespace, `;` ends a directive, `{ … }` a
//! block, `#` comments from the start of a word to the end of the line, `"…"`/`'…'` quotes
//! with `\"`, `\'`, `\\`, `\n`, `\r`, `\t` escapes (any other `\x` stays as written), and
//! `$var`/`${var}` kept verbatim in the argument (variables are compiled later). Errors have
//! nginx's text: `unexpected "}"`, `unexpected end of file, expecting ";" or "}"`, …
//! `include PATTERN;` is expanded in place while loading; see [`Loader`] for how paths are
//! resolved.
//!
//! # TOML syntax
//! The same directives, written as TOML:
//! - top-level keys are directives of the main context, as in a top-level nginx file (a file
//!   of only `[[server]]` tables is a bare "sites-available" file, see
//!   [`registry::is_bare_http`]);
//! - a string is **one** directive whose arguments are the string split with the nginx lexer
//!   (`proxy_buffers = "8 2k"`, `add_header = 'X-Msg "hello world" always'`); an empty string
//!   is a directive without arguments (`internal = ""`);
//! - an integer or float is one argument; `true`/`false` are `on`/`off`;
//! - an array repeats the directive, one occurrence per element: a string element is split
//!   as above, an array element is the exact arguments (not split, so no quoting needed),
//!   a table element is a block;
//! - a table is a block directive; its arguments come from its `args` key (a string, split,
//!   or an array, exact); its other keys are the block's directives in order.
//!
//! ```toml
//! user = "www-data"
//! worker_processes = 2
//!
//! [events]
//! worker_connections = 1024
//!
//! [http]
//! include = "mime.types"
//! sendfile = true
//! keepalive_timeout = "65s"
//!
//! [[http.upstream]]
//! args = "app"
//! server = ["127.0.0.1:9000", "127.0.0.1:9001 backup"]
//!
//! [[http.server]]
//! listen = [80, "[::]:80"]
//! server_name = "example.com www.example.com"
//! add_header = 'X-Msg "hello world" always'
//!
//! [[http.server.location]]
//! args = "/"
//! proxy_pass = "http://app"
//! proxy_set_header = ["Host $host", "X-Real-IP $remote_addr"]
//!
//! [[http.server.location]]
//! args = ["~", '\.php$']
//! include = "fastcgi_params"
//! fastcgi_param = [["SCRIPT_FILENAME", "$document_root$fastcgi_script_name"]]
//! fastcgi_pass = "unix:/run/php/php-fpm.sock"
//! ```
//! is the tree of
//! ```nginx
//! user www-data;
//! worker_processes 2;
//! events {
//!     worker_connections 1024;
//! }
//! http {
//!     include mime.types;
//!     sendfile on;
//!     keepalive_timeout 65s;
//!     upstream app {
//!         server 127.0.0.1:9000;
//!         server 127.0.0.1:9001 backup;
//!     }
//!     server {
//!         listen 80;
//!         listen [::]:80;
//!         server_name example.com www.example.com;
//!         add_header X-Msg "hello world" always;
//!         location / {
//!             proxy_pass http://app;
//!             proxy_set_header Host $host;
//!             proxy_set_header X-Real-IP $remote_addr;
//!         }
//!         location ~ \.php$ {
//!             include fastcgi_params;
//!             fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
//!             fastcgi_pass unix:/run/php/php-fpm.sock;
//!         }
//!     }
//! }
//! ```
//! A bare file is `[[server]]` tables at the top level. TOML fixes one thing nginx syntax
//! leaves open: all occurrences of a directive in one block are written together (one array),
//! so they keep their order relative to each other but not to other directives — which no
//! nginx directive depends on except `location` (all regex locations are one array, in order)
//! and `allow`/`deny` (one run of `allow` then one of `deny`, or the reverse, as the keys are
//! written; a rule list that alternates them more often needs nginx syntax).
//! Keys keep the order they are written in. Every directive and argument has line and column;
//! a TOML syntax error is reported as `invalid TOML: … in FILE:LINE:COL`.
//!
//! # Why `toml_edit` rather than serde
//! `toml_edit`'s document keeps the byte span of every key and value and the order of keys,
//! which serde's `toml::Value` loses; spans are what make TOML errors as precise as nginx's.
#![forbid(unsafe_code)]

pub mod cgi_pass;
mod lexer;
pub mod model;
pub mod registry;
pub mod resolver;
mod toml_syntax;
pub mod tree;
pub mod upstream;
pub mod upstream_tls;
pub mod value_check;
pub mod values;

pub use tree::{
    builtin_include, load, parse_nginx_str, parse_toml_str, print_nginx, same_tree, Arg,
    ConfigError, Directive, Loader, Span,
};
