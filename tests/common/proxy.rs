//! The proxy under test (Junction, or nginx in the reference mode) on a config, and `-t` config checks.

use super::*;

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
