//! ngx_http_limit_req_module: `limit_req_zone KEY zone=NAME:SIZE rate=Nr/s|Nr/m`,
//! `limit_req zone=NAME [burst=N] [nodelay|delay=N]` (several per level, inherited
//! as an array), `limit_req_status`, `limit_req_log_level`, `limit_req_dry_run`,
//! `$limit_req_status`.
//!
//! nginx's leaky bucket, with its integer arithmetic: a state per key keeps `excess`
//! (in thousandths of a request) and `last` (ms); a request adds 1000 after the
//! bucket leaked `rate × ms / 1000` since `last`; above `burst` it is rejected
//! (without touching the state), above `delay` it waits `(excess − delay) / rate`.
//! A zone is one table shared by every worker thread behind a mutex (nginx: a shared
//! memory zone behind its mutex). Its SIZE bounds the number of states the way
//! nginx's slab allocator does (each state costs the slab chunk of `80 + key length`
//! bytes, the zone's pages minus its own header); a new key first expires up to two
//! idle states from the least recently used end, and when the zone is still full
//! the least recently used state is dropped; only when that one is in use too does
//! the request fail (status 503, `could not allocate node in limit_req zone "NAME"`).
//! A reload that keeps a zone (same name, size and key) keeps its states.

use crate::access::log;
use bytes::Bytes;
use junction_config::model::{err, invalid, BuildCx, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Milliseconds on a process-wide monotonic clock (`ngx_current_msec`).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    // Offset so that 0 (a state not accounted yet, as nginx's `lr->last = 0`) is long ago.
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1 << 40)
}

/// nginx's page size, for the zone's capacity.
const PAGE: usize = 4096;
/// `ngx_slab_page_t` per page.
const PAGE_DESC: usize = 24;
/// `offsetof(ngx_rbtree_node_t, color) + offsetof(ngx_http_limit_req_node_t, data)`.
const NODE_HEAD: usize = 80;

/// The slab chunk a state of `key_len` bytes takes (powers of two from 8; a page and
/// more are whole pages).
fn chunk(key_len: usize) -> usize {
    let n = NODE_HEAD + key_len;
    if n > PAGE / 2 {
        n.div_ceil(PAGE) * PAGE
    } else {
        n.next_power_of_two().max(8)
    }
}

/// One key's bucket.
#[derive(Debug)]
struct Node {
    key: Bytes,
    excess: i64,
    last: u64,
    /// Requests between lookup and accounting (several limits on one request).
    count: u32,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// The states of a zone: a hash map to slots of a list kept in recently-used order.
#[derive(Debug)]
struct Table {
    map: HashMap<Bytes, usize>,
    nodes: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    used: usize,
    budget: usize,
}

impl Table {
    fn new(size: usize) -> Table {
        // ngx_slab_init: the pool header, then pages each with a descriptor.
        let pages = size.saturating_sub(1024) / (PAGE + PAGE_DESC);
        // the zone's own rbtree/queue header and log context take a chunk each
        let budget = (pages * PAGE).saturating_sub(256);
        Table {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            used: 0,
            budget,
        }
    }

