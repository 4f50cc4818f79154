//! `uwsgi_pass suwsgi://…`: the uwsgi protocol over TLS to a real uWSGI
//! (`--ssl-socket`, Debian's uWSGI is built with OpenSSL), with the `uwsgi_ssl_*`
//! directives: nginx's default (no verification), `uwsgi_ssl_verify on` against a test
//! CA with the right and a wrong `uwsgi_ssl_name`, and a 1 MB body both ways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A test CA and `app.pem`/`app.key` for `app.test`, in `d`.
fn pki(d: &Path) {
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=test ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    std::fs::write(
        d.join("app.ext"),
        "subjectAltName=DNS:app.test\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(d, &["genrsa", "-out", "app.key", "2048"]);
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "app.key",
            "-out",
            "app.csr",
            "-subj",
            "/CN=app.test",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "app.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "7",
            "-out",
            "app.pem",
            "-days",
            "30",
            "-extfile",
            "app.ext",
        ],
    );
}

/// uWSGI serving `tests/peers/wsgi_app.py` on `--ssl-socket` with `app.pem`.
struct SslUwsgi {
    child: Option<Child>,
    port: u16,
}

impl SslUwsgi {
    fn start(d: &Path) -> SslUwsgi {
        let mut last = String::new();
        // A probed port can be taken before uWSGI binds it: a few tries.
        for _ in 0..3 {
            let port = free_port();
            let log_path = d.join(format!("uwsgi-{port}.log"));
            let log = std::fs::File::create(&log_path).expect("log");
            let spec = format!(
                "127.0.0.1:{port},{},{}",
                d.join("app.pem").display(),
                d.join("app.key").display()
            );
            let child = Command::new("uwsgi")
                .args(["--plugin", "python3", "--ssl-socket", &spec, "--wsgi-file"])
                .arg(manifest_dir().join("tests/peers/wsgi_app.py"))
                .args([
                    "--master",
                    "--processes",
                    "1",
                    "--need-app",
                    "--die-on-term",
                    "--no-orphans",
                    "--buffer-size",
                    "65535",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("uwsgi is needed (apt-get install -y uwsgi uwsgi-plugin-python3): {e}")
                });
            let mut child = Some(child);
            let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
            let ready = wait_for_peer(
                "uwsgi",
                &mut child,
                READY_TIMEOUT,
                || {
                    read().contains("spawned uWSGI worker 1")
                        && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
                },
                read,
            );
            match ready {
                Ok(()) => return SslUwsgi { child, port },
                Err(e) => {
                    if let Some(mut c) = child {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    last = e;
                }
            }
        }
        panic!("uwsgi --ssl-socket did not start: {last}");
    }
}

impl Drop for SslUwsgi {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn uwsgi_over_tls() {
    let dir = tempfile::Builder::new()
        .prefix("junction-suwsgi-")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    pki(d);
    let app = SslUwsgi::start(d);
    let ca = d.join("ca.pem");
    let conf = format!(
        r#"
server {{
    listen 127.0.0.1:{{PORT}};
    include {params};
    # nginx keeps one TLS session per upstream address, whatever the location's
    # settings: a session of the unverified location would be resumed under
    # uwsgi_ssl_verify with its old verify result (20). Junction keys sessions by settings.
    uwsgi_ssl_session_reuse off;
    location / {{ uwsgi_pass suwsgi://127.0.0.1:{port}; }}
    location /verified/ {{
        uwsgi_pass suwsgi://127.0.0.1:{port};
        uwsgi_ssl_verify on;
        uwsgi_ssl_trusted_certificate {ca};
        uwsgi_ssl_name app.test;
    }}
    location /wrong-name/ {{
        uwsgi_pass suwsgi://127.0.0.1:{port};
        uwsgi_ssl_verify on;
        uwsgi_ssl_trusted_certificate {ca};
        uwsgi_ssl_name other.test;
    }}
    location /plain/ {{ uwsgi_pass 127.0.0.1:{port}; }}
}}
"#,
        port = app.port,
        ca = ca.display(),
        params = manifest_dir().join("config/uwsgi_params").display(),
    );
    let p = Proxy::start(&conf);

    // nginx's default: no verification.
    let r = p.get("localhost", "/echo?x=1");
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = parse_json(&r.text()).expect("json");
    let env = j.get("environ").expect("environ");
    assert_eq!(
        env.get("REQUEST_URI").and_then(Json::as_str),
        Some("/echo?x=1"),
        "{}",
        r.text()
    );

    // Verified against the CA, with the certificate's name.
    let r = p.get("localhost", "/verified/echo");
    assert_eq!(r.status, 200, "{}\n{}", r.describe(), p.error_log());

    // A name the certificate does not have: 502 and nginx's log line.
    let r = p.get("localhost", "/wrong-name/echo");
    assert_eq!(r.status, 502, "{}", r.describe());
    let log = p
        .wait_error_log(
            "upstream SSL certificate does not match \"other.test\" while SSL handshaking to upstream",
            std::time::Duration::from_secs(10),
        )
        .unwrap_or_else(|l| panic!("{l}"));
    assert!(log.contains("upstream: \"suwsgi://127.0.0.1:"), "{log}");

    // 1 MB up and down, byte for byte.
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let req = [
        format!(
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body.clone(),
    ]
    .concat();
    let r = p.request(&req);
    assert_eq!(r.status, 200, "{}", r.describe());
    let j = parse_json(&r.text()).expect("json");
    assert_eq!(
        j.get("body_md5").and_then(Json::as_str),
        Some(md5_hex(&body).as_str())
    );
    let r = p.get("localhost", "/big?n=1000000");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body.len(), 1_000_000);
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, b)| usize::from(*b) == (i * 7 + 3) % 251),
        "the body differs"
    );

    // The plain uwsgi protocol to the TLS socket: no valid answer.
    let r = p.get("localhost", "/plain/echo");
    assert_eq!(r.status, 502, "{}", r.describe());
}
