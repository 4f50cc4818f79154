//! `listen … proxy_protocol`, black-box and checked against nginx
//! (`JUNCTION_TEST_PROXY=nginx`): PROXY v1 and v2 headers written by the test client
//! give `$proxy_protocol_addr`/`_port`/`_server_addr`/`_server_port`, and with
//! `real_ip_header proxy_protocol` the client's `$remote_addr`; a malformed header
//! closes the connection with nginx's log line; the same behind a real HAProxy
//! (`send-proxy`, `send-proxy-v2`) from a client at 127.0.0.2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::Duration;

const SITE: &str = r#"
server {
    listen {PORT};
    listen {PORT2} proxy_protocol;
    server_name _;
    location / {
        return 200 "pp=$proxy_protocol_addr:$proxy_protocol_port dst=$proxy_protocol_server_addr:$proxy_protocol_server_port remote=$remote_addr real=$realip_remote_addr\n";
    }
}
server {
    listen {PORT3} proxy_protocol;
    server_name _;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    location / {
        return 200 "pp=$proxy_protocol_addr:$proxy_protocol_port remote=$remote_addr:$remote_port real=$realip_remote_addr\n";
    }
}
"#;

const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut v = V2_SIG.to_vec();
    v.push(0x20 | cmd);
    v.push(fam);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn v2_tcp4() -> Vec<u8> {
    // 192.0.2.1:56324 → 198.51.100.2:443, and a unique-id TLV after the addresses
    v2(
        1,
        0x11,
        &[
            192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb, 0x05, 0x00, 0x02, b'i', b'd',
        ],
    )
}

