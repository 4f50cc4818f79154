//! `junction`: command line (nginx's flags), config loading, logging, signals,
//! and the wiring of the protocol crates into the server.
#![forbid(unsafe_code)]

use junction_config::model::BuildBackend;
use junction_config::{ConfigError, Directive};
use junction_server::serve::Stop;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const DEFAULT_PREFIX: &str = "/usr/local/junction/";
/// The configuration file without `-c`: the packaged layout's, or `conf/junction.conf`
/// under an explicit `-p` prefix (nginx's rule).
const DEFAULT_CONF: &str = "/etc/junction/junction.conf";
const DEFAULT_CONF_IN_PREFIX: &str = "conf/junction.conf";

/// The protocol backends, in the order they are offered each location.
const BACKENDS: &[BuildBackend] = &[
    junction_http::build,
    junction_fastcgi::backend::build,
    junction_uwsgi::backend::build,
    junction_scgi::backend::build,
    junction_memcached::backend::build,
];

struct Args {
    prefix: Option<PathBuf>,
    conf: Option<PathBuf>,
    error_log: Option<PathBuf>,
    globals: Option<String>,
    test: bool,
    dump: bool,
    quiet: bool,
    signal: Option<String>,
    version: bool,
    version_full: bool,
    help: bool,
}

fn usage() -> &'static str {
    "Usage: junction [-?hvVtTq] [-s signal] [-p prefix]\n                [-e filename] [-c filename] [-g directives]\n\n\
Options:\n  -?,-h         : this help\n  -v            : show version and exit\n  -V            : show version and configure options then exit\n  \
-t            : test configuration and exit\n  -T            : test configuration, dump it and exit\n  -q            : suppress non-error messages during configuration testing\n  \
-s signal     : send signal to a master process: stop, quit, reopen, reload\n  -p prefix     : set prefix path (default: /usr/local/junction/)\n  \
-e filename   : set error log file (default: logs/error.log)\n  -c filename   : set configuration file (default: /etc/junction/junction.conf)\n  \
-g directives : set global directives out of configuration file\n"
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        prefix: None,
        conf: None,
        error_log: None,
        globals: None,
        test: false,
        dump: false,
        quiet: false,
        signal: None,
        version: false,
        version_full: false,
        help: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(flags) = arg.strip_prefix('-') else {
            return Err(format!("invalid option: \"{arg}\""));
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            let rest: String = chars.clone().collect();
            let mut value = || -> Result<String, String> {
                if !rest.is_empty() {
                    Ok(rest.clone())
                } else {
                    it.next()
                        .ok_or_else(|| format!("option \"-{c}\" requires an argument"))
                }
            };
            match c {
                '?' | 'h' => a.help = true,
                'v' => a.version = true,
                'V' => a.version_full = true,
                't' => a.test = true,
                'T' => {
                    a.test = true;
                    a.dump = true
                }
                'q' => a.quiet = true,
                'p' => {
                    a.prefix = Some(PathBuf::from(value()?));
                    break;
                }
                'c' => {
                    a.conf = Some(PathBuf::from(value()?));
                    break;
                }
                'e' => {
                    a.error_log = Some(PathBuf::from(value()?));
                    break;
                }
                'g' => {
                    a.globals = Some(value()?);
                    break;
                }
                's' => {
                    a.signal = Some(value()?);
                    break;
                }
                _ => return Err(format!("invalid option: \"{c}\"")),
            }
        }
    }
    Ok(a)
}

/// The process's error log: nginx's line format, each target from its own level on.
fn install_error_log(layer: junction_server::error_log::ErrorLog) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let max = layer.max_level();
    let layer = layer.with_filter(tracing_subscriber::filter::LevelFilter::from_level(max));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

fn emerg(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("junction: [emerg] {msg}");
    ExitCode::FAILURE
}

struct Loaded {
    tree: Vec<Directive>,
    globals: Vec<Directive>,
}

