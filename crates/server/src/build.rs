//! From the directive tree to the [`Runtime`] the server runs: servers, the
//! location tree with each location's compiled settings and backend, listen
//! addresses, logs. Runs once at load (and for `-t`); nothing here runs per request.

use crate::log::{AccessLog, LogWriters};
use crate::route::{Loc, ServerName};
use bytes::Bytes;
use http::HeaderName;
use junction_config::model::{err, invalid, BuildBackend, BuildCx, LocInfo, LocKind, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::backend::Backend;
use junction_core::upstream::Group;
use junction_core::vars::Template;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One `error_page` rule.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// Statuses it applies to.
    pub codes: Vec<u16>,
    /// `None`: keep the status; `Some(None)`: `=` (the fallback's status); `Some(Some(c))`: `=c`.
    pub overwrite: Option<Option<u16>>,
    /// URI or `@name` (may hold variables).
    pub target: Template,
}

/// What `set` assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetVar {
    /// A `set` variable (or a module variable such as `$memcached_key`): its slot.
    Slot(usize),
    /// `$args`, the one built-in variable nginx lets `set` change.
    Args,
}

/// `return CODE [TEXT|URL]` / `return URL`.
#[derive(Debug, Clone)]
pub struct Return {
    /// Status.
    pub code: u16,
    /// Body text or redirect URL.
    pub text: Option<Template>,
}

/// A location's compiled settings (inherited values already resolved).
pub struct LocConf {
    /// The connection settings a location sets itself (`keepalive_timeout`,
    /// `send_timeout`, `lingering_*`, …): they apply after a request that ends here.
    pub conn: Option<Arc<crate::http1::ConnConf>>,
    /// The location's own content handler (`proxy_pass` / `fastcgi_pass` / …,
    /// `stub_status`, `api`), or for an `if` block the enclosing location's; `None`:
    /// static files.
    pub backend: Option<Arc<dyn Backend>>,
    /// What the content phase runs: `backend`, else this location's static files
    /// (`crate::static_files::StaticFiles`).
    pub content: Arc<dyn Backend>,
    /// `content.takes_body()`, asked once here.
    pub content_takes_body: bool,
    /// `root` (default `html` under the prefix).
    pub root: Template,
    /// `alias`.
    pub alias: Option<Template>,
    /// `try_files`.
    pub try_files: Vec<Template>,
    /// `set`/`rewrite`/`return`/`break`/`if` of this level only (rewrite-module
    /// directives are not inherited), in order.
    pub script: crate::rewrite::Script,
    /// `add_header NAME VALUE [always]`.
    pub add_headers: Vec<(HeaderName, Template, bool)>,
    /// `error_page`.
    pub error_pages: Vec<ErrorPage>,
    /// `recursive_error_pages`.
    pub recursive_error_pages: bool,
    /// `client_max_body_size` (0 = unlimited).
    pub client_max_body_size: u64,
    /// `client_body_timeout`.
    pub client_body_timeout: Duration,
    /// `internal`.
    pub internal: bool,
    /// `server_tokens` (`on`/`build`: with the version).
    pub server_tokens: bool,
    /// `server_tokens "STRING"` (as nginx Plus): the `Server` value; empty: no header.
    pub server_tokens_string: Option<Template>,
    /// `access_log` targets (empty: off).
    pub access_logs: Vec<Arc<AccessLog>>,
    /// `error_log` of the location, server or http level (0: the main-level ones;
    /// `crate::error_log::level_targets`).
    pub error_log: u64,
    /// `default_type`.
    pub default_type: Bytes,
    /// The location's name (for alias).
    pub name: String,
    /// Named captures of the location regex: (group index, variable slot).
    pub named_captures: Vec<(usize, usize)>,
    /// What this configuration's templates read (`$request_filename`).
    pub vars_used: Arc<junction_core::vars::UsedVars>,
    /// `uninitialized_variable_warn`.
    pub uninit_warn: bool,
    /// `fastcgi_split_path_info` / `fastcgi_index` here, for `$fastcgi_script_name`
    /// and `$fastcgi_path_info` read in any phase.
    pub script_split: Option<Arc<junction_core::cgi::ScriptSplit>>,
    /// The access phase: `allow`/`deny`, `auth_basic`, `satisfy`, `limit_except`.
    pub access: crate::access::Access,
    /// The preaccess phase (`limit_req`, `limit_conn`) and `limit_rate`.
    pub limits: crate::limits::Limits,
    /// `set_real_ip_from`, `real_ip_header`, `real_ip_recursive`.
    pub realip: crate::realip::RealIp,
    /// Output filters (gzip, …).
    pub filters: crate::filters::FilterConf,
}

