//! The per-request context: what the client sent, where it came from, what the
//! routing decided, and what the upstream answered. Variables are read from here.

use crate::vars::{put_display, put_int, put_ip, Var};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, Version};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Facts about the client connection, shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Client address.
    pub remote: SocketAddr,
    /// Local (listening) address.
    pub local: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Connection serial number (`$connection`).
    pub id: u64,
    /// What the PROXY protocol header said (`listen … proxy_protocol`).
    pub proxy_protocol: Option<Arc<crate::proxy_protocol::ProxyProtocol>>,
    /// What the TLS handshake established (`listen … ssl`; `None`: plain).
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
}

impl ConnInfo {
    /// A client of a `listen unix:` socket (whose address fields are the placeholder
    /// `0.0.0.0:0`; a TCP connection never has local port 0).
    pub fn is_unix(&self) -> bool {
        self.local.port() == 0
    }

    /// The client as nginx writes it (`$remote_addr`, the error log's `client:`):
    /// the IP address, or `unix:` for a unix-socket client (unless realip replaced it).
    pub fn client(&self) -> ClientAddr {
        if self.is_unix() && self.remote.ip().is_unspecified() {
            ClientAddr::Unix
        } else {
            ClientAddr::Ip(self.remote.ip())
        }
    }
}

/// [`ConnInfo::client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    /// A TCP client (or one realip named).
    Ip(std::net::IpAddr),
    /// A unix-socket client: `unix:`.
    Unix,
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddr::Ip(ip) => ip.fmt(f),
            ClientAddr::Unix => f.write_str("unix:"),
        }
    }
}

/// One try of an upstream server.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The server tried.
    pub server: Arc<crate::upstream::Server>,
    /// Its status (`None`: no response, logged as 502 like nginx).
    pub status: Option<u16>,
    /// How long it took.
    pub took: Duration,
    /// Time to connect (`$upstream_connect_time`; `None`: not connected, `-`).
    pub connect: Option<Duration>,
    /// Time to the response head (`$upstream_header_time`; `None`: none, `-`).
    pub header: Option<Duration>,
    /// Bytes of the request written (`$upstream_bytes_sent`).
    pub bytes_sent: u64,
    /// Bytes read up to the response head (`$upstream_bytes_received` with the body's
    /// [`BodyStats::received`]).
    pub bytes_received: u64,
    /// Of `bytes_received`, the bytes of the response head (the rest is the body as
    /// framed on the wire: nginx's `$upstream_response_length`).
    pub head_len: u64,
    /// The relayed body of the attempt that answered (`$upstream_response_length`, and
    /// the end of `$upstream_response_time`).
    pub body: Option<Arc<BodyStats>>,
    /// The first attempt of a later upstream request of the same client request (after
    /// an internal redirect): nginx separates it with ` : ` instead of `, `.
    pub after_redirect: bool,
}

/// What the response body relay counted, updated while the body streams.
#[derive(Debug, Default)]
pub struct BodyStats {
    /// When the body ended, in microseconds after the attempt started (0: not yet).
    pub end_us: std::sync::atomic::AtomicU64,
    /// Bytes read from the upstream after the head's reads, framing included.
    pub received: std::sync::atomic::AtomicU64,
    /// The response's trailer fields (`$upstream_trailer_NAME`), once the body ended.
    pub trailers: std::sync::OnceLock<HeaderMap>,
}

/// Bytes into and out of the response compression (`$gzip_ratio`), counted by the
/// compressing body as it runs; only a compressed response has them.
#[derive(Debug, Default)]
pub struct CompressStats {
    /// Whether the encoding is gzip (`$gzip_ratio` is empty for Brotli, as nginx's).
    pub gzip: bool,
    /// Bytes compressed.
    pub zin: std::sync::atomic::AtomicU64,
    /// Bytes the compression gave out.
    pub zout: std::sync::atomic::AtomicU64,
}

