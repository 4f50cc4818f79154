//! # junction-server
//!
//! The HTTP front of Junction: what happens between accepting a client and
//! handing the request to a backend, and after.
//!
//! ## Layout
//! - `build`: directive tree → [`build::Runtime`] (servers, the location tree
//!   with compiled settings and backends, listen addresses, logs), once at load;
//!   [`build_all`] reports every error it can (one per `upstream`/`server` block, and
//!   every unsupported directive) for `junction -t`.
//! - `route`: `server_name` selection, location matching (nginx's order), URI
//!   normalization.
//! - `serve`: listeners, hyper HTTP/1.1 connections, the request phases,
//!   `error_page`, output headers, graceful/fast stop.
//! - `static_files`: the default content handler.
//! - `log`: access and error logs, written by background threads; reopen on SIGUSR1.
//! - `error_log`: the error log's `tracing` layer and the one span per request whose
//!   fields end every line as nginx's do (`client: …, server: …, request: …`).
//! - `error_io`: gives the errors hyper answers by itself (malformed requests)
//!   nginx's error page and `Server` header.
#![forbid(unsafe_code)]

pub mod build;
mod error_io;
pub mod error_log;
pub mod log;
pub mod route;
pub mod serve;
mod static_files;

pub use build::{build, build_all, Runtime};
pub use serve::{bind_all, serve, Stop};
