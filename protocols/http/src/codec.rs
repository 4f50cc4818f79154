//! HTTP/1.x client framing: the request head is written by the backend; this
//! codec frames the request body (chunked when the length is unknown) and decodes
//! the response (status line + headers within `proxy_buffer_size`, then a body
//! delimited by Content-Length, chunked coding, or the connection's close).

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use junction_core::codec::{Decoded, ResponseHead, UpstreamCodec};
use junction_core::{Error, ErrorKind};

const MAX_HEADERS: usize = 128;
/// Longest chunk-size line accepted (hex digits + extensions).
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    Chunk(u64),
    ChunkSize,
    ChunkCrlf,
    Trailers,
    Close,
    Done,
    Finished,
}

/// The HTTP/1.x codec of one exchange.
#[derive(Debug)]
pub struct HttpCodec {
    state: State,
    head_limit: usize,
    head_request: bool,
    chunked_request: bool,
    keepalive: bool,
    /// `proxy_pass_trailers on`: the chunked trailer section is parsed and kept.
    keep_trailers: bool,
    trailers: Option<HeaderMap>,
    /// Bytes of trailer lines so far (capped at the head limit, as nginx's
    /// `proxy_buffer_size` buffer for them).
    trailer_len: usize,
    /// Names not put into the head's map (hidden from the client, and not asked for
    /// by any `$upstream_http_*`): skipped while the head is decoded.
    hide: Option<std::sync::Arc<junction_core::header_set::HeaderSet>>,
}

impl HttpCodec {
    /// `head_request`: the request was HEAD (no response body); `chunked_request`:
    /// the request body is sent with chunked coding.
    pub fn new(head_limit: usize, head_request: bool, chunked_request: bool) -> Self {
        HttpCodec {
            state: State::Head,
            head_limit,
            head_request,
            chunked_request,
            keepalive: true,
            keep_trailers: false,
            trailers: None,
            trailer_len: 0,
            hide: None,
        }
    }

    /// The same codec leaving these names out of the decoded head.
    pub fn hiding(mut self, hide: std::sync::Arc<junction_core::header_set::HeaderSet>) -> Self {
        self.hide = Some(hide);
        self
    }

    /// The same codec keeping the trailer fields of a chunked response
    /// (`proxy_pass_trailers on`), for [`UpstreamCodec::take_trailers`].
    pub fn keeping_trailers(mut self) -> Self {
        self.keep_trailers = true;
        self
    }