impl std::fmt::Debug for LocConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocConf")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A virtual server.
#[derive(Debug)]
pub struct VServer {
    /// `server_name` entries.
    pub names: Vec<ServerName>,
    /// The first name (`$server_name`).
    pub name0: Arc<str>,
    /// Its counters (`metrics`), shared by its requests.
    pub stats: Arc<junction_core::stats::HttpStats>,
    /// Server-level settings (used when no location matches).
    pub base: Arc<Loc<LocConf>>,
    /// Named locations.
    pub named: HashMap<String, Arc<Loc<LocConf>>>,
    /// `keepalive_timeout` (zero disables keepalive).
    pub keepalive_timeout: Duration,
    /// `client_header_timeout`.
    pub client_header_timeout: Duration,
    /// Header buffer limit (`large_client_header_buffers` number × size).
    pub header_buffer: usize,
    /// One buffer of `large_client_header_buffers` (request line limit → 414).
    pub large_header_size: usize,
    /// The client connection's settings (`crate::http1`).
    pub conn: Arc<crate::http1::ConnConf>,
    /// The `ssl_*` settings (`crate::tls`).
    pub tls: crate::tls::ServerTls,
}

/// A listening address and the servers on it.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The address.
    pub addr: SocketAddr,
    /// Servers on it (indices), config order.
    pub servers: Vec<usize>,
    /// The default server (index into `servers`'s targets).
    pub default: usize,
    /// `listen unix:PATH` (then `addr` is only a placeholder, `0.0.0.0:0`).
    pub unix: Option<PathBuf>,
    /// The socket parameters (`backlog=`, `so_keepalive=`, `ipv6only=`, `bind` …).
    pub opts: crate::listen::ListenOpts,
    /// `proxy_protocol`: connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// `ssl`: the TLS side (`crate::tls`), built once the servers are.
    pub tls: Option<Arc<crate::tls::TlsListen>>,
    /// `http2` (deprecated parameter): h2c with prior knowledge on a plain port.
    pub http2: bool,
}

/// Main-context settings.
#[derive(Debug, Clone, Default)]
pub struct MainConf {
    /// `worker_processes` (0 = auto).
    pub worker_processes: usize,
    /// `pid`.
    pub pid: Option<PathBuf>,
    /// `error_log FILE [LEVEL]`.
    pub error_log: Option<(String, String)>,
    /// Every main-level `error_log` (`crate::error_log::parse_error_log`).
    pub error_logs: Vec<crate::error_log::ErrorTarget>,
    /// `worker_connections` (per worker).
    pub worker_connections: usize,
    /// `worker_rlimit_nofile` (RLIMIT_NOFILE set at start).
    pub worker_rlimit_nofile: Option<u64>,
}

/// Everything the server runs.
#[derive(Debug)]
pub struct Runtime {
    /// Main context.
    pub main: MainConf,
    /// Virtual servers.
    pub servers: Vec<Arc<VServer>>,
    /// Listening addresses.
    pub listens: Vec<Listen>,
    /// Warnings for accepted directives without effect.
    pub warnings: Vec<String>,
    /// Log writers (flushed at exit).
    pub logs: LogWriters,
    /// The `upstream {}` groups (their `health_check` tasks are started by the binary).
    pub upstreams: Vec<Arc<Group>>,
    /// The `map {}` variables.
    pub maps: Arc<junction_core::map::Maps>,
}

fn declare_vars(tree: &[Directive], bx: &mut BuildCx) {
    for d in tree {
        if d.name == "set" {
            if let Some(a) = d.args.first() {
                if let Some(n) = a.value.strip_prefix('$') {
                    let slot = bx.vars.slot(n);
                    bx.vars.mark_set(slot);
                }
            }
        }
        if matches!(
            d.name.as_str(),
            "location" | "server_name" | "rewrite" | "if"
        ) {
            for a in &d.args {
                for cap in crate::rewrite::named_groups(&a.value) {
                    bx.vars.slot(&cap);
                }
            }
        }
        if let Some(b) = &d.block {
            declare_vars(b, bx);
        }
    }
}

/// Builds the runtime from a loaded tree plus `-g` directives; the first error.
pub fn build(
    tree: &[Directive],
    globals: &[Directive],
    prefix: &Path,
    backends: &[BuildBackend],
) -> Result<Runtime, ConfigError> {
    build_all(tree, globals, prefix, backends).map_err(|errors| {
        errors.into_iter().next().unwrap_or_else(|| ConfigError {
            span: None,
            msg: "configuration failed".into(),
        })
    })
}

