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
//! - `access`, `auth_basic`: the access phase (`allow`/`deny`, `auth_basic`, `satisfy`,
//!   `limit_except`).
//! - `limits`, `limit_req`, `limit_conn`: the preaccess phase (`limit_req`, `limit_conn`)
//!   and `limit_rate` on the response body.
//! - `proxy_protocol`: reads the PROXY protocol header of a `listen … proxy_protocol`
//!   connection (one call, before HTTP).
//! - `realip`: the client address from `X-Forwarded-For`/`X-Real-IP` (`set_real_ip_from`).
//! - `log`: access and error logs, written by background threads; reopen on SIGUSR1.
//! - `error_io`: gives the errors hyper answers by itself (malformed requests)
//!   nginx's error page and `Server` header.
#![forbid(unsafe_code)]

mod access;
mod auth_basic;
pub mod build;
mod error_io;
mod limit_conn;
mod limit_req;
mod limits;
pub mod log;
mod proxy_protocol;
mod realip;
pub mod route;
pub mod serve;
mod static_files;

pub use build::{build, Runtime};
pub use serve::{bind_all, serve, Stop};
