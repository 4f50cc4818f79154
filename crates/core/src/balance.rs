//! Load balancing methods, as nginx implements them, over one [`Group`]'s servers:
//! smooth weighted round robin (the default, `ngx_http_upstream_round_robin.c`),
//! `least_conn`, `ip_hash`, `hash KEY` and `hash KEY consistent` (ketama, compatible
//! with nginx's `ngx_http_upstream_hash_module.c`, so the same key reaches the same
//! `server` line as in nginx), `random` and `random two [least_conn]`.
//!
//! Every method runs with the group's state locked ([`PeerState`] per server) and
//! sees a server as usable when it is not tried yet by this request, not `down`,
//! not taken out by an active health check, not failed (`max_fails` within
//! `fail_timeout`), and below `max_conns`. A server skipped only for `max_conns` makes
//! the outcome [`Pick::Busy`] rather than [`Pick::NoLive`] (the queue waits on busy).
//!
//! The per-request state ([`PickState`]: tried servers, the running hash, the number
//! of hash tries) lives across retries, as nginx keeps it in the peer data.
//!
//! [`Group`]: crate::upstream::Group

use crate::upstream::{Group, Server};
use bytes::Bytes;
use std::cell::Cell;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A group's balancing method.
#[derive(Debug, Clone, Default)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's default).
    #[default]
    RoundRobin,
    /// `least_conn`: fewest active connections relative to weight, round robin among equals.
    LeastConn,
    /// `ip_hash`: first three octets of an IPv4 client address, the whole IPv6 address.
    IpHash,
    /// `hash KEY [consistent]`: the key is evaluated per request.
    Hash {
        /// The key template.
        key: crate::vars::Template,
        /// `consistent`: ketama (160 points per weight unit).
        consistent: bool,
    },
    /// `random [two [least_conn]]`.
    Random {
        /// `two`: pick two at random, keep the one with fewer connections.
        two: bool,
    },
}

/// The outcome of one selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// This server (index into `Group::servers`).
    Got(usize),
    /// Every usable server is at `max_conns` (a queue may wait).
    Busy,
    /// No server is usable (all down, failed or tried): nginx's "no live upstreams".
    NoLive,
}

/// What a request carries through its selections (and retries).
#[derive(Debug, Default, Clone)]
pub struct PickState {
    /// Servers tried so far, in order.
    pub tried: smallvec::SmallVec<[usize; 4]>,
    /// The client address (`ip_hash`).
    pub client: Option<IpAddr>,
    /// The evaluated `hash` key.
    pub key: Bytes,
    hash: u32,
    rehash: u32,
    tries: u32,
    chash_started: bool,
}

impl PickState {
    /// A fresh state for one request.
    pub fn new(client: Option<IpAddr>, key: Bytes) -> Self {
        PickState {
            client,
            key,
            ..PickState::default()
        }
    }
}

/// The mutable balancing state of one server (under the group's lock), nginx's
/// `ngx_http_upstream_rr_peer_t` fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerState {
    pub(crate) current_weight: i64,
    pub(crate) effective_weight: i64,
    pub(crate) fails: u32,
    pub(crate) accessed: Option<Instant>,
    pub(crate) checked: Option<Instant>,
}

impl PeerState {
    pub(crate) fn new(weight: u32) -> Self {
        PeerState {
            effective_weight: i64::from(weight),
            ..PeerState::default()
        }
    }
}

/// `now - t > d` with nginx's "never" (0) for an unset time.
fn older_than(t: Option<Instant>, now: Instant, d: Duration) -> bool {
    t.is_none_or(|t| now.saturating_duration_since(t) > d)
}

/// Whether passive health has the server out: `max_fails` reached and the last failure
/// was within `fail_timeout`.
pub(crate) fn failed(s: &Server, p: &PeerState, now: Instant) -> bool {
    s.max_fails != 0 && p.fails >= s.max_fails && !older_than(p.checked, now, s.fail_timeout)
}

/// After a server was chosen: nginx moves `checked` forward once per `fail_timeout`, so a
/// success after the window resets the failure count (see [`Group::release`]).
pub(crate) fn picked(s: &Server, p: &mut PeerState, now: Instant) {
    if older_than(p.checked, now, s.fail_timeout) {
        p.checked = Some(now);
    }
}

/// The random number source of `random` (nginx's `ngx_random()`): xorshift64* per thread.
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

// ---------------------------------------------------------------------------------------
// CRC-32 (IEEE, reflected, as zlib and nginx's ngx_crc32)
// ---------------------------------------------------------------------------------------

