//! `expires [modified] TIME | epoch | max | off | @TIME`, as nginx's headers filter
//! (`ngx_http_set_expires`): on the statuses 200, 201, 204, 206, 301, 302, 303, 304,
//! 307 and 308 only, the response gets `Expires` and a single `Cache-Control`
//! (replacing the upstream's):
//! - `epoch`: `Thu, 01 Jan 1970 00:00:01 GMT`, `no-cache`;
//! - `max`: `Thu, 31 Dec 2037 23:55:55 GMT`, `max-age=315360000`;
//! - `0`: now, `max-age=0`;
//! - `TIME` (may be negative): now + TIME, `max-age=TIME` (negative: `no-cache`);
//! - `modified TIME`: the response's `Last-Modified` + TIME (no Last-Modified: as
//!   `TIME`), `max-age` the seconds from now to then (`no-cache` if past);
//! - `@HH:MM`: the next such time of day, `max-age` until then (Junction keeps
//!   time in UTC, as its logs do).
//!
//! With variables the value is parsed per request (an invalid or `off` value sets
//! nothing), exactly as nginx does; without, once at load.

use http::header::{CACHE_CONTROL, EXPIRES, LAST_MODIFIED};
use http::HeaderValue;
use junction_config::model::{err, BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What an `expires` value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Off,
    Epoch,
    Max,
    /// From the time of the request.
    Access,
    /// From the response's Last-Modified.
    Modified,
    /// `@TIME`: the next such time of day.
    Daily,
}

/// A location's `expires`.
#[derive(Debug, Clone, Default)]
pub(crate) enum ExpiresConf {
    /// None (nginx's default, `off`).
    #[default]
    Off,
    /// A value known at load: mode and seconds.
    Fixed(Mode, i64),
    /// A value with variables, parsed per request (`modified` given or not).
    Var(bool, Template),
}

/// `ngx_http_parse_expires`.
fn parse(v: &str, modified: bool) -> Result<(Mode, i64), &'static str> {
    if !modified {
        match v {
            "epoch" => return Ok((Mode::Epoch, 0)),
            "max" => return Ok((Mode::Max, 0)),
            "off" => return Ok((Mode::Off, 0)),
            _ => {}
        }
    }
    let mut mode = if modified {
        Mode::Modified
    } else {
        Mode::Access
    };
    let (rest, minus) = if let Some(r) = v.strip_prefix('@') {
        if modified {
            return Err("daily time cannot be used with \"modified\" parameter");
        }
        mode = Mode::Daily;
        (r, false)
    } else if let Some(r) = v.strip_prefix('+') {
        (r, false)
    } else if let Some(r) = v.strip_prefix('-') {
        (r, true)
    } else {
        (v, false)
    };
    let secs = junction_config::values::parse_time_secs(rest).ok_or("invalid value")?;
    let secs = i64::try_from(secs).map_err(|_| "invalid value")?;
    if mode == Mode::Daily && secs > 24 * 60 * 60 {
        return Err("daily time value must be less than 24 hours");
    }
    Ok((mode, if minus { -secs } else { secs }))
}

impl ExpiresConf {
    /// Reads `expires` at `scope` (inherited).
    pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<ExpiresConf, ConfigError> {
        let mut here = scope.local_all("expires");
        if let (Some(_), Some(dup)) = (here.next(), here.next()) {
            return Err(err(&dup.span, "\"expires\" directive is duplicate"));
        }
        let Some(d) = scope.get("expires") else {
            return Ok(ExpiresConf::Off);
        };
        let (modified, a) = match (d.args.first(), d.args.get(1)) {
            (Some(a), None) => (false, a),
            (Some(m), Some(a)) if m.value == "modified" => (true, a),
            (Some(m), Some(_)) => {
                return Err(err(
                    &m.span,
                    format!("invalid value \"{}\" in \"expires\" directive", m.value),
                ))
            }
            _ => {
                return Err(err(
                    &d.span,
                    "invalid number of arguments in \"expires\" directive",
                ))
            }
        };
        let t = bx.template(a)?;
        if !t.is_literal() {
            return Ok(ExpiresConf::Var(modified, t));
        }
        let (mode, secs) = parse(&a.value, modified)
            .map_err(|m| err(&a.span, format!("\"expires\" directive {m}")))?;
        Ok(match mode {
            Mode::Off => ExpiresConf::Off,
            m => ExpiresConf::Fixed(m, secs),
        })
    }
}

