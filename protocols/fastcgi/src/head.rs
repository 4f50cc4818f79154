//! The CGI response header a FastCGI responder writes at the start of STDOUT
//! (RFC 3875 §6.2 and §6.3): header lines up to a blank line, `Status:` for the status,
//! `Location:` alone meaning a redirect.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use junction_core::codec::ResponseHead;
use junction_core::error::{Error, ErrorKind};

/// Header slots tried first; a header with more lines is parsed again with enough slots.
const SMALL_HEADER_COUNT: usize = 64;

/// The shortest header line is `a:\n`: a bound on the number of lines in `len` bytes.
const MIN_HEADER_LINE_LEN: usize = 3;

/// Where the blank line that ends the header search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Inside a line.
    InLine,
    /// Just after `\n` (or at the very start: an empty header is just a blank line).
    LineStart,
    /// After `\n\r`.
    LineStartCr,
}

/// Collects STDOUT bytes until the CGI header is complete, up to a cap.
#[derive(Debug)]
pub(crate) struct HeadCollector {
    buf: BytesMut,
    scan: Scan,
    limit: usize,
}

impl HeadCollector {
    /// A collector that fails once `limit` bytes did not hold a whole header.
    pub(crate) fn new(limit: usize) -> Self {
        HeadCollector {
            buf: BytesMut::new(),
            scan: Scan::LineStart,
            limit,
        }
    }

    /// Takes up to `avail` STDOUT bytes from the front of `src` (which holds at least
    /// that many). Returns how many bytes were taken and, once the blank line has been
    /// taken, the parsed head; the bytes after the blank line stay in `src`.
    pub(crate) fn feed(
        &mut self,
        src: &mut BytesMut,
        avail: usize,
    ) -> Result<(usize, Option<ResponseHead>), Error> {
        let room = self.limit.saturating_sub(self.buf.len());
        let window = avail.min(room).min(src.len());
        let end = src.get(..window).and_then(|bytes| self.scan_for_end(bytes));
        match end {
            Some(end) => {
                let part = src.split_to(end);
                self.buf.extend_from_slice(&part);
                let head = parse_head(&self.buf)?;
                self.buf = BytesMut::new();
                Ok((end, Some(head)))
            }
            None => {
                let part = src.split_to(window);
                self.buf.extend_from_slice(&part);
                if self.buf.len() >= self.limit {
                    return Err(Error::new(
                        ErrorKind::TooBigHeader,
                        "upstream sent too big header",
                    ));
                }
                Ok((window, None))
            }
        }
    }

    /// Advances the blank-line search over `bytes`; `Some(n)`: the header ends after
    /// the first `n` bytes.
    fn scan_for_end(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            self.scan = match (self.scan, b) {
                (Scan::LineStart | Scan::LineStartCr, b'\n') => return Some(i + 1),
                (_, b'\n') => Scan::LineStart,
                (Scan::LineStart, b'\r') => Scan::LineStartCr,
                _ => Scan::InLine,
            };
        }
        None
    }
}

