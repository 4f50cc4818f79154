//! What the client connection (the server's own HTTP/1 layer) hands to the request:
//! the body as it is read ([`BodySender`] feeds [`crate::body::IncomingBody`]) and,
//! for `Upgrade` requests, the raw connection once a `101` has been written.
//!
//! The body is read on demand: the connection reads (and sends `100 Continue`)
//! only when the request side asks for the next chunk, as nginx reads a body only
//! when a handler wants it.

use crate::error::Error;
use bytes::Bytes;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Notify};

/// A client socket of any kind (TCP, unix).
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientIo for T {}

/// The client connection after `101 Switching Protocols`.
pub struct ClientUpgraded {
    /// The socket.
    pub io: Box<dyn ClientIo>,
    /// Bytes the client sent after its request head, already read.
    pub leftover: Bytes,
}

impl std::fmt::Debug for ClientUpgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientUpgraded")
            .field("leftover", &self.leftover.len())
            .finish()
    }
}

/// Resolves to the raw client connection once the `101` head is written; an error
/// when the response was not a `101` or the connection ended first.
pub type OnUpgrade = oneshot::Receiver<ClientUpgraded>;

/// The connection's end of a request body: waits for demand, sends chunks.
#[derive(Debug)]
pub struct BodySender {
    pub(crate) tx: mpsc::Sender<Result<Bytes, Error>>,
    pub(crate) want: Arc<Notify>,
}

impl BodySender {
    /// Resolves when the request side asks for the next chunk.
    pub async fn wanted(&self) {
        self.want.notified().await;
    }

    /// Sends a chunk (or an error); `false` when the request side is gone.
    pub async fn send(&self, chunk: Result<Bytes, Error>) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Whether the request side dropped its body.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The request side's end, inside [`crate::body::IncomingBody`].
#[derive(Debug)]
pub(crate) struct BodyReceiver {
    pub(crate) rx: mpsc::Receiver<Result<Bytes, Error>>,
    pub(crate) want: Arc<Notify>,
}

impl BodyReceiver {
    /// The next chunk; `None` once the connection sent the whole body.
    pub(crate) async fn recv(&mut self) -> Option<Result<Bytes, Error>> {
        self.want.notify_one();
        self.rx.recv().await
    }
}

pub(crate) fn body_channel() -> (BodySender, BodyReceiver) {
    let (tx, rx) = mpsc::channel(1);
    let want = Arc::new(Notify::new());
    (
        BodySender {
            tx,
            want: want.clone(),
        },
        BodyReceiver { rx, want },
    )
}