/// What the upstream exchange recorded, for `$upstream_*` and the access log.
/// Kept as data and formatted only when a variable is read (no strings per request).
#[derive(Debug, Default, Clone)]
pub struct UpstreamLog {
    first: Option<Attempt>,
    rest: Vec<Attempt>,
    /// The next attempt starts a new upstream request ([`UpstreamLog::begin`]).
    new_request: bool,
    /// How the error log names the protocol (`http://`, `fastcgi://`, …; nginx's
    /// `u->schema`), set by the exchange.
    pub schema: &'static str,
    /// The URI sent upstream (HTTP proxy; empty for the others, as in nginx).
    pub uri: Bytes,
    /// Upstream response headers (for `$upstream_http_*`).
    pub headers: HeaderMap,
}

impl UpstreamLog {
    /// Records one attempt.
    pub fn attempt(
        &mut self,
        server: &Arc<crate::upstream::Server>,
        status: Option<u16>,
        took: Duration,
    ) {
        let a = Attempt {
            server: server.clone(),
            status,
            took,
            connect: None,
            header: None,
            bytes_sent: 0,
            bytes_received: 0,
            head_len: 0,
            body: None,
            after_redirect: std::mem::take(&mut self.new_request),
        };
        if self.first.is_none() {
            self.first = Some(a);
        } else {
            self.rest.push(a);
        }
    }

    /// A new upstream request starts (an exchange): after earlier attempts (an internal
    /// redirect to another `*_pass`), its attempts are listed after ` : `.
    pub fn begin(&mut self) {
        self.new_request = !self.is_empty();
    }

    /// The last attempt recorded.
    pub fn last_mut(&mut self) -> Option<&mut Attempt> {
        match self.rest.last_mut() {
            Some(a) => Some(a),
            None => self.first.as_mut(),
        }
    }

    /// Whether no upstream was tried.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The attempts in order.
    pub fn attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.first.iter().chain(self.rest.iter())
    }

    fn list_into(&self, out: &mut BytesMut, f: impl Fn(&Attempt, &mut BytesMut)) {
        for (i, a) in self.attempts().enumerate() {
            if i > 0 {
                out.put_slice(if a.after_redirect { b" : " } else { b", " });
            }
            f(a, out);
        }
    }

    /// The server tried last as nginx's error log names it (`upstream: "…"`):
    /// `http://127.0.0.1:8081/x`, `fastcgi://unix:/run/php.sock:`.
    pub fn current(&self) -> Option<UpstreamName<'_>> {
        let last = self.rest.last().or(self.first.as_ref())?;
        Some(UpstreamName {
            schema: self.schema,
            peer: &last.server.name,
            uri: &self.uri,
        })
    }

    /// [`UpstreamLog::current`] for a log field: empty when no server was tried.
    pub fn shown(&self) -> impl std::fmt::Display + '_ {
        struct Shown<'a>(Option<UpstreamName<'a>>);
        impl std::fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match &self.0 {
                    Some(u) => u.fmt(f),
                    None => Ok(()),
                }
            }
        }
        Shown(self.current())
    }

    /// `$upstream_addr` as a string (error-log lines).
    pub fn addr_string(&self) -> String {
        let mut out = BytesMut::new();
        self.list_into(&mut out, |a, o| o.put_slice(a.server.name.as_bytes()));
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Whether a request is being polled (`junction_server::error_log` writes the
/// request's context after each of its events).
fn in_request_span() -> bool {
    crate::logctx::polling_request()
}

/// An upstream as nginx's `ngx_http_upstream_log_error` writes it: schema, peer name,
/// `:` after a unix socket path, and the URI sent (`%V%V%s%V`).
#[derive(Debug, Clone, Copy)]
pub struct UpstreamName<'a> {
    /// `http://`, `fastcgi://`, …
    pub schema: &'static str,
    /// `127.0.0.1:8081` or `unix:/path`.
    pub peer: &'a str,
    /// The URI sent upstream, or empty.
    pub uri: &'a [u8],
}

impl std::fmt::Display for UpstreamName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.peer.starts_with("unix:") {
            ":"
        } else {
            ""
        };
        write!(
            f,
            "{}{}{sep}{}",
            self.schema,
            self.peer,
            String::from_utf8_lossy(self.uri)
        )
    }
}

/// A shared empty string: a new request context allocates nothing for its
/// not-yet-known names.
fn empty_str() -> Arc<str> {
    static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from("")).clone()
}