fn v2_tcp6() -> Vec<u8> {
    let mut body = vec![0u8; 36];
    body[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    body[15] = 1; // 2001:db8::1
    body[16..20].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    body[31] = 2; // 2001:db8::2
    body[32..34].copy_from_slice(&1000u16.to_be_bytes());
    body[34..36].copy_from_slice(&80u16.to_be_bytes());
    v2(1, 0x21, &body)
}

fn request_with(header: &[u8]) -> Vec<u8> {
    let mut raw = header.to_vec();
    raw.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    raw
}

#[test]
fn proxy_protocol_v1_and_v2_headers_give_the_addresses() {
    let proxy = Proxy::start(SITE);
    let (pp_port, realip_port) = (proxy.ports[1], proxy.ports[2]);
    // (header, on the proxy_protocol listener, behind realip)
    let rows: Vec<(&str, Vec<u8>, String, String)> = vec![
        (
            "v1 TCP4",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec(),
            "pp=192.0.2.1:56324 dst=198.51.100.2:443 remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=192.0.2.1:56324 remote=192.0.2.1:56324 real=127.0.0.1".into(),
        ),
        (
            "v1 TCP6",
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n".to_vec(),
            "pp=2001:db8::1:1000 dst=2001:db8::2:80 remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=2001:db8::1:1000 remote=2001:db8::1:1000 real=127.0.0.1".into(),
        ),
        (
            "v1 UNKNOWN",
            b"PROXY UNKNOWN\r\n".to_vec(),
            "pp=: dst=: remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=: remote=127.0.0.1:".into(),
        ),
        (
            "v2 TCP4 + TLV",
            v2_tcp4(),
            "pp=192.0.2.1:56324 dst=198.51.100.2:443 remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=192.0.2.1:56324 remote=192.0.2.1:56324 real=127.0.0.1".into(),
        ),
        (
            "v2 TCP6",
            v2_tcp6(),
            "pp=2001:db8::1:1000 dst=2001:db8::2:80 remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=2001:db8::1:1000 remote=2001:db8::1:1000 real=127.0.0.1".into(),
        ),
        (
            "v2 LOCAL",
            v2(0, 0x00, &[]),
            "pp=: dst=: remote=127.0.0.1 real=127.0.0.1".into(),
            "pp=: remote=127.0.0.1:".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, header, want, want_realip) in &rows {
        for (port, want) in [(pp_port, want), (realip_port, want_realip)] {
            let r = http_request(port, &request_with(header));
            let body = r.text();
            if r.status != 200 || !body.starts_with(want.as_str()) {
                failures.push(format!(
                    "{name} on port {port}: {} {body:?} (want {want:?})",
                    r.status
                ));
            }
        }
    }
    assert_table("PROXY protocol", &failures, rows.len() * 2);

    // one header, then keep-alive requests: all of them see it
    let mut raw = b"PROXY TCP4 192.0.2.9 198.51.100.2 4000 443\r\n".to_vec();
    raw.extend_from_slice(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let out = String::from_utf8_lossy(&raw_exchange(pp_port, &raw)).into_owned();
    assert_eq!(out.matches("pp=192.0.2.9:4000 ").count(), 2, "{out}");

    // the plain listener of the same server needs no header
    let r = proxy.get("t", "/x");
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("pp=: dst=: remote=127.0.0.1"),
        "{}",
        r.text()
    );
}

#[test]
fn a_malformed_header_closes_the_connection_with_a_log_line() {
    let proxy = Proxy::start(SITE);
    let pp_port = proxy.ports[1];
    for raw in [
        &b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n",
        b"PROXY TCP9 1 2 3 4\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    ] {
        let out = raw_exchange(pp_port, raw);
        assert!(
            out.is_empty(),
            "{:?} answered {:?}",
            raw,
            String::from_utf8_lossy(&out)
        );
    }
    let mut bad_version = v2_tcp4();
    bad_version[12] = 0x11;
    bad_version.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(raw_exchange(pp_port, &bad_version).is_empty());
    let log = proxy
        .wait_error_log("unknown PROXY protocol version: 1", Duration::from_secs(5))
        .unwrap_or_else(|l| panic!("{l}"));
    // (nginx 1.22 still prints the CR inside the quotes; modern nginx stops before it)
    assert!(log.contains("broken header: \"GET /x HTTP/1.1"), "{log}");
    assert!(log.contains("broken header: \"PROXY TCP9 1 2 3 4"), "{log}");
    assert!(
        log.contains("while reading PROXY protocol, client: 127.0.0.1"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Behind a real HAProxy (`send-proxy`, `send-proxy-v2`)
// ---------------------------------------------------------------------------------------------

fn haproxy_bin() -> std::path::PathBuf {
    for cand in ["/usr/sbin/haproxy", "/usr/bin/haproxy"] {
        if std::path::Path::new(cand).exists() {
            return cand.into();
        }
    }
    panic!("haproxy is needed by this test: install it with `apt-get install -y haproxy`");
}

/// HAProxy in the foreground, stopped on drop.
struct Haproxy {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts HAProxy with a TCP frontend on each `(port, backend port, send-proxy option)`;
/// ready once every frontend accepts connections.
fn start_haproxy(fronts: &[(u16, u16, &str)]) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\n",
    );
    for (i, (port, backend, send)) in fronts.iter().enumerate() {
        cfg.push_str(&format!(
            "frontend f{i}\n  bind 127.0.0.1:{port}\n  default_backend b{i}\n\
             backend b{i}\n  server s{i} 127.0.0.1:{backend} {send}\n"
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = std::process::Command::new(haproxy_bin())
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .expect("start haproxy");
    let mut hp = Haproxy { child, _dir: dir };
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    for (port, _, _) in fronts {
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            if let Ok(Some(status)) = hp.child.try_wait() {
                panic!(
                    "haproxy exited with {status}: {}",
                    std::fs::read_to_string(hp._dir.path().join("stderr")).unwrap_or_default()
                );
            }
            assert!(std::time::Instant::now() < deadline, "haproxy not ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    hp
}

/// `GET /x` through `port` from source address 127.0.0.2 (curl `--interface`): the
/// body and the client's local port.
fn curl_from_127_0_0_2(port: u16) -> (String, u16) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--interface",
            "127.0.0.2",
            "-w",
            "\n%{local_port}",
        ])
        .arg(format!("http://127.0.0.1:{port}/x"))
        .output()
        .expect("curl (apt-get install -y curl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, port) = text.rsplit_once('\n').unwrap();
    (body.trim_end().to_string(), port.trim().parse().unwrap())
}

#[test]
fn behind_haproxy_send_proxy_and_send_proxy_v2() {
    let proxy = Proxy::start(SITE);
    let (pp_port, realip_port) = (proxy.ports[1], proxy.ports[2]);
    let fronts: Vec<(u16, u16, &str)> = vec![
        (free_port(), pp_port, "send-proxy"),
        (free_port(), pp_port, "send-proxy-v2"),
        (free_port(), realip_port, "send-proxy"),
        (free_port(), realip_port, "send-proxy-v2"),
    ];
    let _hp = start_haproxy(&fronts);
    let mut failures = Vec::new();
    for (front, backend, send) in &fronts {
        let (body, client_port) = curl_from_127_0_0_2(*front);
        let want = if *backend == pp_port {
            format!(
                "pp=127.0.0.2:{client_port} dst=127.0.0.1:{front} remote=127.0.0.1 real=127.0.0.1"
            )
        } else {
            format!("pp=127.0.0.2:{client_port} remote=127.0.0.2:{client_port} real=127.0.0.1")
        };
        if body != want {
            failures.push(format!("{send} to {backend}: {body:?} (want {want:?})"));
        }
    }
    assert_table("behind HAProxy", &failures, fronts.len());
}

/// `$proxy_protocol_tlv_*` (nginx 1.23.2+; the reference nginx 1.22 does not have them,
/// so this runs against Junction only).
#[test]
fn v2_tlvs_are_variables() {
    if product() == "nginx" {
        return; // nginx 1.22 predates $proxy_protocol_tlv_* (1.23.2)
    }
    let proxy = Proxy::start(
        r#"
server {
    listen {PORT};
    listen {PORT2} proxy_protocol;
    server_name _;
    location / {
        return 200 "alpn=$proxy_protocol_tlv_alpn vpce=$proxy_protocol_tlv_0xea ssl=$proxy_protocol_tlv_ssl_version verify=$proxy_protocol_tlv_ssl_verify none=$proxy_protocol_tlv_authority\n";
    }
}
"#,
    );
    let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2];
    body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
    body.extend_from_slice(&[0xea, 0, 4, b'v', b'p', b'c', b'e']);
    body.extend_from_slice(&[0x20, 0, 15, 1, 0, 0, 0, 0, 0x21, 0, 7]);
    body.extend_from_slice(b"TLSv1.3");
    let r = http_request(proxy.ports[1], &request_with(&v2(1, 0x11, &body)));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "alpn=h2 vpce=vpce ssl=TLSv1.3 verify=0 none=\n");
}