/// Builds the runtime from a loaded tree plus `-g` directives, or reports every error
/// it can: every unsupported directive, and the first error of each `upstream` and
/// `server` block (a block with an error is left out and the build goes on), in file
/// order — for `junction -t`.
pub fn build_all(
    tree: &[Directive],
    globals: &[Directive],
    prefix: &Path,
    backends: &[BuildBackend],
) -> Result<Runtime, Vec<ConfigError>> {
    let mut errors = Vec::new();
    match build_collecting(tree, globals, prefix, backends, &mut errors) {
        Ok(rt) if errors.is_empty() => Ok(rt),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

fn build_collecting(
    tree: &[Directive],
    globals: &[Directive],
    prefix: &Path,
    backends: &[BuildBackend],
    errors: &mut Vec<ConfigError>,
) -> Result<Runtime, ConfigError> {
    let bare = junction_config::registry::is_bare_http(tree);
    let (main_level, http_levels): (Vec<&Directive>, Vec<&[Directive]>) = if bare {
        (globals.iter().collect(), vec![tree])
    } else {
        let main: Vec<&Directive> = tree.iter().chain(globals.iter()).collect();
        let http: Vec<&[Directive]> = tree
            .iter()
            .filter(|d| d.name == "http")
            .filter_map(|d| d.block.as_deref())
            .collect();
        (main, http)
    };
    // nginx's default is one worker; a bare sites file normally runs under Debian's
    // nginx.conf, which says `worker_processes auto;` (0 = auto).
    let mut main = MainConf {
        worker_processes: if bare { 0 } else { 1 },
        // nginx's default 512; a bare sites file runs under Debian's nginx.conf (768).
        worker_connections: if bare { 768 } else { 512 },
        ..MainConf::default()
    };
    for d in &main_level {
        match d.name.as_str() {
            "worker_processes" => {
                let a = d
                    .args
                    .first()
                    .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
                main.worker_processes = if a.value == "auto" {
                    0
                } else {
                    a.value.parse().map_err(|_| invalid(d, a))?
                };
            }
            "pid" => main.pid = d.args.first().map(|a| prefix.join(&a.value)),
            "worker_rlimit_nofile" => {
                if let Some(a) = d.args.first() {
                    main.worker_rlimit_nofile = Some(a.value.parse().map_err(|_| invalid(d, a))?);
                }
            }
            "events" => {
                for e in d.block.iter().flatten() {
                    if let ("worker_connections", Some(a)) = (e.name.as_str(), e.args.first()) {
                        main.worker_connections = a.value.parse().map_err(|_| invalid(e, a))?;
                    }
                }
            }
            "error_log" => {
                main.error_logs
                    .push(crate::error_log::parse_error_log(d, prefix)?);
                main.error_log = d.args.first().map(|a| {
                    (
                        a.value.clone(),
                        d.args
                            .get(1)
                            .map_or_else(|| "error".to_string(), |l| l.value.clone()),
                    )
                })
            }
            _ => {}
        }
    }
    junction_config::resolver::check_all(tree, errors);
    let mut warnings = Vec::new();
    crate::http2::warnings(tree, &mut warnings);
    crate::access::low_bits_warnings(tree, &mut warnings);

    let mut bx = BuildCx::default();
    bx.prefix = prefix.to_path_buf();
    bx.conf_dir = conf_dir(tree, prefix);
    // `$memcached_key` exists only if some `set` declares it (nginx: `unknown
    // "memcached_key" variable` otherwise), so it is not declared here.
    declare_vars(tree, &mut bx);
    crate::map::declare(&http_levels, &mut bx)?;
    let maps = Arc::new(crate::map::build(&http_levels, &bx)?);

    let mut logs = LogWriters::default();
    let mut servers: Vec<Arc<VServer>> = Vec::new();
    let mut listens: Vec<Listen> = Vec::new();
    let mut ssl_listens = Vec::new();
    for http in http_levels {
        let hscope = Scope::root(http);
        // upstream blocks first: *_pass may name them.
        for d in http.iter().filter(|d| d.name == "upstream") {
            match junction_config::upstream::build_upstream(d, http, &mut bx) {
                Ok(g) => {
                    bx.upstreams.insert(g.name.clone(), g);
                }
                Err(e) => {
                    errors.push(e);
                    // A stand-in, so `*_pass NAME` does not add "no port in upstream".
                    if let Some(name) = d.args.first() {
                        let g = junction_core::upstream::Group::implicit(
                            name.value.clone(),
                            Vec::new(),
                        );
                        bx.upstreams.insert(name.value.clone(), g);
                    }
                }
            }
        }
        let level = HttpLevel {
            backends,
            types: Arc::new(junction_config::model::mime_types(&hscope)),
            formats: log_formats(http, &bx)?,
            conf_dir: conf_dir(tree, prefix),
            zones: crate::limits::Zones::build(http, &bx)?,
        };
        for d in http.iter().filter(|d| d.name == "server") {
            let block = d.block.as_deref().unwrap_or(&[]);
            let sscope = hscope.child(block);
            let si = servers.len();
            let srv = match build_server(d, &sscope, &mut bx, &mut logs, &level) {
                Ok(srv) => srv,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // listen
            let mut any = false;
            for l in sscope.local_all("listen") {
                any = true;
                let (addr, default) = parse_listen(l)?;
                let (unix, opts) = crate::listen::parse_params(l)?;
                if opts.deferred {
                    warnings.push(format!(
                        "the \"deferred\" parameter of \"listen\" is accepted but has no effect in junction in {}",
                        l.span
                    ));
                }
                add_listen(&mut listens, addr, si, default, l)?;
                if let Some(last) = listens
                    .iter_mut()
                    .find(|x| x.addr == addr && x.unix == unix)
                {
                    last.opts.merge(&opts);
                }
                if l.args.iter().skip(1).any(|a| a.value == "ssl") {
                    let h2 = l.args.iter().skip(1).any(|a| a.value == "http2");
                    ssl_listens.push((addr, unix.clone(), h2, l.clone()));
                }
                if l.args.iter().skip(1).any(|a| a.value == "proxy_protocol") {
                    if let Some(x) = listens
                        .iter_mut()
                        .find(|x| x.addr == addr && x.unix == unix)
                    {
                        x.proxy_protocol = true;
                    }
                }
                if l.args.iter().skip(1).any(|a| a.value == "http2") {
                    if let Some(x) = listens
                        .iter_mut()
                        .find(|x| x.addr == addr && x.unix == unix)
                    {
                        x.http2 = true;
                    }
                }
            }
            if !any {
                add_listen(
                    &mut listens,
                    SocketAddr::from(([0, 0, 0, 0], 80)),
                    si,
                    false,
                    d,
                )?;
                // (a `server` without `listen` is on *:80, no unix path)
            }
            servers.push(Arc::new(srv));
        }
    }
    crate::tls::attach(&mut listens, &servers, &ssl_listens, errors);
    let upstreams = bx.all_groups();
    Ok(Runtime {
        main,
        servers,
        listens,
        warnings: warnings.into_iter().chain(bx.warnings).collect(),
        logs,
        upstreams,
        maps,
    })
}

fn add_listen(
    listens: &mut Vec<Listen>,
    addr: SocketAddr,
    si: usize,
    default: bool,
    d: &Directive,
) -> Result<(), ConfigError> {
    let unix = crate::listen::unix_path(d);
    match listens
        .iter_mut()
        .find(|l| l.addr == addr && l.unix == unix)
    {
        Some(l) => {
            if default {
                if l.servers.get(l.default).is_some() && l.default != 0 && default {
                    return Err(err(
                        &d.span,
                        format!("a duplicate default server for {addr}"),
                    ));
                }
                l.default = l.servers.len();
            }
            if !l.servers.contains(&si) {
                l.servers.push(si);
            }
        }
        None => listens.push(Listen {
            addr,
            servers: vec![si],
            default: 0,
            unix,
            opts: Default::default(),
            proxy_protocol: false,
            tls: None,
            http2: false,
        }),
    }
    Ok(())
}

fn parse_listen(d: &Directive) -> Result<(SocketAddr, bool), ConfigError> {
    let a = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"listen\" directive",
        )
    })?;
    let v = a.value.as_str();
    let addr: SocketAddr = if let Ok(p) = v.parse::<u16>() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p)
    } else if let Ok(sa) = v.parse::<SocketAddr>() {
        sa
    } else if let Some(p) = v.strip_prefix("*:") {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            p.parse().map_err(|_| invalid(d, a))?,
        )
    } else if v.starts_with('[') && v.ends_with(']') {
        let ip: Ipv6Addr = v
            .get(1..v.len() - 1)
            .unwrap_or("")
            .parse()
            .map_err(|_| invalid(d, a))?;
        SocketAddr::new(IpAddr::V6(ip), 80)
    } else if v.starts_with("unix:") {
        // Identified by its path (`Listen::unix`); the address is a placeholder.
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        use std::net::ToSocketAddrs;
        let hp = if v.contains(':') {
            v.to_string()
        } else {
            format!("{v}:80")
        };
        hp.to_socket_addrs()
            .ok()
            .and_then(|mut it| it.find(SocketAddr::is_ipv4))
            .ok_or_else(|| {
                err(
                    &a.span,
                    format!("host not found in \"{v}\" of the \"listen\" directive"),
                )
            })?
    };
    let mut default = false;
    for p in d.args.iter().skip(1) {
        match p.value.as_str() {
            "default_server" | "default" => default = true,
            "quic" => {
                return Err(err(
                    &p.span,
                    "QUIC listeners (\"quic\") are not supported yet",
                ))
            }
            "http2" | "proxy_protocol" => {}
            // Socket parameters: `crate::listen::parse_params`.
            _ => {}
        }
    }
    Ok((addr, default))
}

