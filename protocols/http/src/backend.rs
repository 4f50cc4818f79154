//! The `proxy_pass` backend: builds the upstream request (URI rule, header rules),
//! runs the shared exchange, and filters the response (hidden headers,
//! `proxy_redirect`).

use crate::codec::HttpCodec;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use junction_config::model::{err, family, invalid, BuildCx, Family, LocInfo, LocKind, Scope};
use junction_config::ConfigError;
use junction_core::backend::{Backend, Response};
use junction_core::body::ReqBody;
use junction_core::codec::UpstreamCodec;
use junction_core::ctx::RequestCtx;
use junction_core::exchange::{exchange, UpstreamConf};
use junction_core::header_set::HeaderSet;
use junction_core::resolver::ResolverRef;
use junction_core::upstream::split_url;
use junction_core::upstream::Group;
use junction_core::vars::Template;
use junction_core::Error;
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};
use std::collections::HashMap;
use std::sync::Arc;

/// nginx's NGX_ESCAPE_URI set: space, `#`, `%`, `?`, controls, and bytes >= 0x7f.
const ESCAPE_URI: &AsciiSet = &CONTROLS.add(b' ').add(b'#').add(b'%').add(b'?').add(0x7f);

/// Hop-by-hop request headers never passed upstream (RFC 9110 §7.6.1), plus the
/// ones Junction regenerates.
const SKIP_REQUEST: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "content-length",
    "expect",
];

#[derive(Debug)]
enum Target {
    /// A fixed URL resolved at load.
    Static {
        fam: Box<Family>,
        proxy_host: Bytes,
        proxy_port: Bytes,
        uri_part: Option<String>,
        /// `https://`.
        https: bool,
    },
    /// A URL with variables, evaluated per request.
    Dynamic {
        url: Template,
        fam: Box<Family>,
        upstreams: HashMap<String, Arc<Group>>,
        /// `resolver` / `resolver_timeout` for a host that is not an upstream.
        resolver: ResolverRef,
        /// TLS for an evaluated `https://` URL (built at load, as nginx does for every
        /// `proxy_pass` with variables).
        tls: junction_core::upstream_tls::UpstreamTls,
    },
}

#[derive(Debug, Clone)]
enum Redirect {
    Off,
    Rules(Vec<(RedirectFrom, Template)>),
}

/// What a `proxy_redirect` rule matches: a prefix (the rest is kept), or a regex
/// (`~`/`~*`, PCRE2) on the whole value, whose captures the replacement may use.
#[derive(Debug, Clone)]
enum RedirectFrom {
    Prefix(String),
    Regex(junction_core::regex::Regex),
}

/// The HTTP proxy backend of one location.
#[derive(Debug)]
pub struct HttpProxy {
    target: Target,
    /// The location prefix replaced by the URI part (prefix/exact locations only).
    loc_prefix: Option<String>,
    set_headers: Vec<(HeaderName, Template)>,
    http10: bool,
    redirect: Redirect,
    hide: HeaderSet,
    /// The hidden names the codec leaves out of the head as it decodes it: all but
    /// `X-Accel-Buffering`, which the exchange reads.
    hide_decode: Arc<HeaderSet>,
    /// `proxy_method`.
    method: Option<Template>,
    /// `proxy_set_body`: sent instead of the client's body.
    set_body: Option<Template>,
    /// `proxy_cookie_*`.
    cookies: crate::cookie::CookieRules,
    /// `proxy_pass_trailers on`: the hidden fields to drop from the trailers.
    trailers: Option<Arc<HeaderSet>>,
}

fn header_name(a: &junction_config::Arg) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(a.value.as_bytes())
        .map_err(|_| err(&a.span, format!("invalid header name \"{}\"", a.value)))
}

