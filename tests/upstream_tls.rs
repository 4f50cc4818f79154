//! TLS to upstreams (issue 16, part 3): `proxy_pass https://…` and the `proxy_ssl_*`
//! directives, against a real TLS upstream — a second nginx with `listen … ssl` and
//! certificates made by the `openssl` CLI at test time (a test CA, a server
//! certificate for `backend.test` and 127.0.0.1, a client CA and client certificate,
//! and an unrelated CA). The upstream answers with what it saw of the TLS connection:
//! `$ssl_server_name` (SNI), `$ssl_protocol`, `$ssl_client_s_dn` (the client
//! certificate), `$connection`/`$connection_requests` (keep-alive reuse),
//! `$ssl_session_reused` (session resumption on a new connection) and
//! `$ssl_alpn_protocol` (none is offered, as nginx's HTTP/1 proxy). The chain rows add a
//! self-signed certificate, a leaf with an intermediate, and a revoked one (a CRL).
//!
//! Every row runs the same against nginx with `JUNCTION_TEST_PROXY=nginx` (the proxy
//! under test is then nginx itself; the upstream is nginx in both modes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// The test PKI, made once per test binary.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A CA (`NAME.key`, `NAME.crt`).
fn make_ca(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `NAME.crt`/`NAME.key` signed by CA `ca` with extensions `ext`.
fn make_leaf(dir: &Path, name: &str, ca: &str, subj: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            // A serial of its own per certificate (the CRL revokes one by serial).
            &format!(
                "0x{:x}",
                0x1000 + name.bytes().map(u32::from).sum::<u32>() * 7
            ),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "30",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("junction-tls-pki-")
            .tempdir()
            .expect("temp dir")
            .keep();
        make_ca(&dir, "ca", "Junction Test CA");
        make_ca(&dir, "other-ca", "Unrelated CA");
        make_ca(&dir, "client-ca", "Junction Client CA");
        make_leaf(
            &dir,
            "server",
            "ca",
            "/CN=backend.test",
            "subjectAltName=DNS:backend.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        let server_ext = "subjectAltName=DNS:backend.test\nbasicConstraints=CA:FALSE\n\
                          keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
        // Self-signed (its own issuer), for backend.test.
        std::fs::write(dir.join("selfsigned.ext"), server_ext).expect("write ext");
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "selfsigned.key",
                "-out",
                "selfsigned.csr",
                "-subj",
                "/CN=backend.test",
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "selfsigned.csr",
                "-signkey",
                "selfsigned.key",
                "-out",
                "selfsigned.crt",
                "-days",
                "30",
                "-extfile",
                "selfsigned.ext",
            ],
        );
        // A leaf under an intermediate CA under the test CA; the server sends both.
        make_leaf(
            &dir,
            "int",
            "ca",
            "/CN=Junction Intermediate CA",
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        );
        make_leaf(&dir, "leaf", "int", "/CN=backend.test", server_ext);
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(dir.join("leaf.crt")).expect("leaf.crt"),
            std::fs::read_to_string(dir.join("int.crt")).expect("int.crt")
        );
        std::fs::write(dir.join("chain.crt"), chain).expect("chain.crt");
        // A certificate of the test CA that its CRL revokes.
        make_leaf(&dir, "revoked", "ca", "/CN=backend.test", server_ext);
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 30\n",
        )
        .expect("ca.cnf");
        std::fs::write(dir.join("index.txt"), "").expect("index.txt");
        std::fs::write(dir.join("crlnumber"), "01\n").expect("crlnumber");
        let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt"];
        openssl(
            &dir,
            &[&["ca"][..], &ca, &["-revoke", "revoked.crt"]].concat(),
        );
        openssl(
            &dir,
            &[&["ca"][..], &ca, &["-gencrl", "-out", "ca.crl"]].concat(),
        );
        make_leaf(
            &dir,
            "client",
            "client-ca",
            "/O=Junction Tests/CN=junction-client",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=clientAuth\n",
        );
        Pki { dir }
    })
}

// ---------------------------------------------------------------------------------------
// The TLS upstream: nginx with `listen … ssl`
// ---------------------------------------------------------------------------------------

/// What the upstream answers: one line of `key=value` of what it saw.
const SEEN: &str = "sni=$ssl_server_name proto=$ssl_protocol dn=$ssl_client_s_dn \
                    conn=$connection reqs=$connection_requests reused=$ssl_session_reused \
                    alpn=$ssl_alpn_protocol cipher=$ssl_cipher";

