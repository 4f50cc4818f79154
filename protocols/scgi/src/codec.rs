//! The SCGI wire format (<https://python.ca/scgi/protocol.txt>): the request netstring,
//! and the per-request codec.
//!
//! A request is a netstring `<len>:<headers>,` whose headers are NUL-terminated
//! name/value pairs — `CONTENT_LENGTH` first, then `SCGI` = `1`, then the params —
//! followed by the raw request body (`CONTENT_LENGTH` bytes). The response is an HTTP
//! status line or CGI head and a body that runs until the upstream closes.

use bytes::{BufMut, Bytes, BytesMut};
use junction_core::cgi::{Framing, Params};

use junction_core::cgi_response::ResponseBodyUntilClose;

/// The header that must come first.
const CONTENT_LENGTH: &[u8] = b"CONTENT_LENGTH";
/// The header that declares the protocol version, second.
const SCGI: &[u8] = b"SCGI";
/// The only SCGI version.
const SCGI_VERSION: &[u8] = b"1";
/// Ends each name and each value.
const NUL: u8 = 0;
/// Separates the netstring length from its payload.
const NETSTRING_COLON: u8 = b':';
/// Ends the netstring.
const NETSTRING_COMMA: u8 = b',';

/// Encodes the SCGI request head: the netstring holding `CONTENT_LENGTH` =
/// `content_length`, `SCGI` = `1`, then `params` in order.
///
/// A `CONTENT_LENGTH` or `SCGI` entry in `params` is skipped — both are already sent, and
/// the spec forbids duplicate names. Names and values are bytes; they must not contain
/// NUL (nothing from an HTTP request can: header values reject it, and a `%00` in the URI
/// is rejected before routing), or the upstream would read extra pairs.
pub fn encode_request_head(params: Params, content_length: u64) -> Bytes {
    let mut digits = itoa::Buffer::new();
    let content_length = digits.format(content_length);
    let first_len =
        pair_len(CONTENT_LENGTH, content_length.as_bytes()) + pair_len(SCGI, SCGI_VERSION);
    let params = match params.into_framed::<Netstring>() {
        Ok(mut buf) => {
            // The netstring's length and the two first pairs go at the end of the room.
            let payload_len = first_len + buf.len().saturating_sub(HEAD_ROOM);
            let mut digits = itoa::Buffer::new();
            let prefix = digits.format(payload_len);
            let from = HEAD_ROOM.saturating_sub(prefix.len() + 1 + first_len);
            if let Some(mut room) = buf.get_mut(from..HEAD_ROOM) {
                room.put_slice(prefix.as_bytes());
                room.put_u8(NETSTRING_COLON);
                put_pair(&mut room, CONTENT_LENGTH, content_length.as_bytes());
                put_pair(&mut room, SCGI, SCGI_VERSION);
            }
            buf.put_u8(NETSTRING_COMMA);
            let _room = buf.split_to(from.min(buf.len()));
            return buf.freeze();
        }
        Err(params) => params,
    };
    let forwarded = || params.iter().filter(|(name, _)| !is_sent_first(name));
    let payload_len = forwarded().fold(
        pair_len(CONTENT_LENGTH, content_length.as_bytes()) + pair_len(SCGI, SCGI_VERSION),
        |len, (name, value)| len.saturating_add(pair_len(name, value)),
    );
    let mut digits = itoa::Buffer::new();
    let prefix = digits.format(payload_len);
    let mut out = BytesMut::with_capacity(prefix.len() + 1 + payload_len + 1);
    out.put_slice(prefix.as_bytes());
    out.put_u8(NETSTRING_COLON);
    put_pair(&mut out, CONTENT_LENGTH, content_length.as_bytes());
    put_pair(&mut out, SCGI, SCGI_VERSION);
    for (name, value) in forwarded() {
        put_pair(&mut out, name, value);
    }
    out.put_u8(NETSTRING_COMMA);
    out.freeze()
}

/// Room for the netstring's length (at most 20 digits and the colon) and the two pairs
/// written first (`CONTENT_LENGTH` with at most 20 digits, and `SCGI`).
const HEAD_ROOM: usize = 21 + 15 + 21 + 7;

/// The params framed for [`encode_request_head`]: room for the netstring's start, then
/// each name and value ends in NUL (the room left after each, zeros); `CONTENT_LENGTH`
/// and `SCGI` params are left out.
#[derive(Debug)]
pub struct Netstring;