/// Builds the backend when the location has `proxy_pass`.
pub fn build(
    scope: &Scope<'_>,
    loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    let Some(d) = scope.local("proxy_pass") else {
        return Ok(None);
    };
    let a = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"proxy_pass\" directive",
        )
    })?;
    let url_t = bx.template(a)?;
    let prefix_loc = matches!(
        loc.kind,
        LocKind::Prefix | LocKind::PrefixNoRegex | LocKind::Exact
    );
    let target = if let Some(lit) = url_t.as_literal() {
        let url = String::from_utf8_lossy(&lit).into_owned();
        let (scheme, hostport, uri_part) = split_url(&url);
        let (https, default_port) = match scheme {
            Some("http") => (false, "80"),
            Some("https") => (true, "443"),
            _ => return Err(err(&a.span, format!("invalid URL prefix in \"{url}\""))),
        };
        if uri_part.is_some() && !prefix_loc {
            return Err(err(
                &d.span,
                "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
            ));
        }
        let group = bx.group(hostport, if https { 443 } else { 80 }, &a.span)?;
        let mut fam = family(scope, "proxy", group, bx)?;
        let (proxy_host, proxy_port) = if let Some(p) = hostport.strip_prefix("unix:") {
            (Bytes::from_static(b"localhost"), Bytes::from(p.to_string()))
        } else if bx.upstreams.contains_key(hostport) {
            (Bytes::from(hostport.to_string()), Bytes::from(default_port))
        } else {
            let port = hostport
                .rsplit_once(':')
                .filter(|(h, _)| !h.ends_with(']') || h.starts_with('['))
                .map(|(_, p)| p.to_string())
                .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))
                .unwrap_or_else(|| default_port.into());
            let host = if port == default_port {
                hostport
                    .strip_suffix(&format!(":{default_port}"))
                    .unwrap_or(hostport)
                    .to_string()
            } else {
                hostport.to_string()
            };
            (Bytes::from(host), Bytes::from(port))
        };
        if https {
            // The default proxy_ssl_name is the host of the URL (an upstream's name).
            let host = String::from_utf8_lossy(&proxy_host).into_owned();
            fam.upstream.schema = "https://";
            fam.upstream.tls = Some(junction_config::upstream_tls::build(
                scope,
                "proxy",
                Some(&host),
                &a.span,
                bx,
            )?);
        }
        let tls = fam.upstream.tls.as_ref();
        bx.probe(&fam.upstream.group, |hc| {
            crate::probe::probe(hc, hostport, tls)
        });
        Target::Static {
            fam: Box::new(fam),
            proxy_host,
            proxy_port,
            uri_part: uri_part.map(str::to_string),
            https,
        }
    } else {
        // Variables: the group is found per request; the family uses a placeholder group.
        let placeholder = Group::implicit(String::new(), Vec::new());
        Target::Dynamic {
            url: url_t,
            fam: Box::new(family(scope, "proxy", placeholder, bx)?),
            upstreams: bx.upstreams.clone(),
            resolver: junction_config::resolver::resolver_at(scope, bx)?,
            tls: junction_config::upstream_tls::build(scope, "proxy", None, &a.span, bx)?,
        }
    };

    // proxy_set_header: defaults first (Host, Connection), overridden by name.
    let mut set_headers: Vec<(HeaderName, Template)> = vec![
        (
            http::header::HOST,
            Template::compile("$proxy_host", &bx.vars).map_err(|e| err(&d.span, e.to_string()))?,
        ),
        (http::header::CONNECTION, Template::literal(Bytes::new())),
    ];
    for h in scope.array("proxy_set_header") {
        let (Some(n), Some(v)) = (h.args.first(), h.args.get(1)) else {
            return Err(err(
                &h.span,
                "invalid number of arguments in \"proxy_set_header\" directive",
            ));
        };
        let name = header_name(n)?;
        let tpl = bx.template(v)?;
        if let Some(slot) = set_headers.iter_mut().find(|(k, _)| *k == name) {
            slot.1 = tpl;
        } else {
            set_headers.push((name, tpl));
        }
    }
    let http10 = match scope.arg("proxy_http_version") {
        None => false,
        Some((_, a)) if a.value == "1.1" => false,
        Some((_, a)) if a.value == "1.0" => true,
        Some((d, a)) => return Err(invalid(d, a)),
    };
    let redirect = match scope.get("proxy_redirect") {
        None => default_redirect(&target, loc, bx),
        Some(r) => match (r.args.first(), r.args.get(1)) {
            (Some(a), None) if a.value == "off" => Redirect::Off,
            (Some(a), None) if a.value == "default" => default_redirect(&target, loc, bx),
            (Some(from), Some(to)) => {
                let mut rules = Vec::new();
                for r in scope.array("proxy_redirect") {
                    match (r.args.first(), r.args.get(1)) {
                        (Some(a), None) if a.value == "default" => {
                            if let Redirect::Rules(mut v) = default_redirect(&target, loc, bx) {
                                rules.append(&mut v);
                            }
                        }
                        (Some(a), None) if a.value == "off" => {}
                        (Some(f), Some(t)) => {
                            let rule = match f.value.strip_prefix('~') {
                                Some(p) => {
                                    let (p, caseless) = match p.strip_prefix('*') {
                                        Some(p) => (p, true),
                                        None => (p, false),
                                    };
                                    let re = junction_core::regex::Regex::compile(p, caseless)
                                        .map_err(|e| err(&f.span, e))?;
                                    let to = Template::compile(&re.positional(&t.value), &bx.vars)
                                        .map_err(|e| err(&t.span, e.to_string()))?;
                                    (RedirectFrom::Regex(re), to)
                                }
                                None => (RedirectFrom::Prefix(f.value.clone()), bx.template(t)?),
                            };
                            rules.push(rule)
                        }
                        _ => {
                            return Err(err(
                                &r.span,
                                "invalid arguments in \"proxy_redirect\" directive",
                            ))
                        }
                    }
                }
                let _ = (from, to);
                Redirect::Rules(rules)
            }
            _ => {
                return Err(err(
                    &r.span,
                    "invalid arguments in \"proxy_redirect\" directive",
                ))
            }
        },
    };
    let fam = match &target {
        Target::Static { fam, .. } | Target::Dynamic { fam, .. } => fam,
    };
    // nginx's proxy module does not hide a `Status` header (CGI protocols do); it
    // hides the upstream's `Date`, `Server` and `X-Pad`.
    let hide = HeaderSet::new(fam.hidden_headers(junction_core::pass::PROXY_HIDE));
    let hide_decode = Arc::new(hide.without(&HeaderName::from_static("x-accel-buffering")));
    Ok(Some(Arc::new(HttpProxy {
        target,
        loc_prefix: if prefix_loc {
            Some(loc.name.clone())
        } else {
            None
        },
        set_headers,
        http10,
        redirect,
        method: scope
            .arg("proxy_method")
            .map(|(_, a)| bx.template(a))
            .transpose()?,
        set_body: scope
            .arg("proxy_set_body")
            .map(|(_, a)| bx.template(a))
            .transpose()?,
        cookies: crate::cookie::CookieRules::build(scope, bx)?,
        trailers: scope
            .flag("proxy_pass_trailers", false)?
            .then(|| Arc::new(hide.clone())),
        hide,
        hide_decode,
    })))
}

