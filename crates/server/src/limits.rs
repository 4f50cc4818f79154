//! nginx's preaccess phase (`limit_req`, then `limit_conn`, see [`crate::limit_req`]
//! and [`crate::limit_conn`]) and what limits a response on its way out: the
//! `limit_conn` counts held until the body has been sent, and `limit_rate` /
//! `limit_rate_after`.
//!
//! `set $limit_rate RATE;` sets the rate of one request (over `limit_rate`).
//!
//! `limit_rate` is applied to the response body itself (a wrapper that hands the
//! connection at most `rate × (seconds since the response started + 1) + after`
//! bytes, as nginx's write filter computes it), so it does not depend on how the
//! client connection writes.

use crate::limit_conn::LimitConn;
use crate::limit_req::{LimitReq, Verdict};
use crate::pages::status_response;
use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use junction_config::model::{BuildCx, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::body::Body;
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The zones of one `http {}` level.
#[derive(Debug, Default)]
pub(crate) struct Zones {
    req: crate::limit_req::Zones,
    conn: crate::limit_conn::Zones,
}

impl Zones {
    pub(crate) fn build(http: &[Directive], bx: &BuildCx) -> Result<Zones, ConfigError> {
        Ok(Zones {
            req: crate::limit_req::build_zones(http, bx)?,
            conn: crate::limit_conn::build_zones(http, bx)?,
        })
    }
}

/// A location's limits.
#[derive(Debug, Default)]
pub struct Limits {
    req: LimitReq,
    conn: LimitConn,
    rate: Option<Template>,
    rate_after: Option<Template>,
    /// The slot of `$limit_rate` when some `set $limit_rate …` writes it (a value set
    /// for the request wins over `limit_rate`, as nginx's `r->limit_rate_set`).
    rate_slot: Option<usize>,
}

impl Limits {
    pub(crate) fn build(
        scope: &Scope<'_>,
        zones: &Zones,
        bx: &BuildCx,
    ) -> Result<Limits, ConfigError> {
        let size_tpl = |name: &str| -> Result<Option<Template>, ConfigError> {
            match scope.arg(name) {
                None => Ok(None),
                Some((d, a)) => {
                    let t = bx.template(a)?;
                    if let Some(lit) = t.as_literal() {
                        let v = std::str::from_utf8(&lit)
                            .ok()
                            .and_then(junction_config::values::parse_size);
                        match v {
                            None => return Err(junction_config::model::invalid(d, a)),
                            Some(0) => return Ok(None),
                            Some(_) => {}
                        }
                    }
                    Ok(Some(t))
                }
            }
        };
        Ok(Limits {
            req: LimitReq::build(scope, &zones.req)?,
            conn: LimitConn::build(scope, &zones.conn)?,
            rate: size_tpl("limit_rate")?,
            rate_after: size_tpl("limit_rate_after")?,
            rate_slot: bx.vars.find("limit_rate"),
        })
    }

    /// The preaccess phase: `limit_req` (rejects, or delays the request), then
    /// `limit_conn`. `Some(response)`: refused with the limit's status.
    pub(crate) async fn preaccess(
        &self,
        cx: &mut RequestCtx,
        tokens: bool,
    ) -> Option<http::Response<Body>> {
        match self.req.check(cx) {
            Verdict::Reject(code) => {
                let s = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Some(status_response(s, tokens));
            }
            Verdict::Pass(d) if !d.is_zero() => tokio::time::sleep(d).await,
            Verdict::Pass(_) => {}
        }
        if let Err(code) = self.conn.check(cx) {
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Some(status_response(s, tokens));
        }
        None
    }

    /// The response on its way out: the request's held counts go with its body, and
    /// `limit_rate` paces it.
    pub(crate) fn output(
        &self,
        resp: http::Response<Body>,
        cx: &mut RequestCtx,
    ) -> http::Response<Body> {
        let size = |t: &Option<Template>| {
            t.as_ref()
                .and_then(|t| junction_config::values::parse_size(&t.eval_string(cx)))
                .unwrap_or(0)
        };
        let set = self.rate_slot.and_then(|s| cx.slot(s)).map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(junction_config::values::parse_size)
                .unwrap_or(0)
        });
        let rate = set.unwrap_or_else(|| size(&self.rate));
        let after = if rate > 0 { size(&self.rate_after) } else { 0 };
        let held = std::mem::take(&mut cx.held);
        if rate == 0 && held.is_empty() {
            return resp;
        }
        let (parts, inner) = resp.into_parts();
        let body = Paced {
            inner,
            held,
            rate,
            after,
            sent: 0,
            start: junction_core::time::now(),
            sleep: None,
            pending: None,
        };
        http::Response::from_parts(parts, body.boxed_unsync())
    }
}

/// A response body paced by `limit_rate`, holding the request's `limit_conn` counts.
struct Paced {
    inner: Body,
    held: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    rate: u64,
    after: u64,
    sent: u64,
    start: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    pending: Option<Bytes>,
}

impl Paced {
    /// Bytes the client may have had by now.
    fn allowed(&self) -> u64 {
        let ms =
            u64::try_from(junction_core::time::since(self.start).as_millis()).unwrap_or(u64::MAX);
        self.rate.saturating_mul(ms.saturating_add(1000)) / 1000 + self.after
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            let chunk = match this.pending.take() {
                Some(b) => b,
                None => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(f))) => match f.into_data() {
                        Ok(d) => d,
                        Err(f) => return Poll::Ready(Some(Ok(f))),
                    },
                    Poll::Ready(None) => {
                        this.held.clear();
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                },
            };
            if this.rate == 0 || chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            let allowed = this.allowed();
            if this.sent >= allowed {
                // Wait until a slice (a tenth of a second's worth, at least 1 byte) may go.
                let want = (this.rate / 10).max(1).min(chunk.len() as u64);
                let target = this.sent + want;
                let ms = (target.saturating_sub(this.after))
                    .saturating_mul(1000)
                    .checked_div(this.rate)
                    .unwrap_or(0)
                    .saturating_sub(1000);
                let at = this.start + Duration::from_millis(ms);
                this.sleep = Some(Box::pin(tokio::time::sleep_until(at.into())));
                this.pending = Some(chunk);
                continue;
            }
            let n = usize::try_from(allowed - this.sent)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let mut chunk = chunk;
            if n < chunk.len() {
                this.pending = Some(chunk.split_off(n));
            }
            this.sent += n as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.pending {
            None => self.inner.size_hint(),
            Some(p) => {
                let mut h = SizeHint::new();
                h.set_lower(self.inner.size_hint().lower() + p.len() as u64);
                h
            }
        }
    }
}
