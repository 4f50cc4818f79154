//! `junction`: command line (nginx's flags), config loading, logging, signals,
//! and the wiring of the protocol crates into the server (their backends, and every
//! crate's directives into the one registry the tree is checked against).
//!
//! The process is nginx's master and workers in one: the master (the control
//! thread: [`Master`]) handles the signals, reloads (the listening sockets kept,
//! bound and closed by `junction_server::listeners`) and the binary upgrade
//! (`upgrade`); the workers are threads, one single-threaded runtime each, started
//! again by the master after `WINCH` + `HUP` (a rollback).
#![forbid(unsafe_code)]

use junction_config::model::BuildBackend;
use junction_config::registry::{Directives, Registry};
use junction_config::{ConfigError, Directive};
use junction_server::serve::Stop;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[cfg(test)]
mod registry_tests;
mod upgrade;

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

/// The directives of each crate, in the order they are looked up.
static DIRECTIVES: &[&Directives] = &[
    &junction_config::registry::CORE,
    &junction_server::directives::DIRECTIVES,
    &junction_http::directives::DIRECTIVES,
    &junction_fastcgi::directives::DIRECTIVES,
    &junction_uwsgi::directives::DIRECTIVES,
    &junction_scgi::directives::DIRECTIVES,
    &junction_memcached::directives::DIRECTIVES,
];

/// Every directive Junction knows, checked over the tree before the build.
static REGISTRY: Registry = Registry::new(DIRECTIVES);

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
    /// The registry's warnings (directives accepted without effect).
    warnings: Vec<String>,
}

fn load(conf: &Path, globals: Option<&str>) -> Result<Loaded, Vec<ConfigError>> {
    let tree = junction_config::load(conf).map_err(|e| vec![e])?;
    let globals = match globals {
        Some(g) => {
            junction_config::parse_nginx_str(g, Path::new("command line")).map_err(|e| vec![e])?
        }
        None => Vec::new(),
    };
    let mut warnings = REGISTRY.check(&tree)?;
    warnings.extend(REGISTRY.check_in(&globals, junction_config::registry::Context::Main)?);
    Ok(Loaded {
        tree,
        globals,
        warnings,
    })
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

/// jemalloc instead of glibc's malloc: a proxied request allocates and frees many
/// small objects across tasks; glibc's arenas spent ~9% of the CPU on them. jemalloc
/// rather than mimalloc: a request's few allocations of 1-8 KB (its futures' boxes,
/// buffers) take mimalloc's generic path, ~1k instructions per request more.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    let mut rt = match junction_server::build_all(&loaded.tree, &loaded.globals, &prefix, BACKENDS)
    {
        Ok(rt) => rt,
        Err(errs) => return failed(&errs),
    };
    rt.warnings.splice(0..0, loaded.warnings);
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
    let workers = worker_count(&rt);
    let exe = upgrade::Exe::current();
    let (inherited, inherit_err) = upgrade::take_inherited();
    if let Some(e) = inherit_err {
        tracing::error!("{e}");
    }
    if !inherited.is_empty() {
        tracing::info!(
            "using inherited sockets from \"{}\" ({} sockets)",
            upgrade::ENV,
            inherited.len()
        );
    }
    let upgraded_from = (!inherited.is_empty())
        .then(rustix::process::getppid)
        .flatten();
    // One single-threaded runtime per worker (nginx's worker model, in threads): no
    // work stealing and no cross-thread wakeups on the request path; each worker has
    // its own SO_REUSEPORT sockets, so the kernel spreads connections over them.
    let (sockets, per_worker) =
        match junction_server::listeners::Sockets::open(&rt, workers, inherited) {
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
    // ACME certificates: one task each, on the control thread (never for `-t`).
    junction_server::acme::start(control.handle());
    let (config_tx, config_rx) = tokio::sync::watch::channel(rt.clone());
    // Every worker thread is running before the pid file says the process is ready.
    let workers = match Workers::spawn(per_worker, &config_rx) {
        Ok(w) => w,
        Err(e) => return emerg(e),
    };
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
    let mut master = Master {
        reload: Reload {
            conf: conf.clone(),
            globals: args.globals.clone(),
            prefix: prefix.clone(),
            config: config_tx,
            health,
            pid_file: pid_file.clone(),
        },
        sockets,
        workers: Some(workers),
        draining: Vec::new(),
        exe,
        new_binary: None,
        upgraded_from,
    };
    control.block_on(master.run(sigs));
    // The old binary of an upgrade is no longer the service's main process.
    if master.new_binary.is_none() {
        notify(&[sd_notify::NotifyState::Stopping]);
    }
    master.join();
    let _ = std::fs::remove_file(master.pid_path());
    ExitCode::SUCCESS
}

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
        // `server … resolve`: the groups that follow DNS while running.
        .chain(
            rt.upstreams
                .iter()
                .filter(|g| g.discovery().is_some())
                .map(|g| control.spawn(junction_core::discovery::run(g.clone()))),
        )
        // `ssl_stapling on`: OCSP responses fetched and refreshed.
        .chain(
            junction_server::ocsp::tasks(rt)
                .into_iter()
                .map(|t| control.spawn(t)),
        )
        .collect()
}

