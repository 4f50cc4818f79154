//! Log time formats (`$time_local`, `$time_iso8601`) and a cached `Date` header.
//! Times are rendered in UTC (offset `+0000`).

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day, hour, min, sec) in UTC.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// `29/Nov/2026:22:54:50 +0000`
pub fn local_time(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    let mon = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!("{d:02}/{mon}/{y}:{hh:02}:{mm:02}:{ss:02} +0000")
}

/// `2026-11-29T22:54:50+00:00`
pub fn iso8601(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}+00:00")
}

/// `2026-11-29T22:54:50.123Z` (the JSON status API's timestamps)
pub fn iso8601_ms_utc(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// `2026/11/29 22:54:50` (error log)
pub fn error_log_time(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(t);
    format!("{y}/{m:02}/{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// `Nov  9 22:54:50` (syslog's RFC 3164 header: the day padded with a space)
pub fn syslog_time(t: SystemTime) -> String {
    let (_, m, d, hh, mm, ss) = civil(t);
    let mon = MONTHS
        .get(m.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!("{mon} {d:>2} {hh:02}:{mm:02}:{ss:02}")
}

thread_local! {
    /// Each worker thread's `Date` value and the second it is for.
    static DATE: std::cell::RefCell<(u64, Option<http::HeaderValue>)> =
        const { std::cell::RefCell::new((0, None)) };
}

/// The `Date` header value, formatted at most once a second per worker thread
/// (no lock shared between workers).
pub fn http_date() -> http::HeaderValue {
    let now = wall();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let fresh = || {
        http::HeaderValue::from_str(&httpdate::fmt_http_date(now))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""))
    };
    DATE.with(|d| {
        let Ok(mut g) = d.try_borrow_mut() else {
            return fresh();
        };
        if g.0 != secs || g.1.is_none() {
            *g = (secs, Some(fresh()));
        }
        g.1.clone()
            .unwrap_or_else(|| http::HeaderValue::from_static(""))
    })
}

/// The clocks as a worker last read them (nginx's cached time, which
/// `ngx_time_update` refreshes after each `epoll_wait`).
#[derive(Clone, Copy)]
struct Cached {
    /// Whether this thread's event loop marks the turns ([`turn`]); without, every
    /// read is a fresh one.
    on: bool,
    mono: Option<std::time::Instant>,
    wall: Option<SystemTime>,
    /// Reads of the cached values left before the clocks are read again.
    left: u8,
}

/// Reads of a cached time between two reads of the clock, so a turn of the event
/// loop that never parks (tasks always ready) still moves the time on.
const READS_PER_CLOCK: u8 = 16;

thread_local! {
    static CLOCK: std::cell::Cell<Cached> = const {
        std::cell::Cell::new(Cached { on: false, mono: None, wall: None, left: 0 })
    };
}

/// A new turn of this worker's event loop begins (its runtime's `on_thread_unpark`):
/// the next [`now`] or [`wall`] reads the clock. It also turns the cache on for the
/// thread.
pub fn turn() {
    CLOCK.with(|c| {
        c.set(Cached {
            on: true,
            mono: None,
            wall: None,
            left: 0,
        })
    });
}

/// The monotonic time, read at most once per turn of a worker's event loop (and
/// again after [`READS_PER_CLOCK`] reads): what a request's start, its upstream
/// timings, the keep-alive pool and the timeouts use. A request reads it a dozen
/// times; the clock is read once or twice. Exact where the loop marks no turns.
pub fn now() -> std::time::Instant {
    CLOCK.with(|c| {
        let mut k = c.get();
        match k.mono {
            Some(t) if k.left > 0 => {
                k.left -= 1;
                c.set(k);
                t
            }
            _ => {
                let t = std::time::Instant::now();
                if k.on {
                    k.mono = Some(t);
                    k.left = READS_PER_CLOCK;
                    c.set(k);
                }
                t
            }
        }
    })
}

/// The wall-clock time, cached as [`now`] is (`$time_local`, `Date`, `$msec`).
pub fn wall() -> SystemTime {
    CLOCK.with(|c| {
        let mut k = c.get();
        match k.wall {
            Some(t) if k.left > 0 => {
                k.left -= 1;
                c.set(k);
                t
            }
            _ => {
                let t = SystemTime::now();
                if k.on {
                    k.wall = Some(t);
                    k.left = READS_PER_CLOCK;
                    c.set(k);
                }
                t
            }
        }
    })
}

/// Time since `t`, by [`now`] (zero when `t` is later).
pub fn since(t: std::time::Instant) -> std::time::Duration {
    now().saturating_duration_since(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_079_290); // 2026-12-01T...
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+00:00");
        assert_eq!(
            local_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "29/Feb/2000:00:00:00 +0000"
        );
        assert!(iso8601(t).starts_with("2026-"));
    }
}

/// `fut`'s output if it is ready at its first poll (the poll registers the task's
/// waker as any poll does).
async fn ready_now<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut fut = fut;
    match std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// The deadline of [`timeout`] or [`timeout_at`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// The most timers a worker keeps for reuse.
const KEPT_TIMERS: usize = 256;

type Timer = std::pin::Pin<Box<tokio::time::Sleep>>;

thread_local! {
    /// The worker thread's timers for reuse: `None` on a thread that did not turn
    /// reuse on ([`TimerReuse`]).
    /// Each with its deadline beside it, so choosing one reads this vector only (not
    /// every timer's own allocation).
    static TIMERS: std::cell::RefCell<Option<Vec<(tokio::time::Instant, Timer)>>> = const { std::cell::RefCell::new(None) };
}

/// Timer reuse on this thread for as long as the guard lives, for a worker's runtime
/// (its `block_on` future holds it, so every kept timer belongs to that runtime and is
/// dropped before it).
///
/// Why: a fresh tokio timer is put into the driver's wheel at its first poll and
/// taken out when dropped, under the driver's lock, twice per request (the wait for a
/// keep-alive request, the wait for the upstream's answer). A kept timer stays in the
/// wheel; moving its deadline later is one atomic store (tokio's
/// `extend_expiration`), and the wheel re-files it only when its old deadline comes.
/// When that happens while it is kept, its last task gets one spurious wake.
#[derive(Debug)]
pub struct TimerReuse(());

impl TimerReuse {
    /// Turns reuse on for the current thread.
    pub fn enable() -> Self {
        TIMERS.with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                *t = Some(Vec::new());
            }
        });
        TimerReuse(())
    }
}

