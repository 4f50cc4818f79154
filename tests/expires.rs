//! `expires` (ngx_http_headers_filter_module) on a table: every form (`TIME`, `-TIME`,
//! `0`, `epoch`, `max`, `off`, `modified TIME`, `@TIME`, a `set` variable), static files
//! and proxied responses, and the statuses nginx sets it on (and the ones it does not).
//! `@TIME` is compared in UTC: the tests assume the machine's time zone is UTC, as CI's is
//! (nginx uses local time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CONF: &str = "
server {
    listen 127.0.0.1:{PORT};
    root {ROOT};
    location /s/1h/ { alias {ROOT}/; expires 1h; }
    location /s/30d/ { alias {ROOT}/; expires 30d; }
    location /s/epoch/ { alias {ROOT}/; expires epoch; }
    location /s/max/ { alias {ROOT}/; expires max; }
    location /s/zero/ { alias {ROOT}/; expires 0; }
    location /s/neg/ { alias {ROOT}/; expires -1h; }
    location /s/off/ { alias {ROOT}/; expires off; }
    location /s/modpast/ { alias {ROOT}/; expires modified +2h; }
    location /s/modfuture/ { alias {ROOT}/; expires modified 30d; }
    location /s/daily/ { alias {ROOT}/; expires @15h30m; }
    location /s/var/ { alias {ROOT}/; set $exp 2h; expires $exp; }
    location /s/varmax/ { alias {ROOT}/; set $exp max; expires $exp; }
    location /s/varoff/ { alias {ROOT}/; set $exp off; expires $exp; }
    location /s/varbad/ { alias {ROOT}/; set $exp soon; expires $exp; }
    location /s/varmod/ { alias {ROOT}/; set $exp 30d; expires modified $exp; }
    location /p/ { expires 1h; proxy_pass http://127.0.0.1:{B}/; }
    location /pm/ { expires modified 1d; proxy_pass http://127.0.0.1:{B}/; }
    location /inherit/ {
        expires 3h;
        location /inherit/inner/ { alias {ROOT}/; }
        location /inherit/off/ { alias {ROOT}/; expires off; }
    }
}
";

/// What the response must carry.
enum Expect {
    /// Neither Expires nor Cache-Control.
    Nothing,
    /// These exact values.
    Exact(&'static str, &'static str),
    /// Expires = Date + N s; Cache-Control max-age=N (or no-cache when `no_cache`).
    FromNow(i64, bool),
    /// Expires = the file's mtime + N s; max-age = that − now (or no-cache if past).
    FromMtime(i64),
    /// Expires = the next N s after midnight UTC; max-age until then.
    Daily(i64),
}

/// The file's mtime: 10 days ago, on a whole second.
fn mtime() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 60 - 10 * 86_400
}

fn http_secs(v: &str) -> Option<i64> {
    httpdate::parse_http_date(v)
        .ok()
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64)
}

fn check(r: &Response, expect: &Expect, mtime: i64) -> Option<String> {
    let exp = r.header("Expires");
    let cc = r.header_all("Cache-Control");
    let date = r.header("Date").and_then(http_secs).unwrap_or(0);
    let max_age = |cc: &[&str]| -> Option<i64> {
        match cc {
            [one] => one.strip_prefix("max-age=").and_then(|n| n.parse().ok()),
            _ => None,
        }
    };
    // Seconds may tick between the proxy's clock and the Date header.
    let near = |a: i64, b: i64| (a - b).abs() <= 2;
    let ok = match expect {
        Expect::Nothing => exp.is_none() && cc.is_empty(),
        Expect::Exact(e, c) => exp == Some(*e) && cc == [*c],
        Expect::FromNow(n, no_cache) => {
            exp.and_then(http_secs).is_some_and(|e| near(e, date + n))
                && if *no_cache {
                    cc == ["no-cache"]
                } else {
                    max_age(&cc) == Some(*n)
                }
        }
        Expect::FromMtime(n) => {
            let at = mtime + n;
            exp.and_then(http_secs) == Some(at)
                && if at < date {
                    cc == ["no-cache"]
                } else {
                    max_age(&cc).is_some_and(|m| near(m, at - date))
                }
        }
        Expect::Daily(tod) => {
            let midnight = date - date.rem_euclid(86_400);
            let at = if midnight + tod > date {
                midnight + tod
            } else {
                midnight + tod + 86_400
            };
            exp.and_then(http_secs).is_some_and(|e| near(e, at))
                && max_age(&cc).is_some_and(|m| near(m, at - date))
        }
    };
    (!ok).then(|| format!("Expires {exp:?}, Cache-Control {cc:?}, Date {date}"))
}

