//! nginx answers malformed requests (400, 414, 431 …) with its small HTML error
//! page and `Server` header. hyper, which parses the request head, answers those
//! itself with an empty body before any handler runs. This I/O wrapper recognises
//! such a response — Junction's own responses always carry `Server:`, hyper's
//! never do — and writes Junction's error page in its place.

use bytes::Bytes;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pin_project_lite::pin_project! {
    /// Wraps a client connection.
    pub(crate) struct ErrorPageIo<S> {
        #[pin]
        inner: S,
        tokens: bool,
        pending: Option<(Bytes, usize, usize)>,
    }
}

impl<S> ErrorPageIo<S> {
    pub(crate) fn new(inner: S, tokens: bool) -> Self {
        ErrorPageIo {
            inner,
            tokens,
            pending: None,
        }
    }
}

/// If `buf` is a whole response head written by hyper itself, the replacement.
fn replacement(buf: &[u8], tokens: bool) -> Option<Bytes> {
    // Fast exit for every ordinary response: only 4xx/5xx heads are looked at.
    if !matches!(buf.get(9), Some(b'4' | b'5')) || !buf.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf.get(..end)?;
    if head
        .windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"\r\nserver:"))
    {
        return None;
    }
    let code: u16 = std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()?;
    if code < 400 {
        return None;
    }
    let status = http::StatusCode::from_u16(code).ok()?;
    let body = crate::serve::error_page_body(status, tokens);
    let server = crate::serve::signature(tokens);
    let date = junction_core::time::http_date();
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\nServer: {server}\r\nDate: {}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            code,
            status.canonical_reason().unwrap_or(""),
            date.to_str().unwrap_or(""),
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Some(Bytes::from(out))
}

impl<S: AsyncWrite> ErrorPageIo<S> {
    fn drain(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut this = self.project();
        while let Some((bytes, off, claimed)) = this.pending.as_mut() {
            let rest = bytes.get(*off..).unwrap_or(&[]);
            if rest.is_empty() {
                let n = *claimed;
                *this.pending = None;
                return Poll::Ready(Ok(n));
            }
            match this.inner.as_mut().poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *off += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead> AsyncRead for ErrorPageIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: AsyncWrite> AsyncWrite for ErrorPageIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            match replacement(buf, self.tokens) {
                Some(r) => *self.as_mut().project().pending = Some((r, 0, buf.len())),
                None => return self.project().inner.poll_write(cx, buf),
            }
        }
        self.drain(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.pending.is_none() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            match replacement(first, self.tokens) {
                Some(r) => {
                    let total = bufs.iter().map(|b| b.len()).sum();
                    *self.as_mut().project().pending = Some((r, 0, total));
                }
                None => return self.project().inner.poll_write_vectored(cx, bufs),
            }
        }
        self.drain(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_hypers_own_errors() {
        let hyper400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\nDate: x\r\n\r\n";
        let r = replacement(hyper400, false).unwrap();
        let s = String::from_utf8_lossy(&r);
        assert!(s.starts_with("HTTP/1.1 400 Bad Request\r\nServer: junction\r\n"));
        assert!(s.contains("<center>junction</center>"));
        let ours = b"HTTP/1.1 404 Not Found\r\nServer: junction\r\n\r\n";
        assert!(replacement(ours, true).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\n\r\n", true).is_none());
        assert!(replacement(b"hello", true).is_none());
    }
}