#[allow(clippy::indexing_slicing)] // const fn: `i < 256` bounds every index
const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// `ngx_crc32_init`.
pub const CRC32_INIT: u32 = 0xffff_ffff;

/// `ngx_crc32_update`.
pub fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        let idx = ((crc ^ u32::from(b)) & 0xff) as usize;
        crc = CRC_TABLE.get(idx).copied().unwrap_or(0) ^ (crc >> 8);
    }
    crc
}

/// `ngx_crc32_final`.
pub fn crc32_final(crc: u32) -> u32 {
    crc ^ 0xffff_ffff
}

/// `ngx_crc32_long`: the CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_final(crc32_update(CRC32_INIT, data))
}

/// The ketama points of one server line (nginx's `ngx_http_upstream_init_chash`):
/// `crc32(HOST "\0" PORT PREV_HASH)` for `160 × weight` points, `PREV_HASH` the
/// little-endian bytes of the previous point (0 first). `label` is the `server`
/// argument as written (`unix:` paths hash without a port).
pub fn ketama_points(label: &str, weight: u32) -> Vec<u32> {
    let b = label.as_bytes();
    let (host, port): (&[u8], &[u8]) =
        if b.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"unix:")) {
            (b.get(5..).unwrap_or(&[]), &[])
        } else {
            let mut split = None;
            for (j, &c) in b.iter().enumerate().rev() {
                if c == b':' {
                    split = Some(j);
                    break;
                }
                if !c.is_ascii_digit() {
                    break;
                }
            }
            match split {
                Some(j) => (b.get(..j).unwrap_or(&[]), b.get(j + 1..).unwrap_or(&[])),
                None => (b, &[]),
            }
        };
    let mut base = crc32_update(CRC32_INIT, host);
    base = crc32_update(base, &[0]);
    base = crc32_update(base, port);
    let n = weight as usize * 160;
    let mut out = Vec::with_capacity(n);
    let mut prev: u32 = 0;
    for _ in 0..n {
        let h = crc32_final(crc32_update(base, &prev.to_le_bytes()));
        out.push(h);
        prev = h;
    }
    out
}

// ---------------------------------------------------------------------------------------
// The methods
// ---------------------------------------------------------------------------------------

/// nginx's limit on hash/random probes before falling back to round robin.
const HASH_TRIES: u32 = 20;

struct Sel<'a> {
    g: &'a Group,
    ps: &'a mut [PeerState],
    now: Instant,
    busy: bool,
}

