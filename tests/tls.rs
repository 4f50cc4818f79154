//! TLS listeners (`listen … ssl`), black-box: certificates made at test time with the
//! `openssl` CLI (a CA, RSA and ECDSA server certificates, client certificates from the
//! CA and from a CA the server does not trust), clients `curl` and `openssl s_client`.
//! Every test runs against nginx too (`JUNCTION_TEST_PROXY=nginx`); where nginx's
//! OpenSSL and Junction's rustls differ, the test says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Certificates for the tests, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("junction-pki-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for ca in ["ca", "otherca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "30",
                    "-subj",
                    &format!("/O=Test/CN={ca}"),
                ],
            );
        }
        // name, key type, issuing CA, subject
        let leafs = [
            ("a", "rsa", "ca", "/CN=a.test", "DNS:a.test"),
            ("b", "ec", "ca", "/CN=b.test", "DNS:b.test,DNS:*.wild.test"),
            ("dflt", "rsa", "ca", "/CN=default.test", "DNS:default.test"),
            ("both-rsa", "rsa", "ca", "/CN=both.test", "DNS:both.test"),
            ("both-ec", "ec", "ca", "/CN=both.test", "DNS:both.test"),
            ("client", "rsa", "ca", "/C=US/O=Test, Inc./CN=client", ""),
            ("stranger", "rsa", "otherca", "/CN=stranger", ""),
        ];
        for (name, kind, ca, subj, san) in leafs {
            let key = format!("{name}.key");
            if kind == "ec" {
                openssl(
                    d,
                    &[
                        "ecparam",
                        "-name",
                        "prime256v1",
                        "-genkey",
                        "-noout",
                        "-out",
                        &key,
                    ],
                );
            } else {
                openssl(d, &["genrsa", "-out", &key, "2048"]);
            }
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    subj,
                ],
            );
            let ext = if san.is_empty() {
                "extendedKeyUsage=clientAuth\n".to_string()
            } else {
                format!("subjectAltName={san}\n")
            };
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("ext");
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-set_serial",
                    "0x1A2B3C",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8")
            .to_string()
    }

    /// `ssl_certificate`/`ssl_certificate_key` lines for a leaf.
    fn cert(&self, name: &str) -> String {
        format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key"))
        )
    }
}

struct Curl {
    code: Option<i32>,
    out: String,
    err: String,
}

/// A key and a certificate `NAME.key`/`NAME.pem` in `d` for `/CN=NAME`, signed by
/// `ISSUER.pem`/`ISSUER.key` with `serial` and the extensions file `ext`.
fn issue(d: &Path, name: &str, issuer: &str, serial: &str, ext: &str) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let (ca, ca_key, subj) = (
        format!("{issuer}.pem"),
        format!("{issuer}.key"),
        format!("/CN={name}"),
    );
    openssl(d, &["genrsa", "-out", &key, "2048"]);
    openssl(
        d,
        &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            serial,
            "-out",
            &pem,
            "-days",
            "30",
            "-extfile",
            ext,
        ],
    );
}