fn load(conf: &Path, globals: Option<&str>) -> Result<Loaded, Vec<ConfigError>> {
    let tree = junction_config::load(conf).map_err(|e| vec![e])?;
    let globals = match globals {
        Some(g) => {
            junction_config::parse_nginx_str(g, Path::new("command line")).map_err(|e| vec![e])?
        }
        None => Vec::new(),
    };
    junction_config::registry::check(&tree)?;
    junction_config::registry::check_in(&globals, junction_config::registry::Context::Main)?;
    Ok(Loaded { tree, globals })
}

fn send_signal(pid_file: &Path, sig: &str) -> ExitCode {
    let name = match sig {
        "stop" => "TERM",
        "quit" => "QUIT",
        "reopen" => "USR1",
        "reload" => "HUP",
        _ => return emerg(format!("invalid option: \"-s {sig}\"")),
    };
    let pid = match std::fs::read_to_string(pid_file) {
        Ok(p) => p.trim().to_string(),
        Err(e) => return emerg(format!("open() \"{}\" failed ({e})", pid_file.display())),
    };
    if pid.parse::<u32>().is_err() {
        return emerg(format!(
            "invalid PID number \"{pid}\" in \"{}\"",
            pid_file.display()
        ));
    }
    match std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(&pid)
        .status()
    {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        _ => emerg(format!("kill({pid}, SIG{name}) failed")),
    }
}