#[test]
fn expires_table_forms_statuses_and_variables() {
    let site = tempfile::tempdir().unwrap();
    let file = site.path().join("f.txt");
    std::fs::write(&file, "static file\n").unwrap();
    std::fs::create_dir(site.path().join("d")).unwrap();
    let mtime = mtime();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(mtime as u64))
        .unwrap();
    let backend = Peer::python("respond.py", &[]);
    let proxy = Proxy::start(&fill(
        CONF,
        &[("ROOT", &site.path().display()), ("B", &backend.port)],
    ));
    let lm = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime as u64));
    let lm_q = lm.replace(' ', "%20");
    let ims = format!("If-Modified-Since: {lm}");
    let rows: Vec<(&str, String, Vec<String>, u16, Expect)> = vec![
        ("TIME", "/s/1h/f.txt".into(), vec![], 200, Expect::FromNow(3600, false)),
        ("30d", "/s/30d/f.txt".into(), vec![], 200, Expect::FromNow(30 * 86_400, false)),
        ("epoch", "/s/epoch/f.txt".into(), vec![], 200, Expect::Exact("Thu, 01 Jan 1970 00:00:01 GMT", "no-cache")),
        ("max", "/s/max/f.txt".into(), vec![], 200, Expect::Exact("Thu, 31 Dec 2037 23:55:55 GMT", "max-age=315360000")),
        ("0", "/s/zero/f.txt".into(), vec![], 200, Expect::FromNow(0, false)),
        ("negative", "/s/neg/f.txt".into(), vec![], 200, Expect::FromNow(-3600, true)),
        ("off", "/s/off/f.txt".into(), vec![], 200, Expect::Nothing),
        ("modified, in the past", "/s/modpast/f.txt".into(), vec![], 200, Expect::FromMtime(7200)),
        ("modified, in the future", "/s/modfuture/f.txt".into(), vec![], 200, Expect::FromMtime(30 * 86_400)),
        ("@time", "/s/daily/f.txt".into(), vec![], 200, Expect::Daily(15 * 3600 + 1800)),
        ("variable TIME", "/s/var/f.txt".into(), vec![], 200, Expect::FromNow(7200, false)),
        ("variable max", "/s/varmax/f.txt".into(), vec![], 200, Expect::Exact("Thu, 31 Dec 2037 23:55:55 GMT", "max-age=315360000")),
        ("variable off", "/s/varoff/f.txt".into(), vec![], 200, Expect::Nothing),
        ("variable invalid", "/s/varbad/f.txt".into(), vec![], 200, Expect::Nothing),
        ("modified variable", "/s/varmod/f.txt".into(), vec![], 200, Expect::FromMtime(30 * 86_400)),
        ("304", "/s/1h/f.txt".into(), vec![ims.clone()], 304, Expect::FromNow(3600, false)),
        ("static 404", "/s/1h/missing.txt".into(), vec![], 404, Expect::Nothing),
        ("directory 301", "/s/1h/d".into(), vec![], 301, Expect::FromNow(3600, false)),
        ("inherited", "/inherit/inner/f.txt".into(), vec![], 200, Expect::FromNow(3 * 3600, false)),
        ("inherited, off inside", "/inherit/off/f.txt".into(), vec![], 200, Expect::Nothing),
        ("proxied 200, upstream Cache-Control replaced", "/p/?h=Cache-Control:private&h=Cache-Control:no-store&h=Expires:Thu,%2001%20Jan%201970%2000:00:00%20GMT".into(), vec![], 200, Expect::FromNow(3600, false)),
        ("proxied 201", "/p/?status=201".into(), vec![], 201, Expect::FromNow(3600, false)),
        ("proxied 204", "/p/?status=204&len=0".into(), vec![], 204, Expect::FromNow(3600, false)),
        ("proxied 206", "/p/?status=206".into(), vec![], 206, Expect::FromNow(3600, false)),
        ("proxied 302", "/p/?status=302&h=Location:/x".into(), vec![], 302, Expect::FromNow(3600, false)),
        ("proxied 307", "/p/?status=307&h=Location:/x".into(), vec![], 307, Expect::FromNow(3600, false)),
        ("proxied 308", "/p/?status=308&h=Location:/x".into(), vec![], 308, Expect::FromNow(3600, false)),
        ("proxied 404", "/p/?status=404".into(), vec![], 404, Expect::Nothing),
        ("proxied 500 keeps the upstream's", "/p/?status=500&h=Cache-Control:private".into(), vec![], 500, Expect::Exact("", "private")),
        ("proxied 410", "/p/?status=410".into(), vec![], 410, Expect::Nothing),
        ("proxied modified, Last-Modified", format!("/pm/?h=Last-Modified:{lm_q}"), vec![], 200, Expect::FromMtime(86_400)),
        ("proxied modified, no Last-Modified", "/pm/".into(), vec![], 200, Expect::FromNow(86_400, false)),
    ];
    let mut failures = Vec::new();
    for (name, path, headers, status, expect) in &rows {
        let mut raw = format!("GET {path} HTTP/1.1\r\nHost: exp.test\r\nConnection: close\r\n");
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        let r = proxy.request(raw.as_bytes());
        if r.status != *status {
            failures.push(format!(
                "{name}: status {}, expected {status}\n{}",
                r.status,
                r.describe()
            ));
            continue;
        }
        let expect = match expect {
            // The upstream's own header passes on a status expires leaves alone.
            Expect::Exact("", cc) => {
                if r.header("Expires").is_none() && r.header_all("Cache-Control") == [*cc] {
                    continue;
                }
                failures.push(format!("{name}: {}", r.describe()));
                continue;
            }
            e => e,
        };
        if let Some(why) = check(&r, expect, mtime) {
            failures.push(format!("{name}: {why}\n{}", r.describe()));
        }
    }
    assert_table("expires", &failures, rows.len());
}

#[test]
fn invalid_expires_is_an_error_at_load() {
    for (line, msg) in [
        ("expires soon;", "invalid value"),
        (
            "expires modified @1h;",
            "daily time cannot be used with \"modified\" parameter",
        ),
        (
            "expires @25h;",
            "daily time value must be less than 24 hours",
        ),
        ("expires 1h; expires 2h;", "is duplicate"),
        ("expires later 1h;", "invalid value"),
    ] {
        let conf = format!("server {{\n    listen 127.0.0.1:8080;\n    location / {{\n        {line}\n    }}\n}}\n");
        let (out, _dir) = check_config(&[("site.conf", &conf)], "site.conf");
        assert_eq!(out.code, Some(1), "{line}: {out:?}");
        assert!(out.stderr.contains(msg), "{line}: {}", out.stderr);
        assert!(out.stderr.contains("site.conf:4"), "{line}: {}", out.stderr);
    }
}
