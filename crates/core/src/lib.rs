//! # junction-core
//!
//! What every part of Junction shares, written once:
//!
//! ## Layout
//! - `error`: the one error type (which side failed, what failed) and its single
//!   mapping to an HTTP status.
//! - `codec`: the `UpstreamCodec` trait each protocol crate implements.
#![forbid(unsafe_code)]

pub mod codec;
pub mod error;

pub use error::{Error, ErrorKind, Result, Side};
