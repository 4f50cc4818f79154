//! Live counters for `stub_status` and the `metrics` handler: plain atomics on the
//! request path (no lock, no allocation), read only when somebody asks.
//!
//! - [`PROCESS`]: nginx's `stub_status` numbers (connections accepted, handled,
//!   active, reading, writing; requests) and the reloads; process-wide, so they
//!   survive a reload as nginx's shared-memory counters do.
//! - [`HttpStats`]: one per `server {}`: requests by protocol and status class, a
//!   duration histogram, bytes in and out.
//! - [`Histogram`]: fixed buckets, used for request durations and upstream response
//!   times (`upstream::ServerStats`).
//! - [`PeerTraffic`]: per upstream server, request bytes, header times and the last
//!   selection, for the JSON API (`junction_server::api`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the duration histograms' buckets; `+Inf` is implied.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with the fixed [`DURATION_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [AtomicU64; DURATION_BUCKETS.len() + 1],
    /// Sum of the observations, in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Sum (seconds), count, and `(upper bound, observations in that bucket)` pairs
    /// ending with `+Inf` (not cumulative: the encoder adds them up).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            total += n;
            let bound = DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, total, buckets)
    }
}

/// The class of a status (`1xx` … `5xx`) as an index 0–4.
pub fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The label of a class index.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The protocols a request can come in with, as `$server_protocol` writes them.
pub const PROTOCOLS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"];

/// The index of a version in [`PROTOCOLS`].
pub fn protocol_index(v: http::Version) -> usize {
    match v {
        http::Version::HTTP_09 | http::Version::HTTP_10 => 0,
        http::Version::HTTP_2 | http::Version::HTTP_3 => 2,
        _ => 1,
    }
}

/// The counters of one `server {}`.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Responses by protocol and status class.
    pub responses: [[AtomicU64; 5]; 3],
    /// Request durations (from the first byte of the request to the end of the
    /// response body, as `$request_time`).
    pub duration: Histogram,
    /// Request bytes (head and body, as `$request_length`).
    pub bytes_in: AtomicU64,
    /// Response body bytes sent (`$body_bytes_sent`).
    pub bytes_out: AtomicU64,
}

