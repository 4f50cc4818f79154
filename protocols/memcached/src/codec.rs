//! The response decoder: nginx's `ngx_http_memcached_process_header` and
//! `ngx_http_memcached_filter`, as an [`UpstreamCodec`].
//!
//! A `get` is answered with one of
//!
//! ```text
//! VALUE <key> <flags> <bytes>[ <cas>]\r\n<data block of <bytes> bytes>\r\nEND\r\n   hit
//! END\r\n                                                                  miss
//! ERROR\r\n | CLIENT_ERROR <text>\r\n | SERVER_ERROR <text>\r\n            failure
//! ```
//!
//! States: [`State::Line`] (waiting for the first line) → either
//! [`State::Value`] (streaming the data block) → [`State::Trailer`] (matching
//! `\r\nEND\r\n`) → [`State::Done`], or [`State::Miss`] → [`State::Done`]. Any error
//! moves to [`State::Failed`].

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, StatusCode};
use junction_core::codec::{Decoded, ResponseHead, UpstreamCodec};
use junction_core::{Error, ErrorKind};

use crate::request::MAX_KEY_LEN;

/// What starts a hit's first line.
const VALUE: &[u8] = b"VALUE ";

/// A miss's whole first line (without its CRLF).
const END: &[u8] = b"END";

/// What follows the data block of a hit.
const TRAILER: &[u8] = b"\r\nEND\r\n";

/// Room on the first line for everything but the key:
/// `VALUE ` + ` <flags u32> <bytes u64> <cas u64>\r\n` is 6 + 54 bytes; rounded up.
const LINE_OVERHEAD: usize = 64;

/// The largest data block accepted: nginx parses `<bytes>` into an `off_t`.
const MAX_VALUE_LEN: u64 = i64::MAX as u64;

/// How many bytes of a peer's line go into an error message.
const LOG_LINE_MAX: usize = 128;

/// Where the decoder is in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the complete first line.
    Line,
    /// A miss: the 404 head went out, `End` comes next.
    Miss,
    /// A hit: `remaining` bytes of the data block still to pass on (never 0).
    Value { remaining: u64 },
    /// The data block is through; `matched` bytes of `\r\nEND\r\n` seen.
    Trailer { matched: usize },
    /// `End` was returned.
    Done,
    /// An error was returned; the connection is unusable.
    Failed,
}

/// What the first line said.
enum FirstLine {
    /// `VALUE …`.
    Hit { flags: u32, len: u64 },
    /// `END`.
    Miss,
}

/// Decodes memcached's answer to one `get` (the client side of nginx's
/// `ngx_http_memcached_module`). Created per request.
///
/// Events: `Head` (200 with `Content-Length: <bytes>` and, when the item's flags carry
/// `gzip_flag`, `Content-Encoding: gzip`; or 404 with `Content-Length: 0` on a miss), the
/// data block as zero-copy `Data` chunks as they arrive, then `End { reusable }` once
/// `\r\nEND\r\n` is seen. `reusable` is false only if bytes follow the response (memcached
/// never sends unasked, so the connection is out of step).
#[derive(Debug)]
pub struct MemcachedCodec {
    /// The key as sent (escaped); the `VALUE` line must repeat it.
    key: Bytes,
    /// `memcached_gzip_flag`; 0 = off.
    gzip_flag: u32,
    /// The longest first line accepted, CRLF included.
    line_cap: usize,
    /// Where the decoder is.
    state: State,
}

impl MemcachedCodec {
    /// A decoder for the answer to `get <key>\r\n`; `key` is the escaped key as sent
    /// ([`escape_key`](crate::escape_key)), `gzip_flag` is `memcached_gzip_flag` (0 = off).
    pub fn new(key: Bytes, gzip_flag: u32) -> Self {
        let line_cap = VALUE
            .len()
            .saturating_add(key.len().max(MAX_KEY_LEN))
            .saturating_add(LINE_OVERHEAD);
        MemcachedCodec {
            key,
            gzip_flag,
            line_cap,
            state: State::Line,
        }
    }

