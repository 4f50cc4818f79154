//! A small raw HTTP/1.1 client: sends exactly the bytes it is given, decodes Content-Length, chunked and close-delimited bodies.

use super::*;

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// `GET path HTTP/1.1`, `Host: host`, `Connection: close`.
pub fn get_request(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

/// Sends `raw` to 127.0.0.1:`port` and returns every byte received until the server closes
/// the connection (or 10 s of silence).
pub fn raw_exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(raw).expect("write request");
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A response: status line, headers in order (case-insensitive lookup), decoded body.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The head and a body prefix, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}\n", self.version, self.status, self.reason);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        let body = self.text();
        let cut: String = body.chars().take(600).collect();
        s.push_str(&format!("\n{cut}"));
        s
    }
}

/// Sends `raw` (exactly these bytes) to 127.0.0.1:`port` and reads one response.
/// The request is written from a separate thread, so a server that answers before reading
/// the whole request (413, 400) is still heard. Panics on I/O errors or timeouts.
pub fn http_request(port: u16, raw: &[u8]) -> Response {
    http_request_to(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), raw)
}

/// [`http_request`] to any address.
pub fn http_request_to(addr: SocketAddr, raw: &[u8]) -> Response {
    try_http_request_to(addr, raw).unwrap_or_else(|e| {
        panic!(
            "request to {addr} failed: {e}\n--- request ---\n{}",
            String::from_utf8_lossy(&raw[..raw.len().min(2000)])
        )
    })
}

/// [`http_request_to`] returning the I/O error.
pub fn try_http_request_to(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let mut stream = http_stream_to(addr, raw)?;
    let body = stream.read_to_end()?;
    let mut resp = stream.head.clone();
    resp.body = body;
    Ok(resp)
}

/// Opens a connection, sends `raw`, reads the response head; the body is read on demand.
pub fn http_stream(port: u16, raw: &[u8]) -> StreamingResponse {
    http_stream_to(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), raw)
        .unwrap_or_else(|e| panic!("request to port {port} failed: {e}"))
}

/// [`http_stream`] to any address.
pub fn http_stream_to(addr: SocketAddr, raw: &[u8]) -> io::Result<StreamingResponse> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let sent_at = Instant::now();
    let mut writer = stream.try_clone()?;
    let data = raw.to_vec();
    let writer = thread::spawn(move || writer.write_all(&data).and_then(|()| writer.flush()));
    let is_head = raw.starts_with(b"HEAD ");
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let head = loop {
        let head = read_head(&mut reader)?;
        // Interim 1xx responses (except 101) precede the real one.
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        break head;
    };
    let framing = if is_head || head.status == 204 || head.status == 304 || head.status < 200 {
        Framing::Length(0)
    } else if head
        .header("Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(cl) = head.header("Content-Length") {
        Framing::Length(cl.trim().parse().map_err(|_| {
            io::Error::new(ErrorKind::InvalidData, format!("bad Content-Length {cl:?}"))
        })?)
    } else {
        Framing::Close
    };
    Ok(StreamingResponse {
        head,
        reader,
        framing,
        sent_at,
        first_body_at: None,
        writer: Some(writer),
    })
}

fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Response> {
    let mut line = Vec::new();
    let mut resp = Response::default();
    let mut first = true;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "connection closed in the response head ({} so far)",
                    resp.describe()
                ),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if first {
            let mut parts = text.splitn(3, ' ');
            resp.version = parts.next().unwrap_or_default().to_string();
            resp.status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
                io::Error::new(ErrorKind::InvalidData, format!("bad status line {text:?}"))
            })?;
            resp.reason = parts.next().unwrap_or_default().to_string();
            first = false;
        } else if text.is_empty() {
            return Ok(resp);
        } else {
            let (k, v) = text.split_once(':').unwrap_or((text, ""));
            resp.headers.push((k.to_string(), v.trim().to_string()));
        }
    }
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Close,
}

/// A response whose body is read as it arrives.
pub struct StreamingResponse {
    /// Status and headers (its `body` is empty).
    pub head: Response,
    reader: BufReader<TcpStream>,
    framing: Framing,
    /// When the request was handed to the socket.
    pub sent_at: Instant,
    /// When the first body bytes were read (None until then).
    pub first_body_at: Option<Instant>,
    writer: Option<thread::JoinHandle<io::Result<()>>>,
}

impl StreamingResponse {
    /// Next piece of decoded body as soon as any is available; `None` at the end.
    pub fn read_some(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = match &mut self.framing {
            Framing::Length(0) => return Ok(None),
            Framing::Length(left) => {
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("connection closed with {left} body bytes missing"),
                    ));
                }
                *left -= n as u64;
                n
            }
            Framing::Close => {
                let n = self.reader.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                n
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(None);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.reader.read_line(&mut line)?;
                    let size = line.trim_end().split(';').next().unwrap_or_default();
                    let size = u64::from_str_radix(size.trim(), 16).map_err(|_| {
                        io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {line:?}"))
                    })?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        loop {
                            line.clear();
                            if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(None);
                    }
                    *left = size;
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "EOF inside a chunk",
                    ));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = String::new();
                    self.reader.read_line(&mut crlf)?;
                }
                n
            }
        };
        if self.first_body_at.is_none() {
            self.first_body_at = Some(Instant::now());
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Reads until the decoded body read so far (by this call) ends with `needle` or the
    /// body ends; returns what this call read.
    pub fn read_until(&mut self, needle: &[u8]) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        while !contains(&got, needle) {
            match self.read_some()? {
                Some(piece) => got.extend_from_slice(&piece),
                None => break,
            }
        }
        Ok(got)
    }

    /// Reads the rest of the body.
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(piece) = self.read_some()? {
            body.extend_from_slice(&piece);
        }
        self.finish();
        Ok(body)
    }

    /// Sets the read timeout of the connection.
    pub fn set_read_timeout(&self, t: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(t))
            .expect("set timeout");
    }

    fn finish(&mut self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for StreamingResponse {
    fn drop(&mut self) {
        self.finish();
    }
}

/// True if `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
