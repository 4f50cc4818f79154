//! CGI-style parameters (FastCGI params, uwsgi vars, SCGI headers), built the
//! same way for the three protocols: the configured `*_param` templates, then
//! every request header as `HTTP_NAME`. They are written once, into the buffer that
//! goes to the upstream, in the room each protocol's [`Framing`] leaves for its
//! lengths, separators and head.

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

/// How a protocol's encoder frames the params, so that they are written once, in the
/// buffer that goes to the upstream: [`ParamSet::build`] leaves `HEAD` bytes at the start
/// and room around each pair (zeros), and calls `frame` once each pair is written; the
/// encoder takes the buffer back with [`Params::into_framed`] and writes its head into
/// the room at the start. [`Plain`] leaves no room (the pairs alone).
pub trait Framing: 'static {
    /// Names the framing: [`Params::into_framed`] gives the buffer back only to it.
    const NAME: &'static str;
    /// Bytes left at the start of the buffer, for the encoder's head.
    const HEAD: usize;
    /// Bytes left before each name (at most 8).
    const BEFORE_NAME: usize;
    /// Bytes left between a name and its value (at most 8).
    const BETWEEN: usize;
    /// Bytes left after each value (at most 8).
    const AFTER: usize;
    /// Configured params left out (the encoder writes them itself).
    const SKIP: &'static [&'static [u8]] = &[];

    /// Frames the pair that starts at `start` (its room, its name of `name` bytes, its
    /// value of `value` bytes) and ends the buffer. It may grow the room before the name
    /// (moving the pair up). False: the pair cannot be encoded and is left out. The
    /// default leaves the room as it is (zeros).
    fn frame(buf: &mut BytesMut, start: usize, name: usize, value: usize) -> bool {
        let _ = (buf, start, name, value);
        true
    }
}

/// No room: the pairs alone.
#[derive(Debug)]
pub struct Plain;

impl Framing for Plain {
    const NAME: &'static str = "";
    const HEAD: usize = 0;
    const BEFORE_NAME: usize = 0;
    const BETWEEN: usize = 0;
    const AFTER: usize = 0;
}

/// Appends `n` (a constant of at most 8) zero bytes.
#[inline(always)]
fn room(buf: &mut BytesMut, n: usize) {
    if n > 0 {
        buf.put_slice([0u8; 8].get(..n).unwrap_or_default());
    }
}

/// `Content-Length` → `HTTP_CONTENT_LENGTH`, appended to `out`.
fn http_name(name: &str, out: &mut BytesMut) {
    let start = out.len();
    out.put_slice(b"HTTP_");
    out.put_slice(name.as_bytes());
    if let Some(s) = out.get_mut(start + 5..) {
        for b in s {
            *b = if *b == b'-' {
                b'_'
            } else {
                b.to_ascii_uppercase()
            };
        }
    }
}

impl ParamSet {
    /// Evaluates the params for this request: names and values are written one after
    /// another into one buffer (nothing allocated per param), framed by `F`.
    pub fn build<F: Framing>(&self, cx: &RequestCtx) -> Params {
        let mut out = Params::with_framing::<F>(1024);
        for p in &self.params {
            if !F::SKIP.is_empty() && F::SKIP.contains(&&p.name[..]) {
                continue;
            }
            let start = out.begin::<F>();
            out.buf.put_slice(&p.name);
            let value = out.value::<F>();
            match p.value.literal_bytes() {
                Some(b) => out.buf.put_slice(b),
                None => p.value.eval_into(cx, &mut out.buf),
            }
            if p.if_not_empty && out.buf.len() == value {
                out.buf.truncate(start);
                continue;
            }
            out.end::<F>(start, value);
        }
        if self.pass_request_headers {
            // nginx: a header is left out when a param of its HTTP_ name is configured.
            let overridable = self.params.iter().any(|p| p.name.starts_with(b"HTTP_"));
            let mut headers = cx.headers.iter().peekable();
            while let Some((k, v)) = headers.next() {
                if k.as_str().contains('_') {
                    // nginx ignores such headers (underscores_in_headers off).
                    while headers.next_if(|(n, _)| *n == k).is_some() {}
                    continue;
                }
                let start = out.begin::<F>();
                let name_at = out.buf.len();
                http_name(k.as_str(), &mut out.buf);
                if overridable {
                    let name = out.buf.get(name_at..).unwrap_or_default();
                    if self.params.iter().any(|p| p.name == name) {
                        out.buf.truncate(start);
                        while headers.next_if(|(n, _)| *n == k).is_some() {}
                        continue; // an explicit param wins
                    }
                }
                let value = out.value::<F>();
                out.buf.put_slice(v.as_bytes());
                // A repeated header (HeaderMap yields its values one after another):
                // joined as nginx does.
                let sep: &[u8] = if k == http::header::COOKIE {
                    b"; "
                } else {
                    b", "
                };
                while let Some((_, x)) = headers.next_if(|(n, _)| *n == k) {
                    out.buf.put_slice(sep);
                    out.buf.put_slice(x.as_bytes());
                }
                out.end::<F>(start, value);
            }
        }
        out
    }
}

