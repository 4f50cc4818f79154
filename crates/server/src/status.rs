//! The status handlers: `stub_status` (nginx's, byte for byte) and `metrics`
//! (beyond nginx OSS: the Prometheus/OpenMetrics text format, encoded by the
//! `prometheus-client` crate from Junction's own atomics at scrape time).
//!
//! Both read the process-wide counters in `junction_core::stats::PROCESS` and the
//! configuration that is serving: the binary [`publish`]es each runtime it
//! activates (at start and after each reload it takes), and a scrape reads that
//! one's servers and upstream groups. Label sets are bounded by the configuration
//! (server names, upstream groups and their servers, protocol, status class): no
//! URI or client ever becomes a label.

use crate::build::Runtime;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use junction_core::backend::{Backend, Response};
use junction_core::body::{self, ReqBody};
use junction_core::ctx::RequestCtx;
use junction_core::stats::{HttpStats, PROCESS, PROTOCOLS, STATUS_CLASSES};
use junction_core::upstream::Group;
use junction_core::Error;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

/// What a scrape reads: the serving configuration's servers and groups.
#[derive(Debug)]
pub(crate) struct Sources {
    /// `server {}` blocks: the first server name and its counters.
    pub(crate) servers: Vec<(Arc<str>, Arc<HttpStats>)>,
    /// Every upstream group, named and implicit.
    pub(crate) groups: Vec<Arc<Group>>,
    /// When this configuration was published (the API's `load_timestamp`).
    pub(crate) loaded: std::time::SystemTime,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            servers: Vec::new(),
            groups: Vec::new(),
            loaded: std::time::SystemTime::now(),
        }
    }
}

static CURRENT: RwLock<Option<Arc<Sources>>> = RwLock::new(None);

/// Makes `rt` the configuration the status handlers report on.
pub fn publish(rt: &Runtime) {
    let sources = Arc::new(Sources {
        servers: rt
            .servers
            .iter()
            .map(|s| (s.name0.clone(), s.stats.clone()))
            .collect(),
        groups: rt.upstreams.clone(),
        loaded: std::time::SystemTime::now(),
    });
    match CURRENT.write() {
        Ok(mut g) => *g = Some(sources),
        Err(p) => *p.into_inner() = Some(sources),
    }
}

pub(crate) fn current() -> Arc<Sources> {
    let g = match CURRENT.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    g.unwrap_or_default()
}

/// Which status a location answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `stub_status`.
    Stub,
    /// `metrics`.
    Metrics,
}

/// The content handler of a `stub_status` or `metrics` location.
#[derive(Debug)]
pub struct Status {
    kind: Kind,
}

impl Status {
    /// A handler of `kind`.
    pub fn new(kind: Kind) -> Status {
        Status { kind }
    }
}

#[junction_core::async_trait]
impl Backend for Status {
    async fn handle(&self, cx: &mut RequestCtx, _body: ReqBody) -> Result<Response, Error> {
        let (text, ctype) = match self.kind {
            Kind::Stub => (stub_status(), "text/plain"),
            Kind::Metrics => (
                metrics_text(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        };
        let len = text.len();
        // nginx's stub_status answers HEAD with the headers only.
        let body = if cx.method == http::Method::HEAD {
            body::empty()
        } else {
            body::full(Bytes::from(text))
        };
        let mut r = http::Response::new(body);
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        Ok(r)
    }

    fn allows_method(&self, method: &http::Method) -> bool {
        // nginx: `ngx_http_stub_status_handler` answers 405 to anything but GET/HEAD.
        matches!(*method, http::Method::GET | http::Method::HEAD)
    }

    fn is_pass(&self) -> bool {
        false
    }
}

/// nginx's `stub_status` page (`ngx_http_stub_status_handler`), spaces included.
pub fn stub_status() -> String {
    let p = PROCESS.snapshot();
    format!(
        "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
        p.active, p.accepted, p.handled, p.requests, p.reading, p.writing, p.waiting
    )
}

/// The OpenMetrics text of every counter.
pub fn metrics_text() -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Collector(current())));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[derive(Debug)]
struct Collector(Arc<Sources>);

