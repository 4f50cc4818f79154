//! A location's `*_pass` at request time, written once for every protocol: the
//! shared `PREFIX_*` family as data ([`Family`], read at load by the config crate),
//! what it does per request (the body prepared, the response's hidden headers
//! dropped), and the whole handler of the CGI-style protocols ([`CgiPass`]: uwsgi,
//! SCGI), which differ only in their head encoder and codec ([`CgiProtocol`]).
//!
//! Per request, a CGI-style pass: the body is prepared (buffered when
//! `*_request_buffering on`, or when chunked, so `CONTENT_LENGTH` is exact), the
//! params are evaluated (`HTTP_*` headers included), the protocol encodes the head (an
//! encode failure, such as uwsgi vars over 64 KiB, is an error before anything is
//! sent), the shared [`exchange`] runs with the protocol's codec, and the response is
//! filtered by [`Family::response`].

use crate::backend::{Backend, Response};
use crate::body::ReqBody;
use crate::cgi::ParamSet;
use crate::codec::UpstreamCodec;
use crate::ctx::RequestCtx;
use crate::error::Error;
use crate::exchange::{exchange, UpstreamConf};
use bytes::Bytes;
use std::path::PathBuf;

/// The shared `PREFIX_*` directive family of one location.
#[derive(Debug, Clone)]
pub struct Family {
    /// The driver's configuration (group, bind, timeouts, buffering, retries).
    pub upstream: UpstreamConf,
    /// `*_request_buffering`.
    pub request_buffering: bool,
    /// `client_body_buffer_size`.
    pub client_body_buffer_size: usize,
    /// Temp path for request bodies.
    pub body_temp_path: PathBuf,
    /// `*_hide_header` (lower-case names).
    pub hide_headers: Vec<String>,
    /// `*_pass_header` (lower-case names).
    pub pass_headers: Vec<String>,
    /// `*_intercept_errors`.
    pub intercept_errors: bool,
    /// `*_pass_request_headers`.
    pub pass_request_headers: bool,
    /// `*_pass_request_body`.
    pub pass_request_body: bool,
    /// `client_body_in_file_only`.
    pub body_in_file: crate::body_file::BodyInFile,
}

