//! Testkit for the black-box tests: start the proxy under test on a config, start real
//! backends (python3 peers from `tests/peers/`), and talk raw HTTP/1.1 to both.
//!
//! Layout:
//! - [`Proxy`]: the proxy under test. `JUNCTION_TEST_PROXY=nginx` runs the system nginx on the
//!   same config (to check that every expectation is nginx's behaviour); otherwise `junction`
//!   (`CARGO_BIN_EXE_junction`, or `JUNCTION_BIN` at run time).
//! - [`Peer`]: a backend process; ready once it printed its port.
//! - [`http_request`] / [`http_stream`]: a small raw HTTP/1.1 client that sends exactly the bytes
//!   it is given and decodes Content-Length, chunked and close-delimited bodies.
//! - [`check_config`]: run `-t` on config files.
//! - [`Json`] / [`Echo`]: read what `echo.py` saw.
//!
//! Nothing here sleeps as synchronisation: processes are ready when they say so (pid file plus
//! a successful connect, or the peer's `PORT n` line); polling loops have short intervals and
//! an overall deadline.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::fmt::Display;
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a proxy or a peer may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default socket read timeout of the client: a hung proxy fails the test, not the CI run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Which proxy
// ---------------------------------------------------------------------------------------------

/// The proxy the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Junction,
    Nginx,
}

/// `JUNCTION_TEST_PROXY=nginx` selects nginx; anything else (or unset) junction.
pub fn proxy_kind() -> Kind {
    match std::env::var("JUNCTION_TEST_PROXY").as_deref() {
        Ok("nginx") => Kind::Nginx,
        _ => Kind::Junction,
    }
}

/// The product name that starts the `Server` header and the error-page signature.
pub fn product() -> &'static str {
    match proxy_kind() {
        Kind::Junction => "junction",
        Kind::Nginx => "nginx",
    }
}

/// Directory of this package (where `tests/` and `config/` live).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn junction_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("JUNCTION_BIN") {
        return PathBuf::from(bin);
    }
    if let Some(bin) = option_env!("CARGO_BIN_EXE_junction") {
        return PathBuf::from(bin);
    }
    panic!(
        "no junction binary: run the tests from the junction package (cargo test) or set \
         JUNCTION_BIN=/path/to/junction (or JUNCTION_TEST_PROXY=nginx to check against nginx)"
    );
}

fn nginx_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return PathBuf::from(bin);
    }
    for cand in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(cand).exists() {
            return PathBuf::from(cand);
        }
    }
    if which("nginx") {
        return PathBuf::from("nginx");
    }
    panic!(
        "JUNCTION_TEST_PROXY=nginx but nginx is not installed: \
         install it with `apt-get install -y nginx`"
    );
}

fn python_bin() -> PathBuf {
    let bin = std::env::var_os("PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    match Command::new(&bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => bin,
        _ => panic!(
            "python3 is needed for the test backends and was not found ({}): \
             install it with `apt-get install -y python3`",
            bin.display()
        ),
    }
}

fn which(name: &str) -> bool {
    Command::new(name)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// Ports and templates
// ---------------------------------------------------------------------------------------------

/// Polls a just-started peer until `ready()`; an error (with `log()`) if the process
/// exits first or `timeout` passes. The child is set to `None` when it exited.
pub fn wait_for_peer(
    name: &str,
    child: &mut Option<Child>,
    timeout: Duration,
    ready: impl Fn() -> bool,
    log: impl Fn() -> String,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            *child = None;
            return Err(format!(
                "{name} exited with {status} before it was ready\n{}",
                log()
            ));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{name} not ready after {timeout:?}\n{}", log()));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// First value of `name` (case-insensitive) in an ordered header list.
pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_all_in(headers, name).into_iter().next()
}

/// Every value of `name` (case-insensitive) in an ordered header list.
pub fn header_all_in<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A port that was free on 127.0.0.1 a moment ago (bind `127.0.0.1:0`, read, close).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A port on which nothing listens (for "backend down"): free, and checked to refuse.
pub fn closed_port() -> u16 {
    // Tests run in parallel: a port freed a moment ago may be taken by another test's
    // listener before we check it; probe a few.
    for _ in 0..20 {
        let port = free_port();
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            return port;
        }
    }
    panic!("no closed port found on 127.0.0.1 after 20 tries");
}

