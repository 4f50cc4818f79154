//! The error log as nginx writes it, with the request each line belongs to.
//!
//! Every request runs as one [`junction_core::logctx::ReqLog`] (connection id,
//! client, server, request line, host; nothing formatted until a line is written),
//! so any event logged while it is handled — in
//! the server, in a backend, in the exchange, or in the relay task that reads the
//! upstream body after the response head went out — ends like nginx's
//! `ngx_http_log_error`: `*5 MESSAGE, client: 127.0.0.1, server: app, request: "GET /x
//! HTTP/1.1", upstream: "http://127.0.0.1:8081/x", host: "app"`. The `upstream` is a
//! field of the event that names one (only failures do, so nothing is formatted for a
//! request that logs nothing).
//!
//! [`ErrorLog`] is a `tracing` layer: it reads the request being polled
//! ([`junction_core::logctx::current`]) and writes each event as one line to each of its targets whose level the event reaches:
//! the main-level `error_log` lines (several, each with its own level, as nginx's chain
//! of logs), to a file (a log [`Sink`]), `stderr`, or `syslog:server=…`
//! ([`crate::syslog`]: the line, without its newline, after the syslog header, with the
//! line's own level as severity, as `ngx_syslog_writer`). When no main-level
//! `error_log` names a file or `stderr`, the default file (`-e`, else
//! `logs/error.log`) is added at `error`, as `ngx_log_open_default` does.
//! `error_log` inside `http`, `server` or `location` applies to the requests there,
//! inherited as nginx does (the nearest level with any): each such set is opened at
//! load ([`level_targets`]) and named by an index in the location's settings, and the
//! request's context records the index of the location it is in ([`enter`]), so its
//! lines (also from a backend or the body relay) go to that set instead of the main
//! level's. The layer's level filter is set at start from every set then loaded: a
//! reload cannot make the log more verbose than that.
//!
//! [`Sink`]: crate::log::Sink

use crate::syslog::SyslogPeer;
use junction_config::model::err;
use junction_config::{ConfigError, Directive};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// An event's message and `upstream` field.
#[derive(Default)]
struct EventFields {
    message: String,
    upstream: String,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "upstream" => {
                let _ = write!(self.upstream, "{value:?}");
            }
            name => {
                // Other fields (rare): `name=value` after the message, as tracing does.
                let _ = write!(self.message, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "upstream" => self.upstream.push_str(value),
            name => {
                let _ = write!(self.message, " {name}={value}");
            }
        }
    }
}

/// One configured `error_log` destination (`error_log FILE|stderr|syslog:… [LEVEL]`).
#[derive(Debug, Clone)]
pub enum ErrorDest {
    /// `stderr`.
    Stderr,
    /// A file (appended to; reopened by `-s reopen`).
    File(PathBuf),
    /// `syslog:server=…`.
    Syslog(Arc<SyslogPeer>),
}

/// One main-level `error_log` line: where, and from which level on.
#[derive(Debug, Clone)]
pub struct ErrorTarget {
    /// Where its lines go.
    pub dest: ErrorDest,
    /// The least severe level it writes, as a `tracing` level (the layer's filter).
    pub level: tracing::Level,
    /// The same as nginx's level, its syslog severity: 0 `emerg` … 3 `error`, 4
    /// `warn`, 5 `notice`, 6 `info`, 7 `debug`. Junction's events are `error`, `warn`,
    /// `notice` (its `INFO`, the level of nginx's `rewrite_log` lines and the like) and
    /// `debug`, so a target at `crit` or above gets none of them.
    pub severity: u8,
}

/// nginx's level name → the `tracing` level Junction logs at (`notice` and `info`
/// are both `INFO`; `crit`, `alert` and `emerg` are `ERROR`).
fn tracing_level(i: usize) -> tracing::Level {
    match i {
        0..=3 => tracing::Level::ERROR,
        4 => tracing::Level::WARN,
        5 | 6 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    }
}

/// The nginx level of an event at `level`, for the targets' levels.
fn event_severity(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 5,
        _ => 7,
    }
}

