//! The one parser of a CGI-style response head (uwsgi, SCGI, FastCGI).
//!
//! Such an upstream answers in one of two forms (nginx `ngx_http_uwsgi_process_status_line`
//! / `ngx_http_scgi_process_header`):
//!
//! - an HTTP status line and headers: `HTTP/1.1 404 Not Found\r\nContent-Type: …\r\n\r\n`;
//!   the status line decides the status (a `Status:` header is then ignored);
//! - CGI headers: `Status: 404 Not Found\r\nContent-Type: …\r\n\r\n`, where `Status:` is
//!   optional — without it the status is `302` when a `Location` header is present and
//!   `200` otherwise.
//!
//! FastCGI's head (nginx `ngx_http_fastcgi_process_header`) is the CGI form only; its
//! codec collects the head from STDOUT records and hands the whole block to
//! [`parse_cgi_block`].
//!
//! Lines may end in CRLF or a bare LF. Headers keep their order and duplicates
//! (`Set-Cookie`); `Status` itself is never passed on. Everything else in the head —
//! `Date`, `Server`, `X-Accel-*` — is the backend's business, not the parser's.

use crate::codec::ResponseHead;
use crate::error::{Error, ErrorKind};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use http::StatusCode;
use smallvec::SmallVec;

/// What a status line starts with; anything else is the CGI form.
const STATUS_LINE_PREFIX: &[u8] = b"HTTP/";
/// Header slots tried first; a head with more lines is parsed again with one slot per line.
const INLINE_HEADERS: usize = 64;
/// The CGI header that carries the status (lowercase: `HeaderName` normalises to it).
const STATUS_HEADER: &str = "status";
/// Digits of a status code.
const STATUS_DIGITS: usize = 3;

/// Parses a response head from the front of `buf`.
///
/// - `Ok(Some(head))`: the head was complete; its bytes (through the empty line) are
///   consumed and `buf` starts with the body.
/// - `Ok(None)`: more bytes are needed; `buf` is untouched.
/// - `Err(TooBigHeader)`: the first `limit` bytes hold no complete head
///   ("upstream sent too big header").
/// - `Err(InvalidResponse)`: the bytes are not a response head.
///
/// Only the first `limit` bytes are ever looked at, so the cost of a call is bounded by
/// `limit` whatever the peer sends.
pub fn parse_head(buf: &mut BytesMut, limit: usize) -> Result<Option<ResponseHead>, Error> {
    let all: &[u8] = buf;
    let window = all.get(..limit).unwrap_or(all);
    let Some(form) = Form::detect(window) else {
        return incomplete(buf.len(), limit);
    };
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut parsed = Parsed::default();
    let outcome = match attempt(window, form, &mut inline, &mut parsed)? {
        Attempt::TooManyHeaders => {
            // Every header needs its own line, so one slot per `\n` is always enough.
            let lines = window.iter().filter(|&&b| b == b'\n').count();
            let mut slots = vec![httparse::EMPTY_HEADER; lines.saturating_add(1)];
            attempt(window, form, &mut slots, &mut parsed)?
        }
        other => other,
    };
    match outcome {
        Attempt::Done(len) => {
            // The values are slices of the head's bytes, not copies.
            let head = buf.split_to(len).freeze();
            parsed.into_head(&head).map(Some)
        }
        Attempt::Partial => incomplete(buf.len(), limit),
        Attempt::TooManyHeaders => Err(Error::invalid("upstream sent too many header lines")),
    }
}

/// Parses a complete CGI header block (FastCGI: its header lines through the blank
/// line, nothing after it). A status line (`HTTP/1.1 200 OK`) is not a CGI header and
/// is invalid here, as in nginx's FastCGI module.
pub fn parse_cgi_block(block: &Bytes) -> Result<ResponseHead, Error> {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut parsed = Parsed::default();
    let outcome = match attempt(block, Form::Cgi, &mut inline, &mut parsed)? {
        Attempt::TooManyHeaders => {
            let lines = block.iter().filter(|&&b| b == b'\n').count();
            let mut slots = vec![httparse::EMPTY_HEADER; lines.saturating_add(1)];
            attempt(block, Form::Cgi, &mut slots, &mut parsed)?
        }
        other => other,
    };
    match outcome {
        Attempt::Done(len) if len == block.len() => parsed.into_head(block),
        _ => Err(Error::invalid("upstream sent invalid header")),
    }
}

