//! From the directive tree to what the server runs: a [`Scope`] answers "which
//! value applies here" with nginx's inheritance rules (the innermost level that
//! sets a directive wins; array directives such as `proxy_set_header` are taken
//! whole from the innermost level that has any), typed accessors turn arguments
//! into values with `FILE:LINE` errors, and [`BuildCx`] carries what the build
//! shares (declared variables, upstream groups). [`family`] reads the `proxy_*`,
//! `fastcgi_*`, `uwsgi_*`, `scgi_*`, `memcached_*` directive family once for every
//! protocol. Everything here runs at load time only.

use crate::tree::{Arg, ConfigError, Directive, Span};
use crate::values::{parse_flag, parse_size, parse_time_ms};
pub use junction_core::exchange::Bind;
use junction_core::exchange::{NextUpstream, Timeouts, UpstreamConf};
pub use junction_core::pass::{Family, HIDE_RESPONSE};
use junction_core::relay::BufferPolicy;
use junction_core::upstream::{Group, PeerAddr};
use junction_core::vars::{Template, VarTable};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Builds a config error at a span.
pub fn err(span: &Span, msg: impl Into<String>) -> ConfigError {
    ConfigError {
        span: Some(span.clone()),
        msg: msg.into(),
    }
}

/// `invalid value "X" in "NAME" directive`.
pub fn invalid(d: &Directive, a: &Arg) -> ConfigError {
    err(
        &a.span,
        format!("invalid value \"{}\" in \"{}\" directive", a.value, d.name),
    )
}

/// The levels that apply at one point of the tree, outermost first.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    levels: Vec<&'a [Directive]>,
}

impl<'a> Scope<'a> {
    /// A scope of one level.
    pub fn root(level: &'a [Directive]) -> Self {
        Scope {
            levels: vec![level],
        }
    }

    /// The scope of a nested block.
    pub fn child(&self, level: &'a [Directive]) -> Self {
        let mut levels = self.levels.clone();
        levels.push(level);
        Scope { levels }
    }

    /// The innermost level's directives.
    pub fn here(&self) -> &'a [Directive] {
        self.levels.last().copied().unwrap_or(&[])
    }

    /// `name` at the innermost level only (not inherited: `*_pass`, `return`, …).
    pub fn local(&self, name: &str) -> Option<&'a Directive> {
        self.here().iter().rev().find(|d| d.name == name)
    }

    /// All occurrences of `name` at the innermost level.
    pub fn local_all(&self, name: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.here().iter().filter(move |d| d.name == name)
    }

    /// Whether one of `names` is set at a level at or below `depth` (1: the outermost
    /// level of the scope; e.g. `http` → `server` → `location` has depths 1, 2, 3).
    pub fn set_below(&self, depth: usize, names: &[&str]) -> bool {
        self.levels
            .iter()
            .skip(depth.saturating_sub(1))
            .any(|l| l.iter().any(|d| names.contains(&d.name.as_str())))
    }

    /// `name` from the innermost level that sets it.
    pub fn get(&self, name: &str) -> Option<&'a Directive> {
        self.levels
            .iter()
            .rev()
            .find_map(|l| l.iter().rev().find(|d| d.name == name))
    }

    /// Array semantics: every `name` of the innermost level that has any.
    pub fn array(&self, name: &str) -> Vec<&'a Directive> {
        for l in self.levels.iter().rev() {
            let v: Vec<_> = l.iter().filter(|d| d.name == name).collect();
            if !v.is_empty() {
                return v;
            }
        }
        Vec::new()
    }

    /// Array semantics over a set of names that form one array (e.g. `fastcgi_param`
    /// written by an included file and the location).
    pub fn array_any(&self, names: &[&str]) -> Vec<&'a Directive> {
        for l in self.levels.iter().rev() {
            let v: Vec<_> = l
                .iter()
                .filter(|d| names.contains(&d.name.as_str()))
                .collect();
            if !v.is_empty() {
                return v;
            }
        }
        Vec::new()
    }

    /// First argument of the effective `name`.
    pub fn arg(&self, name: &str) -> Option<(&'a Directive, &'a Arg)> {
        let d = self.get(name)?;
        Some((d, d.args.first()?))
    }

    /// `on|off` flag.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.arg(name) {
            None => Ok(default),
            Some((d, a)) => parse_flag(&a.value).ok_or_else(|| {
                err(
                    &a.span,
                    format!(
                        "invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                        a.value, d.name
                    ),
                )
            }),
        }
    }

    /// A size (`8k`, `1m`).
    pub fn size(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.arg(name) {
            None => Ok(default),
            Some((d, a)) => parse_size(&a.value).ok_or_else(|| invalid(d, a)),
        }
    }

    /// A time (`60s`, `500ms`).
    pub fn time(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.arg(name) {
            None => Ok(default),
            Some((d, a)) => parse_time_ms(&a.value)
                .map(Duration::from_millis)
                .ok_or_else(|| invalid(d, a)),
        }
    }
}