    /// One step of the state machine; errors leave the state to the caller.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        match self.state {
            State::Line => self.decode_line(buf),
            State::Miss => {
                self.state = State::Done;
                Ok(Some(Decoded::End {
                    reusable: buf.is_empty(),
                }))
            }
            State::Value { remaining } => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                let chunk = buf.split_to(n).freeze();
                let left = remaining.saturating_sub(n as u64);
                self.state = if left == 0 {
                    State::Trailer { matched: 0 }
                } else {
                    State::Value { remaining: left }
                };
                Ok(Some(Decoded::Data(chunk)))
            }
            State::Trailer { matched } => self.decode_trailer(buf, matched),
            State::Done => Ok(None),
            State::Failed => Err(Error::invalid("memcached response decoding already failed")),
        }
    }

    /// Waits for the first line, parses it, and returns the head.
    fn decode_line(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        let window = buf.get(..self.line_cap).unwrap_or(buf.as_ref());
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            if buf.len() >= self.line_cap {
                return Err(Error::invalid(format!(
                    "memcached sent too long response line: \"{}\"",
                    printable(window)
                )));
            }
            return Ok(None);
        };
        let parsed = {
            let raw = window.get(..lf).unwrap_or_default();
            match raw.strip_suffix(b"\r") {
                Some(line) => self.parse_line(line)?,
                None => return Err(invalid_response(raw)),
            }
        };
        buf.advance(lf + 1);

        // Room for what the backend and the output add (Content-Type, Accept-Ranges,
        // Server, Date) without a regrowth.
        let mut headers = HeaderMap::with_capacity(6);
        let status = match parsed {
            FirstLine::Miss => {
                tracing::info!(
                    "key: \"{}\" was not found by memcached",
                    printable(&self.key)
                );
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
                self.state = State::Miss;
                StatusCode::NOT_FOUND
            }
            FirstLine::Hit { flags, len } => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
                if self.gzip_flag != 0 && flags & self.gzip_flag != 0 {
                    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                self.state = if len == 0 {
                    State::Trailer { matched: 0 }
                } else {
                    State::Value { remaining: len }
                };
                StatusCode::OK
            }
        };
        Ok(Some(Decoded::Head(ResponseHead { status, headers })))
    }

    /// Parses the first line, CRLF removed.
    fn parse_line(&self, line: &[u8]) -> Result<FirstLine, Error> {
        if line == END {
            return Ok(FirstLine::Miss);
        }
        let Some(rest) = line.strip_prefix(VALUE) else {
            // ERROR, CLIENT_ERROR …, SERVER_ERROR …, or garbage.
            return Err(invalid_response(line));
        };
        let Some(rest) = rest
            .strip_prefix(&self.key[..])
            .and_then(|r| r.strip_prefix(b" "))
        else {
            return Err(Error::invalid(format!(
                "memcached sent invalid key in response \"{}\" for key \"{}\"",
                printable(line),
                printable(&self.key)
            )));
        };
        let mut fields = rest.split(|&b| b == b' ');
        let Some(flags) = fields
            .next()
            .and_then(parse_decimal)
            .and_then(|f| u32::try_from(f).ok())
        else {
            return Err(self.invalid_field("flags", line));
        };
        let Some(len) = fields
            .next()
            .and_then(parse_decimal)
            .filter(|&n| n <= MAX_VALUE_LEN)
        else {
            return Err(self.invalid_field("length", line));
        };
        // An optional cas unique (`gets`-style), then nothing.
        if let Some(cas) = fields.next() {
            if parse_decimal(cas).is_none() || fields.next().is_some() {
                return Err(invalid_response(line));
            }
        }
        Ok(FirstLine::Hit { flags, len })
    }

    /// Matches what follows the data block against `\r\nEND\r\n`, byte by byte as it
    /// arrives. A wrong trailer is nginx's "memcached sent invalid trailer": logged, and
    /// the response ends there (the value itself arrived whole, so the client gets it),
    /// but the connection is not reused.
    fn decode_trailer(
        &mut self,
        buf: &mut BytesMut,
        matched: usize,
    ) -> Result<Option<Decoded>, Error> {
        let want = TRAILER.get(matched..).unwrap_or_default();
        let n = want.len().min(buf.len());
        if n == 0 {
            return Ok(None);
        }
        let got = buf.get(..n).unwrap_or_default();
        if let Some(bad) = got.iter().zip(want).position(|(g, w)| g != w) {
            // Quote up to the first wrong byte: the same text however the bytes arrived.
            let mut seen = TRAILER.get(..matched).unwrap_or_default().to_vec();
            seen.extend_from_slice(got.get(..=bad).unwrap_or_default());
            tracing::error!(
                "memcached sent invalid trailer \"{}\" for key \"{}\", expected \"\\r\\nEND\\r\\n\"",
                printable(&seen),
                printable(&self.key)
            );
            self.state = State::Done;
            return Ok(Some(Decoded::End { reusable: false }));
        }
        buf.advance(n);
        let matched = matched + n;
        if matched < TRAILER.len() {
            self.state = State::Trailer { matched };
            return Ok(None);
        }
        self.state = State::Done;
        Ok(Some(Decoded::End {
            reusable: buf.is_empty(),
        }))
    }

    /// nginx's "memcached sent invalid flags/length in response" error.
    fn invalid_field(&self, what: &str, line: &[u8]) -> Error {
        Error::invalid(format!(
            "memcached sent invalid {what} in response \"{}\" for key \"{}\"",
            printable(line),
            printable(&self.key)
        ))
    }
}

