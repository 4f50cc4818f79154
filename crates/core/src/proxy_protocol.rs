//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that an L4 load
//! balancer sends before the client's bytes, parsed as nginx's `ngx_proxy_protocol_read`
//! does: a pure two-phase parser (is the whole header here? then what does it say),
//! so the server can read exactly the header's bytes and leave the rest to HTTP.
//!
//! - v1: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` (at most 107 bytes), or
//!   `PROXY UNKNOWN …\r\n`. As nginx, the addresses are kept as written (hex digits,
//!   `.` and `:` only).
//! - v2: the 12-byte signature, version 2, a command (`PROXY`; `LOCAL` carries no
//!   address), a family and transport (TCP over IPv4 or IPv6; others carry no
//!   address), a length, the addresses, then TLVs (kept for `$proxy_protocol_tlv_NAME`,
//!   [`ProxyProtocol::tlv`]).
//!
//! A header that carries no address (`UNKNOWN`, `LOCAL`, another family) is valid and
//! gives [`Header::info`] `None`: the connection's own addresses stay in force.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What the header says about the original connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// `$proxy_protocol_addr`.
    pub src_addr: String,
    /// `$proxy_protocol_port`.
    pub src_port: u16,
    /// `$proxy_protocol_server_addr`.
    pub dst_addr: String,
    /// `$proxy_protocol_server_port`.
    pub dst_port: u16,
    /// The TLVs after the addresses (v2), as sent.
    pub tlvs: Vec<u8>,
}

/// TLV types by name (`$proxy_protocol_tlv_NAME`), as nginx names them.
const TLV_NAMES: &[(&str, u8)] = &[
    ("alpn", 0x01),
    ("authority", 0x02),
    ("unique_id", 0x05),
    ("ssl", 0x20),
    ("netns", 0x30),
];

/// The sub-TLVs of the `ssl` TLV (`$proxy_protocol_tlv_ssl_NAME`).
const TLV_SSL_NAMES: &[(&str, u8)] = &[
    ("version", 0x21),
    ("cn", 0x22),
    ("cipher", 0x23),
    ("sig_alg", 0x24),
    ("key_alg", 0x25),
];

/// The value of TLV `t` in a TLV list (`ngx_proxy_protocol_lookup_tlv`).
fn lookup_tlv(mut tlvs: &[u8], t: u8) -> Option<&[u8]> {
    while !tlvs.is_empty() {
        let (&ty, len) = (tlvs.first()?, u16_at(tlvs, 1)?);
        let value = tlvs.get(3..3 + usize::from(len))?;
        if ty == t {
            return Some(value);
        }
        tlvs = tlvs.get(3 + usize::from(len)..)?;
    }
    None
}

impl ProxyProtocol {
    /// `$proxy_protocol_tlv_NAME` (`ngx_proxy_protocol_get_tlv`): a name from nginx's
    /// table or `0xNN`; `ssl_NAME` (or `ssl_0xNN`) inside the `ssl` TLV, and
    /// `ssl_verify` its verify field as a number.
    pub fn tlv(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let (mut list, mut names, mut n): (&[u8], _, &str) = (&self.tlvs, TLV_NAMES, name);
        if let Some(rest) = name.strip_prefix("ssl_") {
            // client (1 byte) and verify (4 bytes), then the sub-TLVs
            let ssl = lookup_tlv(&self.tlvs, 0x20)?;
            if rest == "verify" {
                let v = u32::from_be_bytes(ssl.get(1..5)?.try_into().ok()?);
                return Some(std::borrow::Cow::Owned(v.to_string().into_bytes()));
            }
            list = ssl.get(5..)?;
            names = TLV_SSL_NAMES;
            n = rest;
        }
        let t = match n.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16).ok()?,
            None => names.iter().find(|(k, _)| *k == n)?.1,
        };
        lookup_tlv(list, t).map(std::borrow::Cow::Borrowed)
    }
}

/// A complete header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its length in bytes (what to consume from the stream).
    pub len: usize,
    /// The addresses, when it carries any.
    pub info: Option<ProxyProtocol>,
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are the start of a header: read more.
    Incomplete,
    /// A whole header.
    Header(Header),
    /// Not a valid header: nginx's log text (`broken header: "…"`, …).
    Invalid(String),
}

/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 fixed part: signature, version/command, family/transport, length.
pub const V2_HEADER_LEN: usize = 16;
/// The longest v1 header (`PROXY TCP6` with two full IPv6 addresses and ports).
pub const V1_MAX_LEN: usize = 107;
/// The longest v2 header accepted (the fixed part plus addresses and TLVs). nginx reads
/// the header into its 1k client header buffer; TLVs beyond this are refused.
pub const V2_MAX_LEN: usize = 4096;