/// The two shapes of a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `HTTP/1.x NNN reason` then headers.
    StatusLine,
    /// CGI headers, with an optional `Status:`.
    Cgi,
}

impl Form {
    /// Which form `window` is in; `None` while it is still a (proper) prefix of `HTTP/`.
    fn detect(window: &[u8]) -> Option<Form> {
        let n = window.len().min(STATUS_LINE_PREFIX.len());
        if window.get(..n) != STATUS_LINE_PREFIX.get(..n) {
            Some(Form::Cgi)
        } else if n < STATUS_LINE_PREFIX.len() {
            None
        } else {
            Some(Form::StatusLine)
        }
    }
}

/// The result of one parse attempt over the window.
enum Attempt {
    /// A complete head of this many bytes.
    Done(usize),
    /// The head is not complete yet.
    Partial,
    /// More header slots are needed.
    TooManyHeaders,
}

/// One parse of `window`; a complete head's lines go into `out`.
fn attempt<'b>(
    window: &'b [u8],
    form: Form,
    slots: &mut [httparse::Header<'b>],
    out: &mut Parsed,
) -> Result<Attempt, Error> {
    match form {
        Form::StatusLine => {
            let mut response = httparse::Response::new(slots);
            match response.parse(window) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response
                        .code
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .ok_or_else(|| Error::invalid("upstream sent invalid status line"))?;
                    build(window, response.headers, Some(status), out)?;
                    Ok(Attempt::Done(len))
                }
                Ok(httparse::Status::Partial) => Ok(Attempt::Partial),
                Err(httparse::Error::TooManyHeaders) => Ok(Attempt::TooManyHeaders),
                // `HTTP/2.0 200 OK` (uWSGI echoes `SERVER_PROTOCOL`, so an HTTP/2
                // client's request gets it) and other versions httparse refuses.
                Err(httparse::Error::Version) => other_version(window, slots, out),
                Err(e) => Err(Error::invalid(format!(
                    "upstream sent invalid status line or header: {e}"
                ))),
            }
        }
        Form::Cgi => match httparse::parse_headers(window, slots) {
            Ok(httparse::Status::Complete((len, headers))) => {
                build(window, headers, None, out)?;
                Ok(Attempt::Done(len))
            }
            Ok(httparse::Status::Partial) => Ok(Attempt::Partial),
            Err(httparse::Error::TooManyHeaders) => Ok(Attempt::TooManyHeaders),
            Err(e) => Err(Error::invalid(format!("upstream sent invalid header: {e}"))),
        },
    }
}

/// A status line with a version other than HTTP/1.0 and 1.1, as
/// `ngx_http_parse_status_line` takes it: `HTTP/` MAJOR `.` MINOR (each at most
/// three digits, the major not starting with 0), spaces, a three-digit code, the
/// rest of the line; then the header lines.
fn other_version<'b>(
    window: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    out: &mut Parsed,
) -> Result<Attempt, Error> {
    let bad =
        || Error::invalid("upstream sent invalid status line or header: invalid HTTP version");
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        // Incomplete: the version must at least start as nginx's does (1-9).
        return match window.get(STATUS_LINE_PREFIX.len()) {
            None | Some(b'1'..=b'9') => Ok(Attempt::Partial),
            Some(_) => Err(bad()),
        };
    };
    let line = window.get(..end).unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(STATUS_LINE_PREFIX).ok_or_else(bad)?;
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let major = digits(rest);
    if !(1..=3).contains(&major) || rest.first() == Some(&b'0') {
        return Err(bad());
    }
    let rest = rest
        .get(major..)
        .and_then(|r| r.strip_prefix(b"."))
        .ok_or_else(bad)?;
    let minor = digits(rest);
    if !(1..=3).contains(&minor) {
        return Err(bad());
    }
    let rest = rest.get(minor..).ok_or_else(bad)?;
    let rest = rest.strip_prefix(b" ").ok_or_else(bad)?;
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let code = rest.get(spaces..spaces + 3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let status = std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| Error::invalid("upstream sent invalid status line"))?;
    let headers = window.get(end + 1..).unwrap_or(&[]);
    match httparse::parse_headers(headers, slots) {
        Ok(httparse::Status::Complete((len, h))) => {
            build(window, h, Some(status), out)?;
            Ok(Attempt::Done(end + 1 + len))
        }
        Ok(httparse::Status::Partial) => Ok(Attempt::Partial),
        Err(httparse::Error::TooManyHeaders) => Ok(Attempt::TooManyHeaders),
        Err(e) => Err(Error::invalid(format!(
            "upstream sent invalid status line or header: {e}"
        ))),
    }
}

