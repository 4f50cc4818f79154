//! `openssl` for the certificates of the TLS tests (CAs, leaves, OCSP responders).

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `openssl ARGS` in `dir` and returns its stdout; a failure fails the test with
/// openssl's stderr, a missing openssl says how to install it.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed (apt-get install -y openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