const V1_PREFIX: &[u8] = b"PROXY ";

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let sig_len = buf.len().min(V2_SIGNATURE.len());
    if buf.get(..sig_len) == V2_SIGNATURE.get(..sig_len) && !buf.is_empty() {
        if buf.len() < V2_HEADER_LEN {
            return Parsed::Incomplete;
        }
        return parse_v2(buf);
    }
    let pre = buf.len().min(V1_PREFIX.len());
    if buf.get(..pre) != V1_PREFIX.get(..pre) || buf.is_empty() {
        return broken(buf);
    }
    let line_end = buf.iter().take(V1_MAX_LEN).position(|&b| b == b'\n');
    match line_end {
        None if buf.len() < V1_MAX_LEN => Parsed::Incomplete,
        None => broken(buf),
        Some(lf) => parse_v1(buf, lf + 1),
    }
}

/// nginx's `broken header: "…"` (the bytes up to the first CR or LF).
fn broken(buf: &[u8]) -> Parsed {
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(V1_MAX_LEN);
    Parsed::Invalid(format!(
        "broken header: \"{}\"",
        String::from_utf8_lossy(buf.get(..end).unwrap_or(&[]))
    ))
}

/// `PROXY …\r\n`, `len` bytes including the LF.
fn parse_v1(buf: &[u8], len: usize) -> Parsed {
    let line = buf.get(..len).unwrap_or(&[]);
    let rest = line.get(V1_PREFIX.len()..).unwrap_or(&[]);
    if rest.starts_with(b"UNKNOWN") {
        // skip to CRLF
        return if line.ends_with(b"\r\n") {
            Parsed::Header(Header { len, info: None })
        } else {
            broken(buf)
        };
    }
    let Some(rest) = rest
        .strip_prefix(b"TCP4 ")
        .or_else(|| rest.strip_prefix(b"TCP6 "))
    else {
        return broken(buf);
    };
    let addr = |s: &[u8]| {
        (!s.is_empty()
            && s.iter()
                .all(|&c| c == b':' || c == b'.' || c.is_ascii_hexdigit()))
        .then(|| String::from_utf8_lossy(s).into_owned())
    };
    let port = |s: &[u8]| -> Option<u16> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let Some(body) = rest.strip_suffix(b"\r\n") else {
        return broken(buf);
    };
    let mut parts = body.split(|&b| b == b' ');
    let fields = (
        parts.next().and_then(addr),
        parts.next().and_then(addr),
        parts.next().and_then(port),
        parts.next().and_then(port),
        parts.next(),
    );
    match fields {
        (Some(src_addr), Some(dst_addr), Some(src_port), Some(dst_port), None) => {
            Parsed::Header(Header {
                len,
                info: Some(ProxyProtocol {
                    src_addr,
                    src_port,
                    dst_addr,
                    dst_port,
                    tlvs: Vec::new(),
                }),
            })
        }
        _ => broken(buf),
    }
}

