//! Backend processes: python3 peers from `tests/peers/` (ready once they print their port) and a connection-counting relay.

use super::*;

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
