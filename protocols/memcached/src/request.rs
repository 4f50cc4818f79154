//! The request: `get <escaped key>\r\n`, the only command nginx ever sends.
//!
//! The key is `$memcached_key` escaped the way `ngx_escape_uri(…, NGX_ESCAPE_MEMCACHED)`
//! does it: `%XX` (upper-case hex) for the bytes `0x00..=0x20` and `%`, every other byte
//! as is. nginx's table for this mode is
//!
//! ```text
//! 0xffffffff  /* %00-%1F                 */
//! 0x00000021  /* " " and "%"             */
//! 0x00000000  ×6  /* nothing else, 0x7F-0xFF included */
//! ```
//!
//! so `DEL` and bytes `>= 0x80` (UTF-8) are sent raw: an application that stored
//! `/café` under its raw UTF-8 bytes is found by nginx, and must be found by us too.
//! memcached itself only splits its command line on spaces and ends it at `\n`, which is
//! what escaping the bytes `<= 0x20` protects.

use bytes::{BufMut, Bytes, BytesMut};
use junction_core::{Error, ErrorKind};

/// memcached's `KEY_MAX_LENGTH`: the longest key (escaped, as sent) it accepts.
pub const MAX_KEY_LEN: usize = 250;

/// The command that precedes the key.
const GET: &[u8] = b"get ";

/// The end of a command line.
const CRLF: &[u8] = b"\r\n";

/// Upper-case hex digits, as nginx's `ngx_escape_uri` writes them.
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `ngx_escape_uri` escapes `b` in `NGX_ESCAPE_MEMCACHED` mode.
const fn needs_escape(b: u8) -> bool {
    b <= 0x20 || b == b'%'
}

/// The error for an unset or empty `$memcached_key`.
///
/// nginx logs `the "$memcached_key" variable is not set` and answers 500; so do we
/// (`ErrorKind::Internal`: it is a configuration problem, not the upstream's).
pub fn key_missing_error() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the \"$memcached_key\" variable is not set",
    )
}

/// The length of `key` once escaped, checked against memcached's limits.
///
/// Errors: an empty key ([`key_missing_error`], 500); an escaped key longer than
/// [`MAX_KEY_LEN`] (`ErrorKind::Encode`, 502). nginx does not check the length: it sends
/// the key, memcached answers `CLIENT_ERROR bad command line format`, and nginx logs
/// "memcached sent invalid response" and answers 502. We refuse before connecting, with
/// the same status and without a wasted round trip; `Encode` is not retryable, which
/// matches nginx too (`invalid_header` is not in the default `memcached_next_upstream`,
/// and another server would refuse the key just the same).
fn escaped_len(key: &[u8]) -> Result<usize, Error> {
    if key.is_empty() {
        return Err(key_missing_error());
    }
    let escapes = key.iter().filter(|&&b| needs_escape(b)).count();
    let len = key.len().saturating_add(escapes.saturating_mul(2));
    if len > MAX_KEY_LEN {
        return Err(Error::new(
            ErrorKind::Encode,
            format!(
                "memcached key is too long: {len} bytes once escaped, \
                 memcached accepts at most {MAX_KEY_LEN}"
            ),
        ));
    }
    Ok(len)
}