fn default_redirect(target: &Target, loc: &LocInfo, bx: &BuildCx) -> Redirect {
    match target {
        Target::Static {
            proxy_host,
            uri_part,
            https,
            ..
        } => {
            let host = String::from_utf8_lossy(proxy_host);
            let scheme = if *https { "https" } else { "http" };
            let (pattern, replacement) = match uri_part {
                Some(u)
                    if matches!(
                        loc.kind,
                        LocKind::Prefix | LocKind::PrefixNoRegex | LocKind::Exact
                    ) =>
                {
                    (format!("{scheme}://{host}{u}"), loc.name.clone())
                }
                _ => (format!("{scheme}://{host}/"), "/".to_string()),
            };
            let _ = bx;
            Redirect::Rules(vec![(
                RedirectFrom::Prefix(pattern),
                Template::literal(Bytes::from(replacement)),
            )])
        }
        Target::Dynamic { .. } => Redirect::Off,
    }
}

fn escape_into(out: &mut BytesMut, s: &str) {
    for part in percent_encode(s.as_bytes(), ESCAPE_URI) {
        out.put_slice(part.as_bytes());
    }
}

impl HttpProxy {
    /// The URI sent upstream.
    fn upstream_uri(&self, cx: &RequestCtx, uri_part: Option<&str>, out: &mut BytesMut) {
        // With variables the evaluated URL is the whole request URI (§5).
        if let (Target::Dynamic { .. }, Some(part)) = (&self.target, uri_part) {
            out.put_slice(part.as_bytes());
            return;
        }
        let quoted = cx.request_uri.contains('%') || cx.uri_changed;
        match (uri_part, &self.loc_prefix) {
            (Some(part), Some(prefix)) => {
                out.put_slice(part.as_bytes());
                let rest = if cx.uri.len() >= prefix.len() && cx.uri.starts_with(prefix.as_str()) {
                    cx.uri.get(prefix.len()..).unwrap_or("")
                } else {
                    cx.uri.as_str()
                };
                if quoted {
                    escape_into(out, rest);
                } else {
                    out.put_slice(rest.as_bytes());
                }
                if !cx.args.is_empty() {
                    out.put_u8(b'?');
                    out.put_slice(cx.args.as_bytes());
                }
            }
            _ if !cx.uri_changed => out.put_slice(cx.request_uri.as_bytes()),
            _ => {
                escape_into(out, &cx.uri);
                if !cx.args.is_empty() {
                    out.put_u8(b'?');
                    out.put_slice(cx.args.as_bytes());
                }
            }
        }
    }