/// Replaces each `{NAME}` in `template` by its value.
pub fn fill(template: &str, vars: &[(&str, &dyn Display)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The proxy under test
// ---------------------------------------------------------------------------------------------

/// A running proxy (junction or nginx), stopped (SIGTERM, then SIGKILL) on drop.
///
/// Config placeholders filled by [`Proxy::start`]: `{PORT}`, `{PORT2}` … `{PORT5}` with free
/// ports (readiness connects to 127.0.0.1:`{PORT}`, so listen on it there or on a wildcard),
/// and `{DIR}` with the proxy's own temp dir. Fill backend ports yourself with [`fill`].
pub struct Proxy {
    /// The value of `{PORT}`.
    pub port: u16,
    /// `{PORT}`, `{PORT2}`, … in order (only those used by the config are listened on).
    pub ports: Vec<u16>,
    kind: Kind,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

const PORT_NAMES: [&str; 5] = ["PORT", "PORT2", "PORT3", "PORT4", "PORT5"];

impl Proxy {
    /// Starts the proxy on a bare sites-available style config (only `server`/`upstream`
    /// blocks). Panics, with the proxy's stderr and error log, if it does not become ready.
    pub fn start(config: &str) -> Proxy {
        Proxy::start_files(&[("junction.conf", config)], "junction.conf")
    }

    /// Writes `files` (name relative to the temp dir → template) and starts the proxy on
    /// `main`. `main` may be a bare file (in nginx mode it is then included from a generated
    /// `nginx.conf`) or a full nginx.conf (one with an `http {` block; it must not set `pid`).
    pub fn start_files(files: &[(&str, &str)], main: &str) -> Proxy {
        let mut last_err = String::new();
        // A port chosen by free_port() can be taken by someone else before the proxy binds
        // it: retry with fresh ports when that is what happened.
        for _attempt in 0..3 {
            match Proxy::try_start_files(files, main) {
                Ok(p) => return p,
                Err(e) if e.contains("in use") => last_err = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_err}");
    }

    /// Like [`Proxy::start_files`] but returns the failure text instead of panicking.
    pub fn try_start_files(files: &[(&str, &str)], main: &str) -> Result<Proxy, String> {
        let kind = proxy_kind();
        let dir = tempfile::Builder::new()
            .prefix("junction-test-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_str().expect("utf-8 temp dir").to_string();
        // Distinct ports: hold every probe listener until all are chosen.
        let probes: Vec<TcpListener> = PORT_NAMES
            .iter()
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
            .collect();
        let ports: Vec<u16> = probes
            .iter()
            .map(|l| l.local_addr().expect("local_addr").port())
            .collect();
        drop(probes);
        let render = |t: &str| {
            let mut s = t.replace("{DIR}", &d);
            for (name, port) in PORT_NAMES.iter().zip(&ports) {
                s = s.replace(&format!("{{{name}}}"), &port.to_string());
            }
            s
        };
        let mut main_text = String::new();
        for (name, template) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("mkdir");
            }
            let text = render(template);
            if *name == main {
                main_text = text.clone();
            }
            fs::write(&path, text).expect("write config");
        }
        let full = is_full_config(&main_text);
        let error_log = format!("{d}/error.log");
        let mut cmd = match kind {
            Kind::Junction => {
                let mut c = Command::new(junction_bin());
                c.arg("-p")
                    .arg(&d)
                    .arg("-c")
                    .arg(format!("{d}/{main}"))
                    .arg("-e")
                    .arg(&error_log)
                    .arg("-g")
                    .arg(format!("pid {d}/junction.pid;"));
                c
            }
            Kind::Nginx => {
                let conf = if full {
                    format!("{d}/{main}")
                } else {
                    let wrapper = nginx_wrapper(&d, &format!("{d}/{main}"));
                    fs::write(dir.path().join("nginx.conf"), wrapper).expect("write nginx.conf");
                    format!("{d}/nginx.conf")
                };
                // Bare configs get pid/error_log from the wrapper; full ones from -g.
                let globals = if full {
                    format!(
                        "pid {d}/nginx.pid; error_log {error_log} info; \
                         daemon off; master_process off;"
                    )
                } else {
                    "daemon off; master_process off;".to_string()
                };
                let mut c = Command::new(nginx_bin());
                c.arg("-p")
                    .arg(format!("{d}/"))
                    .arg("-c")
                    .arg(conf)
                    .arg("-g")
                    .arg(globals);
                c
            }
        };
        let stdout = fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let mut proxy = Proxy {
            port: ports[0],
            ports,
            kind,
            dir,
            child: Some(child),
        };
        proxy.wait_ready()?;
        Ok(proxy)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid_file = self.pid_file();
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Err(format!(
                    "proxy ({:?}) exited with {status} before it was ready\n{}",
                    self.kind,
                    self.diagnostics()
                ));
            }
            if pid_file.exists()
                && TcpStream::connect_timeout(
                    &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "proxy ({:?}) not ready after {READY_TIMEOUT:?} (pid file {} exists: {}, \
                     port {})\n{}",
                    self.kind,
                    pid_file.display(),
                    pid_file.exists(),
                    self.port,
                    self.diagnostics()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The proxy's temp dir (config files, logs, pid file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the pid file the proxy was told to write.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join(match self.kind {
            Kind::Junction => "junction.pid",
            Kind::Nginx => "nginx.pid",
        })
    }

    /// Process id of the proxy (nginx runs with `master_process off`: one process).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Content of the error log (the `-e` file; nginx: `error_log DIR/error.log info`).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// What the proxy wrote to stderr.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits (polling, up to `timeout`) until the error log contains `needle`; returns the log.
    pub fn wait_error_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.error_log();
            if log.contains(needle) {
                return Ok(log);
            }
            if Instant::now() > deadline {
                return Err(log);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak and current resident set size of the proxy process, in KiB.
    pub fn rss_kb(&self) -> Rss {
        proc_rss_kb(self.pid())
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_exit(timeout)
    }

    /// Sends a signal (`TERM`, `QUIT`, `HUP` …) to the proxy process.
    pub fn signal(&self, sig: &str) {
        if let Some(child) = self.child.as_ref() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Waits up to `timeout` for the proxy to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Raw request to `{PORT}`.
    pub fn request(&self, raw: &[u8]) -> Response {
        http_request(self.port, raw)
    }

    /// `GET path` with `Host: host` and `Connection: close` to `{PORT}`.
    pub fn get(&self, host: &str, path: &str) -> Response {
        http_request(self.port, get_request(host, path).as_bytes())
    }

    fn diagnostics(&self) -> String {
        let read = |n: &str| fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- stderr ---\n{}\n--- error log ---\n{}\n--- config dir {} ---",
            read("stderr.log"),
            read("error.log"),
            self.dir.path().display()
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(5)).is_none() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// True if `text` is a whole nginx.conf (has an `http {` or `events {` block at line start).
pub fn is_full_config(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        ["http", "events"].iter().any(|kw| {
            l.strip_prefix(kw)
                .is_some_and(|rest| rest.trim_start().starts_with('{'))
        })
    })
}

/// The nginx.conf that runs a bare sites file `site` with everything inside `dir`.
fn nginx_wrapper(dir: &str, site: &str) -> String {
    format!(
        "pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log info;\n\
         events {{}}\n\
         http {{\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   access_log {dir}/access.log;\n\
         \x20   client_body_temp_path {dir}/client_body_temp;\n\
         \x20   proxy_temp_path {dir}/proxy_temp;\n\
         \x20   fastcgi_temp_path {dir}/fastcgi_temp;\n\
         \x20   uwsgi_temp_path {dir}/uwsgi_temp;\n\
         \x20   scgi_temp_path {dir}/scgi_temp;\n\
         \x20   include {site};\n\
         }}\n"
    )
}

/// Waits (up to 5 s) until the file at `path` contains `needle` (a log line written by
/// a background thread); returns its text, or panics with what it holds.
pub fn wait_file_contains(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never reached {}:\n{text}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Peak (`VmHWM`) and current (`VmRSS`) resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Rss {
    pub peak_kb: u64,
    pub current_kb: u64,
}

/// Reads `VmHWM`/`VmRSS` from `/proc/PID/status`.
pub fn proc_rss_kb(pid: u32) -> Rss {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Rss {
        peak_kb: field("VmHWM:"),
        current_kb: field("VmRSS:"),
    }
}

// ---------------------------------------------------------------------------------------------
// Config checks (-t)
// ---------------------------------------------------------------------------------------------

/// Result of running a command to completion.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the proxy's config test (`junction -t -c FILE`; nginx: `nginx -t`) on `main` after
/// writing `files` into a fresh temp dir. Returns the output and the temp dir (whose path the
/// error messages name). In nginx mode a bare `main` is included from a generated wrapper, so
/// messages still name `main` and its line numbers.
pub fn check_config(files: &[(&str, &str)], main: &str) -> (Output, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("junction-check-")
        .tempdir()
        .expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        let text = text.replace("{DIR}", dir.path().to_str().expect("utf-8"));
        fs::write(path, text).expect("write");
    }
    let out = check_config_file(&dir.path().join(main));
    (out, dir)
}

/// Runs the config test on an existing file. nginx mode: a bare file (or one in a directory
/// of includes) is copied with its directory next to a wrapper, so relative includes work.
pub fn check_config_file(path: &Path) -> Output {
    match proxy_kind() {
        Kind::Junction => run(Command::new(junction_bin()).arg("-t").arg("-c").arg(path)),
        Kind::Nginx => {
            let text = fs::read_to_string(path).unwrap_or_default();
            if is_full_config(&text) {
                let prefix = path.parent().expect("parent");
                return run(Command::new(nginx_bin())
                    .arg("-t")
                    .arg("-p")
                    .arg(prefix)
                    .arg("-c")
                    .arg(path));
            }
            let work = tempfile::Builder::new()
                .prefix("junction-nginx-t-")
                .tempdir()
                .expect("temp dir");
            let w = work.path().to_str().expect("utf-8").to_string();
            let wrapper = format!(
                "pid {w}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n    \
                 include /etc/nginx/mime.types;\n    include {};\n}}\n",
                path.display()
            );
            let conf = work.path().join("nginx-wrapper.conf");
            fs::write(&conf, wrapper).expect("write wrapper");
            // Relative includes in the bare file resolve against the wrapper's directory:
            // give it the file's siblings, and nginx's own *_params files as a fallback.
            for src in [path.parent().expect("parent"), Path::new("/etc/nginx")] {
                for entry in fs::read_dir(src).into_iter().flatten().flatten() {
                    let to = work.path().join(entry.file_name());
                    if entry.path().is_file() && !to.exists() {
                        let _ = fs::copy(entry.path(), to);
                    }
                }
            }
            run(Command::new(nginx_bin())
                .arg("-t")
                .arg("-p")
                .arg(format!("{w}/"))
                .arg("-c")
                .arg(&conf))
        }
    }
}

/// Runs a command to completion with a deadline of 30 s.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{:?} did not finish within 30 s", cmd.get_program());
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code(),
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

/// A backend process, killed on drop. Ready once it printed its port on stdout.
pub struct Peer {
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Peer {
    /// Starts `tests/peers/SCRIPT ARGS…` with python3 (`-u`, and `-B` so no `__pycache__`
    /// lands in the source tree); waits for `PORT <n>`.
    pub fn python(script: &str, args: &[&str]) -> Peer {
        let path = manifest_dir().join("tests/peers").join(script);
        assert!(path.exists(), "no peer script {}", path.display());
        let mut cmd = Command::new(python_bin());
        cmd.arg("-u").arg("-B").arg(path).args(args);
        Peer::spawn(cmd)
    }

    /// `python3 -m http.server 0 --bind 127.0.0.1 --directory DIR`, as in the seed guide;
    /// ready on its "Serving HTTP on … port N" line.
    pub fn http_server(dir: &Path) -> Peer {
        let mut cmd = Command::new(python_bin());
        cmd.args([
            "-u",
            "-B",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir);
        Peer::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Peer {
        let log = tempfile::NamedTempFile::new().expect("peer log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start peer {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first.and_then(Result::ok));
            // Keep draining so the peer never blocks or dies on a full/closed pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(READY_TIMEOUT).ok().flatten();
        let port = line.as_deref().and_then(parse_port_line);
        match port {
            Some(port) => Peer { port, child, log },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "peer {cmd:?} not ready: first stdout line {line:?}\n--- stderr ---\n{}",
                    fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
        }
    }

    /// What the peer wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Raw request straight to the peer (bypassing the proxy).
    pub fn request(&self, raw: &[u8]) -> Response {
        http_request(self.port, raw)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `PORT 1234`, or http.server's `Serving HTTP on 127.0.0.1 port 1234 (http://…) ...`.
pub fn parse_port_line(line: &str) -> Option<u16> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("port"))
        .and_then(|i| words.get(i + 1))
        .and_then(|w| w.parse().ok())
}

/// Makes a directory holding the seed's `index.html` (`hello world\n`, 12 bytes).
pub fn seed_app_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("junction-myapp-")
        .tempdir()
        .expect("temp dir");
    fs::write(dir.path().join("index.html"), "hello world\n").expect("index.html");
    dir
}

/// Byte `i` of `big.py`'s deterministic body.
pub fn big_byte(i: usize) -> u8 {
    ((i * 7 + 3) % 251) as u8
}

/// Index of the first byte of `body` that differs from big.py's pattern (or the length
/// mismatch), None if `body` is exactly the `n`-byte pattern.
pub fn big_mismatch(body: &[u8], n: usize) -> Option<usize> {
    body.iter()
        .enumerate()
        .find(|(i, b)| **b != big_byte(*i))
        .map(|(i, _)| i)
        .or(if body.len() == n {
            None
        } else {
            Some(body.len().min(n))
        })
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// `GET path HTTP/1.1`, `Host: host`, `Connection: close`.
pub fn get_request(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Sends `raw` to 127.0.0.1:`port` and returns every byte received until the server closes
/// the connection (or 10 s of silence).
pub fn raw_exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(raw).expect("write request");
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A response: status line, headers in order (case-insensitive lookup), decoded body.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The head and a body prefix, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}\n", self.version, self.status, self.reason);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        let body = self.text();
        let cut: String = body.chars().take(600).collect();
        s.push_str(&format!("\n{cut}"));
        s
    }
}

/// Sends `raw` (exactly these bytes) to 127.0.0.1:`port` and reads one response.
/// The request is written from a separate thread, so a server that answers before reading
/// the whole request (413, 400) is still heard. Panics on I/O errors or timeouts.
pub fn http_request(port: u16, raw: &[u8]) -> Response {
    http_request_to(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), raw)
}

/// [`http_request`] to any address.
pub fn http_request_to(addr: SocketAddr, raw: &[u8]) -> Response {
    try_http_request_to(addr, raw).unwrap_or_else(|e| {
        panic!(
            "request to {addr} failed: {e}\n--- request ---\n{}",
            String::from_utf8_lossy(&raw[..raw.len().min(2000)])
        )
    })
}

/// [`http_request_to`] returning the I/O error.
pub fn try_http_request_to(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let mut stream = http_stream_to(addr, raw)?;
    let body = stream.read_to_end()?;
    let mut resp = stream.head.clone();
    resp.body = body;
    Ok(resp)
}

/// Opens a connection, sends `raw`, reads the response head; the body is read on demand.
pub fn http_stream(port: u16, raw: &[u8]) -> StreamingResponse {
    http_stream_to(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), raw)
        .unwrap_or_else(|e| panic!("request to port {port} failed: {e}"))
}

/// [`http_stream`] to any address.
pub fn http_stream_to(addr: SocketAddr, raw: &[u8]) -> io::Result<StreamingResponse> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let sent_at = Instant::now();
    let mut writer = stream.try_clone()?;
    let data = raw.to_vec();
    let writer = thread::spawn(move || writer.write_all(&data).and_then(|()| writer.flush()));
    let is_head = raw.starts_with(b"HEAD ");
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let head = loop {
        let head = read_head(&mut reader)?;
        // Interim 1xx responses (except 101) precede the real one.
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        break head;
    };
    let framing = if is_head || head.status == 204 || head.status == 304 || head.status < 200 {
        Framing::Length(0)
    } else if head
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(cl) = head.header("Content-Length") {
        Framing::Length(cl.trim().parse().map_err(|_| {
            io::Error::new(ErrorKind::InvalidData, format!("bad Content-Length {cl:?}"))
        })?)
    } else {
        Framing::Close
    };
    Ok(StreamingResponse {
        head,
        reader,
        framing,
        sent_at,
        first_body_at: None,
        writer: Some(writer),
    })
}

fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Response> {
    let mut line = Vec::new();
    let mut resp = Response::default();
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "connection closed in the response head ({} so far)",
                    resp.describe()
                ),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first {
            let mut parts = text.splitn(3, ' ');
            resp.version = parts.next().unwrap_or_default().to_string();
            resp.status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
                io::Error::new(ErrorKind::InvalidData, format!("bad status line {text:?}"))
            })?;
            resp.reason = parts.next().unwrap_or_default().to_string();
            first = false;
        } else if text.is_empty() {
            return Ok(resp);
        } else {
            let (k, v) = text.split_once(':').unwrap_or((text, ""));
            resp.headers.push((k.to_string(), v.trim().to_string()));
        }
    }
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Close,
}