impl Sel<'_> {
    fn server(&self, i: usize) -> Option<&Server> {
        self.g.servers.get(i).map(|s| &**s)
    }

    /// nginx's checks in order: tried, down (or taken out by a health check), failed,
    /// max_conns (the last one marks the selection busy).
    fn usable(&mut self, st: &PickState, i: usize) -> bool {
        if st.tried.contains(&i) {
            return false;
        }
        let (Some(s), Some(p)) = (self.g.servers.get(i), self.ps.get(i)) else {
            return false;
        };
        if s.down || !s.healthy() || failed(s, p, self.now) {
            return false;
        }
        if s.at_max_conns() {
            self.busy = true;
            return false;
        }
        true
    }

    /// Smooth weighted round robin over `range` (`ngx_http_upstream_get_peer`).
    fn swrr(&mut self, st: &PickState, range: std::ops::Range<usize>) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for i in range {
            if !self.usable(st, i) {
                continue;
            }
            let w = self.server(i).map_or(1, |s| i64::from(s.weight));
            let Some(p) = self.ps.get_mut(i) else {
                continue;
            };
            p.current_weight += p.effective_weight;
            total += p.effective_weight;
            if p.effective_weight < w {
                p.effective_weight += 1;
            }
            if best.is_none_or(|(_, cw)| p.current_weight > cw) {
                best = Some((i, p.current_weight));
            }
        }
        let (b, _) = best?;
        if let Some(p) = self.ps.get_mut(b) {
            p.current_weight -= total;
        }
        Some(b)
    }

    /// Round robin with backups: the primaries, then the backups when none is usable.
    fn rr(&mut self, st: &PickState) -> Option<usize> {
        let n = self.g.primaries();
        self.swrr(st, 0..n)
            .or_else(|| self.swrr(st, n..self.g.servers.len()))
    }

    fn conns_weight(&self, i: usize) -> (u64, u64) {
        self.server(i)
            .map_or((0, 1), |s| (s.active() as u64, u64::from(s.weight)))
    }

    /// `least_conn` over `range` (`ngx_http_upstream_get_least_conn_peer`).
    fn least_conn_in(&mut self, st: &PickState, range: std::ops::Range<usize>) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut many = false;
        for i in range.clone() {
            if !self.usable(st, i) {
                continue;
            }
            let (c, w) = self.conns_weight(i);
            match best {
                None => {
                    best = Some(i);
                    many = false;
                }
                Some(b) => {
                    let (bc, bw) = self.conns_weight(b);
                    if c * bw < bc * w {
                        best = Some(i);
                        many = false;
                    } else if c * bw == bc * w {
                        many = true;
                    }
                }
            }
        }
        let mut best = best?;
        if many {
            let mut total = 0i64;
            let first = best;
            for i in first..range.end {
                let (bc, bw) = self.conns_weight(best);
                let (c, w) = self.conns_weight(i);
                if c * bw != bc * w || !self.usable(st, i) {
                    continue;
                }
                let weight = i64::from(w as u32);
                let best_cw = self.ps.get(best).map_or(0, |p| p.current_weight);
                let Some(p) = self.ps.get_mut(i) else {
                    continue;
                };
                p.current_weight += p.effective_weight;
                total += p.effective_weight;
                if p.effective_weight < weight {
                    p.effective_weight += 1;
                }
                if p.current_weight > best_cw {
                    best = i;
                }
            }
            if let Some(p) = self.ps.get_mut(best) {
                p.current_weight -= total;
            }
        }
        Some(best)
    }

    fn least_conn(&mut self, st: &PickState) -> Option<usize> {
        let n = self.g.primaries();
        self.least_conn_in(st, 0..n)
            .or_else(|| self.least_conn_in(st, n..self.g.servers.len()))
    }

    /// The primary a weighted position `w` falls on (nginx walks the weights in order).
    fn by_weight(&self, mut w: u64) -> usize {
        for i in 0..self.g.primaries() {
            let weight = self.server(i).map_or(1, |s| u64::from(s.weight));
            if w < weight {
                return i;
            }
            w -= weight;
        }
        0
    }

    /// `ip_hash` (`ngx_http_upstream_get_ip_hash_peer`).
    fn ip_hash(&mut self, st: &mut PickState) -> Option<usize> {
        if st.tries > HASH_TRIES || self.g.primaries() < 2 {
            return self.rr(st);
        }
        if !st.chash_started {
            st.chash_started = true;
            st.hash = 89;
        }
        let addr: Vec<u8> = match st.client {
            Some(IpAddr::V4(a)) => a.octets().get(..3).unwrap_or(&[]).to_vec(),
            Some(IpAddr::V6(a)) => a.octets().to_vec(),
            None => vec![0, 0, 0],
        };
        let total = self.g.total_weight().max(1);
        loop {
            let mut hash = st.hash;
            for &b in &addr {
                hash = (hash.wrapping_mul(113).wrapping_add(u32::from(b))) % 6271;
            }
            st.hash = hash;
            let i = self.by_weight(u64::from(hash) % total);
            if self.usable(st, i) {
                return Some(i);
            }
            st.tries += 1;
            if st.tries > HASH_TRIES {
                return self.rr(st);
            }
        }
    }

    /// `hash KEY` (`ngx_http_upstream_get_hash_peer`, Cache::Memcached compatible).
    fn hash(&mut self, st: &mut PickState) -> Option<usize> {
        if st.tries > HASH_TRIES || self.g.primaries() < 2 || st.key.is_empty() {
            return self.rr(st);
        }
        let total = self.g.total_weight().max(1);
        loop {
            let mut c = CRC32_INIT;
            if st.rehash > 0 {
                c = crc32_update(c, st.rehash.to_string().as_bytes());
            }
            c = crc32_update(c, &st.key);
            let h = (crc32_final(c) >> 16) & 0x7fff;
            st.hash = st.hash.wrapping_add(h);
            st.rehash += 1;
            let i = self.by_weight(u64::from(st.hash) % total);
            if self.usable(st, i) {
                return Some(i);
            }
            st.tries += 1;
            if st.tries > HASH_TRIES {
                return self.rr(st);
            }
        }
    }

    /// `hash KEY consistent` (`ngx_http_upstream_get_chash_peer`).
    fn chash(&mut self, st: &mut PickState) -> Option<usize> {
        let points = self.g.points();
        if st.tries > HASH_TRIES || self.g.primaries() < 2 || st.key.is_empty() || points.is_empty()
        {
            return self.rr(st);
        }
        if !st.chash_started {
            st.chash_started = true;
            let h = crc32(&st.key);
            st.hash = points.partition_point(|(p, _)| *p < h) as u32;
        }
        loop {
            let label = points
                .get(st.hash as usize % points.len())
                .map_or(0, |(_, l)| *l);
            // Round robin among the servers of that `server` line (several addresses).
            let mut best: Option<(usize, i64)> = None;
            let mut total = 0i64;
            for i in 0..self.g.primaries() {
                if self.g.label_of(i) != label || !self.usable(st, i) {
                    continue;
                }
                let w = self.server(i).map_or(1, |s| i64::from(s.weight));
                let Some(p) = self.ps.get_mut(i) else {
                    continue;
                };
                p.current_weight += p.effective_weight;
                total += p.effective_weight;
                if p.effective_weight < w {
                    p.effective_weight += 1;
                }
                if best.is_none_or(|(_, cw)| p.current_weight > cw) {
                    best = Some((i, p.current_weight));
                }
            }
            if let Some((b, _)) = best {
                if let Some(p) = self.ps.get_mut(b) {
                    p.current_weight -= total;
                }
                return Some(b);
            }
            st.hash = st.hash.wrapping_add(1);
            st.tries += 1;
            if st.tries > HASH_TRIES {
                return self.rr(st);
            }
        }
    }

    /// A primary drawn with probability proportional to its weight.
    fn peek_random(&self) -> usize {
        let total = self.g.total_weight().max(1);
        self.by_weight(random_u64() % total)
    }

    /// `random` and `random two` (`ngx_http_upstream_get_random[2]_peer`).
    fn random(&mut self, st: &mut PickState, two: bool) -> Option<usize> {
        if st.tries > HASH_TRIES || self.g.primaries() < 2 {
            return self.rr(st);
        }
        let mut prev: Option<usize> = None;
        loop {
            let i = self.peek_random();
            if prev != Some(i) && self.usable(st, i) {
                if !two {
                    return Some(i);
                }
                match prev {
                    None => prev = Some(i),
                    Some(p) => {
                        let (c, w) = self.conns_weight(i);
                        let (pc, pw) = self.conns_weight(p);
                        return Some(if c * pw > pc * w { p } else { i });
                    }
                }
            }
            st.tries += 1;
            if st.tries > HASH_TRIES {
                return self.rr(st);
            }
        }
    }
}