/// nginx serving TLS on `port` (and plain HTTP on `plain`; the same answer with a
/// self-signed certificate on `selfsigned`, with a leaf + intermediate chain on `chain`,
/// with a revoked certificate on `revoked`), killed on drop.
struct TlsUpstream {
    port: u16,
    plain: u16,
    selfsigned: u16,
    chain: u16,
    revoked: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl TlsUpstream {
    fn start() -> TlsUpstream {
        TlsUpstream::start_with("")
    }

    /// With `extra` (more locations) in its main TLS server.
    fn start_with(extra: &str) -> TlsUpstream {
        let bin = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("nginx is the TLS upstream of these tests: apt-get install -y nginx")
            });
        let pki = pki();
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("junction-tls-upstream-")
                .tempdir()
                .expect("temp dir");
            let d = dir.path().display().to_string();
            let (port, plain) = (free_port(), free_port());
            let (selfsigned, chain, revoked) = (free_port(), free_port(), free_port());
            let more = |port: u16, crt: &str, key: &str| {
                format!(
                    "server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {};\n \
                     ssl_certificate_key {};\n location / {{ return 200 \"{SEEN}\\n\"; }}\n}}\n",
                    pki.path(crt),
                    pki.path(key)
                )
            };
            let more = [
                more(selfsigned, "selfsigned.crt", "selfsigned.key"),
                more(chain, "chain.crt", "leaf.key"),
                more(revoked, "revoked.crt", "revoked.key"),
            ]
            .concat();
            let conf = format!(
                "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{}}\nhttp {{\n\
                 access_log off;\nclient_body_temp_path {d}/cb;\nproxy_temp_path {d}/pt;\n\
                 fastcgi_temp_path {d}/ft;\nuwsgi_temp_path {d}/ut;\nscgi_temp_path {d}/st;\n\
                 server {{\n\
                   listen 127.0.0.1:{port} ssl;\n\
                   ssl_certificate {crt};\n\
                   ssl_certificate_key {key};\n\
                   ssl_client_certificate {cca};\n\
                   ssl_verify_client optional;\n\
                   ssl_protocols TLSv1.2 TLSv1.3;\n\
                   ssl_session_cache shared:up:1m;\n\
                   keepalive_requests 1000;\n\
                   location / {{ return 200 \"{SEEN}\\n\"; }}\n\
                   {extra}\n\
                 }}\n\
                 server {{\n\
                   listen 127.0.0.1:{plain};\n\
                   location / {{ return 200 \"plain\\n\"; }}\n\
                 }}\n\
                 {more}\
                 }}\n",
                crt = pki.path("server.crt"),
                key = pki.path("server.key"),
                cca = pki.path("client-ca.crt"),
            );
            std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
            let child = Command::new(bin)
                .arg("-p")
                .arg(format!("{d}/"))
                .arg("-c")
                .arg(format!("{d}/nginx.conf"))
                .arg("-g")
                .arg("daemon off; master_process off;")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nginx");
            let mut up = TlsUpstream {
                port,
                plain,
                selfsigned,
                chain,
                revoked,
                child,
                dir,
            };
            match up.wait_ready() {
                Ok(()) => return up,
                Err(e) => last = e,
            }
        }
        panic!("the TLS upstream (nginx) did not start:\n{last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("nginx exited with {st}:\n{}", self.log()));
            }
            let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
            if [
                self.port,
                self.plain,
                self.selfsigned,
                self.chain,
                self.revoked,
            ]
            .into_iter()
            .all(up)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nginx not ready:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the upstream saw, from its answer line.
fn seen<'a>(text: &'a str, key: &str) -> &'a str {
    let line = text.lines().next().unwrap_or("");
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

/// `$ssl_client_s_dn` (it may hold spaces): the text between `dn=` and ` conn=`.
fn seen_dn(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match (line.find(" dn="), line.find(" conn=")) {
        (Some(a), Some(b)) if b >= a + 4 => &line[a + 4..b],
        _ => "",
    }
}

/// The proxy under test's common preamble: HTTP/1.1 with keep-alive toward upstreams
/// (nginx 1.22 needs it said; it is Junction's default).
const PREAMBLE: &str = "proxy_http_version 1.1;\n    proxy_set_header Connection \"\";";

/// The proxy under test: `upstream backend.test` (keepalive 4) and `sni.test` to the TLS
/// upstream, `mixed` (the plain-HTTP port first, then the TLS one), a
/// server with `server_level` directives and `locations`. Placeholders: `{UP}`, `{PLAIN}`
/// (the upstream's ports), `{CA}`, `{OTHERCA}`, `{CLIENTCRT}`, `{CLIENTKEY}`.
fn start_proxy(up: &TlsUpstream, server_level: &str, locations: &str) -> Proxy {
    start_proxy_with(up, "", server_level, locations)
}

