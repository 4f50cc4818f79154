//! nginx's regular expressions (PCRE2) wherever a regex is written: `location ~`/`~*`,
//! `server_name ~`, `rewrite`, `if`. Each pattern is one nginx accepts; the table says which
//! URIs it matches — nginx's answers (the table passes with `JUNCTION_TEST_PROXY=nginx`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

const CONF: &str = r#"
server {
    listen 127.0.0.1:{PORT};
    server_name rx.test;

    location / { return 200 "none"; }
    # look-ahead and look-behind
    location ~ ^/r1/(?!api/) { return 200 "r1"; }
    location ~ "^/r2/.*(?<!\.php)$" { return 200 "r2"; }
    location ~ ^/r3/\d+(?=px) { return 200 "r3"; }
    location ~ "^/r4/.*(?<=\.html)$" { return 200 "r4"; }
    # back-reference, atomic group, possessive quantifier
    location ~ ^/r5/(\w+)/\1$ { return 200 "r5 $1"; }
    location ~ ^/r6/(?>a+)ab { return 200 "r6"; }
    location ~ ^/r7/a++ab { return 200 "r7"; }
    # \Q…\E
    location ~ ^/r8/\Qa.b+c\E$ { return 200 "r8"; }
    # named captures in the three spellings
    location ~ "^/r9/(?<year>\d{4})/(?<slug>[^/]+)$" { return 200 "r9 $year $slug"; }
    location ~ "^/r10/(?'year'\d{4})$" { return 200 "r10 $year"; }
    location ~ "^/r11/(?P<year>\d{4})$" { return 200 "r11 $year"; }
    # ~* is caseless; inline flags
    location ~* ^/r12/.*\.JPG$ { return 200 "r12"; }
    location ~ ^/r13/(?i)abc$ { return 200 "r13"; }
    # POSIX classes, \x escapes, comments
    location ~ ^/r14/[[:digit:]]+$ { return 200 "r14"; }
    location ~ ^/r15/\x41$ { return 200 "r15"; }
    location ~ "^/r16/(?#a comment)x$" { return 200 "r16"; }
    # ASCII \d and byte-wise "." (no UTF mode, as nginx)
    location ~ ^/r17/\d+$ { return 200 "r17"; }
    location ~ ^/r18/.$ { return 200 "r18"; }
    # branch reset, conditional group, lazy quantifier
    location ~ ^/r19/(?|(a)|(b))x$ { return 200 "r19 $1"; }
    location ~ ^/r20/(?(?=a)ab|cd)$ { return 200 "r20"; }
    location ~ ^/r21/(a+?)(a*)$ { return 200 "r21 $1 $2"; }
    # \h (horizontal space), \b
    location ~ ^/r22/a\hb$ { return 200 "r22"; }
    location ~ ^/r23/.*\bword\b { return 200 "r23"; }
    # $ matches before a final newline
    location ~ ^/r24/x$ { return 200 "r24"; }
    # alternation order: leftmost, first alternative
    location ~ ^/r25/(a|ab)(c|bcd)(d*)$ { return 200 "r25 $1 $2 $3"; }
    # back-reference in rewrite, look-behind in if
    location /rw/ {
        rewrite ^/rw/(\w+)-\1$ /dup/$1 last;
        return 200 "rw none";
    }
    location /dup/ { return 200 "dup $uri"; }
    location /if/ {
        if ($uri ~ "(?<!\.php)$") { return 200 "if not php"; }
        return 200 "if php";
    }
}

server {
    listen 127.0.0.1:{PORT};
    server_name ~^\Qwww.q.test\E$;
    return 200 "quoted";
}

server {
    listen 127.0.0.1:{PORT};
    server_name "~^(?<user>[a-z]+)\.(?'zone'[a-z]+)\.names\.test$";
    return 200 "user=$user zone=$zone";
}

server {
    listen 127.0.0.1:{PORT};
    server_name exact.re.test "~^(?<who>[a-z]+)\.re\.test$";
    return 200 "who=$who";
}

server {
    listen 127.0.0.1:{PORT};
    server_name ~^(\w+)\.pos\.test$;
    location / { return 200 "pos $1"; }
}
"#;

