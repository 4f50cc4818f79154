//! One launcher for a real memcached (Debian `memcached`) on a free port or a unix
//! socket, and a minimal text-protocol client for the test's own view of the cache.

use super::*;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;

// ---------------------------------------------------------------------------------------------
// A real memcached
// ---------------------------------------------------------------------------------------------

/// A memcached process on 127.0.0.1 (OS-chosen free port), killed on drop.
pub struct Memcached {
    /// TCP port (0 when listening on a unix socket).
    pub port: u16,
    /// The unix socket, for [`Memcached::start_unix`].
    pub socket: Option<PathBuf>,
    child: Option<Child>,
}

impl Memcached {
    /// Starts `memcached -u root -l 127.0.0.1 -p PORT` (items up to 2 MiB, UDP off); ready
    /// once `version` answers. Panics with the install line when memcached is missing.
    pub fn start() -> Memcached {
        require_memcached();
        Memcached::spawn_tcp(None)
    }

    /// On `port` (a restart in place); panics if it cannot start there.
    pub fn start_on(port: u16) -> Memcached {
        require_memcached();
        Memcached::spawn_tcp(Some(port))
    }

    fn spawn_tcp(fixed: Option<u16>) -> Memcached {
        let mut last = String::new();
        for _ in 0..3 {
            let port = fixed.unwrap_or_else(free_port);
            let log = tempfile::NamedTempFile::new().expect("memcached log");
            let mut child = Command::new("memcached")
                .args([
                    "-u",
                    "root",
                    "-l",
                    "127.0.0.1",
                    "-U",
                    "0",
                    "-I",
                    "2m",
                    "-m",
                    "64",
                ])
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("reopen"))
                .spawn()
                .expect("spawn memcached");
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "memcached on port {port} exited with {status}: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                    break;
                }
                if let Ok(mut c) = McClient::connect(port) {
                    if c.command(b"version\r\n").starts_with(b"VERSION ") {
                        return Memcached {
                            port,
                            socket: None,
                            child: Some(child),
                        };
                    }
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("memcached on port {port} not ready after {READY_TIMEOUT:?}");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("memcached did not start: {last}");
    }

    /// memcached on a unix socket `path` (memcached then has no TCP listener).
    pub fn start_unix(path: &Path) -> Memcached {
        require_memcached();
        let mut child = Command::new("memcached")
            .args(["-u", "root", "-U", "0", "-m", "64", "-a", "0700", "-s"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn memcached");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("memcached on {} exited with {status}", path.display());
            }
            if let Ok(mut c) = McClient::connect_unix(path) {
                if c.command(b"version\r\n").starts_with(b"VERSION ") {
                    return Memcached {
                        port: 0,
                        socket: Some(path.to_path_buf()),
                        child: Some(child),
                    };
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("memcached on {} not ready", path.display());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn client(&self) -> McClient {
        match &self.socket {
            Some(p) => McClient::connect_unix(p),
            None => McClient::connect(self.port),
        }
        .expect("connect to memcached")
    }

    pub fn set(&self, key: &str, flags: u32, value: &[u8]) {
        self.client().set(key, flags, value);
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.client().get(key)
    }

    /// Kills memcached (the "memcached stopped" case); the port then refuses.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "memcached still answers after kill"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Panics with the install line when memcached is missing.
pub fn require_memcached() {
    let present = Command::new("memcached")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "memcached is needed for these tests and was not found: install it with \
         `apt-get install -y memcached` (scripts/install-test-deps.sh does it)"
    );
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A minimal memcached text-protocol client (the test's own view of the cache).
pub struct McClient {
    pub r: BufReader<Box<dyn Conn>>,
}

/// A TCP or unix-socket connection.
pub trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

impl McClient {
    pub fn connect(port: u16) -> std::io::Result<McClient> {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(McClient {
            r: BufReader::new(Box::new(s)),
        })
    }

    pub fn connect_unix(path: &Path) -> std::io::Result<McClient> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        Ok(McClient {
            r: BufReader::new(Box::new(s)),
        })
    }

    pub fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("memcached reply");
        l
    }

    /// Sends `raw`, returns the first reply line.
    pub fn command(&mut self, raw: &[u8]) -> Vec<u8> {
        self.r.get_mut().write_all(raw).expect("write to memcached");
        self.line()
    }

    pub fn set(&mut self, key: &str, flags: u32, value: &[u8]) {
        let mut raw = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
        let reply = self.command(&raw);
        assert_eq!(reply, b"STORED\r\n", "set {key}");
    }

    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        let line = self.command(format!("get {key}\r\n").as_bytes());
        if line == b"END\r\n" {
            return None;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let len: usize = text.trim_end().rsplit(' ').next().unwrap().parse().unwrap();
        let mut data = vec![0; len + 2];
        self.r.read_exact(&mut data).unwrap();
        data.truncate(len);
        assert_eq!(self.line(), b"END\r\n");
        Some(data)
    }

    /// `stats`: name → value (numeric ones).
    pub fn stats(&mut self) -> HashMap<String, u64> {
        self.r.get_mut().write_all(b"stats\r\n").unwrap();
        let mut out = HashMap::new();
        loop {
            let l = self.line();
            if l == b"END\r\n" || l.is_empty() {
                return out;
            }
            let t = String::from_utf8_lossy(&l).into_owned();
            let mut w = t.split_whitespace().skip(1);
            if let (Some(k), Some(v)) = (w.next(), w.next()) {
                if let Ok(v) = v.parse() {
                    out.insert(k.to_string(), v);
                }
            }
        }
    }
}