/// The syslog severity of a line at `level` (`ngx_syslog_writer`: the line's own
/// level; `INFO` lines say `[info]`, so they are sent as `info`).
fn severity(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// `error_log FILE|stderr|syslog:…|memory:SIZE [LEVEL]` (`ngx_log_set_log`): a relative
/// file is under `prefix`; the level defaults to `error`.
pub fn parse_error_log(d: &Directive, prefix: &Path) -> Result<ErrorTarget, ConfigError> {
    let a = d
        .args
        .first()
        .ok_or_else(|| err(&d.span, "invalid number of arguments in \"error_log\""))?;
    let v = a.value.as_str();
    let dest = if v == "stderr" {
        ErrorDest::Stderr
    } else if let Some(spec) = v.strip_prefix("syslog:") {
        ErrorDest::Syslog(Arc::new(SyslogPeer::parse(spec, &a.span)?))
    } else if v.starts_with("memory:") {
        return Err(err(
            &a.span,
            "\"memory:\" error logs are not supported (nginx has them in debug builds only)",
        ));
    } else {
        ErrorDest::File(prefix.join(v))
    };
    let severity = match d.args.get(1) {
        None => 3,
        Some(l) => crate::syslog::SEVERITIES
            .iter()
            .position(|s| *s == l.value)
            .ok_or_else(|| err(&l.span, format!("invalid log level \"{}\"", l.value)))?,
    };
    Ok(ErrorTarget {
        dest,
        level: tracing_level(severity),
        severity: severity as u8,
    })
}

/// The `error_log` sets of `http`, `server` and `location` levels, opened at load;
/// a request's span names one by its index + 1 ([`enter`]). Equal sets (the same
/// destinations and levels) share one entry, also across reloads.
#[allow(clippy::type_complexity)]
static LEVEL_SETS: RwLock<Vec<(Vec<(String, String)>, Arc<[Target]>)>> = RwLock::new(Vec::new());

/// The `error_log` lines that apply at `scope` (a location, or a server's own level),
/// inherited as nginx does (the nearest level that has any), opened and registered;
/// 0 when no `http`/`server`/`location` level has one (the main-level targets).
pub fn level_targets(
    scope: &junction_config::model::Scope<'_>,
    prefix: &Path,
) -> Result<u64, ConfigError> {
    let list = scope.array("error_log");
    if list.is_empty() {
        return Ok(0);
    }
    let key: Vec<(String, String)> = list
        .iter()
        .map(|d| {
            let arg = |i: usize| d.args.get(i).map_or("", |a| a.value.as_str()).to_string();
            (arg(0), arg(1))
        })
        .collect();
    let mut sets = match LEVEL_SETS.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some(i) = sets.iter().position(|(k, _)| *k == key) {
        return Ok(i as u64 + 1);
    }
    let mut targets = Vec::with_capacity(list.len());
    for d in &list {
        let t = parse_error_log(d, prefix)?;
        targets.push(Target::open(&t).map_err(|e| err(&d.span, e))?);
    }
    sets.push((key, targets.into()));
    Ok(sets.len() as u64)
}

/// The most verbose level of every registered level set.
fn level_sets_max() -> Option<tracing::Level> {
    let sets = match LEVEL_SETS.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    sets.iter()
        .flat_map(|(_, t)| t.iter().map(|t| t.level))
        .max()
}

/// Makes the current request's error-log lines go to level set `id` (0: the main
/// level's), from the location (or server) its request is in now.
pub fn enter(id: u64) {
    junction_core::logctx::set_level(id);
}

/// What a [`Target`] writes to.
enum Out {
    Stderr,
    Sink(crate::log::Sink),
    Syslog(Arc<SyslogPeer>),
    Writer(Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync>),
}

/// An opened error log destination with its level.
pub struct Target {
    level: tracing::Level,
    severity: u8,
    out: Out,
}

impl Target {
    /// Opens `t`: a file is created (with its directory) and checked now, so a
    /// path that cannot be written stops the start (`open() "…" failed`).
    pub fn open(t: &ErrorTarget) -> Result<Target, String> {
        let out = match &t.dest {
            ErrorDest::Stderr => Out::Stderr,
            ErrorDest::Syslog(p) => Out::Syslog(p.clone()),
            ErrorDest::File(path) => {
                if let Some(d) = path.parent() {
                    let _ = std::fs::create_dir_all(d);
                }
                if let Err(e) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    return Err(format!("open() \"{}\" failed ({e})", path.display()));
                }
                Out::Sink(crate::log::Sink::open(path))
            }
        };
        Ok(Target {
            level: t.level,
            severity: t.severity,
            out,
        })
    }

    /// A target writing every line at `level` and above to a fresh `make_writer()`.
    pub fn writer<W, O>(level: tracing::Level, make_writer: W) -> Target
    where
        W: Fn() -> O + Send + Sync + 'static,
        O: std::io::Write + 'static,
    {
        Target {
            level,
            severity: 7,
            out: Out::Writer(Box::new(move || Box::new(make_writer()))),
        }
    }

    /// Its level.
    pub fn level(&self) -> tracing::Level {
        self.level
    }

    /// Writes one line (`line` ends with its newline).
    fn write(&self, level: tracing::Level, line: &str) {
        use std::io::Write;
        match &self.out {
            Out::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Out::Sink(s) => s.write(line.as_bytes().to_vec()),
            Out::Syslog(p) => {
                let mut msg = Vec::with_capacity(64 + line.len());
                p.header(severity(level), &mut msg);
                msg.extend_from_slice(line.trim_end_matches('\n').as_bytes());
                p.send(&msg);
            }
            Out::Writer(w) => {
                let _ = w().write_all(line.as_bytes());
            }
        }
    }
}

