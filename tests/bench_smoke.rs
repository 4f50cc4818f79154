//! The benchmark harness must not rot: its quick mode runs every scenario for about
//! a second against nginx and this build of junction and must finish cleanly. This
//! is a smoke test of the harness, not a measurement (no numbers are asserted).
#![allow(clippy::expect_used)]

use std::process::Command;

#[test]
fn bench_quick_mode_runs_end_to_end() {
    for tool in ["nginx", "wrk", "python3"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is missing: run scripts/install-test-deps.sh (apt-get install -y {tool})"
        );
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/bench/smoke_test.sh"))
        .arg(env!("CARGO_BIN_EXE_junction"))
        .current_dir(root)
        .output()
        .expect("run bench/smoke_test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("http-small") || stderr.contains("http-small"),
        "the quick run printed no table:\n{stdout}\n{stderr}"
    );
}