impl UpstreamCodec for MemcachedCodec {
    /// nginx never sends a body to memcached: nothing to frame.
    fn encode_body(&mut self, _chunk: Bytes, _out: &mut Vec<Bytes>) {}

    /// Nothing ends a body that is never sent.
    fn encode_end(&mut self, _out: &mut Vec<Bytes>) {}

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        let res = self.step(buf);
        if res.is_err() {
            self.state = State::Failed;
        }
        res
    }

    /// Returns what is still decodable in `buf`, then `None` once the response is
    /// complete; a response cut by the close is `ErrorKind::UpstreamClosed`.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if let Some(event) = self.decode(buf)? {
            return Ok(Some(event));
        }
        let while_ = match self.state {
            State::Done => return Ok(None),
            State::Line => "reading response header from upstream".to_owned(),
            State::Value { remaining } => {
                format!("reading upstream ({remaining} bytes of the value missing)")
            }
            State::Trailer { .. } => "reading upstream (\"END\" missing)".to_owned(),
            // `decode` returns an event in `Miss` and an error in `Failed`.
            State::Miss | State::Failed => "reading upstream".to_owned(),
        };
        self.state = State::Failed;
        Err(Error::new(
            ErrorKind::UpstreamClosed,
            format!(
                "upstream prematurely closed connection while {while_}, memcached key \"{}\"",
                printable(&self.key)
            ),
        ))
    }
}

/// nginx's "memcached sent invalid response" error, quoting the line.
fn invalid_response(line: &[u8]) -> Error {
    Error::invalid(format!(
        "memcached sent invalid response: \"{}\"",
        printable(line)
    ))
}