/// A response whose body is read as it arrives.
pub struct StreamingResponse {
    /// Status and headers (its `body` is empty).
    pub head: Response,
    reader: BufReader<TcpStream>,
    framing: Framing,
    /// When the request was handed to the socket.
    pub sent_at: Instant,
    /// When the first body bytes were read (None until then).
    pub first_body_at: Option<Instant>,
    writer: Option<thread::JoinHandle<io::Result<()>>>,
}

impl StreamingResponse {
    /// Next piece of decoded body as soon as any is available; `None` at the end.
    pub fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = match &mut self.framing {
            Framing::Length(0) => return Ok(None),
            Framing::Length(left) => {
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("connection closed with {left} body bytes missing"),
                    ));
                }
                *left -= n as u64;
                n
            }
            Framing::Close => {
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                n
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(None);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    let size = line.trim_end().split(';').next().unwrap_or_default();
                    let size = u64::from_str_radix(size.trim(), 16).map_err(|_| {
                        io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {line:?}"))
                    })?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        loop {
                            line.clear();
                            if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(None);
                    }
                    *left = size;
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "EOF inside a chunk",
                    ));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = String::new();
                    self.reader.read_line(&mut crlf)?;
                }
                n
            }
        };
        if self.first_body_at.is_none() {
            self.first_body_at = Some(Instant::now());
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Reads until the decoded body read so far (by this call) ends with `needle` or the
    /// body ends; returns what this call read.
    pub fn read_until(&mut self, needle: &[u8]) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        while !contains(&got, needle) {
            match self.read_some()? {
                Some(piece) => got.extend_from_slice(&piece),
                None => break,
            }
        }
        Ok(got)
    }

    /// Reads the rest of the body.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(piece) = self.read_some()? {
            body.extend_from_slice(&piece);
        }
        self.finish();
        Ok(body)
    }

    /// Sets the read timeout of the connection.
    pub fn set_read_timeout(&self, t: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(t))
            .expect("set timeout");
    }

    fn finish(&mut self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for StreamingResponse {
    fn drop(&mut self) {
        self.finish();
    }
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// JSON (just enough to read echo.py's answers)
// ---------------------------------------------------------------------------------------------

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole JSON document.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(n) if *n >= 0.0 => Some(*n as u64),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit:?} at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    let v = self.value()?;
                    members.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(members));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.eat("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|()| Json::Bool(false)),
            Some(b'n') => self.eat("null").map(|()| Json::Null),
            Some(_) => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at {start}"))
            }
            None => Err("unexpected end".into()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                self.eat("\\u")?;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match c {
                        0xF0..=0xFF => 4,
                        0xE0..=0xEF => 3,
                        0xC0..=0xDF => 2,
                        _ => 1,
                    };
                    let end = (start + len).min(self.s.len());
                    out.push_str(&String::from_utf8_lossy(&self.s[start..end]));
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())
    }
}

