//! Bodies: the client's request body (limits, timeouts, buffering to memory then a
//! temp file, replayable for retries) and the response [`Body`] type.

use crate::error::{Error, ErrorKind};
use bytes::Bytes;

use http_body_util::BodyExt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

/// The response body type every backend returns.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A response extension: the body is relayed unbuffered, so its head goes out at
/// once rather than with the first body bytes (nginx's write filter holds a head
/// under `postpone_output` until body data or a flush follows; an unbuffered relay
/// flushes).
#[derive(Debug, Clone, Copy)]
pub struct Unbuffered;

/// An empty body.
pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of one piece.
pub fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The upstream body of `attempt`, watched as it is relayed for the end of
/// `$upstream_response_time` (`started`: when the attempt began), into `stats` (whose
/// byte counts the relay task adds), made only when some template reads them.
pub fn counted(
    body: Body,
    attempt: Option<&mut crate::ctx::Attempt>,
    started: std::time::Instant,
    stats: Option<std::sync::Arc<crate::ctx::BodyStats>>,
) -> Body {
    let (Some(attempt), Some(stats)) = (attempt, stats) else {
        return body;
    };
    attempt.body = Some(stats.clone());
    Counted {
        inner: body,
        stats,
        started,
    }
    .boxed_unsync()
}

struct Counted {
    inner: Body,
    stats: std::sync::Arc<crate::ctx::BodyStats>,
    started: std::time::Instant,
}

impl Counted {
    fn ended(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = u64::try_from(crate::time::since(self.started).as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .stats
            .end_us
            .compare_exchange(0, us.max(1), Relaxed, Relaxed);
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(Some(Ok(_))) => {
                if self.inner.is_end_stream() {
                    self.ended();
                }
            }
            std::task::Poll::Ready(_) => self.ended(),
            std::task::Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// An unlinked temp file in `dir`, creating the directory when missing (as nginx
/// creates its `*_temp_path` directories).
pub fn temp_file(dir: &Path) -> std::io::Result<std::fs::File> {
    match tempfile::tempfile_in(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempfile_in(dir)
        }
        r => r,
    }
}

/// The client's request body as it arrives, with `client_max_body_size` and
/// `client_body_timeout` applied.
#[derive(Debug)]
pub struct IncomingBody {
    inner: crate::client::BodyReceiver,
    /// Content-Length, if the client sent one (else chunked).
    pub length: Option<u64>,
    limit: u64,
    timeout: Duration,
    read: u64,
}

impl IncomingBody {
    /// A body the client connection feeds through the returned sender.
    pub fn channel(length: Option<u64>, timeout: Duration) -> (Self, crate::client::BodySender) {
        let (tx, inner) = crate::client::body_channel();
        let body = IncomingBody {
            inner,
            length,
            limit: 0,
            timeout,
            read: 0,
        };
        (body, tx)
    }

    /// The same body with the location's `client_max_body_size` and `client_body_timeout`.
    pub fn with_limits(mut self, limit: u64, timeout: Duration) -> Self {
        self.limit = limit;
        self.timeout = timeout;
        self
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let data = match tokio::time::timeout(self.timeout, self.inner.recv()).await {
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::ClientTimeout,
                        "client timed out while reading client request body",
                    ))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(e),
                Ok(Some(Ok(d))) => d,
            };
            {
                self.read += data.len() as u64;
                if self.limit != 0 && self.read > self.limit {
                    return Err(Error::new(
                        ErrorKind::BodyTooLarge,
                        format!(
                            "client intended to send too large chunked body: {} bytes",
                            self.read
                        ),
                    ));
                }
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// A request body read completely: in memory up to `client_body_buffer_size`, the
/// rest in an unlinked temp file. Can be sent several times (retries).
#[derive(Debug, Default)]
pub struct Buffered {
    mem: Vec<Bytes>,
    file: Option<std::fs::File>,
    len: u64,
}

impl From<Bytes> for Buffered {
    /// A body held in memory whole.
    fn from(b: Bytes) -> Self {
        let len = b.len() as u64;
        Buffered {
            mem: vec![b],
            file: None,
            len,
        }
    }
}

impl Buffered {
    /// A body of one piece in memory (`proxy_set_body`).
    pub fn from_bytes(b: Bytes) -> Buffered {
        Buffered {
            len: b.len() as u64,
            mem: if b.is_empty() { Vec::new() } else { vec![b] },
            file: None,
        }
    }

    /// A body of `len` bytes all in `file` (`client_body_in_file_only`).
    pub(crate) fn from_file(file: std::fs::File, len: u64) -> Buffered {
        Buffered {
            mem: Vec::new(),
            file: Some(file),
            len,
        }
    }

    /// Total length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole body when it is all in memory (`$request_body`); `None` when part of
    /// it went to the temp file.
    pub fn in_memory(&self) -> Option<Bytes> {
        if self.file.is_some() {
            return None;
        }
        match self.mem.as_slice() {
            [] => Some(Bytes::new()),
            [one] => Some(one.clone()),
            many => Some(Bytes::from(many.concat())),
        }
    }

    /// Calls `f` with each chunk in order (memory first, then the file in 64 KiB reads).
    pub fn for_each_chunk(&self, mut f: impl FnMut(Bytes)) -> Result<(), Error> {
        for chunk in self.chunks()? {
            f(chunk?);
        }
        Ok(())
    }

    /// The chunks in order, read as they are asked for (memory first, then the file in
    /// 64 KiB reads): sending a large body never holds more than one read of it.
    pub fn chunks(&self) -> Result<Chunks<'_>, Error> {
        let file = match &self.file {
            None => None,
            Some(file) => {
                let mut file = file
                    .try_clone()
                    .map_err(|e| Error::internal(format!("temp file: {e}")))?;
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::internal(format!("temp file: {e}")))?;
                Some(file)
            }
        };
        Ok(Chunks {
            mem: self.mem.iter(),
            file,
        })
    }
}

/// The chunks of a [`Buffered`] body, from [`Buffered::chunks`].
#[derive(Debug)]
pub struct Chunks<'a> {
    mem: std::slice::Iter<'a, Bytes>,
    file: Option<std::fs::File>,
}

