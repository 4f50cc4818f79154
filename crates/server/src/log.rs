//! Logs, written off the request path: each log file has one writer thread fed
//! by a channel, so a request never waits on disk. The error log's lines are made by
//! `crate::error_log` (nginx's format, with the request's context).

use crate::log_format::LogFormat;
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

enum Msg {
    Line(Vec<u8>),
    Reopen,
}

/// A line sink backed by a writer thread.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: Sender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Line(_) => "Line",
            Msg::Reopen => "Reopen",
        })
    }
}

/// Every sink opened, for `-s reopen` (SIGUSR1).
static SINKS: Mutex<Vec<Sink>> = Mutex::new(Vec::new());

fn open_append(path: &Path) -> Option<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => Some(std::io::BufWriter::with_capacity(64 * 1024, f)),
        Err(e) => {
            eprintln!(
                "junction: [alert] could not open log file \"{}\": {e}",
                path.display()
            );
            None
        }
    }
}

impl Sink {
    /// Opens (appends to) `path`, creating its directory.
    pub fn open(path: &Path) -> Sink {
        let (tx, rx) = channel::<Msg>();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let mut w = open_append(&path);
            while let Ok(msg) = rx.recv() {
                let mut next = Some(msg);
                while let Some(m) = next.take() {
                    match m {
                        Msg::Line(line) => {
                            if let Some(w) = w.as_mut() {
                                let _ = w.write_all(&line);
                            }
                        }
                        Msg::Reopen => {
                            if let Some(mut old) = w.take() {
                                let _ = old.flush();
                            }
                            w = open_append(&path);
                        }
                    }
                    next = rx.try_recv().ok();
                }
                if let Some(w) = w.as_mut() {
                    let _ = w.flush();
                }
            }
        });
        let sink = Sink { tx };
        if let Ok(mut all) = SINKS.lock() {
            all.push(sink.clone());
        }
        sink
    }

    /// Queues a line (with its newline).
    pub fn write(&self, line: Vec<u8>) {
        let _ = self.tx.send(Msg::Line(line));
    }
}

/// Reopens every log file (after a rotation: `junction -s reopen`, SIGUSR1).
pub fn reopen_all() {
    if let Ok(all) = SINKS.lock() {
        for s in all.iter() {
            let _ = s.tx.send(Msg::Reopen);
        }
    }
}

/// One `access_log` target.
#[derive(Debug)]
pub struct AccessLog {
    sink: Option<Sink>,
    /// `access_log syslog:…`: each line is a datagram (then `sink` is `None`).
    syslog: Option<Arc<crate::syslog::SyslogPeer>>,
    path: PathBuf,
    format: Option<Arc<LogFormat>>,
    sent_headers: bool,
    opts: LogOpts,
}

/// The parameters of an `access_log` line after its format.
#[derive(Debug, Default, Clone)]
pub struct LogOpts {
    /// `if=CONDITION`: no line when it is empty or `0`.
    pub cond: Option<Template>,
    /// `gzip[=LEVEL]`: each line is written as a gzip member (the file reads with
    /// `zcat`); 0 = plain.
    pub gzip: u32,
}

/// `access_log PATH [FORMAT [buffer=SIZE] [gzip[=LEVEL]] [flush=TIME] [if=CONDITION]]`
/// past the path, as `ngx_http_log_set_log` reads it: the third argument is always
/// the format name (case-insensitive); `buffer=` and `flush=` are checked (lines go to
/// a writer thread at once, which is the buffer); `flush=` needs a buffer (gzip gives
/// one).
pub fn access_log_args(
    d: &junction_config::Directive,
    formats: &HashMap<String, Arc<LogFormat>>,
    bx: &junction_config::model::BuildCx,
) -> Result<(Option<Arc<LogFormat>>, LogOpts), junction_config::ConfigError> {
    use junction_config::model::err;
    let name = d.args.get(1).map_or("combined", |a| a.value.as_str());
    let fmt = formats
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, f)| f.clone())
        .ok_or_else(|| {
            err(
                d.args.get(1).map_or(&d.span, |a| &a.span),
                format!("unknown log format \"{name}\""),
            )
        })?;
    let mut opts = LogOpts::default();
    let (mut buffer, mut flush) = (false, false);
    for a in d.args.iter().skip(2) {
        let v = a.value.as_str();
        if let Some(s) = v.strip_prefix("buffer=") {
            if junction_config::values::parse_size(s).is_none_or(|n| n == 0) {
                return Err(err(&a.span, format!("invalid buffer size \"{s}\"")));
            }
            buffer = true;
        } else if let Some(s) = v.strip_prefix("flush=") {
            if junction_config::values::parse_time_ms(s).is_none_or(|n| n == 0) {
                return Err(err(&a.span, format!("invalid flush time \"{s}\"")));
            }
            flush = true;
        } else if v == "gzip" {
            buffer = true;
            opts.gzip = 1;
        } else if let Some(s) = v.strip_prefix("gzip=") {
            buffer = true;
            opts.gzip = s
                .parse()
                .ok()
                .filter(|l| (1..=9).contains(l))
                .ok_or_else(|| err(&a.span, format!("invalid compression level \"{s}\"")))?;
        } else if let Some(s) = v.strip_prefix("if=") {
            let mut cond = a.clone();
            cond.value = s.to_string();
            opts.cond = Some(bx.template(&cond)?);
        } else {
            return Err(err(&a.span, format!("invalid parameter \"{v}\"")));
        }
    }
    if buffer
        && d.args
            .first()
            .is_some_and(|a| a.value.starts_with("syslog:"))
    {
        return Err(err(&d.span, "logs to syslog cannot be buffered"));
    }
    if flush && !buffer {
        let path = d.args.first().map_or("", |a| a.value.as_str());
        return Err(err(
            &d.span,
            format!("no buffer is defined for access_log \"{path}\""),
        ));
    }
    Ok((Some(fmt), opts))
}

