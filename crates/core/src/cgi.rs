//! CGI-style parameters (FastCGI params, uwsgi vars, SCGI headers), built the
//! same way for the three protocols: the configured `*_param` templates, then
//! every request header as `HTTP_NAME`.

use crate::ctx::RequestCtx;
use crate::vars::Template;
use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

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
    /// Evaluates the params for this request: names and values are written one after
    /// another into one buffer (nothing allocated per param).
    pub fn build(&self, cx: &RequestCtx) -> Params {
        let mut out = Params {
            buf: BytesMut::with_capacity(1024),
            spans: SmallVec::new(),
        };
        for p in &self.params {
            let start = out.buf.len();
            out.buf.put_slice(&p.name);
            let mid = out.buf.len();
            match p.value.literal_bytes() {
                Some(b) => out.buf.put_slice(b),
                None => p.value.eval_into(cx, &mut out.buf),
            }
            if p.if_not_empty && out.buf.len() == mid {
                out.buf.truncate(start);
                continue;
            }
            out.end(start, mid);
        }
        if self.pass_request_headers {
            let mut last: Option<&http::HeaderName> = None;
            for (k, v) in cx.headers.iter() {
                if last == Some(k) {
                    continue; // repeated header: joined below
                }
                last = Some(k);
                if k.as_str().contains('_') {
                    continue; // nginx ignores such headers (underscores_in_headers off)
                }
                let start = out.buf.len();
                http_name(k.as_str(), &mut out.buf);
                let mid = out.buf.len();
                let name = out.buf.get(start..mid).unwrap_or_default();
                if self.params.iter().any(|p| p.name == name) {
                    out.buf.truncate(start);
                    continue; // an explicit param wins
                }
                let mut vals = cx.headers.get_all(k).iter();
                match (vals.next(), vals.next()) {
                    (Some(_), None) | (None, _) => out.buf.put_slice(v.as_bytes()),
                    _ => {
                        let sep: &[u8] = if k == http::header::COOKIE {
                            b"; "
                        } else {
                            b", "
                        };
                        for (n, x) in cx.headers.get_all(k).iter().enumerate() {
                            if n > 0 {
                                out.buf.put_slice(sep);
                            }
                            out.buf.put_slice(x.as_bytes());
                        }
                    }
                }
                out.end(start, mid);
            }
        }
        out
    }
}

/// The evaluated params of one request, in order: each name and its value side by
/// side in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Params {
    buf: BytesMut,
    /// Per param: where its name starts, where its value starts, where it ends.
    spans: SmallVec<[[u32; 3]; 32]>,
}

impl Params {
    /// Params from name/value pairs (health probes, tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut out = Params::default();
        for (name, value) in pairs {
            let start = out.buf.len();
            out.buf.put_slice(name);
            let mid = out.buf.len();
            out.buf.put_slice(value);
            out.end(start, mid);
        }
        out
    }

    /// Records the param written from `start` (its value from `mid`) to the end.
    fn end(&mut self, start: usize, mid: usize) {
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans.push([at(start), at(mid), at(self.buf.len())]);
    }

    /// The params as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        self.spans.iter().map(|&[a, m, e]| {
            let part = |x: u32, y: u32| self.buf.get(x as usize..y as usize).unwrap_or_default();
            (part(a, m), part(m, e))
        })
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
