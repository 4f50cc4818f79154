//! `client_body_in_file_only on|clean|off` and `$request_body_file`: a request body a
//! `*_pass` reads whole is written, all of it, to a named file under
//! `client_body_temp_path`, so the backend can be handed the path instead of the bytes
//! (`fastcgi_param REQUEST_BODY_FILE $request_body_file;`, or
//! `proxy_set_header X-File $request_body_file; proxy_pass_request_body off;`).
//!
//! As nginx (`ngx_http_write_request_body`, `ngx_http_update_location_config`):
//! - `on` keeps the file after the request (nginx's persistent file); `clean` removes
//!   it once the response has been sent (nginx: when the request's pool is freed);
//! - only a body that is read whole gets a file: with `*_request_buffering off` the body
//!   streams and `$request_body_file` stays empty, as nginx's `request_body_no_buffering`;
//! - the body is read (and written to the file) with `*_pass_request_body off` too;
//! - a request without a body (no Content-Length, not chunked) has no file;
//! - `$request_body` is then empty: the body is not in memory.
//!
//! Junction's file names are 10 random characters (nginx numbers its files); without
//! `client_body_in_file_only` a body that spills goes to an unlinked file and
//! `$request_body_file` is empty (nginx names a file it has already unlinked).

use crate::body::{Buffered, ReqBody};
use crate::error::Error;
use std::io::Write;
use std::path::Path;

/// `client_body_in_file_only`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyInFile {
    /// `off` (the default): memory up to `client_body_buffer_size`, then an unlinked file.
    #[default]
    Off,
    /// `on`: the whole body in a named file, kept after the request.
    On,
    /// `clean`: the whole body in a named file, removed after the request.
    Clean,
}

impl BodyInFile {
    /// The directive's value (`on`, `clean`, `off`); `None` for anything else.
    pub fn parse(s: &str) -> Option<BodyInFile> {
        match s {
            "on" => Some(BodyInFile::On),
            "clean" => Some(BodyInFile::Clean),
            "off" => Some(BodyInFile::Off),
            _ => None,
        }
    }
}

/// A body spooled to a named file: the body to send (read back from the file), the
/// file's path (`$request_body_file`) and, for `clean`, the guard that removes it.
#[derive(Debug)]
pub struct Spooled {
    /// The body, its bytes in the file.
    pub body: Buffered,
    /// The file's path.
    pub path: std::path::PathBuf,
    /// Removes the file when dropped (`clean`); `None` for `on`.
    pub guard: Option<tempfile::TempPath>,
}

fn create(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("").rand_bytes(10);
        b
    };
    match builder().tempfile_in(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            builder().tempfile_in(dir)
        }
        r => r,
    }
}

/// Reads the whole client body into a named file in `dir`. `Ok(None)` when there is no
/// body to read (no file, as nginx for a request without one).
pub async fn spool(body: ReqBody, dir: &Path, mode: BodyInFile) -> Result<Option<Spooled>, Error> {
    let mut inc = match body {
        ReqBody::Incoming(b) => b,
        _ => return Ok(None),
    };
    let named = create(dir).map_err(|e| {
        Error::internal(format!("cannot create temp file in {}: {e}", dir.display()))
    })?;
    let (mut file, temp_path) = named.into_parts();
    let mut len = 0u64;
    while let Some(chunk) = inc.next_chunk().await? {
        len += chunk.len() as u64;
        file.write_all(&chunk)
            .map_err(|e| Error::internal(format!("temp file write: {e}")))?;
    }
    let path = temp_path.to_path_buf();
    let guard = match mode {
        BodyInFile::Clean => Some(temp_path),
        _ => {
            // `on`: the file stays after the request.
            let _ = temp_path.keep();
            None
        }
    };
    Ok(Some(Spooled {
        body: Buffered::from_file(file, len),
        path,
        guard,
    }))
}