    fn request_head(
        &self,
        cx: &RequestCtx,
        uri_part: Option<&str>,
        body_len: Option<u64>,
        chunked: bool,
    ) -> Bytes {
        let mut out = BytesMut::with_capacity(512);
        match &self.method {
            Some(m) => m.eval_into(cx, &mut out),
            None => out.put_slice(cx.method.as_str().as_bytes()),
        }
        out.put_u8(b' ');
        self.upstream_uri(cx, uri_part, &mut out);
        out.put_slice(if self.http10 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        for (name, tpl) in &self.set_headers {
            let start = out.len();
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            let vstart = out.len();
            tpl.eval_into(cx, &mut out);
            if out.len() == vstart {
                out.truncate(start); // empty value: header not sent
            } else {
                out.put_slice(b"\r\n");
            }
        }
        for (k, v) in cx.headers.iter() {
            let n = k.as_str();
            if SKIP_REQUEST.contains(&n) || self.set_headers.iter().any(|(s, _)| s == k) {
                continue;
            }
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
        if chunked {
            out.put_slice(b"Transfer-Encoding: chunked\r\n");
        } else if let Some(l) =
            body_len.filter(|l| *l > 0 || cx.headers.contains_key(http::header::CONTENT_LENGTH))
        {
            out.put_slice(b"Content-Length: ");
            out.put_slice(itoa::Buffer::new().format(l).as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }

    fn rewrite_location(&self, cx: &RequestCtx, v: &HeaderValue) -> Option<HeaderValue> {
        let Redirect::Rules(rules) = &self.redirect else {
            return None;
        };
        let s = v.to_str().ok()?;
        for (from, to) in rules {
            let mut out = BytesMut::new();
            let hit = match from {
                RedirectFrom::Prefix(p) => match s.strip_prefix(p.as_str()) {
                    Some(rest) => {
                        to.eval_into(cx, &mut out);
                        out.put_slice(rest.as_bytes());
                        true
                    }
                    None => false,
                },
                RedirectFrom::Regex(re) => match re.captures(s.as_bytes()) {
                    Ok(Some(spans)) => {
                        let caps = junction_core::ctx::Captures {
                            subject: std::sync::Arc::from(s),
                            spans,
                        };
                        to.eval_into_with(cx, Some(&caps), &mut out);
                        true
                    }
                    _ => false,
                },
            };
            if hit {
                // A replacement starting with `/` becomes absolute, as nginx does
                // (absolute_redirect: scheme, the request's host, the port if not 80).
                if out.starts_with(b"/") {
                    let mut abs = BytesMut::with_capacity(out.len() + 32);
                    abs.put_slice(cx.conn.scheme.as_bytes());
                    abs.put_slice(b"://");
                    abs.put_slice(cx.host.as_bytes());
                    let port = cx.conn.local.port();
                    if port != 80 {
                        abs.put_slice(format!(":{port}").as_bytes());
                    }
                    abs.put_slice(&out);
                    out = abs;
                }
                return HeaderValue::from_maybe_shared(out.freeze()).ok();
            }
        }
        None
    }

    async fn run(&self, cx: &mut RequestCtx, body: ReqBody) -> Result<Response, Error> {
        type Dyn<'a> = Option<(
            Arc<Group>,
            Option<&'a junction_core::upstream_tls::UpstreamTls>,
        )>;
        let (fam, uri_part, dyn_group): (&Family, Option<String>, Dyn<'_>) = match &self.target {
            Target::Static {
                fam,
                proxy_host,
                proxy_port,
                uri_part,
                ..
            } => {
                cx.proxy_host = proxy_host.clone();
                cx.proxy_port = proxy_port.clone();
                (fam, uri_part.clone(), None)
            }
            Target::Dynamic {
                url,
                fam,
                upstreams,
                tls,
                resolver,
            } => {
                let url = url.eval_string(cx);
                let (scheme, hostport, uri_part) = split_url(&url);
                let https = match scheme {
                    Some("http") => false,
                    Some("https") => true,
                    _ => return Err(Error::internal(format!("invalid URL prefix in \"{url}\""))),
                };
                let port: u16 = if https { 443 } else { 80 };
                let group = match upstreams.get(hostport) {
                    Some(g) => g.clone(),
                    None => {
                        // Boxed: the resolver's future is large and rarely run; inline it
                        // would grow every request's future (copied when it is boxed).
                        let addrs = Box::pin(resolver.pass_addrs(hostport, port)).await?;
                        Group::implicit(hostport.to_string(), addrs)
                    }
                };
                cx.proxy_host = Bytes::from(hostport.to_string());
                cx.proxy_port = Bytes::from(port.to_string());
                (
                    fam,
                    uri_part.map(str::to_string),
                    Some((group, https.then_some(tls))),
                )
            }
        };
        // HTTP/1.0 has no chunked coding: a body of unknown length is read first.
        let body = fam.prepare_body(cx, body, self.http10).await?;
        // proxy_set_body: this value is the body (the client's is not sent).
        let body = match &self.set_body {
            Some(t) => ReqBody::Buffered(junction_core::body::Buffered::from_bytes(t.eval(cx))),
            None => body,
        };
        let len = body.known_len();
        let chunked = len.is_none();
        let head = self.request_head(cx, uri_part.as_deref(), len, chunked);
        // The URI as sent, for the error log's `upstream: "http://peer/uri"` (no copy).
        cx.upstream.uri = head_uri(&head);
        let limit = fam.upstream.buffering.buffer_size;
        let is_head = match &self.method {
            Some(m) => m.eval(cx).as_ref() == b"HEAD",
            None => cx.method == http::Method::HEAD,
        };
        let keep_trailers = self.trailers.is_some();
        // Hidden headers are left out as the head is decoded, unless a
        // `$upstream_http_*` variable may ask for one.
        let hide = (!fam.upstream.vars.upstream_headers()).then_some(&self.hide_decode);
        let mk = move || -> Box<dyn UpstreamCodec> {
            let mut c = HttpCodec::new(limit, is_head, chunked);
            if let Some(h) = hide {
                c = c.hiding(h.clone());
            }
            Box::new(if keep_trailers {
                c.keeping_trailers()
            } else {
                c
            })
        };
        let conf_owned;
        let conf: &UpstreamConf = match dyn_group {
            Some((g, tls)) => {
                conf_owned = UpstreamConf {
                    group: g,
                    schema: if tls.is_some() { "https://" } else { "http://" },
                    tls: tls.cloned(),
                    ..fam.upstream.clone()
                };
                &conf_owned
            }
            None => &fam.upstream,
        };
        let up = std::pin::pin!(exchange(conf, cx, head, body, &mk)).await?;
        if let Some(upgraded) = up.upgraded {
            // 101 Switching Protocols (WebSocket): answer the client with the
            // upstream's head, then tunnel bytes both ways once the client connection
            // is handed over.
            let Some(client) = cx.upgrade.take() else {
                return Err(Error::new(
                    junction_core::ErrorKind::InvalidResponse,
                    "upstream switched protocols (101) but the client did not ask for an upgrade",
                ));
            };
            let idle = fam.upstream.timeouts.read;
            // limit_conn counts stay taken for the tunnel's life (nginx ends the
            // request, and gives them back, when the upgraded connection closes).
            let held = std::mem::take(&mut cx.held);
            tokio::spawn(async move {
                crate::tunnel::run(client, upgraded, idle).await;
                drop(held);
            });
            let mut resp = http::Response::new(junction_core::body::empty());
            *resp.status_mut() = up.head.status;
            for (k, v) in up.head.headers.iter() {
                let hop = *k == http::header::CONNECTION || *k == http::header::UPGRADE;
                if hop || !self.hide.contains(k) {
                    resp.headers_mut().append(k.clone(), v.clone());
                }
            }
            return Ok(resp);
        }
        // The head's headers but the hidden ones, in their order (the map itself when
        // the codec already left them out); then values rewritten in place where
        // proxy_cookie_* / proxy_redirect apply.
        let mut headers = self.hide.remove_from(up.head.headers);
        // One pass over the names (compared, not hashed) instead of three lookups.
        let cookies = !self.cookies.is_empty();
        let redirects = matches!(self.redirect, Redirect::Rules(_));
        let rewrite = (cookies || redirects)
            && headers.keys().any(|k| {
                (cookies && k == http::header::SET_COOKIE)
                    || (redirects && (k == http::header::LOCATION || k == http::header::REFRESH))
            });
        if rewrite {
            for (k, v) in headers.iter_mut() {
                let nv = if k == http::header::SET_COOKIE && !self.cookies.is_empty() {
                    self.cookies.rewrite(cx, v)
                } else if k == http::header::LOCATION || k == http::header::REFRESH {
                    self.rewrite_location(cx, v)
                } else {
                    None
                };
                if let Some(nv) = nv {
                    *v = nv;
                }
            }
        }
        let body = match &self.trailers {
            Some(hide) => crate::trailers::filter(up.body, hide),
            None => up.body,
        };
        Ok(junction_core::exchange::client_response(
            up.head.status,
            headers,
            body,
            up.unbuffered,
        ))
    }
}

/// The request-target of an encoded request head (`METHOD SP target SP …`).
fn head_uri(head: &Bytes) -> Bytes {
    let mut spaces = head
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b' ')
        .map(|(i, _)| i);
    match (spaces.next(), spaces.next()) {
        (Some(a), Some(b)) => head.slice(a + 1..b),
        _ => Bytes::new(),
    }
}

impl Backend for HttpProxy {
    junction_core::handle_by!(|cx, body| run(cx, body));

    fn intercept_errors(&self) -> bool {
        match &self.target {
            Target::Static { fam, .. } | Target::Dynamic { fam, .. } => fam.intercept_errors,
        }
    }
}