impl HttpStats {
    /// Records a finished request.
    pub fn record(&self, cx: &crate::ctx::RequestCtx) {
        if let Some(c) = self
            .responses
            .get(protocol_index(cx.version))
            .and_then(|p| p.get(status_class(cx.status)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let took = crate::time::since(cx.start);
        self.duration.observe(took);
        // Now, without reading the clock again.
        let now = cx.start_time + took;
        self.bytes_in
            .fetch_add(cx.request_length, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(cx.body_bytes_sent, Ordering::Relaxed);
        for a in cx.upstream.attempts() {
            a.server.stats.record_attempt(a.status, a.took);
            a.server.stats.traffic.record(a, now);
        }
    }
}

/// What one upstream server exchanged, for the JSON API's peers (nginx Plus's
/// `sent`, `header_time`, `selected`), added when a request finishes. (Response
/// bytes are counted by the body relay only when a template reads
/// `$upstream_response_length`, so Plus's `received` is not kept.)
#[derive(Debug, Default)]
pub struct PeerTraffic {
    /// Request bytes written to it (`$upstream_bytes_sent`).
    pub sent: AtomicU64,
    /// Sum of the times to the response head (`$upstream_header_time`), µs.
    pub header_us: AtomicU64,
    /// Attempts that got a response head.
    pub headers: AtomicU64,
    /// When it was last chosen (the start of the latest attempt), ms since the epoch.
    pub selected_ms: AtomicU64,
}

impl PeerTraffic {
    /// Adds one finished attempt.
    pub fn record(&self, a: &crate::ctx::Attempt, now: std::time::SystemTime) {
        self.sent.fetch_add(a.bytes_sent, Ordering::Relaxed);
        if let Some(h) = a.header {
            let us = u64::try_from(h.as_micros()).unwrap_or(u64::MAX);
            self.header_us.fetch_add(us, Ordering::Relaxed);
            self.headers.fetch_add(1, Ordering::Relaxed);
        }
        let started = now
            .checked_sub(a.took)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.selected_ms.fetch_max(started, Ordering::Relaxed);
    }
}

/// Process-wide counters: nginx's `stub_status` and the reloads.
#[derive(Debug, Default)]
pub struct Process {
    /// Client connections accepted.
    pub accepted: AtomicU64,
    /// Client connections handled (accepted and not refused for lack of resources).
    pub handled: AtomicU64,
    /// Client connections open now (as a counter of opened minus closed).
    pub closed: AtomicU64,
    /// Connections reading a request head now.
    pub reading: AtomicU64,
    /// Requests being processed or written now.
    pub writing: AtomicU64,
    /// Client requests.
    pub requests: AtomicU64,
    /// Reloads that took the new configuration.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the old configuration stayed).
    pub reloads_failed: AtomicU64,
}

/// The process's counters.
pub static PROCESS: Process = Process {
    accepted: AtomicU64::new(0),
    handled: AtomicU64::new(0),
    closed: AtomicU64::new(0),
    reading: AtomicU64::new(0),
    writing: AtomicU64::new(0),
    requests: AtomicU64::new(0),
    reloads_ok: AtomicU64::new(0),
    reloads_failed: AtomicU64::new(0),
};

/// One snapshot of [`PROCESS`], with nginx's derived numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSnapshot {
    /// Connections open now.
    pub active: u64,
    /// Accepted connections.
    pub accepted: u64,
    /// Handled connections.
    pub handled: u64,
    /// Requests.
    pub requests: u64,
    /// Reading a request head.
    pub reading: u64,
    /// Processing or writing a request.
    pub writing: u64,
    /// Idle keep-alive connections (`active - reading - writing`).
    pub waiting: u64,
    /// Reloads taken.
    pub reloads_ok: u64,
    /// Reloads refused.
    pub reloads_failed: u64,
}

impl Process {
    /// A connection was accepted and will be served.
    pub fn connection_opened(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed.
    pub fn connection_closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    /// The numbers now.
    pub fn snapshot(&self) -> ProcessSnapshot {
        let accepted = self.accepted.load(Ordering::Relaxed);
        let closed = self.closed.load(Ordering::Relaxed);
        let active = accepted.saturating_sub(closed);
        let reading = self.reading.load(Ordering::Relaxed);
        let writing = self.writing.load(Ordering::Relaxed);
        ProcessSnapshot {
            active,
            accepted,
            handled: self.handled.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            reading,
            writing,
            waiting: active.saturating_sub(reading + writing),
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_failed: self.reloads_failed.load(Ordering::Relaxed),
        }
    }
}

/// Counts one client connection as open (accepted and handled) until dropped.
#[derive(Debug)]
pub struct OpenConnection(());

impl OpenConnection {
    /// A connection was accepted and will be served.
    pub fn open() -> OpenConnection {
        PROCESS.connection_opened();
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        PROCESS.connection_closed();
    }
}

/// Counts a connection as reading a request head (`Reading`) until dropped.
#[derive(Debug)]
pub struct ReadingHead(());

impl ReadingHead {
    /// The first byte of a request head arrived.
    pub fn start() -> ReadingHead {
        PROCESS.reading.fetch_add(1, Ordering::Relaxed);
        ReadingHead(())
    }
}

impl Drop for ReadingHead {
    fn drop(&mut self) {
        PROCESS.reading.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one request in progress (`Writing` in `stub_status`) until dropped.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    /// A request began.
    pub fn start() -> InFlight {
        PROCESS.requests.fetch_add(1, Ordering::Relaxed);
        PROCESS.writing.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        PROCESS.writing.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let (sum, count, b) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.0305).abs() < 1e-9, "{sum}");
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[3], (0.025, 0));
        assert_eq!(b[4], (0.05, 1));
        assert_eq!(b[11], (10.0, 0));
        assert_eq!(b[12].1, 1);
        assert!(b[12].0.is_infinite());
    }

    #[test]
    fn classes() {
        assert_eq!(status_class(101), 0);
        assert_eq!(status_class(204), 1);
        assert_eq!(status_class(404), 3);
        assert_eq!(status_class(599), 4);
        assert_eq!(status_class(0), 0);
        assert_eq!(status_class(999), 4);
    }
}
