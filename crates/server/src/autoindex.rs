//! `autoindex on` (ngx_http_autoindex_module): the listing of a directory whose URI
//! ends in `/` and that has no index file, in nginx's four formats, byte for byte:
//! - `html`: nginx's `<pre>` table: names cut at 50 characters (`..&gt;`), the
//!   modification time `dd-Mon-yyyy HH:MM` (UTC, or local time with
//!   `autoindex_localtime on`, which is UTC in Junction), the size exact
//!   (`autoindex_exact_size on`, the default) or rounded to K/M/G;
//! - `json` (`application/json`), `jsonp` (`application/javascript`, the callback
//!   from `$arg_callback`: letters, digits, `_` and `.`, at most 128, else 400;
//!   none: plain JSON), `xml` (`text/xml; charset=utf-8`).
//!
//! Entries starting with `.` are skipped; directories come first, then byte order.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use junction_config::model::{invalid, Scope};
use junction_config::ConfigError;
use junction_core::body;
use junction_core::ctx::RequestCtx;
use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

/// `autoindex_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
    Jsonp,
    Xml,
}

/// A location's autoindex settings (present only with `autoindex on`).
#[derive(Debug, Clone)]
pub(crate) struct AutoindexConf {
    format: Format,
    exact_size: bool,
    /// Names are measured in UTF-8 characters (nginx: when the response charset is
    /// utf-8).
    utf8: bool,
}

impl AutoindexConf {
    /// `autoindex*` at `scope`; `None` when autoindex is off.
    pub(crate) fn build(scope: &Scope<'_>) -> Result<Option<AutoindexConf>, ConfigError> {
        if !scope.flag("autoindex", false)? {
            return Ok(None);
        }
        let format = match scope.arg("autoindex_format") {
            None => Format::Html,
            Some((d, a)) => match a.value.as_str() {
                "html" => Format::Html,
                "json" => Format::Json,
                "jsonp" => Format::Jsonp,
                "xml" => Format::Xml,
                _ => return Err(invalid(d, a)),
            },
        };
        // autoindex_localtime: Junction keeps time in UTC, so local time is UTC.
        let _ = scope.flag("autoindex_localtime", false)?;
        let utf8 = scope
            .arg("charset")
            .is_some_and(|(_, a)| a.value.eq_ignore_ascii_case("utf-8"));
        Ok(Some(AutoindexConf {
            format,
            exact_size: scope.flag("autoindex_exact_size", true)?,
            utf8,
        }))
    }
}

struct Entry {
    name: String,
    dir: bool,
    file: bool,
    mtime: i64,
    size: u64,
}