    fn node(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes.get_mut(i).and_then(Option::as_mut)
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = match self.node(i) {
            Some(n) => (n.prev, n.next),
            None => return,
        };
        match self.node(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, i: usize) {
        let old = self.head;
        if let Some(n) = self.node(i) {
            n.prev = NIL;
            n.next = old;
        }
        match self.node(old) {
            Some(o) => o.prev = i,
            None => self.tail = i,
        }
        self.head = i;
    }

    fn remove(&mut self, i: usize) {
        self.unlink(i);
        if let Some(n) = self.nodes.get_mut(i).and_then(Option::take) {
            self.used = self.used.saturating_sub(chunk(n.key.len()));
            self.map.remove(&n.key);
            self.free.push(i);
        }
    }

    /// `ngx_http_limit_req_expire`: `force` drops the least recently used state first;
    /// then up to two idle states (untouched for a minute and fully leaked) go.
    fn expire(&mut self, rate: i64, force: bool) {
        let now = now_ms();
        let mut n = usize::from(!force);
        while n < 3 {
            let t = self.tail;
            let Some(lr) = self.node(t) else { return };
            if lr.count > 0 {
                return;
            }
            if n != 0 {
                let ms = i64::try_from(now.abs_diff(lr.last)).unwrap_or(i64::MAX);
                if ms < 60_000 {
                    return;
                }
                if lr.excess - rate.saturating_mul(ms) / 1000 > 0 {
                    return;
                }
            }
            n += 1;
            self.remove(t);
        }
    }

    fn insert(&mut self, key: Bytes, excess: i64, last: u64, count: u32) -> usize {
        self.used += chunk(key.len());
        let node = Node {
            key: key.clone(),
            excess,
            last,
            count,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.nodes.get_mut(i) {
                    *slot = Some(node);
                }
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        i
    }
}

/// A `limit_req_zone`.
#[derive(Debug)]
pub(crate) struct Zone {
    name: String,
    key: Template,
    /// Requests per second × 1000 (nginx's `ctx->rate`).
    rate: i64,
    /// The key as written.
    key_src: String,
    table: Arc<Mutex<Table>>,
}

/// Zone tables by name, with the size and key they were made for.
type Tables<T> = HashMap<String, (usize, String, Weak<Mutex<T>>)>;

/// The tables of the zones of the running configuration(s), so that a reload with
/// the same zone (name, size and key) keeps its states, as nginx keeps a shared
/// memory zone across a reload.
pub(crate) struct Registry<T>(Mutex<Option<Tables<T>>>);

impl<T> Registry<T> {
    pub(crate) const fn new() -> Self {
        Registry(Mutex::new(None))
    }

    /// The table of zone `name`: the running one when size and key are the same,
    /// else a new one from `make`.
    pub(crate) fn table(
        &self,
        name: &str,
        size: usize,
        key: &str,
        make: impl FnOnce() -> T,
    ) -> Arc<Mutex<T>> {
        let Ok(mut reg) = self.0.lock() else {
            return Arc::new(Mutex::new(make()));
        };
        let reg = reg.get_or_insert_with(HashMap::new);
        if let Some((s, k, w)) = reg.get(name) {
            if *s == size && k == key {
                if let Some(t) = w.upgrade() {
                    return t;
                }
            }
        }
        let t = Arc::new(Mutex::new(make()));
        reg.retain(|_, (_, _, w)| w.strong_count() > 0);
        reg.insert(
            name.to_string(),
            (size, key.to_string(), Arc::downgrade(&t)),
        );
        t
    }
}

static TABLES: Registry<Table> = Registry::new();

/// What a lookup said (`ngx_http_limit_req_lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Accounted (the last limit).
    Ok,
    /// Counted, to be accounted later (an earlier limit): the node.
    Again(usize),
    /// Over the burst.
    Busy,
    /// The zone is full.
    Error,
}

fn elapsed(now: u64, last: u64) -> i64 {
    // nginx: ms < -60000 → 1, ms < 0 → 0 (a clock step back); ours is monotonic
    i64::try_from(now.saturating_sub(last)).unwrap_or(i64::MAX)
}

impl Zone {
    fn lookup(&self, key: &[u8], burst: i64, account: bool, ep: &mut i64) -> Lookup {
        let Ok(mut t) = self.table.lock() else {
            return Lookup::Error;
        };
        let now = now_ms();
        if let Some(&i) = t.map.get(key) {
            t.unlink(i);
            t.push_front(i);
            let rate = self.rate;
            let Some(lr) = t.node(i) else {
                return Lookup::Error;
            };
            let ms = elapsed(now, lr.last);
            let excess = (lr.excess - rate.saturating_mul(ms) / 1000 + 1000).max(0);
            *ep = excess;
            if excess > burst {
                return Lookup::Busy;
            }
            if account {
                lr.excess = excess;
                if ms != 0 {
                    lr.last = now;
                }
                return Lookup::Ok;
            }
            lr.count += 1;
            return Lookup::Again(i);
        }
        *ep = 0;
        let need = chunk(key.len());
        t.expire(self.rate, false);
        if t.used + need > t.budget {
            t.expire(self.rate, true);
            if t.used + need > t.budget {
                tracing::error!(
                    "could not allocate node in limit_req zone \"{}\"",
                    self.name
                );
                return Lookup::Error;
            }
        }
        let key = Bytes::copy_from_slice(key);
        if account {
            t.insert(key, 0, now, 0);
            Lookup::Ok
        } else {
            Lookup::Again(t.insert(key, 0, 0, 1))
        }
    }