const ROWS: &[(&str, &str)] = &[
    ("/r1/web", "r1"),
    ("/r1/api/x", "none"),
    ("/r2/a.html", "r2"),
    ("/r2/a.php", "none"),
    ("/r3/12px", "r3"),
    ("/r3/12em", "none"),
    ("/r4/a.html", "r4"),
    ("/r4/a.htm", "none"),
    ("/r5/ab/ab", "r5 ab"),
    ("/r5/ab/cd", "none"),
    ("/r6/aaab", "none"),
    ("/r7/aaab", "none"),
    ("/r8/a.b+c", "r8"),
    ("/r8/axbbc", "none"),
    ("/r9/2024/hello", "r9 2024 hello"),
    ("/r10/1999", "r10 1999"),
    ("/r11/2001", "r11 2001"),
    ("/R12/A.jpg", "r12"),
    ("/r13/ABC", "r13"),
    ("/r14/123", "r14"),
    ("/r14/12a", "none"),
    ("/r15/A", "r15"),
    ("/r16/x", "r16"),
    ("/r17/42", "r17"),
    // Arabic-Indic digits are not \d for nginx
    ("/r17/%D9%A1", "none"),
    ("/r18/a", "r18"),
    // é is two bytes: "." does not match it whole
    ("/r18/%C3%A9", "none"),
    ("/r19/bx", "r19 b"),
    ("/r20/ab", "r20"),
    ("/r20/cd", "r20"),
    ("/r20/ad", "none"),
    ("/r21/aaa", "r21 a aa"),
    ("/r22/a%20b", "r22"),
    ("/r22/a%09b", "r22"),
    ("/r23/a-word-b", "r23"),
    ("/r23/swordfish", "none"),
    ("/r24/x%0A", "r24"),
    ("/r25/abcd", "r25 a bcd "),
    ("/rw/ab-ab", "dup /dup/ab"),
    ("/rw/ab-cd", "rw none"),
    ("/if/a.html", "if not php"),
    ("/if/a.php", "if php"),
];

#[test]
fn regex_table() {
    let proxy = Proxy::start(CONF);
    let mut failures = Vec::new();
    for (target, want) in ROWS {
        let r = proxy.get("rx.test", target);
        if r.status != 200 || r.text() != *want {
            failures.push(format!(
                "{target:<24} → {} {:?}, want {want:?}",
                r.status,
                r.text()
            ));
        }
    }
    let hosts = [
        ("www.q.test", "quoted"),
        ("wwwxq.test", "none"),
        ("alice.eu.names.test", "user=alice zone=eu"),
        ("bob.pos.test", "pos bob"),
        // chosen by its exact name, the server's regex sets nothing
        ("exact.re.test", "who="),
        ("other.re.test", "who=other"),
    ];
    for (host, want) in hosts {
        let r = proxy.get(host, "/");
        if r.status != 200 || r.text() != want {
            failures.push(format!(
                "Host {host:<24} → {} {:?}, want {want:?}",
                r.status,
                r.text()
            ));
        }
    }
    assert_table("regex", &failures, ROWS.len() + hosts.len());
}

/// `proxy_redirect ~REGEX REPLACEMENT` (and `~*`): the regex is matched against the whole
/// `Location`, which the replacement (with the regex's captures) replaces.
#[test]
fn proxy_redirect_regex() {
    let backend = Peer::python("echo.py", &[]);
    let conf = fill(
        r#"
server {
    listen 127.0.0.1:{PORT};
    server_name pr.test;
    location /a/ {
        proxy_pass http://127.0.0.1:{BACKEND};
        proxy_redirect ~^http://internal\.test(?::\d+)?/(?<rest>.*)$ https://public.test/$rest;
        proxy_redirect ~*^HTTP://other\.test/(\w+)/(.*)$ /moved/$2/$1;
    }
}
"#,
        &[("BACKEND", &backend.port)],
    );
    let proxy = Proxy::start(&conf);
    for (to, want) in [
        (
            "http://internal.test:8080/x/y?z=1",
            "https://public.test/x/y?z=1".to_string(),
        ),
        (
            "http://internal.test/q",
            "https://public.test/q".to_string(),
        ),
        (
            "http://other.test/aa/bb",
            format!("http://pr.test:{}/moved/bb/aa", proxy.port),
        ),
        (
            "http://untouched.test/p",
            "http://untouched.test/p".to_string(),
        ),
    ] {
        let r = proxy.get("pr.test", &format!("/a/redirect?to={to}"));
        assert_eq!(r.status, 302, "{}", r.describe());
        assert_eq!(
            r.header("Location"),
            Some(want.as_str()),
            "{to}: {}",
            r.describe()
        );
    }
}
