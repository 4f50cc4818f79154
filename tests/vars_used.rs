//! Variables the request path computes only when a template of the configuration
//! reads them (`$request_filename` for a `*_pass` location, `$upstream_http_*`): what
//! templates read is recorded per configuration at load and read through the runtime
//! built from it (issue 11), so a template that reads one gets its value. Runs on nginx
//! too (`JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn request_filename_and_upstream_headers_reach_the_templates_that_read_them() {
    let echo = Peer::python("echo.py", &[]);
    let root = tempfile::tempdir().unwrap();
    let root_s = root.path().display().to_string();
    let conf = format!(
        "server {{
    listen 127.0.0.1:{{PORT}};
    server_name vars.test;
    root {root_s};
    location /app/ {{
        proxy_pass http://127.0.0.1:{port};
        proxy_set_header X-File $request_filename;
        add_header X-Upstream-Type $upstream_http_content_type always;
    }}
}}
",
        port = echo.port
    );
    let proxy = Proxy::start(&conf);
    let r = proxy.get("vars.test", "/app/page.php");
    assert_eq!(r.status, 200, "{}", r.describe());
    let e = Echo::from_response(&r);
    assert_eq!(
        e.header("X-File"),
        Some(format!("{root_s}/app/page.php").as_str())
    );
    assert_eq!(r.header("X-Upstream-Type"), r.header("Content-Type"));
    assert!(
        r.header("X-Upstream-Type").is_some_and(|t| !t.is_empty()),
        "{}",
        r.describe()
    );
}