/// Regex captures of the last location/rewrite match: the subject and the spans.
#[derive(Debug, Clone)]
pub struct Captures {
    /// The string that was matched.
    pub subject: Arc<str>,
    /// Byte spans of `$0`, `$1` …
    pub spans: Vec<Option<(usize, usize)>>,
}

impl Default for Captures {
    fn default() -> Self {
        Captures {
            subject: empty_str(),
            spans: Vec::new(),
        }
    }
}

impl Captures {
    /// Capture `n` as a str.
    pub fn get(&self, n: usize) -> Option<&str> {
        let (s, e) = (*self.spans.get(n)?)?;
        self.subject.get(s..e)
    }
}

/// The request context.
#[derive(Debug)]
pub struct RequestCtx {
    /// The client connection.
    pub conn: Arc<ConnInfo>,
    /// The request method.
    pub method: Method,
    /// The request's HTTP version.
    pub version: Version,
    /// The request target exactly as received (`$request_uri`).
    pub request_uri: Arc<str>,
    /// The current normalized URI path, percent-decoded (`$uri`).
    pub uri: String,
    /// Whether `uri` was changed by a rewrite / internal redirect.
    pub uri_changed: bool,
    /// The query string without `?` (`$args`).
    pub args: String,
    /// The client's request headers.
    pub headers: HeaderMap,
    /// `$host`.
    pub host: Arc<str>,
    /// `$server_name` of the selected server.
    pub server_name: Arc<str>,
    /// `$document_root` of the selected location.
    pub document_root: Bytes,
    /// `$request_filename`.
    pub request_filename: Bytes,
    /// Regex captures.
    pub captures: Captures,
    /// Values of `set` variables, named captures and module variables.
    pub slots: Vec<Option<Bytes>>,
    /// `$proxy_host` / `$proxy_port` of the current proxy_pass.
    pub proxy_host: Bytes,
    /// `$proxy_port`.
    pub proxy_port: Bytes,
    /// Upstream results.
    pub upstream: UpstreamLog,
    /// Response status (`$status`), set when the response is produced.
    pub status: u16,
    /// Response headers as sent (for `$sent_http_*`), set when produced.
    pub sent_headers: HeaderMap,
    /// Body bytes sent, set when the response body ends.
    pub body_bytes_sent: u64,
    /// Request length (head + body) as far as known.
    pub request_length: u64,
    /// Monotonic start.
    pub start: Instant,
    /// Wall-clock start.
    pub start_time: SystemTime,
    /// Requests served on this connection so far, this one included.
    pub conn_requests: u64,
    /// Number of internal redirects so far.
    pub redirects: u8,
    /// An internal redirect a content handler answers with instead of a response
    /// (static files' `index`): the URI, with `?args` when it brings its own. The
    /// server takes it after the handler returns and searches the locations again.
    pub internal_redirect: Option<String>,
    /// The client connection's upgrade (WebSocket), when the request asked for one.
    pub upgrade: Option<crate::client::OnUpgrade>,
    /// `fastcgi_split_path_info` / `fastcgi_index` of the current location (`None`:
    /// neither is set), for `$fastcgi_script_name` and `$fastcgi_path_info`.
    pub script_split: Option<Arc<crate::cgi::ScriptSplit>>,
    /// The split once computed (nginx's fastcgi module context): script name without
    /// the index, path info.
    script_parts: std::sync::OnceLock<(Bytes, Bytes)>,
    /// The selected server's counters, recorded into when the request ends.
    pub stats: Option<Arc<crate::stats::HttpStats>>,
    /// Counts this request as in progress (`stub_status`'s Writing) while it lives.
    pub in_flight: Option<crate::stats::InFlight>,
    /// The configuration's `map`s (`$var` of a map is computed on first read).
    pub maps: Option<Arc<crate::map::Maps>>,
    /// Each map's value once computed (not for `volatile` maps).
    /// (Allocated when a map variable is first read, not for every request.)
    pub map_cache: std::sync::OnceLock<Box<[std::sync::OnceLock<Bytes>]>>,
    /// `$request_id`, drawn when first read.
    pub request_id: std::sync::OnceLock<u128>,
    /// `$request_body`: the body when a `*_pass` read it into memory.
    pub request_body: Option<Bytes>,
    /// `$request_body_file`: the body's file under `client_body_in_file_only`.
    pub request_body_file: Option<Bytes>,
    /// `$limit_req_status` (nginx's `r->main->limit_req_status`: set once per request).
    pub limit_req_status: Option<&'static str>,
    /// `$limit_conn_status` (set once per request).
    pub limit_conn_status: Option<&'static str>,
    /// The connection's own client address once realip replaced `conn.remote`
    /// (`$realip_remote_addr`, `$realip_remote_port`).
    pub realip_remote: Option<SocketAddr>,
    /// Held until the response has been sent (limit_conn counts).
    pub held: Vec<Arc<dyn std::any::Any + Send + Sync>>,
    /// `uninitialized_variable_warn` of the current location.
    pub uninit_warn: bool,
    /// The response was sent whole (`$request_completion`), set when logging.
    pub completed: bool,
    /// Set when the response is compressed (`$gzip_ratio`).
    pub compress_stats: Option<Arc<CompressStats>>,
}