/// `worker_processes` (`auto`: one per CPU).
fn worker_count(rt: &junction_server::Runtime) -> usize {
    match rt.main.worker_processes {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The worker threads of one generation, with what the master sends them.
struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<Stop>,
    changes: Vec<tokio::sync::mpsc::UnboundedSender<junction_server::listeners::Change>>,
}

impl Workers {
    /// Starts one thread per socket list and returns once every one is running
    /// (its runtime built).
    fn spawn(
        per_worker: Vec<junction_server::listeners::Assigned>,
        config: &tokio::sync::watch::Receiver<Arc<junction_server::Runtime>>,
    ) -> Result<Workers, String> {
        let (stop, rx) = tokio::sync::watch::channel(Stop::Run);
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let mut w = Workers {
            threads: Vec::with_capacity(per_worker.len()),
            stop,
            changes: Vec::with_capacity(per_worker.len()),
        };
        for (n, ls) in per_worker.into_iter().enumerate() {
            let rt = config.clone();
            let rx = rx.clone();
            let started = started_tx.clone();
            let (ctx, crx) = tokio::sync::mpsc::unbounded_channel();
            let spawned = std::thread::Builder::new()
                .name(format!("junction-worker-{n}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        // Each turn of the loop reads the clock once at most.
                        .on_thread_unpark(junction_core::time::turn)
                        .build()
                    {
                        Ok(runtime) => {
                            let _ = started.send(());
                            runtime.block_on(junction_server::listeners::serve(rt, ls, rx, crx));
                            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                        }
                        Err(e) => {
                            tracing::error!("cannot start worker runtime: {e}");
                            let _ = started.send(());
                        }
                    }
                });
            match spawned {
                Ok(t) => w.threads.push(t),
                Err(e) => {
                    // The threads started so far stop at once.
                    let _ = w.stop.send(Stop::Fast);
                    return Err(format!("cannot start worker thread: {e}"));
                }
            }
            w.changes.push(ctx);
        }
        drop(started_tx);
        for _ in 0..w.threads.len() {
            let _ = started.recv();
        }
        Ok(w)
    }
}

/// The master: signals, reload, binary upgrade, the worker threads.
struct Master {
    reload: Reload,
    sockets: junction_server::listeners::Sockets,
    /// The running workers; `None` after `WINCH`.
    workers: Option<Workers>,
    /// Worker threads of earlier generations still finishing their connections.
    draining: Vec<Workers>,
    exe: upgrade::Exe,
    /// The new binary started by `USR2`, while it runs.
    new_binary: Option<upgrade::NewBinary>,
    /// This process is the new binary of an upgrade, started by this parent.
    upgraded_from: Option<rustix::process::Pid>,
}

impl Master {
    /// The pid file's name now: `PID.oldbin` while a new binary runs.
    fn pid_path(&self) -> PathBuf {
        match self.new_binary {
            Some(_) => upgrade::oldbin(&self.reload.pid_file),
            None => self.reload.pid_file.clone(),
        }
    }

    /// Handles signals until the process is to exit.
    async fn run(&mut self, sigs: Signals) {
        let Signals {
            mut term,
            mut int,
            mut quit,
            mut hup,
            mut usr1,
            mut usr2,
            mut winch,
        } = sigs;
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("signal 15 (SIGTERM) received, exiting"); self.stop(Stop::Fast); return; }
                _ = int.recv() => { tracing::info!("signal 2 (SIGINT) received, exiting"); self.stop(Stop::Fast); return; }
                _ = quit.recv() => { tracing::info!("signal 3 (SIGQUIT) received, shutting down gracefully"); self.stop(Stop::Graceful); return; }
                _ = hup.recv() => {
                    tracing::info!("signal 1 (SIGHUP) received, reconfiguring");
                    self.hup();
                }
                _ = usr1.recv() => {
                    tracing::info!("signal 10 (SIGUSR1) received, reopening logs");
                    junction_server::log::reopen_all();
                }
                _ = usr2.recv() => self.usr2(),
                _ = winch.recv() => self.winch(),
                status = wait_new_binary(&mut self.new_binary) => self.new_binary_exited(status),
            }
        }
    }

    /// A stop: the workers are told, and the master's copies of the listening
    /// sockets close at once (nginx's `ngx_close_listening_sockets`), so the addresses
    /// refuse connections as soon as the workers stop accepting.
    fn stop(&mut self, how: Stop) {
        // Workers still draining after `WINCH` are told too (a fast stop ends them).
        for w in self.workers.iter().chain(&self.draining) {
            let _ = w.stop.send(how);
        }
        // Unix socket files stay while another binary of an upgrade serves them.
        let shared = self.new_binary.is_some() || self.old_binary_runs();
        self.sockets.close(shared);
    }

    /// This process is the new binary of an upgrade and the old one still runs.
    fn old_binary_runs(&self) -> bool {
        self.upgraded_from
            .is_some_and(|p| rustix::process::getppid() == Some(p))
    }

    /// Waits for every worker thread (of every generation).
    fn join(&mut self) {
        if let Some(w) = self.workers.take() {
            self.draining.push(w);
        }
        for w in self.draining.drain(..) {
            for t in w.threads {
                let _ = t.join();
            }
        }
    }

    /// SIGHUP: a reload; with the workers stopped by `WINCH`, new workers on the
    /// configuration as it is (nginx: the old binary takes over again when the new
    /// one is to be rolled back).
    fn hup(&mut self) {
        if self.new_binary.is_some() {
            // nginx: the old master of an upgrade does not read the configuration
            // again; it only takes over with workers of its own.
            match self.workers {
                None => self.respawn(),
                Some(_) => {
                    tracing::info!("the configuration is not read again while a new binary runs")
                }
            }
            return;
        }
        if self.workers.is_none() {
            self.reload.run(&mut self.sockets, None);
            self.respawn();
            return;
        }
        if self.reload.run(&mut self.sockets, self.workers.as_ref()) {
            // `worker_processes` changed: a new generation of workers on the new
            // count, the old one finishing gracefully (nginx's reload, in threads).
            let old = self.workers.take();
            self.respawn();
            match (old, self.workers.is_some()) {
                (Some(w), true) => {
                    let _ = w.stop.send(Stop::Graceful);
                    self.draining.push(w);
                }
                (old, _) => self.workers = old,
            }
        }
    }

    fn respawn(&mut self) {
        tracing::info!("start worker processes");
        self.draining
            .retain(|w| w.threads.iter().any(|t| !t.is_finished()));
        let per_worker = match self.sockets.for_workers() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot start worker processes ({e})");
                return;
            }
        };
        match Workers::spawn(per_worker, &self.reload.config.subscribe()) {
            Ok(w) => self.workers = Some(w),
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// SIGUSR2: start the new binary with the listening sockets.
    fn usr2(&mut self) {
        let ignore = self.new_binary.is_some() || self.old_binary_runs();
        if ignore {
            // nginx: the old binary's process is still running (in the new one), or a
            // new binary already runs (in the old one).
            tracing::info!("signal 12 (SIGUSR2) received, ignoring");
            return;
        }
        tracing::info!("signal 12 (SIGUSR2) received, changing binary");
        let fds = self.sockets.fds();
        match upgrade::exec_new_binary(&self.exe, &fds, &self.reload.pid_file) {
            Ok(nb) => {
                tracing::info!("start new binary process {}", nb.pid);
                self.new_binary = Some(nb);
                self.upgraded_from = None;
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// SIGWINCH: the workers stop accepting and finish their connections; the master
    /// stays (for `QUIT`, or `HUP` to start workers again). Ignored on a terminal,
    /// where it means the window changed size (nginx ignores it unless daemonized).
    fn winch(&mut self) {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            tracing::info!("signal 28 (SIGWINCH) received, ignoring: running on a terminal");
            return;
        }
        tracing::info!("signal 28 (SIGWINCH) received, stop accepting connections");
        if let Some(w) = self.workers.take() {
            let _ = w.stop.send(Stop::Graceful);
            self.draining.push(w);
        }
        self.draining
            .retain(|w| w.threads.iter().any(|t| !t.is_finished()));
    }

    /// The new binary exited while this process runs: the pid file is this
    /// process's again, and workers start again if `WINCH` had stopped them.
    fn new_binary_exited(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        let pid = self.new_binary.take().map_or(0, |n| n.pid);
        match status {
            Ok(s) => match s.code() {
                Some(c) => tracing::info!("new binary process {pid} exited with code {c}"),
                None => tracing::info!("new binary process {pid} exited ({s})"),
            },
            Err(e) => tracing::error!("waitpid() for new binary process {pid} failed ({e})"),
        }
        let old = upgrade::oldbin(&self.reload.pid_file);
        if let Err(e) = std::fs::rename(&old, &self.reload.pid_file) {
            tracing::error!(
                "rename() {} back to {} failed after the new binary process exited ({e})",
                old.display(),
                self.reload.pid_file.display()
            );
        }
        notify(&[sd_notify::NotifyState::MainPid(std::process::id())]);
        if self.workers.is_none() {
            self.respawn();
        }
    }
}

async fn wait_new_binary(
    nb: &mut Option<upgrade::NewBinary>,
) -> std::io::Result<std::process::ExitStatus> {
    match nb {
        Some(n) => n.child.wait().await,
        None => std::future::pending().await,
    }
}

/// What `-s reload` (SIGHUP) needs: read the same file again, build, swap.
struct Reload {
    conf: PathBuf,
    globals: Option<String>,
    prefix: PathBuf,
    config: tokio::sync::watch::Sender<Arc<junction_server::Runtime>>,
    health: Vec<tokio::task::JoinHandle<()>>,
    /// The `pid` path of the configuration last taken.
    pid_file: PathBuf,
}

impl Reload {
    /// Loads and builds the configuration again; on success every connection uses it
    /// from its next request on (open keep-alive connections included). Listen
    /// addresses that stay keep their sockets, new ones are bound, removed ones are
    /// closed (their connections finish). A configuration that fails to load or to
    /// bind is refused and the old one stays. Whether the worker count changed (the
    /// workers are to be started again).
    fn run(
        &mut self,
        sockets: &mut junction_server::listeners::Sockets,
        workers: Option<&Workers>,
    ) -> bool {
        // systemd (`Type=notify`) is told a reload began, and READY=1 when it ended,
        // whether or not the new configuration was taken.
        let mut begin = vec![sd_notify::NotifyState::Reloading];
        if let Ok(t) = sd_notify::NotifyState::monotonic_usec_now() {
            begin.push(t);
        }
        notify(&begin);
        let before = sockets.workers();
        let counter = if self.swap(sockets, workers) {
            &junction_core::stats::PROCESS.reloads_ok
        } else {
            &junction_core::stats::PROCESS.reloads_failed
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        notify(&[sd_notify::NotifyState::Ready]);
        sockets.workers() != before
    }

    /// Builds and swaps in the new configuration; whether it was taken.
    fn swap(
        &mut self,
        sockets: &mut junction_server::listeners::Sockets,
        workers: Option<&Workers>,
    ) -> bool {
        use junction_server::listeners::Change;
        let loaded = match load(&self.conf, self.globals.as_deref()) {
            Ok(l) => l,
            Err(errs) => {
                for e in errs {
                    tracing::error!("{e}; reload refused, the configuration stays");
                }
                return false;
            }
        };
        let mut rt =
            match junction_server::build(&loaded.tree, &loaded.globals, &self.prefix, BACKENDS) {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("{e}; reload refused, the configuration stays");
                    return false;
                }
            };
        rt.warnings.splice(0..0, loaded.warnings);
        // nginx's ngx_init_cycle: new addresses bound before anything changes.
        let update = match sockets.update(&rt) {
            Ok(u) => u,
            Err(e) => {
                tracing::error!("{e}; reload refused, the configuration stays");
                return false;
            }
        };
        // nginx: a new `pid` path gets the pid file, and the old one is removed.
        let pid_file = rt
            .main
            .pid
            .clone()
            .unwrap_or_else(|| self.prefix.join("logs/junction.pid"));
        if pid_file != self.pid_file {
            if let Some(d) = pid_file.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            match std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.pid_file);
                    self.pid_file = pid_file;
                }
                Err(e) => tracing::error!(
                    "open() \"{}\" failed ({e}); the pid file stays \"{}\"",
                    pid_file.display(),
                    self.pid_file.display()
                ),
            }
        }
        let count = worker_count(&rt);
        if count != sockets.workers() {
            match sockets.resize(count) {
                Ok(()) => tracing::info!("reconfiguring: {count} worker processes"),
                Err(e) => tracing::error!(
                    "{e}; worker_processes {count} not applied, {} workers stay",
                    sockets.workers()
                ),
            }
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
            .chain(
                rt.upstreams
                    .iter()
                    .filter(|g| g.discovery().is_some())
                    .map(|g| tokio::spawn(junction_core::discovery::run(g.clone()))),
            )
            .chain(
                junction_server::ocsp::tasks(&rt)
                    .into_iter()
                    .map(tokio::spawn),
            )
            .collect();
        junction_server::acme::start(&tokio::runtime::Handle::current());
        junction_server::status::publish(&rt);
        // The configuration changes first, then the removed addresses stop accepting
        // (their connections finish under the configuration they had), then the
        // workers accept on the new addresses (already listening: nothing is lost).
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for (n, changes) in update.per_worker.into_iter().enumerate() {
            for c in changes {
                match c {
                    Change::Remove(_) => removes.push((n, c)),
                    Change::Add(..) => adds.push((n, c)),
                }
            }
        }
        let send = |(n, c): (usize, Change)| {
            if let Some(tx) = workers.and_then(|w| w.changes.get(n)) {
                let _ = tx.send(c);
            }
        };
        let _ = self.config.send(rt);
        removes.into_iter().for_each(send);
        adds.into_iter().for_each(send);
        for k in &update.removed {
            tracing::info!("reconfiguring: stopped listening on {k}");
        }
        for k in &update.added {
            tracing::info!("reconfiguring: listening on {k}");
        }
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
    usr2: tokio::signal::unix::Signal,
    winch: tokio::signal::unix::Signal,
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
            usr2: signal(SignalKind::user_defined2())?,
            winch: signal(SignalKind::window_change())?,
        })
    }
}
