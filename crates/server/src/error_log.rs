//! The error log as nginx writes it, with the request each line belongs to.
//!
//! Every request runs inside one `request` span ([`request_span`]: connection id,
//! client, server, request line, host), so any event logged while it is handled — in
//! the server, in a backend, in the exchange, or in the relay task that reads the
//! upstream body after the response head went out — ends like nginx's
//! `ngx_http_log_error`: `*5 MESSAGE, client: 127.0.0.1, server: app, request: "GET /x
//! HTTP/1.1", upstream: "http://127.0.0.1:8081/x", host: "app"`. The `upstream` is a
//! field of the event that names one (only failures do, so nothing is formatted for a
//! request that logs nothing).
//!
//! [`ErrorLog`] is a `tracing` layer: it keeps the span's fields ([`on_new_span`]) and
//! writes each event as one line to its writer (stderr or a log [`Sink`]).
//!
//! [`on_new_span`]: tracing_subscriber::Layer::on_new_span
//! [`Sink`]: crate::log::Sink

use junction_core::ctx::RequestCtx;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The span name [`ErrorLog`] reads its context from.
const REQUEST_SPAN: &str = "request";

/// The span one request is handled in (created once the server is chosen).
pub fn request_span(cx: &RequestCtx) -> tracing::Span {
    tracing::error_span!(
        REQUEST_SPAN,
        conn = cx.conn.id,
        client = %cx.conn.client(),
        server = %cx.server_name,
        request = %format_args!("{} {} {:?}", cx.method, cx.request_uri, cx.version),
        host = %cx.host,
    )
}

/// The `request` span's fields, kept in the span's extensions.
#[derive(Debug, Default)]
struct RequestFields {
    conn: u64,
    client: String,
    server: String,
    request: String,
    host: String,
}

impl Visit for RequestFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "conn" {
            self.conn = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "client" => &mut self.client,
            "server" => &mut self.server,
            "request" => &mut self.request,
            "host" => &mut self.host,
            _ => return,
        };
        slot.clear();
        let _ = write!(slot, "{value:?}");
    }
}

/// An event's message and `upstream` field.
#[derive(Default)]
struct EventFields {
    message: String,
    upstream: String,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "upstream" => {
                let _ = write!(self.upstream, "{value:?}");
            }
            name => {
                // Other fields (rare): `name=value` after the message, as tracing does.
                let _ = write!(self.message, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "upstream" => self.upstream.push_str(value),
            name => {
                let _ = write!(self.message, " {name}={value}");
            }
        }
    }
}

/// Writes events as nginx error-log lines (`2026/11/29 22:54:50 [error] PID#0: …`).
pub struct ErrorLog<W> {
    make_writer: W,
}

impl<W> ErrorLog<W> {
    /// A layer writing each line to a fresh `make_writer()`.
    pub fn new(make_writer: W) -> Self {
        ErrorLog { make_writer }
    }
}

impl<S, W, O> tracing_subscriber::Layer<S> for ErrorLog<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Fn() -> O + Send + Sync + 'static,
    O: std::io::Write,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != REQUEST_SPAN {
            return;
        }
        let mut fields = RequestFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
        };
        let mut ev = EventFields::default();
        event.record(&mut ev);
        let mut line = format!(
            "{} [{level}] {}#0: ",
            junction_core::time::error_log_time(std::time::SystemTime::now()),
            std::process::id()
        );
        let request = ctx
            .event_scope(event)
            .and_then(|mut scope| scope.find(|s| s.name() == REQUEST_SPAN));
        match request {
            Some(span) => {
                let ext = span.extensions();
                match ext.get::<RequestFields>() {
                    Some(f) => {
                        let _ = write!(
                            line,
                            "*{} {}, client: {}, server: {}, request: \"{}\"",
                            f.conn, ev.message, f.client, f.server, f.request
                        );
                        if !ev.upstream.is_empty() {
                            let _ = write!(line, ", upstream: \"{}\"", ev.upstream);
                        }
                        let _ = write!(line, ", host: \"{}\"", f.host);
                    }
                    None => line.push_str(&ev.message),
                }
            }
            None => line.push_str(&ev.message),
        }
        line.push('\n');
        let mut w = (self.make_writer)();
        let _ = w.write_all(line.as_bytes());
    }
}