impl RequestCtx {
    /// A new context for a request. Inlined: built by `box_new!`, the context is
    /// written straight into its box (it is over a kilobyte).
    #[inline(always)]
    pub fn new(
        conn: Arc<ConnInfo>,
        method: Method,
        version: Version,
        request_uri: Arc<str>,
    ) -> Self {
        RequestCtx {
            conn,
            method,
            version,
            request_uri,
            uri: String::new(),
            uri_changed: false,
            args: String::new(),
            headers: HeaderMap::new(),
            host: empty_str(),
            server_name: empty_str(),
            document_root: Bytes::new(),
            request_filename: Bytes::new(),
            captures: Captures::default(),
            slots: Vec::new(),
            proxy_host: Bytes::new(),
            proxy_port: Bytes::new(),
            upstream: UpstreamLog::default(),
            status: 0,
            sent_headers: HeaderMap::new(),
            body_bytes_sent: 0,
            request_length: 0,
            start: crate::time::now(),
            start_time: crate::time::wall(),
            conn_requests: 1,
            redirects: 0,
            internal_redirect: None,
            upgrade: None,
            script_split: None,
            script_parts: std::sync::OnceLock::new(),
            stats: None,
            in_flight: None,
            maps: None,
            map_cache: std::sync::OnceLock::new(),
            request_id: std::sync::OnceLock::new(),
            request_body: None,
            request_body_file: None,
            limit_req_status: None,
            limit_conn_status: None,
            realip_remote: None,
            held: Vec::new(),
            uninit_warn: true,
            completed: false,
            compress_stats: None,
        }
    }

    /// The request is over (its response sent or abandoned): records it in its
    /// server's counters, once.
    pub fn record_stats(&mut self) {
        if let Some(s) = self.stats.take() {
            s.record(self);
        }
        self.in_flight = None;
    }

    /// Forgets the computed `$fastcgi_script_name`/`$fastcgi_path_info`: an internal
    /// redirect clears nginx's module contexts, and the FastCGI handler starts a new
    /// one (so they are computed again from the `$uri` of that moment).
    pub fn reset_script_split(&mut self) {
        self.script_parts = std::sync::OnceLock::new();
    }

    /// The script name (without the index) and path info, computed on first read.
    fn script_parts(&self) -> &(Bytes, Bytes) {
        self.script_parts.get_or_init(|| match &self.script_split {
            Some(s) => s.split(&self.uri),
            None => (Bytes::copy_from_slice(self.uri.as_bytes()), Bytes::new()),
        })
    }