/// Appends `key`, escaped, to `out`.
fn put_escaped(key: &[u8], out: &mut BytesMut) {
    for &b in key {
        if needs_escape(b) {
            out.put_u8(b'%');
            out.put_u8(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
            out.put_u8(HEX.get(usize::from(b & 0x0f)).copied().unwrap_or(b'0'));
        } else {
            out.put_u8(b);
        }
    }
}

/// `key` escaped as nginx sends it — what [`MemcachedCodec::new`](crate::MemcachedCodec::new)
/// expects back in the `VALUE` line.
///
/// Errors as [`encode_get`].
pub fn escape_key(key: &[u8]) -> Result<Bytes, Error> {
    let len = escaped_len(key)?;
    let mut out = BytesMut::with_capacity(len);
    put_escaped(key, &mut out);
    Ok(out.freeze())
}

/// The whole request for `key` (the unescaped value of `$memcached_key`):
/// `get <escaped key>\r\n`.
///
/// Errors: an empty key ([`key_missing_error`], `Internal`, 500); a key longer than
/// [`MAX_KEY_LEN`] bytes once escaped (`Encode`, 502, see the module docs).
pub fn encode_get(key: &[u8]) -> Result<Bytes, Error> {
    let len = escaped_len(key)?;
    let mut out = BytesMut::with_capacity(GET.len() + len + CRLF.len());
    out.put_slice(GET);
    put_escaped(key, &mut out);
    out.put_slice(CRLF);
    Ok(out.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// nginx's `memcached[]` table from `ngx_escape_uri`, verbatim.
    const NGINX_MEMCACHED_TABLE: [u32; 8] = [
        0xffff_ffff,
        0x0000_0021,
        0x0000_0000,
        0x0000_0000,
        0x0000_0000,
        0x0000_0000,
        0x0000_0000,
        0x0000_0000,
    ];

    #[test]
    fn predicate_matches_nginx_table() {
        for b in 0..=255u8 {
            let word = NGINX_MEMCACHED_TABLE[usize::from(b >> 5)];
            let escaped = word & (1 << (b & 0x1f)) != 0;
            assert_eq!(needs_escape(b), escaped, "byte {b:#04x}");
        }
    }

    #[test]
    fn escaping_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/index.html", b"/index.html"),
            (b"a b", b"a%20b"),
            (b"100%", b"100%25"),
            (b"%20", b"%2520"),
            (b"\x00", b"%00"),
            (b"\t\r\n", b"%09%0D%0A"),
            (b"\x1f\x20\x21", b"%1F%20!"),
            (b"\x7f", b"\x7f"),
            ("/café".as_bytes(), b"/caf\xc3\xa9"),
            (b"\xff\x80", b"\xff\x80"),
            (b"?a=1&b=\"x\"#~", b"?a=1&b=\"x\"#~"),
            (b"/a+b/c;d", b"/a+b/c;d"),
        ];
        for &(raw, want) in cases {
            assert_eq!(&escape_key(raw).unwrap()[..], want, "{raw:?}");
            let mut req = b"get ".to_vec();
            req.extend_from_slice(want);
            req.extend_from_slice(b"\r\n");
            assert_eq!(&encode_get(raw).unwrap()[..], &req[..], "{raw:?}");
        }
    }

    #[test]
    fn every_byte_escapes_like_nginx() {
        for b in 0..=255u8 {
            let got = escape_key(&[b]).unwrap();
            if b <= 0x20 || b == b'%' {
                assert_eq!(&got[..], format!("%{b:02X}").as_bytes());
            } else {
                assert_eq!(&got[..], &[b]);
            }
        }
    }

    #[test]
    fn request_literal() {
        assert_eq!(&encode_get(b"/").unwrap()[..], b"get /\r\n");
        assert_eq!(
            &encode_get(b"/path?x=1 2").unwrap()[..],
            b"get /path?x=1%202\r\n"
        );
    }

    #[test]
    fn empty_key_is_500() {
        for err in [encode_get(b"").unwrap_err(), escape_key(b"").unwrap_err()] {
            assert_eq!(err.kind(), ErrorKind::Internal);
            assert_eq!(err.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
            assert!(err.message().contains("$memcached_key"));
        }
        assert_eq!(key_missing_error().kind(), ErrorKind::Internal);
    }

    #[test]
    fn key_length_limit_counts_escapes() {
        let max = vec![b'k'; MAX_KEY_LEN];
        assert_eq!(encode_get(&max).unwrap().len(), 4 + MAX_KEY_LEN + 2);

        let over = vec![b'k'; MAX_KEY_LEN + 1];
        let err = encode_get(&over).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
        assert!(!err.retryable());

        // 83 spaces escape to 249 bytes; one more byte is fine, an escaped one is not.
        let mut spaces = vec![b' '; 83];
        spaces.push(b'x');
        assert_eq!(escape_key(&spaces).unwrap().len(), 250);
        spaces.pop();
        spaces.push(b' ');
        assert_eq!(escape_key(&spaces).unwrap_err().kind(), ErrorKind::Encode);
    }
}