/// [`start_proxy`] with `http_level` text (more `upstream` blocks) before the server.
fn start_proxy_with(
    up: &TlsUpstream,
    http_level: &str,
    server_level: &str,
    locations: &str,
) -> Proxy {
    let pki = pki();
    let site = fill(
        "{HTTP}\nupstream backend.test {\n    server 127.0.0.1:{UP};\n    keepalive 4;\n}\n\
         upstream sni.test {\n    server 127.0.0.1:{UP};\n}\n\
         upstream mixed {\n    server 127.0.0.1:{PLAIN} max_fails=0;\n    server 127.0.0.1:{UP};\n}\n\
         server {\n    listen 127.0.0.1:{PORT};\n    server_name tls.test;\n    {PRE}\n    {SRV}\n{LOCS}\n}\n",
        &[
            ("HTTP", &http_level),
            ("UP", &up.port),
            ("PLAIN", &up.plain),
            ("PRE", &PREAMBLE),
            ("SRV", &server_level),
            ("LOCS", &locations),
        ],
    );
    let site = fill(
        &site,
        &[
            ("CA", &pki.path("ca.crt")),
            ("OTHERCA", &pki.path("other-ca.crt")),
            ("CLIENTCRT", &pki.path("client.crt")),
            ("CLIENTKEY", &pki.path("client.key")),
            ("UP", &up.port),
            ("PLAIN", &up.plain),
            ("SELF", &up.selfsigned),
            ("CHAIN", &up.chain),
            ("REVOKED", &up.revoked),
            ("SELFCRT", &pki.path("selfsigned.crt")),
            ("CRL", &pki.path("ca.crl")),
        ],
    );
    Proxy::start(&site)
}

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

/// `proxy_pass https://` with each verification and name setting: what the client gets,
/// what the upstream saw, and the error log line of a refused upstream.
#[test]
fn verify_names_sni_and_client_certificates() {
    let up = TlsUpstream::start();
    let locations = r#"
    location /off/ { proxy_pass https://127.0.0.1:{UP}/; }
    location /ca/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {CA};
        proxy_ssl_name backend.test;
    }
    location /group/ {
        proxy_pass https://backend.test/;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {CA};
    }
    location /wrongca/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {OTHERCA};
        proxy_ssl_name backend.test;
        proxy_next_upstream off;
    }
    location /wrongname/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {CA};
        proxy_ssl_name other.test;
    }
    location /sni/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_server_name on;
        proxy_ssl_name backend.test;
    }
    location /sni-group/ {
        proxy_pass https://sni.test/;
        proxy_ssl_server_name on;
    }
    location /sni-var/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_server_name on;
        proxy_ssl_name $http_x_name;
    }
    location /nosni/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_name backend.test;
    }
    location /cert/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_certificate {CLIENTCRT};
        proxy_ssl_certificate_key {CLIENTKEY};
    }
    location /tls12/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_protocols TLSv1.2;
    }
    location /tls13/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_protocols TLSv1.3;
    }
    location /plain/ { proxy_pass https://127.0.0.1:{PLAIN}/; }
    location /chacha/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_protocols TLSv1.2;
        proxy_ssl_ciphers ECDHE-ECDSA-CHACHA20-POLY1305;
    }
    location /aes128/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_ssl_protocols TLSv1.2;
        proxy_ssl_ciphers "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
    }
"#;
    // nginx keeps one TLS session per upstream server whatever the location's
    // settings, so a session made by /off/ would be resumed by /cert/ (no client
    // certificate) or /ca/ (its stored verify result): without reuse, each row stands
    // alone in both.
    let proxy = start_proxy(&up, "proxy_ssl_session_reuse off;", locations);
    // (path, extra request header, status, check of the answer, error-log needle)
    type Check = fn(&str) -> Result<(), String>;
    let ok_any: Check = |_| Ok(());
    let rows: Vec<(&str, &str, u16, Check, Option<&str>)> = vec![
        // No SNI by default, and no ALPN (nginx's HTTP/1 proxy offers none).
        (
            "/off/",
            "",
            200,
            |t| expect(&format!("{}|{}", seen(t, "sni"), seen(t, "alpn")), "|"),
            None,
        ),
        ("/ca/", "", 200, |t| expect(seen(t, "dn"), ""), None),
        ("/group/", "", 200, ok_any, None),
        (
            "/wrongca/",
            "",
            502,
            ok_any,
            Some("upstream SSL certificate verify error: (21:unable to verify the first certificate) while SSL handshaking to upstream"),
        ),
        (
            "/wrongname/",
            "",
            502,
            ok_any,
            Some("upstream SSL certificate does not match \"other.test\" while SSL handshaking to upstream"),
        ),
        ("/sni/", "", 200, |t| expect(seen(t, "sni"), "backend.test"), None),
        ("/sni-group/", "", 200, |t| expect(seen(t, "sni"), "sni.test"), None),
        (
            "/sni-var/",
            "X-Name: var.test:8443\r\n",
            200,
            |t| expect(seen(t, "sni"), "var.test"),
            None,
        ),
        ("/nosni/", "", 200, |t| expect(seen(t, "sni"), ""), None),
        (
            "/cert/",
            "",
            200,
            |t| {
                let dn = seen_dn(t);
                if dn.contains("CN=junction-client") && dn.contains("O=Junction Tests") {
                    Ok(())
                } else {
                    Err(format!("client DN {dn:?}"))
                }
            },
            None,
        ),
        ("/tls12/", "", 200, |t| expect(seen(t, "proto"), "TLSv1.2"), None),
        ("/tls13/", "", 200, |t| expect(seen(t, "proto"), "TLSv1.3"), None),
        (
            "/chacha/",
            "",
            200,
            |t| expect(seen(t, "cipher"), "ECDHE-ECDSA-CHACHA20-POLY1305"),
            None,
        ),
        (
            // The list's order is the offer's (rustls' own puts AES-256 first).
            "/aes128/",
            "",
            200,
            |t| expect(seen(t, "cipher"), "ECDHE-ECDSA-AES128-GCM-SHA256"),
            None,
        ),
        (
            "/plain/",
            "",
            502,
            ok_any,
            Some("SSL_do_handshake() failed"),
        ),
    ];
    let mut failures = Vec::new();
    for (path, extra, status, check, needle) in &rows {
        let r = proxy.request(
            format!("GET {path} HTTP/1.1\r\nHost: tls.test\r\n{extra}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        if r.status != *status {
            failures.push(format!(
                "{path}: status {} (want {status}): {}",
                r.status,
                r.text()
            ));
            continue;
        }
        if *status == 200 {
            if let Err(e) = check(&r.text()) {
                failures.push(format!("{path}: {e} in {:?}", r.text()));
            }
        }
        if let Some(n) = needle {
            match proxy.wait_error_log(n, Duration::from_secs(5)) {
                Ok(log) => {
                    let req = format!("request: \"GET {path} HTTP/1.1\"");
                    let line = log
                        .lines()
                        .find(|l| l.contains(n) && l.contains(&req))
                        .unwrap_or("");
                    if !line.contains("while SSL handshaking to upstream") {
                        failures.push(format!("{path}: log line {line:?}"));
                    }
                }
                Err(log) => failures.push(format!("{path}: no {n:?} in the error log:\n{log}")),
            }
        }
    }
    assert_table("upstream TLS", &failures, rows.len());
}

