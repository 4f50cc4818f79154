//! php-fpm as a real FastCGI peer.

use super::*;

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