    /// The accounting of an earlier limit's counted node; returns its excess.
    fn account(&self, i: usize) -> i64 {
        let Ok(mut t) = self.table.lock() else {
            return 0;
        };
        let now = now_ms();
        let rate = self.rate;
        let Some(lr) = t.node(i) else { return 0 };
        let ms = elapsed(now, lr.last);
        let excess = (lr.excess - rate.saturating_mul(ms) / 1000 + 1000).max(0);
        if ms != 0 {
            lr.last = now;
        }
        lr.excess = excess;
        lr.count = lr.count.saturating_sub(1);
        excess
    }

    fn unlock(&self, i: usize) {
        if let Ok(mut t) = self.table.lock() {
            if let Some(lr) = t.node(i) {
                lr.count = lr.count.saturating_sub(1);
            }
        }
    }

    /// Number of states held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().map(|t| t.map.len()).unwrap_or(0)
    }
}

/// The `limit_req_zone`s of one `http {}` level.
pub(crate) type Zones = HashMap<String, Arc<Zone>>;

/// `limit_req_zone KEY zone=NAME:SIZE rate=RATE [sync]` of an http level.
pub(crate) fn build_zones(http: &[Directive], bx: &BuildCx) -> Result<Zones, ConfigError> {
    let mut zones = Zones::new();
    for d in http.iter().filter(|d| d.name == "limit_req_zone") {
        let key = d
            .args
            .first()
            .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
        let (mut name, mut size, mut rate) = (None, 0usize, 1000i64);
        for a in d.args.iter().skip(1) {
            let v = a.value.as_str();
            if let Some(z) = v.strip_prefix("zone=") {
                let (n, s) = z
                    .split_once(':')
                    .ok_or_else(|| err(&a.span, format!("invalid zone size \"{v}\"")))?;
                let s = junction_config::values::parse_size(s)
                    .ok_or_else(|| err(&a.span, format!("invalid zone size \"{v}\"")))?;
                if s < 8 * PAGE as u64 {
                    return Err(err(&a.span, format!("zone \"{v}\" is too small")));
                }
                name = Some(n.to_string());
                size = usize::try_from(s).unwrap_or(usize::MAX);
            } else if let Some(r) = v.strip_prefix("rate=") {
                let (num, scale) = if let Some(n) = r.strip_suffix("r/s") {
                    (n, 1)
                } else if let Some(n) = r.strip_suffix("r/m") {
                    (n, 60)
                } else {
                    (r, 1)
                };
                let n: i64 = num
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(&a.span, format!("invalid rate \"{v}\"")))?;
                rate = n.saturating_mul(1000) / scale;
            } else if v == "sync" {
                // NGINX Plus: zone state synchronised across a cluster. One process
                // here: the zone is already shared by all workers.
            } else {
                return Err(err(&a.span, format!("invalid parameter \"{v}\"")));
            }
        }
        let name =
            name.ok_or_else(|| err(&d.span, "\"limit_req_zone\" must have \"zone\" parameter"))?;
        if let Some(z) = zones.get(&name) {
            return Err(err(
                &d.span,
                format!(
                    "limit_req_zone \"{name}\" is already bound to key \"{}\"",
                    z.key_src
                ),
            ));
        }
        let table = TABLES.table(&name, size, &key.value, || Table::new(size));
        zones.insert(
            name.clone(),
            Arc::new(Zone {
                name,
                key: bx.template(key)?,
                key_src: key.value.clone(),
                rate: rate.max(1),
                table,
            }),
        );
    }
    Ok(zones)
}

/// One `limit_req` line.
#[derive(Debug)]
struct Limit {
    zone: Arc<Zone>,
    /// × 1000
    burst: i64,
    /// × 1000
    delay: i64,
}

/// nginx's log levels for `limit_req_log_level` / `limit_conn_log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Info,
    Notice,
    Warn,
    Error,
}