/// What the build shares: declared variables, upstream groups, paths.
#[derive(Debug, Default)]
pub struct BuildCx {
    /// `set` variables, named captures and module variables.
    pub vars: VarTable,
    /// `upstream NAME {}` groups.
    pub upstreams: HashMap<String, Arc<Group>>,
    /// Implicit groups by `host:port`.
    implicit: HashMap<String, Arc<Group>>,
    /// `-p` prefix.
    pub prefix: PathBuf,
    /// Warnings to log once the logger is up (accepted directives without effect).
    pub warnings: Vec<String>,
    /// One resolver per `resolver` directive (keyed by the directive), shared by the
    /// places that inherit it.
    pub resolvers: HashMap<usize, Arc<junction_core::resolver::Resolver>>,
    /// nginx's conf prefix (the main file's directory): where relative certificate paths
    /// (`proxy_ssl_certificate`, …) are resolved.
    pub conf_dir: PathBuf,
    /// Upstream TLS clients by their settings (`upstream_tls`): one per distinct set.
    pub tls_clients: HashMap<String, Arc<junction_core::upstream_tls::TlsClient>>,
}

impl BuildCx {
    /// Compiles an argument into a template.
    pub fn template(&self, a: &Arg) -> Result<Template, ConfigError> {
        Template::compile(&a.value, &self.vars).map_err(|e| err(&a.span, e.to_string()))
    }

    /// Registers the active health probe for `group`, in the protocol of a `*_pass`
    /// that uses it: `make` builds it from the group's `health_check` (its `uri`). Only
    /// groups with a `health_check` get one; the first protocol to register wins
    /// (without any, health checks connect only).
    pub fn probe(
        &self,
        group: &Arc<Group>,
        make: impl FnOnce(&junction_core::health::HealthCheck) -> Arc<dyn junction_core::health::Probe>,
    ) {
        if let Some(hc) = &group.health {
            if group.probe().is_none() {
                group.set_probe(make(hc));
            }
        }
    }

    /// Every group built: `upstream {}` blocks and the implicit groups of `*_pass`
    /// addresses, by name.
    pub fn all_groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<Arc<Group>> = self
            .upstreams
            .values()
            .chain(self.implicit.values())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The group for a `*_pass` target: an `upstream` name, or `host[:port]` /
    /// `unix:/path` resolved now (all addresses of a host name form the group).
    pub fn group(
        &mut self,
        target: &str,
        default_port: u16,
        span: &Span,
    ) -> Result<Arc<Group>, ConfigError> {
        if let Some(g) = self.upstreams.get(target) {
            return Ok(g.clone());
        }
        let key = format!("{target}#{default_port}");
        if let Some(g) = self.implicit.get(&key) {
            return Ok(g.clone());
        }
        let addrs = junction_core::upstream::resolve(target, default_port).map_err(|e| {
            err(
                span,
                format!("host not found in upstream \"{target}\" ({e})"),
            )
        })?;
        let g = Group::implicit(target.to_string(), addrs);
        self.implicit.insert(key, g.clone());
        Ok(g)
    }
}

