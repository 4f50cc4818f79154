//! gzip output over a raw deflate stream whose state is reused: a deflate state is
//! ~300 KB (window, hash chains, pending buffer), and allocating and zeroing one per
//! response costs more than compressing a small one, so each worker thread keeps the
//! states of finished responses ([`POOL`], per level) and resets one for the next
//! response — what nginx gets from its preallocated pool memory. The gzip framing is
//! nginx's: a 10-byte header (no name, no time, OS 3), the deflate data, CRC-32 and the
//! length.

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::cell::RefCell;

/// Deflate states kept per worker thread.
const POOL_MAX: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<(u32, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// nginx's gzip header.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// One response's gzip encoder. Its deflate state is taken when the first input comes
/// (so a response waiting for its upstream holds none) and given back at the end.
pub(crate) struct PooledGzip {
    z: Option<Compress>,
    /// Finished (or dropped): no state is taken again.
    released: bool,
    level: u32,
    crc: Crc,
    out: Vec<u8>,
}

impl std::fmt::Debug for PooledGzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledGzip")
            .field("level", &self.level)
            .finish()
    }
}

impl PooledGzip {
    /// An encoder at `level`; its state comes from this thread's pool when one is there.
    pub(crate) fn new(level: u32) -> PooledGzip {
        let mut out = Vec::with_capacity(16 * 1024);
        out.extend_from_slice(&HEADER);
        PooledGzip {
            z: None,
            released: false,
            level,
            crc: Crc::new(),
            out,
        }
    }

    /// A state at `level`: the one this thread used last, or a new one.
    fn state(level: u32) -> Compress {
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().rposition(|(l, _)| *l == level)?;
            Some(p.swap_remove(i).1)
        })
        .unwrap_or_else(|| Compress::new(Compression::new(level), false))
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> std::io::Result<()> {
        if self.released {
            return Ok(());
        }
        let level = self.level;
        let z = self.z.get_or_insert_with(|| Self::state(level));
        loop {
            if self.out.capacity() - self.out.len() < 8 * 1024 {
                self.out.reserve(32 * 1024);
            }
            let before = z.total_in();
            let status = z
                .compress_vec(input, &mut self.out, flush)
                .map_err(std::io::Error::other)?;
            let used = usize::try_from(z.total_in() - before).unwrap_or(input.len());
            input = input.get(used..).unwrap_or(&[]);
            let room = self.out.capacity() - self.out.len();
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                // A flush is complete when the output did not fill the room given.
                _ => input.is_empty() && room > 0,
            };
            if done {
                return Ok(());
            }
        }
    }

    /// Compresses `data`.
    pub(crate) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.crc.update(data);
        self.run(data, FlushCompress::None)
    }

    /// `Z_SYNC_FLUSH`.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.run(&[], FlushCompress::Sync)
    }

    /// Ends the stream (and returns the state to the pool).
    pub(crate) fn finish(&mut self) -> std::io::Result<Bytes> {
        self.run(&[], FlushCompress::Finish)?;
        self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
        self.out.extend_from_slice(&self.crc.amount().to_le_bytes());
        self.release();
        Ok(self.take())
    }

    /// Output bytes not taken yet.
    pub(crate) fn pending(&self) -> usize {
        self.out.len()
    }

    /// What the encoder gave out so far.
    pub(crate) fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.out))
    }

    fn release(&mut self) {
        self.released = true;
        if let Some(mut z) = self.z.take() {
            z.reset();
            let level = self.level;
            POOL.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push((level, z));
                }
            });
        }
    }
}

impl Drop for PooledGzip {
    fn drop(&mut self) {
        // A response cut short: its state is reset before reuse.
        self.release();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_with_flushes_and_reuse() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect();
        for _ in 0..3 {
            let mut e = PooledGzip::new(1);
            let mut all = Vec::new();
            for (i, c) in data.chunks(7000).enumerate() {
                e.write(c).unwrap();
                if i % 5 == 0 {
                    e.flush().unwrap();
                }
                all.extend_from_slice(&e.take());
            }
            all.extend_from_slice(&e.finish().unwrap());
            assert_eq!(gunzip(&all), data);
        }
        let mut e = PooledGzip::new(6);
        let mut all = e.take().to_vec();
        all.extend_from_slice(&e.finish().unwrap());
        assert_eq!(gunzip(&all), b"");
    }
}