impl Iterator for Chunks<'_> {
    type Item = Result<Bytes, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(b) = self.mem.next() {
            return Some(Ok(b.clone()));
        }
        let file = self.file.as_mut()?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf) {
            Ok(0) => {
                self.file = None;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Bytes::from(buf)))
            }
            Err(e) => {
                self.file = None;
                Some(Err(Error::internal(format!("temp file read: {e}"))))
            }
        }
    }
}

/// The request body handed to a backend.
#[derive(Debug)]
pub enum ReqBody {
    /// No body.
    Empty,
    /// Streaming from the client.
    Incoming(IncomingBody),
    /// Read completely.
    Buffered(Buffered),
}

impl ReqBody {
    /// The length if known before sending.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            ReqBody::Empty => Some(0),
            ReqBody::Incoming(b) => b.length,
            ReqBody::Buffered(b) => Some(b.len()),
        }
    }

    /// Reads the whole body (memory up to `mem_limit`, then a temp file in `temp_dir`).
    pub async fn buffer(self, mem_limit: usize, temp_dir: &Path) -> Result<ReqBody, Error> {
        let mut inc = match self {
            ReqBody::Incoming(b) => b,
            other => return Ok(other),
        };
        let mut out = Buffered::default();
        let mut mem_len = 0usize;
        while let Some(chunk) = inc.next_chunk().await? {
            out.len += chunk.len() as u64;
            if out.file.is_none() && mem_len + chunk.len() <= mem_limit {
                mem_len += chunk.len();
                out.mem.push(chunk);
                continue;
            }
            if out.file.is_none() {
                let f = temp_file(temp_dir).map_err(|e| {
                    Error::internal(format!(
                        "cannot create temp file in {}: {e}",
                        temp_dir.display()
                    ))
                })?;
                tracing::debug!("a client request body is buffered to a temporary file");
                out.file = Some(f);
            }
            if let Some(f) = out.file.as_mut() {
                f.write_all(&chunk)
                    .map_err(|e| Error::internal(format!("temp file write: {e}")))?;
            }
        }
        Ok(ReqBody::Buffered(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_memory_then_file_in_bounded_reads_and_replay() {
        let tail: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&tail).unwrap();
        let b = Buffered {
            mem: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")],
            file: Some(file),
            len: 4 + tail.len() as u64,
        };
        for _ in 0..2 {
            let chunks: Vec<Bytes> = b.chunks().unwrap().map(Result::unwrap).collect();
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 64 * 1024));
            let all: Vec<u8> = chunks.concat();
            assert_eq!(all.get(..4), Some(&b"abcd"[..]));
            assert_eq!(all.get(4..), Some(&tail[..]));
        }
    }
}
