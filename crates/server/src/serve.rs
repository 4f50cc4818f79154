//! What every request of a connection shares (`Shared`: the runtime it runs under),
//! how to stop ([`Stop`]), and the paths the connections call the request by
//! (re-exported from the modules that own them, so `http1` and `http2` need no
//! change): `request::handle` is the entry, `pages` the status pages, `output` the
//! output headers and the access log.

use crate::build::Runtime;
use std::sync::Arc;

pub(crate) use crate::output::LocConn;
pub(crate) use crate::pages::{
    bad_request_page, error_page_body, reason_phrase, server_header_value, status_response, OwnPage,
};
pub(crate) use crate::request::handle;

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    Run,
    /// Stop accepting, finish in-flight requests (SIGQUIT).
    Graceful,
    /// Stop now (SIGTERM/SIGINT).
    Fast,
}

/// The version string in `Server` and error pages.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every request of a connection shares: the runtime it runs under.
pub(crate) struct Shared {
    pub(crate) rt: Arc<Runtime>,
}
