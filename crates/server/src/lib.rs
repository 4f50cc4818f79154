//! # junction-server
//!
//! The HTTP front of Junction: what happens between accepting a client and
//! handing the request to a backend, and after.
//!
//! ## Layout
//! - `build`: directive tree → [`build::Runtime`] (servers, the location tree
//!   with compiled settings and backends, listen addresses, logs), once at load.
//! - `route`: `server_name` selection, location matching (nginx's order), URI
//!   normalization.
//! - `serve`: listeners, hyper HTTP/1.1 connections, the request phases,
//!   `error_page`, output headers, graceful/fast stop.
//! - `static_files`: the default content handler.
//! - `autoindex`: directory listings (`autoindex on`) in html, json, jsonp, xml.
//! - `filters`: output filters over every response (gzip/Brotli, …), built per
//!   location at load.
//! - `log`: access and error logs, written by background threads; reopen on SIGUSR1.
//! - `error_io`: gives the errors hyper answers by itself (malformed requests)
//!   nginx's error page and `Server` header.
#![forbid(unsafe_code)]

mod autoindex;
pub mod build;
mod error_io;
mod filters;
pub mod log;
pub mod route;
pub mod serve;
mod static_files;

pub use build::{build, Runtime};
pub use serve::{bind_all, serve, Stop};
