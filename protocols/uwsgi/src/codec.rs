//! The uwsgi wire format: the request packet, and the per-request codec.
//!
//! A request is one packet — a 4-byte header (`modifier1`, `datasize` as u16
//! little-endian, `modifier2`) followed by `datasize` bytes of vars, each var a
//! u16-LE-length key then a u16-LE-length value — and then the raw request body
//! (`CONTENT_LENGTH` bytes). The response is an HTTP status line or CGI head and a body
//! that runs until the upstream closes.

use bytes::{BufMut, Bytes, BytesMut};
use junction_core::cgi::{Framing, Params};
use junction_core::cgi_response::ResponseBodyUntilClose;

use junction_core::{Error, ErrorKind};

/// Length of the packet header: modifier1, u16 datasize, modifier2.
pub const HEADER_LEN: usize = 4;
/// Length of each key/value length prefix.
const VAR_LEN_SIZE: usize = 2;
/// The largest `datasize` (and so the largest key or value) a packet can carry.
pub const MAX_VARS_SIZE: usize = u16::MAX as usize;

/// The params framed for [`encode_request_head`]: the packet header's 4 bytes first,
/// and each key and value after room for its u16-LE length.
#[derive(Debug)]
pub struct Vars;

impl Framing for Vars {
    const NAME: &'static str = "uwsgi";
    const HEAD: usize = HEADER_LEN;
    const BEFORE_NAME: usize = VAR_LEN_SIZE;
    const BETWEEN: usize = VAR_LEN_SIZE;
    const AFTER: usize = 0;

    /// Writes the two lengths of the var at `start` into their room. A key or value over
    /// 65535 bytes makes the packet too large, which `encode_request_head` refuses.
    fn frame(buf: &mut BytesMut, start: usize, name: usize, value: usize) -> bool {
        let len = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes();
        let value_at = start + VAR_LEN_SIZE + name;
        for (at, n) in [(start, name), (value_at, value)] {
            if let Some(room) = buf.get_mut(at..at + VAR_LEN_SIZE) {
                room.copy_from_slice(&len(n));
            }
        }
        true
    }
}

/// Encodes the uwsgi request packet: the 4-byte header and `params` as vars, in order.
/// Params built with [`Vars`] are the packet already: only the header is written.
///
/// The vars must fit the u16 `datasize`: when they total more than 65535 bytes
/// (nginx: "uwsgi request is too big") the result is an `ErrorKind::Encode` error, never a
/// truncated packet.
pub fn encode_request_head(modifier1: u8, modifier2: u8, params: Params) -> Result<Bytes, Error> {
    let too_large = |datasize: usize| {
        Error::new(
            ErrorKind::Encode,
            format!("uwsgi request vars too large ({datasize} bytes)"),
        )
    };
    let header = |size: u16| {
        let [lo, hi] = size.to_le_bytes();
        [modifier1, lo, hi, modifier2]
    };
    let params = match params.into_framed::<Vars>() {
        Ok(mut packet) => {
            let datasize = packet.len().saturating_sub(HEADER_LEN);
            let size = u16::try_from(datasize).map_err(|_| too_large(datasize))?;
            if let Some(room) = packet.get_mut(..HEADER_LEN) {
                room.copy_from_slice(&header(size));
            }
            return Ok(packet.freeze());
        }
        Err(params) => params,
    };
    let datasize = params.iter().fold(0usize, |size, (key, value)| {
        size.saturating_add(2 * VAR_LEN_SIZE)
            .saturating_add(key.len())
            .saturating_add(value.len())
    });
    let size = u16::try_from(datasize).map_err(|_| too_large(datasize))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + datasize);
    out.put_slice(&header(size));
    for (key, value) in params.iter() {
        // Both fit: each is part of a datasize that fits in a u16.
        for part in [key, value] {
            let len = u16::try_from(part.len()).map_err(|_| too_large(datasize))?;
            out.put_u16_le(len);
            out.put_slice(part);
        }
    }
    Ok(out.freeze())
}