/// The evaluated params of one request, in order, in one buffer: each name and its
/// value side by side, in the room of the [`Framing`] they were built with.
#[derive(Debug, Clone)]
pub struct Params {
    buf: BytesMut,
    /// The framing's name and its room between a name and its value.
    framing: (&'static str, usize),
    /// Per param: where its name starts, where its value starts, where it ends.
    spans: SmallVec<[[u32; 3]; 32]>,
}

impl Default for Params {
    fn default() -> Self {
        Params::with_framing::<Plain>(0)
    }
}

impl Params {
    fn with_framing<F: Framing>(capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity.max(F::HEAD));
        buf.put_bytes(0, F::HEAD);
        Params {
            buf,
            framing: (F::NAME, F::BETWEEN),
            spans: SmallVec::new(),
        }
    }

    /// Params from name/value pairs (health probes, tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        Params::framed_from_pairs::<Plain>(pairs)
    }

    /// Params from name/value pairs, framed by `F` (tests of an encoder).
    pub fn framed_from_pairs<'a, F: Framing>(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Self {
        let mut out = Params::with_framing::<F>(0);
        for (name, value) in pairs {
            let start = out.begin::<F>();
            out.buf.put_slice(name);
            let at = out.value::<F>();
            out.buf.put_slice(value);
            out.end::<F>(start, at);
        }
        out
    }

    /// Starts a pair: its room before the name; returns where the pair starts.
    #[inline(always)]
    fn begin<F: Framing>(&mut self) -> usize {
        let start = self.buf.len();
        room(&mut self.buf, F::BEFORE_NAME);
        start
    }

    /// Ends the name: the room between; returns where the value starts.
    #[inline(always)]
    fn value<F: Framing>(&mut self) -> usize {
        room(&mut self.buf, F::BETWEEN);
        self.buf.len()
    }

    /// Ends the pair that starts at `start` (its value at `value`): the room after,
    /// then the framing; records it (or leaves it out when it cannot be framed).
    #[inline(always)]
    fn end<F: Framing>(&mut self, start: usize, value: usize) {
        let value_len = self.buf.len() - value;
        let name_len = value - F::BETWEEN - start - F::BEFORE_NAME;
        room(&mut self.buf, F::AFTER);
        if !F::frame(&mut self.buf, start, name_len, value_len) {
            self.buf.truncate(start);
            return;
        }
        // The framing may have moved the pair up: its place is counted from the end.
        let end = self.buf.len() - F::AFTER;
        let value = end - value_len;
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.spans
            .push([at(value - F::BETWEEN - name_len), at(value), at(end)]);
    }

    /// The params as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        let between = self.framing.1;
        self.spans.iter().map(move |&[a, m, e]| {
            let (a, m, e) = (a as usize, m as usize, e as usize);
            let part = |x: usize, y: usize| self.buf.get(x..y).unwrap_or_default();
            (part(a, m.saturating_sub(between)), part(m, e))
        })
    }

    /// The whole buffer — the framing's head room, then the framed pairs — when these
    /// params were built with `F`; else the params back (boxed: the rare way).
    pub fn into_framed<F: Framing>(self) -> Result<BytesMut, Box<Params>> {
        if self.framing.0 == F::NAME && !F::NAME.is_empty() {
            Ok(self.buf)
        } else {
            Err(Box::new(self))
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::vars::VarTable;
    use http::Method;

    /// A framing with room everywhere, whose `frame` marks the room (to see it is left
    /// where the spans say) and leaves out a pair named `DROP`.
    struct Marked;

    impl Framing for Marked {
        const NAME: &'static str = "marked";
        const HEAD: usize = 3;
        const BEFORE_NAME: usize = 2;
        const BETWEEN: usize = 1;
        const AFTER: usize = 1;
        const SKIP: &'static [&'static [u8]] = &[b"SKIPPED"];

        fn frame(buf: &mut BytesMut, start: usize, name: usize, value: usize) -> bool {
            let drop = buf.get(start + 2..start + 2 + name) == Some(&b"DROP"[..]);
            for at in [start, start + 1, start + 2 + name, start + 3 + name + value] {
                if let Some(b) = buf.get_mut(at) {
                    *b = b'#';
                }
            }
            !drop
        }
    }

    fn set(params: &[(&str, &str, bool)]) -> ParamSet {
        let table = VarTable::default();
        ParamSet {
            params: params
                .iter()
                .map(|&(name, value, if_not_empty)| ParamSpec {
                    name: Bytes::copy_from_slice(name.as_bytes()),
                    value: Template::compile(value, &table).unwrap(),
                    if_not_empty,
                })
                .collect(),
            pass_request_headers: true,
        }
    }

    fn cx() -> RequestCtx {
        let mut c = RequestCtx::for_test(Method::GET, "/a?x=1");
        for (k, v) in [
            ("x-one", "1"),
            ("cookie", "a=b"),
            ("accept", "text/html"),
            ("cookie", "c=d"),
            ("x_under", "u"),
            ("x-override", "from header"),
            ("accept", "*/*"),
        ] {
            c.headers.append(k, v.parse().unwrap());
        }
        c
    }

    fn pairs(p: &Params) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn params_and_headers_in_order_in_every_framing() {
        let set = set(&[
            ("REQUEST_METHOD", "$request_method", false),
            ("EMPTY", "", true),
            ("KEPT_EMPTY", "", false),
            ("HTTP_X_OVERRIDE", "from param", false),
            ("SKIPPED", "x", false),
            ("DROP", "x", false),
        ]);
        let cx = cx();
        let want = |skipped: bool, dropped: bool| {
            let mut w: Vec<(String, String)> = [
                ("REQUEST_METHOD", "GET"),
                ("KEPT_EMPTY", ""),
                ("HTTP_X_OVERRIDE", "from param"),
                ("SKIPPED", "x"),
                ("DROP", "x"),
                ("HTTP_X_ONE", "1"),
                ("HTTP_COOKIE", "a=b; c=d"),
                ("HTTP_ACCEPT", "text/html, */*"),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
            w.retain(|(n, _)| !((skipped && n == "SKIPPED") || (dropped && n == "DROP")));
            w
        };
        assert_eq!(pairs(&set.build::<Plain>(&cx)), want(false, false));
        let marked = set.build::<Marked>(&cx);
        assert_eq!(pairs(&marked), want(true, true));
        let buf = marked.into_framed::<Marked>().unwrap();
        assert!(buf.starts_with(b"\0\0\0##REQUEST_METHOD#GET###KEPT_EMPTY##"));
        assert!(buf.ends_with(b"##HTTP_ACCEPT#text/html, */*#"));
        assert!(!buf.windows(4).any(|w| w == b"DROP"));
        // Given back only to the framing they were built with.
        let plain = set.build::<Plain>(&cx);
        assert!(plain.into_framed::<Plain>().is_err());
        let marked = set.build::<Marked>(&cx);
        assert!(marked.into_framed::<Plain>().is_err());
    }
}
