//! `map` (ngx_http_map_module): exact keys, `hostnames` masks, regexes with captures,
//! `default`, `include`, `volatile`, values with variables; and the map every WebSocket
//! guide uses for `Connection`. Every expectation is nginx's answer (the tables pass with
//! `JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = r#"
map $arg_k $exact {
    default      "dflt";
    foo          "is-foo";
    Bar          "is-bar";
    \default     "literal-default";
    ""           "empty";
}

map $http_host $site {
    hostnames;
    default            "other";
    example.com        "exact";
    *.example.com      "wild-example";
    *.api.example.com  "wild-api";
    .example.org       "dot-org";
    www.example.*      "tail-www";
}

map $http_host $late {
    *.late.test  "mask";
    hostnames;
    .after.test  "after";
    default      "none";
}

map $uri $re {
    default                              "none";
    ~^/user/(\d+)/(\w+)$                 "user $1 $2";
    "~^/post/(?<year>\d{4})/(?'s'\w+)$"  "post $year $s";
    ~*\.JPG$                             "image";
    ~^/user/                             "user-other";
}

map $arg_v $withvar {
    default  "host=$host uri=$uri";
    plain    "plain";
    self     $arg_v-$request_method;
}

map $uri $twice { default "first"; }
map $uri $twice { default "second"; }

map $re $chained {
    default  "chained:$re";
}

map $arg_i $included {
    default  "not-included";
    include  {DIR}/map.inc;
}

map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

server {
    listen 127.0.0.1:{PORT};
    server_name map.test example.com;

    location /exact { return 200 "$exact"; }
    location /site { return 200 "$site"; }
    location /late { return 200 "$late"; }
    location /user/ { return 200 "$re"; }
    location /post/ { return 200 "$re"; }
    location /img/ { return 200 "$re|$chained"; }
    location /nomatch { return 200 "$re"; }
    location /var { return 200 "$withvar"; }
    location /inc { return 200 "$included"; }
    location /twice { return 200 "$twice"; }
    location /ws {
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_pass http://127.0.0.1:{BACKEND};
    }
}
"#;

/// (Host, target, expected body)
const ROWS: &[(&str, &str, &str)] = &[
    ("map.test", "/exact?k=foo", "is-foo"),
    // keys are case-insensitive
    ("map.test", "/exact?k=FOO", "is-foo"),
    ("map.test", "/exact?k=bar", "is-bar"),
    ("map.test", "/exact?k=zzz", "dflt"),
    ("map.test", "/exact?k=default", "literal-default"),
    ("map.test", "/exact", "empty"),
    // hostnames: exact, then the longest leading mask, then the trailing one
    ("example.com", "/site", "exact"),
    ("a.example.com", "/site", "wild-example"),
    ("x.api.example.com", "/site", "wild-api"),
    ("example.org", "/site", "dot-org"),
    ("a.b.example.org", "/site", "dot-org"),
    ("www.example.net", "/site", "tail-www"),
    ("www.example.com", "/site", "wild-example"),
    ("nothing.test", "/site", "other"),
    // `hostnames` applies to the masks after it; one before it is an exact key
    ("a.late.test", "/late", "none"),
    ("a.after.test", "/late", "after"),
    // regexes in order, captures in the value (positional and named)
    ("map.test", "/user/42/bob", "user 42 bob"),
    ("map.test", "/user/x", "user-other"),
    ("map.test", "/post/2024/hello", "post 2024 hello"),
    ("map.test", "/img/A.jpg", "image|chained:image"),
    ("map.test", "/nomatch", "none"),
    // values with variables; a map's value may read another map
    ("map.test", "/var?v=plain", "plain"),
    ("map.test", "/var?v=self", "self-GET"),
    ("map.test", "/var", "host=map.test uri=/var"),
    // include inside a map
    ("map.test", "/inc?i=one", "from-include-1"),
    ("map.test", "/inc?i=two", "from-include-2"),
    ("map.test", "/inc?i=three", "not-included"),
    // a second map of the same variable replaces the first
    ("map.test", "/twice", "second"),
];

#[test]
fn map_table() {
    let backend = Peer::python("echo.py", &[]);
    let conf = fill(CONF, &[("BACKEND", &backend.port)]);
    let inc = "one from-include-1;\ntwo from-include-2;\n";
    let proxy = Proxy::start_files(
        &[("junction.conf", &conf), ("map.inc", inc)],
        "junction.conf",
    );
    let mut failures = Vec::new();
    for (host, target, want) in ROWS {
        let r = proxy.get(host, target);
        if r.status != 200 || r.text() != *want {
            failures.push(format!(
                "{host:<20} {target:<20} → {} {:?}, want {want:?}",
                r.status,
                r.text()
            ));
        }
    }
    // The WebSocket guide's map: `Connection: upgrade` when the client asks to upgrade,
    // `close` otherwise.
    let r = proxy.get("map.test", "/ws");
    let e = Echo::from_response(&r);
    if e.header("Connection") != Some("close") || e.header("Upgrade").is_some() {
        failures.push(format!("no Upgrade: backend saw {:?}", e.headers));
    }
    let r = proxy.request(
        b"GET /ws HTTP/1.1\r\nHost: map.test\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    );
    let e = Echo::from_response(&r);
    if e.header("Connection") != Some("upgrade") || e.header("Upgrade") != Some("websocket") {
        failures.push(format!("Upgrade: backend saw {:?}", e.headers));
    }
    assert_table("map", &failures, ROWS.len() + 2);
}

#[test]
fn map_errors_at_load() {
    for (conf, want) in [
        (
            "map $uri $host { default 1; }\nserver { listen 127.0.0.1:1; }",
            "the duplicate \"host\" variable",
        ),
        (
            "map $uri $a { ~(x 1; }\nserver { listen 127.0.0.1:1; }",
            "pcre2_compile() failed: missing closing parenthesis",
        ),
        (
            "map $uri $a { x 1 2; }\nserver { listen 127.0.0.1:1; }",
            "invalid number of the map parameters",
        ),
        (
            "map $uri $a { x 1; x 2; }\nserver { listen 127.0.0.1:1; }",
            "conflicting parameter \"x\"",
        ),
    ] {
        let (out, _dir) = check_config(&[("j.conf", conf)], "j.conf");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, Some(0), "{conf} loaded:\n{text}");
        assert!(text.contains(want), "{conf}: want {want:?} in\n{text}");
        assert!(text.contains("j.conf:"), "{conf}: FILE:LINE in\n{text}");
    }
}

/// A map is computed once per request, when first read (unless `volatile`): a second
/// read in the same request sees the cached value even after its source changed.
#[test]
fn map_value_is_cached_for_the_request_unless_volatile() {
    let conf = r#"
map $args $cached { default "[$args]"; }
map $args $fresh { volatile; default "[$args]"; }
server {
    listen 127.0.0.1:{PORT};
    server_name cache.test;
    location / {
        set $first $cached;
        set $firstv $fresh;
        set $args "changed";
        return 200 "$first $cached $firstv $fresh";
    }
}
"#;
    let proxy = Proxy::start(conf);
    let r = proxy.get("cache.test", "/?orig");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "[orig] [orig] [orig] [changed]"),
        "{}",
        r.describe()
    );
}
