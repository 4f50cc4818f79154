//! The WebSocket (any `Upgrade`) tunnel: once the upstream answered `101
//! Switching Protocols` and the client connection was handed over, bytes are
//! copied both ways until one side closes or nothing moved for the idle timeout
//! (`proxy_read_timeout`, as nginx applies it to upgraded connections).

use junction_core::client::OnUpgrade;
use junction_core::exchange::Upgraded;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 16 * 1024;

pub(crate) async fn run(client: OnUpgrade, upstream: Upgraded, idle: Duration) {
    let Ok(client) = client.await else {
        tracing::debug!("client upgrade failed: the connection ended before the 101");
        return;
    };
    let Upgraded {
        mut stream,
        leftover,
        ..
    } = upstream;
    // `upstream` is destructured: its connection slot stays held by this scope.
    let mut io = client.io;
    if !leftover.is_empty() && (io.write_all(&leftover).await.is_err() || io.flush().await.is_err())
    {
        return;
    }
    if !client.leftover.is_empty()
        && (stream.write_all(&client.leftover).await.is_err() || stream.flush().await.is_err())
    {
        return;
    }
    copy_both(io, stream, idle).await;
}

async fn copy_both<A, B>(mut a: A, mut b: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut ab = vec![0u8; CHUNK];
    let mut ba = vec![0u8; CHUNK];
    let sleep = tokio::time::sleep(idle);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            r = a.read(&mut ab) => {
                let Ok(n) = r else { break };
                // A TLS side buffers what it could not write yet: flush each piece.
                if n == 0
                    || b.write_all(ab.get(..n).unwrap_or(&[])).await.is_err()
                    || b.flush().await.is_err()
                {
                    break;
                }
            }
            r = b.read(&mut ba) => {
                let Ok(n) = r else { break };
                if n == 0
                    || a.write_all(ba.get(..n).unwrap_or(&[])).await.is_err()
                    || a.flush().await.is_err()
                {
                    break;
                }
            }
            _ = &mut sleep => {
                tracing::info!("upgraded connection idle for {idle:?}, closed");
                break;
            }
        }
        sleep.as_mut().reset(tokio::time::Instant::now() + idle);
    }
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
}
