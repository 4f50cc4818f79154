//! ngx_http_rewrite_module: `rewrite` (flags, arguments, captures, redirects, the `last`
//! loop limit, server- vs location-level order, with `proxy_pass`), `return` (every form,
//! `444`), `if` (every condition, the if-location's inheritance) and `set`/`break`.
//! Every expectation is nginx's answer: the tables pass with `JUNCTION_TEST_PROXY=nginx`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// What a row expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// 200 with this body.
    Body(&'static str),
    /// This status and a `Location` equal to this (`{PORT}` filled in).
    Redirect(u16, &'static str),
    /// Only this status.
    Status(u16),
}

use Want::*;

fn check(proxy: &Proxy, host: &str, rows: &[(&str, Want)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (target, want) in rows {
        let r = proxy.get(host, target);
        let ok = match want {
            Body(b) => r.status == 200 && r.text() == *b,
            Redirect(code, loc) => {
                let loc = loc.replace("{PORT}", &proxy.port.to_string());
                r.status == *code && r.header("Location") == Some(loc.as_str())
            }
            Status(code) => r.status == *code,
        };
        if !ok {
            failures.push(format!(
                "{target:<32} → {} {:?} Location={:?}, want {want:?}",
                r.status,
                r.text().chars().take(80).collect::<String>(),
                r.header("Location")
            ));
        }
    }
    failures
}

const REWRITE: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name rw.test;
    root {ROOT};

    # server level: before the location search, once per request
    rewrite ^/srv/(.*)$ /show/srv-$1;
    rewrite ^/srvlast/(.*)$ /show/srvlast-$1 last;
    rewrite ^/srvbreak/(.*)$ /show/srvbreak-$1 break;
    rewrite ^/order/first$ /order/second;

    location /show/ { return 200 "show uri=$uri args=$args"; }

    location /order/ { rewrite ^/order/(.*)$ /show/loc-$1; }

    location /a/ { rewrite ^/a/(\w+)/(\d+)$ /show/$2/$1; }

    location /flags/ {
        rewrite ^/flags/last$ /show/last last;
        rewrite ^/flags/next$ /show/next;
        return 200 "flags uri=$uri";
    }

    location /brk/ {
        rewrite ^/brk/(.*)$ /$1 break;
        return 200 "not reached";
    }

    location /brkd/ {
        rewrite ^/brkd/(.*)$ /b-$1;
        break;
        return 200 "not reached";
    }

    location /args/ {
        rewrite ^/args/keep$ /show/keep;
        rewrite ^/args/new$ /show/new?x=1;
        rewrite ^/args/drop$ /show/drop?;
        rewrite ^/args/newdrop$ /show/newdrop?x=1?;
        rewrite ^/args/cap/(\w+)$ /show/cap?v=$1;
    }

    location /redir/ {
        rewrite ^/redir/temp/(.*)$ /show/$1 redirect;
        rewrite ^/redir/perm/(.*)$ /show/$1 permanent;
        rewrite ^/redir/abs/(.*)$ http://example.com/$1;
        rewrite ^/redir/https/(.*)$ https://secure.test/$1;
        rewrite ^/redir/scheme/(.*)$ $scheme://other.test/$1;
        rewrite ^/redir/args/(.*)$ http://example.com/$1?y=2;
        rewrite ^/redir/noargs/(.*)$ http://example.com/$1?;
        rewrite ^/redir/lastflag/(.*)$ http://example.com/$1 last;
    }

    location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 last; }

    location /count/ {
        rewrite ^/count/\d(.*)$ /count/$1 last;
        return 200 "count $uri";
    }

    location /named/ {
        rewrite ^/named/(?<a>\w+)-(?'b'\w+)-(?P<c>\w+)$ /show/$c/$b/$a;
    }

    location /backref/ { rewrite ^/backref/(\w+)-\1$ /show/dup-$1; }

    location /nomatch/ {
        rewrite ^/nomatch/zzz$ /show/zzz;
        rewrite ^/nomatch/(.*)$ /show/second-$1;
    }

    location /setrw/ {
        set $v hello;
        rewrite ^ /show/$v-$uri;
    }

    location /rf/ {
        rewrite ^/rf/(.*)$ /$1;
        if (-f $request_filename) { return 200 "file $uri"; }
        return 200 "nofile $uri";
    }

    location /p1/ { return 302 relative/path; }
    location /p2/ { rewrite ^ $scheme://secure.test$request_uri? permanent; }
    location /p3/ {
        if ($args ~ "(^|&)id=(\d+)") { return 200 "id=$2"; }
        return 200 "no id";
    }
    location ~ ^/p5/(\d+)$ { rewrite ^ /show/[$1]; }
    location /p6/ {
        set $args "a=1";
        rewrite ^/p6/(.*)$ /show/$1;
    }

    location /tonamed/ { try_files /nonexistent @rw; }
    location @rw { rewrite ^/tonamed/(.*)$ /show/named-$1; }

    location /ifbreak/ {
        if ($arg_b) {
            rewrite ^/ifbreak/(.*)$ /show/ifb-$1;
            break;
        }
        rewrite ^/ifbreak/(.*)$ /show/after-$1;
    }

    location /enc/ {
        rewrite ^/enc/redir/(.*)$ /show/$1 redirect;
        rewrite ^/enc/int/(.*)$ /show/$1;
        rewrite ^/enc/args/(.*)$ /show/q?v=$1;
    }

    location /app/ {
        rewrite ^/app/(.*)$ /backend/$1 break;
        proxy_pass http://127.0.0.1:{BACKEND};
    }

    location /app2/ {
        rewrite ^/app2/(.*)$ /v2/$1?via=rw break;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
"#;

const REWRITE_ROWS: &[(&str, Want)] = &[
    // server-level rewrites, before the location search
    ("/srv/x", Body("show uri=/show/srv-x args=")),
    ("/srv/x?a=1", Body("show uri=/show/srv-x args=a=1")),
    ("/srvlast/y", Body("show uri=/show/srvlast-y args=")),
    ("/srvbreak/z", Body("show uri=/show/srvbreak-z args=")),
    // server level first, then the location found for its result rewrites again
    ("/order/first", Body("show uri=/show/loc-second args=")),
    ("/order/other", Body("show uri=/show/loc-other args=")),
    // captures; no flag: the location is searched again after the location's script
    ("/a/foo/42", Body("show uri=/show/42/foo args=")),
    ("/flags/last", Body("show uri=/show/last args=")),
    // no flag: the script goes on (the return sees the new URI)
    ("/flags/next", Body("flags uri=/show/next")),
    ("/flags/none", Body("flags uri=/flags/none")),
    // break: the URI changes, the request stays in the location (static file)
    ("/brk/hello.txt", Body("hello file\n")),
    ("/brkd/file", Body("b-file\n")),
    // arguments
    ("/args/keep?orig=2", Body("show uri=/show/keep args=orig=2")),
    ("/args/new", Body("show uri=/show/new args=x=1")),
    (
        "/args/new?orig=2",
        Body("show uri=/show/new args=x=1&orig=2"),
    ),
    ("/args/drop?orig=2", Body("show uri=/show/drop args=")),
    (
        "/args/newdrop?orig=2",
        Body("show uri=/show/newdrop args=x=1"),
    ),
    ("/args/cap/abc", Body("show uri=/show/cap args=v=abc")),
    // redirects
    (
        "/redir/temp/p?q=1",
        Redirect(302, "http://rw.test:{PORT}/show/p?q=1"),
    ),
    (
        "/redir/perm/p",
        Redirect(301, "http://rw.test:{PORT}/show/p"),
    ),
    (
        "/redir/abs/p?q=1",
        Redirect(302, "http://example.com/p?q=1"),
    ),
    ("/redir/https/p", Redirect(302, "https://secure.test/p")),
    ("/redir/scheme/p", Redirect(302, "http://other.test/p")),
    (
        "/redir/args/p?q=1",
        Redirect(302, "http://example.com/p?y=2&q=1"),
    ),
    ("/redir/noargs/p?q=1", Redirect(302, "http://example.com/p")),
    ("/redir/lastflag/p", Redirect(302, "http://example.com/p")),
    // `last` loops: 10 URI changes are allowed, the 11th is a 500
    ("/loop/x", Status(500)),
    ("/count/1234567890", Body("count /count/")),
    ("/count/12345678901", Status(500)),
    // named captures in all three spellings; back-references
    ("/named/x-y-z", Body("show uri=/show/z/y/x args=")),
    ("/backref/ab-ab", Body("show uri=/show/dup-ab args=")),
    ("/backref/ab-cd", Status(404)),
    // a rewrite that does not match goes on to the next one
    ("/nomatch/q", Body("show uri=/show/second-q args=")),
    ("/setrw/k", Body("show uri=/show/hello-/setrw/k args=")),
    // $request_filename follows a rewrite made earlier in the script
    ("/rf/hello.txt", Body("file /hello.txt")),
    ("/rf/none.txt", Body("nofile /none.txt")),
    // a return URL not starting with / stays as written
    ("/p1/x", Redirect(302, "relative/path")),
    // the http→https idiom: $request_uri carries the arguments, the `?` drops the copy
    ("/p2/x?q=1", Redirect(301, "http://secure.test/p2/x?q=1")),
    // captures of an if regex on $args
    ("/p3/?x=1&id=42", Body("id=42")),
    // a rewrite's $1 is its own regex's group (none for ^), not the location's
    ("/p5/7", Body("show uri=/show/[] args=")),
    // `set $args` before a rewrite: the new arguments are kept
    ("/p6/x?orig=1", Body("show uri=/show/x args=a=1")),
    // a named location's rewrite searches the locations again
    ("/tonamed/x", Body("show uri=/show/named-x args=")),
    // `break` inside an if: the rewrite before it holds, the request stays (static 404)
    ("/ifbreak/x?b=1", Status(404)),
    ("/ifbreak/x", Body("show uri=/show/after-x args=")),
    // captures are decoded ($uri); an internal rewrite keeps them so
    ("/enc/int/a%20b", Body("show uri=/show/a b args=")),
    // … but escapes those it copies into the arguments
    (
        "/enc/args/a%26b%20c",
        Body("show uri=/show/q args=v=a%26b%20c"),
    ),
    ("/enc/args/plain", Body("show uri=/show/q args=v=plain")),
    // a redirect escapes the captures of an encoded request again (nginx's quoting)
    (
        "/enc/redir/a%20b?q=%41",
        Redirect(302, "http://rw.test:{PORT}/show/a%20b?q=%41"),
    ),
    (
        "/enc/redir/a+b",
        Redirect(302, "http://rw.test:{PORT}/show/a+b"),
    ),
    (
        "/enc/redir/caf%C3%A9",
        Redirect(302, "http://rw.test:{PORT}/show/caf%C3%A9"),
    ),
    (
        "/enc/redir/a%2Fb",
        Redirect(302, "http://rw.test:{PORT}/show/a/b"),
    ),
];

#[test]
fn rewrite_table() {
    let backend = Peer::python("echo.py", &[]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello.txt"), "hello file\n").unwrap();
    std::fs::write(root.path().join("b-file"), "b-file\n").unwrap();
    let conf = fill(
        REWRITE,
        &[("ROOT", &root.path().display()), ("BACKEND", &backend.port)],
    );
    let proxy = Proxy::start(&conf);
    let mut failures = check(&proxy, "rw.test", REWRITE_ROWS);
    // rewrite + proxy_pass without a URI: the rewritten URI (and arguments) go upstream
    for (target, want) in [
        ("/app/foo?q=1", "/backend/foo?q=1"),
        ("/app/a%20b", "/backend/a%20b"),
        ("/app2/x?q=1", "/v2/x?via=rw&q=1"),
    ] {
        let r = proxy.get("rw.test", target);
        let got = if r.status == 200 {
            Echo::from_response(&r).path
        } else {
            format!("status {}", r.status)
        };
        if got != want {
            failures.push(format!("{target} → upstream saw {got:?}, want {want:?}"));
        }
    }
    assert_table("rewrite", &failures, REWRITE_ROWS.len() + 3);
    if proxy_kind() == Kind::Junction {
        let log = proxy.error_log();
        assert!(
            log.contains("rewrite or internal redirection cycle while processing \"/loop/x\""),
            "{log}"
        );
    }
}

const IF: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name if.test;
    root {ROOT};

    if ($http_x_block = "yes") { return 403; }

    location /show/ { return 200 "show uri=$uri args=$args"; }

    location /var/ {
        if ($arg_a) { return 200 "var-true"; }
        return 200 "var-false";
    }
    location /empty/ {
        if ($arg_a = "") { return 200 "empty"; }
        if ( $arg_a != "" ) { return 200 "set"; }
    }
    location /eq/ {
        if ($arg_a = "x") { return 200 "eq"; }
        if ($arg_a != "x") { return 200 "ne"; }
    }
    location /re/ {
        if ($uri ~ ^/re/(\d+)$) { return 200 "digits $1"; }
        if ($uri ~* \.JPG$) { return 200 "jpg"; }
        if ($uri !~ ^/re/keep) { return 200 "notkeep"; }
        return 200 "keep";
    }
    location /ua/ {
        if ($http_user_agent !~* bot) { return 200 "human"; }
        return 200 "bot";
    }
    location /named/ {
        if ($uri ~ ^/named/(?<first>[a-z]+)) { return 200 "first=$first"; }
    }
    location /files/ {
        if (-f $request_filename) { return 200 "file"; }
        if (-d $request_filename) { return 200 "dir"; }
        if (!-e $request_filename) { return 200 "missing"; }
        return 200 "other";
    }
    location /x/ {
        if (-x $request_filename) { return 200 "exec"; }
        if (!-x $request_filename) { return 200 "noexec"; }
    }
    location /notf/ {
        if (!-f $request_filename) { return 200 "not-file"; }
        if (!-d $request_filename) { return 200 "not-dir"; }
    }
    location /post/ {
        if ($request_method = POST) { return 405; }
        return 200 "not post";
    }
    location /setif/ {
        set $v a;
        if ($arg_b) { set $v b; }
        return 200 "v=$v";
    }
    location /front/ {
        if (!-e $request_filename) {
            rewrite ^/front/(.*)$ /show/front?path=$1 last;
        }
    }
    location /evil/ {
        if ($arg_up) { proxy_pass http://127.0.0.1:{BACKEND}; }
        return 200 "the script goes on after the if";
    }
    location /ifpass/ {
        if ($arg_up) { proxy_pass http://127.0.0.1:{BACKEND}; }
    }
    location /inherit/ {
        proxy_pass http://127.0.0.1:{BACKEND};
        add_header X-Outer outer;
        if ($arg_tag) { add_header X-Inner inner; }
        if ($arg_plain) { set $x 1; }
    }
    location /ep/ {
        error_page 418 = @teapot;
        if ($arg_t) { return 418; }
        return 200 "no";
    }
    location @teapot { return 200 "teapot handler"; }
    location /agent/ {
        if ($http_user_agent ~* (curl|wget)) { return 403; }
        return 200 "agent ok";
    }
    location /al/ {
        alias {ROOT}/files/;
        if ($arg_x) { add_header X-If yes; }
    }
    location /tfif/ {
        try_files /nonexistent /show/tf;
        if ($arg_x) { add_header X-If yes; }
    }
    location /ret/ {
        location /ret/text { return 200 "text $uri"; }
        location /ret/code { return 404; }
        location /ret/url { return http://example.com/r; }
        location /ret/rel { return 301 /show/moved; }
        location /ret/307 { return 307 https://example.com/t; }
        location /ret/204 { return 204; }
        location /ret/418 { return 418 "teapot"; }
    }
}

server {
    listen 127.0.0.1:{PORT};
    server_name srvif.test;
    root {ROOT};
    if (!-e $request_filename) { rewrite ^/(.*)$ /show/$1 last; }
    location /show/ { return 200 "show uri=$uri"; }
    location / { return 200 "exists $uri"; }
}

server {
    listen 127.0.0.1:{PORT2} default_server;
    return 444;
}
server {
    listen 127.0.0.1:{PORT2};
    server_name known.test;
    return 200 "known";
}
"#;

const IF_ROWS: &[(&str, Want)] = &[
    ("/var/?a=1", Body("var-true")),
    ("/var/?a=0", Body("var-false")),
    ("/var/?a=", Body("var-false")),
    ("/var/", Body("var-false")),
    ("/empty/", Body("empty")),
    ("/empty/?a=1", Body("set")),
    ("/eq/?a=x", Body("eq")),
    ("/eq/?a=y", Body("ne")),
    ("/re/123", Body("digits 123")),
    ("/re/a.jpg", Body("jpg")),
    ("/re/other", Body("notkeep")),
    ("/re/keep", Body("keep")),
    ("/named/abc123", Body("first=abc")),
    ("/files/f.txt", Body("file")),
    ("/files/sub", Body("dir")),
    ("/files/nope", Body("missing")),
    ("/x/run.sh", Body("exec")),
    ("/x/plain.txt", Body("noexec")),
    ("/notf/", Body("not-file")),
    ("/notf/f.txt", Body("not-dir")),
    ("/post/", Body("not post")),
    ("/setif/", Body("v=a")),
    ("/setif/?b=1", Body("v=b")),
    // WordPress' front controller: missing files go to the app
    (
        "/front/a/b?q=1",
        Body("show uri=/show/front args=path=a/b&q=1"),
    ),
    // the script goes on after an if block; if's proxy_pass is only the content handler
    ("/evil/?up=1", Body("the script goes on after the if")),
    ("/ifpass/", Status(404)),
    // the if-location inherits error_page
    ("/ep/?t=1", Body("teapot handler")),
    ("/ep/", Body("no")),
    // an if-location keeps the location's alias …
    ("/al/f.txt", Body("f")),
    ("/al/f.txt?x=1", Body("f")),
    // … but not its try_files (nginx's "if is evil": the if's own location has none)
    ("/tfif/a", Body("show uri=/show/tf args=")),
    ("/tfif/a?x=1", Status(404)),
    // return in every form
    ("/ret/text", Body("text /ret/text")),
    ("/ret/code", Status(404)),
    ("/ret/url", Redirect(302, "http://example.com/r")),
    (
        "/ret/rel",
        Redirect(301, "http://if.test:{PORT}/show/moved"),
    ),
    ("/ret/307", Redirect(307, "https://example.com/t")),
    ("/ret/204", Status(204)),
];

fn if_setup() -> (Peer, tempfile::TempDir, Proxy) {
    let backend = Peer::python("echo.py", &[]);
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    for d in ["files/sub", "x", "notf"] {
        std::fs::create_dir_all(p.join(d)).unwrap();
    }
    std::fs::write(p.join("files/f.txt"), "f").unwrap();
    std::fs::write(p.join("notf/f.txt"), "f").unwrap();
    std::fs::write(p.join("x/plain.txt"), "p").unwrap();
    std::fs::write(p.join("x/run.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.join("x/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = fill(IF, &[("ROOT", &p.display()), ("BACKEND", &backend.port)]);
    let proxy = Proxy::start(&conf);
    (backend, root, proxy)
}

#[test]
fn if_and_return_table() {
    let (_backend, _root, proxy) = if_setup();
    let mut failures = check(&proxy, "if.test", IF_ROWS);
    let mut extra = 0;
    let mut row = |what: &str, ok: bool, got: String| {
        extra += 1;
        if !ok {
            failures.push(format!("{what}: {got}"));
        }
    };
    // a regex with parentheses ending the condition
    let r = proxy.request(b"GET /agent/ HTTP/1.1\r\nHost: if.test\r\nUser-Agent: Wget/1.2\r\nConnection: close\r\n\r\n");
    row("agent wget → 403", r.status == 403, r.describe());
    let r = proxy.request(b"GET /agent/ HTTP/1.1\r\nHost: if.test\r\nUser-Agent: Firefox\r\nConnection: close\r\n\r\n");
    row(
        "agent firefox",
        r.status == 200 && r.text() == "agent ok",
        r.describe(),
    );
    // server-level if, before any location
    let r = proxy.request(
        b"GET /show/x HTTP/1.1\r\nHost: if.test\r\nX-Block: yes\r\nConnection: close\r\n\r\n",
    );
    row("server-level if → 403", r.status == 403, r.describe());
    // the classic POST guard
    let r = proxy.request(
        b"POST /post/ HTTP/1.1\r\nHost: if.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    row("POST → 405", r.status == 405, r.describe());
    // ~* and !~* on a header
    let r = proxy.request(b"GET /ua/ HTTP/1.1\r\nHost: if.test\r\nUser-Agent: GoogleBOT/2\r\nConnection: close\r\n\r\n");
    row("UA bot", r.status == 200 && r.text() == "bot", r.describe());
    let r = proxy.request(
        b"GET /ua/ HTTP/1.1\r\nHost: if.test\r\nUser-Agent: Firefox\r\nConnection: close\r\n\r\n",
    );
    row(
        "UA human",
        r.status == 200 && r.text() == "human",
        r.describe(),
    );
    // proxy_pass inside if, for requests that enter it
    let r = proxy.get("if.test", "/ifpass/x?up=1");
    row(
        "if proxy_pass",
        r.status == 200 && Echo::from_response(&r).path == "/ifpass/x?up=1",
        r.describe(),
    );
    // the if-location inherits proxy_pass; add_header of its own replaces the outer ones
    let r = proxy.get("if.test", "/inherit/a?tag=1");
    row(
        "if inherits proxy_pass, own add_header",
        r.status == 200
            && Echo::from_response(&r).path == "/inherit/a?tag=1"
            && r.header("X-Inner") == Some("inner")
            && r.header("X-Outer").is_none(),
        r.describe(),
    );
    let r = proxy.get("if.test", "/inherit/a?plain=1");
    row(
        "if inherits proxy_pass and add_header",
        r.status == 200
            && Echo::from_response(&r).path == "/inherit/a?plain=1"
            && r.header("X-Outer") == Some("outer"),
        r.describe(),
    );
    let r = proxy.get("if.test", "/inherit/a");
    row(
        "outer location",
        r.status == 200 && r.header("X-Outer") == Some("outer"),
        r.describe(),
    );
    // a server-level front controller: `$request_filename` under the server's root
    for (target, want) in [
        ("/files/f.txt", "exists /files/f.txt"),
        ("/nope/x", "show uri=/show/nope/x"),
    ] {
        let r = proxy.get("srvif.test", target);
        row(
            &format!("server-level if {target}"),
            r.status == 200 && r.text() == want,
            r.describe(),
        );
    }
    // return with a text for a status of 400 and up
    let r = proxy.get("if.test", "/ret/418");
    row(
        "return 418 text",
        r.status == 418 && r.text() == "teapot",
        r.describe(),
    );
    assert_table("if/return", &failures, IF_ROWS.len() + extra);
}

#[test]
fn return_444_closes_the_connection_without_a_response() {
    let (_backend, _root, proxy) = if_setup();
    let port2 = proxy.ports[1];
    // the catch-all default server drops unknown hosts …
    let got = raw_exchange(
        port2,
        b"GET / HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n",
    );
    assert!(
        got.is_empty(),
        "444 sent bytes: {:?}",
        String::from_utf8_lossy(&got)
    );
    // … even on a keep-alive connection; a known name is served
    let got = raw_exchange(port2, b"GET / HTTP/1.1\r\nHost: unknown.test\r\n\r\n");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let r = http_request(
        port2,
        b"GET / HTTP/1.1\r\nHost: known.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "known"));
}

#[test]
fn rewrite_and_if_errors_at_load() {
    for (conf, want) in [
        (
            "server { listen 127.0.0.1:1; location / { rewrite ^/(a $1; } }",
            "pcre2_compile() failed: missing closing parenthesis in \"^/(a\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { rewrite ^/a /b bogus; } }",
            "invalid parameter \"bogus\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { if ($uri) return 200; } }",
            "",
        ),
        (
            "server { listen 127.0.0.1:1; location / { if ($uri = ) { return 200; } } }",
            "",
        ),
        (
            "server { listen 127.0.0.1:1; location / { if (-q $uri) { return 200; } } }",
            "invalid condition \"-q\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { if ($uri ~ \"(x\") { return 200; } } }",
            "pcre2_compile() failed: missing closing parenthesis in \"(x\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { return abc; } }",
            "invalid return code \"abc\"",
        ),
        (
            "server { listen 127.0.0.1:1; location / { if ($uri) { proxy_pass http://127.0.0.1:1/x; } } }",
            "\"proxy_pass\" cannot have URI part",
        ),
        (
            "server { listen 127.0.0.1:1; location ~ \"^/(?<n>\" { } }",
            "pcre2_compile() failed: ",
        ),
    ] {
        let (out, _dir) = check_config(&[("j.conf", conf)], "j.conf");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, Some(0), "{conf} loaded:\n{text}");
        assert!(text.contains(want), "{conf}: want {want:?} in\n{text}");
        assert!(text.contains("j.conf:1"), "{conf}: FILE:LINE in\n{text}");
    }
}

/// `rewrite_log on` logs each rewrite regex's match and the rewritten URI to the error
/// log (nginx: at `notice`).
#[test]
fn rewrite_log_reports_matches_and_results() {
    // A full nginx.conf, for a main-level `error_log … info` (nginx logs these at notice).
    let conf = r#"
error_log {DIR}/error.log info;
events {}
http {
    server {
        listen 127.0.0.1:{PORT};
        server_name log.test;
        rewrite_log on;
        location /show/ { return 200 "show $uri"; }
        location /logme/ {
            rewrite ^/logme/nomatch$ /show/never;
            rewrite ^/logme/(.*)$ /show/$1;
        }
    }
}
"#;
    let proxy = Proxy::start_files(&[("junction.conf", conf)], "junction.conf");
    let r = proxy.get("log.test", "/logme/x");
    assert_eq!((r.status, r.text().as_str()), (200, "show /show/x"));
    for needle in [
        "\"^/logme/nomatch$\" does not match \"/logme/x\"",
        "\"^/logme/(.*)$\" matches \"/logme/x\"",
        "rewritten data: \"/show/x\", args: \"\"",
    ] {
        proxy
            .wait_error_log(needle, std::time::Duration::from_secs(5))
            .unwrap_or_else(|log| panic!("{needle:?} not in the error log:\n{log}"));
    }
}

/// A `set` variable read before any `set` assigned it is empty and logged, unless
/// `uninitialized_variable_warn off`.
#[test]
fn uninitialized_variable_warn() {
    let conf = r#"
error_log {DIR}/error.log info;
events {}
http {
    server {
        listen 127.0.0.1:{PORT};
        server_name warn.test;
        location /on { return 200 "[$never_on]"; set $never_on x; }
        location /off {
            uninitialized_variable_warn off;
            return 200 "[$never_off]";
            set $never_off x;
        }
    }
}
"#;
    let proxy = Proxy::start_files(&[("junction.conf", conf)], "junction.conf");
    let r = proxy.get("warn.test", "/off");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    let r = proxy.get("warn.test", "/on");
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    let log = proxy
        .wait_error_log(
            "using uninitialized \"never_on\" variable",
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_else(|log| panic!("no warning in:\n{log}"));
    assert!(!log.contains("never_off"), "{log}");
}