fn u16_at(buf: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]))
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let (Some(&ver_cmd), Some(&fam), Some(len)) = (buf.get(12), buf.get(13), u16_at(buf, 14))
    else {
        return Parsed::Incomplete;
    };
    let version = ver_cmd >> 4;
    if version != 2 {
        return Parsed::Invalid(format!("unknown PROXY protocol version: {version}"));
    }
    let total = V2_HEADER_LEN + usize::from(len);
    if total > V2_MAX_LEN {
        return Parsed::Invalid("header is too large".into());
    }
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    let body = buf.get(V2_HEADER_LEN..total).unwrap_or(&[]);
    let none = Parsed::Header(Header {
        len: total,
        info: None,
    });
    // only PROXY over STREAM carries addresses
    if ver_cmd & 0x0f != 1 || fam & 0x0f != 1 {
        return none;
    }
    let info = match fam >> 4 {
        1 => {
            let (Some(s), Some(d), Some(sp), Some(dp)) = (
                body.get(0..4),
                body.get(4..8),
                u16_at(body, 8),
                u16_at(body, 10),
            ) else {
                return Parsed::Invalid("PROXY protocol v2 header is too short".into());
            };
            let v4 = |b: &[u8]| {
                <[u8; 4]>::try_from(b)
                    .map(|a| Ipv4Addr::from(a).to_string())
                    .unwrap_or_default()
            };
            ProxyProtocol {
                src_addr: v4(s),
                src_port: sp,
                dst_addr: v4(d),
                dst_port: dp,
                tlvs: body.get(12..).unwrap_or(&[]).to_vec(),
            }
        }
        2 => {
            let (Some(s), Some(d), Some(sp), Some(dp)) = (
                body.get(0..16),
                body.get(16..32),
                u16_at(body, 32),
                u16_at(body, 34),
            ) else {
                return Parsed::Invalid("PROXY protocol v2 header is too short".into());
            };
            let v6 = |b: &[u8]| {
                <[u8; 16]>::try_from(b)
                    .map(|a| Ipv6Addr::from(a).to_string())
                    .unwrap_or_default()
            };
            ProxyProtocol {
                src_addr: v6(s),
                src_port: sp,
                dst_addr: v6(d),
                dst_port: dp,
                tlvs: body.get(36..).unwrap_or(&[]).to_vec(),
            }
        }
        _ => return none,
    };
    Parsed::Header(Header {
        len: total,
        info: Some(info),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn info(src: &str, sp: u16, dst: &str, dp: u16) -> Option<ProxyProtocol> {
        Some(ProxyProtocol {
            src_addr: src.into(),
            src_port: sp,
            dst_addr: dst.into(),
            dst_port: dp,
            tlvs: Vec::new(),
        })
    }

    #[test]
    fn v2_tlvs() {
        // ALPN "h2", AWS VPC endpoint id (0xEA), SSL: client 1, verify 0, version "TLSv1.3"
        let mut body = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
        body.extend_from_slice(&[0xea, 0, 4, b'v', b'p', b'c', b'e']);
        body.extend_from_slice(&[0x20, 0, 15, 1, 0, 0, 0, 0, 0x21, 0, 7]);
        body.extend_from_slice(b"TLSv1.3");
        let Parsed::Header(h) = parse(&v2(1, 0x11, &body)) else {
            panic!("not parsed")
        };
        let p = h.info.unwrap();
        let tlv = |n: &str| p.tlv(n).map(|v| String::from_utf8_lossy(&v).into_owned());
        assert_eq!(tlv("alpn").as_deref(), Some("h2"));
        assert_eq!(tlv("0x01").as_deref(), Some("h2"));
        assert_eq!(tlv("0xea").as_deref(), Some("vpce"));
        assert_eq!(tlv("0xEA").as_deref(), Some("vpce"));
        assert_eq!(tlv("ssl_version").as_deref(), Some("TLSv1.3"));
        assert_eq!(tlv("ssl_verify").as_deref(), Some("0"));
        assert_eq!(tlv("authority"), None);
        assert_eq!(tlv("ssl_cn"), None);
        assert_eq!(tlv("bogus"), None);
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header(Header {
                len: 45,
                info: info("192.0.2.1", 56324, "198.51.100.2", 443)
            })
        );
        let h = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header(Header {
                len: h.len(),
                info: info("2001:db8::1", 1, "::1", 65535)
            })
        );
        let h = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest";
        assert_eq!(
            parse(h),
            Parsed::Header(Header {
                len: 35,
                info: None
            })
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header(Header {
                len: 15,
                info: None
            })
        );
    }

    #[test]
    fn v1_split_at_every_byte_is_incomplete_until_the_end() {
        let h = b"PROXY TCP4 10.1.2.3 10.0.0.1 1234 80\r\n";
        for i in 0..h.len() {
            assert_eq!(parse(&h[..i.max(1)]), Parsed::Incomplete, "{i}");
        }
        assert!(matches!(parse(h), Parsed::Header(_)));
    }

    #[test]
    fn v1_broken() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP5 1.1.1.1 2.2.2.2 1 2\r\n",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 1\r\n",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 1 70000\r\n",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2 3\r\n",
            b"PROXY TCP4 host 2.2.2.2 1 2\r\n",
            b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\n",
            b"PROXY TCP4 1.1.1.1  2.2.2.2 1 2\r\n",
        ] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{bad:?}");
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n"),
            Parsed::Invalid("broken header: \"GET / HTTP/1.1\"".into())
        );
        // no end of line within 107 bytes
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn v2_headers() {
        // PROXY, TCP over IPv4: 192.0.2.1:56324 → 198.51.100.2:443, then a TLV
        let body = [
            192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb, 0x05, 0x00, 0x02, b'i', b'd',
        ];
        let mut h = v2(1, 0x11, &body);
        h.extend_from_slice(b"GET /");
        let mut want = info("192.0.2.1", 56324, "198.51.100.2", 443);
        if let Some(w) = want.as_mut() {
            w.tlvs = vec![0x05, 0x00, 0x02, b'i', b'd'];
        }
        assert_eq!(
            parse(&h),
            Parsed::Header(Header {
                len: 16 + body.len(),
                info: want
            })
        );
        for i in 1..16 + body.len() {
            assert_eq!(parse(&h[..i]), Parsed::Incomplete, "{i}");
        }
        // TCP over IPv6
        let mut body = [0u8; 36];
        body[15] = 1; // ::1
        body[16] = 0x20;
        body[17] = 0x01;
        body[18] = 0x0d;
        body[19] = 0xb8;
        body[31] = 2; // 2001:db8::2
        body[32..34].copy_from_slice(&8080u16.to_be_bytes());
        body[34..36].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &body)),
            Parsed::Header(Header {
                len: 52,
                info: info("::1", 8080, "2001:db8::2", 80)
            })
        );
        // LOCAL (a health check), UDP, unix: valid, no address
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Header(Header {
                len: 16,
                info: None
            })
        );
        assert_eq!(
            parse(&v2(1, 0x12, &[0; 12])),
            Parsed::Header(Header {
                len: 28,
                info: None
            })
        );
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])),
            Parsed::Header(Header {
                len: 232,
                info: None
            })
        );
    }

    #[test]
    fn v2_invalid() {
        let mut h = v2(1, 0x11, &[0; 12]);
        h[12] = 0x11; // version 1 in binary form
        assert_eq!(
            parse(&h),
            Parsed::Invalid("unknown PROXY protocol version: 1".into())
        );
        assert!(matches!(parse(&v2(1, 0x11, &[0; 8])), Parsed::Invalid(_)));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&big), Parsed::Invalid("header is too large".into()));
    }
}