#[cfg(test)]
fn kept_timers() -> usize {
    TIMERS.with(|t| t.borrow().as_ref().map_or(0, Vec::len))
}

impl Drop for TimerReuse {
    fn drop(&mut self) {
        let kept = TIMERS.with(|t| t.try_borrow_mut().ok().and_then(|mut t| t.take()));
        drop(kept);
    }
}

/// A kept timer, set to `deadline`, given back when dropped; `None` without reuse.
struct Lease(Option<Timer>);

impl Lease {
    fn take(deadline: tokio::time::Instant) -> Lease {
        let t = TIMERS.with(|t| {
            let mut t = t.try_borrow_mut().ok()?;
            let kept = t.as_mut()?;
            // One due no later than `deadline` moves there without the wheel: of the
            // last few given back, the latest such (the waits of a request differ, 60 s
            // for an upstream's answer, 75 s for a keep-alive request, and the shorter
            // ones stay for the shorter waits). Four: the kinds of wait a request has,
            // twice (a longer look cost ~500 instructions per request). None: a new one.
            let from = kept.len().saturating_sub(4);
            let mut fit: Option<(usize, tokio::time::Instant)> = None;
            for (i, (d, _)) in kept.iter().enumerate().skip(from) {
                if *d <= deadline && fit.is_none_or(|(_, b)| *d > b) {
                    fit = Some((i, *d));
                }
            }
            Some(match fit {
                Some((i, _)) => kept.swap_remove(i).1,
                None => Box::pin(tokio::time::sleep_until(deadline)),
            })
        });
        let mut lease = Lease(t);
        if let Some(t) = lease.0.as_mut() {
            t.as_mut().reset(deadline);
        }
        lease
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(t) = self.0.take() else { return };
        let unkept = TIMERS.with(|kept| match kept.try_borrow_mut() {
            Ok(mut kept) => match kept.as_mut() {
                Some(kept) if kept.len() < KEPT_TIMERS => {
                    kept.push((t.deadline(), t));
                    None
                }
                _ => Some(t),
            },
            Err(_) => Some(t),
        });
        // Not kept (no reuse, or enough kept): dropped here, out of the borrow.
        drop(unkept);
    }
}