const COMBINED: &str =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

fn log_formats(
    http: &[Directive],
    bx: &BuildCx,
) -> Result<HashMap<String, Arc<crate::log_format::LogFormat>>, ConfigError> {
    crate::log_format::formats(http, COMBINED, &bx.vars)
}

/// What every server and location of one `http {}` level shares while it is built.
struct HttpLevel<'a> {
    /// The protocols' backend builders.
    backends: &'a [BuildBackend],
    /// MIME types of the level.
    types: Arc<HashMap<String, Bytes>>,
    /// `log_format`s of the level (and `combined`).
    formats: HashMap<String, Arc<crate::log_format::LogFormat>>,
    /// nginx's conf prefix (relative `auth_basic_user_file` paths).
    conf_dir: PathBuf,
    /// `limit_req_zone`s and `limit_conn_zone`s of the level.
    zones: crate::limits::Zones,
}

/// nginx's conf prefix: the directory of the main configuration file (the file of
/// the tree's first directive), else the `-p` prefix.
fn conf_dir(tree: &[Directive], prefix: &Path) -> PathBuf {
    tree.first()
        .and_then(|d| d.span.file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| prefix.to_path_buf())
}

fn build_server(
    d: &Directive,
    scope: &Scope<'_>,
    bx: &mut BuildCx,
    logs: &mut LogWriters,
    http: &HttpLevel<'_>,
) -> Result<VServer, ConfigError> {
    let mut names = Vec::new();
    let mut name0 = String::new();
    for sn in scope.local_all("server_name") {
        for a in &sn.args {
            if name0.is_empty() && !a.value.starts_with('~') {
                name0 = a
                    .value
                    .trim_start_matches("*.")
                    .trim_start_matches('.')
                    .to_string();
            }
            if a.value.is_empty() || a.value == "_" {
                continue;
            }
            for mut n in ServerName::parse(&a.value).map_err(|m| err(&a.span, m))? {
                if let ServerName::Regex(re, slots) = &mut n {
                    *slots = re.names().map(|(i, n)| (i, bx.vars.slot(n))).collect();
                }
                names.push(n);
            }
        }
    }
    let info = LocInfo {
        kind: LocKind::Server,
        name: String::new(),
        span: d.span.clone(),
    };
    let mut named = HashMap::new();
    let base = build_location(scope, &info, bx, logs, http, &mut named)?;
    let large = scope.get("large_client_header_buffers");
    let (num, size) = match large {
        Some(l) => {
            let n: usize = l
                .args
                .first()
                .and_then(|a| a.value.parse().ok())
                .ok_or_else(|| err(&l.span, "invalid value"))?;
            let s = l
                .args
                .get(1)
                .and_then(|a| junction_config::values::parse_size(&a.value))
                .ok_or_else(|| err(&l.span, "invalid value"))?;
            (n, s as usize)
        }
        None => (4, 8192),
    };
    let keepalive_timeout = scope.time("keepalive_timeout", Duration::from_secs(75))?;
    let conn = Arc::new(crate::http1::ConnConf::from_scope(
        scope,
        base.data.server_tokens,
    )?);
    Ok(VServer {
        stats: Arc::default(),
        names,
        name0: Arc::from(name0.as_str()),
        base,
        named,
        keepalive_timeout,
        client_header_timeout: scope.time("client_header_timeout", Duration::from_secs(60))?,
        header_buffer: num * size,
        large_header_size: size,
        conn,
        tls: crate::tls::ServerTls::from_scope(scope, &http.conf_dir, &mut bx.warnings)?,
    })
}

