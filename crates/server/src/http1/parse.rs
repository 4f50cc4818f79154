//! The request head: `httparse` for the syntax, then the rules nginx adds in
//! `ngx_http_parse_request_line`, `ngx_http_process_request_headers` and
//! `ngx_http_process_request_header`. Header values and the target slice the
//! one `Bytes` the head was read into.

use super::ConnConf;
use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{HeaderMap, Method, Uri, Version};
use std::mem::MaybeUninit;

/// Headers parsed on the stack; a head with more is parsed again with a larger array.
const STACK_HEADERS: usize = 64;
/// The most headers a head may have at all (its size is capped first anyway).
const MAX_HEADERS: usize = 4096;

/// Why a head is refused: the status, the error log text, and whether the page is
/// nginx's "Request Header Or Cookie Too Large" (its internal 494, sent as 400).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadError {
    pub(crate) status: u16,
    pub(crate) msg: &'static str,
    pub(crate) too_large: bool,
}

const fn bad(msg: &'static str) -> HeadError {
    HeadError {
        status: 400,
        msg,
        too_large: false,
    }
}

const TOO_LONG_URI: HeadError = HeadError {
    status: 414,
    msg: "client sent too long URI",
    too_large: false,
};

const TOO_LONG_HEADER: HeadError = HeadError {
    status: 400,
    msg: "client sent too long header line",
    too_large: true,
};

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) parts: http::request::Parts,
    pub(crate) framing: Framing,
    /// The client asked to keep the connection (HTTP/1.1 without `close`, or
    /// HTTP/1.0 with `keep-alive`).
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    pub(crate) upgrade: bool,
    /// Bytes of the head as received (request line and headers, `$request_length`).
    pub(crate) len: usize,
}

