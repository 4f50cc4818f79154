//! One error type for the whole request path. It records *which side* failed
//! (client, upstream, internal) and *what* failed, and `Error::status` is the
//! single place where a failure becomes an HTTP status code.

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

/// The error carried along the request path.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    side: Side,
    msg: String,
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
        Error {
            kind,
            side,
            msg: msg.into(),
        }
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

    /// Whether another upstream server may be tried (nothing reached the client yet is
    /// the caller's business): connection-level failures and timeouts are retryable.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::InvalidResponse
                | ErrorKind::UpstreamClosed
                | ErrorKind::UpstreamIo
                | ErrorKind::TooBigHeader
        )
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

    /// Wraps an I/O error that happened while talking to the upstream.
    pub fn upstream_io(e: std::io::Error, what: &str) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            std::io::ErrorKind::UnexpectedEof => ErrorKind::UpstreamClosed,
            _ => ErrorKind::UpstreamIo,
        };
        Self::new(kind, format!("{what}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

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
