//! The seed guide (`how-to-use-nginx-as-a-reverse-proxy.md`) step by step, with the guide's
//! own config files, changed only in port numbers (`listen 80` → `listen {PORT}`,
//! `localhost:8000` → `localhost:{BACKEND}`) and, for `proxy_bind`, the documentation address
//! 192.0.2.1 replaced by 127.0.0.2 (a loopback address this machine has).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// "Reverse Proxy Configuration", /etc/nginx/sites-available/myapp (verbatim but ports).
const SEED_BASIC: &str = "server {
        listen {PORT};
        server_name myapp;

        location / {
                proxy_pass http://localhost:{BACKEND}/;
        }
}
";

/// "Pass Request Headers to Backend Servers" (verbatim but ports).
const SEED_HEADERS: &str = "server {
    listen {PORT};

    server_name myapp;

    location / {
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header Host $host;
            proxy_pass http://localhost:{BACKEND}/;
    }
}
";

/// "Choose a Bind Address" is a file excerpt (a `location`); it goes in the basic server.
const SEED_BIND_LOCATION: &str = "location / {
    proxy_bind 192.0.2.1;
    proxy_pass http://localhost:8000/;
}
";

/// "Buffers" is a file excerpt (a `location`); it goes in the basic server.
const SEED_BUFFERS_LOCATION: &str = "location / {
    proxy_buffers 8 2k;
    proxy_buffer_size 2k;
    proxy_pass http://localhost:8000/;
}
";

/// The basic server around one of the guide's location excerpts, ports replaced.
fn seed_server_with(location: &str) -> String {
    let location = location
        .replace("localhost:8000", "localhost:{BACKEND}")
        .replace("192.0.2.1", "127.0.0.2");
    format!("server {{\n        listen {{PORT}};\n        server_name myapp;\n\n{location}}}\n")
}

fn head_myapp(proxy: &Proxy) -> Response {
    proxy.request(b"HEAD / HTTP/1.1\r\nHost: myapp\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n")
}

/// `curl -I myapp`: 200, our Server header, the app's Content-Length 12 and type.
fn assert_seed_head(r: &Response) {
    assert_eq!(r.status, 200, "HEAD /:\n{}", r.describe());
    let server = r.header_all("Server");
    assert_eq!(
        server.len(),
        1,
        "exactly one Server header:\n{}",
        r.describe()
    );
    assert!(
        server[0].starts_with(product()),
        "Server must be the proxy's ({}…), not the backend's:\n{}",
        product(),
        r.describe()
    );
    assert_eq!(r.header("Content-Length"), Some("12"), "{}", r.describe());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/html"),
        "{}",
        r.describe()
    );
    assert!(r.header("Last-Modified").is_some(), "{}", r.describe());
    assert!(r.body.is_empty(), "HEAD has no body");
}

fn assert_seed_get(proxy: &Proxy) {
    let r = proxy.get("myapp", "/");
    assert_eq!(r.status, 200, "GET /:\n{}", r.describe());
    assert_eq!(r.body, b"hello world\n", "GET /:\n{}", r.describe());
}

#[test]
fn backend_alone_serves_hello_world() {
    // "Create a Sample App": the backend the walkthrough proxies to.
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let r = backend.request(get_request("localhost", "/").as_bytes());
    assert_eq!(r.status, 200);
    assert!(r
        .header("Server")
        .unwrap_or_default()
        .starts_with("SimpleHTTP"));
    assert_eq!(r.body, b"hello world\n");
}