/// Reads the `PREFIX_*` family at `scope` for `group`.
pub fn family(
    scope: &Scope<'_>,
    prefix: &str,
    group: Arc<Group>,
    bx: &BuildCx,
) -> Result<Family, ConfigError> {
    let n = |s: &str| format!("{prefix}_{s}");
    let page = 4096u64;
    let timeouts = Timeouts {
        connect: scope.time(&n("connect_timeout"), Duration::from_secs(60))?,
        send: scope.time(&n("send_timeout"), Duration::from_secs(60))?,
        read: scope.time(&n("read_timeout"), Duration::from_secs(60))?,
    };
    let buffer_size = scope.size(&n("buffer_size"), page)? as usize;
    let buffers = match scope.get(&n("buffers")) {
        None => (8usize, page as usize),
        Some(d) => {
            let (Some(a), Some(b)) = (d.args.first(), d.args.get(1)) else {
                return Err(err(
                    &d.span,
                    format!("invalid number of arguments in \"{}\" directive", d.name),
                ));
            };
            let num: usize = a.value.parse().map_err(|_| invalid(d, a))?;
            let size = parse_size(&b.value).ok_or_else(|| invalid(d, b))? as usize;
            if num < 2 || size == 0 {
                return Err(err(
                    &d.span,
                    format!("there must be at least 2 \"{}\"", d.name),
                ));
            }
            (num, size)
        }
    };
    let temp_path = match scope.arg(&n("temp_path")) {
        Some((_, a)) => bx.prefix.join(&a.value),
        None => bx.prefix.join(format!("{prefix}_temp")),
    };
    let buffering = BufferPolicy {
        buffering: scope.flag(&n("buffering"), true)?,
        buffer_size,
        buffers,
        busy_buffers_size: scope.size(
            &n("busy_buffers_size"),
            2 * buffer_size.max(buffers.1) as u64,
        )? as usize,
        max_temp_file_size: scope.size(&n("max_temp_file_size"), 1024 * 1024 * 1024)?,
        temp_path: temp_path.clone(),
    };
    let mut next = NextUpstream::default();
    if let Some(d) = scope.get(&n("next_upstream")) {
        next.error = false;
        next.timeout = false;
        let mut k = 0;
        for a in &d.args {
            match a.value.as_str() {
                "error" => next.error = true,
                "timeout" => next.timeout = true,
                // memcached's word for it.
                "invalid_header" | "invalid_response" => next.invalid_header = true,
                "non_idempotent" => next.non_idempotent = true,
                "off" => {}
                "updating" => {}
                // memcached: a miss (its 404) may go to the next server.
                "not_found" => {
                    if let Some(slot) = next.statuses.get_mut(k) {
                        *slot = 404;
                        k += 1;
                    }
                }
                s if s.starts_with("http_") => {
                    let code: u16 = s
                        .get(5..)
                        .and_then(|c| c.parse().ok())
                        .ok_or_else(|| invalid(d, a))?;
                    if let Some(slot) = next.statuses.get_mut(k) {
                        *slot = code;
                        k += 1;
                    }
                }
                _ => return Err(invalid(d, a)),
            }
        }
    }
    next.tries = scope
        .arg(&n("next_upstream_tries"))
        .map_or(Ok(0), |(d, a)| a.value.parse().map_err(|_| invalid(d, a)))?;
    next.timeout_total = scope.time(&n("next_upstream_timeout"), Duration::ZERO)?;
    let bind = match scope.get(&n("bind")) {
        None => Bind::Off,
        Some(d) => {
            let a = d
                .args
                .first()
                .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
            if a.value == "off" {
                Bind::Off
            } else {
                let t = bx.template(a)?;
                match t.as_literal() {
                    Some(lit) => {
                        let s = String::from_utf8_lossy(&lit).into_owned();
                        Bind::Addr(s.parse().map_err(|_| invalid(d, a))?)
                    }
                    None => Bind::Dynamic(t),
                }
            }
        }
    };
    let names = |dname: String| -> Vec<String> {
        scope
            .array(&dname)
            .iter()
            .filter_map(|d| d.args.first())
            .map(|a| a.value.to_ascii_lowercase())
            .collect()
    };
    let keep_conn = prefix != "fastcgi" || scope.flag("fastcgi_keep_conn", false)?;
    Ok(Family {
        upstream: UpstreamConf {
            group,
            bind,
            schema: match prefix {
                "proxy" => "http://",
                "fastcgi" => "fastcgi://",
                "uwsgi" => "uwsgi://",
                "scgi" => "scgi://",
                "memcached" => "memcached://",
                _ => "",
            },
            vars: bx.vars.used(),
            timeouts,
            buffering,
            next,
            keep_conn,
            catch_stderr: scope
                .array(&n("catch_stderr"))
                .iter()
                .filter_map(|d| d.args.first())
                .map(|a| bytes::Bytes::from(a.value.clone().into_bytes()))
                .collect(),
            tls: None,
        },
        request_buffering: scope.flag(&n("request_buffering"), true)?,
        client_body_buffer_size: scope.size("client_body_buffer_size", 16 * 1024)? as usize,
        body_temp_path: match scope.arg("client_body_temp_path") {
            Some((_, a)) => bx.prefix.join(&a.value),
            None => bx.prefix.join("client_body_temp"),
        },
        hide_headers: names(n("hide_header")),
        pass_headers: names(n("pass_header")),
        intercept_errors: scope.flag(&n("intercept_errors"), false)?,
        pass_request_headers: scope.flag(&n("pass_request_headers"), true)?,
        pass_request_body: scope.flag(&n("pass_request_body"), true)?,
        body_in_file: scope
            .arg("client_body_in_file_only")
            .and_then(|(_, a)| junction_core::body_file::BodyInFile::parse(&a.value))
            .unwrap_or_default(),
    })
}

