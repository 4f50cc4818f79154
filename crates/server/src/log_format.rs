//! `log_format NAME [escape=default|json|none] STRING …`, compiled once at load
//! (`ngx_http_log_compile_format`): the strings are joined into one template, and the
//! escaping mode decides how each *variable's* value is written (the format's own
//! text is written as it is, whatever the mode):
//!
//! - `default` (`ngx_http_log_escape`): `"`, `\`, bytes below 0x20 and from 0x7f
//!   become `\xHH` (upper-case hex); a variable without a value is written `-`.
//! - `json` (`ngx_escape_json`): `"` and `\` get a backslash, `\n` `\r` `\t` `\b` `\f`
//!   their short escapes, other bytes below 0x20 `\u00HH`; bytes from 0x7f are
//!   written unchanged (UTF-8 stays UTF-8); a variable without a value is written as
//!   nothing, so `"$remote_user"` is `""`.
//! - `none`: values as they are; a variable without a value is nothing.
//!
//! `escape=` is read only as the first string after the name, as nginx does (later
//! it is plain text of the format).
//!
//! The escaping is done in place in the line's buffer, after the value was appended:
//! one scan for the common value that needs nothing, no allocation for one that does.

use bytes::{BufMut, BytesMut};
use junction_config::model::err;
use junction_config::{ConfigError, Directive};
use junction_core::ctx::RequestCtx;
use junction_core::vars::{Piece, Template, Var, VarTable};
use std::collections::HashMap;
use std::sync::Arc;

/// The escaping of a `log_format`'s variable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    /// `escape=default` (and no `escape=`).
    #[default]
    Default,
    /// `escape=json`.
    Json,
    /// `escape=none`.
    None,
}

impl Escape {
    /// Reads the value of `escape=`.
    pub fn parse(s: &str) -> Option<Escape> {
        match s {
            "default" => Some(Escape::Default),
            "json" => Some(Escape::Json),
            "none" => Some(Escape::None),
            _ => None,
        }
    }
}

/// A compiled `log_format`.
#[derive(Debug)]
pub struct LogFormat {
    template: Template,
    escape: Escape,
}

impl LogFormat {
    /// A format from a template string with the default escaping (`combined`).
    pub fn compile_default(s: &str, vars: &VarTable) -> Result<LogFormat, ConfigError> {
        let template = Template::compile(s, vars).map_err(|e| ConfigError {
            span: None,
            msg: e.to_string(),
        })?;
        Ok(LogFormat {
            template,
            escape: Escape::Default,
        })
    }

    /// `log_format NAME [escape=…] STRING …` → (name, format).
    pub fn from_directive(
        d: &Directive,
        vars: &VarTable,
    ) -> Result<(String, LogFormat), ConfigError> {
        let name = d
            .args
            .first()
            .ok_or_else(|| err(&d.span, "invalid number of arguments in \"log_format\""))?;
        let mut rest = d.args.iter().skip(1).peekable();
        let mut escape = Escape::Default;
        if let Some(a) = rest.peek() {
            if let Some(e) = a.value.strip_prefix("escape=") {
                escape = Escape::parse(e)
                    .ok_or_else(|| err(&a.span, format!("unknown log format escaping \"{e}\"")))?;
                rest.next();
            }
        }
        let s: String = rest.map(|a| a.value.as_str()).collect();
        let template = Template::compile(&s, vars).map_err(|e| err(&d.span, e.to_string()))?;
        Ok((name.value.clone(), LogFormat { template, escape }))
    }

    /// The compiled template.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The escaping mode.
    pub fn escape(&self) -> Escape {
        self.escape
    }

    /// Appends the line for `cx` (without its newline) to `out`.
    pub fn write(&self, cx: &RequestCtx, out: &mut BytesMut) {
        for p in self.template.pieces() {
            match p {
                Piece::Lit(b) => out.put_slice(b),
                Piece::Var(v) => {
                    let before = out.len();
                    cx.var_into(v, out);
                    if out.len() == before {
                        if self.escape == Escape::Default && !found_when_empty(cx, v) {
                            out.put_u8(b'-');
                        }
                        continue;
                    }
                    match self.escape {
                        Escape::Default => escape_tail(out, before, default_len, default_enc),
                        Escape::Json => escape_tail(out, before, json_len, json_enc),
                        Escape::None => {}
                    }
                }
            }
        }
    }
}

