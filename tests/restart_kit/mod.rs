//! A master process for the restart tests: junction, or nginx with `master_process on`
//! (the shared testkit runs nginx without a master, which cannot reload or upgrade),
//! daemonized as nginx is run in production (nginx ignores `USR2` and `WINCH` when it
//! runs in the foreground under the parent that started it),
//! started on a whole configuration with OS-chosen ports; reload with `-s reload`,
//! signals to the master by pid, the pid file and `PID.oldbin` read as an operator
//! would. Readiness is the pid file plus a successful connect; the processes a binary
//! upgrade starts are stopped on drop by the pids their pid files name.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use crate::common::*;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a reload, an upgrade or a drain may take on a loaded machine.
pub const SLOW: Duration = Duration::from_secs(15);

pub fn nginx_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return PathBuf::from(bin);
    }
    for cand in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(cand).exists() {
            return PathBuf::from(cand);
        }
    }
    panic!(
        "JUNCTION_TEST_PROXY=nginx but nginx is not installed: \
         install it with `apt-get install -y nginx`"
    );
}

/// Polls `f` every 20 ms until it is true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// `GET path` (Connection: close) to 127.0.0.1:port: the body, or the I/O error.
pub fn body(port: u16, path: &str) -> std::io::Result<String> {
    let r = try_http_request_to(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        get_request("restart.test", path).as_bytes(),
    )?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!("status {}", r.status)));
    }
    Ok(String::from_utf8_lossy(&r.body).into_owned())
}

/// Whether a connect to 127.0.0.1:port is refused.
pub fn refused(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err()
}

/// A running master (junction or nginx).
pub struct Master {
    pub kind: Kind,
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The first master's pid (nginx: the daemon's, from its pid file).
    first: u32,
    /// `{NAME}` → value, for [`Master::write`].
    vars: Vec<(String, String)>,
    /// The main-context directives (`worker_processes 1;`).
    main: std::cell::RefCell<String>,
}

impl Master {
    /// Starts on `http` (the inside of `http {}`), with `{PORT}`…`{PORT4}`, `{DIR}`
    /// and `vars` filled in.
    pub fn start(http: &str, vars: &[(&str, &dyn std::fmt::Display)]) -> Master {
        Master::start_env("worker_processes 1;", http, vars, &[])
    }