impl Framing for Netstring {
    const NAME: &'static str = "scgi";
    const HEAD: usize = HEAD_ROOM;
    const BEFORE_NAME: usize = 0;
    const BETWEEN: usize = 1;
    const AFTER: usize = 1;
    const SKIP: &'static [&'static [u8]] = &[CONTENT_LENGTH, SCGI];
}

/// Whether `name` is one of the headers `encode_request_head` writes itself.
fn is_sent_first(name: &[u8]) -> bool {
    name == CONTENT_LENGTH || name == SCGI
}

/// Encoded size of one pair: `name\0value\0`.
fn pair_len(name: &[u8], value: &[u8]) -> usize {
    name.len().saturating_add(value.len()).saturating_add(2)
}

fn put_pair(out: &mut impl BufMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_u8(NUL);
    out.put_slice(value);
    out.put_u8(NUL);
}

/// The codec of one SCGI exchange: the request body goes as-is, nothing marks its end;
/// the response is a head (HTTP status line or CGI `Status:`), then the body until the
/// upstream closes (never reusable). `ScgiCodec::new(head_limit)`: the head must fit in
/// `head_limit` bytes (`scgi_buffer_size`).
pub type ScgiCodec = ResponseBodyUntilClose;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The head from `pairs`, checked to be the same from plain and framed params.
    fn encoded(pairs: &[(&[u8], &[u8])], content_length: u64) -> Bytes {
        let plain = Params::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        // Framed as ParamSet::build frames them: the skipped names never get in.
        let framed = Params::framed_from_pairs::<Netstring>(
            pairs
                .iter()
                .filter(|(k, _)| !Netstring::SKIP.contains(k))
                .map(|(k, v)| (*k, *v)),
        );
        let head = encode_request_head(plain, content_length);
        assert_eq!(encode_request_head(framed, content_length), head);
        head
    }

    /// Checks the netstring frame: the decimal length is the payload's, and it ends in `,`.
    fn check_netstring(head: &[u8]) {
        let colon = head.iter().position(|&b| b == b':').unwrap();
        let len: usize = std::str::from_utf8(&head[..colon])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(head.len(), colon + 1 + len + 1);
        assert_eq!(head.last(), Some(&b','));
    }

    #[test]
    fn spec_example() {
        // From the SCGI spec; the length: CONTENT_LENGTH\027\0 (18) + SCGI\01\0 (7)
        // + REQUEST_METHOD\0POST\0 (20) + REQUEST_URI\0/deepthought\0 (25) = 70.
        let head = encoded(
            &[
                (b"REQUEST_METHOD", b"POST"),
                (b"REQUEST_URI", b"/deepthought"),
            ],
            27,
        );
        assert_eq!(
            &head[..],
            b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00\
              REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00,"
        );
        check_netstring(&head);
    }

    #[test]
    fn no_params_no_body() {
        // CONTENT_LENGTH\00\0 (17) + SCGI\01\0 (7) = 24.
        let head = encoded(&[], 0);
        assert_eq!(&head[..], b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,");
        check_netstring(&head);
    }

    #[test]
    fn content_length_and_scgi_in_params_are_not_repeated() {
        let head = encoded(
            &[
                (b"CONTENT_LENGTH", b"999"),
                (b"REQUEST_METHOD", b"GET"),
                (b"SCGI", b"1"),
                (b"CONTENT_LENGTH_X", b"kept"),
                (b"HTTP_X", b""),
            ],
            5,
        );
        // 17 + 7 + REQUEST_METHOD\0GET\0 (19) + CONTENT_LENGTH_X\0kept\0 (22) + HTTP_X\0\0 (8)
        // = 73.
        assert_eq!(
            &head[..],
            b"73:CONTENT_LENGTH\x005\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00\
              CONTENT_LENGTH_X\x00kept\x00HTTP_X\x00\x00,"
        );
        check_netstring(&head);
    }

    #[test]
    fn large_values() {
        // CONTENT_LENGTH\0 (15) + 20 digits + \0 (1) + SCGI\01\0 (7) = 43.
        let head = encoded(&[], u64::MAX);
        assert_eq!(
            &head[..],
            b"43:CONTENT_LENGTH\x0018446744073709551615\x00SCGI\x001\x00,"
        );
        check_netstring(&head);
        // Bytes, not str, and no 64 KiB cap: the netstring length just grows.
        let value = vec![0xe9; 100_000];
        let head = encoded(&[(b"HTTP_X", &value)], 0);
        assert!(head.starts_with(b"100032:CONTENT_LENGTH\x000\x00"));
        check_netstring(&head);
    }
}