/// A parsed head whose values are still spans of its bytes (offset, length).
#[derive(Default)]
struct Parsed {
    line_status: Option<StatusCode>,
    status_header: Option<(usize, usize)>,
    headers: SmallVec<[(HeaderName, usize, usize); 16]>,
}

impl Parsed {
    /// The head, its values sliced out of `head` (the bytes the spans are of).
    fn into_head(self, head: &Bytes) -> Result<ResponseHead, Error> {
        let slice = |(o, l): (usize, usize)| {
            if l == 0 {
                return Ok(Bytes::new());
            }
            head.get(o..o.saturating_add(l))
                .map(|_| head.slice(o..o + l))
                .ok_or_else(|| Error::invalid("upstream sent invalid header"))
        };
        // Room for what the output adds (Server, Date, an add_header) without a regrowth.
        let mut map = HeaderMap::with_capacity(self.headers.len() + 3);
        for (name, o, l) in self.headers {
            let value = HeaderValue::from_maybe_shared(slice((o, l))?).map_err(|_| {
                Error::invalid(format!("upstream sent invalid value in header \"{name}\""))
            })?;
            map.append(name, value);
        }
        let status = match (self.line_status, self.status_header) {
            (Some(status), _) => status,
            (None, Some(span)) => parse_status_value(&slice(span)?)?,
            (None, None) if map.contains_key(LOCATION) => StatusCode::FOUND,
            (None, None) => StatusCode::OK,
        };
        Ok(ResponseHead {
            status,
            headers: map,
        })
    }
}