    /// Sets slot `i`.
    pub fn set_slot(&mut self, i: usize, v: Bytes) {
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some(v);
        }
    }

    /// Reads slot `i`.
    pub fn slot(&self, i: usize) -> Option<&Bytes> {
        self.slots.get(i).and_then(Option::as_ref)
    }

    /// The value of a request header as bytes (first occurrence; cookies joined by `; `).
    fn header_into(headers: &HeaderMap, name: &http::HeaderName, out: &mut BytesMut) {
        let mut it = headers.get_all(name).iter();
        if let Some(first) = it.next() {
            out.put_slice(first.as_bytes());
            let sep: &[u8] = if name == http::header::COOKIE {
                b"; "
            } else {
                b", "
            };
            for v in it {
                out.put_slice(sep);
                out.put_slice(v.as_bytes());
            }
        }
    }

    /// Appends the value of `v` to `out`.
    pub fn var_into(&self, v: &Var, out: &mut BytesMut) {
        match v {
            Var::RemoteAddr => match self.conn.client() {
                ClientAddr::Ip(ip) => put_ip(out, ip),
                ClientAddr::Unix => out.put_slice(b"unix:"),
            },
            Var::BinaryRemoteAddr => match self.conn.client() {
                ClientAddr::Ip(std::net::IpAddr::V4(a)) => out.put_slice(&a.octets()),
                ClientAddr::Ip(std::net::IpAddr::V6(a)) => out.put_slice(&a.octets()),
                // nginx: the address text of a unix-socket client
                ClientAddr::Unix => out.put_slice(b"unix:"),
            },
            Var::RemotePort => {
                // realip from an address without a port, a unix-socket client: empty,
                // as nginx
                if self.conn.remote.port() != 0 {
                    put_int(out, self.conn.remote.port())
                }
            }
            Var::RealipRemoteAddr => {
                put_ip(out, self.realip_remote.unwrap_or(self.conn.remote).ip())
            }
            Var::RealipRemotePort => {
                put_int(out, self.realip_remote.unwrap_or(self.conn.remote).port())
            }
            Var::ServerAddr => put_ip(out, self.conn.local.ip()),
            Var::ServerPort => put_int(out, self.conn.local.port()),
            Var::ServerName => out.put_slice(self.server_name.as_bytes()),
            Var::ServerProtocol => out.put_slice(match self.version {
                Version::HTTP_10 => b"HTTP/1.0",
                Version::HTTP_09 => b"HTTP/0.9",
                Version::HTTP_2 => b"HTTP/2.0",
                _ => b"HTTP/1.1",
            }),
            Var::Host => out.put_slice(self.host.as_bytes()),
            Var::Hostname => out.put_slice(crate::hostname().as_bytes()),
            Var::Scheme => out.put_slice(self.conn.scheme.as_bytes()),
            Var::Https => {
                if self.conn.scheme == "https" {
                    out.put_slice(b"on")
                }
            }
            Var::Ssl(v) => {
                if let Some(t) = &self.conn.tls {
                    t.var_into(*v, out)
                }
            }
            Var::RequestUri => out.put_slice(self.request_uri.as_bytes()),
            Var::Uri => out.put_slice(self.uri.as_bytes()),
            Var::Args => out.put_slice(self.args.as_bytes()),
            Var::IsArgs => {
                if !self.args.is_empty() {
                    out.put_u8(b'?')
                }
            }
            Var::RequestMethod => out.put_slice(self.method.as_str().as_bytes()),
            Var::Request => {
                out.put_slice(self.method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(self.request_uri.as_bytes());
                out.put_u8(b' ');
                self.var_into(&Var::ServerProtocol, out);
            }
            Var::ContentLength => {
                if let Some(h) = self.headers.get(http::header::CONTENT_LENGTH) {
                    out.put_slice(h.as_bytes())
                }
            }
            Var::ContentType => {
                if let Some(h) = self.headers.get(http::header::CONTENT_TYPE) {
                    out.put_slice(h.as_bytes())
                }
            }
            Var::DocumentRoot | Var::RealpathRoot => out.put_slice(&self.document_root),
            Var::RequestFilename => out.put_slice(&self.request_filename),
            Var::ProxyHost => out.put_slice(&self.proxy_host),
            Var::ProxyPort => out.put_slice(&self.proxy_port),
            Var::ProxyAddXForwardedFor => {
                let before = out.len();
                Self::header_into(
                    &self.headers,
                    &http::HeaderName::from_static("x-forwarded-for"),
                    out,
                );
                if out.len() > before {
                    out.put_slice(b", ");
                }
                put_display(out, self.conn.remote.ip());
            }
            Var::Status => {
                if self.status != 0 {
                    put_int(out, self.status)
                } else {
                    out.put_slice(b"000")
                }
            }
            Var::RequestTime => put_display(
                out,
                format_args!("{:.3}", crate::time::since(self.start).as_secs_f64()),
            ),
            Var::BodyBytesSent | Var::BytesSent => put_int(out, self.body_bytes_sent),
            Var::RequestLength => put_int(out, self.request_length),
            Var::UpstreamAddr => self
                .upstream
                .list_into(out, |a, o| o.put_slice(a.server.name.as_bytes())),
            Var::UpstreamStatus => self
                .upstream
                .list_into(out, |a, o| put_display(o, a.status.unwrap_or(502))),
            Var::UpstreamResponseTime => self.upstream.list_into(out, |a, o| {
                let end = a
                    .body
                    .as_ref()
                    .map(|b| b.end_us.load(std::sync::atomic::Ordering::Relaxed))
                    .filter(|us| *us != 0)
                    .map_or(a.took, Duration::from_micros);
                put_ms(o, Some(end))
            }),
            Var::UpstreamConnectTime => self.upstream.list_into(out, |a, o| put_ms(o, a.connect)),
            Var::UpstreamHeaderTime => self.upstream.list_into(out, |a, o| put_ms(o, a.header)),
            // nginx counts the body as read from the upstream (`u->state->response_length`:
            // chunked coding and protocol records included), not as relayed.
            Var::UpstreamResponseLength => self.upstream.list_into(out, |a, o| {
                let body = a.body.as_ref().map_or(0, |b| {
                    b.received.load(std::sync::atomic::Ordering::Relaxed)
                });
                put_display(o, a.bytes_received.saturating_sub(a.head_len) + body)
            }),
            Var::UpstreamBytesSent => self
                .upstream
                .list_into(out, |a, o| put_display(o, a.bytes_sent)),
            Var::UpstreamBytesReceived => self.upstream.list_into(out, |a, o| {
                let body = a.body.as_ref().map_or(0, |b| {
                    b.received.load(std::sync::atomic::Ordering::Relaxed)
                });
                put_display(o, a.bytes_received + body)
            }),
            Var::UpstreamCacheStatus => {}
            // The trailers of the last attempt (nginx's `u->headers_in.trailers`).
            Var::UpstreamTrailer(name) => {
                let t = self
                    .upstream
                    .attempts()
                    .last()
                    .and_then(|a| a.body.as_ref())
                    .and_then(|b| b.trailers.get());
                if let Some(v) = t.and_then(|t| t.get(name)) {
                    out.put_slice(v.as_bytes());
                }
            }
            Var::UpstreamCookie(name) => {
                for h in self.upstream.headers.get_all(http::header::SET_COOKIE) {
                    let v = h.as_bytes();
                    let first = v.split(|c| *c == b';').next().unwrap_or(&[]);
                    if let Some(v) = find_pair(first, name.as_bytes(), b';') {
                        out.put_slice(v);
                        return;
                    }
                }
            }
            Var::TimeLocal => out.put_slice(crate::time::local_time(self.start_time).as_bytes()),
            Var::TimeIso8601 => out.put_slice(crate::time::iso8601(self.start_time).as_bytes()),
            Var::Msec => {
                let d = self
                    .start_time
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                put_display(
                    out,
                    format_args!("{}.{:03}", d.as_secs(), d.subsec_millis()),
                )
            }
            Var::Pid => put_display(out, std::process::id()),
            Var::Connection => put_int(out, self.conn.id),
            Var::ConnectionRequests => put_int(out, self.conn_requests),
            Var::RemoteUser => {
                if let Some(c) = crate::basic_auth::credentials(&self.headers) {
                    out.put_slice(c.user());
                }
            }
            Var::NginxVersion => out.put_slice(env!("CARGO_PKG_VERSION").as_bytes()),
            Var::RequestId => {
                let id = self.request_id.get_or_init(|| fastrand::u128(..));
                put_display(out, format_args!("{id:032x}"))
            }
            // hyper does not say whether the next request was already buffered.
            Var::Pipe => out.put_u8(b'.'),
            Var::RequestCompletion => {
                if self.completed {
                    out.put_slice(b"OK")
                }
            }
            Var::RequestBody => {
                if let Some(b) = &self.request_body {
                    out.put_slice(b)
                }
            }
            Var::RequestBodyFile => {
                if let Some(b) = &self.request_body_file {
                    out.put_slice(b)
                }
            }
            Var::ProxyProtocolTlv(name) => {
                if let Some(v) = self.conn.proxy_protocol.as_ref().and_then(|p| p.tlv(name)) {
                    out.put_slice(&v);
                }
            }
            Var::ProxyProtocolAddr => {
                if let Some(p) = &self.conn.proxy_protocol {
                    out.put_slice(p.src_addr.as_bytes());
                }
            }
            Var::ProxyProtocolPort => {
                if let Some(p) = &self.conn.proxy_protocol {
                    put_display(out, p.src_port);
                }
            }
            Var::ProxyProtocolServerAddr => {
                if let Some(p) = &self.conn.proxy_protocol {
                    out.put_slice(p.dst_addr.as_bytes());
                }
            }
            Var::ProxyProtocolServerPort => {
                if let Some(p) = &self.conn.proxy_protocol {
                    put_display(out, p.dst_port);
                }
            }
            Var::LimitReqStatus => out.put_slice(self.limit_req_status.unwrap_or("").as_bytes()),
            Var::LimitConnStatus => out.put_slice(self.limit_conn_status.unwrap_or("").as_bytes()),
            Var::GzipRatio => {
                // nginx's ngx_http_gzip_ratio_variable: zin/zout with two rounded decimals.
                use std::sync::atomic::Ordering::Relaxed;
                if let Some(s) = self.compress_stats.as_ref().filter(|s| s.gzip) {
                    let (zin, zout) = (s.zin.load(Relaxed), s.zout.load(Relaxed));
                    if zin != 0 && zout != 0 {
                        let mut int = zin / zout;
                        let mut frac = (zin * 100 / zout) % 100;
                        if (zin * 1000 / zout) % 10 > 4 {
                            frac += 1;
                            if frac > 99 {
                                int += 1;
                                frac = 0;
                            }
                        }
                        put_display(out, format_args!("{int}.{frac:02}"));
                    }
                }
            }
            Var::Http(name) => Self::header_into(&self.headers, name, out),
            Var::SentHttp(name) => Self::header_into(&self.sent_headers, name, out),
            Var::UpstreamHttp(name) => Self::header_into(&self.upstream.headers, name, out),
            Var::Cookie(name) => {
                for h in self.headers.get_all(http::header::COOKIE) {
                    if let Some(v) = find_pair(h.as_bytes(), name.as_bytes(), b';') {
                        out.put_slice(v);
                        return;
                    }
                }
            }
            Var::Arg(name) => {
                if let Some(v) = find_pair(self.args.as_bytes(), name.as_bytes(), b'&') {
                    out.put_slice(v)
                }
            }
            Var::Capture(n) => {
                if let Some(s) = self.captures.get(*n) {
                    out.put_slice(s.as_bytes())
                }
            }
            Var::Slot(i) => {
                if let Some(b) = self.slot(*i) {
                    out.put_slice(b)
                }
            }
            Var::SetVar(i, name) => match self.slot(*i) {
                Some(b) => out.put_slice(b),
                // Inside the request's span the error log adds the context itself.
                None if self.uninit_warn && in_request_span() => {
                    tracing::warn!("using uninitialized \"{name}\" variable")
                }
                None if self.uninit_warn => tracing::warn!(
                    "*{} using uninitialized \"{name}\" variable, client: {}, server: {}, request: \"{} {} {:?}\", host: \"{}\"",
                    self.conn.id,
                    self.conn.remote.ip(),
                    self.server_name,
                    self.method,
                    self.request_uri,
                    self.version,
                    self.host
                ),
                None => {}
            },
            Var::FastcgiScriptName => {
                let name = &self.script_parts().0;
                out.put_slice(name);
                if name.ends_with(b"/") {
                    if let Some(s) = &self.script_split {
                        out.put_slice(&s.index);
                    }
                }
            }
            Var::FastcgiPathInfo => out.put_slice(&self.script_parts().1),
            Var::Map(i) => {
                let Some(m) = self.maps.as_ref().and_then(|m| m.maps.get(*i)) else {
                    return;
                };
                let cache = self.map_cache.get_or_init(|| {
                    let n = self.maps.as_ref().map_or(0, |m| m.maps.len());
                    (0..n).map(|_| std::sync::OnceLock::new()).collect()
                });
                match cache.get(*i) {
                    Some(cell) if !m.volatile() => out.put_slice(cell.get_or_init(|| m.eval(self))),
                    _ => out.put_slice(&m.eval(self)),
                }
            }
        }
    }
}