impl Level {
    pub(crate) fn parse(scope: &Scope<'_>, name: &str) -> Result<Level, ConfigError> {
        Ok(match scope.arg(name) {
            None => Level::Error,
            Some((d, a)) => match a.value.as_str() {
                "info" => Level::Info,
                "notice" => Level::Notice,
                "warn" => Level::Warn,
                "error" => Level::Error,
                _ => return Err(invalid(d, a)),
            },
        })
    }

    /// One level less severe (the "delaying" lines).
    fn lower(self) -> Level {
        match self {
            Level::Error => Level::Warn,
            Level::Warn => Level::Notice,
            _ => Level::Info,
        }
    }

    pub(crate) fn log(self, cx: &RequestCtx, msg: &str) {
        // `notice` goes to the `warn` stream (tracing has no notice level).
        log(cx, msg, self == Level::Error, self >= Level::Notice);
    }
}

/// A status for `limit_req_status` / `limit_conn_status` (400–599).
pub(crate) fn status(scope: &Scope<'_>, name: &str) -> Result<u16, ConfigError> {
    match scope.arg(name) {
        None => Ok(503),
        Some((d, a)) => {
            let c: u16 = a.value.parse().map_err(|_| invalid(d, a))?;
            if !(400..=599).contains(&c) {
                return Err(err(&a.span, "value must be between 400 and 599"));
            }
            Ok(c)
        }
    }
}

/// The `limit_req` settings of a location.
#[derive(Debug, Default)]
pub(crate) struct LimitReq {
    limits: Vec<Limit>,
    status: u16,
    level: Option<Level>,
    dry_run: bool,
}

/// What the limit said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on (`Duration::ZERO`: at once; else after this delay).
    Pass(Duration),
    /// Answer with this status.
    Reject(u16),
}

impl LimitReq {
    pub(crate) fn build(scope: &Scope<'_>, zones: &Zones) -> Result<LimitReq, ConfigError> {
        let mut limits: Vec<Limit> = Vec::new();
        for d in scope.array("limit_req") {
            let (mut zone, mut burst, mut delay) = (None, 0i64, 0i64);
            for a in &d.args {
                let v = a.value.as_str();
                let num = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
                if let Some(z) = v.strip_prefix("zone=") {
                    zone =
                        Some(zones.get(z).cloned().ok_or_else(|| {
                            err(&a.span, format!("unknown limit_req_zone \"{z}\""))
                        })?);
                } else if let Some(b) = v.strip_prefix("burst=") {
                    burst = num(b)
                        .ok_or_else(|| err(&a.span, format!("invalid burst value \"{v}\"")))?;
                } else if let Some(b) = v.strip_prefix("delay=") {
                    delay = num(b)
                        .ok_or_else(|| err(&a.span, format!("invalid delay value \"{v}\"")))?;
                } else if v == "nodelay" {
                    delay = i64::MAX / 1000 / 1000;
                } else {
                    return Err(err(&a.span, format!("invalid parameter \"{v}\"")));
                }
            }
            let zone =
                zone.ok_or_else(|| err(&d.span, "\"limit_req\" must have \"zone\" parameter"))?;
            if limits.iter().any(|l| Arc::ptr_eq(&l.zone, &zone)) {
                return Err(err(&d.span, "\"limit_req\" directive is duplicate"));
            }
            limits.push(Limit {
                zone,
                burst: burst * 1000,
                delay: delay * 1000,
            });
        }
        Ok(LimitReq {
            limits,
            status: status(scope, "limit_req_status")?,
            level: Some(Level::parse(scope, "limit_req_log_level")?),
            dry_run: scope.flag("limit_req_dry_run", false)?,
        })
    }

