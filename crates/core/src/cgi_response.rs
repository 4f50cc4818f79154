//! Decoding a response whose body runs until the upstream closes (uwsgi, SCGI).
//!
//! Neither protocol frames its response: after the head (see [`crate::cgi_head`]) every byte
//! is body, and the upstream closing its side is the only end-of-response signal. So the
//! connection is never reusable, and an EOF before the head is complete is an upstream
//! error (`upstream prematurely closed connection`).

use crate::cgi_head::parse_head;
use crate::codec::{Decoded, UpstreamCodec};
use crate::error::{Error, ErrorKind};
use bytes::{Bytes, BytesMut};

/// Where the decoder is in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the complete response head.
    Head,
    /// Head sent; every byte is body.
    Body,
    /// `End` sent; nothing more.
    Done,
}

/// Decoding state shared by the uwsgi and SCGI codecs: `Head` once, then `Data` for
/// every byte, then `End { reusable: false }` on EOF.
///
/// It is also a complete [`UpstreamCodec`] for a protocol whose request body goes to the
/// upstream unframed (both uwsgi and SCGI send `CONTENT_LENGTH` in the request head and
/// then the raw body), so each protocol's codec is a thin named wrapper around it.
#[derive(Debug)]
pub struct ResponseBodyUntilClose {
    head_limit: usize,
    state: State,
}

impl ResponseBodyUntilClose {
    /// A decoder whose head must fit in `head_limit` bytes (`*_buffer_size`).
    pub fn new(head_limit: usize) -> Self {
        ResponseBodyUntilClose {
            head_limit,
            state: State::Head,
        }
    }
}

impl UpstreamCodec for ResponseBodyUntilClose {
    /// The body goes unframed: the chunk itself (no copy). Empty chunks are dropped.
    fn encode_body(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if !chunk.is_empty() {
            out.push(chunk);
        }
    }

    /// The end of the body is implied by `CONTENT_LENGTH`: nothing to send.
    fn encode_end(&mut self, _out: &mut Vec<Bytes>) {}

    /// Decodes the next event from `buf`; `Ok(None)` when more bytes are needed.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        match self.state {
            State::Head => {
                let head = parse_head(buf, self.head_limit)?;
                Ok(head.map(|head| {
                    self.state = State::Body;
                    Decoded::Head(head)
                }))
            }
            State::Body if !buf.is_empty() => Ok(Some(Decoded::Data(buf.split().freeze()))),
            State::Body | State::Done => Ok(None),
        }
    }

    /// Decodes after the upstream closed: a head still buffered, then any buffered body
    /// as `Data`, then `End { reusable: false }`, then `None`. EOF before a complete head
    /// is `ErrorKind::UpstreamClosed`.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        match self.state {
            State::Head => match self.decode(buf)? {
                Some(event) => Ok(Some(event)),
                None => Err(Error::new(
                    ErrorKind::UpstreamClosed,
                    "upstream prematurely closed connection",
                )),
            },
            State::Body => match self.decode(buf)? {
                Some(event) => Ok(Some(event)),
                None => {
                    self.state = State::Done;
                    Ok(Some(Decoded::End { reusable: false }))
                }
            },
            State::Done => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::codec_testing::{drive, every_split, Event};

    fn run(limit: usize, chunks: &[&[u8]]) -> Result<Vec<Event>, Error> {
        drive(ResponseBodyUntilClose::new(limit), chunks)
    }

    fn splits(limit: usize, input: &[u8]) {
        let _ = every_split(|| ResponseBodyUntilClose::new(limit), input);
    }

    #[test]
    fn status_line_response() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, world";
        assert_eq!(
            run(4096, &[input]).unwrap(),
            [
                Event::Head(200, vec![("content-type".into(), b"text/plain".to_vec())]),
                Event::Data(b"hello, world".to_vec()),
                Event::End(false),
            ]
        );
        splits(4096, input);
    }

    #[test]
    fn cgi_status_response() {
        let input = b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nmissing";
        assert_eq!(
            run(4096, &[input]).unwrap(),
            [
                Event::Head(
                    404,
                    vec![
                        ("set-cookie".into(), b"a=1".to_vec()),
                        ("set-cookie".into(), b"b=2".to_vec()),
                    ]
                ),
                Event::Data(b"missing".to_vec()),
                Event::End(false),
            ]
        );
        splits(4096, input);
    }

    #[test]
    fn empty_body() {
        let input = b"Status: 204\r\n\r\n";
        assert_eq!(
            run(4096, &[input]).unwrap(),
            [Event::Head(204, vec![]), Event::End(false)]
        );
        splits(4096, input);
    }

    #[test]
    fn body_that_looks_like_a_head_is_data() {
        let input = b"\r\nHTTP/1.1 500 Nope\r\n\r\n";
        assert_eq!(
            run(4096, &[input]).unwrap(),
            [
                Event::Head(200, vec![]),
                Event::Data(b"HTTP/1.1 500 Nope\r\n\r\n".to_vec()),
                Event::End(false),
            ]
        );
        splits(4096, input);
    }

    #[test]
    fn eof_before_head_is_premature_close() {
        for input in [&b""[..], b"HTTP/1.1 200 OK\r\n", b"Status: 200\r\n", b"HT"] {
            let err = run(4096, &[input]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UpstreamClosed, "{input:?}");
            assert_eq!(err.message(), "upstream prematurely closed connection");
            splits(4096, input);
        }
    }

    #[test]
    fn garbage_and_too_big_heads_are_errors() {
        let err = run(4096, &[b"\x00\x01garbage\r\n\r\n"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        splits(4096, b"\x00\x01garbage\r\n\r\n");
        let input = b"Status: 200\r\nX-Big: 0123456789abcdef\r\n\r\nbody";
        let err = run(16, &[input]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
        splits(16, input);
    }

    #[test]
    fn head_completed_only_at_eof() {
        // A driver that calls decode_eof with the whole response still buffered.
        let mut decoder = ResponseBodyUntilClose::new(4096);
        let mut buf = BytesMut::from(&b"Status: 201\r\n\r\nabc"[..]);
        assert!(matches!(
            decoder.decode_eof(&mut buf).unwrap(),
            Some(Decoded::Head(h)) if h.status == 201
        ));
        assert!(matches!(
            decoder.decode_eof(&mut buf).unwrap(),
            Some(Decoded::Data(d)) if &d[..] == b"abc"
        ));
        assert!(matches!(
            decoder.decode_eof(&mut buf).unwrap(),
            Some(Decoded::End { reusable: false })
        ));
        assert!(decoder.decode_eof(&mut buf).unwrap().is_none());
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn data_is_zero_copy_of_the_buffer() {
        let mut decoder = ResponseBodyUntilClose::new(4096);
        let mut buf = BytesMut::from(&b"\r\nbody"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Ok(Some(Decoded::Head(_)))
        ));
        let ptr = buf.as_ptr();
        match decoder.decode(&mut buf).unwrap() {
            Some(Decoded::Data(d)) => assert_eq!(d.as_ptr(), ptr),
            other => panic!("{other:?}"),
        }
        assert!(buf.is_empty());
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }
}