/// Writes events as nginx error-log lines (`2026/11/29 22:54:50 [error] PID#0: …`)
/// to each of its targets whose level the event's reaches (nginx's chain of logs of
/// `ngx_log_error_core`): the line is made once.
pub struct ErrorLog {
    targets: Vec<Target>,
}

impl ErrorLog {
    /// A layer writing each line to a fresh `make_writer()`.
    pub fn new<W, O>(make_writer: W) -> Self
    where
        W: Fn() -> O + Send + Sync + 'static,
        O: std::io::Write + 'static,
    {
        ErrorLog {
            targets: vec![Target::writer(tracing::Level::TRACE, make_writer)],
        }
    }

    /// A layer writing to several targets, each from its own level on.
    pub fn with_targets(targets: Vec<Target>) -> Self {
        ErrorLog { targets }
    }

    /// The most verbose level of its targets and of the `http`/`server`/`location`
    /// levels' ones loaded so far (for the layer's filter, set at start).
    pub fn max_level(&self) -> tracing::Level {
        self.targets
            .iter()
            .map(|t| t.level)
            .chain(level_sets_max())
            .max()
            .unwrap_or(tracing::Level::ERROR)
    }
}

impl<S> tracing_subscriber::Layer<S> for ErrorLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let ev_level = *event.metadata().level();
        let ev_sev = event_severity(ev_level);
        let request = junction_core::logctx::current();
        let elog = request.as_ref().map_or(0, |r| r.level());
        // The request's level set, else the main level's targets.
        let set = (elog > 0)
            .then(|| {
                let sets = match LEVEL_SETS.read() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                usize::try_from(elog - 1)
                    .ok()
                    .and_then(|i| sets.get(i).map(|(_, t)| t.clone()))
            })
            .flatten();
        let targets: &[Target] = set.as_deref().unwrap_or(&self.targets);
        if !targets.iter().any(|t| ev_sev <= t.severity) {
            return;
        }
        let level = match ev_level {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
        };
        let mut ev = EventFields::default();
        event.record(&mut ev);
        let mut line = format!(
            "{} [{level}] {}#0: ",
            junction_core::time::error_log_time(std::time::SystemTime::now()),
            std::process::id()
        );
        match request {
            Some(r) => r.write_line(&mut line, &ev.message, &ev.upstream),
            None => line.push_str(&ev.message),
        }
        line.push('\n');
        for t in targets {
            if ev_sev <= t.severity {
                t.write(ev_level, &line);
            }
        }
    }
}
