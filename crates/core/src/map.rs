//! Variables computed from another value, when first read and cached for the
//! request: `map` (ngx_http_map_module; not cached when `volatile`), `geo`
//! (ngx_http_geo_module) and `split_clients` (ngx_http_split_clients_module). Built
//! once at load by the server crate.
//!
//! Lookup order as nginx's `ngx_http_map_find`: the exact keys (case-insensitive);
//! with `hostnames`, then the longest leading wildcard (`*.example.com`,
//! `.example.com`), then the longest trailing one (`www.example.*`); then the regexes
//! in the order written (their captures usable in the value); else `default`.

use crate::ctx::{Captures, RequestCtx};
use crate::regex::Regex;
use crate::vars::Template;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;

/// One `map` block.
#[derive(Debug)]
pub struct Map {
    /// What is looked up (`map SOURCE $var`), with variables.
    pub source: Template,
    /// Exact keys, lower case → value index.
    pub exact: HashMap<Vec<u8>, usize>,
    /// `hostnames`: leading wildcards as (suffix starting with `.`, value, also the bare
    /// name), longest first.
    pub heads: Vec<(Vec<u8>, usize, bool)>,
    /// `hostnames`: trailing wildcards as (prefix ending with `.`, value), longest first.
    pub tails: Vec<(Vec<u8>, usize)>,
    /// Regexes in order, with their value.
    pub regexes: Vec<(Regex, usize)>,
    /// The values (templates: text, variables, captures of a regex key).
    pub values: Vec<Template>,
    /// `default` (index into `values`), else the empty string.
    pub default: Option<usize>,
    /// `hostnames`.
    pub hostnames: bool,
    /// `volatile`: not cached.
    pub volatile: bool,
}

/// One computed variable.
#[derive(Debug)]
pub enum Computed {
    /// `map`
    Map(Map),
    /// `geo`
    Geo(Geo),
    /// `split_clients`
    Split(Split),
}

impl Computed {
    /// Whether the value is computed again at every read (`map … { volatile; }`).
    pub fn volatile(&self) -> bool {
        matches!(self, Computed::Map(m) if m.volatile)
    }

    /// The value for this request.
    pub fn eval(&self, cx: &RequestCtx) -> Bytes {
        match self {
            Computed::Map(m) => m.eval(cx),
            Computed::Geo(g) => g.eval(cx),
            Computed::Split(s) => s.eval(cx),
        }
    }

    /// The templates it evaluates (for the cycle check at load).
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Computed::Map(m) => std::iter::once(&m.source).chain(m.values.iter()).collect(),
            Computed::Geo(g) => g.source.iter().collect(),
            Computed::Split(s) => vec![&s.source],
        }
    }
}

/// Every `map`, `geo` and `split_clients` variable; [`crate::vars::Var::Map`] indexes it.
#[derive(Debug, Default)]
pub struct Maps {
    /// The variables, by index.
    pub maps: Vec<Computed>,
}

/// `split_clients SOURCE $var { PERCENT% VALUE; … * VALUE; }`.
#[derive(Debug)]
pub struct Split {
    /// The string hashed (with variables).
    pub source: Template,
    /// (upper bound of the MurmurHash2 value, 0 = the rest; value), in order.
    pub parts: Vec<(u32, Bytes)>,
}

impl Split {
    /// `ngx_http_split_clients_variable`.
    fn eval(&self, cx: &RequestCtx) -> Bytes {
        let hash = murmur_hash2(&self.source.eval(cx));
        self.parts
            .iter()
            .find(|(bound, _)| hash < *bound || *bound == 0)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// nginx's `ngx_murmur_hash2` (MurmurHash2, 32 bits, seed 0, little-endian blocks).
pub fn murmur_hash2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let Ok(block) = <[u8; 4]>::try_from(c) else {
            continue;
        };
        let mut k = u32::from_le_bytes(block);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// `geo [ADDRESS] $var { … }`: the value of the most specific network holding the
/// address (or of the range, with `ranges`).
#[derive(Debug)]
pub struct Geo {
    /// Where the address comes from (`None`: the client's address).
    pub source: Option<Template>,
    /// IPv4 networks by prefix length (longest first): (length, masked address → value).
    pub v4: Vec<(u8, HashMap<u32, Bytes>)>,
    /// IPv6 networks by prefix length (longest first).
    pub v6: Vec<(u8, HashMap<u128, Bytes>)>,
    /// `ranges`: (first, last, value); a later range lies inside an earlier one or
    /// beside it, so the last written that holds the address is the most specific.
    pub ranges: Option<Vec<(u32, u32, Bytes)>>,
    /// `default` (else empty).
    pub default: Bytes,
    /// `proxy` networks: a client among them is replaced by `X-Forwarded-For`'s address.
    pub proxies: Vec<(std::net::IpAddr, u8)>,
    /// `proxy_recursive`.
    pub proxy_recursive: bool,
}

/// Whether `ip` is in the network `net/len`.
pub fn in_network(ip: std::net::IpAddr, net: std::net::IpAddr, len: u8) -> bool {
    use std::net::IpAddr;
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = mask4(len);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = mask6(len);
            u128::from(a) & m == u128::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(a4) => in_network(IpAddr::V4(a4), net, len),
            None => false,
        },
        _ => false,
    }
}