fn expect(got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got:?}, want {want:?}"))
    }
}

/// Keep-alive: TLS connections to an `upstream` with `keepalive` are reused (the
/// upstream sees one connection carrying every request). A pooled connection is reused
/// only for the same TLS settings: a location sending a client certificate to the same
/// servers never gets a connection made without one (the brief's rule, stricter than
/// nginx: its keepalive cache matches the server's address only, so nginx sends the
/// second location's request on the first one's connection, without the certificate).
#[test]
fn keepalive_reuses_tls_connections_keyed_by_settings() {
    let up = TlsUpstream::start();
    let locations = r#"
    location /ka/ { proxy_pass https://backend.test/; }
    location /ka-cert/ {
        proxy_pass https://backend.test/;
        proxy_ssl_certificate {CLIENTCRT};
        proxy_ssl_certificate_key {CLIENTKEY};
    }
"#;
    let proxy = start_proxy(&up, "", locations);
    let get = |path: &str| {
        let r = proxy.get("tls.test", path);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        r.text()
    };
    // One location: one connection carries every request, in both.
    let first: Vec<String> = (0..4).map(|_| get("/ka/")).collect();
    let conns: Vec<&str> = first.iter().map(|t| seen(t, "conn")).collect();
    let reqs: Vec<&str> = first.iter().map(|t| seen(t, "reqs")).collect();
    assert!(conns.iter().all(|c| *c == conns[0]), "{first:?}");
    assert_eq!(reqs, ["1", "2", "3", "4"], "{first:?}");
    // Two locations with different TLS settings on the same servers, alternating.
    let mut failures = Vec::new();
    for i in 0..3 {
        let b = get("/ka-cert/");
        let a = get("/ka/");
        match proxy_kind() {
            Kind::Junction => {
                if !seen_dn(&b).contains("CN=junction-client") {
                    failures.push(format!(
                        "/ka-cert/ {i} went out without the certificate: {b}"
                    ));
                }
                if seen(&b, "conn") == conns[0] || seen(&b, "reqs") != (i + 1).to_string() {
                    failures.push(format!("/ka-cert/ {i} not on its own kept connection: {b}"));
                }
                if seen(&a, "conn") != conns[0] || !seen_dn(&a).is_empty() {
                    failures.push(format!("/ka/ {i} lost its connection: {a}"));
                }
            }
            Kind::Nginx => {
                if !seen_dn(&b).is_empty() || seen(&b, "conn") != conns[0] {
                    failures.push(format!(
                        "nginx: /ka-cert/ {i} expected on /ka/'s connection: {b}"
                    ));
                }
            }
        }
    }
    assert_table("keyed keep-alive", &failures, 3);
}

/// `proxy_ssl_session_reuse` (on by default): a new connection resumes the session of
/// the previous one (`$ssl_session_reused` = `r` at the upstream); `off` never does.
#[test]
fn sessions_are_resumed_on_new_connections() {
    let up = TlsUpstream::start();
    let locations = r#"
    location /reuse/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_set_header Connection close;
    }
    location /noreuse/ {
        proxy_pass https://127.0.0.1:{UP}/;
        proxy_set_header Connection close;
        proxy_ssl_session_reuse off;
    }
"#;
    let proxy = start_proxy(&up, "", locations);
    let run = |path: &str| -> Vec<(String, String)> {
        (0..3)
            .map(|_| {
                let r = proxy.get("tls.test", path);
                assert_eq!(r.status, 200, "{path}: {}", r.describe());
                let t = r.text();
                (seen(&t, "conn").to_string(), seen(&t, "reused").to_string())
            })
            .collect()
    };
    let reuse = run("/reuse/");
    let conns: std::collections::HashSet<_> = reuse.iter().map(|(c, _)| c).collect();
    assert_eq!(
        conns.len(),
        3,
        "each request on a new connection: {reuse:?}"
    );
    assert_eq!(reuse[0].1, ".", "{reuse:?}");
    assert_eq!(reuse[1].1, "r", "the second connection resumed: {reuse:?}");
    assert_eq!(reuse[2].1, "r", "{reuse:?}");
    let noreuse = run("/noreuse/");
    assert!(
        noreuse.iter().all(|(_, r)| r == "."),
        "proxy_ssl_session_reuse off: {noreuse:?}"
    );
}