/// Upstream response headers every protocol hides by default (the `X-Accel-*`
/// ones of nginx's `*_hide_header` defaults) plus hop-by-hop ones; `*_pass_header`
/// lets one through. Each protocol adds its own defaults ([`PROXY_HIDE`],
/// [`CGI_HIDE`]).
pub const HIDE_RESPONSE: &[&str] = &[
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// `proxy_hide_header`'s own defaults: an HTTP upstream's `Date`, `Server` and
/// `X-Pad` are hidden (the client gets Junction's `Server` and `Date`).
pub const PROXY_HIDE: &[&str] = &["date", "server", "x-pad"];

/// The CGI-style protocols' own defaults (`fastcgi_hide_header`, `scgi_…`,
/// `uwsgi_…`): `Status` is the response's status, not a header. A script's
/// `Server`, `Date` and `X-Pad` reach the client as nginx passes them (and then
/// Junction adds no `Server` or `Date` of its own).
pub const CGI_HIDE: &[&str] = &["status"];

impl Family {
    /// The response headers to hide for this location (the common defaults, the
    /// protocol's own `own` defaults and `*_hide_header`, less `*_pass_header`),
    /// computed once at load by the protocol's builder.
    pub fn hidden_headers(&self, own: &[&'static str]) -> Vec<http::HeaderName> {
        HIDE_RESPONSE
            .iter()
            .chain(own)
            .filter(|h| !self.pass_headers.iter().any(|p| p == *h))
            .map(|h| http::HeaderName::from_static(h))
            .chain(
                self.hide_headers
                    .iter()
                    .filter_map(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
            )
            .collect()
    }

    /// Reads (buffers) the request body when the protocol needs it whole:
    /// `*_request_buffering on`, or `need_length` and the client sent no
    /// Content-Length (chunked) — CGI protocols must send an exact CONTENT_LENGTH.
    /// After buffering, `Content-Length` in the context is the exact length.
    pub async fn prepare_body(
        &self,
        cx: &mut crate::ctx::RequestCtx,
        body: crate::body::ReqBody,
        need_length: bool,
    ) -> Result<crate::body::ReqBody, crate::Error> {
        use crate::body::ReqBody;
        use crate::body_file::BodyInFile;
        if !self.pass_request_body {
            // nginx reads the body anyway (it is not sent): to its file when in_file_only.
            if self.body_in_file != BodyInFile::Off {
                if let Some(sp) =
                    crate::body_file::spool(body, &self.body_temp_path, self.body_in_file).await?
                {
                    self.keep_file(cx, sp);
                }
            }
            return Ok(ReqBody::Empty);
        }
        let must = self.request_buffering || (need_length && body.known_len().is_none());
        if !must {
            return Ok(body);
        }
        if self.body_in_file != BodyInFile::Off && matches!(body, ReqBody::Incoming(_)) {
            let sp = crate::body_file::spool(body, &self.body_temp_path, self.body_in_file).await?;
            let Some(sp) = sp else {
                return Ok(ReqBody::Empty);
            };
            let len = sp.body.len();
            let b = self.keep_file(cx, sp);
            if !cx.headers.contains_key(http::header::CONTENT_LENGTH)
                || cx.headers.contains_key(http::header::TRANSFER_ENCODING)
            {
                crate::cgi::set_content_length(cx, len);
            }
            return Ok(ReqBody::Buffered(b));
        }
        let b = body
            .buffer(self.client_body_buffer_size, &self.body_temp_path)
            .await?;
        if let ReqBody::Buffered(x) = &b {
            if self.upstream.vars.request_body() {
                cx.request_body = x.in_memory();
            }
            if !cx.headers.contains_key(http::header::CONTENT_LENGTH)
                || cx.headers.contains_key(http::header::TRANSFER_ENCODING)
            {
                crate::cgi::set_content_length(cx, x.len());
            }
        }
        Ok(b)
    }

    /// Records a spooled body's file for `$request_body_file` (and, for `clean`, its
    /// removal once the response has been sent); returns the body to send.
    fn keep_file(
        &self,
        cx: &mut crate::ctx::RequestCtx,
        sp: crate::body_file::Spooled,
    ) -> crate::body::Buffered {
        cx.request_body_file = Some(Bytes::from(sp.path.into_os_string().into_encoded_bytes()));
        if let Some(g) = sp.guard {
            cx.held.push(std::sync::Arc::new(g));
        }
        sp.body
    }

    /// Turns an upstream response into the client response: status, headers
    /// without the hidden ones, the relayed body.
    pub fn response(
        &self,
        up: crate::exchange::UpstreamResponse,
        hidden: &crate::header_set::HeaderSet,
    ) -> crate::backend::Response {
        let headers = hidden.remove_from(up.head.headers);
        crate::exchange::client_response(up.head.status, headers, up.body, up.unbuffered)
    }
}

/// What a CGI-style protocol supplies: its request head and its codec.
pub trait CgiProtocol: Send + Sync + 'static {
    /// How the params are framed as they are built, for `encode_head` to take them as
    /// they are.
    type Framing: crate::cgi::Framing;

    /// Encodes the request head from the evaluated params and the exact body length.
    fn encode_head(&self, params: crate::cgi::Params, body_len: u64) -> Result<Bytes, Error>;

    /// A fresh codec for one attempt; `head_limit` is `*_buffer_size`.
    fn codec(&self, head_limit: usize) -> Box<dyn UpstreamCodec>;
}

/// The backend of one location's CGI-style `*_pass`, built at load.
#[derive(Debug)]
pub struct CgiPass<P> {
    proto: P,
    fam: Family,
    params: ParamSet,
    hidden: crate::header_set::HeaderSet,
}

impl<P: CgiProtocol> CgiPass<P> {
    /// The pass of a location: its protocol, its `PREFIX_*` family and its
    /// `PREFIX_param` set (with `pass_request_headers` already applied).
    pub fn new(proto: P, fam: Family, params: ParamSet) -> Self {
        let hidden = crate::header_set::HeaderSet::new(fam.hidden_headers(CGI_HIDE));
        CgiPass {
            proto,
            fam,
            params,
            hidden,
        }
    }

    /// Over TLS to the upstream (`uwsgi_pass suwsgi://…`, the `uwsgi_ssl_*`
    /// directives); `schema` names it in log lines (`suwsgi://`).
    pub fn with_tls(mut self, tls: crate::upstream_tls::UpstreamTls, schema: &'static str) -> Self {
        self.fam.upstream.tls = Some(tls);
        self.fam.upstream.schema = schema;
        self
    }

    async fn run(&self, cx: &mut RequestCtx, body: ReqBody) -> Result<Response, Error> {
        let body = self.fam.prepare_body(cx, body, true).await?;
        let params = self.params.build::<P::Framing>(cx);
        let head = self
            .proto
            .encode_head(params, body.known_len().unwrap_or(0))?;
        let limit = self.fam.upstream.buffering.buffer_size;
        let new_codec = || self.proto.codec(limit);
        let up = exchange(&self.fam.upstream, cx, head, body, &new_codec).await?;
        Ok(self.fam.response(up, &self.hidden))
    }
}

impl<P: CgiProtocol> Backend for CgiPass<P> {
    crate::handle_by!(|cx, body| run(cx, body));

    fn intercept_errors(&self) -> bool {
        self.fam.intercept_errors
    }
}