    /// One trailer line (without its CRLF) into the kept trailers.
    fn trailer_line(&mut self, line: &[u8]) -> Result<(), Error> {
        self.trailer_len += line.len() + 2;
        if self.trailer_len > self.head_limit {
            return Err(Error::invalid("upstream sent too big trailers"));
        }
        let invalid = || {
            Error::invalid(format!(
                "upstream sent invalid trailer: \"{}\"",
                String::from_utf8_lossy(line)
            ))
        };
        let colon = line.iter().position(|c| *c == b':').ok_or_else(invalid)?;
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or(&[]).trim_ascii();
        let name = HeaderName::from_bytes(name).map_err(|_| invalid())?;
        let value = HeaderValue::from_bytes(value).map_err(|_| invalid())?;
        self.trailers
            .get_or_insert_with(HeaderMap::new)
            .append(name, value);
        Ok(())
    }

    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        // Uninitialised slots: nothing is zeroed for headers the response does not have.
        let mut headers =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut headers,
        );
        let n = match parsed {
            Ok(httparse::Status::Partial) => {
                if buf.len() > self.head_limit {
                    return Err(Error::new(
                        ErrorKind::TooBigHeader,
                        "upstream sent too big header",
                    ));
                }
                return Ok(None);
            }
            Ok(httparse::Status::Complete(n)) => n,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::new(
                    ErrorKind::TooBigHeader,
                    "upstream sent too many headers",
                ))
            }
            Err(e) => return Err(Error::invalid(format!("upstream sent invalid header: {e}"))),
        };
        if n > self.head_limit {
            return Err(Error::new(
                ErrorKind::TooBigHeader,
                "upstream sent too big header",
            ));
        }
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| Error::invalid(format!("upstream sent invalid status \"{code}\"")))?;
        let http10 = resp.version == Some(0);
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut conn_close = http10;
        // Each name (parsed once) with the offset of its value in `buf`: the map is
        // built from slices of the frozen head below, so values are not copied.
        let base = buf.as_ptr() as usize;
        let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 16]> =
            smallvec::SmallVec::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let invalid_name =
                || Error::invalid(format!("upstream sent invalid header name \"{}\"", h.name));
            let name = junction_core::header_set::header_name(h.name.as_bytes())
                .map_err(|_| invalid_name())?;
            if name == http::header::CONTENT_LENGTH {
                let l = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::invalid("upstream sent invalid \"Content-Length\" header")
                    })?;
                if length.is_some_and(|x| x != l) {
                    return Err(Error::invalid(
                        "upstream sent duplicate header line: \"Content-Length\"",
                    ));
                }
                length = Some(l);
            } else if name == http::header::TRANSFER_ENCODING {
                if h.value.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(Error::invalid(
                        "upstream sent unknown \"Transfer-Encoding\"",
                    ));
                }
            } else if name == http::header::CONNECTION {
                let v = h.value;
                if v.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                    conn_close = true;
                } else if v.windows(10).any(|w| w.eq_ignore_ascii_case(b"keep-alive")) && http10 {
                    conn_close = false;
                }
            }
            // A 101 keeps its Connection and Upgrade for the client (the backend
            // filters that head itself).
            if code != 101 && self.hide.as_ref().is_some_and(|s| s.contains(&name)) {
                continue;
            }
            spans.push((
                name,
                (h.value.as_ptr() as usize).wrapping_sub(base),
                h.value.len(),
            ));
        }
        let head = buf.split_to(n).freeze();
        // Room for what the output adds (Server, Date, an add_header) without a regrowth.
        let mut map = HeaderMap::with_capacity(spans.len() + 3);
        // Drained in place: the on-stack list is not moved into an iterator.
        for (name, vo, vl) in spans.drain(..) {
            if vo.saturating_add(vl) > head.len() {
                return Err(Error::invalid("upstream sent invalid header"));
            }
            let value = HeaderValue::from_maybe_shared(head.slice(vo..vo + vl)).map_err(|_| {
                Error::invalid(format!("upstream sent invalid header value for \"{name}\""))
            })?;
            map.append(name, value);
        }
        if code < 200 && code != 101 {
            // Interim responses (100 Continue) are skipped.
            return self.decode_head(buf);
        }
        self.keepalive = !conn_close;
        let no_body = self.head_request || code == 204 || code == 304;
        self.state = if no_body {
            State::Done
        } else if chunked {
            map.remove(http::header::CONTENT_LENGTH);
            State::ChunkSize
        } else if let Some(l) = length {
            State::Length(l)
        } else {
            self.keepalive = false;
            State::Close
        };
        Ok(Some(Decoded::Head(ResponseHead {
            status,
            headers: map,
        })))
    }

    fn find_crlf(buf: &[u8]) -> Option<usize> {
        buf.windows(2).position(|w| w == b"\r\n")
    }
}

impl UpstreamCodec for HttpCodec {
    fn encode_body(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        if chunk.is_empty() {
            return;
        }
        if self.chunked_request {
            // The size line in hex, formatted on the stack (no `format!` per chunk).
            let mut line = [0u8; 18];
            let mut i = 16;
            let mut n = chunk.len();
            loop {
                i -= 1;
                if let (Some(d), Some(h)) = (line.get_mut(i), b"0123456789abcdef".get(n & 15)) {
                    *d = *h;
                }
                n >>= 4;
                if n == 0 || i == 0 {
                    break;
                }
            }
            line[16] = b'\r';
            line[17] = b'\n';
            out.push(Bytes::copy_from_slice(line.get(i..).unwrap_or(b"0\r\n")));
            out.push(chunk);
            out.push(Bytes::from_static(b"\r\n"));
        } else {
            out.push(chunk);
        }
    }