/// Load-time checks in nginx's words: `proxy_ssl_verify on` needs trusted
/// certificates; a certificate without its key; a protocol nginx does not know.
#[test]
fn load_errors_are_nginx_s() {
    let pki = pki();
    let site = |line: &str| {
        format!(
            "server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        proxy_pass https://127.0.0.1:8443;\n        {line}\n    }}\n}}\n"
        )
    };
    let rows = [
        (
            "proxy_ssl_verify on;".to_string(),
            "no proxy_ssl_trusted_certificate for proxy_ssl_verify",
        ),
        (
            format!("proxy_ssl_certificate {};", pki.path("client.crt")),
            "no \"proxy_ssl_certificate_key\" is defined for certificate",
        ),
        (
            "proxy_ssl_protocols TLSv1.2 TLSv9;".to_string(),
            // nginx: `invalid value "TLSv9" in FILE:LINE`.
            "invalid value \"TLSv9\"",
        ),
    ];
    let mut failures = Vec::new();
    for (line, needle) in &rows {
        let (out, _dir) = check_config(&[("site.conf", &site(line))], "site.conf");
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code == Some(0) || !all.contains(needle) {
            failures.push(format!("{line:?} → {:?} {all:?}", out.code));
        }
    }
    assert_table("proxy_ssl load error", &failures, rows.len());
    // The defaults and a full set load.
    let ok = site(&format!(
        "proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate {};\n        \
         proxy_ssl_verify_depth 2;\n        proxy_ssl_protocols TLSv1.2 TLSv1.3;\n        \
         proxy_ssl_ciphers HIGH:!aNULL:!MD5;\n        proxy_ssl_server_name on;\n        \
         proxy_ssl_name $host;\n        proxy_ssl_session_reuse on;\n        \
         proxy_ssl_certificate {};\n        proxy_ssl_certificate_key {};",
        pki.path("ca.crt"),
        pki.path("client.crt"),
        pki.path("client.key"),
    ));
    let (out, _dir) = check_config(&[("site.conf", &ok)], "site.conf");
    assert_eq!(out.code, Some(0), "{out:?}");
    // A relative certificate path is under the conf prefix (the main file's directory),
    // also when written in an included file elsewhere.
    let ca = std::fs::read_to_string(pki.dir.join("ca.crt")).expect("ca.crt");
    let included = site("proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate ca.crt;");
    let (out, _dir) = check_config(
        &[
            // (Junction takes the conf prefix from the file of the first directive.)
            (
                "main.conf",
                "proxy_ssl_verify_depth 1;\ninclude {DIR}/sites/site.conf;\n",
            ),
            ("sites/site.conf", &included),
            ("ca.crt", &ca),
        ],
        "main.conf",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// Active health checks (beyond nginx OSS) of a group behind `proxy_pass https://`
/// probe over TLS with the location's settings: the TLS server stays up, a server that
/// speaks plain HTTP on the port is taken down (its handshake fails), and requests keep
/// answering 200 from the TLS one. Skipped on nginx (no `health_check` in OSS).
#[test]
fn health_checks_probe_over_tls() {
    if proxy_kind() == Kind::Nginx {
        eprintln!("health_check is beyond nginx OSS: skipped on nginx");
        return;
    }
    let up = TlsUpstream::start();
    let body = fill(
        "upstream hc.test {\n    server 127.0.0.1:{UP};\n    server 127.0.0.1:{PLAIN};\n    \
         health_check interval=200ms fails=1 passes=1 uri=/;\n}\n\
         server {\n    listen 127.0.0.1:{PORT};\n    location / { proxy_pass https://hc.test; }\n}\n",
        &[("UP", &up.port), ("PLAIN", &up.plain)],
    );
    let main = format!("error_log error.log info;\nevents {{}}\nhttp {{\n{body}\n}}\n");
    let proxy = Proxy::start_files(&[("junction.conf", &main)], "junction.conf");
    let plain = format!("127.0.0.1:{}", up.plain);
    let log = proxy
        .wait_error_log(
            &format!("{plain} in upstream \"hc.test\" is down"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|log| panic!("the plain-HTTP server was never taken down:\n{log}"));
    assert!(
        !log.contains(&format!(
            "127.0.0.1:{} in upstream \"hc.test\" is down",
            up.port
        )),
        "the TLS server failed its probes:\n{log}"
    );
    for i in 0..6 {
        let r = proxy.get("hc.test", "/");
        assert_eq!(
            r.status,
            200,
            "request {i}: {}\n{}",
            r.describe(),
            proxy.error_log()
        );
        assert_eq!(
            seen(&r.text(), "proto").get(..4),
            Some("TLSv"),
            "{}",
            r.text()
        );
    }
}

/// Certificate chains under `proxy_ssl_verify on`: a self-signed certificate (accepted
/// without verification, refused with nginx's `18` unless trusted itself), a leaf sent
/// with its intermediate (fine at the default `proxy_ssl_verify_depth 1`, too long at
/// 0), and `proxy_ssl_crl` (the good certificate passes, a revoked one is `23`).
#[test]
fn chains_depth_self_signed_and_crl() {
    let up = TlsUpstream::start();
    let verify = "proxy_ssl_verify on;\n        proxy_ssl_name backend.test;";
    let locations = fill(
        r#"
    location /self-off/ { proxy_pass https://127.0.0.1:{SELF}/; }
    location /self-ca/ {
        proxy_pass https://127.0.0.1:{SELF}/;
        {V} proxy_ssl_trusted_certificate {CA};
    }
    location /self-trusted/ {
        proxy_pass https://127.0.0.1:{SELF}/;
        {V} proxy_ssl_trusted_certificate {SELFCRT};
    }
    location /chain/ {
        proxy_pass https://127.0.0.1:{CHAIN}/;
        {V} proxy_ssl_trusted_certificate {CA};
    }
    location /chain-depth0/ {
        proxy_pass https://127.0.0.1:{CHAIN}/;
        {V} proxy_ssl_trusted_certificate {CA};
        proxy_ssl_verify_depth 0;
    }
    location /crl-good/ {
        proxy_pass https://127.0.0.1:{UP}/;
        {V} proxy_ssl_trusted_certificate {CA};
        proxy_ssl_crl {CRL};
    }
    location /crl-revoked/ {
        proxy_pass https://127.0.0.1:{REVOKED}/;
        {V} proxy_ssl_trusted_certificate {CA};
        proxy_ssl_crl {CRL};
    }
    location /revoked-no-crl/ {
        proxy_pass https://127.0.0.1:{REVOKED}/;
        {V} proxy_ssl_trusted_certificate {CA};
    }
"#,
        &[("V", &verify)],
    );
    let proxy = start_proxy(&up, "proxy_ssl_session_reuse off;", &locations);
    let rows: [(&str, u16, Option<&str>); 8] = [
        ("/self-off/", 200, None),
        ("/self-ca/", 502, Some("(18:self-signed certificate)")),
        ("/self-trusted/", 200, None),
        ("/chain/", 200, None),
        // OpenSSL looks no further than the depth: the issuer is "missing".
        (
            "/chain-depth0/",
            502,
            Some("(20:unable to get local issuer certificate)"),
        ),
        ("/crl-good/", 200, None),
        ("/crl-revoked/", 502, Some("(23:certificate revoked)")),
        ("/revoked-no-crl/", 200, None),
    ];
    let mut failures = Vec::new();
    for (path, status, needle) in rows {
        let r = proxy.get("tls.test", path);
        if r.status != status {
            failures.push(format!(
                "{path}: {} (want {status}): {}",
                r.status,
                r.text()
            ));
            continue;
        }
        if let Some(n) = needle {
            let want = format!(
                "upstream SSL certificate verify error: {n} while SSL handshaking to upstream"
            );
            let req = format!("request: \"GET {path} HTTP/1.1\"");
            let found = proxy
                .wait_error_log(&want, Duration::from_secs(5))
                .map(|log| log.lines().any(|l| l.contains(&want) && l.contains(&req)));
            if found != Ok(true) {
                failures.push(format!("{path}: no {want:?} line:\n{}", proxy.error_log()));
            }
        }
    }
    assert_table("chains", &failures, rows.len());
}

/// A handshake that fails is an `error` for `proxy_next_upstream`: with a server that
/// answers plain HTTP first in the group, every request still gets the TLS server's 200
/// (and the failure is logged); a peer that never answers the ClientHello is a 504 after
/// `proxy_connect_timeout`, `upstream timed out … while SSL handshaking to upstream`. A
/// `proxy_pass https://` with variables speaks TLS too.
#[test]
fn handshake_failures_follow_next_upstream() {
    let up = TlsUpstream::start();
    let silent = Peer::python("silent.py", &[]);
    let locations = fill(
        r#"
    location /mixed/ {
        proxy_pass https://mixed/;
        add_header X-Up "$upstream_addr $upstream_status" always;
    }
    location /silent/ {
        proxy_pass https://127.0.0.1:{SILENT}/;
        proxy_connect_timeout 1s;
    }
    location /dyn/ {
        set $backend "127.0.0.1:{UP}";
        proxy_pass https://$backend;
    }
"#,
        &[("SILENT", &silent.port)],
    );
    let proxy = start_proxy(&up, "", &locations);
    let both = format!("127.0.0.1:{}, 127.0.0.1:{} 502, 200", up.plain, up.port);
    let mut ups = Vec::new();
    for i in 0..4 {
        let r = proxy.get("tls.test", "/mixed/");
        assert_eq!(r.status, 200, "request {i}: {}", r.describe());
        assert!(r.text().starts_with("sni="), "{}", r.text());
        ups.push(r.header("X-Up").unwrap_or("").to_string());
    }
    assert!(ups.contains(&both), "no request went plain → TLS: {ups:?}");
    let t0 = Instant::now();
    let r = proxy.get("tls.test", "/silent/");
    assert_eq!(r.status, 504, "{}", r.describe());
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    proxy
        .wait_error_log(
            "upstream timed out (110: Connection timed out) while SSL handshaking to upstream",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|l| panic!("no handshake timeout logged:\n{l}"));
    let r = proxy.get("tls.test", "/dyn/");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(seen(&r.text(), "proto").starts_with("TLSv"), "{}", r.text());
}

/// What rustls cannot do is said at load (Junction only: nginx on OpenSSL has it all):
/// old protocols and cipher names rustls lacks are warnings, `proxy_ssl_conf_command`
/// is accepted without effect, a legacy-encrypted (`Proc-Type`) key is an error.
#[test]
fn what_rustls_lacks_is_said_at_load() {
    if proxy_kind() == Kind::Nginx {
        eprintln!("rustls' limits: nothing to compare on nginx");
        return;
    }
    let pki = pki();
    let site = |line: &str| {
        format!(
            "server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        proxy_pass https://127.0.0.1:8443;\n        {line}\n    }}\n}}\n"
        )
    };
    let (out, _dir) = check_config(
        &[(
            "site.conf",
            &site(
                "proxy_ssl_protocols TLSv1 TLSv1.2;\n        \
                 proxy_ssl_ciphers \"ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA\";\n        \
                 proxy_ssl_conf_command Options PrioritizeChaCha;",
            ),
        )],
        "site.conf",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    for needle in [
        "\"TLSv1\" in \"proxy_ssl_protocols\" is not supported by rustls and is ignored in",
        "cipher \"DHE-RSA-AES256-SHA\" in \"proxy_ssl_ciphers\" is not supported by rustls",
        "\"proxy_ssl_conf_command\" directive is accepted but has no effect in junction in",
    ] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in {:?}",
            out.stderr
        );
    }
    // The old OpenSSL form of an encrypted key is refused with the command to convert.
    openssl(
        &pki.dir,
        &[
            "pkey",
            "-in",
            "client.key",
            "-aes256",
            "-passout",
            "pass:secret",
            "-traditional",
            "-out",
            "client-legacy.key",
        ],
    );
    std::fs::write(pki.dir.join("legacy.pass"), "secret\n").expect("pass file");
    let line = format!(
        "proxy_ssl_certificate {};\n        proxy_ssl_certificate_key {};\n        \
         proxy_ssl_password_file {};",
        pki.path("client.crt"),
        pki.path("client-legacy.key"),
        pki.path("legacy.pass")
    );
    let (out, _dir) = check_config(&[("site.conf", &site(&line))], "site.conf");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("openssl pkcs8 -topk8"), "{out:?}");
}

/// `proxy_ssl_password_file`: an encrypted client key (PKCS#8, `openssl pkey
/// -aes256`) is decrypted with the first password of the file that fits (each line is
/// tried, as nginx does) and the upstream sees the client certificate; a file with no
/// right password is a load error.
#[test]
fn encrypted_client_keys_with_a_password_file() {
    let up = TlsUpstream::start();
    let pki = pki();
    let dir = tempfile::tempdir().expect("temp dir");
    openssl(
        dir.path(),
        &[
            "pkey",
            "-in",
            &pki.path("client.key"),
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "client-enc.key",
        ],
    );
    let enc = dir.path().join("client-enc.key").display().to_string();
    let good = dir.path().join("good.pass");
    let bad = dir.path().join("bad.pass");
    std::fs::write(&good, "wrong\nsecret\n").expect("pass file");
    std::fs::write(&bad, "wrong\nalso-wrong\n").expect("pass file");
    let locations = format!(
        "    location /enc/ {{\n        proxy_pass https://127.0.0.1:{{UP}}/;\n        \
         proxy_ssl_certificate {{CLIENTCRT}};\n        proxy_ssl_certificate_key {enc};\n        \
         proxy_ssl_password_file {};\n    }}\n",
        good.display()
    );
    let proxy = start_proxy(&up, "", &locations);
    let r = proxy.get("tls.test", "/enc/");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(
        seen_dn(&r.text()).contains("CN=junction-client"),
        "{}",
        r.text()
    );
    let site = format!(
        "server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        \
         proxy_pass https://127.0.0.1:8443;\n        proxy_ssl_certificate {};\n        \
         proxy_ssl_certificate_key {enc};\n        proxy_ssl_password_file {};\n    }}\n}}\n",
        pki.path("client.crt"),
        bad.display()
    );
    let (out, _dir) = check_config(&[("site.conf", &site)], "site.conf");
    assert_eq!(out.code, Some(1), "{out:?}");
    if proxy_kind() == Kind::Junction {
        assert!(out.stderr.contains("decrypts it"), "{out:?}");
    }
}

/// `$upstream_connect_time` includes the TLS handshake, as nginx counts it: behind a
/// relay that holds each ClientHello for 300 ms (the TCP connect itself is immediate),
/// a new connection's connect time is at least 0.3 s and its header time no less; the
/// next request on the kept-alive connection connects in no time.
#[test]
fn connect_time_includes_the_handshake() {
    let up = TlsUpstream::start();
    let relay = Peer::python(
        "slow_relay.py",
        &["--to", &format!("127.0.0.1:{}", up.port), "--delay", "300"],
    );
    let locations = fill(
        r#"
    location /slow/ {
        proxy_pass https://127.0.0.1:{RELAY}/;
        add_header X-Times "$upstream_connect_time $upstream_header_time" always;
    }
"#,
        &[("RELAY", &relay.port)],
    );
    let proxy = start_proxy(&up, "", &locations);
    let times = |r: &Response| -> (f64, f64) {
        let v = r.header("X-Times").unwrap_or("");
        let mut it = v.split(' ').map(|x| x.parse::<f64>().unwrap_or(-1.0));
        (it.next().unwrap_or(-1.0), it.next().unwrap_or(-1.0))
    };
    let first = proxy.get("tls.test", "/slow/");
    assert_eq!(first.status, 200, "{}", first.describe());
    let (connect, header) = times(&first);
    assert!(
        connect >= 0.3,
        "connect time {connect} (X-Times {:?})",
        first.header("X-Times")
    );
    assert!(
        header >= connect,
        "header time {header} < connect time {connect}"
    );
    // The implicit group keeps the connection only in Junction (nginx 1.22 needs a
    // `keepalive` in an `upstream` block): the reuse row is Junction's.
    if proxy_kind() == Kind::Junction {
        let second = proxy.get("tls.test", "/slow/");
        let (connect, _) = times(&second);
        assert!(connect < 0.3, "a reused connection connected in {connect}");
    }
}

/// A kept-alive TLS connection that the upstream closes just as the next request
/// reaches it is the keep-alive race of `tests/keepalive_retry.rs`, over TLS: the
/// request is made again on a new connection (a new handshake) and the client never
/// sees it. `close_idle.py` closes each connection at its first request after a pause.
#[test]
fn a_tls_connection_closed_by_the_upstream_is_retried_on_a_new_one() {
    let up = TlsUpstream::start();
    let relay = Peer::python(
        "close_idle.py",
        &["--to", &format!("127.0.0.1:{}", up.port), "--gap", "150"],
    );
    let http = format!(
        "upstream relay.test {{\n    server 127.0.0.1:{} max_fails=0;\n    keepalive 4;\n}}",
        relay.port
    );
    let locations = "    location /r/ { proxy_pass https://relay.test/; }\n";
    let proxy = start_proxy_with(&up, &http, "", locations);
    let mut bad = Vec::new();
    for i in 0..6 {
        let r = proxy.get("tls.test", "/r/");
        if r.status != 200 || !r.text().starts_with("sni=") {
            bad.push(format!("GET {i}: {}", r.describe()));
        }
        // The pause is the scenario: the relay drops a connection quiet for 150 ms.
        thread::sleep(Duration::from_millis(250));
    }
    let drops = relay.stderr().lines().filter(|l| *l == "DROP").count();
    assert!(bad.is_empty(), "{bad:?}\n{}", proxy.error_log());
    assert!(
        drops >= 3,
        "the relay dropped {drops} requests: the race never happened"
    );
}

/// WebSocket over a TLS upstream: the 101 reaches the client and bytes are tunnelled
/// both ways through the TLS connection (small and 100 KB messages). The TLS upstream
/// passes `/switch` to `echo.py`.
#[test]
fn websocket_tunnels_through_a_tls_upstream() {
    use std::io::{Read, Write};
    let echo = Peer::python("echo.py", &[]);
    let up = TlsUpstream::start_with(&format!(
        "location /switch {{ proxy_pass http://127.0.0.1:{}; proxy_http_version 1.1; \
         proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }}",
        echo.port
    ));
    let locations = r#"
    location /switch {
        proxy_pass https://127.0.0.1:{UP};
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
    }
"#;
    let proxy = start_proxy(&up, "", locations);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /switch HTTP/1.1\r\nHost: tls.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).unwrap(),
            1,
            "closed inside the head: {head:?}"
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in [&b"hi"[..], &[0u8, 0x81, 0xff][..], &vec![7u8; 100_000][..]] {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg, "echo through the TLS tunnel");
    }
}