/// nginx's `%T.%03M` for an upstream time, `-` when there is none.
fn put_ms(out: &mut BytesMut, d: Option<Duration>) {
    match d {
        Some(d) => {
            let ms = d.as_millis();
            put_display(out, format_args!("{}.{:03}", ms / 1000, ms % 1000))
        }
        None => out.put_u8(b'-'),
    }
}

/// Finds `name=value` in a `sep`-separated list (cookies, args); names compare
/// case-insensitively as nginx does.
fn find_pair<'a>(list: &'a [u8], name: &[u8], sep: u8) -> Option<&'a [u8]> {
    list.split(|c| *c == sep).find_map(|part| {
        let part = trim_ascii_start(part);
        let eq = part.iter().position(|c| *c == b'=')?;
        let (k, v) = part.split_at(eq);
        if k.eq_ignore_ascii_case(name) {
            v.get(1..)
        } else {
            None
        }
    })
}

fn trim_ascii_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
impl RequestCtx {
    /// A request from 10.0.0.7:5555 to 127.0.0.1:8080 over plain HTTP/1.1 (unit tests).
    pub(crate) fn for_test(method: Method, request_uri: &str) -> RequestCtx {
        let conn = Arc::new(ConnInfo {
            remote: std::net::SocketAddr::from(([10, 0, 0, 7], 5555)),
            local: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            scheme: "http",
            id: 3,
            proxy_protocol: None,
            tls: None,
        });
        RequestCtx::new(conn, method, Version::HTTP_11, request_uri.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::vars::{Template, VarTable};

    fn cx() -> RequestCtx {
        let mut c = RequestCtx::for_test(Method::GET, "/a?x=1&Y=2");
        c.uri = "/a".into();
        c.args = "x=1&Y=2".into();
        c.host = "example.org".into();
        c.headers
            .insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        c.headers.insert("cookie", "a=b; sid=42".parse().unwrap());
        c
    }

    #[test]
    fn evaluates_variables() {
        let t = VarTable::default();
        let c = cx();
        let eval = |s: &str| Template::compile(s, &t).unwrap().eval_string(&c);
        assert_eq!(eval("$remote_addr:$remote_port"), "10.0.0.7:5555");
        let bin = Template::compile("$binary_remote_addr", &t)
            .unwrap()
            .eval(&c);
        assert_eq!(&bin[..], &[10, 0, 0, 7]);
        // a log line escapes what could break it, as nginx's default escaping
        let mut c2 = cx();
        c2.headers.insert(
            "x-v",
            http::HeaderValue::from_bytes(b"a\"b\\c\xff").unwrap(),
        );
        let mut out = BytesMut::new();
        Template::compile("[$binary_remote_addr] \"$http_x_v\" $http_none", &t)
            .unwrap()
            .eval_log_into(&c2, &mut out);
        assert_eq!(&out[..], &br#"[\x0A\x00\x00\x07] "a\x22b\x5Cc\xFF" -"#[..]);
        assert_eq!(eval("$proxy_add_x_forwarded_for"), "1.2.3.4, 10.0.0.7");
        assert_eq!(eval("$uri$is_args$args"), "/a?x=1&Y=2");
        assert_eq!(eval("$arg_y/$arg_x/$arg_z"), "2/1/");
        assert_eq!(eval("$cookie_sid"), "42");
        assert_eq!(eval("$host:$server_port"), "example.org:8080");
        assert_eq!(eval("$http_x_forwarded_for"), "1.2.3.4");
    }
}
