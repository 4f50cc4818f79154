//! Response buffering, one implementation for every protocol (`proxy_buffering`,
//! `fastcgi_buffering`, …).
//!
//! A [`Spool`] sits between the task reading the upstream and the client's body:
//! the reader side pushes chunks, which stay in memory up to the configured
//! buffers (`*_buffers N SIZE`) and go to an unlinked temp file beyond that (up to
//! `*_max_temp_file_size`). When neither has room, the upstream read waits
//! (backpressure). With buffering off the memory limit is `*_buffer_size` and there
//! is no file, so each chunk is forwarded as soon as it is read. The upstream
//! connection is released as soon as the whole response is spooled, even if the
//! client is still slow.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// How a response body is buffered.
#[derive(Debug, Clone)]
pub struct BufferPolicy {
    /// `*_buffering`.
    pub buffering: bool,
    /// `*_buffer_size`: the header must fit; the unbuffered window.
    pub buffer_size: usize,
    /// `*_buffers N SIZE`: memory for the body.
    pub buffers: (usize, usize),
    /// `*_busy_buffers_size` (accepted; the spool sends as soon as the client can take data).
    pub busy_buffers_size: usize,
    /// `*_max_temp_file_size` (0 = never spill).
    pub max_temp_file_size: u64,
    /// `*_temp_path`.
    pub temp_path: PathBuf,
}

impl Default for BufferPolicy {
    fn default() -> Self {
        BufferPolicy {
            buffering: true,
            buffer_size: 4096,
            buffers: (8, 4096),
            busy_buffers_size: 8192,
            max_temp_file_size: 1024 * 1024 * 1024,
            temp_path: std::env::temp_dir(),
        }
    }
}

struct State {
    mem: VecDeque<Bytes>,
    mem_bytes: usize,
    file: Option<std::fs::File>,
    file_written: u64,
    file_read: u64,
    finished: Option<Result<(), String>>,
    /// The upstream's trailer fields (`proxy_pass_trailers`), the last frame.
    trailers: Option<http::HeaderMap>,
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Waits for the client side to go away (the upstream reader, while it is silent).
    gone: Option<Waker>,
}

/// The shared spool.
pub(crate) struct Spool {
    st: Mutex<State>,
    mem_limit: usize,
    file_limit: u64,
    temp_path: PathBuf,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

const FILE_READ_CHUNK: usize = 64 * 1024;

impl Spool {
    pub(crate) fn new(policy: &BufferPolicy, buffered: bool) -> Arc<Spool> {
        let (mem_limit, file_limit) = if buffered {
            (
                policy
                    .buffers
                    .0
                    .saturating_mul(policy.buffers.1)
                    .max(policy.buffer_size),
                policy.max_temp_file_size,
            )
        } else {
            (policy.buffer_size.max(1), 0)
        };
        Arc::new(Spool {
            st: Mutex::new(State {
                mem: VecDeque::new(),
                mem_bytes: 0,
                file: None,
                file_written: 0,
                file_read: 0,
                finished: None,
                trailers: None,
                reader_gone: false,
                reader: None,
                writer: None,
                gone: None,
            }),
            mem_limit,
            file_limit,
            temp_path: policy.temp_path.clone(),
        })
    }

    /// Pushes a chunk, waiting while there is no room. `Err` when the client went away.
    pub(crate) async fn push(&self, chunk: Bytes) -> io::Result<()> {
        // Memory full: first let the client side run once (as nginx writes to the
        // client before it reads more); spill to the temp file only if a fast client
        // did not make room meanwhile.
        if std::future::poll_fn(|cx| self.poll_push(cx, &chunk, false)).await? {
            return Ok(());
        }
        tokio::task::yield_now().await;
        std::future::poll_fn(|cx| self.poll_push(cx, &chunk, true))
            .await
            .map(|_| ())
    }