    fn encode_end(&mut self, out: &mut Vec<Bytes>) {
        if self.chunked_request {
            out.push(Bytes::from_static(b"0\r\n\r\n"));
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        loop {
            match self.state {
                State::Head => return self.decode_head(buf),
                State::Done => {
                    self.state = State::Finished;
                    return Ok(Some(Decoded::End {
                        reusable: self.keepalive,
                    }));
                }
                State::Finished => return Ok(None),
                State::Length(0) => {
                    self.state = State::Done;
                }
                State::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    self.state = State::Length(left - take as u64);
                    return Ok(Some(Decoded::Data(buf.split_to(take).freeze())));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Decoded::Data(buf.split().freeze())));
                }
                State::ChunkSize => {
                    let Some(i) = Self::find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(Error::invalid("upstream sent invalid chunked response"));
                        }
                        return Ok(None);
                    };
                    let line = buf.split_to(i + 2);
                    let hex = line.get(..i).unwrap_or(&[]);
                    let hex = hex.split(|c| *c == b';').next().unwrap_or(&[]);
                    let s = std::str::from_utf8(hex).map(str::trim).unwrap_or("");
                    let size = u64::from_str_radix(s, 16)
                        .ok()
                        .filter(|_| !s.is_empty() && s.len() <= 16)
                        .ok_or_else(|| Error::invalid("upstream sent invalid chunked response"))?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Chunk(size)
                    };
                }
                State::Chunk(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    self.state = if take as u64 == left {
                        State::ChunkCrlf
                    } else {
                        State::Chunk(left - take as u64)
                    };
                    return Ok(Some(Decoded::Data(buf.split_to(take).freeze())));
                }
                State::ChunkCrlf => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if buf.get(..2) != Some(b"\r\n") {
                        return Err(Error::invalid("upstream sent invalid chunked response"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(i) = Self::find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(Error::invalid("upstream sent invalid chunked response"));
                        }
                        return Ok(None);
                    };
                    let line = buf.split_to(i + 2);
                    if i == 0 {
                        self.state = State::Done;
                    } else if self.keep_trailers {
                        self.trailer_line(line.get(..i).unwrap_or(&[]))?;
                    }
                }
            }
        }
    }

    fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take()
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if let Some(ev) = self.decode(buf)? {
            return Ok(Some(ev));
        }
        match self.state {
            State::Close => {
                self.state = State::Done;
                self.keepalive = false;
                self.decode(buf)
            }
            State::Finished | State::Done => Ok(None),
            State::Head => Err(Error::new(
                ErrorKind::UpstreamClosed,
                "upstream prematurely closed connection while reading response header",
            )),
            _ => Err(Error::new(
                ErrorKind::UpstreamClosed,
                "upstream prematurely closed connection while reading upstream",
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn run(input: &[u8], split: usize, head_req: bool) -> (u16, Vec<u8>, bool) {
        let mut c = HttpCodec::new(4096, head_req, false);
        let mut buf = BytesMut::new();
        let mut status = 0;
        let mut body = Vec::new();
        let mut parts = vec![&input[..split], &input[split..]];
        let mut eof = false;
        loop {
            match c.decode(&mut buf).unwrap() {
                Some(Decoded::Head(h)) => status = h.status.as_u16(),
                Some(Decoded::Data(d)) => body.extend_from_slice(&d),
                Some(Decoded::End { reusable }) => return (status, body, reusable),
                Some(Decoded::Stderr(_)) => unreachable!(),
                None => {
                    if parts.is_empty() {
                        assert!(!eof);
                        eof = true;
                        match c.decode_eof(&mut buf).unwrap() {
                            Some(Decoded::End { reusable }) => return (status, body, reusable),
                            Some(Decoded::Data(d)) => body.extend_from_slice(&d),
                            other => panic!("{other:?}"),
                        }
                        continue;
                    }
                    buf.extend_from_slice(parts.remove(0));
                }
            }
        }
    }

    #[test]
    fn length_chunked_close_at_every_split() {
        let cases: [(&[u8], &[u8], bool); 3] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nT: 1\r\n\r\n", b"hello", true),
            (b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello", b"hello", false),
        ];
        for (input, want, reuse) in cases {
            for split in 0..=input.len() {
                let (s, b, r) = run(input, split, false);
                assert_eq!((s, b.as_slice(), r), (200, want, reuse), "split {split}");
            }
        }
    }

    #[test]
    fn trailers_kept_at_every_split_and_capped() {
        let input: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: abc\r\nX-Two:  2 \r\n\r\n";
        for split in 0..=input.len() {
            let mut c = HttpCodec::new(4096, false, false).keeping_trailers();
            let mut buf = BytesMut::from(&input[..split]);
            let mut rest = Some(&input[split..]);
            let mut ended = false;
            while !ended {
                match c.decode(&mut buf).unwrap() {
                    Some(Decoded::End { reusable }) => ended = reusable,
                    Some(_) => {}
                    None => buf.extend_from_slice(rest.take().unwrap()),
                }
            }
            let t = c.take_trailers().unwrap();
            assert_eq!(t.get("x-sum").unwrap(), "abc", "split {split}");
            assert_eq!(t.get("x-two").unwrap(), "2", "split {split}");
        }
        // Not kept without proxy_pass_trailers.
        let mut c = HttpCodec::new(4096, false, false);
        let mut buf = BytesMut::from(input);
        while !matches!(c.decode(&mut buf).unwrap(), Some(Decoded::End { .. })) {}
        assert!(c.take_trailers().is_none());
        // Over the head limit, or a line without a colon: an upstream error.
        for bad in [&b"X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"[..], b"nocolon\r\n\r\n"] {
            let mut c = HttpCodec::new(64, false, false).keeping_trailers();
            let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"[..]);
            buf.extend_from_slice(bad);
            let err = loop {
                match c.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("needs more"),
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        }
    }

    #[test]
    fn head_and_204_have_no_body() {
        let (s, b, r) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 5, true);
        assert_eq!((s, b.len(), r), (200, 0, true));
        let (s, b, _) = run(b"HTTP/1.1 204 No Content\r\n\r\n", 3, false);
        assert_eq!((s, b.len()), (204, 0));
    }

    #[test]
    fn errors() {
        let mut c = HttpCodec::new(64, false, false);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX: "[..]);
        buf.extend_from_slice(&[b'a'; 100]);
        assert_eq!(
            c.decode(&mut buf).unwrap_err().kind(),
            ErrorKind::TooBigHeader
        );
        let mut c = HttpCodec::new(4096, false, false);
        let mut buf = BytesMut::from(&b"garbage\r\n\r\n"[..]);
        assert_eq!(
            c.decode(&mut buf).unwrap_err().kind(),
            ErrorKind::InvalidResponse
        );
        let mut c = HttpCodec::new(4096, false, false);
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Decoded::Head(_))
        ));
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Decoded::Data(_))
        ));
        assert_eq!(
            c.decode_eof(&mut buf).unwrap_err().kind(),
            ErrorKind::UpstreamClosed
        );
    }

    #[test]
    fn chunked_request_framing() {
        let mut c = HttpCodec::new(4096, false, true);
        let mut out = Vec::new();
        c.encode_body(Bytes::from_static(b"hello"), &mut out);
        c.encode_end(&mut out);
        let all: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(all, b"5\r\nhello\r\n0\r\n\r\n");
        for n in [1usize, 15, 16, 255, 4096, 70000] {
            let mut out = Vec::new();
            c.encode_body(Bytes::from(vec![b'x'; n]), &mut out);
            assert_eq!(out[0], format!("{n:x}\r\n").as_bytes(), "{n}");
        }
    }
}
