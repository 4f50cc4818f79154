//! The CGI response header a FastCGI responder writes at the start of STDOUT
//! (RFC 3875 §6.2 and §6.3): collected across STDOUT records up to its blank line, then
//! parsed by core's one CGI head parser ([`parse_cgi_block`]: `Status:` for the status,
//! `Location:` alone meaning a redirect).

use bytes::BytesMut;
use junction_core::cgi_head::parse_cgi_block;
use junction_core::codec::ResponseHead;
use junction_core::error::{Error, ErrorKind};

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
                // The head's values are slices of its block, not copies; a head that
                // came in one record is not copied at all.
                let block = if self.buf.is_empty() {
                    part.freeze()
                } else {
                    self.buf.extend_from_slice(&part);
                    std::mem::take(&mut self.buf).freeze()
                };
                let head = parse_cgi_block(&block)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

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