impl AccessLog {
    /// Whether the format reads response headers (`$sent_http_*`), which then must
    /// be kept for the log line.
    pub fn needs_sent_headers(&self) -> bool {
        self.sent_headers
    }

    /// Writes the line for a finished request.
    pub fn log(&self, cx: &RequestCtx) {
        let Some(fmt) = &self.format else {
            return;
        };
        if let Some(cond) = &self.opts.cond {
            let v = cond.eval(cx);
            if v.is_empty() || v.as_ref() == b"0" {
                return;
            }
        }
        if let Some(peer) = &self.syslog {
            // `<PRI>TIME HOST TAG: LINE`, no newline (ngx_http_log_handler).
            let mut out = bytes::BytesMut::with_capacity(320);
            {
                use bytes::BufMut;
                peer.header(peer.severity(), &mut (&mut out).writer());
            }
            fmt.write(cx, &mut out);
            peer.send(&out);
            return;
        }
        let Some(sink) = &self.sink else {
            return;
        };
        let mut out = bytes::BytesMut::with_capacity(256);
        fmt.write(cx, &mut out);
        out.extend_from_slice(b"\n");
        if self.opts.gzip > 0 {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(out.len()),
                flate2::Compression::new(self.opts.gzip),
            );
            if e.write_all(&out).is_ok() {
                if let Ok(z) = e.finish() {
                    sink.write(z);
                }
            }
            return;
        }
        sink.write(out.to_vec());
    }
}

/// The log files of a runtime, one writer per path.
#[derive(Debug, Default)]
pub struct LogWriters {
    sinks: HashMap<PathBuf, Sink>,
    pending: Vec<Arc<AccessLog>>,
}

impl LogWriters {
    /// An access log target; one writer per distinct path.
    pub fn access(&mut self, path: &Path, format: Option<Arc<LogFormat>>) -> Arc<AccessLog> {
        self.access_with(path, format, LogOpts::default())
    }

    /// An access log target with `access_log` parameters.
    pub fn access_with(
        &mut self,
        path: &Path,
        format: Option<Arc<LogFormat>>,
        opts: LogOpts,
    ) -> Arc<AccessLog> {
        let sink = self
            .sinks
            .entry(path.to_path_buf())
            .or_insert_with(|| Sink::open(path))
            .clone();
        let a = Arc::new(AccessLog {
            sink: Some(sink),
            syslog: None,
            path: path.to_path_buf(),
            sent_headers: format.as_ref().is_some_and(|f| {
                f.template()
                    .uses(|v| matches!(v, junction_core::vars::Var::SentHttp(_)))
            }) || opts
                .cond
                .as_ref()
                .is_some_and(|f| f.uses(|v| matches!(v, junction_core::vars::Var::SentHttp(_)))),
            format,
            opts,
        });
        self.pending.push(a.clone());
        a
    }

    /// An `access_log syslog:…` target.
    pub fn syslog(
        &mut self,
        peer: crate::syslog::SyslogPeer,
        format: Option<Arc<LogFormat>>,
        opts: LogOpts,
    ) -> Arc<AccessLog> {
        let sent_headers = format.as_ref().is_some_and(|f| {
            f.template()
                .uses(|v| matches!(v, junction_core::vars::Var::SentHttp(_)))
        }) || opts
            .cond
            .as_ref()
            .is_some_and(|f| f.uses(|v| matches!(v, junction_core::vars::Var::SentHttp(_))));
        let a = Arc::new(AccessLog {
            sink: None,
            syslog: Some(Arc::new(peer)),
            path: PathBuf::from("syslog"),
            sent_headers,
            format,
            opts,
        });
        self.pending.push(a.clone());
        a
    }

    /// Paths of all access logs.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.pending
            .iter()
            .filter(|a| a.sink.is_some())
            .map(|a| a.path.clone())
            .collect()
    }
}

/// A `tracing` writer into a [`Sink`].
#[derive(Clone)]
pub struct SinkWriter(pub Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// nginx level name → tracing level.
pub fn level(name: &str) -> tracing::Level {
    match name {
        "debug" => tracing::Level::DEBUG,
        "info" | "notice" => tracing::Level::INFO,
        "warn" => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    }
}