const NAME_LEN: usize = 50;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ngx_escape_html`.
fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// `ngx_escape_uri(…, NGX_ESCAPE_URI_COMPONENT)`: all but ALPHA, DIGIT, `-._~`.
fn escape_component(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `ngx_escape_json`.
fn escape_json(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Civil date from seconds since the epoch (UTC): (year, month 1-12, day, h, m, s).
fn civil(secs: i64) -> (i64, usize, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        usize::try_from(m).unwrap_or(1),
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

fn html(uri: &str, entries: &[Entry], c: &AutoindexConf) -> String {
    let mut out = String::with_capacity(512 + entries.len() * 120);
    out.push_str("<html>\r\n<head><title>Index of ");
    escape_html(uri, &mut out);
    out.push_str("</title></head>\r\n<body>\r\n<h1>Index of ");
    escape_html(uri, &mut out);
    out.push_str("</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for e in entries {
        out.push_str("<a href=\"");
        escape_component(&e.name, &mut out);
        if e.dir {
            out.push('/');
        }
        out.push_str("\">");
        let chars = e.name.chars().count();
        let mut len = if c.utf8 { chars } else { e.name.len() };
        let long = len > NAME_LEN;
        // Cut at 47 characters (bytes without utf-8) when longer than 50.
        let shown: String = if long {
            if c.utf8 {
                e.name.chars().take(NAME_LEN - 3).collect()
            } else {
                String::from_utf8_lossy(e.name.as_bytes().get(..NAME_LEN - 3).unwrap_or(&[]))
                    .into_owned()
            }
        } else {
            e.name.clone()
        };
        escape_html(&shown, &mut out);
        if long {
            out.push_str("..&gt;</a>");
        } else {
            if e.dir && NAME_LEN > len {
                out.push('/');
                len += 1;
            }
            out.push_str("</a>");
            out.extend(std::iter::repeat_n(' ', NAME_LEN.saturating_sub(len)));
        }
        out.push(' ');
        let (y, m, d, hh, mm, _) = civil(e.mtime);
        let month = MONTHS.get(m.wrapping_sub(1)).copied().unwrap_or("Jan");
        let _ = write!(out, "{d:02}-{month}-{y} {hh:02}:{mm:02} ");
        if c.exact_size {
            if e.dir {
                out.push_str("                  -");
            } else {
                let _ = write!(out, "{:>19}", e.size);
            }
        } else if e.dir {
            out.push_str("      -");
        } else {
            const G: u64 = 1024 * 1024 * 1024;
            const M: u64 = 1024 * 1024;
            let l = e.size;
            let (size, scale) = if l > G - 1 {
                (l / G + u64::from(l % G > G / 2 - 1), Some('G'))
            } else if l > M - 1 {
                (l / M + u64::from(l % M > M / 2 - 1), Some('M'))
            } else if l > 9999 {
                (l / 1024 + u64::from(l % 1024 > 511), Some('K'))
            } else {
                (l, None)
            };
            match scale {
                Some(s) => {
                    let _ = write!(out, "{size:>6}{s}");
                }
                None => {
                    let _ = write!(out, " {size:>6}");
                }
            }
        }
        out.push_str("\r\n");
    }
    out.push_str("</pre><hr></body>\r\n</html>\r\n");
    out
}

fn http_time(secs: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs()))
}

fn json(entries: &[Entry], callback: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + entries.len() * 100);
    if let Some(cb) = callback {
        out.push_str("/* callback */\r\n");
        out.push_str(cb);
        out.push('(');
    }
    out.push('[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\r\n{ \"name\":\"");
        escape_json(&e.name, &mut out);
        out.push_str("\", \"type\":\"");
        out.push_str(kind(e));
        out.push_str("\", \"mtime\":\"");
        out.push_str(&http_time(e.mtime));
        if e.file {
            let _ = write!(out, "\", \"size\":{}", e.size);
        } else {
            out.push('"');
        }
        out.push_str(" }");
    }
    out.push_str("\r\n]");
    if callback.is_some() {
        out.push_str(");");
    }
    out
}

fn kind(e: &Entry) -> &'static str {
    if e.dir {
        "directory"
    } else if e.file {
        "file"
    } else {
        "other"
    }
}

fn xml(entries: &[Entry]) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\r\n<list>\r\n");
    for e in entries {
        let k = kind(e);
        let (y, m, d, hh, mm, ss) = civil(e.mtime);
        let _ = write!(
            out,
            "<{k} mtime=\"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z\""
        );
        if e.file {
            let _ = write!(out, " size=\"{}\"", e.size);
        }
        out.push('>');
        escape_html(&e.name, &mut out);
        let _ = write!(out, "</{k}>\r\n");
    }
    out.push_str("</list>\r\n");
    out
}

/// `ngx_http_autoindex_jsonp_callback`: `Ok(None)` without one, `Err` when invalid.
fn callback(cx: &RequestCtx) -> Result<Option<String>, ()> {
    let Some(v) = cx.args.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("callback").then_some(v)
    }) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 128
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        tracing::info!(
            "*{} client sent invalid callback name: \"{v}\", client: {}, server: {}",
            cx.conn.id,
            cx.conn.remote.ip(),
            cx.server_name
        );
        return Err(());
    }
    Ok(Some(v.to_string()))
}

fn mtime_of(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The listing of directory `path` (a `/`-terminated URI with no index file).
/// `None`: not for this request (not GET/HEAD).
pub(crate) async fn listing(
    cx: &RequestCtx,
    c: &AutoindexConf,
    path: &str,
    tokens: bool,
) -> Option<http::Response<body::Body>> {
    if !matches!(cx.method, Method::GET | Method::HEAD) {
        return None;
    }
    let status = |s: StatusCode| Some(crate::pages::status_response(s, tokens));
    let mut format = c.format;
    let mut cb = None;
    if format == Format::Jsonp {
        match callback(cx) {
            Err(()) => return status(StatusCode::BAD_REQUEST),
            Ok(None) => format = Format::Json,
            Ok(Some(v)) => cb = Some(v),
        }
    }
    let dir = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut rd = match tokio::fs::read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) => {
            let s = match e.kind() {
                std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::error!(
                "*{} opendir() \"{dir}\" failed ({e}), client: {}, server: {}, request: \"{} {}\"",
                cx.conn.id,
                cx.conn.remote.ip(),
                cx.server_name,
                cx.method,
                cx.request_uri
            );
            return status(s);
        }
    };
    let mut entries = Vec::new();
    if cx.method != Method::HEAD {
        while let Ok(Some(de)) = rd.next_entry().await {
            let name = de.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let p = de.path();
            let meta = match tokio::fs::metadata(&p).await {
                Ok(m) => m,
                // A dangling symlink is listed as what it is.
                Err(_) => match tokio::fs::symlink_metadata(&p).await {
                    Ok(m) => m,
                    Err(_) => continue,
                },
            };
            entries.push(Entry {
                name,
                dir: meta.is_dir(),
                file: meta.is_file(),
                mtime: mtime_of(&meta),
                size: meta.len(),
            });
        }
        entries.sort_by(|a, b| {
            b.dir
                .cmp(&a.dir)
                .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
        });
    }
    let (ctype, text) = match format {
        Format::Html => ("text/html", html(&cx.uri, &entries, c)),
        Format::Json => ("application/json", json(&entries, None)),
        Format::Jsonp => ("application/javascript", json(&entries, cb.as_deref())),
        Format::Xml => ("text/xml; charset=utf-8", xml(&entries)),
    };
    let body = if cx.method == Method::HEAD {
        body::empty()
    } else {
        body::full(Bytes::from(text))
    };
    let mut r = http::Response::new(body);
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_764_620_000), (2025, 12, 1, 20, 13, 20));
    }
}