fn secs_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn http_time(secs: i64) -> HeaderValue {
    let t = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    HeaderValue::from_str(&httpdate::fmt_http_date(t))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// `ngx_http_next_time` (in UTC): the next moment at `tod` seconds after midnight.
fn next_time(now: i64, tod: i64) -> i64 {
    let midnight = now - now.rem_euclid(86_400);
    let t = midnight + tod;
    if t > now {
        t
    } else {
        t + 86_400
    }
}

/// Sets `Expires` and `Cache-Control` on a response about to be sent.
pub(crate) fn apply(
    resp: &mut http::Response<junction_core::body::Body>,
    cx: &RequestCtx,
    e: &ExpiresConf,
) {
    let (mode, secs, conf_secs) = match e {
        ExpiresConf::Off => return,
        ExpiresConf::Fixed(m, s) => (*m, *s, *s),
        ExpiresConf::Var(modified, t) => {
            let v = t.eval(cx);
            let Ok((m, s)) = parse(std::str::from_utf8(&v).unwrap_or(""), *modified) else {
                return;
            };
            (m, s, 0)
        }
    };
    if mode == Mode::Off
        || !matches!(
            resp.status().as_u16(),
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        )
    {
        return;
    }
    let h = resp.headers_mut();
    let (expires, cc) = match mode {
        Mode::Epoch => (
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:01 GMT"),
            HeaderValue::from_static("no-cache"),
        ),
        Mode::Max => (
            HeaderValue::from_static("Thu, 31 Dec 2037 23:55:55 GMT"),
            HeaderValue::from_static("max-age=315360000"),
        ),
        _ => {
            let now = secs_since_epoch(SystemTime::now());
            if secs == 0 && mode != Mode::Daily {
                (http_time(now), HeaderValue::from_static("max-age=0"))
            } else {
                let last_modified = h
                    .get(LAST_MODIFIED)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
                    .map(secs_since_epoch);
                let (at, max_age) = match (mode, last_modified) {
                    (Mode::Daily, _) => {
                        let at = next_time(now, secs);
                        (at, at - now)
                    }
                    (Mode::Modified, Some(lm)) => (lm + secs, lm + secs - now),
                    _ => (now + secs, secs),
                };
                let cc = if conf_secs < 0 || max_age < 0 {
                    HeaderValue::from_static("no-cache")
                } else {
                    HeaderValue::from_str(&format!("max-age={max_age}"))
                        .unwrap_or(HeaderValue::from_static("no-cache"))
                };
                (http_time(at), cc)
            }
        }
    };
    h.insert(EXPIRES, expires);
    h.insert(CACHE_CONTROL, cc);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_nginx() {
        assert_eq!(parse("epoch", false), Ok((Mode::Epoch, 0)));
        assert_eq!(parse("max", false), Ok((Mode::Max, 0)));
        assert_eq!(parse("off", false), Ok((Mode::Off, 0)));
        assert_eq!(parse("1h", false), Ok((Mode::Access, 3600)));
        assert_eq!(parse("-1h", false), Ok((Mode::Access, -3600)));
        assert_eq!(parse("+30d", true), Ok((Mode::Modified, 30 * 86_400)));
        assert_eq!(parse("@15h30m", false), Ok((Mode::Daily, 15 * 3600 + 1800)));
        assert!(parse("@1h", true).is_err());
        assert!(parse("@25h", false).is_err());
        assert!(parse("max", true).is_err());
        assert!(parse("soon", false).is_err());
    }

    #[test]
    fn next_time_is_today_or_tomorrow() {
        let day = 86_400 * 20_000;
        assert_eq!(next_time(day + 100, 200), day + 200);
        assert_eq!(next_time(day + 300, 200), day + 86_400 + 200);
        assert_eq!(next_time(day + 200, 200), day + 86_400 + 200);
    }
}
