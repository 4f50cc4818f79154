//! The request body decoder: `Content-Length`, or chunked as
//! `ngx_http_parse_chunked` reads it (hex size, extensions after `;`/space/tab
//! skipped, CRLF or a bare LF, trailers read and dropped; anything else is an
//! invalid body).

use bytes::{Bytes, BytesMut};

/// The largest chunk size accepted (nginx: what fits `off_t`).
const MAX_CHUNK: u64 = (i64::MAX as u64) / 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before the first hex digit of a size.
    Start,
    /// In the size.
    Size,
    /// In an extension.
    Ext,
    /// After the size line's CR.
    SizeLf,
    /// In the data.
    Data,
    /// After the data: CR or LF.
    AfterData,
    /// After the data's CR.
    AfterDataLf,
    /// After the last chunk's size line: a trailer line or the final CRLF.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// After the final CR.
    LastLf,
}

/// Decodes one request body from the connection's read buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    chunked: bool,
    state: Chunk,
    /// Bytes left of the body (`Content-Length`) or of the current chunk.
    left: u64,
    done: bool,
    /// Whether the last chunk's size was zero (then trailers follow).
    last: bool,
}

impl Decoder {
    pub(crate) fn length(len: u64) -> Decoder {
        Decoder {
            chunked: false,
            state: Chunk::Data,
            left: len,
            done: len == 0,
            last: false,
        }
    }

    pub(crate) fn chunked() -> Decoder {
        Decoder {
            chunked: true,
            state: Chunk::Start,
            left: 0,
            done: false,
            last: false,
        }
    }

    /// The whole body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The next piece of body data from `buf` (`Ok(None)`: more bytes needed, or
    /// done). Framing bytes are consumed as they are seen.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, &'static str> {
        if self.done {
            return Ok(None);
        }
        if !self.chunked {
            if buf.is_empty() {
                return Ok(None);
            }
            let n = (buf.len() as u64).min(self.left) as usize;
            self.left -= n as u64;
            self.done = self.left == 0;
            return Ok(Some(buf.split_to(n).freeze()));
        }
        loop {
            if self.state == Chunk::Data {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = (buf.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                if self.left == 0 {
                    self.state = Chunk::AfterData;
                }
                return Ok(Some(buf.split_to(n).freeze()));
            }
            let Some(&c) = buf.first() else {
                return Ok(None);
            };
            let _ = buf.split_to(1);
            self.state = match (self.state, c) {
                (Chunk::Start, c) if c.is_ascii_hexdigit() => {
                    self.left = hex(c);
                    Chunk::Size
                }
                (Chunk::Size, c) if c.is_ascii_hexdigit() => {
                    if self.left > MAX_CHUNK {
                        return Err("client sent invalid chunked body");
                    }
                    self.left = self.left * 16 + hex(c);
                    Chunk::Size
                }
                (Chunk::Size, b';' | b' ' | b'\t') => Chunk::Ext,
                (Chunk::Size | Chunk::Ext, b'\r') => Chunk::SizeLf,
                (Chunk::Size | Chunk::Ext | Chunk::SizeLf, b'\n') => self.after_size(),
                (Chunk::Ext, _) => Chunk::Ext,
                (Chunk::AfterData, b'\r') => Chunk::AfterDataLf,
                (Chunk::AfterData | Chunk::AfterDataLf, b'\n') => Chunk::Start,
                (Chunk::TrailerStart, b'\r') => Chunk::LastLf,
                (Chunk::TrailerStart | Chunk::LastLf, b'\n') => {
                    self.done = true;
                    return Ok(None);
                }
                (Chunk::TrailerStart, _) => Chunk::Trailer,
                (Chunk::Trailer, b'\n') => Chunk::TrailerStart,
                (Chunk::Trailer, _) => Chunk::Trailer,
                _ => return Err("client sent invalid chunked body"),
            };
        }
    }

    fn after_size(&mut self) -> Chunk {
        if self.left == 0 {
            self.last = true;
            Chunk::TrailerStart
        } else {
            Chunk::Data
        }
    }
}

fn hex(c: u8) -> u64 {
    match c {
        b'0'..=b'9' => u64::from(c - b'0'),
        b'a'..=b'f' => u64::from(c - b'a' + 10),
        b'A'..=b'F' => u64::from(c - b'A' + 10),
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn all(d: &mut Decoder, input: &[u8], split: usize) -> Result<Vec<u8>, &'static str> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(b) = d.decode(&mut buf)? {
                out.extend_from_slice(&b);
            }
        }
        Ok(out)
    }

    #[test]
    fn chunked_at_every_split_with_extensions_trailers_and_bare_lf() {
        let input = b"4;ext=1\r\nWiki\r\n5 \r\npedia\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..input.len() {
            let mut d = Decoder::chunked();
            let out = all(&mut d, input, split).unwrap();
            assert_eq!(out, b"Wikipedia", "split {split}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn chunked_leaves_the_pipelined_request() {
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nGET /"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), "a");
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert!(d.is_done());
        assert_eq!(&buf[..], b"GET /");
    }

    #[test]
    fn invalid_chunks_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"-1\r\n",
            b"1\r\naXX",
            b"fffffffffffffffffff\r\n",
        ] {
            let mut d = Decoder::chunked();
            assert!(all(&mut d, bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn length_stops_at_the_length() {
        let mut d = Decoder::length(3);
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap(), "abc");
        assert!(d.is_done());
        assert_eq!(&buf[..], b"def");
    }
}