/// Checks a head not complete yet against nginx's buffer limits: the request line
/// must fit one large buffer (414), every header line too (400 "Request Header Or
/// Cookie Too Large"), and the whole head all of them.
pub(crate) fn check_partial(buf: &[u8], conf: &ConnConf) -> Result<(), HeadError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..).unwrap_or(&[]);
    match memchr(b'\n', rest) {
        None if rest.len() >= conf.large_size => Err(TOO_LONG_URI),
        None => Ok(()),
        Some(_) => {
            let line_start = rest.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            if rest.len() - line_start >= conf.large_size || buf.len() >= conf.head_limit() {
                Err(TOO_LONG_HEADER)
            } else {
                Ok(())
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses the head at the start of `buf`. `Ok(None)`: more bytes needed. On
/// success the head's bytes are split off `buf` (what follows stays: body,
/// pipelined requests).
pub(crate) fn parse(buf: &mut BytesMut, conf: &ConnConf) -> Result<Option<Head>, HeadError> {
    match parse_once(buf, conf) {
        Err(e) if e.msg == MINOR => {
            // nginx serves `HTTP/1.2`…`HTTP/1.9` as HTTP/1.1.
            if let Some(at) = minor_digit(buf) {
                if let Some(b) = buf.get_mut(at) {
                    *b = b'1';
                }
                return parse_once(buf, conf);
            }
            Err(bad("client sent invalid request"))
        }
        r => r,
    }
}

const MINOR: &str = "HTTP/1.x";

/// The offset of the minor version digit of an `HTTP/1.N` request line (one digit).
fn minor_digit(buf: &[u8]) -> Option<usize> {
    let end = memchr(b'\n', buf)?;
    let line = buf.get(..end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let v = line.len().checked_sub(8)?;
    let tail = line.get(v..)?;
    (tail.starts_with(b"HTTP/1.") && tail.get(7).is_some_and(u8::is_ascii_digit)).then_some(v + 7)
}

fn parse_once(buf: &mut BytesMut, conf: &ConnConf) -> Result<Option<Head>, HeadError> {
    // The header offsets, filled in place (not moved out with the result).
    let mut spans = Spans::new();
    let parsed = {
        // Uninitialised slots: nothing is zeroed for headers the request does not have.
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        match parse_with(&buf[..], conf, &mut stack, &mut spans) {
            Err(e) if e.msg == MANY => {
                let mut heap: Vec<MaybeUninit<httparse::Header<'_>>> =
                    std::iter::repeat_with(MaybeUninit::uninit)
                        .take(MAX_HEADERS)
                        .collect();
                spans.clear();
                match parse_with(&buf[..], conf, &mut heap, &mut spans) {
                    Err(e) if e.msg == MANY => Err(TOO_LONG_HEADER),
                    r => r,
                }
            }
            r => r,
        }
    };
    // An HTTP/0.9 line (no version) is an error to `httparse`: looked for only then.
    let parsed = match parsed {
        Err(e) => match http09(buf)? {
            Some(h) => return Ok(Some(h)),
            None => Err(e),
        },
        ok => ok,
    };
    let Some(p) = parsed? else {
        return Ok(None);
    };
    let len = p.len;
    let head = buf.split_to(len).freeze();
    build(head, len, p.method, p.target, p.version, &spans).map(Some)
}

/// The method and target of an HTTP/0.9 request line at the start of `buf`
/// (two words and the line end, no version), with the line's end offset.
fn line09(buf: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let rest = buf.get(start..)?;
    let end = memchr(b'\n', rest)?;
    let line = rest.get(..end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(m), Some(t), None) => Some((m, t, start + end + 1)),
        _ => None,
    }
}

/// Whether `buf` starts with an HTTP/0.9 request line (its errors are sent
/// without a status line, as nginx).
pub(crate) fn is_http09(buf: &[u8]) -> bool {
    line09(buf).is_some()
}

/// An HTTP/0.9 request line (`GET /path` and the line end, no version): nginx
/// serves it, GET only, with the body alone.
fn http09(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    let Some((method, target, total)) = line09(buf) else {
        return Ok(None);
    };
    if method != b"GET" {
        return Err(bad("client sent invalid method in HTTP/0.9 request"));
    }
    if !target.starts_with(b"/") {
        return Err(bad("client sent invalid request"));
    }
    let t_off = span_of(&buf[..], target);
    let head = buf.split_to(total).freeze();
    let raw_target = slice(&head, t_off);
    let uri = Uri::from_maybe_shared(raw_target.clone())
        .or_else(|_| Uri::from_maybe_shared(encode_target(&raw_target)))
        .map_err(|_| bad("client sent invalid request"))?;
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = Method::GET;
    parts.uri = uri;
    parts.version = Version::HTTP_09;
    Ok(Some(Head {
        parts,
        framing: Framing::None,
        keep_alive: false,
        expect_continue: false,
        upgrade: false,
        len: total,
    }))
}

/// What the syntax pass found: offsets into the head, nothing borrowed (the
/// headers' offsets are in the caller's [`Spans`]).
struct Parsed {
    len: usize,
    method: Method,
    target: Span,
    version: Version,
}

const MANY: &str = "too many headers";

/// The (name, value) offsets of a head's headers (on the stack up to 24 headers).
type Spans = smallvec::SmallVec<[(Span, Span); 24]>;

/// Offsets of one header inside the head.
#[derive(Clone, Copy, Default)]
struct Span {
    start: usize,
    len: usize,
}

fn span_of(base: &[u8], part: &[u8]) -> Span {
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    Span {
        start,
        len: part.len(),
    }
}

fn parse_with<'b>(
    buf: &'b [u8],
    conf: &ConnConf,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    spans: &mut Spans,
) -> Result<Option<Parsed>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let mut cfg = httparse::ParserConfig::default();
    cfg.allow_multiple_spaces_in_request_line_delimiters(true);
    // nginx skips header lines it cannot read as a name (`ignore_invalid_headers`).
    cfg.ignore_invalid_headers_in_requests(conf.ignore_invalid_headers);
    let status = cfg.parse_request_with_uninit_headers(&mut req, buf, headers);
    let n = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_partial(buf, conf)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(bad(MANY)),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(httparse::Error::HeaderName) => {
            return Err(bad("client sent invalid header line"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(bad("client sent invalid header line"));
        }
        Err(httparse::Error::Token) | Err(httparse::Error::NewLine) => {
            return Err(bad("client sent invalid request"));
        }
        Err(_) => return Err(bad("client sent invalid request")),
    };
    let base: &[u8] = buf;
    check_lines(base.get(..n).unwrap_or(&[]))?;
    let method_s = req.method.unwrap_or("");
    // nginx: a method is upper-case letters, `_` and `-` (`ngx_http_parse_request_line`).
    if method_s.is_empty()
        || !method_s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return Err(bad("client sent invalid method"));
    }
    let method =
        Method::from_bytes(method_s.as_bytes()).map_err(|_| bad("client sent invalid method"))?;
    let path = req.path.unwrap_or("");
    let target = span_of(base, path.as_bytes());
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Request line (from the method to the version) must fit one large buffer.
    let line_end = memchr(b'\n', base).unwrap_or(n);
    let line_start = span_of(base, method_s.as_bytes()).start;
    if line_end.saturating_sub(line_start) > conf.large_size {
        return Err(TOO_LONG_URI);
    }
    spans.reserve(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.len() + h.value.len() + 4 > conf.large_size {
            return Err(TOO_LONG_HEADER);
        }
        if !valid_name(name, conf.underscores_in_headers) && conf.ignore_invalid_headers {
            tracing::info!(
                "client sent invalid header line: \"{}\"",
                String::from_utf8_lossy(name)
            );
            continue;
        }
        spans.push((span_of(base, name), span_of(base, h.value)));
    }
    Ok(Some(Parsed {
        len: n,
        method,
        target,
        version,
    }))
}

/// What `httparse` lets through (or skips as invalid) but nginx refuses: a line
/// folded onto the previous one (obs-fold) and white space before a header's colon.
fn check_lines(head: &[u8]) -> Result<(), HeadError> {
    let mut lines = head.split(|&b| b == b'\n');
    // The request line (after any empty lines before it).
    for l in lines.by_ref() {
        if !matches!(l, [] | [b'\r']) {
            break;
        }
    }
    for l in lines {
        if matches!(l, [] | [b'\r']) {
            break;
        }
        if matches!(l.first(), Some(b' ' | b'\t')) {
            return Err(bad("client sent invalid header line"));
        }
        if let Some(colon) = l.iter().position(|&b| b == b':') {
            if colon > 0 && matches!(l.get(colon - 1), Some(b' ' | b'\t')) {
                return Err(bad("client sent invalid header line"));
            }
        }
    }
    Ok(())
}

/// nginx's header name characters: letters, digits, `-`, and `_` with
/// `underscores_in_headers on` (anything else is "invalid" and, by default, ignored).
fn valid_name(name: &[u8], underscores: bool) -> bool {
    name.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && underscores))
}