fn build_location(
    scope: &Scope<'_>,
    info: &LocInfo,
    bx: &mut BuildCx,
    logs: &mut LogWriters,
    http: &HttpLevel<'_>,
    named: &mut HashMap<String, Arc<Loc<LocConf>>>,
) -> Result<Arc<Loc<LocConf>>, ConfigError> {
    let conf = build_conf(scope, info, bx, logs, http)?;
    let mut statics = Vec::new();
    let mut regexes = Vec::new();
    for d in scope.local_all("location") {
        let block = d.block.as_deref().unwrap_or(&[]);
        let (kind, name) = match (d.args.first(), d.args.get(1)) {
            (Some(m), Some(n)) => match m.value.as_str() {
                "=" => (LocKind::Exact, n.value.clone()),
                "^~" => (LocKind::PrefixNoRegex, n.value.clone()),
                "~" => (LocKind::Regex { caseless: false }, n.value.clone()),
                "~*" => (LocKind::Regex { caseless: true }, n.value.clone()),
                _ => {
                    return Err(err(
                        &m.span,
                        format!("invalid location modifier \"{}\"", m.value),
                    ))
                }
            },
            (Some(n), None) => {
                if n.value.starts_with('@') {
                    (LocKind::Named, n.value.clone())
                } else if let Some(rest) = n.value.strip_prefix('=').filter(|r| !r.is_empty()) {
                    (LocKind::Exact, rest.to_string())
                } else if let Some(rest) = n.value.strip_prefix("~*").filter(|r| !r.is_empty()) {
                    (LocKind::Regex { caseless: true }, rest.to_string())
                } else if let Some(rest) = n.value.strip_prefix('~').filter(|r| !r.is_empty()) {
                    (LocKind::Regex { caseless: false }, rest.to_string())
                } else if let Some(rest) = n.value.strip_prefix("^~").filter(|r| !r.is_empty()) {
                    (LocKind::PrefixNoRegex, rest.to_string())
                } else {
                    (LocKind::Prefix, n.value.clone())
                }
            }
            _ => {
                return Err(err(
                    &d.span,
                    "invalid number of arguments in \"location\" directive",
                ))
            }
        };
        if kind == LocKind::Named && info.kind != LocKind::Server {
            return Err(err(
                &d.span,
                format!("named location \"{name}\" can be on the server level only"),
            ));
        }
        let child_info = LocInfo {
            kind: kind.clone(),
            name: name.clone(),
            span: d.span.clone(),
        };
        let child_scope = scope.child(block);
        let mut loc = build_location(&child_scope, &child_info, bx, logs, http, named)?;
        if let LocKind::Regex { caseless } = kind {
            let re = junction_core::regex::Regex::compile(&name, caseless)
                .map_err(|e| err(&d.span, e))?;
            if let Some(l) = Arc::get_mut(&mut loc) {
                l.data.named_captures = re.names().map(|(i, n)| (i, bx.vars.slot(n))).collect();
                l.regex = Some(re);
            }
        }
        if let Some(l) = Arc::get_mut(&mut loc) {
            l.auto_redirect = matches!(kind, LocKind::Prefix | LocKind::PrefixNoRegex)
                && name.ends_with('/')
                && l.data.backend.as_ref().is_some_and(|b| b.is_pass());
        }
        match kind {
            LocKind::Named => {
                named.insert(name, loc);
            }
            LocKind::Regex { .. } => regexes.push(loc),
            _ => {
                if statics.iter().any(|s: &Arc<Loc<LocConf>>| {
                    s.name == name && (s.kind == LocKind::Exact) == (kind == LocKind::Exact)
                }) {
                    return Err(err(&d.span, format!("duplicate location \"{name}\"")));
                }
                statics.push(loc)
            }
        }
    }
    Ok(Arc::new(Loc {
        kind: info.kind.clone(),
        name: info.name.clone(),
        regex: None,
        statics,
        regexes,
        auto_redirect: false,
        data: conf,
    }))
}