/// `curl -sS` with `args`; trusts the test CA.
fn curl(pki: &Pki, args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .arg("-sS")
        .arg("--max-time")
        .arg("20")
        .arg("--cacert")
        .arg(pki.path("ca.pem"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("curl is needed (apt-get install -y curl): {e}"));
    Curl {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// GET https://NAME:PORT/PATH with NAME resolved to 127.0.0.1 (so SNI is NAME).
fn get(pki: &Pki, port: u16, name: &str, extra: &[&str]) -> Curl {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let url = format!("https://{name}:{port}/");
    let mut args = vec!["--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(pki, &args)
}

/// `openssl s_client` with `args`, sending `input`; stdout and stderr together.
fn s_client(port: u16, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl is needed (apt-get install -y openssl): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts the proxy on `servers` inside a full nginx.conf that logs at `info` (where
/// nginx logs handshake failures).
fn start_info(servers: &str) -> Proxy {
    let conf = format!(
        "error_log {{DIR}}/error.log info;\nevents {{}}\nhttp {{\n{PROTOCOLS}\n{servers}\n}}\n"
    );
    Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf")
}

/// nginx's default since 1.23.4 (and Junction's); nginx 1.22 (the reference) leaves
/// TLSv1.3 out by default, so the tests say it.
const PROTOCOLS: &str = "ssl_protocols TLSv1.2 TLSv1.3;";

const VARS: &str = "$ssl_protocol $ssl_server_name https=$https $scheme";

/// Two servers on one port chosen by SNI, each with its own certificate; an unknown
/// name or none → the default server; the Host header chooses the server of the
/// request afterwards (as nginx: SNI only picks the certificate and the TLS settings).
#[test]
fn sni_chooses_the_server_and_its_certificate() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "a {VARS}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl default_server;
    server_name default.test;
    {dflt}
    location / {{ return 200 "default {VARS}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name b.test *.wild.test;
    {b}
    location / {{ return 200 "b {VARS}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name ~^r\d+\.test$;
    {both}
    location / {{ return 200 "regex {VARS}\n"; }}
}}
"#,
        a = pki.cert("a"),
        b = pki.cert("b"),
        dflt = pki.cert("dflt"),
        both = pki.cert("both-rsa"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    // (SNI, curl verifies the certificate for that name, expected body)
    let rows = [
        ("a.test", "a TLSv1.3 a.test https=on https\n"),
        ("b.test", "b TLSv1.3 b.test https=on https\n"),
        ("x.wild.test", "b TLSv1.3 x.wild.test https=on https\n"),
        (
            "default.test",
            "default TLSv1.3 default.test https=on https\n",
        ),
    ];
    for (sni, want) in rows {
        let r = get(&pki, p.port, sni, &[]);
        assert_eq!(r.code, Some(0), "{sni}: {}", r.err);
        assert_eq!(r.out, want, "{sni}");
    }
    // Unknown SNI: the default server's certificate (curl would refuse it for the name).
    let r = get(&pki, p.port, "unknown.test", &[]);
    assert_ne!(
        r.code,
        Some(0),
        "unknown.test got a certificate for its name"
    );
    let r = get(&pki, p.port, "unknown.test", &["-k"]);
    assert_eq!(r.out, "default TLSv1.3 unknown.test https=on https\n");
    // No SNI (an IP address): the default server.
    let url = format!("https://127.0.0.1:{}/", p.port);
    let r = curl(&pki, &["-k", &url]);
    assert_eq!(r.out, "default TLSv1.3  https=on https\n");
    // SNI a.test, Host b.test: the certificate of a, the request goes to b.
    let r = get(&pki, p.port, "a.test", &["-H", "Host: b.test"]);
    assert_eq!(r.out, "b TLSv1.3 a.test https=on https\n");
    // The subject a server presents, seen by openssl s_client.
    let out = s_client(p.port, &["-servername", "b.test"], b"");
    assert!(out.contains("CN = b.test"), "{out}");
    let out = s_client(p.port, &["-servername", "nope.test"], b"");
    assert!(out.contains("CN = default.test"), "{out}");
    // A regex server_name chooses by SNI too.
    let out = s_client(p.port, &["-servername", "r42.test"], b"");
    assert!(out.contains("CN = both.test"), "{out}");
    let r = get(&pki, p.port, "r42.test", &["-k"]);
    assert_eq!(r.out, "regex TLSv1.3 r42.test https=on https\n");
}

/// `ssl_protocols`, `ssl_ciphers` and the variables that report them.
#[test]
fn protocols_and_ciphers() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 "$ssl_protocol $ssl_cipher $ssl_curve\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT2}} ssl;
    server_name a.test;
    {a}
    ssl_protocols TLSv1.2;
    ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers on;
    ssl_ecdh_curve prime256v1;
    location / {{ return 200 "$ssl_protocol $ssl_cipher $ssl_curve\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let p2 = p.ports[1];
    // (port, curl options, expected body; None: the handshake fails)
    let rows: [(u16, &[&str], Option<&str>); 7] = [
        // curl (OpenSSL) lists CHACHA20 before AES128: the client's order wins, unless
        // ssl_prefer_server_ciphers (port 2).
        (
            p.port,
            &["--tls-max", "1.2"],
            Some("TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 X25519\n"),
        ),
        (p.port, &[], Some("TLSv1.3 TLS_AES_256_GCM_SHA384 X25519\n")),
        (
            p.port,
            &["--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"],
            Some("TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 X25519\n"),
        ),
        (
            p.port,
            &[
                "--tls-max",
                "1.2",
                "--ciphers",
                "ECDHE-RSA-AES256-GCM-SHA384",
            ],
            Some("TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 X25519\n"),
        ),
        (
            p2,
            &[],
            Some("TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 prime256v1\n"),
        ),
        (p2, &["--tlsv1.3"], None),
        (p2, &["--ciphers", "ECDHE-RSA-AES256-GCM-SHA384"], None),
    ];
    for (port, extra, want) in rows {
        let r = get(&pki, port, "a.test", extra);
        match want {
            Some(w) => assert_eq!(
                (r.code, r.out.as_str()),
                (Some(0), w),
                "{extra:?}: {}",
                r.err
            ),
            None => assert_ne!(r.code, Some(0), "{extra:?} should fail: {}", r.out),
        }
    }
}

/// An RSA and an ECDSA certificate in one server: each client gets the one it can
/// verify (TLS 1.2 by cipher suite, TLS 1.3 by signature algorithm).
#[test]
fn rsa_and_ecdsa_certificates_in_one_server() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name both.test;
    {rsa}
    {ec}
    location / {{ return 200 "$ssl_cipher\n"; }}
}}
"#,
        rsa = pki.cert("both-rsa"),
        ec = pki.cert("both-ec"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let rows: [(&[&str], &str); 2] = [
        (
            &[
                "--tls-max",
                "1.2",
                "--ciphers",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
            ],
            "ECDHE-ECDSA-AES128-GCM-SHA256\n",
        ),
        (
            &[
                "--tls-max",
                "1.2",
                "--ciphers",
                "ECDHE-RSA-AES128-GCM-SHA256",
            ],
            "ECDHE-RSA-AES128-GCM-SHA256\n",
        ),
    ];
    for (extra, want) in rows {
        let r = get(&pki, p.port, "both.test", extra);
        assert_eq!(
            (r.code, r.out.as_str()),
            (Some(0), want),
            "{extra:?}: {}",
            r.err
        );
    }
    for (sigalg, key) in [
        ("ecdsa_secp256r1_sha256", "Server public key is 256 bit"),
        ("rsa_pss_rsae_sha256", "Server public key is 2048 bit"),
    ] {
        let out = s_client(
            p.port,
            &["-servername", "both.test", "-sigalgs", sigalg],
            b"",
        );
        assert!(out.contains(key), "{sigalg}: {out}");
    }
}

/// Plain HTTP on a TLS port: nginx's 400 page, or `error_page 497`.
#[test]
fn plain_http_on_the_tls_port() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "tls\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT2}} ssl;
    server_name a.test;
    {a}
    error_page 497 =301 https://$host:$server_port$request_uri;
    location / {{ return 200 "tls\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = start_info(&conf);
    let r = http_request(p.port, b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.describe());
    let body = r.text();
    assert!(
        body.contains("<title>400 The plain HTTP request was sent to HTTPS port</title>")
            && body.contains("<center>The plain HTTP request was sent to HTTPS port</center>"),
        "{body}"
    );
    assert_eq!(r.header("connection"), Some("close"));
    let r = http_request(p.ports[1], b"GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(r.status, 301, "{}", r.describe());
    assert_eq!(
        r.header("location"),
        Some(format!("https://a.test:{}/x?y=1", p.ports[1]).as_str())
    );
    // TLS still works on the same port.
    let r = get(&pki, p.port, "a.test", &[]);
    assert_eq!(r.out, "tls\n", "{}", r.err);
    let log = p.wait_error_log(
        "client sent plain HTTP request to HTTPS port",
        Duration::from_secs(5),
    );
    assert!(log.is_ok(), "{log:?}");
}

/// `ssl_verify_client on|optional|optional_no_ca` and the `$ssl_client_*` values.
#[test]
fn client_certificates() {
    let pki = Pki::new();
    let vars = "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial";
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client on;
    ssl_client_certificate {ca};
    location / {{ return 200 "{vars}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT2}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client optional;
    ssl_client_certificate {ca};
    location / {{ return 200 "{vars}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT3}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client optional_no_ca;
    location / {{ return 200 "{vars}\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT4}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client on;
    ssl_client_certificate {ca};
    error_page 495 496 =403 /denied;
    location / {{ return 200 "{vars}\n"; }}
    location = /denied {{ return 403 "denied $ssl_client_verify\n"; }}
}}
"#,
        a = pki.cert("a"),
        ca = pki.path("ca.pem"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let (on, optional, no_ca, paged) = (p.ports[0], p.ports[1], p.ports[2], p.ports[3]);
    let client = [
        "--cert",
        &pki.path("client.pem"),
        "--key",
        &pki.path("client.key"),
    ];
    let client: Vec<String> = client.iter().map(|s| s.to_string()).collect();
    let stranger: Vec<String> = [
        "--cert",
        &pki.path("stranger.pem"),
        "--key",
        &pki.path("stranger.key"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let none: Vec<String> = Vec::new();
    let good = "SUCCESS|CN=client,O=Test\\, Inc.,C=US|CN=ca,O=Test|1A2B3C\n";
    // (port, client certificate, body that must be there)
    let rows: [(u16, &Vec<String>, &str); 10] = [
        (on, &client, good),
        (
            on,
            &none,
            "<center>No required SSL certificate was sent</center>",
        ),
        (on, &stranger, "<center>The SSL certificate error</center>"),
        (optional, &client, good),
        (optional, &none, "NONE|||\n"),
        (
            optional,
            &stranger,
            "<center>The SSL certificate error</center>",
        ),
        (
            no_ca,
            &stranger,
            "FAILED:unable to verify the first certificate|CN=stranger|CN=otherca,O=Test|1A2B3C\n",
        ),
        (no_ca, &none, "NONE|||\n"),
        (paged, &none, "denied NONE\n"),
        (
            paged,
            &stranger,
            "denied FAILED:unable to verify the first certificate\n",
        ),
    ];
    for (port, cert, want) in rows {
        let extra: Vec<&str> = cert.iter().map(String::as_str).collect();
        let r = get(&pki, port, "a.test", &[&extra[..], &["-i"]].concat());
        assert_eq!(r.code, Some(0), "{port} {cert:?}: {}", r.err);
        assert!(r.out.contains(want), "{port} {cert:?}: {}", r.out);
        if want.starts_with("<center>") {
            assert!(r.out.starts_with("HTTP/1.1 400"), "{}", r.out);
        }
    }
    // The fingerprint is the SHA-1 of the DER, as `openssl x509 -fingerprint` prints it.
    let fp = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
            &pki.path("client.pem"),
        ])
        .output()
        .expect("openssl");
    let fp = String::from_utf8_lossy(&fp.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or("")
        .replace(':', "")
        .to_lowercase();
    let conf2 = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client on;
    ssl_client_certificate {ca};
    location / {{ return 200 "$ssl_client_fingerprint\n"; }}
    location /pem {{ return 200 "$ssl_client_raw_cert"; }}
    location /escaped {{ return 200 "$ssl_client_escaped_cert"; }}
    location /legacy {{ return 200 "$ssl_client_s_dn_legacy|$ssl_client_i_dn_legacy|$ssl_client_v_remain|$ssl_client_v_end\n"; }}
}}
"#,
        a = pki.cert("a"),
        ca = pki.path("ca.pem"),
    );
    let p2 = Proxy::start(&format!("{PROTOCOLS}\n{conf2}"));
    let extra: Vec<&str> = client.iter().map(String::as_str).collect();
    let r = get(&pki, p2.port, "a.test", &extra);
    assert_eq!(r.out, format!("{fp}\n"), "{}", r.err);
    let url = format!("https://a.test:{}/pem", p2.port);
    let resolve = format!("a.test:{}:127.0.0.1", p2.port);
    let r = curl(&pki, &[&extra[..], &["--resolve", &resolve, &url]].concat());
    let pem = std::fs::read_to_string(pki.path("client.pem")).expect("pem");
    assert_eq!(r.out, pem);
    // URL-encoded as ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) does.
    let url = format!("https://a.test:{}/escaped", p2.port);
    let r = curl(&pki, &[&extra[..], &["--resolve", &resolve, &url]].concat());
    let escaped: String = pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    assert_eq!(r.out, escaped);
    // OpenSSL's one-line names, days left, the end date as openssl prints it.
    let end = Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in", &pki.path("client.pem")])
        .output()
        .expect("openssl");
    let end = String::from_utf8_lossy(&end.stdout)
        .trim()
        .trim_start_matches("notAfter=")
        .to_string();
    let url = format!("https://a.test:{}/legacy", p2.port);
    let r = curl(&pki, &[&extra[..], &["--resolve", &resolve, &url]].concat());
    // (30 days of validity: 29 or 30 whole days left, depending on the second)
    let left =
        ["29", "30"].map(|d| format!("/C=US/O=Test, Inc./CN=client|/O=Test/CN=ca|{d}|{end}\n"));
    assert!(left.contains(&r.out), "{}", r.out);
}

/// Sessions resume across connections (and across Junction's worker threads): by
/// ticket (the default) and from `ssl_session_cache shared:…` without tickets.
#[test]
fn session_resumption() {
    let pki = Pki::new();
    let conf = format!(
        r#"
worker_processes 2;
events {{}}
http {{
    {PROTOCOLS}
    server {{
        listen 127.0.0.1:{{PORT}} ssl;
        server_name a.test;
        {a}
        location / {{ return 200 "reused=$ssl_session_reused\n"; }}
    }}
    server {{
        listen 127.0.0.1:{{PORT2}} ssl;
        server_name a.test;
        {a}
        ssl_session_cache shared:SSL:1m;
        ssl_session_tickets off;
        location / {{ return 200 "reused=$ssl_session_reused\n"; }}
    }}
    server {{
        listen 127.0.0.1:{{PORT3}} ssl;
        server_name a.test;
        {a}
        ssl_session_tickets off;
        location / {{ return 200 "reused=$ssl_session_reused\n"; }}
    }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start_files(&[("nginx.conf", &conf)], "nginx.conf");
    let sess = pki.dir.path().join("sess");
    let sess = sess.to_str().expect("utf-8");
    let req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    // (port, TLS version, resumed on the second connection)
    let rows = [
        (p.ports[0], "-tls1_3", true),
        (p.ports[0], "-tls1_2", true),
        (p.ports[1], "-tls1_3", true),
        (p.ports[1], "-tls1_2", true),
        (p.ports[2], "-tls1_2", false),
    ];
    for (port, v, resumed) in rows {
        let _ = std::fs::remove_file(sess);
        let first = s_client(
            port,
            &["-servername", "a.test", v, "-ign_eof", "-sess_out", sess],
            req,
        );
        assert!(first.contains("reused=."), "{port} {v}: {first}");
        if !resumed && !Path::new(sess).exists() {
            // No session to offer at all (rustls gives no session ID without a cache).
            continue;
        }
        // Several tries, so that they land on both worker threads; each saves the
        // session it got (a TLS 1.3 ticket from the cache is good for one use, as in
        // OpenSSL's anti-replay).
        for _ in 0..4 {
            let again = s_client(
                port,
                &[
                    "-servername",
                    "a.test",
                    v,
                    "-ign_eof",
                    "-sess_in",
                    sess,
                    "-sess_out",
                    sess,
                ],
                req,
            );
            if resumed {
                assert!(
                    again.contains("reused=r") && again.contains("Reused,"),
                    "{port} {v}: {again}"
                );
            } else {
                assert!(
                    again.contains("reused=.") && again.contains("New,"),
                    "{port} {v}: {again}"
                );
            }
        }
    }
}

/// A failed handshake (garbage after a handshake record type, an unsupported
/// protocol) is logged at info and disturbs no other connection.
#[test]
fn a_failed_handshake_disturbs_nothing_else() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "ok\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = start_info(&conf);
    // A connection that starts a handshake and stalls: the good one goes on meanwhile.
    let mut stalled = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01]).expect("write");
    let mut garbage = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .expect("write");
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink);
    // An old protocol the server does not speak.
    let old = get(&pki, p.port, "a.test", &["--tlsv1.1", "--tls-max", "1.1"]);
    assert_ne!(old.code, Some(0), "TLS 1.1 was accepted: {}", old.out);
    let r = get(&pki, p.port, "a.test", &[]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "ok\n"), "{}", r.err);
    drop(stalled);
    let log = p.wait_error_log("SSL_do_handshake() failed", Duration::from_secs(5));
    assert!(log.is_ok(), "{log:?}");
}

/// A `listen … ssl` without a certificate is a load error naming the listen.
#[test]
fn ssl_listen_without_certificate_is_an_error() {
    let (out, _dir) = check_config(
        &[(
            "junction.conf",
            "server {\n    listen 127.0.0.1:8443 ssl;\n    server_name a.test;\n}\n",
        )],
        "junction.conf",
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive"),
        "{}",
        out.stderr
    );
}

/// `listen … ssl proxy_protocol`: the PROXY protocol header comes before the TLS
/// handshake (curl `--haproxy-protocol`).
#[test]
fn proxy_protocol_header_before_tls() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl proxy_protocol;
    server_name a.test;
    {a}
    location / {{ return 200 "$proxy_protocol_addr $ssl_protocol $scheme $ssl_alpn_protocol\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let r = get(&pki, p.port, "a.test", &["--haproxy-protocol"]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (Some(0), "127.0.0.1 TLSv1.3 https http/1.1\n"),
        "{}",
        r.err
    );
    // Without the header the connection is refused (a TLS record is a broken header).
    let r = get(&pki, p.port, "a.test", &[]);
    assert_ne!(r.code, Some(0), "{}", r.out);
}

/// nginx's 421: a Host other than the SNI name, on a server (chosen by Host) that
/// verifies client certificates (`ngx_http_set_virtual_server`).
#[test]
fn host_other_than_sni_on_a_verifying_server_is_421() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl default_server;
    server_name a.test;
    {a}
    location / {{ return 200 "a\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name b.test;
    {b}
    ssl_verify_client optional;
    ssl_client_certificate {ca};
    location / {{ return 200 "b\n"; }}
}}
"#,
        a = pki.cert("a"),
        b = pki.cert("b"),
        ca = pki.path("ca.pem"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    // (SNI, Host, status line)
    let rows = [
        ("a.test", "a.test", "HTTP/1.1 200"),
        ("b.test", "b.test", "HTTP/1.1 200"),
        ("b.test", "a.test", "HTTP/1.1 200"),
        ("a.test", "b.test", "HTTP/1.1 421"),
    ];
    for (sni, host, want) in rows {
        let h = format!("Host: {host}");
        let r = get(&pki, p.port, sni, &["-i", "-H", &h]);
        assert!(
            r.out.starts_with(want),
            "{sni} → {host}: {} {}",
            r.out,
            r.err
        );
    }
}

/// A stalled handshake is closed after the default server's `client_header_timeout`
/// (nginx's `post_accept_timeout`: the http module has no `ssl_handshake_timeout`).
#[test]
fn a_stalled_handshake_times_out() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    client_header_timeout 1s;
    {a}
    location / {{ return 200 "ok\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = start_info(&conf);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).expect("write");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf);
    assert!(
        matches!(n, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(10),
        "{n:?} after {:?}",
        started.elapsed()
    );
    let log = p.wait_error_log("client timed out", Duration::from_secs(5));
    assert!(
        log.as_ref()
            .is_ok_and(|l| l.contains("while SSL handshaking")),
        "{log:?}"
    );
}

/// Load-time checks: directives rustls cannot honour are warnings, what would
/// change the meaning is an error with FILE:LINE.
#[test]
fn tls_directives_at_load() {
    if product() == "nginx" {
        return; // the rows are about rustls against OpenSSL
    }
    let pki = Pki::new();
    let a = pki.cert("a");
    let enc = pki.path("enc.key");
    openssl(
        pki.dir.path(),
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "a.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:secret",
        ],
    );
    // (line 4 of the server, expected in -t's output, exit code)
    let rows: [(String, &str, i32); 8] = [
        (
            "ssl_protocols TLSv1 TLSv1.1 TLSv1.2;".into(),
            "TLSv1 is not supported by junction",
            0,
        ),
        (
            "ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA;".into(),
            "DHE-RSA-AES256-SHA not available",
            0,
        ),
        (
            "ssl_dhparam /nonexistent;".into(),
            "\"ssl_dhparam\" directive is accepted but has no effect",
            0,
        ),
        (
            "ssl_stapling on;".into(),
            "\"ssl_stapling\" ignored, issuer certificate not found for certificate",
            0,
        ),
        (
            "ssl_conf_command Options PrioritizeChaCha;".into(),
            "\"ssl_conf_command\" directive is not supported",
            1,
        ),
        (
            format!(
                "ssl_certificate {}; ssl_certificate_key {enc};",
                pki.path("a.pem")
            ),
            "the key is encrypted and no \"ssl_password_file\" is given",
            1,
        ),
        (
            "ssl_verify_client on;".into(),
            "no ssl_client_certificate for ssl_verify_client",
            1,
        ),
        (
            "ssl_ocsp on;".into(),
            "\"ssl_ocsp\" directive is not supported by junction yet",
            1,
        ),
    ];
    let mut failures = Vec::new();
    for (line, want, code) in &rows {
        let conf = format!("server {{\n    listen 127.0.0.1:8443 ssl;\n    {a}\n    {line}\n}}\n");
        let (out, dir) = check_config(&[("site.conf", &conf)], "site.conf");
        let all = format!("{}{}", out.stdout, out.stderr);
        let at = format!("{}:4", dir.path().join("site.conf").display());
        if out.code != Some(*code) || !all.contains(want) || (*code == 1 && !all.contains(&at)) {
            failures.push(format!("{line}: {:?} {all}", out.code));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Large bodies over TLS: a 20 MB static download and a 5 MB upload through
/// `proxy_pass`, byte for byte; the upstream sees `$scheme` = https.
#[test]
fn large_bodies_over_tls() {
    let pki = Pki::new();
    let echo = Peer::python("echo.py", &[]);
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    client_max_body_size 50m;
    root {{DIR}}/www;
    location /up {{
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_pass http://127.0.0.1:{port};
    }}
}}
"#,
        a = pki.cert("a"),
        port = echo.port,
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    std::fs::create_dir_all(p.dir().join("www")).expect("mkdir");
    let big: Vec<u8> = (0..20_000_000).map(big_byte).collect();
    std::fs::write(p.dir().join("www/big.bin"), &big).expect("write");
    let got = pki.dir.path().join("got.bin");
    let got_s = got.to_str().expect("utf-8").to_string();
    let resolve = format!("a.test:{}:127.0.0.1", p.port);
    let url = format!("https://a.test:{}/big.bin", p.port);
    let r = curl(&pki, &["--resolve", &resolve, "-o", &got_s, &url]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    let body = std::fs::read(&got).expect("read");
    assert_eq!(body.len(), big.len());
    assert_eq!(big_mismatch(&body, big.len()), None);
    // Upload.
    let up = pki.dir.path().join("up.bin");
    std::fs::write(&up, big.get(..5_000_000).expect("5 MB")).expect("write");
    let sha = Command::new("sha256sum")
        .arg(&up)
        .output()
        .expect("sha256sum");
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string();
    let url = format!("https://a.test:{}/up", p.port);
    let data = format!("@{}", up.display());
    let r = curl(
        &pki,
        &[
            "--resolve",
            &resolve,
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
            &url,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    let j = Json::parse(&r.out).expect("echo json");
    assert_eq!(
        j.get("body_len").and_then(Json::as_u64),
        Some(5_000_000),
        "{}",
        r.out
    );
    assert_eq!(
        j.get("body_sha256").and_then(Json::as_str),
        Some(sha.as_str())
    );
    assert!(
        r.out
            .to_ascii_lowercase()
            .contains(r#"["x-forwarded-proto", "https"]"#),
        "{}",
        r.out
    );
}

/// `ssl_stapling on` with `ssl_stapling_file`: the response (made here by `openssl
/// ocsp` from an empty index: status unknown) is stapled.
#[test]
fn stapling_from_a_file() {
    let pki = Pki::new();
    let d = pki.dir.path();
    std::fs::write(d.join("index.txt"), "").expect("index");
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "a.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    openssl(
        d,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            "req.der",
            "-respout",
            "resp.der",
            "-ndays",
            "1",
        ],
    );
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_stapling on;
    ssl_stapling_file {resp};
    location / {{ return 200 "ok\n"; }}
}}
"#,
        a = pki.cert("a"),
        resp = pki.path("resp.der"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let out = s_client(p.port, &["-servername", "a.test", "-status"], b"");
    assert!(
        out.contains("OCSP Response Status: successful") && out.contains("Cert Status: unknown"),
        "{out}"
    );
}

/// `ssl_session_ticket_key`: two instances with the same key file resume each
/// other's sessions (TLS 1.2 and 1.3).
#[test]
fn ticket_keys_shared_between_instances() {
    let pki = Pki::new();
    openssl(pki.dir.path(), &["rand", "-out", "ticket.key", "80"]);
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_session_ticket_key {key};
    location / {{ return 200 "reused=$ssl_session_reused\n"; }}
}}
"#,
        a = pki.cert("a"),
        key = pki.path("ticket.key"),
    );
    let one = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let two = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let sess = pki.path("sess");
    let req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    for v in ["-tls1_2", "-tls1_3"] {
        let _ = std::fs::remove_file(&sess);
        let first = s_client(
            one.port,
            &["-servername", "a.test", v, "-ign_eof", "-sess_out", &sess],
            req,
        );
        assert!(first.contains("reused=."), "{v}: {first}");
        let again = s_client(
            two.port,
            &["-servername", "a.test", v, "-ign_eof", "-sess_in", &sess],
            req,
        );
        assert!(
            again.contains("reused=r") && again.contains("Reused,"),
            "{v}: {again}"
        );
    }
}

/// A reload picks up a renewed certificate for new connections (certbot's
/// `-s reload`); junction only: the reference nginx runs without a master process.
#[test]
fn reload_picks_up_a_renewed_certificate() {
    if product() == "nginx" {
        return;
    }
    let pki = Pki::new();
    let conf = r#"
server {
    listen 127.0.0.1:{PORT} ssl;
    server_name a.test;
    ssl_certificate {DIR}/cur.pem;
    ssl_certificate_key {DIR}/cur.key;
    location / { return 200 "ok\n"; }
    location /big { root {DIR}/www; }
}
"#;
    // The certificate files live in the proxy's dir (first: a.test's).
    let tmpl = conf.to_string();
    let files = [
        (
            "cur.pem",
            std::fs::read_to_string(pki.path("a.pem")).expect("a.pem"),
        ),
        (
            "cur.key",
            std::fs::read_to_string(pki.path("a.key")).expect("a.key"),
        ),
    ];
    let p = Proxy::start_files(
        &[
            ("junction.conf", &format!("{PROTOCOLS}\n{tmpl}")),
            (files[0].0, &files[0].1),
            (files[1].0, &files[1].1),
        ],
        "junction.conf",
    );
    let subject = |p: &Proxy| s_client(p.port, &["-servername", "a.test"], b"");
    assert!(subject(&p).contains("CN = a.test"), "{}", subject(&p));
    // A download in flight across the reload (slowed by the client).
    std::fs::create_dir_all(p.dir().join("www/big")).expect("mkdir");
    let big: Vec<u8> = (0..3_000_000).map(big_byte).collect();
    std::fs::write(p.dir().join("www/big/file"), &big).expect("write");
    let got = pki.dir.path().join("inflight.bin");
    let mut download = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--limit-rate", "1M", "--cacert"])
        .arg(pki.path("ca.pem"))
        .arg("--resolve")
        .arg(format!("a.test:{}:127.0.0.1", p.port))
        .arg("-o")
        .arg(&got)
        .arg(format!("https://a.test:{}/big/file", p.port))
        .spawn()
        .expect("curl");
    let started = std::time::Instant::now();
    while std::fs::metadata(&got).map_or(0, |m| m.len()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the download did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::copy(pki.path("dflt.pem"), p.dir().join("cur.pem")).expect("copy");
    std::fs::copy(pki.path("dflt.key"), p.dir().join("cur.key")).expect("copy");
    p.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = subject(&p);
        if out.contains("CN = default.test") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still the old certificate: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The download that started under the old certificate completes.
    let status = download.wait().expect("curl");
    assert!(status.success(), "{status}");
    let body = std::fs::read(&got).expect("read");
    assert_eq!(body.len(), big.len());
    assert_eq!(big_mismatch(&body, big.len()), None);
}

/// `ssl_reject_handshake on` in the default server: names no server has are refused
/// at the handshake; a named server still works (nginx 1.19.4+).
#[test]
fn reject_handshake_for_unknown_names() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl default_server;
    ssl_reject_handshake on;
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "a\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let r = get(&pki, p.port, "a.test", &[]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "a\n"), "{}", r.err);
    let r = get(&pki, p.port, "unknown.test", &["-k"]);
    assert_ne!(r.code, Some(0), "{}", r.out);
    let url = format!("https://127.0.0.1:{}/", p.port);
    let r = curl(&pki, &["-k", &url]);
    assert_ne!(r.code, Some(0), "{}", r.out);
}

/// WebSocket (an Upgrade through `proxy_pass`) over TLS: the 101, then bytes both
/// ways through the TLS stream, until `proxy_read_timeout` closes the idle tunnel.
#[test]
fn upgrade_over_tls() {
    let pki = Pki::new();
    let echo = Peer::python("echo.py", &[]);
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{
        proxy_pass http://127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_read_timeout 1s;
    }}
}}
"#,
        a = pki.cert("a"),
        port = echo.port,
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let req = b"GET /switch HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nping-through-tls";
    let out = s_client(
        p.port,
        &["-servername", "a.test", "-ign_eof", "-quiet"],
        req,
    );
    assert!(out.contains("HTTP/1.1 101"), "{out}");
    assert!(out.contains("ping-through-tls"), "{out}");
}

/// `ssl_password_file`: an encrypted key (PKCS#8, as `openssl pkcs8 -topk8` writes it)
/// is decrypted with the first password in the file that fits.
#[test]
fn encrypted_key_with_password_file() {
    let pki = Pki::new();
    openssl(
        pki.dir.path(),
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "a.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:s3cret",
        ],
    );
    std::fs::write(pki.dir.path().join("pw.txt"), "wrong\ns3cret\n").expect("pw");
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_password_file {pw};
    location / {{ return 200 "ok\n"; }}
}}
"#,
        cert = pki.path("a.pem"),
        key = pki.path("enc.key"),
        pw = pki.path("pw.txt"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let r = get(&pki, p.port, "a.test", &[]);
    assert_eq!((r.code, r.out.as_str()), (Some(0), "ok\n"), "{}", r.err);
    // No password that fits: a load error.
    std::fs::write(pki.dir.path().join("pw.txt"), "wrong\n").expect("pw");
    let (out, _dir) = check_config(
        &[("site.conf", &conf.replace("{PORT}", "8443"))],
        "site.conf",
    );
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("enc.key"), "{}", out.stderr);
}

/// What an idle TLS connection costs (after one request): under 32 KiB each over
/// 500 connections (measured on a debug build: Junction ~19 KiB, nginx 1.22 with
/// OpenSSL ~14 KiB).
#[test]
fn idle_tls_connections_stay_small() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "ok\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let n = 500;
    let script = format!(
        r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile={ca:?})
conns = []
for i in range({n}):
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="a.test")
    t.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    got = b""
    while not got.endswith(b"ok\n"):
        got += t.recv(4096)
    conns.append(t)
print("READY", flush=True)
sys.stdin.read()
"#,
        ca = pki.path("ca.pem"),
        port = p.port,
    );
    let before = p.rss_kb().current_kb;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed (apt-get install -y python3)");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
    assert_eq!(line.trim(), "READY");
    let after = p.rss_kb().current_kb;
    drop(child.stdin.take());
    let _ = child.wait();
    let each = after.saturating_sub(before) / n;
    assert!(
        each < 32,
        "{n} idle TLS connections cost {} kB ({each} kB each)",
        after.saturating_sub(before)
    );
}

/// `ssl_crl`: a client certificate the CA revoked is refused (495), another of the
/// same CA passes.
#[test]
fn revoked_client_certificate() {
    let pki = Pki::new();
    let d = pki.dir.path();
    openssl(d, &["genrsa", "-out", "revoked.key", "2048"]);
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "revoked.key",
            "-out",
            "revoked.csr",
            "-subj",
            "/CN=revoked",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "revoked.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x5EED",
            "-out",
            "revoked.pem",
            "-days",
            "30",
            "-extfile",
            "client.ext",
        ],
    );
    std::fs::write(d.join("index.txt"), "").expect("index");
    std::fs::write(d.join("crlnumber"), "01\n").expect("crlnumber");
    std::fs::write(
        d.join("ca.cnf"),
        "[ca]\ndefault_ca=CA_default\n[CA_default]\ndatabase=index.txt\ncrlnumber=crlnumber\n\
         default_md=sha256\ndefault_crl_days=30\n",
    )
    .expect("ca.cnf");
    openssl(
        d,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-revoke",
            "revoked.pem",
            "-keyfile",
            "ca.key",
            "-cert",
            "ca.pem",
        ],
    );
    openssl(
        d,
        &[
            "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem", "-out",
            "crl.pem",
        ],
    );
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client optional;
    ssl_client_certificate {ca};
    ssl_crl {crl};
    location / {{ return 200 "$ssl_client_verify\n"; }}
}}
"#,
        a = pki.cert("a"),
        ca = pki.path("ca.pem"),
        crl = pki.path("crl.pem"),
    );
    let p = start_info(&conf);
    let (good_c, good_k) = (pki.path("client.pem"), pki.path("client.key"));
    let r = get(
        &pki,
        p.port,
        "a.test",
        &["--cert", &good_c, "--key", &good_k],
    );
    assert_eq!(r.out, "SUCCESS\n", "{}", r.err);
    let (bad_c, bad_k) = (pki.path("revoked.pem"), pki.path("revoked.key"));
    let r = get(
        &pki,
        p.port,
        "a.test",
        &["-i", "--cert", &bad_c, "--key", &bad_k],
    );
    assert!(
        r.out.starts_with("HTTP/1.1 400") && r.out.contains("The SSL certificate error"),
        "{}",
        r.out
    );
    let log = p.wait_error_log("certificate revoked", Duration::from_secs(5));
    assert!(log.is_ok(), "{log:?}");
}

