//! The pages Junction writes itself: status responses with nginx's small error page
//! bodies (`ngx_http_error_pages`), nginx's reason phrases, the server signature
//! (written once for the `Server` header and every page), the `http://host[:port]`
//! of the redirects it makes, and the error log line written where an error becomes
//! a response.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use junction_core::body::{self, Body};
use junction_core::ctx::RequestCtx;
use junction_core::Error;

/// Marks a status page Junction wrote itself (nginx's special responses, some of
/// which end keep-alive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnPage;

/// nginx's reason phrase for a status line.
pub(crate) fn reason_phrase(status: StatusCode) -> &'static str {
    nginx_reason(status)
        .or(status.canonical_reason())
        .unwrap_or("")
}

/// The server signature, written once for the `Server` header and every page Junction
/// makes itself: `junction/VERSION`, or `junction` under `server_tokens off`.
pub(crate) fn server_header_value(tokens: bool) -> &'static str {
    if tokens {
        concat!("junction/", env!("CARGO_PKG_VERSION"))
    } else {
        "junction"
    }
}

pub(crate) fn server_header(tokens: bool) -> HeaderValue {
    HeaderValue::from_static(server_header_value(tokens))
}

/// nginx's wording where it differs from the RFC's: the title of its own pages
/// (`ngx_http_error_pages`) and the reason phrase of its status lines.
fn nginx_reason(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        302 => "Moved Temporarily",
        401 => "Unauthorized",
        405 => "Not Allowed",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        416 => "Requested Range Not Satisfiable",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => return None,
    })
}

/// nginx's small error page.
pub(crate) fn error_page_body(status: StatusCode, tokens: bool) -> Bytes {
    // nginx's pages say "302 Found" and "401 Authorization Required" (its status lines
    // say "Moved Temporarily" and "Unauthorized").
    let reason = match status.as_u16() {
        302 => Some("Found"),
        401 => Some("Authorization Required"),
        _ => nginx_reason(status),
    };
    let reason = reason.or(status.canonical_reason()).unwrap_or("");
    page(status.as_u16(), reason, reason, None, tokens)
}

/// nginx's pages for the statuses it sends as 400 (494 "Request Header Or Cookie Too
/// Large", 495/496/497, `ngx_http_error_494_page` …): the title names the reason,
/// the heading says "400 Bad Request", a line under it repeats the reason.
pub(crate) fn bad_request_page(text: &str, tokens: bool) -> Bytes {
    page(400, text, "Bad Request", Some(text), tokens)
}

/// The frame of every page Junction writes (nginx's page and `ngx_http_error_tail`):
/// title, heading, an optional line under it, the signature.
fn page(code: u16, title: &str, h1: &str, line: Option<&str>, tokens: bool) -> Bytes {
    use std::fmt::Write as _;
    let sig = server_header_value(tokens);
    let mut s = String::with_capacity(
        136 + title.len() + h1.len() + line.map_or(0, |l| l.len() + 20) + sig.len(),
    );
    let _ = write!(
        s,
        "<html>\r\n<head><title>{code} {title}</title></head>\r\n<body>\r\n<center><h1>{code} {h1}</h1></center>\r\n"
    );
    if let Some(l) = line {
        let _ = write!(s, "<center>{l}</center>\r\n");
    }
    let _ = write!(s, "<hr><center>{sig}</center>\r\n</body>\r\n</html>\r\n");
    Bytes::from(s)
}

pub(crate) fn status_response(status: StatusCode, tokens: bool) -> http::Response<Body> {
    let with_body = status.as_u16() >= 300 && !matches!(status.as_u16(), 304);
    let body = if with_body {
        error_page_body(status, tokens)
    } else {
        Bytes::new()
    };
    let mut r = http::Response::new(body::full(body.clone()));
    *r.status_mut() = status;
    r.extensions_mut().insert(OwnPage);
    if let Some(reason) = nginx_reason(status) {
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    if with_body {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html"),
        );
    }
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

/// Logs `e` in the request's span (`crate::error_log` adds client, server, request and
/// host), naming the upstream tried last.
pub(crate) fn log_error(cx: &RequestCtx, e: &Error) {
    if e.is_logged() {
        return;
    }
    let upstream = cx.upstream.shown();
    match e.side() {
        junction_core::Side::Client => tracing::info!(upstream = %upstream, "{}", e.message()),
        _ => tracing::error!(upstream = %upstream, "{}", e.message()),
    }
}

pub(crate) fn host_port(cx: &RequestCtx) -> String {
    let port = cx.conn.local.port();
    if port == 80 {
        cx.host.to_string()
    } else {
        format!("{}:{port}", cx.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages are byte for byte what they were before they shared one frame.
    #[test]
    fn pages_keep_their_bytes() {
        let sig = server_header_value(true);
        for (code, title) in [
            (404, "404 Not Found"),
            (302, "302 Found"),
            (401, "401 Authorization Required"),
            (504, "504 Gateway Time-out"),
        ] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            let want = format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{sig}</center>\r\n</body>\r\n</html>\r\n"
            );
            assert_eq!(error_page_body(status, true), Bytes::from(want));
        }
        let text = "Request Header Or Cookie Too Large";
        let want = format!(
            "<html>\r\n<head><title>400 {text}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>{text}</center>\r\n<hr><center>junction</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(bad_request_page(text, false), Bytes::from(want));
    }
}