type Labels = Vec<(&'static str, String)>;

/// A histogram snapshot: sum, count, per-bucket counts (`Histogram::snapshot`).
type HistSnapshot = (f64, u64, Vec<(f64, u64)>);

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(Labels, HistSnapshot)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        name,
        help,
        Some(&prometheus_client::registry::Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (labels, (sum, count, buckets)) in rows {
        m.encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum, *count, buckets, None,
            )?;
    }
    Ok(())
}

fn gauge_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Adds up the histogram snapshots of servers that share a label set.
fn merge_hist(into: &mut HistSnapshot, h: HistSnapshot) {
    if into.2.is_empty() {
        *into = h;
        return;
    }
    into.0 += h.0;
    into.1 += h.1;
    for (a, b) in into.2.iter_mut().zip(h.2) {
        a.1 += b.1;
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let src = &self.0;
        let p = PROCESS.snapshot();
        {
            let m = enc.encode_descriptor(
                "junction_build",
                "Junction's version",
                None,
                MetricType::Info,
            )?;
            prometheus_client::metrics::info::Info::new(vec![(
                "version",
                env!("CARGO_PKG_VERSION").to_string(),
            )])
            .encode(m)?;
        }
        counter(
            &mut enc,
            "junction_connections_accepted",
            "Client connections accepted",
            &[(vec![], p.accepted)],
        )?;
        counter(
            &mut enc,
            "junction_connections_handled",
            "Client connections handled",
            &[(vec![], p.handled)],
        )?;
        gauge(
            &mut enc,
            "junction_connections",
            "Client connections open now, by state (reading a request head, processing or writing a request, idle keep-alive)",
            &[
                (vec![("state", "active".into())], gauge_i64(p.active)),
                (vec![("state", "reading".into())], gauge_i64(p.reading)),
                (vec![("state", "writing".into())], gauge_i64(p.writing)),
                (vec![("state", "waiting".into())], gauge_i64(p.waiting)),
            ],
        )?;
        counter(
            &mut enc,
            "junction_requests",
            "Client requests (all servers)",
            &[(vec![], p.requests)],
        )?;
        counter(
            &mut enc,
            "junction_reloads",
            "Configuration reloads by outcome",
            &[
                (vec![("result", "ok".into())], p.reloads_ok),
                (vec![("result", "failed".into())], p.reloads_failed),
            ],
        )?;

        // Per server name (servers sharing a first name are added up).
        let mut by_name: BTreeMap<&str, Vec<&HttpStats>> = BTreeMap::new();
        for (name, s) in &src.servers {
            by_name.entry(name).or_default().push(s);
        }
        let mut responses = Vec::new();
        let mut bytes_in = Vec::new();
        let mut bytes_out = Vec::new();
        let mut durations = Vec::new();
        for (name, stats) in &by_name {
            let server = || vec![("server", name.to_string())];
            for (pi, proto) in PROTOCOLS.iter().enumerate() {
                for (ci, class) in STATUS_CLASSES.iter().enumerate() {
                    let v: u64 = stats
                        .iter()
                        .filter_map(|s| s.responses.get(pi).and_then(|r| r.get(ci)))
                        .map(|c| c.load(Ordering::Relaxed))
                        .sum();
                    if v > 0 {
                        let mut l = server();
                        l.push(("protocol", proto.to_string()));
                        l.push(("status", class.to_string()));
                        responses.push((l, v));
                    }
                }
            }
            let sum = |f: fn(&HttpStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
            bytes_in.push((server(), sum(|s| s.bytes_in.load(Ordering::Relaxed))));
            bytes_out.push((server(), sum(|s| s.bytes_out.load(Ordering::Relaxed))));
            let mut h = (0.0, 0, Vec::new());
            for s in stats {
                merge_hist(&mut h, s.duration.snapshot());
            }
            durations.push((server(), h));
        }
        counter(
            &mut enc,
            "junction_http_responses",
            "Responses by server name, protocol and status class",
            &responses,
        )?;
        histogram(
            &mut enc,
            "junction_http_request_duration",
            "Request time ($request_time) by server name",
            &durations,
        )?;
        counter(
            &mut enc,
            "junction_http_received_bytes",
            "Request bytes received ($request_length) by server name",
            &bytes_in,
        )?;
        counter(
            &mut enc,
            "junction_http_sent_bytes",
            "Response body bytes sent ($body_bytes_sent) by server name",
            &bytes_out,
        )?;

        // Upstream groups and their servers.
        let mut requests = Vec::new();
        let mut up_responses = Vec::new();
        let mut fails = Vec::new();
        let mut up = Vec::new();
        let mut active = Vec::new();
        let mut idle = Vec::new();
        let mut checks = Vec::new();
        let mut check_fails = Vec::new();
        let mut times = Vec::new();
        let mut queued = Vec::new();
        let mut rejected = Vec::new();
        let mut no_live = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for g in &src.groups {
            if !seen.insert(g.name.clone()) {
                continue; // one series per group name
            }
            let group = || vec![("upstream", g.name.clone())];
            let gs = &g.stats;
            queued.push((group(), gauge_i64(gs.queued.load(Ordering::Relaxed) as u64)));
            rejected.push((group(), gs.queue_rejected.load(Ordering::Relaxed)));
            no_live.push((group(), gs.no_live.load(Ordering::Relaxed)));
            for (i, (s, snap)) in g.servers.iter().zip(g.snapshot()).enumerate() {
                let server = || {
                    let mut l = group();
                    l.push(("server", s.name.clone()));
                    l
                };
                requests.push((server(), snap.requests));
                fails.push((server(), snap.fails));
                let state = if snap.down {
                    "down"
                } else if !snap.healthy || snap.failed_now {
                    "unhealthy"
                } else {
                    "up"
                };
                let mut l = server();
                l.push(("backup", snap.backup.to_string()));
                l.push(("state", state.to_string()));
                up.push((l, 1));
                active.push((server(), gauge_i64(snap.active as u64)));
                idle.push((server(), gauge_i64(g.idle_connections(i) as u64)));
                checks.push((server(), snap.checks));
                check_fails.push((server(), snap.check_fails));
                for (ci, class) in STATUS_CLASSES.iter().enumerate() {
                    let v = s
                        .stats
                        .responses
                        .get(ci)
                        .map_or(0, |c| c.load(Ordering::Relaxed));
                    if v > 0 {
                        let mut l = server();
                        l.push(("status", class.to_string()));
                        up_responses.push((l, v));
                    }
                }
                times.push((server(), s.stats.response_time.snapshot()));
            }
        }
        counter(
            &mut enc,
            "junction_upstream_requests",
            "Attempts sent to each upstream server",
            &requests,
        )?;
        counter(
            &mut enc,
            "junction_upstream_responses",
            "Upstream responses by status class (no response counts as 5xx, as $upstream_status writes 502)",
            &up_responses,
        )?;
        counter(
            &mut enc,
            "junction_upstream_failures",
            "Failed attempts (errors, timeouts, invalid headers, retried statuses)",
            &fails,
        )?;
        gauge(
            &mut enc,
            "junction_upstream_server_state",
            "1 for the state each upstream server is in (up, unhealthy: failed or out of health checks, down)",
            &up,
        )?;
        gauge(
            &mut enc,
            "junction_upstream_active_connections",
            "Connections in use by requests",
            &active,
        )?;
        gauge(
            &mut enc,
            "junction_upstream_idle_connections",
            "Idle keep-alive connections in the pool",
            &idle,
        )?;
        histogram(
            &mut enc,
            "junction_upstream_response_duration",
            "Time of each attempt ($upstream_response_time)",
            &times,
        )?;
        counter(
            &mut enc,
            "junction_upstream_health_checks",
            "Active health probes run",
            &checks,
        )?;
        counter(
            &mut enc,
            "junction_upstream_health_check_failures",
            "Active health probes that failed",
            &check_fails,
        )?;
        gauge(
            &mut enc,
            "junction_upstream_queue_length",
            "Requests waiting in the queue (max_conns)",
            &queued,
        )?;
        counter(
            &mut enc,
            "junction_upstream_queue_rejected",
            "Requests refused by a full queue or a queue timeout (503)",
            &rejected,
        )?;
        counter(
            &mut enc,
            "junction_upstream_no_live_server",
            "Selections that found no live server (502)",
            &no_live,
        )?;
        Ok(())
    }
}
