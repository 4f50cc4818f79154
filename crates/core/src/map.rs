//! `map` (ngx_http_map_module) at run time: a variable whose value is looked up from
//! another value, computed when first read and cached for the request (unless
//! `volatile`). Built once at load by the server crate.
//!
//! Lookup order as nginx's `ngx_http_map_find`: the exact keys (case-insensitive);
//! with `hostnames`, then the longest leading wildcard (`*.example.com`,
//! `.example.com`), then the longest trailing one (`www.example.*`); then the regexes
//! in the order written (their captures usable in the value); else `default`.

use crate::ctx::{Captures, RequestCtx};
use crate::regex::Regex;
use crate::vars::Template;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;

/// One `map` block.
#[derive(Debug)]
pub struct Map {
    /// What is looked up (`map SOURCE $var`), with variables.
    pub source: Template,
    /// Exact keys, lower case → value index.
    pub exact: HashMap<Vec<u8>, usize>,
    /// `hostnames`: leading wildcards as (suffix starting with `.`, value, also the bare
    /// name), longest first.
    pub heads: Vec<(Vec<u8>, usize, bool)>,
    /// `hostnames`: trailing wildcards as (prefix ending with `.`, value), longest first.
    pub tails: Vec<(Vec<u8>, usize)>,
    /// Regexes in order, with their value.
    pub regexes: Vec<(Regex, usize)>,
    /// The values (templates: text, variables, captures of a regex key).
    pub values: Vec<Template>,
    /// `default` (index into `values`), else the empty string.
    pub default: Option<usize>,
    /// `hostnames`.
    pub hostnames: bool,
    /// `volatile`: not cached.
    pub volatile: bool,
}

/// Every map of the configuration; [`crate::vars::Var::Map`] indexes it.
#[derive(Debug, Default)]
pub struct Maps {
    /// The maps, by variable index.
    pub maps: Vec<Map>,
}

impl Map {
    /// Looks `key` up: the value's index and the captures of a regex key.
    fn find(&self, key: &[u8]) -> Option<(usize, Option<Captures>)> {
        let low = key.to_ascii_lowercase();
        if let Some(v) = self.exact.get(&low) {
            return Some((*v, None));
        }
        // nginx tries no mask or regex on an empty value (`''` is an exact key).
        if key.is_empty() {
            return None;
        }
        if self.hostnames {
            for (suffix, v, bare) in &self.heads {
                if low.ends_with(suffix) && low.len() > suffix.len() {
                    return Some((*v, None));
                }
                if *bare && suffix.get(1..) == Some(low.as_slice()) {
                    return Some((*v, None));
                }
            }
            for (prefix, v) in &self.tails {
                if low.starts_with(prefix) && low.len() > prefix.len() {
                    return Some((*v, None));
                }
            }
        }
        for (re, v) in &self.regexes {
            // nginx: a match error ends the lookup (the variable is then not found).
            match re.captures(key) {
                Ok(Some(spans)) => {
                    let subject: Arc<str> = Arc::from(String::from_utf8_lossy(key).as_ref());
                    return Some((*v, Some(Captures { subject, spans })));
                }
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// The map's value for this request.
    pub fn eval(&self, cx: &RequestCtx) -> Bytes {
        let mut key = self.source.eval(cx);
        if self.hostnames && key.ends_with(b".") {
            key.truncate(key.len() - 1);
        }
        let (idx, caps) = match self.find(&key) {
            Some(x) => x,
            None => match self.default {
                Some(d) => (d, None),
                None => return Bytes::new(),
            },
        };
        let Some(t) = self.values.get(idx) else {
            return Bytes::new();
        };
        if let Some(b) = t.as_literal() {
            return b;
        }
        let mut out = BytesMut::new();
        t.eval_into_with(cx, caps.as_ref(), &mut out);
        out.freeze()
    }
}