/// What `echo.py` received, read from its JSON answer.
#[derive(Clone, Debug)]
pub struct Echo {
    pub method: String,
    /// The request-target exactly as the backend received it (query included).
    pub path: String,
    pub version: String,
    /// Request headers as received, in order.
    pub headers: Vec<(String, String)>,
    /// Source address of the connection the backend accepted.
    pub peer: String,
    pub peer_port: u16,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Echo {
    /// Reads echo.py's answer; panics (showing the response) if it is not one.
    pub fn from_response(r: &Response) -> Echo {
        let fail = |why: &str| -> ! {
            panic!("not an echo.py answer ({why}):\n{}", r.describe());
        };
        if r.status != 200 {
            fail("status");
        }
        let j = Json::parse(&r.text()).unwrap_or_else(|e| fail(&e));
        let s = |k: &str| {
            j.get(k)
                .and_then(Json::as_str)
                .unwrap_or_else(|| fail(k))
                .to_string()
        };
        let n = |k: &str| j.get(k).and_then(Json::as_u64).unwrap_or_else(|| fail(k));
        let headers = j
            .get("headers")
            .and_then(Json::as_array)
            .unwrap_or_else(|| fail("headers"))
            .iter()
            .map(|pair| match pair.as_array() {
                Some([k, v]) => (
                    k.as_str().unwrap_or_default().to_string(),
                    v.as_str().unwrap_or_default().to_string(),
                ),
                _ => fail("header pair"),
            })
            .collect();
        Echo {
            method: s("method"),
            path: s("path"),
            version: s("version"),
            headers,
            peer: s("peer"),
            peer_port: u16::try_from(n("peer_port")).unwrap_or_else(|_| fail("peer_port")),
            body_len: n("body_len"),
            body_sha256: s("body_sha256"),
        }
    }

    /// First value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of request header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }
}

/// Runs a table of checks and panics once with every failing row.
pub fn assert_table(name: &str, failures: &[String], rows: usize) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {rows} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// php-fpm (issue 4)
// ---------------------------------------------------------------------------------------------

/// The php-fpm binary: `PHP_FPM`, else the newest `/usr/sbin/php-fpm*`, else `php-fpm` on
/// the PATH; panics with the install command when there is none.
pub fn php_fpm_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PHP_FPM") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/sbin")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    if let Some(bin) = found.pop() {
        return bin;
    }
    if Command::new("php-fpm")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return PathBuf::from("php-fpm");
    }
    panic!("php-fpm is needed for the FastCGI tests: install it with `apt-get install -y php-fpm`");
}

