//! The `fastcgi_pass` location handler: built once per location from its `fastcgi_*`
//! directives, then per request: start a fresh `$fastcgi_script_name` /
//! `$fastcgi_path_info` split (computed from `$uri` when read), read the body whole
//! when CONTENT_LENGTH must be exact, evaluate the params, encode BEGIN_REQUEST + PARAMS, and run the shared exchange
//! with a [`FastcgiCodec`].
//!
//! Directives read here: `fastcgi_pass` (`host:port`, `unix:/path`, an `upstream`
//! name, or a value with variables resolved per request), `fastcgi_param` (through
//! [`params`]), `fastcgi_index`, `fastcgi_split_path_info`,
//! `fastcgi_pass_request_headers`; the rest of the family (`fastcgi_keep_conn`,
//! timeouts, buffering, bind, hide/pass header, intercept errors, request buffering)
//! through [`family`]. `fastcgi_catch_stderr` is in the family's [`UpstreamConf`];
//! `fastcgi_ignore_headers`, `_socket_keepalive`, `_force_ranges`, `_limit_rate` are
//! accepted with a warning.

use crate::codec::{encode_request_head, FastcgiCodec};
use junction_config::cgi_pass::has_port;
use junction_config::model::{err, family, params, BuildCx, Family, LocInfo, Scope};
use junction_config::ConfigError;
use junction_core::backend::{Backend, Response};
use junction_core::body::ReqBody;
use junction_core::cgi::ParamSet;
use junction_core::codec::UpstreamCodec;
use junction_core::ctx::RequestCtx;
use junction_core::exchange::{exchange, UpstreamConf};
use junction_core::resolver::ResolverRef;
use junction_core::upstream::Group;
use junction_core::vars::Template;
use junction_core::Error;
use std::collections::HashMap;
use std::sync::Arc;

/// The request id of every request: one request per connection at a time.
const REQUEST_ID: u16 = 1;

/// Where requests go.
#[derive(Debug)]
enum Target {
    /// A fixed address or upstream, resolved at load.
    Static,
    /// A value with variables: evaluated per request, then an `upstream` name or an
    /// address with a port.
    Dynamic {
        target: Template,
        upstreams: HashMap<String, Arc<Group>>,
        /// `resolver` / `resolver_timeout` for a host that is not an upstream.
        resolver: ResolverRef,
    },
}

/// The FastCGI backend of one location.
#[derive(Debug)]
pub struct Fastcgi {
    target: Target,
    fam: Family,
    params: ParamSet,
    /// Response headers not passed to the client.
    hidden: junction_core::header_set::HeaderSet,
}

/// Builds the backend when the location has `fastcgi_pass`.
pub fn build(
    scope: &Scope<'_>,
    loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    Ok(build_fastcgi(scope, loc, bx)?.map(|f| Arc::new(f) as Arc<dyn Backend>))
}

fn build_fastcgi(
    scope: &Scope<'_>,
    _loc: &LocInfo,
    bx: &mut BuildCx,
) -> Result<Option<Fastcgi>, ConfigError> {
    let Some(d) = scope.local("fastcgi_pass") else {
        return Ok(None);
    };
    let a = d.args.first().ok_or_else(|| {
        err(
            &d.span,
            "invalid number of arguments in \"fastcgi_pass\" directive",
        )
    })?;
    let value = bx.template(a)?;
    let (target, group) = match value.as_literal() {
        Some(lit) => {
            let t = String::from_utf8_lossy(&lit).into_owned();
            let t = t.strip_prefix("fastcgi://").unwrap_or(&t).to_string();
            if !bx.upstreams.contains_key(&t) && !t.starts_with("unix:") && !has_port(&t) {
                return Err(err(&a.span, format!("no port in upstream \"{t}\"")));
            }
            (Target::Static, bx.group(&t, 9000, &a.span)?)
        }
        None => (
            Target::Dynamic {
                target: value,
                upstreams: bx.upstreams.clone(),
                resolver: junction_config::resolver::resolver_at(scope, bx)?,
            },
            // The family needs a group: a placeholder, replaced per request.
            Group::implicit(String::new(), Vec::new()),
        ),
    };
    let fam = family(scope, "fastcgi", group, bx)?;
    bx.probe(&fam.upstream.group, crate::probe::probe);
    let mut params = params(scope, "fastcgi_param", bx)?;
    params.pass_request_headers = fam.pass_request_headers;
    // Checked here too, so a bad split regex names this location's directive.
    junction_config::model::script_split(scope)?;
    let hidden = junction_core::header_set::HeaderSet::new(
        fam.hidden_headers(junction_core::pass::CGI_HIDE),
    );
    Ok(Some(Fastcgi {
        target,
        params,
        hidden,
        fam,
    }))
}

impl Fastcgi {
    /// The group for this request when `fastcgi_pass` has variables.
    async fn dynamic_group(
        cx: &RequestCtx,
        target: &Template,
        upstreams: &HashMap<String, Arc<Group>>,
        resolver: &ResolverRef,
    ) -> Result<Arc<Group>, Error> {
        let t = target.eval_string(cx);
        let t = t.strip_prefix("fastcgi://").unwrap_or(&t);
        if let Some(g) = upstreams.get(t) {
            return Ok(g.clone());
        }
        if !t.starts_with("unix:") && !has_port(t) {
            return Err(Error::internal(format!("no port in upstream \"{t}\"")));
        }
        let addrs = resolver.pass_addrs(t, 9000).await?;
        Ok(Group::implicit(t.to_string(), addrs))
    }