    /// [`Master::start`] with the main-context directives and more environment
    /// variables.
    pub fn start_env(
        main: &str,
        http: &str,
        vars: &[(&str, &dyn std::fmt::Display)],
        env: &[(&str, &Path)],
    ) -> Master {
        let kind = proxy_kind();
        let dir = tempfile::Builder::new()
            .prefix("junction-restart-")
            .tempdir()
            .unwrap();
        let probes: Vec<TcpListener> = (0..4)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
            .collect();
        let ports: Vec<u16> = probes
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(probes);
        let mut all: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (i, p) in ports.iter().enumerate() {
            let name = if i == 0 {
                "PORT".to_string()
            } else {
                format!("PORT{}", i + 1)
            };
            all.push((name, p.to_string()));
        }
        all.push(("DIR".into(), dir.path().to_str().unwrap().to_string()));
        let mut m = Master {
            kind,
            ports,
            dir,
            child: None,
            first: 0,
            vars: all,
            main: std::cell::RefCell::new(main.to_string()),
        };
        m.write(http);
        let mut cmd = match kind {
            Kind::Junction => {
                let mut c = Command::new(junction_bin());
                c.arg("-p").arg(m.dir.path());
                c
            }
            Kind::Nginx => {
                let mut c = Command::new(nginx_bin());
                c.arg("-p").arg(format!("{}/", m.dir.path().display()));
                c
            }
        };
        cmd.arg("-c")
            .arg(m.conf())
            .arg("-e")
            .arg(m.path("error.log"));
        if kind == Kind::Nginx {
            cmd.arg("-g").arg("master_process on;");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .current_dir(m.dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(m.path("stdout.log")).unwrap())
            .stderr(std::fs::File::create(m.path("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        m.child = Some(child);
        let deadline = Instant::now() + SLOW;
        loop {
            let pid = m.read_pid(&m.pid_file());
            match kind {
                Kind::Junction => {
                    if let Some(s) = m.child.as_mut().unwrap().try_wait().unwrap() {
                        panic!("{kind:?} exited with {s} before it was ready\n{}", m.logs());
                    }
                    let me = m.child.as_ref().unwrap().id();
                    if pid == Some(me) && !refused(m.ports[0]) {
                        m.first = me;
                        break;
                    }
                }
                Kind::Nginx => {
                    // The starting process exits once the daemon runs.
                    if let Some(s) = m.child.as_mut().unwrap().try_wait().unwrap() {
                        assert!(s.success(), "nginx failed to start\n{}", m.logs());
                        // nginx acts on signals once its master loop runs: after
                        // it started its workers (a signal before is held back).
                        let looping = |p: u32| {
                            m.error_log()
                                .contains(&format!("{p}#{p}: start worker processes"))
                        };
                        if let Some(p) = pid.filter(|p| !refused(m.ports[0]) && looping(*p)) {
                            m.first = p;
                            m.child = None;
                            break;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "not ready\n{}", m.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Writes the configuration file (for the next reload or upgrade).
    pub fn write(&self, http: &str) {
        let mut text = format!(
            "{}\nerror_log {{DIR}}/error.log info;\npid {{DIR}}/run.pid;\n\
             events {{ worker_connections 1024; }}\nhttp {{\naccess_log off;\n{http}\n}}\n",
            self.main.borrow()
        );
        for (k, v) in &self.vars {
            text = text.replace(&format!("{{{k}}}"), v);
        }
        std::fs::write(self.conf(), text).unwrap();
    }

    /// Sets the main-context directives for the next [`Master::write`].
    pub fn set_main(&self, main: &str) {
        *self.main.borrow_mut() = main.to_string();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn conf(&self) -> PathBuf {
        self.path("proxy.conf")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.path("run.pid")
    }

    pub fn oldbin(&self) -> PathBuf {
        self.path("run.pid.oldbin")
    }

    pub fn read_pid(&self, p: &Path) -> Option<u32> {
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    }

    /// The pid of the first master.
    pub fn pid(&self) -> u32 {
        self.first
    }

    /// `BIN -s reload`: returns at once (it only signals the master).
    pub fn reload(&self) {
        let bin = match self.kind {
            Kind::Junction => junction_bin(),
            Kind::Nginx => nginx_bin(),
        };
        let prefix = match self.kind {
            Kind::Junction => self.dir.path().display().to_string(),
            Kind::Nginx => format!("{}/", self.dir.path().display()),
        };
        let t = Instant::now();
        let out = Command::new(bin)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(self.conf())
            .arg("-e")
            .arg(self.path("error.log"))
            .arg("-s")
            .arg("reload")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "-s reload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "-s reload took {:?}",
            t.elapsed()
        );
    }

    pub fn signal(&self, sig: &str) {
        kill(self.pid(), sig);
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.path("error.log")).unwrap_or_default()
    }

    /// Waits until the error log contains `needle` (returns the log).
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + SLOW;
        loop {
            let log = self.error_log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in the error log within {SLOW:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the first master to exit (its exit status, when it is our child).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.as_mut() {
                Some(c) => {
                    if let Ok(Some(s)) = c.try_wait() {
                        self.child = None;
                        return Some(Some(s));
                    }
                }
                None => {
                    if !alive(self.first) {
                        return Some(None);
                    }
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// USR2 to the first master, then waits until the new master is ready (its pid in
    /// the pid file, the old one's in `PID.oldbin`); returns the new master's pid.
    pub fn upgrade(&self) -> u32 {
        let old = self.pid();
        self.signal("USR2");
        let deadline = Instant::now() + SLOW;
        let new = loop {
            let looping = |p: u32| {
                self.kind == Kind::Junction
                    || self
                        .error_log()
                        .contains(&format!("{p}#{p}: start worker processes"))
            };
            if let Some(p) = self
                .read_pid(&self.pid_file())
                .filter(|p| *p != old && looping(*p))
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "the new binary's pid file: not within {SLOW:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            self.read_pid(&self.oldbin()),
            Some(old),
            "PID.oldbin names the old master"
        );
        new
    }

    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.path(n)).unwrap_or_default();
        format!(
            "--- stderr ---\n{}\n--- error log ---\n{}",
            read("stderr.log"),
            read("error.log")
        )
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // The new binary of an upgrade (and nginx's daemon) is not our child: stop it
        // by its pid file.
        let mine = self.child.as_ref().map(|c| c.id());
        let mut others: Vec<u32> = [self.pid_file(), self.oldbin()]
            .iter()
            .filter_map(|p| self.read_pid(p))
            .filter(|p| Some(*p) != mine)
            .collect();
        if mine.is_none() && self.first != 0 && !others.contains(&self.first) {
            others.push(self.first);
        }
        for p in &others {
            kill(*p, "TERM");
        }
        if let Some(mut c) = self.child.take() {
            kill(c.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in others {
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if alive(p) {
                kill(p, "KILL");
            }
        }
    }
}