/// The codec of one uwsgi exchange: the request body goes as-is, nothing marks its end;
/// the response is a head (HTTP status line or CGI `Status:`), then the body until the
/// upstream closes (never reusable). `UwsgiCodec::new(head_limit)`: the head must fit in
/// `head_limit` bytes (`uwsgi_buffer_size`).
pub type UwsgiCodec = ResponseBodyUntilClose;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use junction_core::codec::{Decoded, UpstreamCodec};
    use junction_core::codec_testing::{drive, every_split, Event};

    /// Params as `ParamSet::build` makes them for uwsgi.
    fn params(pairs: &[(&[u8], &[u8])]) -> Params {
        Params::framed_from_pairs::<Vars>(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn framed_and_plain_params_give_the_same_packet() {
        let long = vec![b'v'; 300];
        let pairs: [(&[u8], &[u8]); 4] = [
            (b"REQUEST_METHOD", b"GET"),
            (b"EMPTY", b""),
            (b"HTTP_COOKIE", &long),
            (b"", b"x"),
        ];
        let plain = Params::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        let framed = params(&pairs);
        assert_eq!(
            framed.iter().collect::<Vec<_>>(),
            plain.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            encode_request_head(3, 4, framed).unwrap(),
            encode_request_head(3, 4, plain).unwrap()
        );
    }

    #[test]
    fn request_packet_bytes() {
        let packet = encode_request_head(
            0,
            0,
            params(&[(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")]),
        )
        .unwrap();
        // datasize = (2+14+2+3) + (2+9+2+1) = 21 + 14 = 35 = 0x0023.
        assert_eq!(
            &packet[..],
            b"\x00\x23\x00\x00\
              \x0e\x00REQUEST_METHOD\x03\x00GET\
              \x09\x00PATH_INFO\x01\x00/"
        );
    }

    #[test]
    fn modifiers_and_little_endian_lengths() {
        let value = vec![b'v'; 300]; // 0x012c
        let packet = encode_request_head(5, 9, params(&[(b"K", &value), (b"E", b"")])).unwrap();
        // datasize = (2+1+2+300) + (2+1+2+0) = 305 + 5 = 310 = 0x0136.
        assert_eq!(&packet[..HEADER_LEN], b"\x05\x36\x01\x09");
        assert_eq!(&packet[4..7], b"\x01\x00K");
        assert_eq!(&packet[7..9], b"\x2c\x01");
        assert_eq!(&packet[9..309], &value[..]);
        assert_eq!(&packet[309..], b"\x01\x00E\x00\x00");
        assert_eq!(packet.len(), HEADER_LEN + 310);
    }

    #[test]
    fn empty_vars() {
        let packet = encode_request_head(0xff, 0x01, Params::default()).unwrap();
        assert_eq!(&packet[..], b"\xff\x00\x00\x01");
    }

    #[test]
    fn largest_packet_fits() {
        // One var of exactly MAX_VARS_SIZE: 2 + 1 + 2 + value.
        let value = vec![b'x'; MAX_VARS_SIZE - 5];
        let packet = encode_request_head(0, 0, params(&[(b"X", &value)])).unwrap();
        assert_eq!(&packet[..HEADER_LEN], b"\x00\xff\xff\x00");
        assert_eq!(packet.len(), HEADER_LEN + MAX_VARS_SIZE);
        assert_eq!(&packet[HEADER_LEN + 3..HEADER_LEN + 5], b"\xfa\xff");
    }

    #[test]
    fn vars_over_65535_are_an_encode_error() {
        // Total one byte over.
        let value = vec![b'x'; MAX_VARS_SIZE - 4];
        let err = encode_request_head(0, 0, params(&[(b"X", &value)])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        assert_eq!(err.message(), "uwsgi request vars too large (65536 bytes)");
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
        // A single value over the u16 range.
        let value = vec![b'x'; 70_000];
        let err = encode_request_head(0, 0, params(&[(b"X", &value)])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        // A single key over the u16 range.
        let key = vec![b'K'; 65_536];
        let err = encode_request_head(0, 0, params(&[(&key, b"v")])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        // Many small vars adding up.
        let many: Vec<(Bytes, Bytes)> = (0..10_000)
            .map(|i| (Bytes::from(format!("K{i}")), Bytes::from_static(b"value")))
            .collect();
        let many = Params::framed_from_pairs::<Vars>(many.iter().map(|(k, v)| (&k[..], &v[..])));
        let err = encode_request_head(0, 0, many).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
    }

    #[test]
    fn body_passes_as_is_and_end_is_nothing() {
        let mut codec = UwsgiCodec::new(4096);
        let chunk = Bytes::from_static(b"name=value&x=1");
        let mut out = Vec::new();
        codec.encode_body(chunk.clone(), &mut out);
        codec.encode_body(Bytes::new(), &mut out);
        assert_eq!(out, std::slice::from_ref(&chunk));
        assert_eq!(out[0].as_ptr(), chunk.as_ptr());
        codec.encode_end(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn decodes_status_line_response_at_every_split() {
        let input = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\n\
                      Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nmoved";
        let events = every_split(|| UwsgiCodec::new(4096), input).unwrap();
        assert_eq!(
            events,
            [
                Event::Head(
                    301,
                    vec![
                        ("location".into(), b"/new".to_vec()),
                        ("set-cookie".into(), b"a=1".to_vec()),
                        ("set-cookie".into(), b"b=2".to_vec()),
                    ]
                ),
                Event::Data(b"moved".to_vec()),
                Event::End(false),
            ]
        );
    }

    #[test]
    fn decodes_cgi_response_at_every_split() {
        let input = b"Status: 500 Internal Server Error\nContent-Type: text/plain\n\nboom\r\n";
        let events = every_split(|| UwsgiCodec::new(4096), input).unwrap();
        assert_eq!(
            events,
            [
                Event::Head(500, vec![("content-type".into(), b"text/plain".to_vec())]),
                Event::Data(b"boom\r\n".to_vec()),
                Event::End(false),
            ]
        );
    }

    #[test]
    fn errors() {
        let kind = |limit, input: &[u8]| {
            every_split(|| UwsgiCodec::new(limit), input)
                .unwrap_err()
                .kind()
        };
        assert_eq!(
            kind(4096, b"HTTP/1.1 200 OK\r\nX: 1\r\n"),
            ErrorKind::UpstreamClosed
        );
        assert_eq!(kind(4096, b""), ErrorKind::UpstreamClosed);
        assert_eq!(
            kind(4096, b"\x01\x02\x03\x04\r\n\r\n"),
            ErrorKind::InvalidResponse
        );
        assert_eq!(
            kind(4096, b"HTTP/1.1 2x0 OK\r\n\r\n"),
            ErrorKind::InvalidResponse
        );
        assert_eq!(
            kind(
                32,
                b"Status: 200\r\nX-Pad: 0123456789abcdefghij\r\n\r\nbody"
            ),
            ErrorKind::TooBigHeader
        );
        let err = drive(UwsgiCodec::new(4096), &[b"Status: 200\r\n"]).unwrap_err();
        assert_eq!(err.message(), "upstream prematurely closed connection");
    }
}
