//! nginx's regular expressions: one type for every place a regex appears
//! (`location ~`, `server_name ~`, `rewrite`, `if`, `map`, `fastcgi_split_path_info`,
//! `proxy_redirect ~` …), compiled once at load.
//!
//! ## The engine, and why
//! nginx compiles every regex with PCRE2 (`ngx_regex_compile`: no UTF mode, only
//! `PCRE2_CASELESS` for `~*`), so a config's patterns mean what PCRE2 says they mean.
//! Two engines were tried on the patterns published configs use:
//! - `fancy-regex` (pure Rust, backtracking over `regex`) compiles look-around,
//!   back-references, atomic groups, possessive quantifiers and all three named-group
//!   spellings, but rejects `\Q…\E`, `(?|…)` and `(*VERB)`s, and — worse, silently —
//!   matches *differently*: its `\d`, `\w`, `\s`, `\b` and `.` are Unicode-aware
//!   (`^\d+$` matches Arabic digits, `^.$` matches `é` as one character), `$` does not
//!   match before a final newline, `\h` is a hex digit instead of horizontal space,
//!   and `(?i)k` matches the Kelvin sign. Translating all of that at compile time is a
//!   second regex parser to keep correct.
//! - the `pcre2` crate is nginx's own engine: every pattern nginx accepts compiles and
//!   matches the same strings by construction, with PCRE2's JIT. Its cost is C code
//!   behind an FFI boundary (PCRE2 is the library nginx, PHP and Perl run on every
//!   request, and is fuzzed continuously); it is built from the crate's bundled source
//!   when `libpcre2-dev` is absent, so nothing is needed at build time but a C compiler.
//!
//! Junction uses `pcre2`; our own code stays `forbid(unsafe_code)`. The subject is
//! bytes (no UTF check, as nginx); captures are byte spans into it.

use std::sync::Arc;

/// Capture spans of one match: `$0`, `$1` … (`None`: the group did not take part).
pub type Spans = Vec<Option<(usize, usize)>>;

/// A compiled regular expression with nginx's options.
#[derive(Clone)]
pub struct Regex {
    inner: Arc<pcre2::bytes::Regex>,
    caseless: bool,
}

impl std::fmt::Debug for Regex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Regex({:?}{})",
            self.inner.as_str(),
            if self.caseless { ", caseless" } else { "" }
        )
    }
}