/// Keep-alive and pipelining over TLS: requests on one connection, two of them in one
/// write (the second is already decrypted when the first is answered).
#[test]
fn keepalive_and_pipelining_over_tls() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "$uri $connection_requests\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let resolve = format!("a.test:{}:127.0.0.1", p.port);
    let u1 = format!("https://a.test:{}/one", p.port);
    let u2 = format!("https://a.test:{}/two", p.port);
    let r = curl(&pki, &["--resolve", &resolve, &u1, &u2]);
    assert_eq!(r.out, "/one 1\n/two 2\n", "{}", r.err);
    let req = b"GET /a HTTP/1.1\r\nHost: a.test\r\n\r\nGET /b HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let out = s_client(
        p.port,
        &["-servername", "a.test", "-ign_eof", "-quiet"],
        req,
    );
    assert!(out.contains("/a 1\n") && out.contains("/b 2\n"), "{out}");
}

/// `ssl_verify_depth` on a client chain through an intermediate CA (the client sends
/// its certificate and the intermediate).
#[test]
fn verify_depth_limits_the_client_chain() {
    let pki = Pki::new();
    let d = pki.dir.path();
    // ca → inter → deep (client), and ca → inter → inter2 → deeper (client).
    std::fs::write(
        d.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .expect("ext");
    for (name, issuer) in [("inter", "ca"), ("inter2", "inter")] {
        issue(d, name, issuer, "0x77", "ca.ext");
    }
    for (name, issuer) in [("deep", "inter"), ("deeper", "inter2")] {
        issue(d, name, issuer, "0x78", "client.ext");
    }
    let read = |n: &str| std::fs::read_to_string(d.join(n)).expect("pem");
    std::fs::write(
        d.join("deep-chain.pem"),
        read("deep.pem") + &read("inter.pem"),
    )
    .expect("chain");
    std::fs::write(
        d.join("deeper-chain.pem"),
        read("deeper.pem") + &read("inter2.pem") + &read("inter.pem"),
    )
    .expect("chain");
    let server = |port: &str, depth: &str| {
        format!(
            r#"
server {{
    listen 127.0.0.1:{{{port}}} ssl;
    server_name a.test;
    {a}
    ssl_verify_client optional;
    ssl_client_certificate {ca};
    {depth}
    location / {{ return 200 "$ssl_client_verify\n"; }}
}}
"#,
            a = pki.cert("a"),
            ca = pki.path("ca.pem"),
        )
    };
    let conf = server("PORT", "") + &server("PORT2", "ssl_verify_depth 2;");
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    // (port, client chain, key, expected)
    let rows = [
        (p.ports[0], "client.pem", "client.key", "SUCCESS"),
        (p.ports[0], "deep-chain.pem", "deep.key", "SUCCESS"),
        (
            p.ports[0],
            "deeper-chain.pem",
            "deeper.key",
            "The SSL certificate error",
        ),
        (p.ports[1], "deeper-chain.pem", "deeper.key", "SUCCESS"),
    ];
    for (port, cert, key, want) in rows {
        let r = get(
            &pki,
            port,
            "a.test",
            &["--cert", &pki.path(cert), "--key", &pki.path(key)],
        );
        assert!(r.out.contains(want), "{port} {cert}: {} {}", r.out, r.err);
    }
}

/// In the access log an `$ssl_*` variable without a value is `-`, on a plain
/// connection and on a TLS one (nginx: an empty value is `not_found`).
#[test]
fn ssl_variables_in_the_access_log() {
    let pki = Pki::new();
    let conf = format!(
        r#"
log_format tls "$request_uri|$ssl_protocol|$ssl_client_s_dn|$https|";
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    listen 127.0.0.1:{{PORT2}};
    server_name a.test;
    {a}
    access_log {{DIR}}/tls.log tls;
    location / {{ return 200 "ok\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let r = http_request(p.ports[1], b"GET /plain HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = curl(
        &pki,
        &[
            "--resolve",
            &format!("a.test:{}:127.0.0.1", p.port),
            &format!("https://a.test:{}/tls", p.port),
        ],
    );
    assert_eq!(r.out, "ok\n", "{}", r.err);
    let log = wait_file_contains(&p.dir().join("tls.log"), "/tls|");
    assert!(log.contains("/plain|-|-||\n"), "{log}");
    assert!(log.contains("/tls|TLSv1.3|-|on|\n"), "{log}");
}

/// `ssl_session_timeout`: a session older than it is not resumed (tickets and the
/// shared cache alike).
#[test]
fn sessions_expire_after_the_session_timeout() {
    let pki = Pki::new();
    let server = |port: &str, extra: &str| {
        format!(
            r#"
server {{
    listen 127.0.0.1:{{{port}}} ssl;
    server_name a.test;
    {a}
    ssl_session_timeout 2s;
    {extra}
    location / {{ return 200 "reused=$ssl_session_reused\n"; }}
}}
"#,
            a = pki.cert("a"),
        )
    };
    let conf = server("PORT", "")
        + &server(
            "PORT2",
            "ssl_session_tickets off; ssl_session_cache shared:S:1m;",
        );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let rows = [(p.ports[0], "tickets"), (p.ports[1], "cache")];
    let mut files = Vec::new();
    for (i, (port, what)) in rows.iter().enumerate() {
        let sess = pki.path(&format!("sess{i}"));
        let first = s_client(
            *port,
            &[
                "-servername",
                "a.test",
                "-tls1_2",
                "-ign_eof",
                "-sess_out",
                &sess,
            ],
            req,
        );
        assert!(first.contains("reused=."), "{what}: {first}");
        let again = s_client(
            *port,
            &[
                "-servername",
                "a.test",
                "-tls1_2",
                "-ign_eof",
                "-sess_in",
                &sess,
            ],
            req,
        );
        assert!(again.contains("reused=r"), "{what}: {again}");
        files.push(sess);
    }
    // What is under test is the passing of time itself.
    std::thread::sleep(Duration::from_millis(3500));
    for ((port, what), sess) in rows.iter().zip(&files) {
        let late = s_client(
            *port,
            &[
                "-servername",
                "a.test",
                "-tls1_2",
                "-ign_eof",
                "-sess_in",
                sess,
            ],
            req,
        );
        assert!(
            late.contains("reused=.") && late.contains("New,"),
            "{what}: {late}"
        );
    }
}

/// `ssl_certificate …/$ssl_server_name.pem` (nginx 1.15.9+): the pair named by the
/// SNI name is loaded at the handshake; a name without files fails the handshake.
#[test]
fn certificates_named_by_the_server_name() {
    let pki = Pki::new();
    let certs = pki.dir.path().join("by-name");
    std::fs::create_dir_all(&certs).expect("mkdir");
    for (name, file) in [("a.test", "a"), ("b.test", "b")] {
        for ext in ["pem", "key"] {
            std::fs::copy(
                pki.path(&format!("{file}.{ext}")),
                certs.join(format!("{name}.{ext}")),
            )
            .expect("copy");
        }
    }
    let dir = certs.to_str().expect("utf-8");
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name _;
    ssl_certificate {dir}/$ssl_server_name.pem;
    ssl_certificate_key {dir}/${{ssl_server_name}}.key;
    location / {{ return 200 "$ssl_server_name\n"; }}
}}
"#
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    for name in ["a.test", "b.test"] {
        let r = get(&pki, p.port, name, &[]);
        assert_eq!(
            (r.code, r.out.clone()),
            (Some(0), format!("{name}\n")),
            "{}",
            r.err
        );
    }
    let r = get(&pki, p.port, "c.test", &["-k"]);
    assert_ne!(r.code, Some(0), "{}", r.out);
}

/// `ssl_protocols` of the listen's default server apply to every connection on it,
/// whichever server SNI chooses (OpenSSL picks the version before the SNI callback).
#[test]
fn protocols_come_from_the_default_server() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl default_server;
    server_name a.test;
    {a}
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 "a $ssl_protocol\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name b.test;
    {b}
    ssl_protocols TLSv1.2;
    location / {{ return 200 "b $ssl_protocol\n"; }}
}}
"#,
        a = pki.cert("a"),
        b = pki.cert("b"),
    );
    let p = Proxy::start(&conf);
    let r = get(&pki, p.port, "b.test", &[]);
    assert_eq!(
        (r.code, r.out.as_str()),
        (Some(0), "b TLSv1.3\n"),
        "{}",
        r.err
    );
}

