//! ACME certificates (`acme_issuer`, `acme_certificate`, `ssl_certificate
//! $acme_certificate`), end to end against Debian's `pebble` (the ACME test server) with
//! real HTTP-01 validation: pebble's validator fetches
//! `/.well-known/acme-challenge/TOKEN` from Junction's own plain listener (pebble's
//! `httpPort` is that listener's port; `PEBBLE_VA_NOSLEEP=1`, `PEBBLE_VA_ALWAYS_VALID`
//! unset). The served chain is checked with `openssl s_client` against pebble's root.
//!
//! Junction only: nginx 1.22 (the reference) has no ACME module (nginx's own is
//! `ngx_http_acme_module`, a separate module since 1.29); in the reference mode each test
//! says so and returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn junction_only(test: &str) -> bool {
    if product() == "nginx" {
        eprintln!("{test}: junction only (nginx 1.22 has no ACME module); not run against nginx");
        return false;
    }
    true
}

/// A running pebble, killed on drop.
struct Pebble {
    dir: tempfile::TempDir,
    acme_port: u16,
    mgmt_port: u16,
    child: Child,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port`, issuing certificates valid for
    /// `validity` seconds (pebble's default, 5 years, when `None`).
    fn start(http_port: u16, validity: Option<u64>) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("junction-pebble-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        // Pebble's own HTTPS certificate, from a CA the ACME client is told to trust.
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=pebble test CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
            ],
        );
        let acme_port = free_port();
        let mgmt_port = free_port();
        let mut conf = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
                "certificate": d.join("server.pem"),
                "privateKey": d.join("server.key"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(v) = validity {
            conf["pebble"]["certificateValidityPeriod"] = serde_json::json!(v);
        }
        std::fs::write(d.join("pebble.json"), conf.to_string()).unwrap();
        let log = std::fs::File::create(d.join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            // Pebble rejects 5% of good nonces by default, to exercise clients' retries;
            // these tests are about issuance, not nonce handling.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("pebble is needed (apt-get install -y pebble, or scripts/install-test-deps.sh): {e}")
            });
        let mut p = Pebble {
            dir,
            acme_port,
            mgmt_port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, mgmt_port)).is_err()
            || TcpStream::connect((Ipv4Addr::LOCALHOST, acme_port)).is_err()
        {
            if let Some(s) = p.child.try_wait().unwrap() {
                panic!("pebble exited with {s}:\n{}", p.log());
            }
            assert!(Instant::now() < deadline, "pebble not ready:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A file of pebble's management interface (`roots/0`, `intermediates/0`), saved.
    fn fetch(&self, what: &str) -> PathBuf {
        let out = self.dir.path().join(what.replace('/', "-") + ".pem");
        let st = Command::new("curl")
            .args(["-sS", "-f", "--cacert"])
            .arg(self.ca())
            .arg("-o")
            .arg(&out)
            .arg(format!("https://127.0.0.1:{}/{what}", self.mgmt_port))
            .status()
            .expect("curl is needed (apt-get install -y curl)");
        assert!(st.success(), "cannot fetch pebble's {what}");
        out
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Junction config: an issuer at pebble, a TLS server on `{PORT}` whose certificate
/// comes from it, a plain server on `http_port` (where HTTP-01 is answered).
fn config(pebble: &Pebble, http_port: u16, state: &Path) -> String {
    format!(
        r#"
acme_issuer pebble {{
    uri https://127.0.0.1:{acme}/dir;
    contact admin@example.com;
    ssl_trusted_certificate {ca};
    state_path {state};
    accept_terms_of_service;
}}
acme_shared_zone zone=ngx_acme_shared:1M;

server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name localhost;
    acme_certificate pebble;
    ssl_certificate $acme_certificate;
    ssl_certificate_key $acme_certificate_key;
    location / {{ return 200 "tls ok\n"; }}
}}

server {{
    listen 127.0.0.1:{http_port};
    server_name localhost;
    access_log {{DIR}}/access.log;
    location / {{ return 404; }}
}}
"#,
        acme = pebble.acme_port,
        ca = pebble.ca().display(),
        state = state.display(),
    )
}

/// The leaf certificate served on `port` for `localhost` (PEM), and whether its chain
/// verifies against `root`; `None` while no certificate is served.
fn served(port: u16, root: &Path) -> Option<(String, bool)> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "-ign_eof",
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
        ])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed (apt-get install -y openssl)");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let out = child.wait_with_output().expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[begin..].find("-----END CERTIFICATE-----")? + begin + 25;
    let ok = text.contains("Verify return code: 0 (ok)") && text.contains("tls ok");
    if !ok {
        eprintln!("s_client:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    }
    Some((text[begin..end].to_string() + "\n", ok))
}

fn x509(dir: &Path, pem: &str, field: &str) -> String {
    let f = dir.join("leaf.pem");
    std::fs::write(&f, pem).unwrap();
    openssl(dir, &["x509", "-in", f.to_str().unwrap(), "-noout", field])
        .trim()
        .to_string()
}

/// Waits (polling handshakes) until a certificate for which `accept` holds is served.
fn wait_served(
    p: &Proxy,
    root: &Path,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
    pebble: &Pebble,
) -> (String, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((pem, ok)) = served(p.port, root) {
            if accept(&pem) {
                return (pem, ok);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no (new) certificate served within {timeout:?}\njunction error log:\n{}\npebble:\n{}",
            p.error_log(),
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A certificate is ordered at start, validated over HTTP-01 on Junction's own plain
/// listener, installed without a restart, and served with pebble's chain; a reload keeps
/// it, and a restart on the same `state_path` serves it again (same serial: nothing
/// ordered).
#[test]
fn certificate_issued_over_http01_served_kept_across_reload_and_restart() {
    if !junction_only("certificate_issued_over_http01_served_kept_across_reload_and_restart") {
        return;
    }
    let http_port = free_port();
    let pebble = Pebble::start(http_port, None);
    let state = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let conf = config(&pebble, http_port, state.path());
    let p = Proxy::start(&conf);
    let root = pebble.fetch("roots/0");
    let (pem, ok) = wait_served(&p, &root, Duration::from_secs(60), |_| true, &pebble);
    assert!(
        ok,
        "the served chain does not verify against pebble's root:\n{pem}"
    );
    let intermediate = pebble.fetch("intermediates/0");
    let inter_subject = openssl(
        pebble.dir.path(),
        &[
            "x509",
            "-in",
            intermediate.to_str().unwrap(),
            "-noout",
            "-subject",
        ],
    );
    let issuer = x509(pebble.dir.path(), &pem, "-issuer");
    assert_eq!(
        issuer.trim_start_matches("issuer=").trim(),
        inter_subject.trim().trim_start_matches("subject=").trim(),
        "the leaf is issued by pebble's intermediate"
    );
    let serial = x509(pebble.dir.path(), &pem, "-serial");
    assert!(
        state.path().join("account.json").exists() && state.path().join("localhost.crt").exists(),
        "state_path holds the account and the certificate: {:?}",
        std::fs::read_dir(state.path()).map(|d| d.count())
    );
    // Pebble's validator fetched the key authorization from the plain listener.
    let access = std::fs::read_to_string(p.dir().join("access.log")).unwrap_or_default();
    assert!(
        access
            .lines()
            .any(|l| l.contains("GET /.well-known/acme-challenge/") && l.contains("\" 200 ")),
        "HTTP-01 answered on the plain listener:\n{access}"
    );

    // Reload with a changed server (same certificate definition): the certificate stays,
    // nothing is ordered.
    std::fs::write(
        p.dir().join("junction.conf"),
        conf.replace("{PORT}", &p.port.to_string())
            .replace("{DIR}", p.dir().to_str().unwrap())
            .replace("tls ok\\n", "tls ok, reloaded\\n"),
    )
    .unwrap();
    p.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&root)
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", p.port))
            .arg(format!("https://localhost:{}/", p.port))
            .output()
            .expect("curl is needed (apt-get install -y curl)");
        if String::from_utf8_lossy(&out.stdout).contains("reloaded") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not applied: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            p.error_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (pem_r, ok_r) = wait_served(&p, &root, Duration::from_secs(5), |_| true, &pebble);
    assert!(ok_r);
    assert_eq!(
        x509(pebble.dir.path(), &pem_r, "-serial"),
        serial,
        "after a reload the same certificate is served (no new order)"
    );
    drop(p);

    // Restart: the same certificate, restored from state_path.
    let p = Proxy::start(&conf);
    let (pem2, ok2) = wait_served(&p, &root, Duration::from_secs(30), |_| true, &pebble);
    assert!(ok2);
    assert_eq!(
        x509(pebble.dir.path(), &pem2, "-serial"),
        serial,
        "after a restart the certificate from state_path is served (no new order)"
    );
}

/// A certificate whose lifetime is short is renewed at 2/3 of it (nginx's module), and
/// the new one is served without a restart.
#[test]
fn certificate_renewed_before_expiry_and_new_one_served() {
    if !junction_only("certificate_renewed_before_expiry_and_new_one_served") {
        return;
    }
    let http_port = free_port();
    // 20 s certificates: renewal due about 13 s after issuance (long enough for a
    // loaded machine to serve the first one before it expires).
    let pebble = Pebble::start(http_port, Some(20));
    let state = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let p = Proxy::start(&config(&pebble, http_port, state.path()));
    let root = pebble.fetch("roots/0");
    let (first, ok) = wait_served(&p, &root, Duration::from_secs(60), |_| true, &pebble);
    assert!(ok, "first certificate verifies:\n{first}");
    let s1 = x509(pebble.dir.path(), &first, "-serial");
    let (second, ok) = wait_served(
        &p,
        &root,
        Duration::from_secs(60),
        |pem| x509(pebble.dir.path(), pem, "-serial") != s1,
        &pebble,
    );
    assert!(ok, "renewed certificate verifies:\n{second}");
    let on_disk = std::fs::read_to_string(state.path().join("localhost.crt")).unwrap();
    assert!(
        on_disk.starts_with(second.trim()),
        "the renewed certificate is saved in state_path"
    );
}

/// Until a certificate exists (here: the issuer cannot be reached), a handshake for the
/// server fails (nginx's module: `$acme_certificate` is empty, no certificate), the
/// failure is in the error log, and the plain listener serves on.
#[test]
fn no_certificate_yet_handshake_fails_plain_listener_serves() {
    if !junction_only("no_certificate_yet_handshake_fails_plain_listener_serves") {
        return;
    }
    let down = closed_port();
    let conf = format!(
        r#"
acme_issuer down {{
    uri https://127.0.0.1:{down}/dir;
    state_path {{DIR}}/acme;
    accept_terms_of_service;
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name localhost;
    acme_certificate down;
    ssl_certificate $acme_certificate;
    ssl_certificate_key $acme_certificate_key;
    location / {{ return 200 "tls ok\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT2}};
    location / {{ return 200 "plain ok\n"; }}
}}
"#
    );
    let p = Proxy::start(&conf);
    let log = p
        .wait_error_log(
            "cannot obtain a certificate for \"localhost\"",
            Duration::from_secs(30),
        )
        .expect("the failed order is logged");
    assert!(log.contains("issuer \"down\""), "{log}");
    let root = p.dir().join("none.pem");
    std::fs::write(&root, "").unwrap();
    assert!(
        served(p.port, &root).is_none(),
        "no certificate is served before one is issued"
    );
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{}/", p.ports[1]))
        .output()
        .expect("curl is needed (apt-get install -y curl)");
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "plain ok\n");
}

/// What cannot work is refused at load with `FILE:LINE` (`junction -t`), in nginx's
/// module's terms where it has them; nginx's documented example (with
/// `ssl_certificate_cache`) loads.
#[test]
fn acme_directives_checked_at_load() {
    if !junction_only("acme_directives_checked_at_load") {
        return;
    }
    let issuer =
        "acme_issuer le {\n    uri https://127.0.0.1:1/dir;\n    accept_terms_of_service;\n}\n";
    let server = |inner: &str| {
        format!("{issuer}server {{\n    listen 127.0.0.1:8443 ssl;\n    server_name a.example.com;\n{inner}}}\n")
    };
    let ok_pair =
        "    ssl_certificate $acme_certificate;\n    ssl_certificate_key $acme_certificate_key;\n";
    let cases: Vec<(String, Option<(u32, &str)>)> = vec![
        (
            server(&format!("    acme_certificate le;\n{ok_pair}    ssl_certificate_cache max=2;\n")),
            None,
        ),
        (
            server(&format!("    acme_certificate le www.example.com key=ecdsa:384;\n{ok_pair}")),
            None,
        ),
        (
            server(&format!("    acme_certificate nope;\n{ok_pair}")),
            Some((8, "issuer \"nope\" is missing")),
        ),
        (
            server(ok_pair),
            Some((8, "\"$acme_certificate\" is used in a server without \"acme_certificate\"")),
        ),
        (
            server(&format!("    acme_certificate le *.example.com;\n{ok_pair}")),
            Some((8, "invalid identifier \"*.example.com\"")),
        ),
        (
            server(&format!("    acme_certificate le key=rsa:2048;\n{ok_pair}")),
            Some((8, "not supported by junction yet")),
        ),
        (
            "acme_issuer le {\n    accept_terms_of_service;\n}\nserver {\n    listen 127.0.0.1:8443 ssl;\n    server_name a.example.com;\n    acme_certificate le;\n    ssl_certificate $acme_certificate;\n    ssl_certificate_key $acme_certificate_key;\n}\n".to_string(),
            Some((1, "\"uri\" is missing in acme_issuer \"le\"")),
        ),
        (
            "acme_issuer le {\n    uri https://127.0.0.1:1/dir;\n    challenge tls-alpn-01;\n}\nserver {\n    listen 127.0.0.1:8443 ssl;\n    server_name a.example.com;\n    acme_certificate le;\n    ssl_certificate $acme_certificate;\n    ssl_certificate_key $acme_certificate_key;\n}\n".to_string(),
            Some((3, "challenge \"tls-alpn-01\" is not supported by junction yet")),
        ),
        (
            "acme_issuer le {\n    uri https://127.0.0.1:1/dir;\n    ssl_verify maybe;\n}\n".to_string(),
            Some((3, "invalid value \"maybe\" in \"ssl_verify\" directive, it must be \"on\" or \"off\"")),
        ),
        (
            "acme_issuer le {\n    uri https://127.0.0.1:1/dir;\n}\nserver {\n    listen 8080;\n    uri /x;\n}\n".to_string(),
            Some((6, "\"uri\" directive is not allowed here")),
        ),
    ];
    let mut failures = Vec::new();
    for (conf, want) in &cases {
        let (out, dir) = check_config(&[("site.conf", conf)], "site.conf");
        let file = dir.path().join("site.conf");
        let all = format!("{}{}", out.stdout, out.stderr);
        let good = match want {
            None => out.code == Some(0),
            Some((line, msg)) => {
                out.code != Some(0)
                    && all.contains(msg)
                    && all.contains(&format!("{}:{line}", file.display()))
            }
        };
        if !good {
            failures.push(format!("{conf}\nwant {want:?}\ngot {:?}: {all}", out.code));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// `ssl_verify off` talks to an ACME server whose certificate nothing trusts, and
/// `key=ecdsa:384` gets a P-384 certificate; with `ssl_verify on` (the default) and no
/// `ssl_trusted_certificate`, the system's CAs do not trust pebble: nothing is issued,
/// and the error log says why.
#[test]
fn issuer_verify_settings_and_key_type() {
    if !junction_only("issuer_verify_settings_and_key_type") {
        return;
    }
    let http_port = free_port();
    let pebble = Pebble::start(http_port, None);
    let state = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let conf = config(&pebble, http_port, state.path())
        .replace(
            &format!("    ssl_trusted_certificate {};\n", pebble.ca().display()),
            "    ssl_verify off;\n",
        )
        .replace(
            "acme_certificate pebble;",
            "acme_certificate pebble localhost key=ecdsa:384;",
        );
    assert!(conf.contains("ssl_verify off;") && conf.contains("key=ecdsa:384"));
    let p = Proxy::start(&conf);
    let root = pebble.fetch("roots/0");
    let (pem, ok) = wait_served(&p, &root, Duration::from_secs(60), |_| true, &pebble);
    assert!(ok, "{pem}");
    let text = x509(pebble.dir.path(), &pem, "-text");
    assert!(
        text.contains("ASN1 OID: secp384r1") || text.contains("NIST CURVE: P-384"),
        "a P-384 key: {text}"
    );
    drop(p);

    let state2 = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let conf = config(&pebble, http_port, state2.path()).replace(
        &format!("    ssl_trusted_certificate {};\n", pebble.ca().display()),
        "",
    );
    let p = Proxy::start(&conf);
    let log = p
        .wait_error_log("cannot obtain a certificate", Duration::from_secs(30))
        .expect("the failure is logged");
    assert!(
        log.contains("certificate") && log.contains("issuer \"pebble\""),
        "{log}"
    );
    assert!(served(p.port, &root).is_none(), "nothing is served");
}

/// A validation that cannot reach Junction (pebble's `httpPort` is a port nothing
/// listens on) fails the order; the error log gives pebble's reason, and nothing is
/// served.
#[test]
fn failed_validation_is_logged_with_the_reason() {
    if !junction_only("failed_validation_is_logged_with_the_reason") {
        return;
    }
    let http_port = free_port();
    let pebble = Pebble::start(closed_port(), None);
    let state = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let p = Proxy::start(&config(&pebble, http_port, state.path()));
    let log = p
        .wait_error_log("cannot obtain a certificate", Duration::from_secs(60))
        .expect("the failed order is logged");
    assert!(
        log.contains("/.well-known/acme-challenge/") && log.contains("connection refused"),
        "the issuer's reason is in the log: {log}"
    );
    let root = pebble.fetch("roots/0");
    assert!(served(p.port, &root).is_none(), "nothing is served");
}

/// A server with `acme_certificate` but no `ssl_certificate $acme_certificate` still
/// gets its certificate (as nginx's module orders every `acme_certificate`), kept in
/// `state_path` for when it is served.
#[test]
fn certificate_obtained_even_when_not_served() {
    if !junction_only("certificate_obtained_even_when_not_served") {
        return;
    }
    let http_port = free_port();
    let pebble = Pebble::start(http_port, None);
    let state = tempfile::Builder::new()
        .prefix("junction-acme-state-")
        .tempdir()
        .unwrap();
    let conf = format!(
        r#"
acme_issuer pebble {{
    uri https://127.0.0.1:{acme}/dir;
    ssl_trusted_certificate {ca};
    state_path {state};
    accept_terms_of_service;
}}
server {{
    listen 127.0.0.1:{{PORT}};
    listen 127.0.0.1:{http_port};
    server_name localhost;
    acme_certificate pebble;
    location / {{ return 200 "plain\n"; }}
}}
"#,
        acme = pebble.acme_port,
        ca = pebble.ca().display(),
        state = state.path().display(),
    );
    let p = Proxy::start(&conf);
    let crt = state.path().join("localhost.crt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !crt.exists() {
        assert!(
            Instant::now() < deadline,
            "no certificate saved\n{}\n{}",
            p.error_log(),
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pem = std::fs::read_to_string(&crt).unwrap();
    assert!(x509(pebble.dir.path(), &pem, "-issuer").contains("Pebble Intermediate CA"));
}
