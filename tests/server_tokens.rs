//! `server_tokens on|off|build` (nginx OSS) and `server_tokens "STRING"` (nginx Plus's
//! form, Junction-only here: nginx OSS refuses it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = "
server {
    listen 127.0.0.1:{PORT};
    location /on/ { return 200 on; }
    location /build/ { server_tokens build; return 200 build; }
    location /off/ { server_tokens off; return 200 off; }
}
";

#[test]
fn build_shows_the_version_like_on() {
    let proxy = Proxy::start(CONF);
    let on = proxy.get("st.test", "/on/");
    let build = proxy.get("st.test", "/build/");
    let off = proxy.get("st.test", "/off/");
    let on_server = on.header("Server").unwrap().to_string();
    assert!(
        on_server.starts_with(&format!("{}/", product())),
        "{on_server}"
    );
    assert_eq!(build.header("Server"), Some(on_server.as_str()));
    assert_eq!(off.header("Server"), Some(product()));
}

#[test]
fn a_bare_word_is_an_error_and_a_string_sets_the_server_header() {
    let (out, _dir) = check_config(
        &[(
            "site.conf",
            "server {\n    listen 127.0.0.1:8080;\n    server_tokens sometimes;\n}\n",
        )],
        "site.conf",
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    if proxy_kind() == Kind::Nginx {
        eprintln!("server_tokens \"STRING\" is nginx Plus's: skipped on nginx OSS");
        return;
    }
    let proxy = Proxy::start(
        "server {
    listen 127.0.0.1:{PORT};
    server_tokens \"edge-$server_port\";
    location /x/ { return 200 x; }
    location /none/ { server_tokens \"\"; return 200 none; }
    location /off/ { server_tokens off; return 200 off; }
}
",
    );
    let r = proxy.get("st.test", "/x/");
    assert_eq!(
        r.header("Server"),
        Some(format!("edge-{}", proxy.port).as_str())
    );
    assert_eq!(proxy.get("st.test", "/none/").header("Server"), None);
    assert_eq!(
        proxy.get("st.test", "/off/").header("Server"),
        Some("junction")
    );
}
