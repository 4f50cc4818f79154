//! `api` (in a location: `location /api/ { api; allow 127.0.0.1; deny all; }`): a
//! read-only JSON status API in the shape of nginx Plus's `ngx_http_api_module`
//! (version 9), encoded with `serde_json` from the same counters `stub_status` and
//! `metrics` read (`junction_core::stats::PROCESS`, each `server {}`'s `HttpStats`,
//! each upstream group's servers), so the three always agree.
//!
//! Endpoints (the path after the location's prefix):
//! - `/` → `[9]`, the versions served; `/9` → `["nginx","connections","http"]`;
//!   `/9/http` → `["requests","server_zones","upstreams"]`.
//! - `/9/nginx`: `version`, `build`, `address` (the address the API request came to),
//!   `generation` (reloads taken), `load_timestamp`, `timestamp`, `pid`, `ppid`.
//! - `/9/connections`: `accepted`, `dropped`, `active` (not idle), `idle`.
//! - `/9/http/requests`: `total`, `current` (being read or processed).
//! - `/9/http/server_zones[/NAME]`: one zone per server name (a `server {}`'s first
//!   name; servers sharing one are added up): `requests`, `responses` (`1xx` …
//!   `5xx`, `total`), `received` (`$request_length`), `sent` (`$body_bytes_sent`).
//! - `/9/http/upstreams[/NAME]`: every upstream group (`upstream {}` blocks and
//!   the implicit group of a `*_pass host:port`): `peers` (`id`, `server`, `name`,
//!   `backup`, `weight`, `state` = `up`/`down`/`unavail` (`max_fails` reached)/
//!   `unhealthy` (failed its health checks), `active`, `max_conns`, `requests`,
//!   `responses`, `fails`, `unavail` (times `max_fails` took it out),
//!   `health_checks` (`checks`, `fails`, `last_passed`), `sent` (request bytes),
//!   `header_time` and `response_time` (average ms), `selected` (the start of its
//!   latest attempt)),
//!   `keepalive` (idle connections), `zombies` (0), `zone` (the name), and with
//!   `queue`: `queue` (`size` waiting now, `max_size`, `overflows` = refused).
//!
//! Counters Junction does not keep are left out rather than reported as 0: a zone's
//! `processing`/`discarded`, a peer's `received` (the body relay counts bytes only
//! when a template reads `$upstream_response_length`), `downtime`/`downstart`. `?fields=a,b` keeps only those fields (of each group or zone of a
//! collection), as Plus does.
//!
//! Errors are Plus's objects: 404 `PathNotFound` / `UnknownVersion` /
//! `UpstreamNotFound` / `ServerZoneNotFound`, 405 `MethodDisabled` for the write
//! methods (the API is read-only: `api write=on` is a load error) and
//! `MethodNotSupported` for the rest, each with the request's `$request_id` and
//! `href`.

use crate::status::{current, Sources};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use junction_core::backend::{Backend, Response};
use junction_core::body::{self, ReqBody};
use junction_core::ctx::RequestCtx;
use junction_core::stats::{HttpStats, PROCESS, PROTOCOLS, STATUS_CLASSES};
use junction_core::upstream::Group;
use junction_core::Error;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

/// The API version served.
pub const VERSION: u64 = 9;

const HREF: &str = "https://nginx.org/en/docs/http/ngx_http_api_module.html";

/// The content handler of an `api` location.
#[derive(Debug)]
pub struct Api {
    /// The location's prefix, stripped from the URI to find the endpoint (empty for a
    /// regex location: then the endpoint is found from the version segment on).
    prefix: String,
}

impl Api {
    /// An API under `prefix` (the location's name).
    pub fn new(prefix: &str) -> Api {
        Api {
            prefix: prefix.to_string(),
        }
    }

