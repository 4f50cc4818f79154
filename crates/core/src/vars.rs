//! Variables (`$remote_addr`, `$http_host`, `$1` …), compiled once at config load
//! into a [`Template`]: a list of literal pieces and variable references. Per
//! request, a template is evaluated into one buffer; nothing is parsed per request.

use crate::ctx::RequestCtx;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::HeaderName;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A variable reference, resolved at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$remote_addr`
    RemoteAddr,
    /// `$binary_remote_addr`: the client address in binary, 4 bytes for IPv4, 16 for
    /// IPv6 (the usual `limit_req_zone`/`limit_conn_zone` key).
    BinaryRemoteAddr,
    /// `$remote_port`
    RemotePort,
    /// `$server_addr`
    ServerAddr,
    /// `$server_port`
    ServerPort,
    /// `$server_name`
    ServerName,
    /// `$server_protocol`
    ServerProtocol,
    /// `$host`
    Host,
    /// `$hostname`
    Hostname,
    /// `$scheme`
    Scheme,
    /// `$https`
    Https,
    /// `$ssl_*` (ngx_http_ssl_module's variables).
    Ssl(crate::tls::SslVar),
    /// `$request_uri`
    RequestUri,
    /// `$uri` / `$document_uri`
    Uri,
    /// `$args` / `$query_string`
    Args,
    /// `$is_args`
    IsArgs,
    /// `$request_method`
    RequestMethod,
    /// `$request`
    Request,
    /// `$content_length`
    ContentLength,
    /// `$content_type`
    ContentType,
    /// `$document_root`
    DocumentRoot,
    /// `$realpath_root`
    RealpathRoot,
    /// `$request_filename`
    RequestFilename,
    /// `$proxy_host`
    ProxyHost,
    /// `$proxy_port`
    ProxyPort,
    /// `$proxy_add_x_forwarded_for`
    ProxyAddXForwardedFor,
    /// `$status`
    Status,
    /// `$request_time`
    RequestTime,
    /// `$body_bytes_sent`
    BodyBytesSent,
    /// `$bytes_sent`
    BytesSent,
    /// `$request_length`
    RequestLength,
    /// `$upstream_addr`
    UpstreamAddr,
    /// `$upstream_status`
    UpstreamStatus,
    /// `$upstream_response_time`
    UpstreamResponseTime,
    /// `$time_local`
    TimeLocal,
    /// `$time_iso8601`
    TimeIso8601,
    /// `$msec`
    Msec,
    /// `$pid`
    Pid,
    /// `$connection`
    Connection,
    /// `$connection_requests`
    ConnectionRequests,
    /// `$remote_user`: the user name of `Authorization: Basic` (as nginx, with or without
    /// `auth_basic`)
    RemoteUser,
    /// `$proxy_protocol_addr`: the client address the PROXY protocol header gave.
    ProxyProtocolAddr,
    /// `$proxy_protocol_port`.
    ProxyProtocolPort,
    /// `$proxy_protocol_server_addr`.
    ProxyProtocolServerAddr,
    /// `$proxy_protocol_server_port`.
    ProxyProtocolServerPort,
    /// `$realip_remote_addr`: the connection's own client address.
    RealipRemoteAddr,
    /// `$realip_remote_port`.
    RealipRemotePort,
    /// `$limit_req_status`: PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN, REJECTED_DRY_RUN.
    LimitReqStatus,
    /// `$limit_conn_status`: PASSED, REJECTED, REJECTED_DRY_RUN.
    LimitConnStatus,
    /// `$nginx_version` (Junction's version, so shipped params files work unchanged)
    NginxVersion,
    /// `$request_id`: 32 hex digits, random per request.
    RequestId,
    /// `$pipe`: `p` if the request was pipelined, else `.`.
    Pipe,
    /// `$request_body`: the body read into memory for a `*_pass`.
    RequestBody,
    /// `$request_body_file`: the body's file under `client_body_in_file_only`.
    RequestBodyFile,
    /// `$request_completion`: `OK` once the response was sent whole.
    RequestCompletion,
    /// `$gzip_ratio`
    GzipRatio,
    /// `$upstream_connect_time`
    UpstreamConnectTime,
    /// `$upstream_header_time`
    UpstreamHeaderTime,
    /// `$upstream_response_length`
    UpstreamResponseLength,
    /// `$upstream_bytes_sent`
    UpstreamBytesSent,
    /// `$upstream_bytes_received`
    UpstreamBytesReceived,
    /// `$upstream_cache_status` (always empty: there is no cache)
    UpstreamCacheStatus,
    /// `$upstream_trailer_NAME`: a trailer field of the upstream response.
    UpstreamTrailer(HeaderName),
    /// `$upstream_cookie_NAME`: a cookie the upstream set.
    UpstreamCookie(Arc<str>),
    /// `$http_NAME`: a request header.
    Http(HeaderName),
    /// `$sent_http_NAME`: a response header.
    SentHttp(HeaderName),
    /// `$upstream_http_NAME`: an upstream response header.
    UpstreamHttp(HeaderName),
    /// `$cookie_NAME`
    Cookie(Arc<str>),
    /// `$proxy_protocol_tlv_NAME`: a TLV of the PROXY protocol v2 header.
    ProxyProtocolTlv(Arc<str>),
    /// `$arg_NAME`
    Arg(Arc<str>),
    /// `$1` … `$9` (and `$0`): positional regex captures.
    Capture(usize),
    /// A named regex capture or a `set`/module variable: slot in the request's table.
    Slot(usize),
    /// `$fastcgi_script_name`: computed when read, from the current `$uri` and the
    /// current location's `fastcgi_split_path_info` and `fastcgi_index`.
    FastcgiScriptName,
    /// `$fastcgi_path_info`: the second capture of that split.
    FastcgiPathInfo,
    /// A `map` variable: index into the configuration's maps.
    Map(usize),
    /// A `set` variable (slot, name): read before any `set` ran, it is empty and
    /// logged (`uninitialized_variable_warn`).
    SetVar(usize, Arc<str>),
}

/// Variables that are not built in: `set` variables, named captures and module
/// variables (`$fastcgi_script_name`, `$memcached_key` …). Built once at load.
#[derive(Debug, Default, Clone)]
pub struct VarTable {
    names: Vec<String>,
    /// `map` target variables, by map index.
    maps: Vec<String>,
    /// Slots that `set` assigns.
    set_vars: Vec<usize>,
    used: Arc<UsedVars>,
}

/// What the compiled templates of one configuration read that the request path only
/// computes when some template needs it. Set while templates compile (at load); read
/// per request through the runtime built from that configuration (a location's
/// settings, the upstream's), never a process-wide flag.
#[derive(Debug, Default)]
pub struct UsedVars {
    request_filename: AtomicBool,
    upstream_headers: AtomicBool,
    request_body: AtomicBool,
    upstream_body_stats: AtomicBool,
}

impl UsedVars {
    /// Whether some template reads `$request_filename`: only then do `*_pass`
    /// locations compute it per request (static files always do).
    pub fn request_filename(&self) -> bool {
        self.request_filename.load(Ordering::Relaxed)
    }

    /// Whether some template reads `$upstream_http_*`: only then does the exchange
    /// keep a copy of the upstream response headers in the request context.
    pub fn upstream_headers(&self) -> bool {
        self.upstream_headers.load(Ordering::Relaxed)
    }

    /// Whether some template reads `$request_body`: only then is a body read into
    /// memory kept in the request context.
    pub fn request_body(&self) -> bool {
        self.request_body.load(Ordering::Relaxed)
    }

    /// Whether some template reads `$upstream_response_length` or
    /// `$upstream_response_time`: only then is the upstream body counted as it streams.
    pub fn upstream_body_stats(&self) -> bool {
        self.upstream_body_stats.load(Ordering::Relaxed)
    }
}

impl VarTable {
    /// What this configuration's templates read ([`UsedVars`]), shared.
    pub fn used(&self) -> Arc<UsedVars> {
        self.used.clone()
    }

    /// Returns the slot of `name`, adding it if new.
    pub fn slot(&mut self, name: &str) -> usize {
        let name = name.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            return i;
        }
        self.names.push(name);
        self.names.len() - 1
    }

    /// The slot of `name` if declared.
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.names.iter().position(|n| *n == name)
    }

    /// Marks `slot` as a `set` variable.
    pub fn mark_set(&mut self, slot: usize) {
        if !self.set_vars.contains(&slot) {
            self.set_vars.push(slot);
        }
    }

    /// Declares the target variable of `map` number `i` (the order maps are built in).
    pub fn declare_map(&mut self, name: &str) -> usize {
        self.maps.push(name.to_ascii_lowercase());
        self.maps.len() - 1
    }

    /// The map index of a `map` variable (the last map of that name, as nginx).
    pub fn find_map(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.maps.iter().rposition(|n| *n == name)
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no slot is declared.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Resolves a variable name (without `$`) to a [`Var`].
pub fn resolve(name: &str, table: &VarTable) -> Option<Var> {
    let lower = name.to_ascii_lowercase();
    let v = match lower.as_str() {
        "remote_addr" => Var::RemoteAddr,
        "binary_remote_addr" => Var::BinaryRemoteAddr,
        "request_id" => Var::RequestId,
        "pipe" => Var::Pipe,
        "request_completion" => Var::RequestCompletion,
        "request_body" => {
            table.used.request_body.store(true, Ordering::Relaxed);
            Var::RequestBody
        }
        "request_body_file" => Var::RequestBodyFile,
        "remote_port" => Var::RemotePort,
        "server_addr" => Var::ServerAddr,
        "server_port" => Var::ServerPort,
        "server_name" => Var::ServerName,
        "server_protocol" => Var::ServerProtocol,
        "host" => Var::Host,
        "hostname" => Var::Hostname,
        "scheme" => Var::Scheme,
        "https" => Var::Https,
        "request_uri" => Var::RequestUri,
        "uri" | "document_uri" => Var::Uri,
        "args" | "query_string" => Var::Args,
        "is_args" => Var::IsArgs,
        "request_method" => Var::RequestMethod,
        "request" => Var::Request,
        "content_length" => Var::ContentLength,
        "content_type" => Var::ContentType,
        "document_root" => Var::DocumentRoot,
        "realpath_root" => Var::RealpathRoot,
        "request_filename" => {
            table.used.request_filename.store(true, Ordering::Relaxed);
            Var::RequestFilename
        }
        "proxy_host" => Var::ProxyHost,
        "proxy_port" => Var::ProxyPort,
        "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
        "status" => Var::Status,
        "request_time" => Var::RequestTime,
        "body_bytes_sent" => Var::BodyBytesSent,
        "bytes_sent" => Var::BytesSent,
        "request_length" => Var::RequestLength,
        "upstream_addr" => Var::UpstreamAddr,
        "upstream_status" => Var::UpstreamStatus,
        "upstream_response_time" => {
            table
                .used
                .upstream_body_stats
                .store(true, Ordering::Relaxed);
            Var::UpstreamResponseTime
        }
        "time_local" => Var::TimeLocal,
        "time_iso8601" => Var::TimeIso8601,
        "msec" => Var::Msec,
        "pid" => Var::Pid,
        "connection" => Var::Connection,
        "connection_requests" => Var::ConnectionRequests,
        "remote_user" => Var::RemoteUser,
        "proxy_protocol_addr" => Var::ProxyProtocolAddr,
        "proxy_protocol_port" => Var::ProxyProtocolPort,
        "proxy_protocol_server_addr" => Var::ProxyProtocolServerAddr,
        "proxy_protocol_server_port" => Var::ProxyProtocolServerPort,
        "realip_remote_addr" => Var::RealipRemoteAddr,
        "realip_remote_port" => Var::RealipRemotePort,
        "limit_req_status" => Var::LimitReqStatus,
        "limit_conn_status" => Var::LimitConnStatus,
        "nginx_version" | "junction_version" => Var::NginxVersion,
        "fastcgi_script_name" => Var::FastcgiScriptName,
        "fastcgi_path_info" => Var::FastcgiPathInfo,
        "gzip_ratio" => Var::GzipRatio,
        "upstream_connect_time" => Var::UpstreamConnectTime,
        "upstream_header_time" => Var::UpstreamHeaderTime,
        "upstream_response_length" => {
            table
                .used
                .upstream_body_stats
                .store(true, Ordering::Relaxed);
            Var::UpstreamResponseLength
        }
        "upstream_bytes_sent" => Var::UpstreamBytesSent,
        "upstream_bytes_received" => {
            table
                .used
                .upstream_body_stats
                .store(true, Ordering::Relaxed);
            Var::UpstreamBytesReceived
        }
        "upstream_cache_status" => Var::UpstreamCacheStatus,
        _ => {
            if let Some(v) = crate::tls::SslVar::parse(&lower) {
                return Some(Var::Ssl(v));
            }
            if let Some(h) = lower.strip_prefix("http_") {
                return header_name(h).map(Var::Http);
            }
            if let Some(h) = lower.strip_prefix("sent_http_") {
                return header_name(h).map(Var::SentHttp);
            }
            if let Some(h) = lower.strip_prefix("upstream_http_") {
                table.used.upstream_headers.store(true, Ordering::Relaxed);
                return header_name(h).map(Var::UpstreamHttp);
            }
            if let Some(t) = lower.strip_prefix("proxy_protocol_tlv_") {
                return Some(Var::ProxyProtocolTlv(t.into()));
            }
            if let Some(h) = lower.strip_prefix("upstream_trailer_") {
                table
                    .used
                    .upstream_body_stats
                    .store(true, Ordering::Relaxed);
                return header_name(h).map(Var::UpstreamTrailer);
            }
            if let Some(c) = lower.strip_prefix("upstream_cookie_") {
                table.used.upstream_headers.store(true, Ordering::Relaxed);
                return Some(Var::UpstreamCookie(c.into()));
            }
            if let Some(c) = name.strip_prefix("cookie_") {
                return Some(Var::Cookie(c.into()));
            }
            if let Some(a) = name.strip_prefix("arg_") {
                return Some(Var::Arg(a.into()));
            }
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                return name.parse().ok().map(Var::Capture);
            }
            if let Some(m) = table.find_map(name) {
                return Some(Var::Map(m));
            }
            return table.find(name).map(|i| {
                if table.set_vars.contains(&i) {
                    Var::SetVar(i, Arc::from(lower.as_str()))
                } else {
                    Var::Slot(i)
                }
            });
        }
    };
    Some(v)
}

impl Var {
    /// Whether an empty value is still a value (nginx's `not_found` unset), which the
    /// access log writes as nothing rather than `-`: `set` variables and named
    /// captures, `$is_args`, `$https`, `$fastcgi_script_name`, `$fastcgi_path_info`.
    pub fn found_when_empty(&self) -> bool {
        matches!(
            self,
            Var::Slot(_)
                | Var::SetVar(..)
                | Var::IsArgs
                | Var::Https
                | Var::FastcgiScriptName
                | Var::FastcgiPathInfo
        )
    }
}

fn header_name(h: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(h.replace('_', "-").as_bytes()).ok()
}

/// One piece of a compiled template.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Literal bytes.
    Lit(Bytes),
    /// A variable.
    Var(Var),
}

/// A string with variables, compiled once at load.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a template failed to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `unknown "name" variable`
    Unknown(String),
    /// `${` without `}` or `$` followed by nothing usable.
    Syntax(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Unknown(n) => write!(f, "unknown \"{n}\" variable"),
            TemplateError::Syntax(s) => f.write_str(s),
        }
    }
}

impl Template {
    /// Compiles `src`, resolving each `$name` / `${name}` against the built-ins and `table`.
    pub fn compile(src: &str, table: &VarTable) -> Result<Template, TemplateError> {
        let b = src.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < b.len() {
            let c = b.get(i).copied().unwrap_or(0);
            if c != b'$' {
                let ch_len = src
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                lit.push_str(src.get(i..i + ch_len).unwrap_or(""));
                i += ch_len;
                continue;
            }
            // `$`
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                let rest = src.get(i + 2..).unwrap_or("");
                let end = rest.find('}').ok_or_else(|| {
                    TemplateError::Syntax(format!(
                        "the closing bracket in \"{src}\" variable is missing"
                    ))
                })?;
                (rest.get(..end).unwrap_or(""), i + 2 + end + 1)
            } else {
                let rest = src.get(i + 1..).unwrap_or("");
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                let n = if digits > 0 {
                    1 // nginx: $1 is one digit
                } else {
                    rest.bytes()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                        .count()
                };
                (rest.get(..n).unwrap_or(""), i + 1 + n)
            };
            if name.is_empty() {
                // A lone `$` is literal (nginx rejects it; being lenient here is harmless).
                lit.push('$');
                i += 1;
                continue;
            }
            let var =
                resolve(name, table).ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
            if !lit.is_empty() {
                pieces.push(Piece::Lit(Bytes::from(std::mem::take(&mut lit))));
            }
            pieces.push(Piece::Var(var));
            i = next;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(Bytes::from(lit)));
        }
        Ok(Template { pieces })
    }

    /// A template of one literal.
    pub fn literal(s: impl Into<Bytes>) -> Template {
        let b: Bytes = s.into();
        Template {
            pieces: if b.is_empty() {
                vec![]
            } else {
                vec![Piece::Lit(b)]
            },
        }
    }

    /// Whether it has no variables.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// The literal value, if it has no variables (borrowed).
    pub fn literal_bytes(&self) -> Option<&[u8]> {
        match self.pieces.as_slice() {
            [] => Some(&[]),
            [Piece::Lit(b)] => Some(b),
            _ => None,
        }
    }

    /// The literal value, if it has no variables.
    pub fn as_literal(&self) -> Option<Bytes> {
        match self.pieces.as_slice() {
            [] => Some(Bytes::new()),
            [Piece::Lit(b)] => Some(b.clone()),
            _ => None,
        }
    }

    /// Whether it uses any variable matching `f`.
    pub fn uses(&self, f: impl Fn(&Var) -> bool) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(v) if f(v)))
    }

    /// The pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Evaluates into `out`.
    pub fn eval_into(&self, cx: &RequestCtx, out: &mut BytesMut) {
        for p in &self.pieces {
            match p {
                Piece::Lit(b) => out.put_slice(b),
                Piece::Var(v) => cx.var_into(v, out),
            }
        }
    }

    /// Evaluates into `out` with `caps` (a map's regex key) for `$1…` when given.
    pub fn eval_into_with(
        &self,
        cx: &RequestCtx,
        caps: Option<&crate::ctx::Captures>,
        out: &mut BytesMut,
    ) {
        for p in &self.pieces {
            match (p, caps) {
                (Piece::Lit(b), _) => out.put_slice(b),
                (Piece::Var(Var::Capture(n)), Some(c)) => {
                    if let Some(s) = c.get(*n) {
                        out.put_slice(s.as_bytes())
                    }
                }
                (Piece::Var(v), _) => cx.var_into(v, out),
            }
        }
    }

    /// Evaluates for a log line: a variable without a value is written as `-` (an
    /// empty value that nginx counts as found stays empty), and `"`, `\`, control bytes
    /// and bytes from 0x7f as `\xHH`, as nginx's default log escaping
    /// (`ngx_http_log_escape`) does, so a value cannot break the line.
    pub fn eval_log_into(&self, cx: &RequestCtx, out: &mut BytesMut) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let needs = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b);
        for p in &self.pieces {
            match p {
                Piece::Lit(b) => out.put_slice(b),
                Piece::Var(v) => {
                    let before = out.len();
                    cx.var_into(v, out);
                    if out.len() == before && !v.found_when_empty() {
                        out.put_u8(b'-');
                    } else if out
                        .get(before..)
                        .is_some_and(|s| s.iter().any(|&b| needs(b)))
                    {
                        let value = out.split_off(before);
                        for &b in value.iter() {
                            if needs(b) {
                                out.put_slice(b"\\x");
                                let hex = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
                                out.put_u8(hex(b >> 4));
                                out.put_u8(hex(b & 0x0f));
                            } else {
                                out.put_u8(b);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Evaluates to `Bytes` (no allocation for a pure literal).
    pub fn eval(&self, cx: &RequestCtx) -> Bytes {
        if let Some(b) = self.as_literal() {
            return b;
        }
        let mut out = BytesMut::new();
        self.eval_into(cx, &mut out);
        out.freeze()
    }

    /// Evaluates to a `String` (lossy).
    pub fn eval_string(&self, cx: &RequestCtx) -> String {
        String::from_utf8_lossy(&self.eval(cx)).into_owned()
    }
}

/// Appends a displayable value to a `BytesMut` without an intermediate String.
pub(crate) fn put_int(out: &mut BytesMut, v: impl itoa::Integer) {
    out.put_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends an address as text: an IPv4 address digit by digit (the formatter is
/// slow for the variable nearly every request reads), an IPv6 one formatted.
pub(crate) fn put_ip(out: &mut BytesMut, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(a) => {
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                put_int(out, o);
            }
        }
        std::net::IpAddr::V6(_) => put_display(out, ip),
    }
}

/// Appends `v` formatted.
pub(crate) fn put_display(out: &mut BytesMut, v: impl std::fmt::Display) {
    struct W<'a>(&'a mut BytesMut);
    impl std::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.put_slice(s.as_bytes());
            Ok(())
        }
    }
    let _ = write!(W(out), "{v}");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn compiles_pieces() {
        let mut t = VarTable::default();
        t.slot("foo");
        let tpl = Template::compile("a $remote_addr-${host}x $1 $foo $http_x_real_ip", &t).unwrap();
        let kinds: Vec<_> = tpl
            .pieces()
            .iter()
            .map(|p| matches!(p, Piece::Var(_)))
            .collect();
        assert_eq!(
            kinds,
            vec![false, true, false, true, false, true, false, true, false, true]
        );
        assert!(matches!(tpl.pieces()[9], Piece::Var(Var::Http(ref h)) if h == "x-real-ip"));
        assert_eq!(
            Template::compile("$nope", &t).unwrap_err(),
            TemplateError::Unknown("nope".into())
        );
        assert!(Template::compile("${host", &t).is_err());
        assert!(Template::compile("plain", &t).unwrap().is_literal());
    }
}