/// Parses `*_param NAME VALUE [if_not_empty]` directives into a param set.
pub fn params(
    scope: &Scope<'_>,
    directive: &str,
    bx: &BuildCx,
) -> Result<junction_core::cgi::ParamSet, ConfigError> {
    let mut out = junction_core::cgi::ParamSet {
        params: Vec::new(),
        pass_request_headers: true,
    };
    for d in scope.array(directive) {
        let (Some(name), Some(value)) = (d.args.first(), d.args.get(1)) else {
            return Err(err(
                &d.span,
                format!("invalid number of arguments in \"{}\" directive", d.name),
            ));
        };
        let if_not_empty = match d.args.get(2) {
            None => false,
            Some(a) if a.value == "if_not_empty" => true,
            Some(a) => return Err(invalid(d, a)),
        };
        out.params.push(junction_core::cgi::ParamSpec {
            name: bytes_of(&name.value),
            value: bx.template(value)?,
            if_not_empty,
        });
    }
    Ok(out)
}

fn bytes_of(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

/// A peer address for display.
pub fn peer_display(p: &PeerAddr) -> String {
    p.to_string()
}

/// How a location matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocKind {
    /// `location = /x`
    Exact,
    /// `location /x`
    Prefix,
    /// `location ^~ /x`
    PrefixNoRegex,
    /// `location ~ re` / `~* re`
    Regex {
        /// `~*`
        caseless: bool,
    },
    /// `location @name`
    Named,
    /// Server level (no location).
    Server,
    /// An `if` block inside a location (a location of its own, nested).
    If,
}

/// What a backend builder knows of its location.
#[derive(Debug, Clone)]
pub struct LocInfo {
    /// How it matches.
    pub kind: LocKind,
    /// Its name (prefix, regex source or `@name`).
    pub name: String,
    /// Where it is.
    pub span: Span,
}