    /// The endpoint's segments of `uri` (`/api/9/http/upstreams/b` → `9 http
    /// upstreams b` under `/api/`).
    fn segments<'u>(&self, uri: &'u str) -> Vec<&'u str> {
        let rest = if !self.prefix.is_empty() && uri.starts_with(&self.prefix) {
            uri.get(self.prefix.len()..).unwrap_or("")
        } else {
            // A regex location: from the first numeric segment on, else nothing.
            let mut at = uri.len();
            let mut pos = 0;
            for seg in uri.split('/') {
                if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                    at = pos;
                    break;
                }
                pos += seg.len() + 1;
            }
            uri.get(at..).unwrap_or("")
        };
        rest.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// A Plus error object.
fn error(cx: &RequestCtx, status: u16, text: &str, code: &str) -> (StatusCode, Value) {
    let mut id = BytesMut::with_capacity(32);
    cx.var_into(&junction_core::vars::Var::RequestId, &mut id);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND),
        json!({
            "error": {"status": status, "text": text, "code": code},
            "request_id": String::from_utf8_lossy(&id),
            "href": HREF,
        }),
    )
}

/// `2026-12-01T22:30:00.123Z`
fn timestamp(t: std::time::SystemTime) -> String {
    junction_core::time::iso8601_ms_utc(t)
}

fn responses(classes: [u64; 5]) -> Value {
    let mut m = Map::new();
    for (c, v) in STATUS_CLASSES.iter().zip(classes) {
        m.insert((*c).to_string(), v.into());
    }
    m.insert("total".into(), classes.iter().sum::<u64>().into());
    Value::Object(m)
}

/// The server zones: one per first server name.
fn server_zones(src: &Sources) -> Map<String, Value> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<&HttpStats>> = Default::default();
    for (name, s) in &src.servers {
        by_name.entry(name).or_default().push(s);
    }
    by_name
        .into_iter()
        .map(|(name, stats)| {
            let mut classes = [0u64; 5];
            for s in &stats {
                for (pi, _) in PROTOCOLS.iter().enumerate() {
                    for (ci, c) in classes.iter_mut().enumerate() {
                        *c += s
                            .responses
                            .get(pi)
                            .and_then(|r| r.get(ci))
                            .map_or(0, |a| a.load(Ordering::Relaxed));
                    }
                }
            }
            let sum = |f: fn(&HttpStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
            (
                name.to_string(),
                json!({
                    "requests": classes.iter().sum::<u64>(),
                    "responses": responses(classes),
                    "received": sum(|s| s.bytes_in.load(Ordering::Relaxed)),
                    "sent": sum(|s| s.bytes_out.load(Ordering::Relaxed)),
                }),
            )
        })
        .collect()
}

fn upstream(g: &Group) -> Value {
    let mut peers = Vec::with_capacity(g.servers.len());
    let mut idle = 0;
    for (i, (s, snap)) in g.servers.iter().zip(g.snapshot()).enumerate() {
        idle += g.idle_connections(i);
        let state = if snap.down {
            "down"
        } else if !snap.healthy {
            "unhealthy"
        } else if snap.failed_now {
            "unavail"
        } else {
            "up"
        };
        let mut classes = [0u64; 5];
        for (c, a) in classes.iter_mut().zip(&s.stats.responses) {
            *c = a.load(Ordering::Relaxed);
        }
        let (sum, count, _) = s.stats.response_time.snapshot();
        let mut p = json!({
            "id": i,
            "server": s.name,
            "name": s.label,
            "backup": snap.backup,
            "weight": s.weight,
            "state": state,
            "active": snap.active,
            "requests": snap.requests,
            "responses": responses(classes),
            "fails": snap.fails,
            "unavail": s.stats.disabled.load(Ordering::Relaxed),
            "health_checks": {
                "checks": snap.checks,
                "fails": snap.check_fails,
            },
        });
        if let Some(o) = p.as_object_mut() {
            if s.max_conns > 0 {
                o.insert("max_conns".into(), s.max_conns.into());
            }
            if g.health.is_some() {
                if let Some(h) = o.get_mut("health_checks").and_then(Value::as_object_mut) {
                    h.insert("last_passed".into(), snap.healthy.into());
                }
            }
            if count > 0 {
                let avg_ms = (sum * 1000.0 / count as f64).round() as u64;
                o.insert("response_time".into(), avg_ms.into());
            }
            let t = &s.stats.traffic;
            o.insert("sent".into(), t.sent.load(Ordering::Relaxed).into());
            let heads = t.headers.load(Ordering::Relaxed);
            if let Some(avg_us) = t.header_us.load(Ordering::Relaxed).checked_div(heads) {
                o.insert("header_time".into(), (avg_us / 1000).into());
            }
            let sel = t.selected_ms.load(Ordering::Relaxed);
            if sel > 0 {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(sel);
                o.insert("selected".into(), timestamp(at).into());
            }
        }
        peers.push(p);
    }
    let mut u = json!({
        "peers": peers,
        "keepalive": idle,
        "zombies": 0,
        "zone": g.name,
    });
    if let (Some(q), Some(o)) = (&g.queue, u.as_object_mut()) {
        o.insert(
            "queue".into(),
            json!({
                "size": g.stats.queued.load(Ordering::Relaxed),
                "max_size": q.max,
                "overflows": g.stats.queue_rejected.load(Ordering::Relaxed),
            }),
        );
    }
    u
}

