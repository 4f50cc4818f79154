//! Choosing the virtual server and the location, exactly as nginx does
//! (NGINX-SEMANTICS §1–3), and normalizing the request URI.

use junction_config::model::LocKind;
use junction_core::regex::Regex;
use std::sync::Arc;

/// A `server_name` entry.
#[derive(Debug, Clone)]
pub enum ServerName {
    /// `example.org`
    Exact(String),
    /// `*.example.org` (stored as `.example.org`); `.example.org` adds Exact too.
    WildFront(String),
    /// `mail.*` (stored as `mail.`)
    WildBack(String),
    /// `~regex`, with its named captures: (group, variable slot), filled at build.
    Regex(Regex, Vec<(usize, usize)>),
}

impl ServerName {
    /// Parses one `server_name` argument (lower-cased).
    pub fn parse(s: &str) -> Result<Vec<ServerName>, String> {
        if let Some(re) = s.strip_prefix('~') {
            // nginx: caseless when the pattern has an upper-case letter (the host is
            // lower-cased already).
            let r = Regex::compile(re, re.bytes().any(|b| b.is_ascii_uppercase()))?;
            return Ok(vec![ServerName::Regex(r, Vec::new())]);
        }
        let s = s.to_ascii_lowercase();
        if let Some(rest) = s.strip_prefix("*.") {
            return Ok(vec![ServerName::WildFront(format!(".{rest}"))]);
        }
        if let Some(rest) = s.strip_prefix('.') {
            return Ok(vec![
                ServerName::Exact(rest.to_string()),
                ServerName::WildFront(format!(".{rest}")),
            ]);
        }
        if let Some(rest) = s.strip_suffix(".*") {
            return Ok(vec![ServerName::WildBack(format!("{rest}."))]);
        }
        if s.contains('*') {
            return Err(format!("invalid server name or wildcard \"{s}\""));
        }
        Ok(vec![ServerName::Exact(s)])
    }
}

/// Picks a server for `host` among `count` candidates whose names `names(i)`
/// gives: exact, longest leading wildcard, longest trailing wildcard, first regex
/// in config order; else `default`. Allocates nothing.
pub fn select_server<'a>(
    count: usize,
    names: impl Fn(usize) -> &'a [ServerName],
    host: &str,
    default: usize,
) -> usize {
    if host.is_empty() {
        return default;
    }
    let all = || (0..count).flat_map(|i| names(i).iter().map(move |n| (i, n)));
    if let Some((i, _)) = all().find(|(_, n)| matches!(n, ServerName::Exact(e) if e == host)) {
        return i;
    }
    let mut best: Option<(usize, usize)> = None;
    for (i, n) in all() {
        if let ServerName::WildFront(suf) = n {
            if host.ends_with(suf.as_str()) && best.is_none_or(|(_, l)| suf.len() > l) {
                best = Some((i, suf.len()));
            }
        }
    }
    if let Some((i, _)) = best {
        return i;
    }
    for (i, n) in all() {
        if let ServerName::WildBack(pre) = n {
            if host.starts_with(pre.as_str()) && best.is_none_or(|(_, l)| pre.len() > l) {
                best = Some((i, pre.len()));
            }
        }
    }
    if let Some((i, _)) = best {
        return i;
    }
    all()
        .find(|(_, n)| matches!(n, ServerName::Regex(r, _) if r.is_match(host.as_bytes()).unwrap_or(false)))
        .map_or(default, |(i, _)| i)
}

/// A location in the tree, generic over what it carries.
#[derive(Debug)]
pub struct Loc<T> {
    /// How it matches.
    pub kind: LocKind,
    /// Prefix / exact string, or regex source.
    pub name: String,
    /// The compiled regex.
    pub regex: Option<Regex>,
    /// Nested prefix/exact locations.
    pub statics: Vec<Arc<Loc<T>>>,
    /// Nested regex locations, in config order.
    pub regexes: Vec<Arc<Loc<T>>>,
    /// Prefix location ending in `/` whose handler is a `*_pass` (301 rule).
    pub auto_redirect: bool,
    /// Payload.
    pub data: T,
}