/// mimalloc instead of glibc's malloc: a proxied request allocates and frees many
/// small objects across tasks; glibc's arenas spent ~9% of the CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("junction: {e}\n\n{}", usage());
            return ExitCode::FAILURE;
        }
    };
    if args.help {
        eprint!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if args.version || args.version_full {
        eprintln!("junction version: junction/{}", env!("CARGO_PKG_VERSION"));
        if args.version_full {
            eprintln!(
                "built with rustc; protocols: http, fastcgi, uwsgi, scgi, memcached (see README)"
            );
        }
        return ExitCode::SUCCESS;
    }
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PREFIX));
    let conf = prefix.join(args.conf.clone().unwrap_or_else(|| {
        PathBuf::from(match args.prefix {
            Some(_) => DEFAULT_CONF_IN_PREFIX,
            None => DEFAULT_CONF,
        })
    }));
    let failed = |errs: &[ConfigError]| {
        for e in errs {
            eprintln!("junction: [emerg] {e}");
        }
        if args.test {
            eprintln!(
                "junction: configuration file {} test failed",
                conf.display()
            );
        }
        ExitCode::FAILURE
    };
    let loaded = match load(&conf, args.globals.as_deref()) {
        Ok(l) => l,
        Err(errs) => return failed(&errs),
    };
    let rt = match junction_server::build_all(&loaded.tree, &loaded.globals, &prefix, BACKENDS) {
        Ok(rt) => rt,
        Err(errs) => return failed(&errs),
    };
    let pid_file = rt
        .main
        .pid
        .clone()
        .unwrap_or_else(|| prefix.join("logs/junction.pid"));
    if let Some(sig) = &args.signal {
        return send_signal(&pid_file, sig);
    }
    if args.test {
        if !args.quiet {
            for w in &rt.warnings {
                eprintln!("junction: [warn] {w}");
            }
            eprintln!(
                "junction: the configuration file {} syntax is ok",
                conf.display()
            );
            eprintln!(
                "junction: configuration file {} test is successful",
                conf.display()
            );
        }
        if args.dump {
            println!("# configuration file {}:", conf.display());
            print!("{}", junction_config::print_nginx(&loaded.tree));
        }
        return ExitCode::SUCCESS;
    }

    // Error log: every main-level `error_log`; when none of them is a file or stderr,
    // the default one (`-e`, else logs/error.log under the prefix) at `error`, as
    // nginx's ngx_log_open_default.
    let mut elogs = rt.main.error_logs.clone();
    if elogs
        .iter()
        .all(|t| matches!(t.dest, junction_server::error_log::ErrorDest::Syslog(_)))
    {
        let dest = match &args.error_log {
            Some(p) if p == Path::new("stderr") => junction_server::error_log::ErrorDest::Stderr,
            Some(p) => junction_server::error_log::ErrorDest::File(prefix.join(p)),
            None => junction_server::error_log::ErrorDest::File(prefix.join("logs/error.log")),
        };
        elogs.push(junction_server::error_log::ErrorTarget {
            dest,
            level: tracing::Level::ERROR,
            severity: 3,
        });
    }
    let mut targets = Vec::new();
    for t in &elogs {
        match junction_server::error_log::Target::open(t) {
            Ok(t) => targets.push(t),
            Err(e) => return emerg(e),
        }
    }
    install_error_log(junction_server::error_log::ErrorLog::with_targets(targets));
    for w in &rt.warnings {
        tracing::warn!("{w}");
    }

    if let Some(n) = rt.main.worker_rlimit_nofile {
        // nginx's worker_rlimit_nofile: both limits, as its workers set them.
        let lim = rustix::process::Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Nofile, lim) {
            tracing::error!("setrlimit(RLIMIT_NOFILE, {n}) failed ({e})");
        }
    }
    let workers = match rt.main.worker_processes {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // One single-threaded runtime per worker (nginx's worker model, in threads): no
    // work stealing and no cross-thread wakeups on the request path; each worker has
    // its own SO_REUSEPORT sockets, so the kernel spreads connections over them.
    let per_worker = match junction_server::bind_all(&rt, workers) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return emerg(e);
        }
    };
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return emerg(format!("cannot start runtime: {e}")),
    };
    let sigs = {
        let _guard = control.enter();
        match Signals::install() {
            Ok(s) => s,
            Err(e) => return emerg(format!("cannot install signal handlers: {e}")),
        }
    };
    let rt = Arc::new(rt);
    junction_server::status::publish(&rt);
    // Active health checks: one task per group with `health_check`, on the control
    // thread (never for `-t`); they end with it (or with a reload).
    let health = start_health_checks(&control, &rt);
    let (tx, rx) = tokio::sync::watch::channel(Stop::Run);
    let (config_tx, config_rx) = tokio::sync::watch::channel(rt.clone());
    let mut threads = Vec::with_capacity(workers);
    // Every worker thread is running before the pid file says the process is ready.
    let started = Arc::new(std::sync::Barrier::new(per_worker.len() + 1));
    for (n, ls) in per_worker.into_iter().enumerate() {
        let rt = config_rx.clone();
        let rx = rx.clone();
        let started = started.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("junction-worker-{n}"))
            .spawn(move || {
                started.wait();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(junction_server::serve(rt, ls, rx));
                        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                    }
                    Err(e) => tracing::error!("cannot start worker runtime: {e}"),
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => return emerg(format!("cannot start worker thread: {e}")),
        }
    }
    started.wait();
    if let Some(d) = pid_file.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        return emerg(format!("open() \"{}\" failed ({e})", pid_file.display()));
    }
    notify(&[
        sd_notify::NotifyState::MainPid(std::process::id()),
        sd_notify::NotifyState::Ready,
    ]);
    let reload = Reload {
        conf: conf.clone(),
        globals: args.globals.clone(),
        prefix: prefix.clone(),
        config: config_tx,
        health,
    };
    control.block_on(signals(tx, reload, sigs));
    notify(&[sd_notify::NotifyState::Stopping]);
    for t in threads {
        let _ = t.join();
    }
    let _ = std::fs::remove_file(&pid_file);
    ExitCode::SUCCESS
}

/// systemd's readiness protocol (`Type=notify`, `sd_notify(3)`): a datagram to
/// `$NOTIFY_SOCKET`; nothing at all when that is not set.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify() failed ({e})");
    }
}