    /// `ngx_http_limit_req_handler` (once per request: `$limit_req_status` set means
    /// done).
    pub(crate) fn check(&self, cx: &mut RequestCtx) -> Verdict {
        if self.limits.is_empty() || cx.limit_req_status.is_some() {
            return Verdict::Pass(Duration::ZERO);
        }
        let level = self.level.unwrap_or(Level::Error);
        let dry = if self.dry_run { ", dry run" } else { "" };
        let mut excess = 0i64;
        let mut rc = None;
        let mut counted: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        let last = self.limits.len() - 1;
        for (n, l) in self.limits.iter().enumerate() {
            at = n;
            let key = l.zone.key.eval(cx);
            if key.is_empty() {
                continue;
            }
            if key.len() > 65535 {
                log(
                    cx,
                    &format!(
                        "the value of the key is more than 65535 bytes in zone \"{}\"",
                        l.zone.name
                    ),
                    true,
                    false,
                );
                continue;
            }
            let r = l.zone.lookup(&key, l.burst, n == last, &mut excess);
            rc = Some(r);
            if let Lookup::Again(i) = r {
                counted.push((n, i));
                continue;
            }
            break;
        }
        let Some(rc) = rc else {
            return Verdict::Pass(Duration::ZERO);
        };
        if matches!(rc, Lookup::Busy | Lookup::Error) {
            if rc == Lookup::Busy {
                if let Some(l) = self.limits.get(at) {
                    level.log(
                        cx,
                        &format!(
                            "limiting requests{dry}, excess: {}.{:03} by zone \"{}\"",
                            excess / 1000,
                            excess % 1000,
                            l.zone.name
                        ),
                    );
                }
            }
            for (n, i) in counted {
                if let Some(l) = self.limits.get(n) {
                    l.zone.unlock(i);
                }
            }
            if self.dry_run {
                cx.limit_req_status = Some("REJECTED_DRY_RUN");
                return Verdict::Pass(Duration::ZERO);
            }
            cx.limit_req_status = Some("REJECTED");
            return Verdict::Reject(self.status);
        }
        // ngx_http_limit_req_account
        let mut excess = if matches!(rc, Lookup::Again(_)) {
            0
        } else {
            excess
        };
        let mut worst = at;
        let mut max_delay = match self.limits.get(at) {
            Some(l) if excess > l.delay => (excess - l.delay) * 1000 / l.zone.rate,
            _ => 0,
        };
        for &(n, i) in counted.iter().rev() {
            let Some(l) = self.limits.get(n) else {
                continue;
            };
            let e = l.zone.account(i);
            if e <= l.delay {
                continue;
            }
            let d = (e - l.delay) * 1000 / l.zone.rate;
            if d > max_delay {
                max_delay = d;
                excess = e;
                worst = n;
            }
        }
        if max_delay <= 0 {
            cx.limit_req_status = Some("PASSED");
            return Verdict::Pass(Duration::ZERO);
        }
        if let Some(l) = self.limits.get(worst) {
            level.lower().log(
                cx,
                &format!(
                    "delaying request{dry}, excess: {}.{:03}, by zone \"{}\"",
                    excess / 1000,
                    excess % 1000,
                    l.zone.name
                ),
            );
        }
        if self.dry_run {
            cx.limit_req_status = Some("DELAYED_DRY_RUN");
            return Verdict::Pass(Duration::ZERO);
        }
        cx.limit_req_status = Some("DELAYED");
        Verdict::Pass(Duration::from_millis(u64::try_from(max_delay).unwrap_or(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn zone(rate: i64, size: usize) -> Zone {
        Zone {
            name: "z".into(),
            key: Template::literal(Bytes::new()),
            key_src: String::new(),
            rate,
            table: Arc::new(Mutex::new(Table::new(size))),
        }
    }

    #[test]
    fn burst_of_a_fast_client() {
        // rate=10r/s burst=5: the first request and five more, then busy
        let z = zone(10_000, 1 << 20);
        let mut e = 0;
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(z.lookup(b"k", 5000, true, &mut e));
        }
        assert_eq!(
            got.iter().filter(|r| **r == Lookup::Ok).count(),
            6,
            "{got:?}"
        );
        assert_eq!(got.get(6), Some(&Lookup::Busy));
        // another key has its own bucket
        assert_eq!(z.lookup(b"other", 5000, true, &mut e), Lookup::Ok);
    }

    #[test]
    fn the_smallest_zone_stays_bounded_and_serves() {
        let z = zone(1000, 32 * 1024);
        let mut e = 0;
        for i in 0..50_000u32 {
            let key = i.to_be_bytes();
            assert_ne!(z.lookup(&key, 0, true, &mut e), Lookup::Error);
        }
        let n = z.len();
        assert!(n > 100 && n < 300, "{n} states in a 32k zone");
        assert!(chunk(4) == 128 && chunk(60) == 256);
    }
}