/// `fut` until `deadline`, on a kept timer (or tokio's own without reuse).
async fn until<F: std::future::Future>(
    deadline: tokio::time::Instant,
    fut: std::pin::Pin<&mut F>,
) -> Result<F::Output, Elapsed> {
    let mut lease = Lease::take(deadline);
    let Some(timer) = lease.0.as_mut() else {
        return tokio::time::timeout_at(deadline, fut)
            .await
            .map_err(|_| Elapsed);
    };
    let mut fut = fut;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        std::future::Future::poll(timer.as_mut(), cx).map(|()| Err(Elapsed))
    })
    .await
}

/// `tokio::time::timeout`, with the timer armed only when `fut` is not ready at its
/// first poll: most writes, and reads of bytes already received, finish at once, and
/// then no timer is registered, read the clock, or removed. An armed timer is a kept
/// one where the thread keeps them ([`TimerReuse`]).
pub async fn timeout<F: std::future::Future>(
    t: std::time::Duration,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    match ready_now(fut.as_mut()).await {
        Some(v) => Ok(v),
        None => until(tokio::time::Instant::from_std(now()) + t, fut).await,
    }
}

/// [`timeout`] with a deadline (`tokio::time::timeout_at`).
pub async fn timeout_at<F: std::future::Future>(
    deadline: tokio::time::Instant,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    match ready_now(fut.as_mut()).await {
        Some(v) => Ok(v),
        None => until(deadline, fut).await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod clock_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cached_per_turn_and_fresh_without_turns() {
        // Its own thread: a turn turns the cache on for the thread.
        std::thread::spawn(|| {
            let a = now();
            std::thread::sleep(Duration::from_millis(2));
            assert!(
                now() - a >= Duration::from_millis(2),
                "no turns: every read is fresh"
            );
            turn();
            let t = now();
            let w = wall();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(now(), t, "within a turn the time read first is kept");
            assert_eq!(wall(), w);
            assert_eq!(since(t), Duration::ZERO);
            // A turn that never ends still moves on after a few reads.
            let moved = (0..=READS_PER_CLOCK).any(|_| now() > t);
            assert!(
                moved,
                "the clock is read again after {READS_PER_CLOCK} reads"
            );
            let before = now();
            std::thread::sleep(Duration::from_millis(2));
            turn();
            assert!(
                now() - before >= Duration::from_millis(2),
                "a new turn reads the clock"
            );
            assert!(wall() > w);
        })
        .join()
        .unwrap();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod timeout_tests {
    use std::time::Duration;

    #[tokio::test]
    async fn ready_at_once_or_timed_out() {
        assert_eq!(
            super::timeout(Duration::from_secs(1), async { 7 })
                .await
                .ok(),
            Some(7)
        );
        let never = std::future::pending::<()>();
        assert!(super::timeout(Duration::from_millis(20), never)
            .await
            .is_err());
        let later = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            3
        };
        assert_eq!(
            super::timeout(Duration::from_secs(10), later).await.ok(),
            Some(3)
        );
        let deadline = tokio::time::Instant::now() + Duration::from_millis(5);
        assert!(super::timeout_at(deadline, std::future::pending::<()>())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn kept_timers_fire_at_their_new_deadline_and_are_reused() {
        let reuse = super::TimerReuse::enable();
        let short = || tokio::time::sleep(Duration::from_millis(1));
        assert!(super::timeout(Duration::from_secs(60), short())
            .await
            .is_ok());
        assert_eq!(super::kept_timers(), 1);
        // A shorter wait after a longer one still ends on its own deadline.
        let t0 = tokio::time::Instant::now();
        assert!(
            super::timeout(Duration::from_millis(20), std::future::pending::<()>())
                .await
                .is_err()
        );
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(20) && waited < Duration::from_secs(1));
        // Alternating waits (an upstream's answer, a keep-alive request) reuse the
        // kept timers instead of making new ones.
        for _ in 0..20 {
            assert!(super::timeout(Duration::from_secs(60), short())
                .await
                .is_ok());
            assert!(super::timeout(Duration::from_secs(75), short())
                .await
                .is_ok());
        }
        assert!(super::kept_timers() <= 3, "{}", super::kept_timers());
        drop(reuse);
        assert_eq!(super::kept_timers(), 0);
        // Without reuse, tokio's own timer.
        assert!(
            super::timeout(Duration::from_millis(5), std::future::pending::<()>())
                .await
                .is_err()
        );
        assert_eq!(super::kept_timers(), 0);
    }
}