fn start_health_checks(
    control: &tokio::runtime::Runtime,
    rt: &junction_server::Runtime,
) -> Vec<tokio::task::JoinHandle<()>> {
    rt.upstreams
        .iter()
        .filter(|g| g.health.is_some())
        .map(|g| control.spawn(junction_core::health::run(g.clone())))
        .collect()
}

/// What `-s reload` (SIGHUP) needs: read the same file again, build, swap.
struct Reload {
    conf: PathBuf,
    globals: Option<String>,
    prefix: PathBuf,
    config: tokio::sync::watch::Sender<Arc<junction_server::Runtime>>,
    health: Vec<tokio::task::JoinHandle<()>>,
}

impl Reload {
    /// Loads and builds the configuration again; on success every connection uses it
    /// from its next request on (open keep-alive connections included). A configuration that fails to load, or
    /// that changes the listen addresses, is refused and the old one stays.
    fn run(&mut self) {
        // systemd (`Type=notify`) is told a reload began, and READY=1 when it ended,
        // whether or not the new configuration was taken.
        let mut begin = vec![sd_notify::NotifyState::Reloading];
        if let Ok(t) = sd_notify::NotifyState::monotonic_usec_now() {
            begin.push(t);
        }
        notify(&begin);
        let counter = if self.swap() {
            &junction_core::stats::PROCESS.reloads_ok
        } else {
            &junction_core::stats::PROCESS.reloads_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Builds and swaps in the new configuration; whether it was taken.
    fn swap(&mut self) -> bool {
        let loaded = match load(&self.conf, self.globals.as_deref()) {
            Ok(l) => l,
            Err(errs) => {
                for e in errs {
                    tracing::error!("{e}; reload refused, the configuration stays");
                }
                return false;
            }
        };
        let rt = match junction_server::build(&loaded.tree, &loaded.globals, &self.prefix, BACKENDS)
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("{e}; reload refused, the configuration stays");
                return false;
            }
        };
        let old: Vec<_> = self
            .config
            .borrow()
            .listens
            .iter()
            .map(|l| (l.addr, l.unix.clone()))
            .collect();
        let new: Vec<_> = rt
            .listens
            .iter()
            .map(|l| (l.addr, l.unix.clone()))
            .collect();
        if old != new {
            tracing::error!(
                "reload changes the listen addresses, which needs a restart; the configuration stays"
            );
            return false;
        }
        for w in &rt.warnings {
            tracing::warn!("{w}");
        }
        for h in self.health.drain(..) {
            h.abort();
        }
        let rt = Arc::new(rt);
        self.health = rt
            .upstreams
            .iter()
            .filter(|g| g.health.is_some())
            .map(|g| tokio::spawn(junction_core::health::run(g.clone())))
            .collect();
        junction_server::status::publish(&rt);
        let _ = self.config.send(rt);
        tracing::info!(
            "reconfiguring: every connection uses the new configuration from its next request"
        );
        true
    }
}

/// The signals Junction handles, installed before the pid file is written so a
/// signal sent as soon as the process is ready is never lost (or fatal).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside a runtime context).
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }
}

async fn signals(tx: tokio::sync::watch::Sender<Stop>, mut reload: Reload, sigs: Signals) {
    let Signals {
        mut term,
        mut int,
        mut quit,
        mut hup,
        mut usr1,
    } = sigs;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("signal 15 (SIGTERM) received, exiting"); let _ = tx.send(Stop::Fast); return; }
            _ = int.recv() => { tracing::info!("signal 2 (SIGINT) received, exiting"); let _ = tx.send(Stop::Fast); return; }
            _ = quit.recv() => { tracing::info!("signal 3 (SIGQUIT) received, shutting down gracefully"); let _ = tx.send(Stop::Graceful); return; }
            _ = hup.recv() => {
                tracing::info!("signal 1 (SIGHUP) received, reconfiguring");
                reload.run();
            }
            _ = usr1.recv() => {
                tracing::info!("signal 10 (SIGUSR1) received, reopening logs");
                junction_server::log::reopen_all();
            }
        }
    }
}
