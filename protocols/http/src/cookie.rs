//! `proxy_cookie_domain`, `proxy_cookie_path` and `proxy_cookie_flags`: the upstream's
//! `Set-Cookie` headers rewritten as nginx's `ngx_http_proxy_rewrite_cookie` does.
//!
//! The header is split at `;` into `name=value` and attributes (spaces around trimmed);
//! - `domain=`: the first rule whose domain equals it (case-insensitive, a leading `.`
//!   on either side ignored and kept) replaces it; `~regex` (case-insensitive) matches
//!   anywhere and replaces the whole value, with its captures as `$1`…;
//! - `path=`: a rule is a prefix of it (case-sensitive) and that prefix is replaced;
//!   `~regex` / `~*regex` as for domains;
//! - flags, for the first rule whose cookie name matches (case-insensitive, or `~regex`):
//!   `secure`, `httponly`, `samesite=strict|lax|none` added when missing (a different
//!   SameSite is replaced), `nosecure`, `nohttponly`, `nosamesite` removed.
//!
//! Only a header that changed is rebuilt (attributes joined by `; `). Rules with
//! variables are evaluated per response; regexes are compiled at load.

use http::HeaderValue;
use junction_config::model::{err, BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::ctx::{Captures, RequestCtx};
use junction_core::vars::Template;
use std::sync::Arc;

#[derive(Debug)]
enum Pattern {
    /// Compared as text (may hold variables).
    Text(Template),
    /// A regex: a match anywhere.
    Regex(regex::Regex),
}

#[derive(Debug)]
struct Rewrite {
    pattern: Pattern,
    replacement: Template,
}

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    secure: Option<bool>,
    httponly: Option<bool>,
    /// `Some(None)`: `nosamesite`.
    samesite: Option<Option<&'static str>>,
}

#[derive(Debug)]
struct FlagRule {
    cookie: Pattern,
    flags: Vec<Template>,
}

/// The cookie rules of a location (none: `Set-Cookie` passes unchanged).
#[derive(Debug, Default)]
pub(crate) struct CookieRules {
    domains: Vec<Rewrite>,
    paths: Vec<Rewrite>,
    flags: Vec<FlagRule>,
}

fn compile(
    a: &junction_config::Arg,
    src: &str,
    caseless: bool,
) -> Result<regex::Regex, ConfigError> {
    regex::RegexBuilder::new(src)
        .case_insensitive(caseless)
        .build()
        .map_err(|e| err(&a.span, format!("pcre2_compile() failed: {e} in \"{src}\"")))
}

/// The directives of one kind at the innermost level that has any; `off` alone: none.
fn list<'a>(
    scope: &Scope<'a>,
    name: &str,
) -> Result<Vec<&'a junction_config::Directive>, ConfigError> {
    let all = scope.array(name);
    let off = all
        .iter()
        .any(|d| d.args.len() == 1 && d.args.first().is_some_and(|a| a.value == "off"));
    if off {
        if let Some(dup) = all.get(1) {
            return Err(err(&dup.span, format!("\"{name}\" directive is duplicate")));
        }
        return Ok(Vec::new());
    }
    for d in &all {
        if let (Some(a), 1) = (d.args.first(), d.args.len()) {
            return Err(err(&a.span, format!("invalid parameter \"{}\"", a.value)));
        }
    }
    Ok(all)
}

impl CookieRules {
    /// Reads the three directives at `scope`.
    pub(crate) fn build(scope: &Scope<'_>, bx: &BuildCx) -> Result<CookieRules, ConfigError> {
        let mut r = CookieRules::default();
        for d in list(scope, "proxy_cookie_domain")? {
            let (Some(p), Some(t)) = (d.args.first(), d.args.get(1)) else {
                continue;
            };
            let pattern = match p.value.strip_prefix('~') {
                Some(re) => Pattern::Regex(compile(p, re, true)?),
                None => {
                    let mut a = p.clone();
                    a.value = p.value.strip_prefix('.').unwrap_or(&p.value).to_string();
                    Pattern::Text(bx.template(&a)?)
                }
            };
            let mut t2 = t.clone();
            if matches!(pattern, Pattern::Text(_)) {
                t2.value = t.value.strip_prefix('.').unwrap_or(&t.value).to_string();
            }
            r.domains.push(Rewrite {
                pattern,
                replacement: bx.template(&t2)?,
            });
        }
        for d in list(scope, "proxy_cookie_path")? {
            let (Some(p), Some(t)) = (d.args.first(), d.args.get(1)) else {
                continue;
            };
            let pattern = if let Some(re) = p.value.strip_prefix("~*") {
                Pattern::Regex(compile(p, re, true)?)
            } else if let Some(re) = p.value.strip_prefix('~') {
                Pattern::Regex(compile(p, re, false)?)
            } else {
                Pattern::Text(bx.template(p)?)
            };
            r.paths.push(Rewrite {
                pattern,
                replacement: bx.template(t)?,
            });
        }
        for d in list(scope, "proxy_cookie_flags")? {
            let Some(p) = d.args.first() else { continue };
            let cookie = match p.value.strip_prefix('~') {
                Some(re) => Pattern::Regex(compile(p, re, true)?),
                None => Pattern::Text(bx.template(p)?),
            };
            let flags = d
                .args
                .iter()
                .skip(1)
                .map(|a| bx.template(a))
                .collect::<Result<_, _>>()?;
            r.flags.push(FlagRule { cookie, flags });
        }
        Ok(r)
    }