/// The variable a `set` assigns, checked as nginx does: `$name`; a built-in
/// variable other than `$args` cannot be assigned (`the duplicate "uri" variable`).
fn set_target(n: &junction_config::Arg, bx: &mut BuildCx) -> Result<SetVar, ConfigError> {
    use junction_core::vars::{resolve, Var, VarTable};
    let name = n
        .value
        .strip_prefix('$')
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err(&n.span, format!("invalid variable name \"{}\"", n.value)))?;
    if name.eq_ignore_ascii_case("args") {
        return Ok(SetVar::Args);
    }
    // Prefix variables ($http_x, $arg_x, …) and captures may be shadowed, as in nginx.
    match resolve(name, &VarTable::default()) {
        None
        | Some(
            Var::Http(_)
            | Var::SentHttp(_)
            | Var::UpstreamHttp(_)
            | Var::Cookie(_)
            | Var::Arg(_)
            | Var::Capture(_),
        ) => Ok(SetVar::Slot(bx.vars.slot(name))),
        Some(_) => Err(err(
            &n.span,
            format!("the duplicate \"{}\" variable", name.to_ascii_lowercase()),
        )),
    }
}

/// `error_page CODE ... [=[RESPONSE]] URI|@name|URL`, parsed with nginx's rules
/// (`ngx_http_core_error_page`): the optional `=` form is the next-to-last argument
/// and not the first; codes are 300–599 except 499; `=` and `=0` mean "the fallback's
/// status"; 494–497 without `=` answer 400.
fn parse_error_page(d: &Directive, bx: &BuildCx) -> Result<Vec<ErrorPage>, ConfigError> {
    let n = d.args.len();
    let target = d.args.last().filter(|_| n >= 2).ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"error_page\" directive",
        )
    })?;
    let mut codes_end = n - 1;
    let mut overwrite = None;
    if let Some(eq) = d.args.get(n - 2).filter(|a| a.value.starts_with('=')) {
        if n == 2 {
            return Err(invalid(d, eq));
        }
        let rest = eq.value.get(1..).unwrap_or("");
        overwrite = Some(if rest.is_empty() {
            None
        } else {
            match rest.parse::<u16>() {
                Ok(0) => None,
                Ok(c) if rest.bytes().all(|b| b.is_ascii_digit()) => Some(c),
                _ => return Err(invalid(d, eq)),
            }
        });
        codes_end = n - 2;
    }
    let mut codes = Vec::new();
    for a in d.args.iter().take(codes_end) {
        let c: u16 = a
            .value
            .parse()
            .ok()
            .filter(|c| *c != 499 && a.value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| invalid(d, a))?;
        if !(300..=599).contains(&c) {
            return Err(err(
                &a.span,
                format!("value \"{}\" must be between 300 and 599", a.value),
            ));
        }
        codes.push(c);
    }
    let target = bx.template(target)?;
    let mut out = Vec::new();
    // nginx answers its internal codes 494–497 with 400 unless told otherwise.
    let (internal, normal): (Vec<u16>, Vec<u16>) = codes
        .into_iter()
        .partition(|c| overwrite.is_none() && (494..=497).contains(c));
    if !internal.is_empty() {
        out.push(ErrorPage {
            codes: internal,
            overwrite: Some(Some(400)),
            target: target.clone(),
        });
    }
    if !normal.is_empty() {
        out.push(ErrorPage {
            codes: normal,
            overwrite,
            target,
        });
    }
    Ok(out)
}