/// Parses a complete CGI header block (ending with its blank line).
pub(crate) fn parse_head(block: &[u8]) -> Result<ResponseHead, Error> {
    let mut small = [httparse::EMPTY_HEADER; SMALL_HEADER_COUNT];
    let mut large: Vec<httparse::Header<'_>>;
    let parsed = match httparse::parse_headers(block, &mut small) {
        Err(httparse::Error::TooManyHeaders) => {
            large = vec![httparse::EMPTY_HEADER; block.len() / MIN_HEADER_LINE_LEN + 1];
            httparse::parse_headers(block, &mut large)
        }
        other => other,
    };
    let lines = match parsed {
        Ok(httparse::Status::Complete((len, lines))) if len == block.len() => lines,
        Ok(_) => return Err(Error::invalid("upstream sent invalid header")),
        Err(e) => return Err(Error::invalid(format!("upstream sent invalid header: {e}"))),
    };

    let mut status = None;
    let mut headers = HeaderMap::with_capacity(lines.len());
    for line in lines {
        if line.name.eq_ignore_ascii_case("status") {
            if status.is_none() {
                status = Some(parse_status(line.value)?);
            } else {
                // nginx keeps the first one: "upstream sent duplicate header line … ignoring".
                tracing::warn!(
                    value = %String::from_utf8_lossy(line.value),
                    "upstream sent duplicate Status header line, ignoring"
                );
            }
            continue;
        }
        let name = HeaderName::from_bytes(line.name.as_bytes()).map_err(|_| {
            Error::invalid(format!(
                "upstream sent invalid header name \"{}\"",
                line.name
            ))
        })?;
        let value = HeaderValue::from_bytes(line.value).map_err(|_| {
            Error::invalid(format!(
                "upstream sent invalid value in header \"{}\"",
                line.name
            ))
        })?;
        headers.append(name, value);
    }

    // RFC 3875 §6.2.3 / nginx: a Location without a Status is a 302.
    let status = match status {
        Some(status) => status,
        None if headers.contains_key(LOCATION) => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    Ok(ResponseHead { status, headers })
}

/// `Status: 404 Not Found` (or `Status: 404`): three digits, then nothing or a reason
/// phrase. The reason phrase is not kept.
fn parse_status(value: &[u8]) -> Result<StatusCode, Error> {
    let invalid = || {
        Error::invalid(format!(
            "upstream sent invalid status \"{}\"",
            String::from_utf8_lossy(value)
        ))
    };
    let (code, rest) = match value {
        [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => (
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'),
            rest,
        ),
        _ => return Err(invalid()),
    };
    if !matches!(rest.first(), None | Some(b' ' | b'\t')) {
        return Err(invalid());
    }
    StatusCode::from_u16(code).map_err(|_| invalid())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn values<'a>(head: &'a ResponseHead, name: &str) -> Vec<&'a [u8]> {
        head.headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    #[test]
    fn status_line_forms() {
        assert_eq!(
            parse_status(b"404 Not Found").unwrap(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(parse_status(b"201").unwrap(), StatusCode::CREATED);
        assert_eq!(parse_status(b"599 Odd").unwrap().as_u16(), 599);
        assert!(parse_status(b"20").is_err());
        assert!(parse_status(b"2000").is_err());
        assert!(parse_status(b"abc").is_err());
        assert!(parse_status(b"099").is_err());
        assert!(parse_status(b"").is_err());
    }

    #[test]
    fn status_sets_status_and_is_not_passed_on() {
        let head = parse_head(b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\n").unwrap();
        assert_eq!(head.status, StatusCode::NOT_FOUND);
        assert!(head.headers.get("status").is_none());
        assert_eq!(values(&head, "content-type"), vec![&b"text/html"[..]]);
    }

    #[test]
    fn first_status_wins() {
        let head = parse_head(b"Status: 403\r\nStatus: 500\r\n\r\n").unwrap();
        assert_eq!(head.status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn location_without_status_is_302() {
        let head = parse_head(b"Location: http://example.com/\r\n\r\n").unwrap();
        assert_eq!(head.status, StatusCode::FOUND);
        assert_eq!(values(&head, "location"), vec![&b"http://example.com/"[..]]);

        let head = parse_head(b"Status: 301\r\nLocation: /x\r\n\r\n").unwrap();
        assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn default_status_is_200_and_empty_header_is_valid() {
        assert_eq!(parse_head(b"X-A: b\n\n").unwrap().status, StatusCode::OK);
        let head = parse_head(b"\r\n").unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.is_empty());
    }

    #[test]
    fn duplicates_kept_in_order() {
        let head =
            parse_head(b"Set-Cookie: a=1\r\nX-Powered-By: PHP\r\nSet-Cookie: b=2\r\n\r\n").unwrap();
        assert_eq!(values(&head, "set-cookie"), vec![&b"a=1"[..], &b"b=2"[..]]);
    }

    #[test]
    fn many_headers() {
        let mut block = Vec::new();
        for i in 0..1000 {
            block.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        block.extend_from_slice(b"\r\n");
        let head = parse_head(&block).unwrap();
        assert_eq!(head.headers.len(), 1000);
    }

    #[test]
    fn invalid_header_is_invalid_response() {
        for block in [
            &b"No colon here\r\n\r\n"[..],
            b"Bad Name: x\r\n\r\n",
            b"Status: nope\r\n\r\n",
            b"X: a\x01b\r\n\r\n",
        ] {
            let err = parse_head(block).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{block:?}");
        }
    }

    #[test]
    fn collector_finds_blank_line_across_feeds() {
        let text = b"A: 1\r\nB: 2\r\n\r\nbody";
        for split in 0..text.len() {
            let mut c = HeadCollector::new(1024);
            let mut src = BytesMut::from(&text[..split]);
            let (n1, h1) = c.feed(&mut src, split).unwrap();
            let (head, taken) = match h1 {
                Some(h) => {
                    src.extend_from_slice(&text[split..]);
                    (h, n1)
                }
                None => {
                    assert!(src.is_empty());
                    src.extend_from_slice(&text[split..]);
                    let avail = src.len();
                    let (n2, h2) = c.feed(&mut src, avail).unwrap();
                    (h2.unwrap(), n1 + n2)
                }
            };
            assert_eq!(taken, text.len() - 4, "split {split}");
            assert_eq!(&src[..], b"body");
            assert_eq!(head.headers.len(), 2);
        }
    }

    #[test]
    fn collector_caps_header() {
        // A header of exactly the limit is fine; one byte more is too big.
        let text = b"A: 1\r\n\r\n";
        let mut c = HeadCollector::new(text.len());
        let mut src = BytesMut::from(&text[..]);
        assert!(c.feed(&mut src, text.len()).unwrap().1.is_some());

        let mut c = HeadCollector::new(text.len() - 1);
        let mut src = BytesMut::from(&text[..]);
        let err = c.feed(&mut src, text.len()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
        assert_eq!(err.message(), "upstream sent too big header");
    }
}