    async fn run(&self, cx: &mut RequestCtx, body: ReqBody) -> Result<Response, Error> {
        let fam = &self.fam;
        let conf_owned;
        let conf: &UpstreamConf = match &self.target {
            Target::Static => &fam.upstream,
            Target::Dynamic {
                target,
                upstreams,
                resolver,
            } => {
                conf_owned = UpstreamConf {
                    group: Self::dynamic_group(cx, target, upstreams, resolver).await?,
                    ..fam.upstream.clone()
                };
                &conf_owned
            }
        };
        // CGI needs an exact CONTENT_LENGTH: a chunked body is read first.
        let body = fam.prepare_body(cx, body, true).await?;
        // nginx's handler starts a fresh module context: `$fastcgi_script_name` and
        // `$fastcgi_path_info` are split again from the current `$uri` (after
        // try_files changed it, the path info is gone: trac #321).
        cx.reset_script_split();
        let params = self.params.build::<crate::codec::Pairs>(cx);
        let keep_conn = conf.keep_conn;
        let head = encode_request_head(REQUEST_ID, keep_conn, params);
        let limit = conf.buffering.buffer_size;
        let mk = move || -> Box<dyn UpstreamCodec> {
            Box::new(FastcgiCodec::new(REQUEST_ID, keep_conn, limit))
        };
        let up = exchange(conf, cx, head, body, &mk).await?;
        Ok(fam.response(up, &self.hidden))
    }
}

impl Backend for Fastcgi {
    junction_core::handle_by!(|cx, body| run(cx, body));

    fn intercept_errors(&self) -> bool {
        self.fam.intercept_errors
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use junction_config::model::LocKind;
    use junction_core::ctx::ConnInfo;

    /// The backend of a location made of `directives`.
    fn backend(directives: &str) -> Fastcgi {
        let tree =
            junction_config::parse_nginx_str(directives, std::path::Path::new("t.conf")).unwrap();
        let loc = LocInfo {
            kind: LocKind::Prefix,
            name: "/".into(),
            span: tree.first().unwrap().span.clone(),
        };
        build_fastcgi(&Scope::root(&tree), &loc, &mut BuildCx::default())
            .unwrap()
            .expect("a fastcgi_pass location")
    }

    fn cx(uri: &str) -> RequestCtx {
        let conn = Arc::new(ConnInfo {
            remote: "127.0.0.1:5000".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            scheme: "http",
            id: 1,
            proxy_protocol: None,
            tls: None,
        });
        let mut c = RequestCtx::new(conn, http::Method::GET, http::Version::HTTP_11, uri.into());
        c.uri = uri.into();
        c
    }

    /// `$fastcgi_script_name` and `$fastcgi_path_info` for `uri` in a location made
    /// of `directives`.
    fn split(directives: &str, uri: &str) -> (String, String) {
        let tree =
            junction_config::parse_nginx_str(directives, std::path::Path::new("t.conf")).unwrap();
        let mut c = cx(uri);
        c.script_split = junction_config::model::script_split(&Scope::root(&tree)).unwrap();
        let t = junction_core::vars::VarTable::default();
        let eval = |s: &str| Template::compile(s, &t).unwrap().eval_string(&c);
        (eval("$fastcgi_script_name"), eval("$fastcgi_path_info"))
    }

    #[test]
    fn script_name_and_path_info() {
        let f = "fastcgi_pass 127.0.0.1:9000;";
        backend(f);
        assert_eq!(split(f, "/a/b.php"), ("/a/b.php".into(), "".into()));
        assert_eq!(split(f, "/dir/"), ("/dir/".into(), "".into()));

        let f = "fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php;";
        assert_eq!(split(f, "/dir/"), ("/dir/index.php".into(), "".into()));
        assert_eq!(split(f, "/x.php"), ("/x.php".into(), "".into()));

        let f = "fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php; \
             fastcgi_split_path_info ^(.+\\.php)(/.+)$;";
        backend(f);
        assert_eq!(split(f, "/app.php/a/b"), ("/app.php".into(), "/a/b".into()));
        // No match: the whole URI, no path info; the index still applies.
        assert_eq!(split(f, "/app.php"), ("/app.php".into(), "".into()));
        assert_eq!(split(f, "/d/"), ("/d/index.php".into(), "".into()));
    }

    #[test]
    fn load_time_errors() {
        let e = |d: &str| {
            let tree = junction_config::parse_nginx_str(d, std::path::Path::new("t.conf")).unwrap();
            let loc = LocInfo {
                kind: LocKind::Prefix,
                name: "/".into(),
                span: tree.first().unwrap().span.clone(),
            };
            match build(&Scope::root(&tree), &loc, &mut BuildCx::default()) {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            }
        };
        assert!(e("fastcgi_pass php;").contains("no port in upstream \"php\""));
        assert!(
            e("fastcgi_pass 127.0.0.1:9000; fastcgi_split_path_info ^(.+)$;")
                .contains("must have 2 captures")
        );
        assert_eq!(e("fastcgi_pass unix:/run/php.sock;"), "");
        assert_eq!(e("fastcgi_pass fastcgi://127.0.0.1:9000;"), "");
        assert!(e("fastcgi_pass $backend:9000;").contains("unknown"));
    }

    #[test]
    fn port_is_required() {
        assert!(has_port("127.0.0.1:9000"));
        assert!(has_port("php:9000"));
        assert!(has_port("[::1]:9000"));
        assert!(!has_port("127.0.0.1"));
        assert!(!has_port("php"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("::1"));
        assert!(!has_port(":9000"));
    }
}
