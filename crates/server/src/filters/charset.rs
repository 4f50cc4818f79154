//! `charset`, `charset_types`, `override_charset`, `source_charset` as nginx's
//! `ngx_http_charset_filter_module` decides them (the conversion itself, through a
//! `charset_map`, is `super::charset_map`):
//! - a response with a type in `charset_types` and no charset of its own gets
//!   `; charset=NAME` (not a 301/302, not when its type already has parameters);
//! - one that names a charset keeps it, unless `override_charset on`: then the same
//!   charset (any case) is rewritten as `charset` names it, and a different one is
//!   converted through the `charset_map` between the two (either direction), or, with
//!   none, left as is with nginx's "no charset_map" error line;
//! - `source_charset` is what a response without a charset is in: the same as
//!   `charset` (any case) sets it; a different one is converted through a
//!   `charset_map`; a fixed pair without one is refused at load, as nginx (one from a
//!   variable logs the error);
//! - a response with a `Content-Encoding` is not converted (and keeps its type).
//!
//! `charset` may hold variables (evaluated per response).

use http::header::CONTENT_TYPE;
use http::HeaderValue;
use junction_config::model::{BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;

use super::Types;

/// A location's charset settings.
#[derive(Debug, Default)]
pub(crate) struct CharsetConf {
    /// `charset` (None: off).
    charset: Option<Template>,
    types: Option<Types>,
    override_charset: bool,
    /// `source_charset` (None: off).
    source: Option<Template>,
    /// The configuration's `charset_map` tables (read when `charset` is set).
    maps: Option<std::sync::Arc<super::charset_map::CharsetMaps>>,
}

const DEFAULT_TYPES: &[&str] = &[
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

fn charset_arg(
    scope: &Scope<'_>,
    bx: &BuildCx,
    name: &str,
) -> Result<Option<Template>, ConfigError> {
    match scope.arg(name) {
        None => Ok(None),
        Some((_, a)) if a.value == "off" => Ok(None),
        Some((_, a)) => Ok(Some(bx.template(a)?)),
    }
}

impl CharsetConf {
    /// Reads the charset directives at `scope`.
    pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<CharsetConf, ConfigError> {
        let charset = charset_arg(scope, bx, "charset")?;
        let maps = match charset {
            Some(_) => Some(std::sync::Arc::new(super::charset_map::CharsetMaps::build(
                scope,
            )?)),
            None => None,
        };
        // nginx refuses at load a fixed pair that needs a conversion table it lacks.
        if let (Some((_, d)), Some((sd, s))) = (scope.arg("charset"), scope.arg("source_charset")) {
            let fixed = |v: &str| !v.contains('$') && v != "off";
            let mapped = maps
                .as_ref()
                .is_some_and(|m| m.find(&s.value, &d.value).is_some());
            if fixed(&d.value)
                && fixed(&s.value)
                && !d.value.eq_ignore_ascii_case(&s.value)
                && !mapped
            {
                return Err(junction_config::model::err(
                    &sd.span,
                    format!(
                        "no \"charset_map\" between the charsets \"{}\" and \"{}\"",
                        s.value, d.value
                    ),
                ));
            }
        }
        Ok(CharsetConf {
            charset,
            maps,
            types: Some(super::types(scope, "charset_types", DEFAULT_TYPES)),
            override_charset: scope.flag("override_charset", false)?,
            source: charset_arg(scope, bx, "source_charset")?,
        })
    }
}

/// The `charset=` parameter of a Content-Type, unquoted.
fn charset_param(ct: &str) -> Option<&str> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Sets the charset of a response about to be sent.
pub(crate) fn apply(
    resp: &mut http::Response<junction_core::body::Body>,
    cx: &RequestCtx,
    c: &CharsetConf,
) {
    let Some(dst) = &c.charset else { return };
    let Some(ct) = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
    else {
        return;
    };
    let own = charset_param(ct);
    if own.is_some() {
        if !c.override_charset {
            return;
        }
    } else if !c
        .types
        .as_ref()
        .is_some_and(|t| t.matches(&super::base_type(resp.headers())))
    {
        return;
    }
    let dst = dst.eval_string(cx);
    let src = match own {
        Some(s) => Some(s.to_string()),
        None => c.source.as_ref().map(|s| s.eval_string(cx)),
    };
    let base = ct.split(';').next().unwrap_or("").trim_end().to_string();
    let redirect = matches!(resp.status().as_u16(), 301 | 302);
    let value = match src {
        // No source charset: the name is added to a type without parameters.
        None => {
            if redirect || ct.contains(';') {
                return;
            }
            format!("{ct}; charset={dst}")
        }
        Some(s) if s.eq_ignore_ascii_case(&dst) => {
            if redirect {
                base
            } else {
                format!("{base}; charset={dst}")
            }
        }
        Some(s) => {
            let conv = c.maps.as_ref().and_then(|m| m.find(&s, &dst));
            if let Some(conv) = conv {
                // nginx converts neither a compressed body nor its type.
                if resp
                    .headers()
                    .get(http::header::CONTENT_ENCODING)
                    .is_some_and(|v| !v.is_empty())
                {
                    return;
                }
                if conv.changes_length() {
                    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                }
                let body = std::mem::replace(resp.body_mut(), junction_core::body::empty());
                *resp.body_mut() = conv.body(body);
                if let Ok(v) = HeaderValue::from_str(&format!("{base}; charset={dst}")) {
                    resp.headers_mut().insert(CONTENT_TYPE, v);
                }
                return;
            }
            tracing::error!(
                "*{} no \"charset_map\" between the charsets \"{s}\" and \"{dst}\", client: {}, server: {}, request: \"{} {}\"",
                cx.conn.id,
                cx.conn.remote.ip(),
                cx.server_name,
                cx.method,
                cx.request_uri
            );
            return;
        }
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
}