/// An unsigned decimal number: digits only, at least one, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// A peer's bytes made safe for the error log: at most [`LOG_LINE_MAX`] of them,
/// non-printable ones, `"` and `\` escaped, `...` when cut.
fn printable(bytes: &[u8]) -> String {
    let shown = bytes.get(..LOG_LINE_MAX).unwrap_or(bytes);
    let mut out: String = shown
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if shown.len() < bytes.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"/page";

    fn codec() -> MemcachedCodec {
        MemcachedCodec::new(Bytes::from_static(KEY), 0)
    }

    /// What a response decodes to, with adjacent `Data` merged so that results do not
    /// depend on how the bytes were split.
    #[derive(Debug, PartialEq)]
    enum Ev {
        Head(u16, Vec<(String, String)>),
        Data(Vec<u8>),
        End(bool),
        Err(ErrorKind, String),
    }

    fn push(evs: &mut Vec<Ev>, d: Decoded) {
        match d {
            Decoded::Head(h) => {
                let headers = h
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                evs.push(Ev::Head(h.status.as_u16(), headers));
            }
            Decoded::Data(b) => {
                assert!(!b.is_empty(), "empty Data event");
                if let Some(Ev::Data(prev)) = evs.last_mut() {
                    prev.extend_from_slice(&b);
                } else {
                    evs.push(Ev::Data(b.to_vec()));
                }
            }
            Decoded::Stderr(_) => panic!("memcached has no stderr"),
            Decoded::End { reusable } => evs.push(Ev::End(reusable)),
        }
    }

    /// Feeds `chunks` one after another, decoding all it can after each, then EOF.
    fn run_chunks(mut c: MemcachedCodec, chunks: &[&[u8]]) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match c.decode(&mut buf) {
                    Ok(Some(d)) => push(&mut evs, d),
                    Ok(None) => break,
                    Err(e) => {
                        evs.push(Ev::Err(e.kind(), e.message().to_owned()));
                        return evs;
                    }
                }
            }
        }
        loop {
            match c.decode_eof(&mut buf) {
                Ok(Some(d)) => push(&mut evs, d),
                Ok(None) => return evs,
                Err(e) => {
                    evs.push(Ev::Err(e.kind(), e.message().to_owned()));
                    return evs;
                }
            }
        }
    }

    fn run(c: MemcachedCodec, input: &[u8]) -> Vec<Ev> {
        run_chunks(c, &[input])
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> Ev {
        Ev::Head(
            status,
            headers
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn err_kind(evs: &[Ev]) -> Option<ErrorKind> {
        match evs.last() {
            Some(Ev::Err(k, _)) => Some(*k),
            _ => None,
        }
    }

    fn err_msg(evs: &[Ev]) -> &str {
        match evs.last() {
            Some(Ev::Err(_, m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn hit() {
        let evs = run(codec(), b"VALUE /page 0 5\r\nhello\r\nEND\r\n");
        assert_eq!(
            evs,
            vec![
                head(200, &[("content-length", "5")]),
                Ev::Data(b"hello".to_vec()),
                Ev::End(true),
            ]
        );
    }

    #[test]
    fn hit_binary_value_containing_end() {
        let value: &[u8] = b"\x00\r\nEND\r\n\xff\r\nVALUE /page 0 1\r\n";
        let mut input = format!("VALUE /page 7 {}\r\n", value.len()).into_bytes();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\r\nEND\r\n");
        let evs = run(codec(), &input);
        assert_eq!(
            evs,
            vec![
                head(200, &[("content-length", &value.len().to_string())]),
                Ev::Data(value.to_vec()),
                Ev::End(true),
            ]
        );
    }

    #[test]
    fn zero_byte_value() {
        let evs = run(codec(), b"VALUE /page 0 0\r\n\r\nEND\r\n");
        assert_eq!(
            evs,
            vec![head(200, &[("content-length", "0")]), Ev::End(true)]
        );
    }

    #[test]
    fn miss() {
        let evs = run(codec(), b"END\r\n");
        assert_eq!(
            evs,
            vec![head(404, &[("content-length", "0")]), Ev::End(true)]
        );
    }

    #[test]
    fn cas_is_tolerated() {
        let evs = run(codec(), b"VALUE /page 0 2 12345\r\nhi\r\nEND\r\n");
        assert_eq!(
            evs,
            vec![
                head(200, &[("content-length", "2")]),
                Ev::Data(b"hi".to_vec()),
                Ev::End(true),
            ]
        );
    }

    #[test]
    fn gzip_flag() {
        let gz = [("content-length", "2"), ("content-encoding", "gzip")];
        let plain = [("content-length", "2")];
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(u32, &[u8], Headers<'_>)] = &[
            // flag off: flags ignored
            (0, b"VALUE /page 2 2\r\nzz\r\nEND\r\n", &plain),
            (0, b"VALUE /page 4294967295 2\r\nzz\r\nEND\r\n", &plain),
            // flag on, bit set
            (2, b"VALUE /page 2 2\r\nzz\r\nEND\r\n", &gz),
            (2, b"VALUE /page 3 2\r\nzz\r\nEND\r\n", &gz),
            (2, b"VALUE /page 4294967295 2\r\nzz\r\nEND\r\n", &gz),
            // flag on, bit clear
            (2, b"VALUE /page 0 2\r\nzz\r\nEND\r\n", &plain),
            (2, b"VALUE /page 5 2\r\nzz\r\nEND\r\n", &plain),
            (
                0x8000_0000,
                b"VALUE /page 2147483648 2\r\nzz\r\nEND\r\n",
                &gz,
            ),
        ];
        for &(flag, input, headers) in cases {
            let evs = run(MemcachedCodec::new(Bytes::from_static(KEY), flag), input);
            assert_eq!(evs.first(), Some(&head(200, headers)), "flag {flag}");
            assert_eq!(evs.last(), Some(&Ev::End(true)));
        }
    }

    #[test]
    fn error_replies_are_invalid_response() {
        for line in [
            &b"ERROR"[..],
            b"CLIENT_ERROR bad command line format",
            b"SERVER_ERROR out of memory",
            b"STORED",
            b"end",
            b"END ",
            b" END",
            b"",
        ] {
            let mut input = line.to_vec();
            input.extend_from_slice(b"\r\n");
            let evs = run(codec(), &input);
            assert_eq!(evs.len(), 1, "{line:?}: {evs:?}");
            assert_eq!(err_kind(&evs), Some(ErrorKind::InvalidResponse));
            let msg = err_msg(&evs);
            assert!(
                msg.starts_with("memcached sent invalid response: \""),
                "{msg}"
            );
            assert!(msg.contains(&printable(line)), "{msg}");
        }
        let err = Error::invalid("x");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn line_without_cr_is_invalid() {
        for input in [&b"END\n"[..], b"\n", b"VALUE /page 0 1\nx\r\nEND\r\n"] {
            let evs = run(codec(), input);
            assert_eq!(
                err_kind(&evs),
                Some(ErrorKind::InvalidResponse),
                "{input:?}"
            );
            assert!(err_msg(&evs).starts_with("memcached sent invalid response"));
        }
    }

    #[test]
    fn wrong_key() {
        for input in [
            &b"VALUE /other 0 1\r\nx\r\nEND\r\n"[..],
            b"VALUE /pag 0 1\r\nx\r\nEND\r\n",
            b"VALUE /pagex 0 1\r\nx\r\nEND\r\n",
            b"VALUE /PAGE 0 1\r\nx\r\nEND\r\n",
            b"VALUE  /page 0 1\r\nx\r\nEND\r\n",
            b"VALUE /page\r\n",
            b"VALUE \r\n",
        ] {
            let evs = run(codec(), input);
            assert_eq!(evs.len(), 1, "{input:?}: {evs:?}");
            assert_eq!(err_kind(&evs), Some(ErrorKind::InvalidResponse));
            let msg = err_msg(&evs);
            assert!(msg.contains("invalid key"), "{msg}");
            assert!(msg.contains("for key \"/page\""), "{msg}");
        }
    }

    #[test]
    fn bad_flags_length_and_extra_fields() {
        let cases: &[(&[u8], &str)] = &[
            (b"VALUE /page  0 1\r\n", "invalid flags"),
            (b"VALUE /page x 1\r\n", "invalid flags"),
            (b"VALUE /page -1 1\r\n", "invalid flags"),
            (b"VALUE /page 4294967296 1\r\n", "invalid flags"),
            (b"VALUE /page 0\r\n", "invalid length"),
            (b"VALUE /page 0 \r\n", "invalid length"),
            (b"VALUE /page 0 -1\r\n", "invalid length"),
            (b"VALUE /page 0 1x\r\n", "invalid length"),
            (b"VALUE /page 0 +1\r\n", "invalid length"),
            (b"VALUE /page 0 9223372036854775808\r\n", "invalid length"),
            (b"VALUE /page 0 18446744073709551616\r\n", "invalid length"),
            (
                b"VALUE /page 0 99999999999999999999999\r\n",
                "invalid length",
            ),
            (b"VALUE /page 0 1 \r\n", "invalid response"),
            (b"VALUE /page 0 1 x\r\n", "invalid response"),
            (b"VALUE /page 0 1 2 3\r\n", "invalid response"),
            (
                b"VALUE /page 0 1 18446744073709551616\r\n",
                "invalid response",
            ),
        ];
        for &(input, want) in cases {
            let evs = run(codec(), input);
            assert_eq!(evs.len(), 1, "{input:?}: {evs:?}");
            assert_eq!(err_kind(&evs), Some(ErrorKind::InvalidResponse));
            assert!(err_msg(&evs).contains(want), "{input:?}: {}", err_msg(&evs));
        }
        // The largest off_t is accepted (and then cut short by EOF).
        let evs = run(codec(), b"VALUE /page 0 9223372036854775807\r\n");
        assert_eq!(
            evs,
            vec![
                head(200, &[("content-length", "9223372036854775807")]),
                Ev::Err(
                    ErrorKind::UpstreamClosed,
                    "upstream prematurely closed connection while reading upstream \
                     (9223372036854775807 bytes of the value missing), memcached key \"/page\""
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn bad_trailer_ends_the_response_without_reuse() {
        // nginx logs "memcached sent invalid trailer" and ends the response: the value
        // arrived whole, the connection is not kept.
        for (input, value) in [
            (&b"VALUE /page 0 1\r\nxx\r\nEND\r\n"[..], &b"x"[..]),
            (b"VALUE /page 0 1\r\nx\nEND\r\n", b"x"),
            (b"VALUE /page 0 1\r\nx\r\nEnd\r\n", b"x"),
            (b"VALUE /page 0 1\r\nx\r\nEND\n", b"x"),
            (b"VALUE /page 0 1\r\nx\r\nVALUE /page 0 1\r\n", b"x"),
        ] {
            let evs = run(codec(), input);
            assert!(matches!(evs.first(), Some(Ev::Head(200, _))), "{evs:?}");
            assert_eq!(evs.get(1), Some(&Ev::Data(value.to_vec())), "{input:?}");
            assert_eq!(evs.get(2), Some(&Ev::End(false)), "{input:?}");
            assert_eq!(evs.len(), 3, "{evs:?}");
        }
        let evs = run(codec(), b"VALUE /page 0 0\r\nEND\r\n");
        assert!(matches!(evs.first(), Some(Ev::Head(200, _))), "{evs:?}");
        assert_eq!(evs.get(1), Some(&Ev::End(false)));
    }

    #[test]
    fn trailer_ends_as_soon_as_it_diverges() {
        let mut c = codec();
        let mut buf = BytesMut::from(&b"VALUE /page 0 1\r\nx\r"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Decoded::Head(_)))));
        assert!(matches!(c.decode(&mut buf), Ok(Some(Decoded::Data(_)))));
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"X");
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Decoded::End { reusable: false }))
        ));
        // Done: nothing more is decoded.
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn bytes_after_the_response_make_the_connection_unreusable() {
        let evs = run(codec(), b"VALUE /page 0 1\r\nx\r\nEND\r\nVALUE");
        assert_eq!(evs.last(), Some(&Ev::End(false)));
        let evs = run(codec(), b"END\r\nEND\r\n");
        assert_eq!(evs.last(), Some(&Ev::End(false)));
        // and the decoder is done: it consumes nothing more.
        let mut c = codec();
        let mut buf = BytesMut::from(&b"END\r\nmore"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(Some(Decoded::Head(_)))));
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Decoded::End { reusable: false }))
        ));
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
        assert_eq!(&buf[..], b"more");
    }

    #[test]
    fn eof_mid_response_is_upstream_closed() {
        let full: &[u8] = b"VALUE /page 0 5\r\nhello\r\nEND\r\n";
        for cut in 0..full.len() {
            let evs = run(codec(), &full[..cut]);
            assert_eq!(err_kind(&evs), Some(ErrorKind::UpstreamClosed), "cut {cut}");
            let msg = err_msg(&evs);
            assert!(msg.contains("prematurely closed"), "{msg}");
        }
        for cut in 0..5 {
            let evs = run(codec(), &b"END\r\n"[..cut]);
            assert_eq!(err_kind(&evs), Some(ErrorKind::UpstreamClosed), "cut {cut}");
        }
        assert_eq!(
            run(codec(), full).last(),
            Some(&Ev::End(true)),
            "complete response is not an error at EOF"
        );
    }

    #[test]
    fn decode_eof_drains_buffered_events() {
        let mut c = codec();
        let mut buf = BytesMut::from(&b"VALUE /page 0 2\r\nhi\r\nEND\r\n"[..]);
        assert!(matches!(c.decode_eof(&mut buf), Ok(Some(Decoded::Head(_)))));
        assert!(matches!(c.decode_eof(&mut buf), Ok(Some(Decoded::Data(_)))));
        assert!(matches!(
            c.decode_eof(&mut buf),
            Ok(Some(Decoded::End { reusable: true }))
        ));
        assert!(matches!(c.decode_eof(&mut buf), Ok(None)));
    }

    #[test]
    fn data_is_streamed_zero_copy_as_it_arrives() {
        let mut c = codec();
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"VALUE /page 0 10\r\n");
        assert!(matches!(c.decode(&mut buf), Ok(Some(Decoded::Head(_)))));
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"abc");
        let base = buf.as_ptr();
        match c.decode(&mut buf) {
            Ok(Some(Decoded::Data(d))) => {
                assert_eq!(&d[..], b"abc");
                assert_eq!(d.as_ptr(), base, "data must be a slice of the buffer");
            }
            other => panic!("{other:?}"),
        }
        buf.extend_from_slice(b"defghij\r\nEND\r\n");
        match c.decode(&mut buf) {
            Ok(Some(Decoded::Data(d))) => assert_eq!(&d[..], b"defghij"),
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[..], b"\r\nEND\r\n");
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Decoded::End { reusable: true }))
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn first_line_is_capped() {
        let key = vec![b'k'; MAX_KEY_LEN];
        let mut line = b"VALUE ".to_vec();
        line.extend_from_slice(&key);
        line.extend_from_slice(b" 4294967295 9223372036854775807 18446744073709551615\r\n");
        let mut input = line.clone();
        input.extend_from_slice(b"\r\nEND\r\n");
        let c = MemcachedCodec::new(Bytes::from(key.clone()), 1);
        assert!(matches!(
            run(c, &input).last(),
            Some(Ev::Err(ErrorKind::UpstreamClosed, _))
        ));
        // ^ the longest legitimate line parses (the value is then cut by EOF).

        // No LF within the cap: fail without waiting for more.
        let c = MemcachedCodec::new(Bytes::from(key), 0);
        let cap = c.line_cap;
        let mut c2 = MemcachedCodec::new(Bytes::from_static(KEY), 0);
        let mut buf = BytesMut::from(&vec![b'A'; cap - 1][..]);
        assert!(matches!(c2.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(b"A");
        let err = c2.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        assert!(err.message().contains("too long response line"));
        assert!(err.message().len() < 256, "message is truncated");
        assert_eq!(cap, 6 + MAX_KEY_LEN + LINE_OVERHEAD);
    }

    #[test]
    fn error_messages_are_truncated_and_escaped() {
        let mut input = b"SERVER_ERROR ".to_vec();
        input.extend_from_slice(&[b'\x1b'; 200]);
        input.extend_from_slice(b"\"\r\n");
        let evs = run(codec(), &input);
        let msg = err_msg(&evs);
        assert!(!msg.contains('\x1b'));
        assert!(msg.contains("\\x1b"));
        assert!(msg.ends_with("...\""), "{msg}");
    }

    /// Bytes recorded from memcached 1.6 (`set` of a key with raw UTF-8 and DEL, then
    /// `get`/`gets`); the key as `encode_get` sends it.
    #[test]
    fn recorded_memcached_replies() {
        let key = crate::escape_key("/café\x7f".as_bytes()).unwrap();
        assert_eq!(&key[..], b"/caf\xc3\xa9\x7f");
        let mk = || MemcachedCodec::new(key.clone(), 2);
        let want = vec![
            head(
                200,
                &[("content-length", "9"), ("content-encoding", "gzip")],
            ),
            Ev::Data(b"ab\r\nEND\r\n".to_vec()),
            Ev::End(true),
        ];
        let get = b"VALUE /caf\xc3\xa9\x7f 6 9\r\nab\r\nEND\r\n\r\nEND\r\n";
        assert_eq!(run(mk(), get), want);
        let gets = b"VALUE /caf\xc3\xa9\x7f 6 9 1\r\nab\r\nEND\r\n\r\nEND\r\n";
        assert_eq!(run(mk(), gets), want);
        // `get` of a 251-byte key (nginx would send it; we refuse it earlier).
        let evs = run(mk(), b"CLIENT_ERROR bad command line format\r\n");
        assert_eq!(
            err_msg(&evs),
            "memcached sent invalid response: \"CLIENT_ERROR bad command line format\""
        );
    }

    #[test]
    fn no_request_body() {
        let mut c = codec();
        let mut out = Vec::new();
        c.encode_body(Bytes::from_static(b"body"), &mut out);
        c.encode_end(&mut out);
        assert!(out.is_empty());
    }

    /// The inputs for the split tests: valid responses and a few failures.
    fn corpus() -> Vec<(u32, Vec<u8>)> {
        let mut v: Vec<(u32, Vec<u8>)> = vec![
            (0, b"VALUE /page 0 5\r\nhello\r\nEND\r\n".to_vec()),
            (1, b"VALUE /page 1 0\r\n\r\nEND\r\n".to_vec()),
            (0, b"END\r\n".to_vec()),
            (0, b"VALUE /page 0 3 99\r\nabc\r\nEND\r\n".to_vec()),
            (0, b"SERVER_ERROR out of memory\r\n".to_vec()),
            (0, b"VALUE /page 0 2\r\nab\r\nEMD\r\n".to_vec()),
            (0, b"VALUE /other 0 2\r\nab\r\nEND\r\n".to_vec()),
            (0, b"VALUE /page 0 4\r\nab".to_vec()),
        ];
        let value = b"\r\nEND\r\n\x00\xffVALUE /page 0 1\r\n\r\n";
        let mut hit = format!("VALUE /page 6 {}\r\n", value.len()).into_bytes();
        hit.extend_from_slice(value);
        hit.extend_from_slice(b"\r\nEND\r\n");
        v.push((2, hit));
        v
    }

    #[test]
    fn split_at_every_position_gives_identical_events() {
        for (flag, input) in corpus() {
            let mk = || MemcachedCodec::new(Bytes::from_static(KEY), flag);
            let whole = run(mk(), &input);
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                assert_eq!(
                    run_chunks(mk(), &[a, b]),
                    whole,
                    "split at {i} of {input:?}"
                );
                for j in i..=input.len() {
                    let (b1, c1) = b.split_at(j - i);
                    assert_eq!(
                        run_chunks(mk(), &[a, b1, c1]),
                        whole,
                        "split at {i},{j} of {input:?}"
                    );
                }
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(run_chunks(mk(), &bytes), whole, "byte by byte {input:?}");
        }
    }

    /// xorshift64*: deterministic garbage without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn byte(&mut self) -> u8 {
            (self.next() >> 56) as u8
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet: &[u8] = b"VALUEND /pag0123456789\r\n \x00\xff";
        let templates = corpus();
        for round in 0..20_000 {
            let len = (rng.next() % 96) as usize;
            let input: Vec<u8> = match round % 3 {
                // random bytes
                0 => (0..len).map(|_| rng.byte()).collect(),
                // random protocol-ish tokens
                1 => (0..len)
                    .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                    .collect(),
                // a valid response with a few bytes flipped
                _ => {
                    let (_, t) = &templates[(rng.next() % templates.len() as u64) as usize];
                    let mut t = t.clone();
                    for _ in 0..=(rng.next() % 3) {
                        if !t.is_empty() {
                            let at = (rng.next() % t.len() as u64) as usize;
                            t[at] = alphabet[(rng.next() % alphabet.len() as u64) as usize];
                        }
                    }
                    t
                }
            };
            let split = if input.is_empty() {
                0
            } else {
                (rng.next() % input.len() as u64) as usize
            };
            let (a, b) = input.split_at(split);
            let flag = (rng.next() % 4) as u32;
            let mk = || MemcachedCodec::new(Bytes::from_static(KEY), flag);
            let evs = run_chunks(mk(), &[a, b]);
            assert_eq!(evs, run(mk(), &input), "{input:?}");
            // Every run ends in End or an error; Head comes first if anything does.
            assert!(
                matches!(evs.last(), Some(Ev::End(_) | Ev::Err(..))),
                "{evs:?}"
            );
            if evs.len() > 1 {
                assert!(matches!(evs.first(), Some(Ev::Head(..))), "{evs:?}");
            }
        }
    }
}