/// A protocol's hook: builds its backend for a location when its `*_pass` is there.
pub type BuildBackend = fn(
    &Scope<'_>,
    &LocInfo,
    &mut BuildCx,
)
    -> Result<Option<Arc<dyn junction_core::backend::Backend>>, ConfigError>;

/// The types an nginx build knows without `types {}` (nginx's own default set is
/// tiny; a bare sites-available file normally sits under Debian's http block,
/// which includes mime.types, so the common ones are here).
const DEFAULT_TYPES: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("shtml", "text/html"),
    ("css", "text/css"),
    ("xml", "text/xml"),
    ("gif", "image/gif"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "application/javascript"),
    ("txt", "text/plain"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("webp", "image/webp"),
    ("json", "application/json"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("mp4", "video/mp4"),
    ("mp3", "audio/mpeg"),
    ("wasm", "application/wasm"),
];

/// The extension → MIME type map that applies at `scope` (`types {}` blocks, array
/// semantics: the innermost level that has any; none → the built-in defaults).
/// Extensions are lower case. The one implementation for static files and every
/// backend that types its responses (memcached).
pub fn mime_types(scope: &Scope<'_>) -> HashMap<String, bytes::Bytes> {
    let mut map = HashMap::new();
    let blocks: Vec<&Directive> = scope.array("types");
    if blocks.is_empty() {
        for (ext, ty) in DEFAULT_TYPES {
            map.insert((*ext).to_string(), bytes::Bytes::from_static(ty.as_bytes()));
        }
    }
    for b in blocks {
        for e in b.block.as_deref().unwrap_or(&[]) {
            for a in &e.args {
                map.insert(a.value.to_ascii_lowercase(), bytes_of(&e.name));
            }
        }
    }
    map
}

/// `default_type` at `scope` (nginx's default: `text/plain`).
pub fn default_type(scope: &Scope<'_>) -> bytes::Bytes {
    scope.arg("default_type").map_or_else(
        || bytes::Bytes::from_static(b"text/plain"),
        |(_, a)| bytes_of(&a.value),
    )
}

/// `fastcgi_split_path_info` and `fastcgi_index` as they apply at this level (both
/// inherited), for `$fastcgi_script_name`/`$fastcgi_path_info`; `None` when neither
/// is set. The regex must have exactly two captures, as nginx requires.
pub fn script_split(
    scope: &Scope<'_>,
) -> Result<Option<Arc<junction_core::cgi::ScriptSplit>>, ConfigError> {
    let regex = match scope.arg("fastcgi_split_path_info") {
        None => None,
        Some((d, a)) => {
            let re = junction_core::regex::Regex::compile(&a.value, false)
                .map_err(|e| err(&d.span, e))?;
            // capture 0 is the whole match
            if re.captures_len() != 3 {
                return Err(err(
                    &d.span,
                    format!("pattern \"{}\" must have 2 captures", a.value),
                ));
            }
            Some(re)
        }
    };
    let index = scope
        .arg("fastcgi_index")
        .map(|(_, a)| bytes::Bytes::copy_from_slice(a.value.as_bytes()))
        .unwrap_or_default();
    if regex.is_none() && index.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(junction_core::cgi::ScriptSplit {
        regex,
        index,
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn content_type_lookup() {
        let types = mime_types(&Scope::root(&[]));
        let dflt = bytes::Bytes::from_static(b"text/plain");
        let ct = |u: &str| junction_core::mime::content_type(u, &types, &dflt);
        assert_eq!(ct("/p.html"), "text/html");
        assert_eq!(ct("/P.HTML"), "text/html");
        assert_eq!(ct("/p.css"), "text/css");
        assert_eq!(ct("/p"), "text/plain");
        assert_eq!(ct("/p.unknownext"), "text/plain");
        assert_eq!(ct("/dir.css/p"), "text/plain");
    }
}