/// Whether a variable with an empty value has one (nginx's `not_found` unset): a
/// header sent empty is a value (`""`), a header not sent is none (`-`); the same for
/// an argument (`?x=`) and a cookie (`x=`). Only asked for empty values.
fn found_when_empty(cx: &RequestCtx, v: &Var) -> bool {
    match v {
        Var::Http(name) => cx.headers.contains_key(name),
        Var::SentHttp(name) => cx.sent_headers.contains_key(name),
        Var::UpstreamHttp(name) => cx.upstream.headers.contains_key(name),
        // `?x=` and `?x` (`ngx_http_arg`): found, empty.
        Var::Arg(name) => cx.args.split('&').any(|part| {
            let n = part.split_once('=').map_or(part, |(n, _)| n);
            n.eq_ignore_ascii_case(name)
        }),
        Var::Cookie(name) => cx.headers.get_all(http::header::COOKIE).iter().any(|h| {
            h.as_bytes().split(|&b| b == b';').any(|part| {
                let part = part.trim_ascii_start();
                part.split(|&b| b == b'=').next().is_some_and(|n| {
                    part.contains(&b'=') && n.eq_ignore_ascii_case(name.as_bytes())
                })
            })
        }),
        _ => v.found_when_empty(),
    }
}

/// The formats of one `http {}` level: `combined` (nginx's built-in one, `combined`
/// given as its text) and every `log_format` (a name used twice is an error, as
/// `ngx_http_log_set_format` says; `combined` cannot be redefined).
pub fn formats(
    http: &[Directive],
    combined: &str,
    vars: &VarTable,
) -> Result<HashMap<String, Arc<LogFormat>>, ConfigError> {
    let mut m = HashMap::new();
    m.insert(
        "combined".to_string(),
        Arc::new(LogFormat::compile_default(combined, vars)?),
    );
    for d in http.iter().filter(|d| d.name == "log_format") {
        let (name, f) = LogFormat::from_directive(d, vars)?;
        if m.contains_key(&name) {
            return Err(err(
                &d.span,
                format!("duplicate \"log_format\" name \"{name}\""),
            ));
        }
        m.insert(name, Arc::new(f));
    }
    Ok(m)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(n: u8) -> u8 {
    HEX.get(usize::from(n & 0x0f)).copied().unwrap_or(b'0')
}

/// Bytes `ngx_http_log_escape` writes for `b` (1 = as it is).
fn default_len(b: u8) -> usize {
    if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
        4
    } else {
        1
    }
}

fn default_enc(b: u8, out: &mut [u8; 6]) -> usize {
    if default_len(b) == 1 {
        out[0] = b;
        return 1;
    }
    *out = [b'\\', b'x', hex(b >> 4), hex(b), 0, 0];
    4
}

/// Bytes `ngx_escape_json` writes for `b`.
fn json_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    }
}

fn json_enc(b: u8, out: &mut [u8; 6]) -> usize {
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0..=0x1f => {
            *out = [b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b)];
            return 6;
        }
        _ => {
            out[0] = b;
            return 1;
        }
    };
    out[0] = b'\\';
    out[1] = short;
    2
}

/// Escapes `out[from..]` in place: grows the buffer by what the escapes add and
/// rewrites the value from its end, so the bytes before `from` are never moved.
fn escape_tail(
    out: &mut BytesMut,
    from: usize,
    len: fn(u8) -> usize,
    enc: fn(u8, &mut [u8; 6]) -> usize,
) {
    let old = out.len();
    let extra: usize = out
        .get(from..)
        .map_or(0, |v| v.iter().map(|&b| len(b) - 1).sum());
    if extra == 0 {
        return;
    }
    out.resize(old + extra, 0);
    let mut w = old + extra;
    let mut tmp = [0u8; 6];
    for r in (from..old).rev() {
        let Some(&b) = out.get(r) else { return };
        let n = enc(b, &mut tmp);
        w -= n;
        if let (Some(dst), Some(src)) = (out.get_mut(w..w + n), tmp.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn esc(mode: Escape, prefix: &[u8], v: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::from(prefix);
        out.extend_from_slice(v);
        match mode {
            Escape::Default => escape_tail(&mut out, prefix.len(), default_len, default_enc),
            Escape::Json => escape_tail(&mut out, prefix.len(), json_len, json_enc),
            Escape::None => {}
        }
        out.to_vec()
    }

    #[test]
    fn default_escaping() {
        assert_eq!(esc(Escape::Default, b"\"", b"plain"), b"\"plain");
        assert_eq!(
            esc(Escape::Default, b"\"q\\", b"a\"b\\c\x01\x7f\xc3\xa9"),
            b"\"q\\a\\x22b\\x5Cc\\x01\\x7F\\xC3\\xA9".to_vec()
        );
        assert_eq!(esc(Escape::Default, b"", b"\t\n"), b"\\x09\\x0A".to_vec());
    }

    #[test]
    fn json_escaping() {
        assert_eq!(
            esc(
                Escape::Json,
                b"{\"",
                b"a\"b\\c\n\r\t\x08\x0c\x01\x1f\x7f\xc3\xa9\x80"
            ),
            b"{\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001F\x7f\xc3\xa9\x80".to_vec()
        );
        assert_eq!(esc(Escape::Json, b"", b""), b"".to_vec());
    }

    #[test]
    fn none_escaping() {
        assert_eq!(esc(Escape::None, b"x", b"\"\n"), b"x\"\n".to_vec());
    }
}
