//! Byte ranges of a response whose length is known (RFC 9110 §14), as nginx's range
//! filter (`ngx_http_range_parse`) reads them: `Range: bytes=…` (the unit in any case,
//! spaces allowed around numbers and commas), `a-b`, `a-`, `-n`; a range past the end is
//! cut to it. Upstream responses get at most one range (nginx's `single_range`): several
//! ranges, or ranges covering more than the whole, are answered with the whole response.
//!
//! [`single`] decides; [`slice`] cuts a streamed body to the chosen range.

use crate::body::Body;
use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What to answer to a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// The whole response (no usable `Range`, several ranges, …): 200 with
    /// `Accept-Ranges: bytes`.
    Full,
    /// Bytes `start..end` (end exclusive): 206 with
    /// `Content-Range: bytes start-(end-1)/len`.
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    NotSatisfiable,
}

/// The answer to `range` (the `Range` header's value, if any) for a response of `len`
/// bytes, allowing one range.
pub fn single(range: Option<&[u8]>, len: u64) -> Ranged {
    let Some(v) = range else {
        return Ranged::Full;
    };
    if v.len() < 7
        || !v
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"bytes="))
    {
        return Ranged::Full;
    }
    parse(v.get(6..).unwrap_or_default(), len, 1)
}

/// `ngx_http_range_parse` with at most `max` ranges; `Part` only for exactly one.
fn parse(spec: &[u8], len: u64, max: usize) -> Ranged {
    let mut p = spec.iter().copied().peekable();
    let mut found: Vec<(u64, u64)> = Vec::new();
    let mut size: u64 = 0;
    let mut left = max;
    let skip_spaces = |p: &mut std::iter::Peekable<std::iter::Copied<std::slice::Iter<'_, u8>>>| {
        while p.peek() == Some(&b' ') {
            p.next();
        }
    };
    let number =
        |p: &mut std::iter::Peekable<std::iter::Copied<std::slice::Iter<'_, u8>>>| -> Option<u64> {
            let mut n: u64 = 0;
            let mut any = false;
            while let Some(d) = p.peek().copied().filter(u8::is_ascii_digit) {
                p.next();
                any = true;
                n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                if n > i64::MAX as u64 {
                    return None;
                }
            }
            any.then_some(n)
        };
    loop {
        skip_spaces(&mut p);
        let (start, end);
        if p.peek() != Some(&b'-') {
            let Some(s) = number(&mut p) else {
                return Ranged::NotSatisfiable;
            };
            skip_spaces(&mut p);
            if p.next() != Some(b'-') {
                return Ranged::NotSatisfiable;
            }
            skip_spaces(&mut p);
            if matches!(p.peek(), None | Some(b',')) {
                start = s;
                end = len;
            } else {
                let Some(e) = number(&mut p) else {
                    return Ranged::NotSatisfiable;
                };
                skip_spaces(&mut p);
                if !matches!(p.peek(), None | Some(b',')) {
                    return Ranged::NotSatisfiable;
                }
                start = s;
                end = if e >= len { len } else { e + 1 };
            }
        } else {
            p.next();
            let Some(n) = number(&mut p) else {
                return Ranged::NotSatisfiable;
            };
            skip_spaces(&mut p);
            if !matches!(p.peek(), None | Some(b',')) {
                return Ranged::NotSatisfiable;
            }
            start = len.saturating_sub(n);
            end = len;
        }
        if start < end {
            found.push((start, end));
            size = size.saturating_add(end - start);
            if left == 0 {
                return Ranged::Full;
            }
            left -= 1;
        } else if start == 0 {
            return Ranged::Full;
        }
        if p.next() != Some(b',') {
            break;
        }
    }
    match found.as_slice() {
        [] => Ranged::NotSatisfiable,
        _ if size > len => Ranged::Full,
        [(start, end)] => Ranged::Part {
            start: *start,
            end: *end,
        },
        _ => Ranged::Full,
    }
}

/// `body` cut to bytes `start..end` as it streams (what comes after is not read).
pub fn slice(body: Body, start: u64, end: u64) -> Body {
    Slice {
        inner: body,
        skip: start,
        left: end.saturating_sub(start),
    }
    .boxed_unsync()
}

struct Slice {
    inner: Body,
    skip: u64,
    left: u64,
}

impl http_body::Body for Slice {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "response body shorter than its length",
                    ))))
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(f))) => f,
            };
            let Ok(mut data) = frame.into_data() else {
                continue; // trailers: none in a ranged answer
            };
            let n = data.len() as u64;
            if self.skip >= n {
                self.skip -= n;
                continue;
            }
            data.advance(self.skip as usize);
            self.skip = 0;
            if data.len() as u64 > self.left {
                data.truncate(self.left as usize);
            }
            self.left -= data.len() as u64;
            if data.is_empty() {
                continue;
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(h: &str, len: u64) -> Ranged {
        single(Some(h.as_bytes()), len)
    }

    fn part(start: u64, end: u64) -> Ranged {
        Ranged::Part { start, end }
    }

    #[test]
    fn nginx_table() {
        // Checked against nginx 1.22's memcached responses (6-byte value).
        assert_eq!(single(None, 6), Ranged::Full);
        assert_eq!(r("bytes=1-2,4-5", 6), Ranged::Full);
        assert_eq!(r("bytes=1-2,1-2", 6), Ranged::Full);
        assert_eq!(r("bytes=10-20", 6), Ranged::NotSatisfiable);
        assert_eq!(r("bytes=-2", 6), part(4, 6));
        assert_eq!(r("bytes=3-", 6), part(3, 6));
        assert_eq!(r("bytes=0-0", 6), part(0, 1));
        assert_eq!(r("bytes=5-1", 6), Ranged::NotSatisfiable);
        assert_eq!(r("bytes=x", 6), Ranged::NotSatisfiable);
        assert_eq!(r("BYTES=1-2", 6), part(1, 3));
        assert_eq!(r("bytes=0-100", 6), part(0, 6));
        assert_eq!(r("bytes= 1 - 2 ", 6), part(1, 3));
        assert_eq!(r("bytes=-0", 6), Ranged::NotSatisfiable);
        assert_eq!(r("bytes=-10", 6), part(0, 6));
        assert_eq!(r("bytes=0-", 0), Ranged::Full);
        assert_eq!(r("bytes=1-", 0), Ranged::NotSatisfiable);
        assert_eq!(r("items=1-2", 6), Ranged::Full);
        assert_eq!(r("bytes=", 6), Ranged::Full);
        assert_eq!(r("bytes=99999999999999999999-", 6), Ranged::NotSatisfiable);
    }

    #[tokio::test]
    async fn slices_across_chunks() {
        use futures_util::stream;
        use http_body_util::StreamBody;
        let mk = || {
            let frames = ["ab", "cdef", "g", "hij"]
                .map(|c| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(c.as_bytes()))));
            StreamBody::new(stream::iter(frames)).boxed_unsync()
        };
        for (s, e, want) in [
            (0, 10, "abcdefghij"),
            (1, 3, "bc"),
            (2, 7, "cdefg"),
            (9, 10, "j"),
            (6, 7, "g"),
        ] {
            let got = slice(mk(), s, e).collect().await.unwrap().to_bytes();
            assert_eq!(&got[..], want.as_bytes(), "{s}..{e}");
        }
        // A body shorter than promised is an error, not a short answer.
        assert!(slice(mk(), 8, 12).collect().await.is_err());
    }
}