/// Takes parsed header lines (slices of `window`) as spans. `line_status` is the
/// status line's code, which wins over any `Status:` header (nginx: `if
/// (u->headers_in.status_n) goto done`).
fn build(
    window: &[u8],
    headers: &[httparse::Header<'_>],
    line_status: Option<StatusCode>,
    out: &mut Parsed,
) -> Result<(), Error> {
    let base = window.as_ptr() as usize;
    let span = |v: &[u8]| ((v.as_ptr() as usize).wrapping_sub(base), v.len());
    out.line_status = line_status;
    for header in headers {
        let name = crate::header_set::header_name(header.name.as_bytes()).map_err(|_| {
            Error::invalid(format!(
                "upstream sent invalid header name \"{}\"",
                header.name
            ))
        })?;
        if name.as_str() == STATUS_HEADER {
            if let Some((o, l)) = out.status_header {
                tracing::warn!(
                    previous = %String::from_utf8_lossy(window.get(o..o + l).unwrap_or(&[])),
                    ignored = %String::from_utf8_lossy(header.value),
                    "upstream sent duplicate header line \"Status\""
                );
            } else {
                out.status_header = Some(span(header.value));
            }
            continue;
        }
        let (o, l) = span(header.value);
        out.headers.push((name, o, l));
    }
    Ok(())
}

/// Parses a CGI `Status:` value: three digits (100–999), then nothing or a space/tab and
/// a reason phrase (which is dropped: Junction sends its own).
fn parse_status_value(value: &[u8]) -> Result<StatusCode, Error> {
    let (code, rest) = value.split_at(value.len().min(STATUS_DIGITS));
    let separated = matches!(rest.first(), None | Some(b' ' | b'\t'));
    StatusCode::from_bytes(code)
        .ok()
        .filter(|_| separated)
        .ok_or_else(|| {
            Error::invalid(format!(
                "upstream sent invalid status \"{}\"",
                String::from_utf8_lossy(value)
            ))
        })
}

/// No complete head yet: wait for more bytes, unless `limit` bytes are already there.
fn incomplete(buffered: usize, limit: usize) -> Result<Option<ResponseHead>, Error> {
    if buffered >= limit {
        Err(Error::new(
            ErrorKind::TooBigHeader,
            "upstream sent too big header",
        ))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const LIMIT: usize = 4096;

    fn parse(input: &[u8]) -> (Result<Option<ResponseHead>, Error>, BytesMut) {
        let mut buf = BytesMut::from(input);
        let result = parse_head(&mut buf, LIMIT);
        (result, buf)
    }

    fn head(input: &[u8]) -> (ResponseHead, BytesMut) {
        let (result, rest) = parse(input);
        (result.unwrap().expect("complete head"), rest)
    }

    fn values<'a>(head: &'a ResponseHead, name: &str) -> Vec<&'a [u8]> {
        head.headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }

    fn err_kind(input: &[u8], limit: usize) -> ErrorKind {
        let mut buf = BytesMut::from(input);
        parse_head(&mut buf, limit).unwrap_err().kind()
    }

    #[test]
    fn status_line_form() {
        let (head, rest) = head(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
              Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody bytes",
        );
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert_eq!(values(&head, "content-type"), [&b"text/plain"[..]]);
        assert_eq!(values(&head, "set-cookie"), [&b"a=1"[..], b"b=2"]);
        assert_eq!(head.headers.len(), 3);
        assert_eq!(&rest[..], b"body bytes");
    }

    #[test]
    fn status_line_of_other_versions_as_nginx() {
        // uWSGI answers an HTTP/2 request with `HTTP/2.0 …` (its SERVER_PROTOCOL).
        let (h, rest) = head(b"HTTP/2.0 201 Created\r\nX-A: 1\r\n\r\nbody");
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(values(&h, "x-a"), [&b"1"[..]]);
        assert_eq!(&rest[..], b"body");
        let (h, _) = head(b"HTTP/1.5  404\n\n");
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        let (r, _) = parse(b"HTTP/2.0 200 OK\r\nX-A: 1\r\n");
        assert!(matches!(r, Ok(None)), "partial");
        for bad in [
            &b"HTTP/2 200\r\n\r\n"[..],
            b"HTTP/02.0 200\r\n\r\n",
            b"HTTP/2.0 2x0\r\n\r\n",
        ] {
            let (r, _) = parse(bad);
            assert_eq!(
                r.expect_err("invalid").kind(),
                ErrorKind::InvalidResponse,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_line_http10_without_reason_and_no_headers() {
        let (head, rest) = head(b"HTTP/1.0 204\r\n\r\n");
        assert_eq!(head.status, StatusCode::NO_CONTENT);
        assert!(head.headers.is_empty());
        assert!(rest.is_empty());
    }

    #[test]
    fn status_line_wins_over_status_header_which_is_dropped() {
        let (head, _) = head(b"HTTP/1.1 201 Created\r\nStatus: 500 Oops\r\nX-A: 1\r\n\r\n");
        assert_eq!(head.status, StatusCode::CREATED);
        assert!(!head.headers.contains_key("status"));
        assert_eq!(values(&head, "x-a"), [&b"1"[..]]);
        // Not even validated when the status line decided.
        let (head, _) = self::head(b"HTTP/1.1 200 OK\r\nStatus: nonsense\r\n\r\n");
        assert_eq!(head.status, StatusCode::OK);
    }

    #[test]
    fn status_line_location_keeps_line_status() {
        let (head, _) = head(b"HTTP/1.1 200 OK\r\nLocation: /x\r\n\r\n");
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(values(&head, "location"), [&b"/x"[..]]);
    }

    #[test]
    fn cgi_form_with_status() {
        let (head, rest) =
            head(b"Status: 403 Forbidden\r\nContent-Type: text/html\r\n\r\n<h1>no</h1>");
        assert_eq!(head.status, StatusCode::FORBIDDEN);
        assert!(!head.headers.contains_key("status"));
        assert_eq!(values(&head, "content-type"), [&b"text/html"[..]]);
        assert_eq!(&rest[..], b"<h1>no</h1>");
    }

    #[test]
    fn cgi_status_without_reason_and_lowercase_name() {
        let (head, _) = head(b"status: 418\r\n\r\n");
        assert_eq!(head.status, StatusCode::IM_A_TEAPOT);
        assert!(head.headers.is_empty());
    }

    #[test]
    fn cgi_default_200_and_location_302() {
        let (head, _) = self::head(b"Content-Type: text/plain\r\n\r\n");
        assert_eq!(head.status, StatusCode::OK);
        let (head, _) = self::head(b"Location: http://example.org/\r\n\r\n");
        assert_eq!(head.status, StatusCode::FOUND);
        assert_eq!(values(&head, "location"), [&b"http://example.org/"[..]]);
        let (head, _) = self::head(b"Location: /moved\r\nStatus: 301 Moved\r\n\r\n");
        assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn cgi_duplicate_status_first_wins() {
        let (head, _) = head(b"Status: 404\r\nStatus: 500\r\n\r\n");
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert!(head.headers.is_empty());
    }

    #[test]
    fn bare_lf_line_endings() {
        let (head, rest) = self::head(b"Status: 202 Accepted\nX-A: 1\nX-A: 2\n\nrest");
        assert_eq!(head.status, StatusCode::ACCEPTED);
        assert_eq!(values(&head, "x-a"), [&b"1"[..], b"2"]);
        assert_eq!(&rest[..], b"rest");
        let (head, rest) = self::head(b"HTTP/1.1 500 Boom\nX-B: y\n\n");
        assert_eq!(head.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(values(&head, "x-b"), [&b"y"[..]]);
        assert!(rest.is_empty());
    }

    #[test]
    fn empty_cgi_head_is_200() {
        let (head, rest) = self::head(b"\r\nbody");
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.is_empty());
        assert_eq!(&rest[..], b"body");
    }

    #[test]
    fn non_utf8_header_values_are_bytes() {
        let (head, _) = head(b"X-Latin: caf\xe9\r\n\r\n");
        assert_eq!(values(&head, "x-latin"), [&b"caf\xe9"[..]]);
    }

    #[test]
    fn many_headers_beyond_inline_slots() {
        let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..500 {
            input.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&input[..]);
        let head = parse_head(&mut buf, 64 * 1024).unwrap().unwrap();
        assert_eq!(head.headers.len(), 500);
        assert_eq!(values(&head, "x-h499"), [&b"499"[..]]);
        // The same in CGI form.
        let cgi = &input[b"HTTP/1.1 200 OK\r\n".len()..];
        let mut buf = BytesMut::from(cgi);
        let head = parse_head(&mut buf, 64 * 1024).unwrap().unwrap();
        assert_eq!(head.headers.len(), 500);
        assert!(buf.is_empty());
    }

    #[test]
    fn incomplete_returns_none_and_consumes_nothing() {
        for input in [
            &b""[..],
            b"H",
            b"HTTP",
            b"HTTP/",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r",
            b"Status: 200",
            b"Content-Type: text/plain\r\n",
        ] {
            let (result, rest) = parse(input);
            assert!(result.unwrap().is_none(), "{input:?}");
            assert_eq!(&rest[..], input);
        }
    }

    #[test]
    fn too_big_header() {
        let head = b"Status: 200\r\nX-Long: aaaaaaaaaa\r\n\r\n";
        // Exactly fits: accepted, even with body bytes beyond the limit.
        let mut buf = BytesMut::from(&head[..]);
        buf.extend_from_slice(b"body beyond the limit");
        assert!(parse_head(&mut buf, head.len()).unwrap().is_some());
        assert_eq!(&buf[..], b"body beyond the limit");
        // One byte short of the limit and incomplete: wait.
        let mut buf = BytesMut::from(&head[..head.len() - 2]);
        assert!(parse_head(&mut buf, head.len() - 1).unwrap().is_none());
        // `limit` bytes buffered, no complete head: too big.
        let mut buf = BytesMut::from(&head[..]);
        let err = parse_head(&mut buf, head.len() - 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
        assert_eq!(err.message(), "upstream sent too big header");
        assert_eq!(
            err_kind(b"HTTP/1.1 200 OK\r\n\r\n", 10),
            ErrorKind::TooBigHeader
        );
        // Even while the form is still undecided.
        assert_eq!(err_kind(b"HTT", 3), ErrorKind::TooBigHeader);
        assert_eq!(err_kind(b"", 0), ErrorKind::TooBigHeader);
    }

    #[test]
    fn invalid_heads() {
        for input in [
            &b"\x00\x01\x02\x03\r\n\r\n"[..],
            b"hello world\r\n\r\n",
            b"Bad Name: x\r\n\r\n",
            b": no name\r\n\r\n",
            b"X-A: a\x01b\r\n\r\n",
            b"X-A: a\x7fb\r\n\r\n",
            b" folded: x\r\n\r\n",
            b"X-A: 1\r\n continued\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/x",
            b"Status: abc\r\n\r\n",
            b"Status: 42\r\n\r\n",
            b"Status: 099 Low\r\n\r\n",
            b"Status: 2000\r\n\r\n",
            b"Status: \r\n\r\n",
        ] {
            let (result, _) = parse(input);
            let err = result.expect_err(&String::from_utf8_lossy(input));
            assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{input:?}");
        }
    }

    /// Every prefix of a valid head is either incomplete or the same head.
    #[test]
    fn every_prefix() {
        let input = b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nbody";
        let body_start = input.len() - 4;
        for cut in 0..=input.len() {
            let (result, rest) = parse(&input[..cut]);
            match result.unwrap() {
                None => {
                    assert!(cut < body_start, "cut {cut}");
                    assert_eq!(rest.len(), cut);
                }
                Some(head) => {
                    assert!(cut >= body_start, "cut {cut}");
                    assert_eq!(values(&head, "set-cookie"), [&b"a"[..], b"b"]);
                    assert_eq!(&rest[..], &input[body_start..cut]);
                }
            }
        }
    }

    /// Deterministic pseudo-random input never panics, at any limit.
    #[test]
    fn garbage_never_panics() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"HTP/1. 0Status:\r\n\0\x7f\xffabcLocation";
        for round in 0..2000 {
            let len = round % 97;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let r = (state >> 33) as usize;
                    match r % 4 {
                        0 => (r >> 8) as u8,
                        _ => alphabet[r % alphabet.len()],
                    }
                })
                .collect();
            for limit in [0, 1, 5, 16, 4096] {
                let mut buf = BytesMut::from(&input[..]);
                let before = buf.len();
                match parse_head(&mut buf, limit) {
                    Ok(Some(_)) => assert!(buf.len() < before),
                    Ok(None) => assert_eq!(buf.len(), before),
                    Err(_) => {}
                }
            }
        }
    }

    #[test]
    fn cgi_block_as_fastcgi_sends_it() {
        let h = parse_cgi_block(&Bytes::from_static(
            b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(h.status, StatusCode::NOT_FOUND);
        assert!(h.headers.get("status").is_none());
        assert_eq!(values(&h, "content-type"), vec![&b"text/html"[..]]);
        assert_eq!(
            parse_cgi_block(&Bytes::from_static(b"Status: 403\r\nStatus: 500\r\n\r\n"))
                .unwrap()
                .status,
            403
        );
        assert_eq!(
            parse_cgi_block(&Bytes::from_static(b"Location: /x\r\n\r\n"))
                .unwrap()
                .status,
            302
        );
        assert_eq!(
            parse_cgi_block(&Bytes::from_static(b"Status: 301\r\nLocation: /x\r\n\r\n"))
                .unwrap()
                .status,
            301
        );
        let blank = parse_cgi_block(&Bytes::from_static(b"X-Empty:\r\nX-B: b\r\n\r\n")).unwrap();
        assert_eq!(values(&blank, "x-empty"), vec![&b""[..]]);
        assert_eq!(values(&blank, "x-b"), vec![&b"b"[..]]);
        let (line, rest) = head(b"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-C: c\r\n\r\nbody");
        assert_eq!(values(&line, "x-empty"), vec![&b""[..]]);
        assert_eq!(values(&line, "x-c"), vec![&b"c"[..]]);
        assert_eq!(&rest[..], b"body");
        let empty = parse_cgi_block(&Bytes::from_static(b"\r\n")).unwrap();
        assert_eq!((empty.status, empty.headers.len()), (StatusCode::OK, 0));
        let mut many = Vec::new();
        for i in 0..1000 {
            many.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_cgi_block(&Bytes::from(many)).unwrap().headers.len(),
            1000
        );
        // A status line is not a CGI header (nginx's FastCGI module rejects it), nor is
        // anything but a whole block.
        for bad in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"No colon here\r\n\r\n",
            b"Bad Name: x\r\n\r\n",
            b"Status: nope\r\n\r\n",
            b"Status: 099\r\n\r\n",
            b"X: a\x01b\r\n\r\n",
            b"X: a\r\n",
            b"X: a\r\n\r\nbody",
        ] {
            let e = parse_cgi_block(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{bad:?}");
        }
    }
}