/// `return CODE [TEXT]` / `return URL` (`ngx_http_rewrite_return`).
fn parse_return(d: &Directive, bx: &BuildCx) -> Result<Return, ConfigError> {
    let a = d
        .args
        .first()
        .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
    match a.value.parse::<u16>() {
        Ok(code) if code <= 999 && a.value.bytes().all(|b| b.is_ascii_digit()) => Ok(Return {
            code,
            text: d.args.get(1).map(|t| bx.template(t)).transpose()?,
        }),
        _ if d.args.len() == 1
            && (a.value.starts_with("http://")
                || a.value.starts_with("https://")
                || a.value.starts_with("$scheme")) =>
        {
            Ok(Return {
                code: 302,
                text: Some(bx.template(a)?),
            })
        }
        _ => Err(err(&a.span, format!("invalid return code \"{}\"", a.value))),
    }
}

fn build_conf(
    scope: &Scope<'_>,
    info: &LocInfo,
    bx: &mut BuildCx,
    logs: &mut LogWriters,
    http: &HttpLevel<'_>,
) -> Result<LocConf, ConfigError> {
    let mut backend: Option<Arc<dyn Backend>> = None;
    if info.kind != LocKind::Server {
        for b in http.backends {
            if let Some(be) = b(scope, info, bx)? {
                if backend.is_some() {
                    return Err(err(
                        &info.span,
                        "more than one content handler (\"*_pass\") in one location",
                    ));
                }
                backend = Some(be);
            }
        }
    }
    for (name, kind) in [
        ("stub_status", crate::status::Kind::Stub),
        ("metrics", crate::status::Kind::Metrics),
    ] {
        if let Some(d) = scope.local(name) {
            if backend.is_some() {
                return Err(err(
                    &d.span,
                    format!("\"{name}\" in a location that has another content handler"),
                ));
            }
            backend = Some(Arc::new(crate::status::Status::new(kind)));
        }
    }
    if let Some(d) = scope.local("api") {
        backend = Some(crate::api::build(d, info, backend.is_some())?);
    }
    let root = match scope.arg("root") {
        Some((_, a)) => bx.template(a)?,
        None => Template::literal(Bytes::from(
            bx.prefix.join("html").to_string_lossy().into_owned(),
        )),
    };
    let alias = match scope.local("alias") {
        Some(d) => Some(
            bx.template(
                d.args
                    .first()
                    .ok_or_else(|| err(&d.span, "invalid number of arguments"))?,
            )?,
        ),
        None => None,
    };
    let index = match scope.get("index") {
        Some(d) => d
            .args
            .iter()
            .map(|a| bx.template(a))
            .collect::<Result<_, _>>()?,
        None => vec![Template::literal(Bytes::from_static(b"index.html"))],
    };
    let try_files = match scope.local("try_files") {
        Some(d) => d
            .args
            .iter()
            .map(|a| bx.template(a))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut add_headers = Vec::new();
    for d in scope.array("add_header") {
        let (Some(n), Some(v)) = (d.args.first(), d.args.get(1)) else {
            return Err(err(
                &d.span,
                "invalid number of arguments in \"add_header\" directive",
            ));
        };
        let name = HeaderName::from_bytes(n.value.as_bytes()).map_err(|_| invalid(d, n))?;
        let always = match d.args.get(2) {
            None => false,
            Some(a) if a.value == "always" => true,
            Some(a) => return Err(invalid(d, a)),
        };
        add_headers.push((name, bx.template(v)?, always));
    }
    let mut error_pages = Vec::new();
    for d in scope.array("error_page") {
        error_pages.extend(parse_error_page(d, bx)?);
    }
    let access_logs = match scope.array("access_log").as_slice() {
        [] => vec![logs.access(
            &bx.prefix.join("logs/access.log"),
            http.formats.get("combined").cloned(),
        )],
        list => {
            let mut v = Vec::new();
            for d in list {
                let a = d
                    .args
                    .first()
                    .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
                if a.value == "off" {
                    continue;
                }
                let (fmt, opts) = crate::log::access_log_args(d, &http.formats, bx)?;
                if let Some(spec) = a.value.strip_prefix("syslog:") {
                    v.push(logs.syslog(
                        crate::syslog::SyslogPeer::parse(spec, &a.span)?,
                        fmt,
                        opts,
                    ));
                    continue;
                }
                v.push(logs.access_with(&bx.prefix.join(&a.value), fmt, opts));
            }
            v
        }
    };
    let default_type = junction_config::model::default_type(scope);
    // `types {}` in a server or location replaces the http level's map (shared when equal).
    let types = junction_config::model::mime_types(scope);
    let types = if types == *http.types {
        http.types.clone()
    } else {
        Arc::new(types)
    };
    let script = if info.kind == LocKind::If {
        crate::rewrite::Script::default()
    } else if info.kind == LocKind::Server {
        crate::rewrite::compile(scope, bx, None, set_target, parse_return)?
    } else {
        // An `if` is a location of its own inheriting this one (and its handler).
        let parent = backend.clone();
        let parent_alias = alias.clone();
        let mut build_if = |inner: &Scope<'_>, d: &Directive, bx: &mut BuildCx| {
            let if_info = LocInfo {
                kind: LocKind::If,
                name: info.name.clone(),
                span: d.span.clone(),
            };
            let mut conf = build_conf(inner, &if_info, bx, logs, http)?;
            if let (None, Some(p)) = (&conf.backend, &parent) {
                conf.content = p.clone();
                conf.content_takes_body = p.takes_body();
                conf.backend = parent.clone();
            }
            // nginx's merge: an `if` without its own `root` keeps the location's `alias`.
            if inner.local("root").is_none() {
                conf.alias = parent_alias.clone();
            }
            Ok(Arc::new(Loc {
                kind: info.kind.clone(),
                name: info.name.clone(),
                regex: None,
                statics: Vec::new(),
                regexes: Vec::new(),
                auto_redirect: false,
                data: conf,
            }))
        };
        crate::rewrite::compile(scope, bx, Some(&mut build_if), set_target, parse_return)?
    };
    // nginx applies a location's keep-alive, send and lingering settings to the
    // connection after a request that ends there.
    let conn = if info.kind != LocKind::Server && scope.set_below(3, crate::http1::LOCATION_CONN) {
        Some(Arc::new(crate::http1::ConnConf::from_scope(scope, true)?))
    } else {
        None
    };
    // In the order the settings were always read (the first error is the one reported).
    let recursive_error_pages = scope.flag("recursive_error_pages", false)?;
    let client_max_body_size = scope.size("client_max_body_size", 1024 * 1024)?;
    let client_body_timeout = scope.time("client_body_timeout", Duration::from_secs(60))?;
    let server_tokens = !matches!(scope.arg("server_tokens"), Some((_, a)) if a.value != "on" && a.value != "build");
    let server_tokens_string = match scope.arg("server_tokens") {
        Some((_, a)) if !matches!(a.value.as_str(), "on" | "off" | "build") => {
            Some(bx.template(a)?)
        }
        _ => None,
    };
    let error_log = crate::error_log::level_targets(scope, &bx.prefix)?;
    let etag = scope.flag("etag", true)?;
    let vars_used = bx.vars.used();
    let uninit_warn = scope.flag("uninitialized_variable_warn", true)?;
    let script_split = junction_config::model::script_split(scope)?;
    let access = crate::access::Access::build(scope, bx, &http.conf_dir)?;
    let limits = crate::limits::Limits::build(scope, &http.zones, bx)?;
    let realip = crate::realip::RealIp::build(scope)?;
    let filters = crate::filters::build(scope, bx)?;
    let log_not_found = scope.flag("log_not_found", true)?;
    let autoindex = crate::autoindex::AutoindexConf::build(scope)?;
    let content: Arc<dyn Backend> = match &backend {
        Some(b) => b.clone(),
        None => Arc::new(crate::static_files::StaticFiles {
            index,
            autoindex,
            types,
            default_type: default_type.clone(),
            etag,
            log_not_found,
            server_tokens,
            compress: filters.compress.clone(),
        }),
    };
    Ok(LocConf {
        conn,
        content_takes_body: content.takes_body(),
        content,
        backend,
        root,
        alias,
        try_files,
        script,
        add_headers,
        error_pages,
        recursive_error_pages,
        client_max_body_size,
        client_body_timeout,
        internal: scope.local("internal").is_some(),
        server_tokens,
        server_tokens_string,
        access_logs,
        error_log,
        default_type,
        name: info.name.clone(),
        named_captures: Vec::new(),
        vars_used,
        uninit_warn,
        script_split,
        access,
        limits,
        realip,
        filters,
    })
}