    /// `Ready(Ok(false))`: memory is full and `may_spill` is false.
    fn poll_push(
        &self,
        cx: &mut Context<'_>,
        chunk: &Bytes,
        may_spill: bool,
    ) -> Poll<io::Result<bool>> {
        let mut st = lock(&self.st);
        if st.reader_gone {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client closed",
            )));
        }
        let len = chunk.len();
        let file_pending = st.file_written > st.file_read;
        if !file_pending && (st.mem_bytes == 0 || st.mem_bytes + len <= self.mem_limit) {
            st.mem_bytes += len;
            st.mem.push_back(chunk.clone());
        } else if !may_spill {
            return Poll::Ready(Ok(false));
        } else if self.file_limit > 0
            && st.file_written - st.file_read + len as u64 <= self.file_limit
        {
            if st.file.is_none() {
                let f = crate::body::temp_file(&self.temp_path)?;
                tracing::warn!(
                    "an upstream response is buffered to a temporary file in {}",
                    self.temp_path.display()
                );
                st.file = Some(f);
            }
            let off = st.file_written;
            if let Some(f) = st.file.as_ref() {
                f.write_all_at(chunk, off)?;
            }
            st.file_written += len as u64;
        } else {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(w) = st.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(true))
    }

    /// Resolves when the client side (the [`SpoolBody`]) was dropped: the client went
    /// away, so the upstream connection can be given up even while the upstream is silent.
    pub(crate) async fn reader_closed(&self) {
        std::future::poll_fn(|cx| {
            let mut st = lock(&self.st);
            if st.reader_gone {
                Poll::Ready(())
            } else {
                st.gone = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// The trailer fields to send after the body (before [`Spool::finish`]).
    pub(crate) fn set_trailers(&self, t: http::HeaderMap) {
        lock(&self.st).trailers = Some(t);
    }

    /// Marks the end (Ok) or a failure of the upstream side.
    pub(crate) fn finish(&self, r: Result<(), String>) {
        let mut st = lock(&self.st);
        st.finished = Some(r);
        if let Some(w) = st.reader.take() {
            w.wake();
        }
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<http_body::Frame<Bytes>>>> {
        let mut st = lock(&self.st);
        let out = if let Some(b) = st.mem.pop_front() {
            st.mem_bytes -= b.len();
            Some(Ok(http_body::Frame::data(b)))
        } else if st.file_written > st.file_read {
            let n = ((st.file_written - st.file_read) as usize).min(FILE_READ_CHUNK);
            let mut buf = vec![0u8; n];
            let r = match st.file.as_ref() {
                Some(f) => f.read_exact_at(&mut buf, st.file_read),
                None => Err(io::Error::other("temp file missing")),
            };
            match r {
                Ok(()) => {
                    st.file_read += n as u64;
                    if st.file_read == st.file_written {
                        st.file_read = 0;
                        st.file_written = 0;
                    }
                    Some(Ok(http_body::Frame::data(Bytes::from(buf))))
                }
                Err(e) => Some(Err(e)),
            }
        } else {
            match &st.finished {
                Some(Ok(())) => {
                    return Poll::Ready(
                        st.trailers
                            .take()
                            .map(|t| Ok(http_body::Frame::trailers(t))),
                    )
                }
                Some(Err(m)) => return Poll::Ready(Some(Err(io::Error::other(m.clone())))),
                None => {
                    st.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        if let Some(w) = st.writer.take() {
            w.wake();
        }
        Poll::Ready(out)
    }
}

/// The client-side body reading from a spool.
pub(crate) struct SpoolBody {
    pub(crate) spool: Arc<Spool>,
}

impl Drop for SpoolBody {
    fn drop(&mut self) {
        let mut st = lock(&self.spool.st);
        st.reader_gone = true;
        if let Some(w) = st.writer.take() {
            w.wake();
        }
        if let Some(w) = st.gone.take() {
            w.wake();
        }
    }
}

impl http_body::Body for SpoolBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<http_body::Frame<Bytes>>>> {
        self.spool.poll_next(cx)
    }
}

/// A body already read whole that ends with trailer fields: its size is not
/// announced, so the client side sends it chunked, where trailers can follow.
pub(crate) struct WithTrailers {
    pub(crate) data: Option<Bytes>,
    pub(crate) trailers: Option<http::HeaderMap>,
}

impl http_body::Body for WithTrailers {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<http_body::Frame<Bytes>>>> {
        if let Some(d) = self.data.take().filter(|d| !d.is_empty()) {
            return Poll::Ready(Some(Ok(http_body::Frame::data(d))));
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|t| Ok(http_body::Frame::trailers(t))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn spills_to_file_and_keeps_order() {
        let policy = BufferPolicy {
            buffers: (2, 1024),
            buffer_size: 1024,
            ..BufferPolicy::default()
        };
        let spool = Spool::new(&policy, true);
        let writer = spool.clone();
        // Write 100 KiB without any reader: must not block (file takes the rest).
        for i in 0..100u32 {
            writer
                .push(Bytes::from(vec![(i % 251) as u8; 1024]))
                .await
                .unwrap();
        }
        writer.finish(Ok(()));
        let body = SpoolBody { spool };
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(all.len(), 100 * 1024);
        for (i, c) in all.chunks(1024).enumerate() {
            assert!(c.iter().all(|b| *b == (i % 251) as u8));
        }
    }

    #[tokio::test]
    async fn unbuffered_applies_backpressure() {
        let policy = BufferPolicy {
            buffer_size: 10,
            ..BufferPolicy::default()
        };
        let spool = Spool::new(&policy, false);
        spool.push(Bytes::from_static(b"0123456789")).await.unwrap();
        let blocked = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            spool.push(Bytes::from_static(b"x")),
        )
        .await;
        assert!(blocked.is_err(), "second push must wait for the reader");
    }
}
