//! One error type for the whole request path. It records *which side* failed
//! (client, upstream, internal) and *what* failed, and `Error::status` is the
//! single place where a failure becomes an HTTP status code. It also carries the
//! *retry decision* ([`Retry`], after pingora's `RetryType`), set where the failure
//! happens, and the error it came from ([`std::error::Error::source`]).

use http::StatusCode;
use std::fmt;

/// Which party caused the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The downstream client sent something wrong or was too slow.
    Client,
    /// The upstream peer refused, timed out, or sent something wrong.
    Upstream,
    /// Junction itself (configuration, I/O on temp files, …).
    Internal,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request (400).
    BadRequest,
    /// Client too slow sending its header or body (408).
    ClientTimeout,
    /// Request body larger than `client_max_body_size` (413).
    BodyTooLarge,
    /// Request URI too long (414).
    UriTooLong,
    /// Request header fields too large (431).
    HeaderTooLarge,
    /// Method or transfer coding not implemented (501).
    NotImplemented,
    /// Could not connect to the upstream (502).
    Connect,
    /// Upstream did not answer within `*_connect/read/send_timeout` (504).
    Timeout,
    /// Upstream sent something that is not a valid response (502).
    InvalidResponse,
    /// Upstream response header larger than `*_buffer_size` (502).
    TooBigHeader,
    /// Upstream closed the connection prematurely (502).
    UpstreamClosed,
    /// Upstream I/O error while exchanging data (502).
    UpstreamIo,
    /// Upstream or queue overloaded (503).
    Overloaded,
    /// A request head that the protocol cannot encode (e.g. uwsgi vars > 64 KiB) (502).
    Encode,
    /// Internal error (500).
    Internal,
}

/// Whether, and how, the upstream exchange may make the request again after this
/// failure (nginx's `ngx_http_upstream_next`). Set where the failure happens, so the
/// rule travels with the error instead of a boolean passed beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Never made again: a byte of the response reached the client, or the failure is
    /// the client's or Junction's own.
    Never,
    /// `*_next_upstream` (its condition, the tries left, `non_idempotent`) decides
    /// whether the next server is tried; the attempt uses a try.
    NextUpstream,
    /// Nothing of a response arrived (the write failed, or the read met EOF or a reset
    /// before the first byte). On a connection reused from the keepalive pool this is
    /// the race with a peer closing an idle connection: the request is made again on a
    /// fresh connection to the same server without using a try (nginx: `tries++` for a
    /// cached peer on `NGX_HTTP_UPSTREAM_FT_ERROR`; pingora: `RetryType::ReusedOnly`),
    /// still only where `*_next_upstream` and `non_idempotent` allow it. On a fresh
    /// connection, as [`Retry::NextUpstream`].
    ReusedOnly,
}

/// The error carried along the request path.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    side: Side,
    retry: Retry,
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Already in the error log where it happened (nothing more to write).
    logged: bool,
}

impl Error {
    /// Builds an error of `kind` with a message for the error log.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Self {
        let side = match kind {
            ErrorKind::BadRequest
            | ErrorKind::ClientTimeout
            | ErrorKind::BodyTooLarge
            | ErrorKind::UriTooLong
            | ErrorKind::HeaderTooLarge
            | ErrorKind::NotImplemented => Side::Client,
            ErrorKind::Internal => Side::Internal,
            _ => Side::Upstream,
        };
        let retry = match kind {
            ErrorKind::Connect
            | ErrorKind::Timeout
            | ErrorKind::InvalidResponse
            | ErrorKind::UpstreamClosed
            | ErrorKind::UpstreamIo
            | ErrorKind::TooBigHeader => Retry::NextUpstream,
            _ => Retry::Never,
        };
        Error {
            kind,
            side,
            retry,
            msg: msg.into(),
            source: None,
            logged: false,
        }
    }

    /// The same error, marked as already written to the error log where it
    /// happened (nginx's `fastcgi_catch_stderr`: the stderr line is the only one).
    #[must_use]
    pub fn logged(mut self) -> Self {
        self.logged = true;
        self
    }

    /// Whether the error log already has this error ([`Error::logged`]).
    pub fn is_logged(&self) -> bool {
        self.logged
    }

    /// The same error with the retry decision `retry`.
    #[must_use]
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether and how the exchange may make the request again ([`Retry`]).
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// Settles [`Retry::ReusedOnly`] once it is known whether the connection came from
    /// the keepalive pool (pingora's `decide_reuse`): it stays `ReusedOnly` for a
    /// reused connection and becomes [`Retry::NextUpstream`] for a fresh one.
    #[must_use]
    pub fn decide_reuse(mut self, reused: bool) -> Self {
        if self.retry == Retry::ReusedOnly && !reused {
            self.retry = Retry::NextUpstream;
        }
        self
    }

    /// Upstream sent an invalid response.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidResponse, msg)
    }

    /// Internal failure.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, msg)
    }

    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Who failed.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The message for the error log.
    pub fn message(&self) -> &str {
        &self.msg
    }

    /// Whether the request may be made again at all (see [`Error::retry`]).
    pub fn retryable(&self) -> bool {
        self.retry != Retry::Never
    }

    /// The HTTP status this failure is answered with. The only place that maps.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Connect
            | ErrorKind::InvalidResponse
            | ErrorKind::TooBigHeader
            | ErrorKind::UpstreamClosed
            | ErrorKind::UpstreamIo
            | ErrorKind::Encode => StatusCode::BAD_GATEWAY,
        }
    }

    /// Wraps an I/O error that happened while talking to the upstream, in nginx's words:
    /// `CALL failed (CODE: TEXT) while DOING`.
    pub fn upstream_io(e: std::io::Error, call: &str, doing: &str) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::UnexpectedEof => ErrorKind::UpstreamClosed,
            _ => ErrorKind::UpstreamIo,
        };
        let msg = format!("{call} failed ({}) while {doing}", os_error_text(&e));
        Self::new(kind, msg).with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error as nginx writes it: `111: Connection refused` (no `(os error N)`).
pub fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            format!("{code}: {}", text.strip_suffix(&suffix).unwrap_or(&text))
        }
        None => text,
    }
}
