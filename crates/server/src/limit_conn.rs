//! ngx_http_limit_conn_module: `limit_conn_zone KEY zone=NAME:SIZE`, `limit_conn ZONE
//! N` (several per level, inherited as an array), `limit_conn_status`,
//! `limit_conn_log_level`, `limit_conn_dry_run`, `$limit_conn_status`.
//!
//! A zone counts, per key, the requests being processed (in nginx's HTTP/1, one per
//! connection): the count is taken in the preaccess phase and given back when the
//! response has been sent (the [`Held`] guard travels with the response body). A zone
//! holds as many keys as nginx's slab allocator would fit (`36 + key length` bytes
//! per key, rounded to its chunk size); a new key in a full zone is refused with the
//! limit's status, as nginx does (there is no eviction: every key is in use).

use crate::limit_req::{status, Level};
use bytes::Bytes;
use junction_config::model::{err, BuildCx, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `offsetof(ngx_rbtree_node_t, color) + offsetof(ngx_http_limit_conn_node_t, data)`.
const NODE_HEAD: usize = 36;
const PAGE: usize = 4096;

fn chunk(key_len: usize) -> usize {
    (NODE_HEAD + key_len).next_power_of_two().max(8)
}

/// A `limit_conn_zone`.
#[derive(Debug)]
pub(crate) struct Zone {
    name: String,
    key: Template,
    table: Arc<Mutex<Counts>>,
    budget: usize,
}

/// Requests in progress per key, and the bytes their states take.
type Counts = (HashMap<Bytes, u32>, usize);

/// The running configuration's zone tables: a reload that keeps a zone (same name,
/// size and key) keeps counting the requests still in progress.
static TABLES: crate::limit_req::Registry<Counts> = crate::limit_req::Registry::new();

/// A counted request: given back when dropped.
#[derive(Debug)]
struct Held {
    zone: Arc<Zone>,
    key: Bytes,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut t) = self.zone.table.lock() {
            let (map, used) = &mut *t;
            if let Some(n) = map.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.key);
                    *used = used.saturating_sub(chunk(self.key.len()));
                }
            }
        }
    }
}

/// The `limit_conn_zone`s of one `http {}` level.
pub(crate) type Zones = HashMap<String, Arc<Zone>>;