/// ALPN `h2` on a `listen … ssl http2` address: HTTP/2 over TLS (`$server_protocol`
/// HTTP/2.0, `$ssl_alpn_protocol` h2); an `ssl` listen without it offers only
/// `http/1.1`, so the same client speaks HTTP/1.1 there.
#[test]
fn alpn_h2_serves_http2_over_tls() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl http2;
    server_name a.test;
    {a}
    location / {{ return 200 "$server_protocol $ssl_alpn_protocol $https\n"; }}
}}
server {{
    listen 127.0.0.1:{{PORT2}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "$server_protocol $ssl_alpn_protocol $https\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let proxy = start_info(&conf);
    let r = get(
        &pki,
        proxy.port,
        "a.test",
        &["--http2", "-w", "%{http_version}"],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "HTTP/2.0 h2 on\n2", "{}", r.err);
    let port2 = proxy.ports[1];
    let r = get(&pki, port2, "a.test", &["--http2", "-w", "%{http_version}"]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(r.out, "HTTP/1.1 http/1.1 on\n1.1", "{}", r.err);
}

/// `$ssl_ciphers` and `$ssl_curves`: what the client offered (OpenSSL's names, `:`
/// between), beside `$ssl_curve`, the group chosen.
#[test]
fn offered_ciphers_and_curves() {
    let pki = Pki::new();
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}} ssl;
    server_name a.test;
    {a}
    location / {{ return 200 "[$ssl_ciphers|$ssl_curves|$ssl_curve]\n"; }}
}}
"#,
        a = pki.cert("a"),
    );
    let p = Proxy::start(&format!("{PROTOCOLS}\n{conf}"));
    let out = s_client(
        p.port,
        &[
            "-servername",
            "a.test",
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "-curves",
            "X25519:prime256v1",
            "-ign_eof",
        ],
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        out.contains(
            "[ECDHE-RSA-AES128-GCM-SHA256:TLS_EMPTY_RENEGOTIATION_INFO_SCSV|X25519:prime256v1|X25519]"
        ),
        "{out}"
    );
}
