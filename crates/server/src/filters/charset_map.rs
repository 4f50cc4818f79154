//! `charset_map SRC DST { … }` and the body conversion it allows, as
//! `ngx_http_charset_filter_module` does it:
//! - an 8-bit ↔ 8-bit table (`C0 FE;`): bytes below 0x80 stay, a byte the table does
//!   not name becomes `?`, both ways; the length does not change;
//! - an 8-bit → UTF-8 table (`DST` is `utf-8`, values are the UTF-8 bytes in hex,
//!   `C0 D18E;`, at most 3 bytes): unnamed bytes ≥ 0x80 become `?`; the reverse
//!   (UTF-8 → 8-bit) maps each character the table names back, writes any other as
//!   an HTML entity `&#N;`, and an invalid sequence as `?`; a sequence cut between two
//!   body pieces is completed with the next one. `Content-Length` is dropped then.
//!
//! Load errors are nginx's: `"charset_map" between the same charsets`, `"charset_map"
//! with "utf-8" charset should be given in the second column`, `duplicate
//! "charset_map" between`, `invalid value`, `invalid parameters number`. The tables
//! are built once at load (256 entries each way).

use bytes::{BufMut, Bytes, BytesMut};
use junction_config::model::{err, Scope};
use junction_config::ConfigError;
use junction_core::body::Body;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One `charset_map` block.
#[derive(Debug)]
struct Table {
    src: String,
    dst: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// 8-bit to 8-bit: the forward and the reverse byte tables.
    Bytes {
        fwd: Box<[u8; 256]>,
        rev: Box<[u8; 256]>,
    },
    /// 8-bit to UTF-8: each byte's UTF-8 bytes (`[len, b1, b2, b3]`), and the reverse
    /// as nginx keeps it, by the character's high byte then low byte (0: none).
    Utf8 {
        fwd: Box<[[u8; 4]; 256]>,
        rev: Vec<Option<Box<[u8; 256]>>>,
    },
}

/// The `charset_map` tables of a configuration.
#[derive(Debug, Default)]
pub(crate) struct CharsetMaps {
    tables: Vec<Arc<Table>>,
}

/// A conversion one response goes through.
#[derive(Debug, Clone)]
pub(crate) struct Conversion {
    table: Arc<Table>,
    /// From `dst` to `src` of the table (its reverse).
    reverse: bool,
}

impl Conversion {
    /// Whether the length of the body changes (to or from UTF-8): `Content-Length` is
    /// dropped, as nginx clears it.
    pub(crate) fn changes_length(&self) -> bool {
        matches!(self.table.kind, Kind::Utf8 { .. })
    }
}