/// `limit_conn_zone KEY zone=NAME:SIZE`.
pub(crate) fn build_zones(http: &[Directive], bx: &BuildCx) -> Result<Zones, ConfigError> {
    let mut zones = Zones::new();
    for d in http.iter().filter(|d| d.name == "limit_conn_zone") {
        let (Some(key), Some(z)) = (d.args.first(), d.args.get(1)) else {
            return Err(err(
                &d.span,
                "invalid number of arguments in \"limit_conn_zone\" directive",
            ));
        };
        let v = z.value.as_str();
        let Some(spec) = v.strip_prefix("zone=") else {
            return Err(err(&z.span, format!("invalid parameter \"{v}\"")));
        };
        let (name, size) = spec
            .split_once(':')
            .ok_or_else(|| err(&z.span, format!("invalid zone size \"{v}\"")))?;
        let size = junction_config::values::parse_size(size)
            .ok_or_else(|| err(&z.span, format!("invalid zone size \"{v}\"")))?;
        if size < 8 * PAGE as u64 {
            return Err(err(&z.span, format!("zone \"{v}\" is too small")));
        }
        if zones.contains_key(name) {
            return Err(err(
                &d.span,
                format!("limit_conn_zone \"{name}\" is already bound"),
            ));
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let pages = size.saturating_sub(1024) / (PAGE + 24);
        zones.insert(
            name.to_string(),
            Arc::new(Zone {
                name: name.to_string(),
                key: bx.template(key)?,
                table: TABLES.table(name, size, &key.value, || (HashMap::new(), 0)),
                budget: (pages * PAGE).saturating_sub(256),
            }),
        );
    }
    Ok(zones)
}

/// The `limit_conn` settings of a location.
#[derive(Debug, Default)]
pub(crate) struct LimitConn {
    limits: Vec<(Arc<Zone>, u32)>,
    status: u16,
    level: Option<Level>,
    dry_run: bool,
}

impl LimitConn {
    pub(crate) fn build(scope: &Scope<'_>, zones: &Zones) -> Result<LimitConn, ConfigError> {
        let mut limits: Vec<(Arc<Zone>, u32)> = Vec::new();
        for d in scope.array("limit_conn") {
            let (Some(z), Some(n)) = (d.args.first(), d.args.get(1)) else {
                return Err(err(
                    &d.span,
                    "invalid number of arguments in \"limit_conn\" directive",
                ));
            };
            let zone = zones
                .get(&z.value)
                .cloned()
                .ok_or_else(|| err(&z.span, format!("unknown limit_conn_zone \"{}\"", z.value)))?;
            let n: u32 = n
                .value
                .parse()
                .ok()
                .filter(|n| (1..=65535).contains(n))
                .ok_or_else(|| {
                    err(
                        &n.span,
                        format!("invalid number of connections \"{}\"", n.value),
                    )
                })?;
            if limits.iter().any(|(l, _)| Arc::ptr_eq(l, &zone)) {
                return Err(err(&d.span, "\"limit_conn\" directive is duplicate"));
            }
            limits.push((zone, n));
        }
        Ok(LimitConn {
            limits,
            status: status(scope, "limit_conn_status")?,
            level: Some(Level::parse(scope, "limit_conn_log_level")?),
            dry_run: scope.flag("limit_conn_dry_run", false)?,
        })
    }

    /// `ngx_http_limit_conn_handler`: `Err(status)` refuses the request; the counts
    /// taken are kept in `cx.held` until the response is sent.
    pub(crate) fn check(&self, cx: &mut RequestCtx) -> Result<(), u16> {
        if self.limits.is_empty() || cx.limit_conn_status.is_some() {
            return Ok(());
        }
        let mut held: Vec<Held> = Vec::new();
        for (zone, max) in &self.limits {
            let key = zone.key.eval(cx);
            if key.is_empty() {
                continue;
            }
            if key.len() > 255 {
                crate::access::log(
                    cx,
                    &format!(
                        "the value of the key is more than 255 bytes in zone \"{}\"",
                        zone.name
                    ),
                    true,
                    false,
                );
                continue;
            }
            cx.limit_conn_status = Some("PASSED");
            let refused = {
                let Ok(mut t) = zone.table.lock() else {
                    return Err(500);
                };
                let (map, used) = &mut *t;
                match map.get_mut(&key) {
                    Some(n) if *n >= *max => Some(true),
                    Some(n) => {
                        *n += 1;
                        None
                    }
                    None if *used + chunk(key.len()) > zone.budget => Some(false),
                    None => {
                        *used += chunk(key.len());
                        map.insert(key.clone(), 1);
                        None
                    }
                }
            };
            match refused {
                None => held.push(Held {
                    zone: zone.clone(),
                    key,
                }),
                Some(limited) => {
                    let dry = if self.dry_run { ", dry run" } else { "" };
                    if limited {
                        self.level.unwrap_or(Level::Error).log(
                            cx,
                            &format!("limiting connections{dry} by zone \"{}\"", zone.name),
                        );
                    } else {
                        tracing::error!(
                            "could not allocate node in limit_conn zone \"{}\"",
                            zone.name
                        );
                    }
                    drop(held);
                    if self.dry_run {
                        cx.limit_conn_status = Some("REJECTED_DRY_RUN");
                        return Ok(());
                    }
                    cx.limit_conn_status = Some("REJECTED");
                    return Err(self.status);
                }
            }
        }
        for h in held {
            cx.held.push(Arc::new(h));
        }
        Ok(())
    }
}