/// Whether this process runs as root (php-fpm then needs `-R` and `user = root`).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Where a php-fpm pool listens.
#[derive(Clone, Debug)]
pub enum FpmListen {
    /// 127.0.0.1:port
    Tcp(u16),
    /// A unix socket path.
    Unix(PathBuf),
}

/// A php-fpm master with one pool (`pm = static`, 4 children, status page
/// `/fpm-status`), started in its own temp dir without any php.ini (`-n`), so only the
/// settings written here apply: no `error_log` file (so `error_log()` text goes to the
/// FastCGI stderr stream), no output buffering, 128 MB uploads. Ready once its socket
/// accepts a connection; stopped (SIGTERM, then SIGKILL) on drop.
pub struct PhpFpm {
    pub listen: FpmListen,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PhpFpm {
    /// A pool on 127.0.0.1 and a free port; `extra` lines are added to the pool section.
    pub fn start_tcp(extra: &str) -> PhpFpm {
        let mut last = String::new();
        for _ in 0..3 {
            match PhpFpm::try_start(FpmListen::Tcp(free_port()), extra) {
                Ok(f) => return f,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    /// A pool on a unix socket `fpm.sock` in its temp dir.
    pub fn start_unix(extra: &str) -> PhpFpm {
        PhpFpm::try_start(FpmListen::Unix(PathBuf::new()), extra).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(listen: FpmListen, extra: &str) -> Result<PhpFpm, String> {
        let dir = tempfile::Builder::new()
            .prefix("junction-fpm-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_str().expect("utf-8 temp dir").to_string();
        let listen = match listen {
            FpmListen::Unix(_) => FpmListen::Unix(dir.path().join("fpm.sock")),
            tcp => tcp,
        };
        let listen_line = match &listen {
            FpmListen::Tcp(port) => format!("listen = 127.0.0.1:{port}"),
            FpmListen::Unix(path) => format!("listen = {}\nlisten.mode = 0666", path.display()),
        };
        let user = if running_as_root() {
            "user = root\ngroup = root\n"
        } else {
            ""
        };
        let conf = format!(
            "[global]\n\
             pid = {d}/fpm.pid\n\
             error_log = {d}/fpm.log\n\
             daemonize = no\n\
             \n\
             [junction]\n\
             {user}\
             {listen_line}\n\
             pm = static\n\
             pm.max_children = 4\n\
             pm.status_path = /fpm-status\n\
             catch_workers_output = yes\n\
             decorate_workers_output = no\n\
             php_admin_flag[log_errors] = on\n\
             php_admin_value[output_buffering] = 0\n\
             php_admin_value[upload_max_filesize] = 128M\n\
             php_admin_value[post_max_size] = 128M\n\
             php_admin_value[memory_limit] = 256M\n\
             php_admin_value[upload_tmp_dir] = {d}\n\
             {extra}\n"
        );
        let conf_path = dir.path().join("fpm.conf");
        fs::write(&conf_path, conf).expect("write fpm.conf");
        let out = fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let err = out.try_clone().expect("clone");
        let mut cmd = Command::new(php_fpm_bin());
        cmd.arg("-n")
            .arg("-R")
            .arg("-F")
            .arg("-y")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {:?}: {e} (apt-get install -y php-fpm)",
                cmd.get_program()
            )
        })?;
        let mut fpm = PhpFpm {
            listen,
            dir,
            child: Some(child),
        };
        let mut child = fpm.child.take();
        let ready = wait_for_peer(
            "php-fpm",
            &mut child,
            READY_TIMEOUT,
            || fpm.accepts(),
            || fpm.log(),
        );
        fpm.child = child;
        ready.map(|()| fpm)
    }

    /// Whether its socket accepts a connection now.
    fn accepts(&self) -> bool {
        match &self.listen {
            FpmListen::Tcp(port) => TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                Duration::from_millis(200),
            )
            .is_ok(),
            FpmListen::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        }
    }

    /// The `fastcgi_pass` target: `127.0.0.1:PORT` or `unix:/path/fpm.sock`.
    pub fn target(&self) -> String {
        match &self.listen {
            FpmListen::Tcp(port) => format!("127.0.0.1:{port}"),
            FpmListen::Unix(path) => format!("unix:{}", path.display()),
        }
    }

    /// The TCP port (panics for a unix socket pool).
    pub fn port(&self) -> u16 {
        match &self.listen {
            FpmListen::Tcp(port) => *port,
            FpmListen::Unix(path) => panic!("php-fpm listens on {}", path.display()),
        }
    }

    /// Its temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// php-fpm's own log and its stderr.
    pub fn log(&self) -> String {
        let read = |n: &str| fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- fpm.log ---\n{}\n--- stderr ---\n{}",
            read("fpm.log"),
            read("stderr.log")
        )
    }

    /// Stops php-fpm (SIGTERM: the master ends its children) and waits until its socket
    /// refuses connections.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.accepts() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP relay that counts the connections it accepts: put it between the proxy and a
/// backend to count the backend connections the proxy opens.
pub struct ConnCounter {
    pub port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ConnCounter {
    /// Relays 127.0.0.1:`self.port` to `target`.
    pub fn start(target: SocketAddr) -> ConnCounter {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay");
        let port = listener.local_addr().expect("local_addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, st) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = conn else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let Ok(up) = TcpStream::connect(target) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    })
                };
                if let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) {
                    pipe(down, u2);
                    pipe(up, d2);
                }
            }
        });
        ConnCounter {
            port,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ConnCounter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// The md5 of `data` as lower-case hex (coreutils `md5sum`).
pub fn md5_hex(data: &[u8]) -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum (coreutils)");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("md5sum output");
    writer.join().expect("writer").expect("write to md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