/// Runs the group's method with its state locked. The caller counts the connection.
pub(crate) fn select(g: &Group, ps: &mut [PeerState], st: &mut PickState, now: Instant) -> Pick {
    let mut sel = Sel {
        g,
        ps,
        now,
        busy: false,
    };
    // nginx's `peers->single`: one server, no backup; its failures are not counted.
    if g.servers.len() == 1 {
        let Some(s) = g.servers.first() else {
            return Pick::NoLive;
        };
        if st.tried.contains(&0) || s.down || !s.healthy() {
            return Pick::NoLive;
        }
        if s.at_max_conns() {
            return Pick::Busy;
        }
        return Pick::Got(0);
    }
    let got = match &g.balance {
        Balance::RoundRobin => sel.rr(st),
        Balance::LeastConn => sel.least_conn(st),
        Balance::IpHash => sel.ip_hash(st),
        Balance::Hash {
            consistent: false, ..
        } => sel.hash(st),
        Balance::Hash {
            consistent: true, ..
        } => sel.chash(st),
        Balance::Random { two } => sel.random(st, *two),
    };
    match got {
        Some(i) => {
            if let (Some(s), Some(p)) = (g.servers.get(i), sel.ps.get_mut(i)) {
                picked(s, p, now);
            }
            Pick::Got(i)
        }
        None if sel.busy => Pick::Busy,
        None => Pick::NoLive,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
    }

    #[test]
    fn ketama_splits_host_and_port_like_nginx() {
        // crc32("127.0.0.1" "\0" "8080" <4 zero bytes>) is the first point.
        let mut c = crc32_update(CRC32_INIT, b"127.0.0.1\08080");
        c = crc32_update(c, &[0, 0, 0, 0]);
        let pts = ketama_points("127.0.0.1:8080", 1);
        assert_eq!(pts.len(), 160);
        assert_eq!(pts[0], crc32_final(c));
        let second = crc32_final(crc32_update(
            crc32_update(CRC32_INIT, b"127.0.0.1\08080"),
            &pts[0].to_le_bytes(),
        ));
        assert_eq!(pts[1], second);
        // unix: paths hash without the prefix and with an empty port.
        let u = ketama_points("unix:/tmp/s.sock", 2);
        let mut c = crc32_update(CRC32_INIT, b"/tmp/s.sock\0");
        c = crc32_update(c, &[0, 0, 0, 0]);
        assert_eq!(u.len(), 320);
        assert_eq!(u[0], crc32_final(c));
    }

    #[test]
    fn random_is_spread() {
        let mut seen = [0u32; 4];
        for _ in 0..4000 {
            seen[(random_u64() % 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