/// The outcome of location matching.
#[derive(Debug)]
pub enum Found<T> {
    /// A location; with regex captures (spans into the URI) when a regex matched.
    Loc(Arc<Loc<T>>, Option<Vec<Option<(usize, usize)>>>),
    /// 301 to the URI with a trailing slash.
    SlashRedirect,
    /// Nothing matched.
    None,
}

enum Rc {
    Ok,
    Again,
    Declined,
    Done,
}

/// Finds the location for `uri` among `statics`/`regexes` (one level), recursing
/// into nested locations as nginx's `ngx_http_core_find_location` does.
pub fn find<T>(statics: &[Arc<Loc<T>>], regexes: &[Arc<Loc<T>>], uri: &str) -> Found<T> {
    let mut cur: Option<Arc<Loc<T>>> = None;
    let mut caps = None;
    let rc = find_level(statics, regexes, uri, &mut cur, &mut caps);
    match (rc, cur) {
        (Rc::Done, _) => Found::SlashRedirect,
        (_, Some(l)) => Found::Loc(l, caps),
        (_, None) => Found::None,
    }
}

fn find_level<T>(
    statics: &[Arc<Loc<T>>],
    regexes: &[Arc<Loc<T>>],
    uri: &str,
    cur: &mut Option<Arc<Loc<T>>>,
    caps: &mut Option<Vec<Option<(usize, usize)>>>,
) -> Rc {
    // Static: exact match wins; else the longest prefix; the slash redirect when the
    // URI is a `*_pass` prefix location's name without its trailing slash.
    let mut rc = Rc::Declined;
    let mut best: Option<&Arc<Loc<T>>> = None;
    let mut redirect = false;
    for l in statics {
        match l.kind {
            LocKind::Exact => {
                if l.name == uri {
                    *cur = Some(l.clone());
                    return Rc::Ok;
                }
            }
            _ => {
                if uri.starts_with(l.name.as_str()) {
                    if best.is_none_or(|b| l.name.len() > b.name.len()) {
                        best = Some(l);
                    }
                } else if l.auto_redirect
                    && l.name.len() == uri.len() + 1
                    && l.name.starts_with(uri)
                {
                    redirect = true;
                }
            }
        }
    }
    let mut noregex = false;
    if let Some(b) = best {
        if redirect && b.name.len() < uri.len() + 1 {
            // A longer `*_pass` location would match with the slash.
        }
        *cur = Some(b.clone());
        noregex = b.kind == LocKind::PrefixNoRegex;
        rc = Rc::Again;
    }
    if redirect {
        return Rc::Done;
    }
    if let Some(b) = best {
        let b = b.clone();
        let inner = find_level(&b.statics, &b.regexes, uri, cur, caps);
        match inner {
            Rc::Ok | Rc::Done => return inner,
            _ => {}
        }
    }
    if !noregex {
        for l in regexes {
            if let Some(re) = &l.regex {
                if let Ok(Some(c)) = re.captures(uri.as_bytes()) {
                    *caps = Some(c);
                    *cur = Some(l.clone());
                    let _ = find_level(&l.statics, &l.regexes, uri, cur, caps);
                    return Rc::Ok;
                }
            }
        }
    }
    rc
}

/// Why a URI was rejected.
#[derive(Debug, PartialEq, Eq)]
pub struct BadUri;

/// Normalizes a request path as nginx does: percent-decoding, merging slashes,
/// resolving `.` and `..` (above the root is an error), rejecting NUL.
pub fn normalize(path: &str) -> Result<String, BadUri> {
    normalize_with(path, true)
}