    /// Whether any rule is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.paths.is_empty() && self.flags.is_empty()
    }

    /// The rewritten `Set-Cookie`, or `None` when nothing changed.
    pub(crate) fn rewrite(&self, cx: &mut RequestCtx, v: &HeaderValue) -> Option<HeaderValue> {
        let text = std::str::from_utf8(v.as_bytes()).ok()?;
        let mut attrs = parse(text);
        if attrs.first().is_none_or(|a| a.1.is_none()) {
            return None;
        }
        let mut changed = false;
        for i in 1..attrs.len() {
            let Some((key, Some(value))) = attrs.get(i).cloned() else {
                continue;
            };
            let Some(key) = key else { continue };
            let rules = if key.eq_ignore_ascii_case("domain") {
                &self.domains
            } else if key.eq_ignore_ascii_case("path") {
                &self.paths
            } else {
                continue;
            };
            let domain = key.eq_ignore_ascii_case("domain");
            if let Some(nv) = rules.iter().find_map(|r| apply(cx, r, &value, domain)) {
                if let Some(slot) = attrs.get_mut(i) {
                    slot.1 = Some(nv);
                }
                changed = true;
            }
        }
        if !self.flags.is_empty() && self.edit_flags(cx, &mut attrs) {
            changed = true;
        }
        if !changed {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut first = true;
        for (k, val) in &attrs {
            let Some(k) = k else { continue };
            if !first {
                out.push_str("; ");
            }
            first = false;
            out.push_str(k);
            if let Some(val) = val {
                out.push('=');
                out.push_str(val);
            }
        }
        HeaderValue::from_str(&out).ok()
    }

    fn edit_flags(
        &self,
        cx: &RequestCtx,
        attrs: &mut Vec<(Option<String>, Option<String>)>,
    ) -> bool {
        let name = attrs.first().and_then(|a| a.0.clone()).unwrap_or_default();
        let Some(rule) = self.flags.iter().find(|r| match &r.cookie {
            Pattern::Regex(re) => re.is_match(&name),
            Pattern::Text(t) => t.eval_string(cx).eq_ignore_ascii_case(&name),
        }) else {
            return false;
        };
        let mut f = Flags::default();
        for t in &rule.flags {
            let v = t.eval_string(cx).to_ascii_lowercase();
            match v.as_str() {
                "secure" => f.secure = Some(true),
                "nosecure" => f.secure = Some(false),
                "httponly" => f.httponly = Some(true),
                "nohttponly" => f.httponly = Some(false),
                "samesite=strict" => f.samesite = Some(Some("Strict")),
                "samesite=lax" => f.samesite = Some(Some("Lax")),
                "samesite=none" => f.samesite = Some(Some("None")),
                "nosamesite" => f.samesite = Some(None),
                _ => {}
            }
        }
        if f.secure.is_none() && f.httponly.is_none() && f.samesite.is_none() {
            return false;
        }
        for a in attrs.iter_mut().skip(1) {
            let Some(k) = a.0.clone() else { continue };
            if k.eq_ignore_ascii_case("secure") {
                match f.secure {
                    Some(true) => f.secure = None,
                    Some(false) => a.0 = None,
                    None => {}
                }
            } else if k.eq_ignore_ascii_case("httponly") {
                match f.httponly {
                    Some(true) => f.httponly = None,
                    Some(false) => a.0 = None,
                    None => {}
                }
            } else if k.eq_ignore_ascii_case("samesite") {
                match f.samesite {
                    Some(Some(want)) => {
                        f.samesite = None;
                        if !a.1.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want)) {
                            a.0 = Some("SameSite".into());
                            a.1 = Some(want.into());
                        }
                    }
                    Some(None) => a.0 = None,
                    None => {}
                }
            }
        }
        if f.secure == Some(true) {
            attrs.push((Some("Secure".into()), None));
        }
        if f.httponly == Some(true) {
            attrs.push((Some("HttpOnly".into()), None));
        }
        if let Some(Some(want)) = f.samesite {
            attrs.push((Some("SameSite".into()), Some(want.into())));
        }
        true
    }
}

/// `ngx_http_proxy_parse_cookie`: `(name, value)` pairs; a value is `None` without `=`.
fn parse(s: &str) -> Vec<(Option<String>, Option<String>)> {
    s.split(';')
        .map(|part| {
            let part = part.trim_start_matches(' ');
            match part.split_once('=') {
                Some((k, v)) => (
                    Some(k.trim_end_matches(' ').to_string()),
                    Some(v.trim_matches(' ').to_string()),
                ),
                None => (Some(part.trim_end_matches(' ').to_string()), None),
            }
        })
        .collect()
}

/// One rule against one attribute value: the new value if it applies.
fn apply(cx: &mut RequestCtx, r: &Rewrite, value: &str, domain: bool) -> Option<String> {
    match &r.pattern {
        Pattern::Regex(re) => {
            let caps = re.captures(value)?;
            let spans = (0..caps.len())
                .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                .collect();
            let saved = std::mem::replace(
                &mut cx.captures,
                Captures {
                    subject: Arc::from(value),
                    spans,
                },
            );
            let out = r.replacement.eval_string(cx);
            cx.captures = saved;
            Some(out)
        }
        Pattern::Text(t) => {
            let pattern = t.eval_string(cx);
            if domain {
                let (dot, rest) = match value.strip_prefix('.') {
                    Some(r) => (".", r),
                    None => ("", value),
                };
                if !rest.eq_ignore_ascii_case(&pattern) {
                    return None;
                }
                Some(format!("{dot}{}", r.replacement.eval_string(cx)))
            } else {
                let rest = value.strip_prefix(pattern.as_str())?;
                Some(format!("{}{rest}", r.replacement.eval_string(cx)))
            }
        }
    }
}