/// A match failed inside PCRE2 (match or depth limit): nginx answers 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError(pub String);

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Regex {
    /// Compiles `pattern` as nginx does (`caseless`: `~*`). The error is nginx's
    /// message: `pcre2_compile() failed: MESSAGE in "PATTERN" at "REST"`.
    pub fn compile(pattern: &str, caseless: bool) -> Result<Regex, String> {
        let re = pcre2::bytes::RegexBuilder::new()
            .caseless(caseless)
            .jit_if_available(true)
            .build(pattern)
            .map_err(|e| compile_error(pattern, &e))?;
        Ok(Regex {
            inner: Arc::new(re),
            caseless,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.inner.as_str()
    }

    /// Whether it was compiled caseless (`~*`).
    pub fn caseless(&self) -> bool {
        self.caseless
    }

    /// Whether `subject` matches anywhere.
    pub fn is_match(&self, subject: &[u8]) -> Result<bool, MatchError> {
        self.inner
            .is_match(subject)
            .map_err(|e| self.match_error(subject, &e))
    }

    /// The capture spans of the first match, if any.
    pub fn captures(&self, subject: &[u8]) -> Result<Option<Spans>, MatchError> {
        // A miss (most regex locations, for most requests) runs on the crate's pooled
        // match data; only a hit pays for capture locations of its own.
        if !self.is_match(subject)? {
            return Ok(None);
        }
        let mut locs = self.inner.capture_locations();
        match self.inner.captures_read(&mut locs, subject) {
            Ok(Some(_)) => Ok(Some((0..locs.len()).map(|i| locs.get(i)).collect())),
            Ok(None) => Ok(None),
            Err(e) => Err(self.match_error(subject, &e)),
        }
    }

    /// Number of groups, `$0` included.
    pub fn captures_len(&self) -> usize {
        self.inner.captures_len()
    }

    /// The named groups: (group index, name), whichever spelling the pattern used
    /// (`(?<n>…)`, `(?'n'…)`, `(?P<n>…)`).
    pub fn names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.inner
            .capture_names()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }

    /// `src` with each `$name`/`${name}` of a named group of this regex written as
    /// `${N}`: a template that reads this regex's captures by position (`map` values,
    /// `proxy_redirect` replacements, evaluated against their own match).
    pub fn positional(&self, src: &str) -> String {
        let names: std::collections::HashMap<&str, usize> =
            self.names().map(|(i, n)| (n, i)).collect();
        if names.is_empty() {
            return src.to_string();
        }
        let mut out = String::with_capacity(src.len());
        let mut rest = src;
        while let Some(i) = rest.find('$') {
            out.push_str(rest.get(..i).unwrap_or(""));
            let after = rest.get(i + 1..).unwrap_or("");
            let (name, used) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(e) => (b.get(..e).unwrap_or(""), e + 2),
                    None => ("", 0),
                }
            } else {
                let n = after
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (after.get(..n).unwrap_or(""), n)
            };
            match names.get(name) {
                Some(g) => out.push_str(&format!("${{{g}}}")),
                None => {
                    out.push('$');
                    out.push_str(after.get(..used).unwrap_or(""));
                }
            }
            rest = after.get(used..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }

    fn match_error(&self, subject: &[u8], e: &pcre2::Error) -> MatchError {
        MatchError(format!(
            "pcre2_match() failed: {} on \"{}\" using \"{}\"",
            e.code(),
            String::from_utf8_lossy(subject),
            self.inner.as_str()
        ))
    }
}

/// nginx's wording (`ngx_regex_compile`), from the crate's `PCRE2: error compiling
/// pattern at offset N: MESSAGE`.
fn compile_error(pattern: &str, e: &pcre2::Error) -> String {
    let text = e.to_string();
    let msg = text
        .split_once(": ")
        .and_then(|(_, rest)| {
            if rest.starts_with("error compiling pattern") {
                rest.split_once(": ").map(|(_, m)| m)
            } else {
                Some(rest)
            }
        })
        .unwrap_or(&text);
    match e.offset().and_then(|o| pattern.get(o..)) {
        Some(rest) if !rest.is_empty() => {
            format!("pcre2_compile() failed: {msg} in \"{pattern}\" at \"{rest}\"")
        }
        _ => format!("pcre2_compile() failed: {msg} in \"{pattern}\""),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Regex::compile(p, false)
            .unwrap()
            .is_match(s.as_bytes())
            .unwrap()
    }

    #[test]
    fn pcre_syntax_and_semantics() {
        assert!(m(r"^/(?!api/)", "/web/x"));
        assert!(!m(r"^/(?!api/)", "/api/x"));
        assert!(m(r"(?<!\.php)$", "/a.html"));
        assert!(!m(r"^.*(?<!\.php)$", "/a.php"));
        assert!(m(r"^\Qa.b\E$", "a.b"));
        assert!(!m(r"^\Qa.b\E$", "axb"));
        assert!(m(r"^/(\w+)/\1$", "/ab/ab"));
        assert!(!m(r"^(?>a+)ab$", "aaab"));
        assert!(!m(r"^a++ab$", "aaab"));
        assert!(
            m(r"^/a$", "/a\n"),
            "PCRE's $ matches before a final newline"
        );
        assert!(!m(r"^\d+$", "١٢"), "\\d is ASCII in nginx");
        assert!(!m(r"^.$", "é"), "no UTF mode: é is two bytes");
        let ci = Regex::compile(r"\.(GIF|jpg)$", true).unwrap();
        assert!(ci.is_match(b"/a.gif").unwrap());
    }

    #[test]
    fn named_groups_in_every_spelling() {
        for p in [r"^/(?<y>\d+)/", r"^/(?'y'\d+)/", r"^/(?P<y>\d+)/"] {
            let re = Regex::compile(p, false).unwrap();
            assert_eq!(re.names().collect::<Vec<_>>(), vec![(1, "y")]);
            let c = re.captures(b"/2024/x").unwrap().unwrap();
            assert_eq!(c.get(1).copied().flatten(), Some((1, 5)));
        }
    }

    #[test]
    fn compile_errors_read_as_nginx() {
        let e = Regex::compile("(abc", false).unwrap_err();
        assert!(e.starts_with("pcre2_compile() failed: "), "{e}");
        assert!(e.contains("in \"(abc\""), "{e}");
        let e = Regex::compile("a)b", false).unwrap_err();
        assert!(e.ends_with("in \"a)b\" at \")b\""), "{e}");
    }
}