fn hex(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl CharsetMaps {
    /// Reads every `charset_map` of the http level.
    pub(crate) fn build(scope: &Scope<'_>) -> Result<CharsetMaps, ConfigError> {
        let mut tables: Vec<Arc<Table>> = Vec::new();
        for d in scope.array("charset_map") {
            let (Some(a), Some(b)) = (d.args.first(), d.args.get(1)) else {
                return Err(err(
                    &d.span,
                    "invalid number of arguments in \"charset_map\" directive",
                ));
            };
            let (src, dst) = (a.value.to_ascii_lowercase(), b.value.to_ascii_lowercase());
            if src == dst {
                return Err(err(
                    &d.span,
                    format!(
                        "\"charset_map\" between the same charsets \"{}\" and \"{}\"",
                        a.value, b.value
                    ),
                ));
            }
            if src == "utf-8" {
                return Err(err(
                    &d.span,
                    "\"charset_map\" with \"utf-8\" charset should be given in the second column",
                ));
            }
            if tables
                .iter()
                .any(|t| (t.src == src && t.dst == dst) || (t.src == dst && t.dst == src))
            {
                return Err(err(
                    &d.span,
                    format!(
                        "duplicate \"charset_map\" between \"{}\" and \"{}\"",
                        a.value, b.value
                    ),
                ));
            }
            let entries = d.block.as_deref().unwrap_or(&[]);
            let kind = if dst == "utf-8" {
                let mut fwd = Box::new([[0u8; 4]; 256]);
                for (i, e) in fwd.iter_mut().enumerate() {
                    *e = [1, if i < 128 { i as u8 } else { b'?' }, 0, 0];
                }
                let mut rev: Vec<Option<Box<[u8; 256]>>> = vec![None; 256];
                let mut low = Box::new([0u8; 256]);
                for (i, v) in low.iter_mut().enumerate().take(128) {
                    *v = i as u8;
                }
                if let Some(r) = rev.first_mut() {
                    *r = Some(low);
                }
                for e in entries {
                    let invalid = |v: &str| err(&e.span, format!("invalid value \"{v}\""));
                    let Some(v) = e.args.first().filter(|_| e.args.len() == 1) else {
                        return Err(err(&e.span, "invalid parameters number"));
                    };
                    let byte = hex(&e.name)
                        .filter(|n| *n <= 255)
                        .ok_or_else(|| invalid(&e.name))?;
                    let s = v.value.as_str();
                    if s.len() / 2 > 3 || s.len() % 2 != 0 || s.is_empty() {
                        return Err(invalid(s));
                    }
                    let mut seq = [0u8; 4];
                    seq[0] = (s.len() / 2) as u8;
                    for (k, slot) in seq.iter_mut().skip(1).take(s.len() / 2).enumerate() {
                        let h = s
                            .get(k * 2..k * 2 + 2)
                            .and_then(hex)
                            .ok_or_else(|| invalid(s))?;
                        *slot = h as u8;
                    }
                    let bytes = seq.get(1..1 + s.len() / 2).unwrap_or(&[]);
                    let ch = match decode(bytes) {
                        Decode::Char(c, _) if c <= 0xffff => c,
                        _ => return Err(invalid(s)),
                    };
                    if let Some(f) = fwd.get_mut(byte as usize) {
                        *f = seq;
                    }
                    if let Some(slot) = rev.get_mut((ch >> 8) as usize) {
                        let page = slot.get_or_insert_with(|| Box::new([0u8; 256]));
                        if let Some(p) = page.get_mut((ch & 0xff) as usize) {
                            *p = byte as u8;
                        }
                    }
                }
                Kind::Utf8 { fwd, rev }
            } else {
                let mut fwd = Box::new([b'?'; 256]);
                let mut rev = Box::new([b'?'; 256]);
                for i in 0..128u8 {
                    if let (Some(f), Some(r)) = (fwd.get_mut(i as usize), rev.get_mut(i as usize)) {
                        (*f, *r) = (i, i);
                    }
                }
                for e in entries {
                    let invalid = |v: &str| err(&e.span, format!("invalid value \"{v}\""));
                    let Some(v) = e.args.first().filter(|_| e.args.len() == 1) else {
                        return Err(err(&e.span, "invalid parameters number"));
                    };
                    let s = hex(&e.name)
                        .filter(|n| *n <= 255)
                        .ok_or_else(|| invalid(&e.name))?;
                    let t = hex(&v.value)
                        .filter(|n| *n <= 255)
                        .ok_or_else(|| invalid(&v.value))?;
                    if let Some(f) = fwd.get_mut(s as usize) {
                        *f = t as u8;
                    }
                    if let Some(r) = rev.get_mut(t as usize) {
                        *r = s as u8;
                    }
                }
                Kind::Bytes { fwd, rev }
            };
            tables.push(Arc::new(Table { src, dst, kind }));
        }
        Ok(CharsetMaps { tables })
    }

    /// The conversion from charset `from` to `to` (either direction of a table).
    pub(crate) fn find(&self, from: &str, to: &str) -> Option<Conversion> {
        self.tables.iter().find_map(|t| {
            if t.src.eq_ignore_ascii_case(from) && t.dst.eq_ignore_ascii_case(to) {
                Some(Conversion {
                    table: t.clone(),
                    reverse: false,
                })
            } else if t.dst.eq_ignore_ascii_case(from) && t.src.eq_ignore_ascii_case(to) {
                Some(Conversion {
                    table: t.clone(),
                    reverse: true,
                })
            } else {
                None
            }
        })
    }
}

/// `ngx_utf8_decode`'s answers.
#[derive(Debug, PartialEq, Eq)]
enum Decode {
    /// A character and the bytes it took.
    Char(u32, usize),
    /// Not valid; the bytes to skip.
    Invalid(usize),
    /// The sequence goes on past the end of the input.
    Incomplete,
}

/// One UTF-8 character at the start of `s` (not empty), as `ngx_utf8_decode`: an
/// invalid lead byte is skipped alone, a bad continuation byte is skipped with what
/// came before it, an overlong form is invalid.
fn decode(s: &[u8]) -> Decode {
    let Some(&lead) = s.first() else {
        return Decode::Incomplete;
    };
    let (mut u, valid, len) = match lead {
        0xf8.. => return Decode::Invalid(1),
        0xf0.. => (u32::from(lead & 0x07), 0xffff, 3),
        0xe0.. => (u32::from(lead & 0x0f), 0x7ff, 2),
        0xc2.. => (u32::from(lead & 0x1f), 0x7f, 1),
        _ => return Decode::Invalid(1),
    };
    if s.len() - 1 < len {
        return Decode::Incomplete;
    }
    for k in 1..=len {
        let c = s.get(k).copied().unwrap_or(0);
        if c < 0x80 {
            return Decode::Invalid(k + 1);
        }
        u = (u << 6) | u32::from(c & 0x3f);
    }
    if u > valid {
        Decode::Char(u, len + 1)
    } else {
        Decode::Invalid(len + 1)
    }
}

impl Conversion {
    /// Converts one piece; `saved` holds an incomplete UTF-8 sequence between pieces.
    fn recode(&self, data: &[u8], saved: &mut Vec<u8>) -> Bytes {
        match (&self.table.kind, self.reverse) {
            (Kind::Bytes { fwd, rev }, reverse) => {
                let t = if reverse { rev } else { fwd };
                let out: Vec<u8> = data
                    .iter()
                    .map(|b| t.get(*b as usize).copied().unwrap_or(b'?'))
                    .collect();
                Bytes::from(out)
            }
            (Kind::Utf8 { fwd, .. }, false) => {
                let mut out = BytesMut::with_capacity(data.len() * 2);
                for b in data {
                    let e = fwd.get(*b as usize).copied().unwrap_or([1, b'?', 0, 0]);
                    let n = (e[0] as usize).min(3);
                    out.put_slice(e.get(1..1 + n).unwrap_or(b"?"));
                }
                out.freeze()
            }
            (Kind::Utf8 { rev, .. }, true) => {
                let joined;
                let input: &[u8] = if saved.is_empty() {
                    data
                } else {
                    saved.extend_from_slice(data);
                    joined = std::mem::take(saved);
                    &joined
                };
                let mut out = BytesMut::with_capacity(input.len());
                let mut i = 0;
                while let Some(rest) = input.get(i..).filter(|r| !r.is_empty()) {
                    let b = rest.first().copied().unwrap_or(0);
                    if b < 0x80 {
                        out.put_u8(b);
                        i += 1;
                        continue;
                    }
                    match decode(rest) {
                        Decode::Char(c, n) => {
                            i += n;
                            let mapped = (c < 0x10000)
                                .then(|| rev.get((c >> 8) as usize))
                                .flatten()
                                .and_then(|p| p.as_ref())
                                .and_then(|p| p.get((c & 0xff) as usize).copied())
                                .filter(|m| *m != 0);
                            match mapped {
                                Some(m) => out.put_u8(m),
                                None => out.put_slice(format!("&#{c};").as_bytes()),
                            }
                        }
                        Decode::Invalid(n) => {
                            i += n;
                            out.put_u8(b'?');
                        }
                        Decode::Incomplete => {
                            saved.extend_from_slice(rest);
                            break;
                        }
                    }
                }
                out.freeze()
            }
        }
    }

    /// The body converted as it streams.
    pub(crate) fn body(self, inner: Body) -> Body {
        use http_body_util::BodyExt;
        Recode {
            inner,
            conv: self,
            saved: Vec::new(),
        }
        .boxed_unsync()
    }
}

struct Recode {
    inner: Body,
    conv: Conversion,
    saved: Vec<u8>,
}

impl http_body::Body for Recode {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => {
                        let out = this.conv.recode(&d, &mut this.saved);
                        if out.is_empty() && !d.is_empty() {
                            continue; // all of it waits for the rest of a sequence
                        }
                        Poll::Ready(Some(Ok(http_body::Frame::data(out))))
                    }
                    Err(f) => Poll::Ready(Some(Ok(f))),
                },
                other => other,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn decode_as_nginx() {
        assert_eq!(decode("é".as_bytes()), Decode::Char(0xe9, 2));
        assert_eq!(decode("€".as_bytes()), Decode::Char(0x20ac, 3));
        assert_eq!(decode(&[0xe2, 0x82]), Decode::Incomplete);
        assert_eq!(decode(&[0xc0, 0x80]), Decode::Invalid(1));
        assert_eq!(decode(&[0xe0, 0x80, 0x80]), Decode::Invalid(3));
        assert_eq!(decode(&[0xc3, 0x41]), Decode::Invalid(2));
        assert_eq!(decode(&[0xff]), Decode::Invalid(1));
    }

    #[test]
    fn utf8_split_between_pieces() {
        let mut fwd = Box::new([[1u8, b'?', 0, 0]; 256]);
        fwd[0xc1] = [2, 0xd0, 0xb0, 0];
        let mut rev: Vec<Option<Box<[u8; 256]>>> = vec![None; 256];
        let mut page = Box::new([0u8; 256]);
        page[0x30] = 0xc1;
        rev[0x04] = Some(page);
        let conv = Conversion {
            table: Arc::new(Table {
                src: "koi8-r".into(),
                dst: "utf-8".into(),
                kind: Kind::Utf8 { fwd, rev },
            }),
            reverse: true,
        };
        let text = "aа€".as_bytes(); // a, U+0430 (mapped), U+20AC (not)
        for split in 0..=text.len() {
            let mut saved = Vec::new();
            let mut out = conv.recode(&text[..split], &mut saved).to_vec();
            out.extend_from_slice(&conv.recode(&text[split..], &mut saved));
            assert_eq!(out, b"a\xc1&#8364;", "split {split}");
        }
    }
}