/// `HTTP/2.0` and later: 505 as nginx; anything else that is not `HTTP/1.x`: 400.
fn version_error(buf: &[u8]) -> HeadError {
    let line_end = memchr(b'\n', buf).unwrap_or(buf.len());
    let line = buf.get(..line_end).unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let v = line.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
    if let Some(rest) = v.strip_prefix(b"HTTP/") {
        let mut it = rest.splitn(2, |&b| b == b'.');
        let major = it.next().unwrap_or(&[]);
        let minor = it.next().unwrap_or(&[]);
        let digits = |s: &[u8]| !s.is_empty() && s.len() <= 3 && s.iter().all(u8::is_ascii_digit);
        if digits(major) && digits(minor) {
            let m: u32 = std::str::from_utf8(major)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if m >= 2 {
                return HeadError {
                    status: 505,
                    msg: "client sent invalid HTTP version",
                    too_large: false,
                };
            }
            if m == 1 && minor.len() == 1 {
                return bad(MINOR);
            }
        }
    }
    bad("client sent invalid request")
}

fn slice(head: &Bytes, s: Span) -> Bytes {
    if s.start.saturating_add(s.len) <= head.len() {
        head.slice(s.start..s.start + s.len)
    } else {
        Bytes::new()
    }
}

fn build(
    head: Bytes,
    len: usize,
    method: Method,
    target: Span,
    version: Version,
    spans: &[(Span, Span)],
) -> Result<Head, HeadError> {
    let raw_target = slice(&head, target);
    let mut raw_kept = None;
    let uri = match Uri::from_maybe_shared(raw_target.clone()) {
        Ok(u) => u,
        Err(_) => {
            let u = Uri::from_maybe_shared(encode_target(&raw_target))
                .map_err(|_| bad("client sent invalid request"))?;
            raw_kept = Some(raw_target);
            u
        }
    };
    let mut headers = HeaderMap::with_capacity(spans.len());
    let mut length: Option<u64> = None;
    let mut te: Option<Bytes> = None;
    let mut keep_alive = version == Version::HTTP_11;
    let mut expect_continue = false;
    let mut upgrade = false;
    for &(n, v) in spans {
        let name_b = slice(&head, n);
        let name = junction_core::header_set::header_name(&name_b)
            .map_err(|_| bad("client sent invalid header line"))?;
        let value_b = slice(&head, v);
        let value = HeaderValue::from_maybe_shared(value_b.clone())
            .map_err(|_| bad("client sent invalid header line"))?;
        if name == http::header::CONTENT_LENGTH {
            if length.is_some() {
                return Err(bad("client sent duplicate header line: \"Content-Length\""));
            }
            let s = trim(&value_b);
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return Err(bad("client sent invalid \"Content-Length\" header"));
            }
            let l = std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|&l| l <= i64::MAX as u64)
                .ok_or(bad("client sent invalid \"Content-Length\" header"))?;
            length = Some(l);
        } else if name == http::header::TRANSFER_ENCODING {
            if te.is_some() {
                return Err(bad(
                    "client sent duplicate header line: \"Transfer-Encoding\"",
                ));
            }
            te = Some(value_b);
        } else if name == http::header::CONNECTION {
            if contains_ci(&value_b, b"close") {
                keep_alive = false;
            } else if contains_ci(&value_b, b"keep-alive") {
                keep_alive = true;
            }
            if contains_ci(&value_b, b"upgrade") {
                upgrade = true;
            }
        } else if name == http::header::EXPECT {
            expect_continue = trim(&value_b).eq_ignore_ascii_case(b"100-continue");
        }
        headers.append(name, value);
    }
    if upgrade && !headers.contains_key(http::header::UPGRADE) {
        upgrade = false;
    }
    let framing =
        match (te, length) {
            (Some(_), Some(_)) => return Err(bad(
                "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time",
            )),
            (Some(te), None) => {
                if version == Version::HTTP_10 {
                    return Err(bad(
                        "client sent HTTP/1.0 request with \"Transfer-Encoding\" header",
                    ));
                }
                if !trim(&te).eq_ignore_ascii_case(b"chunked") {
                    return Err(HeadError {
                        status: 501,
                        msg: "client sent unknown \"Transfer-Encoding\"",
                        too_large: false,
                    });
                }
                Framing::Chunked
            }
            (None, Some(0)) => Framing::None,
            (None, Some(l)) => Framing::Length(l),
            (None, None) => Framing::None,
        };
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    if let Some(raw) = raw_kept {
        parts.extensions.insert(super::RawTarget(raw));
    }
    Ok(Head {
        parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
        len,
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |p| p + 1);
    b.get(s..e).unwrap_or(&[])
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A target `http::Uri` refuses (raw bytes above 0x7f, `"`, `{` …): the same
/// target with those bytes percent-encoded, as the URI the request is routed on.
fn encode_target(raw: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(raw.len() * 3);
    for &b in raw {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.extend_from_slice(&[b]);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn conf() -> ConnConf {
        let tree: Vec<junction_config::tree::Directive> = Vec::new();
        ConnConf::from_scope(&Scope::root(&tree), true).unwrap()
    }

    use junction_config::model::Scope;

    #[test]
    fn a_head_fed_byte_by_byte_parses_once_complete_and_leaves_the_rest() {
        let raw =
            b"\r\nPOST /a?b=c HTTP/1.1\r\nHost: x.test\r\nX_U: 1\r\nContent-Length: 2\r\n\r\nhiGET";
        let conf = conf();
        let mut buf = BytesMut::new();
        let mut head = None;
        for (i, b) in raw.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            if let Some(h) = parse(&mut buf, &conf).unwrap() {
                assert_eq!(i, raw.len() - 6, "complete exactly at the blank line");
                head = Some(h);
                break;
            }
        }
        let h = head.unwrap();
        let mut all = BytesMut::from(&raw[..]);
        assert!(parse(&mut all, &conf).unwrap().is_some());
        assert_eq!(
            &all[..],
            b"hiGET",
            "body and next request stay in the buffer"
        );
        assert_eq!(h.parts.method, Method::POST);
        assert_eq!(h.parts.uri.path(), "/a");
        assert_eq!(h.parts.uri.query(), Some("b=c"));
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive);
        assert!(!h.parts.headers.contains_key("x_u"), "underscores ignored");
        assert_eq!(h.parts.headers.len(), 2);
    }

    #[test]
    fn limits_of_the_partial_head() {
        let conf = conf();
        let mut line = b"GET /".to_vec();
        line.extend(std::iter::repeat_n(b'a', 8192));
        assert_eq!(check_partial(&line, &conf).unwrap_err().status, 414);
        let mut hdr = b"GET / HTTP/1.1\r\nX: ".to_vec();
        hdr.extend(std::iter::repeat_n(b'a', 8192));
        let e = check_partial(&hdr, &conf).unwrap_err();
        assert!(e.status == 400 && e.too_large);
        assert!(check_partial(b"GET / HTTP/1.1\r\nHost: a", &conf).is_ok());
    }

    #[test]
    fn framing_rules() {
        let conf = conf();
        let status = |raw: &[u8]| match parse(&mut BytesMut::from(raw), &conf) {
            Ok(Some(_)) => 0,
            Ok(None) => 1,
            Err(e) => e.status,
        };
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/3.0\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.5\r\nHost: a\r\n\r\n"), 0);
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400);
    }
}
