//! CGI-style parameters (FastCGI params, uwsgi vars, SCGI headers), built the
//! same way for the three protocols: the configured `*_param` templates, then
//! every request header as `HTTP_NAME`.

use crate::ctx::RequestCtx;
use crate::vars::Template;
use bytes::{BufMut, Bytes, BytesMut};

/// One `*_param NAME VALUE [if_not_empty]`.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Parameter name.
    pub name: Bytes,
    /// Value template.
    pub value: Template,
    /// Skip when the value is empty.
    pub if_not_empty: bool,
}

/// The parameters of a location, compiled at load.
#[derive(Debug, Clone, Default)]
pub struct ParamSet {
    /// The configured params, in order.
    pub params: Vec<ParamSpec>,
    /// `*_pass_request_headers`.
    pub pass_request_headers: bool,
}

/// `Content-Length` → `HTTP_CONTENT_LENGTH`.
fn http_name(name: &str, out: &mut BytesMut) {
    out.put_slice(b"HTTP_");
    for b in name.bytes() {
        out.put_u8(if b == b'-' {
            b'_'
        } else {
            b.to_ascii_uppercase()
        });
    }
}

impl ParamSet {
    /// Evaluates the params for this request.
    pub fn build(&self, cx: &RequestCtx) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::with_capacity(self.params.len() + cx.headers.len());
        // Values with variables are written one after another into one buffer and
        // split off it (one allocation for all of them, not one each).
        let mut arena = BytesMut::with_capacity(1024);
        for p in &self.params {
            let v = match p.value.as_literal() {
                Some(b) => b,
                None => {
                    p.value.eval_into(cx, &mut arena);
                    arena.split().freeze()
                }
            };
            if p.if_not_empty && v.is_empty() {
                continue;
            }
            out.push((p.name.clone(), v));
        }
        if self.pass_request_headers {
            let mut name = BytesMut::new();
            let mut last: Option<&http::HeaderName> = None;
            for (k, v) in cx.headers.iter() {
                if last == Some(k) {
                    continue; // repeated header: joined below
                }
                last = Some(k);
                if k.as_str().contains('_') {
                    continue; // nginx ignores such headers (underscores_in_headers off)
                }
                name.clear();
                http_name(k.as_str(), &mut name);
                if self.params.iter().any(|p| p.name == name.as_ref()) {
                    continue; // an explicit param wins
                }
                let mut vals = cx.headers.get_all(k).iter();
                let value = match (vals.next(), vals.next()) {
                    (Some(a), None) => {
                        arena.put_slice(a.as_bytes());
                        arena.split().freeze()
                    }
                    _ => {
                        let sep: &[u8] = if k == http::header::COOKIE {
                            b"; "
                        } else {
                            b", "
                        };
                        let mut j = BytesMut::new();
                        for (n, x) in cx.headers.get_all(k).iter().enumerate() {
                            if n > 0 {
                                j.put_slice(sep);
                            }
                            j.put_slice(x.as_bytes());
                        }
                        j.freeze()
                    }
                };
                let _ = v;
                out.push((name.split().freeze(), value));
            }
        }
        out
    }
}

/// After a request body was buffered: the exact length becomes `Content-Length`
/// (so `$content_length` / CONTENT_LENGTH are right even for a chunked body).
pub fn set_content_length(cx: &mut RequestCtx, len: u64) {
    cx.headers.remove(http::header::TRANSFER_ENCODING);
    if let Ok(v) = http::HeaderValue::from_str(&len.to_string()) {
        cx.headers.insert(http::header::CONTENT_LENGTH, v);
    }
}

/// A location's `fastcgi_split_path_info` regex and `fastcgi_index`: what
/// `$fastcgi_script_name` and `$fastcgi_path_info` are computed from.
///
/// As in nginx (`ngx_http_fastcgi_split` and the two variable handlers), the
/// variables are computed when first read, from the current `$uri` and the
/// configuration of the location the request is in at that moment; the split is
/// kept for the rest of the request until an internal redirect, or until the
/// FastCGI handler starts (it begins a fresh context, which is why `try_files`
/// appears to reset `$fastcgi_path_info`: nginx trac #321). The index is appended
/// at each read to a script name ending in `/`.
#[derive(Debug, Default)]
pub struct ScriptSplit {
    /// `fastcgi_split_path_info`, with exactly two captures.
    pub regex: Option<crate::regex::Regex>,
    /// `fastcgi_index`.
    pub index: Bytes,
}

impl ScriptSplit {
    /// Splits `uri` into the script name (before the index is appended) and the
    /// path info: the regex's two captures, or the whole URI and nothing when the
    /// regex is absent or does not match.
    pub fn split(&self, uri: &str) -> (Bytes, Bytes) {
        // A failed match (PCRE2's limits) counts as no match.
        let caps = self
            .regex
            .as_ref()
            .and_then(|re| re.captures(uri.as_bytes()).ok().flatten());
        match caps {
            Some(spans) => {
                let part = |i: usize| {
                    spans
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|(s, e)| uri.get(s..e))
                        .map_or_else(Bytes::new, |p| Bytes::copy_from_slice(p.as_bytes()))
                };
                (part(1), part(2))
            }
            None => (Bytes::copy_from_slice(uri.as_bytes()), Bytes::new()),
        }
    }
}