/// [`normalize`], with `merge_slashes off` when `merge` is false (empty segments
/// inside the path are kept).
pub fn normalize_with(path: &str, merge: bool) -> Result<String, BadUri> {
    if !path.starts_with('/') {
        return Err(BadUri);
    }
    let raw = path.as_bytes();
    // Nothing to decode or resolve (no `%`, NUL, `//`, `/.`): the path as it is.
    let mut prev = 0u8;
    let plain = raw.iter().all(|&c| {
        let ok = c != b'%' && c != 0 && !(prev == b'/' && (c == b'/' || c == b'.'));
        prev = c;
        ok
    });
    if plain {
        return Ok(path.to_string());
    }
    let mut dec = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c == b'%' {
            let h = raw.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let l = raw.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (h, l) {
                (Some(h), Some(l)) => {
                    let b = (h * 16 + l) as u8;
                    if b == 0 {
                        return Err(BadUri);
                    }
                    dec.push(b);
                    i += 3;
                    continue;
                }
                _ => return Err(BadUri),
            }
        }
        if c == 0 {
            return Err(BadUri);
        }
        dec.push(c);
        i += 1;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let trailing = dec.ends_with(b"/") || dec.ends_with(b"/.") || dec.ends_with(b"/..");
    let segs = dec.split(|c| *c == b'/').count();
    for (i, seg) in dec.split(|c| *c == b'/').enumerate() {
        match seg {
            b"" if !merge && i > 0 && i + 1 < segs => out.push(seg),
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(BadUri);
                }
            }
            s => out.push(s),
        }
    }
    let mut res = Vec::with_capacity(dec.len());
    for s in &out {
        res.push(b'/');
        res.extend_from_slice(s);
    }
    if trailing || res.is_empty() {
        res.push(b'/');
    }
    Ok(match String::from_utf8(res) {
        Ok(s) => s,
        Err(e) => {
            // nginx accepts non-UTF-8 paths; keep the invalid bytes in percent form.
            let bytes = e.into_bytes();
            let mut s = String::with_capacity(bytes.len() * 3);
            for chunk in bytes.utf8_chunks() {
                s.push_str(chunk.valid());
                for b in chunk.invalid() {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
            s
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn loc(kind: LocKind, name: &str) -> Arc<Loc<&'static str>> {
        Arc::new(Loc {
            regex: match kind {
                LocKind::Regex { caseless } => Some(Regex::compile(name, caseless).unwrap()),
                _ => None,
            },
            kind,
            name: name.into(),
            statics: vec![],
            regexes: vec![],
            auto_redirect: false,
            data: "",
        })
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/a//b/./c/../d").unwrap(), "/a/b/d");
        assert_eq!(normalize("/a%2Fb%20c").unwrap(), "/a/b c");
        assert_eq!(normalize("/a/..").unwrap(), "/");
        assert_eq!(normalize("/x/").unwrap(), "/x/");
        assert!(normalize("/..").is_err());
        assert!(normalize("/a%00").is_err());
        assert!(normalize("/a%zz").is_err());
    }

    #[test]
    fn location_order() {
        let statics = vec![
            loc(LocKind::Prefix, "/"),
            loc(LocKind::Exact, "/exact"),
            loc(LocKind::PrefixNoRegex, "/images/"),
            loc(LocKind::Prefix, "/documents/"),
        ];
        let regexes = vec![loc(LocKind::Regex { caseless: true }, r"\.(gif|jpg)$")];
        let name = |u: &str| match find(&statics, &regexes, u) {
            Found::Loc(l, _) => l.name.clone(),
            Found::SlashRedirect => "301".into(),
            Found::None => "none".into(),
        };
        assert_eq!(name("/"), "/");
        assert_eq!(name("/exact"), "/exact");
        assert_eq!(name("/exact/x"), "/");
        assert_eq!(name("/documents/a.html"), "/documents/");
        assert_eq!(name("/images/a.gif"), "/images/");
        assert_eq!(name("/documents/a.JPG"), r"\.(gif|jpg)$");
    }

    #[test]
    fn server_names() {
        let a = ServerName::parse("example.org").unwrap();
        let b = ServerName::parse("*.example.org").unwrap();
        let c = ServerName::parse("mail.*").unwrap();
        let d = ServerName::parse(r"~^www\d+\.").unwrap();
        let names: Vec<&[ServerName]> = vec![&a, &b, &c, &d];
        let sel = |h: &str| select_server(names.len(), |i| names[i], h, 9);
        assert_eq!(sel("example.org"), 0);
        assert_eq!(sel("x.example.org"), 1);
        assert_eq!(sel("mail.foo"), 2);
        assert_eq!(sel("www12.foo"), 3);
        assert_eq!(sel("other"), 9);
    }
}