impl Api {
    /// The JSON for `segs`, or an error object.
    fn answer(&self, cx: &RequestCtx, segs: &[&str]) -> (StatusCode, Value) {
        let not_found = || error(cx, 404, "path not found", "PathNotFound");
        let Some((ver, rest)) = segs.split_first() else {
            return (StatusCode::OK, json!([VERSION]));
        };
        if ver.parse::<u64>().ok() != Some(VERSION) {
            return if ver.bytes().all(|b| b.is_ascii_digit()) {
                error(cx, 404, "unknown version", "UnknownVersion")
            } else {
                not_found()
            };
        }
        let src = current();
        let p = PROCESS.snapshot();
        let ok = |v: Value| (StatusCode::OK, v);
        match rest {
            [] => ok(json!(["nginx", "connections", "http"])),
            ["nginx"] => ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "build": "junction",
                "address": cx.conn.local.ip().to_string(),
                "generation": p.reloads_ok,
                "load_timestamp": timestamp(src.loaded),
                "timestamp": timestamp(std::time::SystemTime::now()),
                "pid": std::process::id(),
                "ppid": std::os::unix::process::parent_id(),
            })),
            ["connections"] => ok(json!({
                "accepted": p.accepted,
                "dropped": p.accepted.saturating_sub(p.handled),
                "active": p.active.saturating_sub(p.waiting),
                "idle": p.waiting,
            })),
            ["http"] => ok(json!(["requests", "server_zones", "upstreams"])),
            ["http", "requests"] => ok(json!({
                "total": p.requests,
                "current": p.reading + p.writing,
            })),
            ["http", "server_zones"] => ok(Value::Object(server_zones(&src))),
            ["http", "server_zones", name] => match server_zones(&src).remove(*name) {
                Some(z) => ok(z),
                None => error(cx, 404, "server zone not found", "ServerZoneNotFound"),
            },
            ["http", "upstreams"] => {
                let mut m = Map::new();
                for g in &src.groups {
                    if !m.contains_key(&g.name) {
                        m.insert(g.name.clone(), upstream(g));
                    }
                }
                ok(Value::Object(m))
            }
            ["http", "upstreams", name] => match src.groups.iter().find(|g| g.name == *name) {
                Some(g) => ok(upstream(g)),
                None => error(cx, 404, "upstream not found", "UpstreamNotFound"),
            },
            _ => not_found(),
        }
    }
}

/// `fields=a,b` of the query (Plus's `fields` argument), if any.
fn fields_arg(args: &str) -> Option<Vec<String>> {
    args.split('&').find_map(|p| {
        let v = p.strip_prefix("fields=")?;
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
        Some(
            v.split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
        )
    })
}

