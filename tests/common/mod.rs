//! Testkit for the black-box tests: start the proxy under test on a config, start real
//! backends (python3 peers from `tests/peers/`, php-fpm, memcached), and talk raw HTTP/1.1
//! to both. Split by peer:
//!
//! - `proxy`: [`Proxy`], the proxy under test. `JUNCTION_TEST_PROXY=nginx` runs the system
//!   nginx on the same config (to check that every expectation is nginx's behaviour);
//!   otherwise `junction` (`CARGO_BIN_EXE_junction`, or `JUNCTION_BIN` at run time); and
//!   [`check_config`] (`-t` on config files).
//! - `backends`: [`Peer`], a python3 backend process, ready once it printed its port;
//!   [`ConnCounter`], a relay counting connections.
//! - `client`: [`http_request`] / [`http_stream`], a small raw HTTP/1.1 client that sends
//!   exactly the bytes it is given and decodes Content-Length, chunked and close-delimited
//!   bodies.
//! - `echo`: [`Echo`], what `echo.py` saw; [`assert_table`].
//! - `json`: [`Json`] (`serde_json`'s value) and [`parse_json`].
//! - `php`: [`PhpFpm`], a real php-fpm pool.
//! - `memcached`: [`Memcached`], the one memcached launcher, and [`McClient`].
//! - here: which proxy, ports, templates, [`md5_hex`] (`md-5`).
//!
//! Nothing here sleeps as synchronisation: processes are ready when they say so (pid file plus
//! a successful connect, or the peer's `PORT n` line); polling loops have short intervals and
//! an overall deadline.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod backends;
mod client;
mod echo;
mod json;
mod memcached;
mod php;
mod pki;
mod proxy;

pub use backends::*;
pub use client::*;
pub use echo::*;
pub use json::*;
pub use memcached::*;
pub use php::*;
pub use pki::*;
pub use proxy::*;

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

/// The md5 of `data` as lower-case hex (what coreutils `md5sum` prints).
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