/// The IPv4 mask of a prefix length.
pub fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// The IPv6 mask of a prefix length.
pub fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl Geo {
    fn addr(&self, cx: &RequestCtx) -> Option<std::net::IpAddr> {
        let mut ip = match &self.source {
            None => cx.conn.remote.ip(),
            // nginx: an address that does not parse is looked up as 255.255.255.255.
            Some(t) => String::from_utf8_lossy(&t.eval(cx))
                .trim()
                .parse()
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST)),
        };
        if !self.proxies.is_empty() && self.trusted(ip) {
            // ngx_http_get_forwarded_addr: from the right, past trusted proxies when
            // recursive, else the last address.
            let mut list: Vec<std::net::IpAddr> = Vec::new();
            for h in cx.headers.get_all("x-forwarded-for") {
                for part in String::from_utf8_lossy(h.as_bytes()).split(',') {
                    if let Ok(a) = part.trim().parse() {
                        list.push(a);
                    }
                }
            }
            for a in list.iter().rev() {
                ip = *a;
                if !self.proxy_recursive || !self.trusted(*a) {
                    break;
                }
            }
        }
        Some(ip)
    }

    fn trusted(&self, ip: std::net::IpAddr) -> bool {
        self.proxies.iter().any(|(n, l)| in_network(ip, *n, *l))
    }

    fn eval(&self, cx: &RequestCtx) -> Bytes {
        let Some(ip) = self.addr(cx) else {
            return self.default.clone();
        };
        let ip = match ip {
            std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a4) => std::net::IpAddr::V4(a4),
                None => ip,
            },
            v4 => v4,
        };
        match ip {
            std::net::IpAddr::V4(a) => {
                let a = u32::from(a);
                if let Some(r) = &self.ranges {
                    return r
                        .iter()
                        .rev()
                        .find(|(lo, hi, _)| *lo <= a && a <= *hi)
                        .map_or_else(|| self.default.clone(), |(_, _, v)| v.clone());
                }
                for (len, nets) in &self.v4 {
                    if let Some(v) = nets.get(&(a & mask4(*len))) {
                        return v.clone();
                    }
                }
            }
            std::net::IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, nets) in &self.v6 {
                    if let Some(v) = nets.get(&(a & mask6(*len))) {
                        return v.clone();
                    }
                }
            }
        }
        self.default.clone()
    }
}

impl Map {
    /// Looks `key` up: the value's index and the captures of a regex key.
    fn find(&self, key: &[u8]) -> Option<(usize, Option<Captures>)> {
        let low = key.to_ascii_lowercase();
        if let Some(v) = self.exact.get(&low) {
            return Some((*v, None));
        }
        // nginx tries no mask or regex on an empty value (`''` is an exact key).
        if key.is_empty() {
            return None;
        }
        if self.hostnames {
            for (suffix, v, bare) in &self.heads {
                if low.ends_with(suffix) && low.len() > suffix.len() {
                    return Some((*v, None));
                }
                if *bare && suffix.get(1..) == Some(low.as_slice()) {
                    return Some((*v, None));
                }
            }
            for (prefix, v) in &self.tails {
                if low.starts_with(prefix) && low.len() > prefix.len() {
                    return Some((*v, None));
                }
            }
        }
        for (re, v) in &self.regexes {
            // nginx: a match error ends the lookup (the variable is then not found).
            match re.captures(key) {
                Ok(Some(spans)) => {
                    let subject: Arc<str> = Arc::from(String::from_utf8_lossy(key).as_ref());
                    return Some((*v, Some(Captures { subject, spans })));
                }
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The map's value for this request.
    pub fn eval(&self, cx: &RequestCtx) -> Bytes {
        let mut key = self.source.eval(cx);
        if self.hostnames && key.ends_with(b".") {
            key.truncate(key.len() - 1);
        }
        let (idx, caps) = match self.find(&key) {
            Some(x) => x,
            None => match self.default {
                Some(d) => (d, None),
                None => return Bytes::new(),
            },
        };
        let Some(t) = self.values.get(idx) else {
            return Bytes::new();
        };
        if let Some(b) = t.as_literal() {
            return b;
        }
        let mut out = BytesMut::new();
        t.eval_into_with(cx, caps.as_ref(), &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::murmur_hash2;

    #[test]
    fn murmur_hash2_as_nginx() {
        // Reference values of MurmurHash2 (seed 0), as ngx_murmur_hash2 computes them.
        assert_eq!(murmur_hash2(b""), 0);
        assert_eq!(murmur_hash2(b"a"), 0x92685f5e);
        assert_eq!(murmur_hash2(b"abcd"), 0x26873021);
        assert_eq!(murmur_hash2(b"hello world"), 0x44a81419);
    }
}