/// Keeps only `fields` of an object (of each member of a collection, `/upstreams`
/// and `/server_zones`, as Plus does).
fn keep_fields(v: &mut Value, fields: &[String], collection: bool) {
    let keep = |o: &mut Map<String, Value>| o.retain(|k, _| fields.iter().any(|f| f == k));
    match v {
        Value::Object(o) if collection => {
            for m in o.values_mut() {
                if let Value::Object(mo) = m {
                    keep(mo);
                }
            }
        }
        Value::Object(o) => keep(o),
        _ => {}
    }
}

#[junction_core::async_trait]
impl Backend for Api {
    async fn handle(&self, cx: &mut RequestCtx, _body: ReqBody) -> Result<Response, Error> {
        let (status, value) = match cx.method {
            Method::GET | Method::HEAD => {
                let uri = cx.uri.clone();
                let segs = self.segments(&uri);
                let (status, mut v) = self.answer(cx, &segs);
                if status == StatusCode::OK {
                    if let Some(fields) = fields_arg(&cx.args) {
                        let collection = matches!(
                            segs.as_slice(),
                            [_, "http", "server_zones"] | [_, "http", "upstreams"]
                        );
                        keep_fields(&mut v, &fields, collection);
                    }
                }
                (status, v)
            }
            Method::POST | Method::PATCH | Method::DELETE | Method::PUT => {
                error(cx, 405, "method disabled", "MethodDisabled")
            }
            _ => error(cx, 405, "method not supported", "MethodNotSupported"),
        };
        let mut out = BytesMut::with_capacity(512).writer();
        if serde_json::to_writer(&mut out, &value).is_err() {
            return Err(Error::internal("cannot encode the API's JSON"));
        }
        let text: Bytes = out.into_inner().freeze();
        let len = text.len();
        let body = if cx.method == Method::HEAD {
            body::empty()
        } else {
            body::full(text)
        };
        let mut r = http::Response::new(body);
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        Ok(r)
    }

    fn allows_method(&self, _method: &Method) -> bool {
        // Every method reaches the handler, which answers Plus's 405 objects.
        true
    }

    fn is_pass(&self) -> bool {
        false
    }
}

/// `api [write=on|off]` in a location (`has_other`: the location already has a
/// content handler). Junction's API is read-only: `write=on` is an error.
pub fn build(
    d: &junction_config::Directive,
    info: &junction_config::model::LocInfo,
    has_other: bool,
) -> Result<std::sync::Arc<dyn Backend>, junction_config::ConfigError> {
    use junction_config::model::{err, LocKind};
    if has_other {
        return Err(err(
            &d.span,
            "\"api\" in a location that has another content handler",
        ));
    }
    match d.args.first().map(|a| a.value.as_str()) {
        None | Some("write=off") => {}
        Some("write=on") => {
            return Err(err(
                &d.span,
                "\"api write=on\" is not supported: Junction's API is read-only",
            ))
        }
        Some(v) => return Err(err(&d.span, format!("invalid parameter \"{v}\""))),
    }
    let prefix = match info.kind {
        LocKind::Regex { .. } | LocKind::Named | LocKind::Server | LocKind::If => "",
        _ => info.name.as_str(),
    };
    Ok(std::sync::Arc::new(Api::new(prefix)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segments_under_the_prefix() {
        let a = Api::new("/api/");
        assert_eq!(
            a.segments("/api/9/http/upstreams/b"),
            ["9", "http", "upstreams", "b"]
        );
        assert_eq!(a.segments("/api/"), Vec::<&str>::new());
        let a = Api::new("/api");
        assert_eq!(a.segments("/api/9/nginx"), ["9", "nginx"]);
        let a = Api::new("");
        assert_eq!(
            a.segments("/status/api/9/connections"),
            ["9", "connections"]
        );
        assert_eq!(a.segments("/status/api/"), Vec::<&str>::new());
    }
}