#[test]
fn basic_config_head_and_get() {
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let proxy = Proxy::start(&fill(SEED_BASIC, &[("BACKEND", &backend.port)]));
    assert_seed_head(&head_myapp(&proxy));
    assert_seed_get(&proxy);
    // HTTP/1.0 client, as in the guide's sample output the proxy answers with its own
    // status line; the Date header is the proxy's too.
    let r = proxy.request(b"GET / HTTP/1.0\r\nHost: myapp\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert!(r.header("Date").is_some(), "{}", r.describe());
}

#[test]
fn basic_config_from_full_nginx_conf_with_sites_enabled_glob() {
    // The guide's layout: nginx.conf includes sites-enabled/*, which holds myapp.
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let main = "worker_processes 1;\n\
                error_log {DIR}/error.log info;\n\
                events {\n    worker_connections 64;\n}\n\
                http {\n    access_log {DIR}/access.log;\n    \
                client_body_temp_path {DIR}/client_body_temp;\n    \
                proxy_temp_path {DIR}/proxy_temp;\n    \
                include sites-enabled/*;\n}\n";
    let site = fill(SEED_BASIC, &[("BACKEND", &backend.port)]);
    let proxy = Proxy::start_files(
        &[("nginx.conf", main), ("sites-enabled/myapp", &site)],
        "nginx.conf",
    );
    assert_seed_head(&head_myapp(&proxy));
    assert_seed_get(&proxy);
}

#[test]
fn headers_config_backend_sees_client_address_and_host() {
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(SEED_HEADERS, &[("BACKEND", &backend.port)]));

    let e = Echo::from_response(&proxy.get("myapp", "/"));
    assert_eq!(e.header_all("X-Forwarded-For"), ["127.0.0.1"], "{e:#?}");
    assert_eq!(e.header_all("Host"), ["myapp"], "{e:#?}");
    assert_eq!(e.path, "/");
    assert_eq!(e.method, "GET");

    // $remote_addr replaces (not appends to) a client-sent X-Forwarded-For, and $host is
    // lowercase without the port.
    let r = proxy.request(
        format!(
            "GET /x?y=1 HTTP/1.1\r\nHost: MyApp:{}\r\nX-Forwarded-For: 203.0.113.9\r\n\
             Connection: close\r\n\r\n",
            proxy.port
        )
        .as_bytes(),
    );
    let e = Echo::from_response(&r);
    assert_eq!(e.header_all("X-Forwarded-For"), ["127.0.0.1"], "{e:#?}");
    assert_eq!(e.header_all("Host"), ["myapp"], "{e:#?}");
    assert_eq!(e.path, "/x?y=1");
}

#[test]
fn basic_config_sends_proxy_host_and_no_forwarded_for() {
    // Without proxy_set_header: Host is $proxy_host (localhost:PORT), no X-Forwarded-For.
    let backend = Peer::python("echo.py", &[]);
    let proxy = Proxy::start(&fill(SEED_BASIC, &[("BACKEND", &backend.port)]));
    let e = Echo::from_response(&proxy.get("myapp", "/"));
    assert_eq!(
        e.header_all("Host"),
        [format!("localhost:{}", backend.port)],
        "{e:#?}"
    );
    assert!(e.header("X-Forwarded-For").is_none(), "{e:#?}");
    assert_eq!(e.peer, "127.0.0.1", "default source address");
}

#[test]
fn bind_config_backend_sees_source_address() {
    let backend = Peer::python("echo.py", &[]);
    let config = fill(
        &seed_server_with(SEED_BIND_LOCATION),
        &[("BACKEND", &backend.port)],
    );
    assert!(config.contains("proxy_bind 127.0.0.2;"));
    let proxy = Proxy::start(&config);
    for _ in 0..3 {
        let e = Echo::from_response(&proxy.get("myapp", "/"));
        assert_eq!(
            e.peer, "127.0.0.2",
            "proxy_bind picks the source address: {e:#?}"
        );
    }
}

#[test]
fn buffers_config_serves_the_app() {
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let config = fill(
        &seed_server_with(SEED_BUFFERS_LOCATION),
        &[("BACKEND", &backend.port)],
    );
    assert!(config.contains("proxy_buffers 8 2k;"));
    let proxy = Proxy::start(&config);
    assert_seed_head(&head_myapp(&proxy));
    assert_seed_get(&proxy);
}

#[test]
fn pid_file_names_the_process_and_sigterm_stops_it() {
    let app = seed_app_dir();
    let backend = Peer::http_server(app.path());
    let mut proxy = Proxy::start(&fill(SEED_BASIC, &[("BACKEND", &backend.port)]));
    let pid = std::fs::read_to_string(proxy.pid_file()).expect("pid file");
    assert_eq!(pid.trim(), proxy.pid().to_string(), "pid file content");
    assert_seed_get(&proxy);
    let port = proxy.port;
    let status = proxy
        .terminate(Duration::from_secs(5))
        .expect("the proxy must exit within 5 s of SIGTERM");
    assert!(
        status.success() || status.code().is_none(),
        "exit status after SIGTERM: {status}"
    );
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "nothing listens after the stop"
    );
}
