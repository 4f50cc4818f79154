//! The directive tree both syntaxes parse into, the loader (files, includes, built-in
//! include files) and the nginx-syntax printer.
//!
//! A tree is `Vec<Directive>`; a directive is a name, its arguments and, for block directives,
//! the directives of its block. Every directive and argument carries the [`Span`] it was
//! written at, in the file it was written in (an included file's directives keep their own
//! file and lines), so every later check reports `FILE:LINE` (nginx syntax) or
//! `FILE:LINE:COL` (TOML).
//!
//! Includes are expanded while loading, in place, so the tree a caller sees never contains an
//! `include` directive. See [`Loader`] for how include paths are resolved.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lexer::{Event, LexError, Lexer, Word};

/// Where a directive or argument was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file (shared by all spans of that file).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters), or 0 when not tracked (nginx syntax).
    pub col: u32,
}

impl Span {
    /// A span at `line` (and `col`, 0 for none) of `file`.
    pub fn new(file: Arc<PathBuf>, line: u32, col: u32) -> Self {
        Span { file, line, col }
    }
}

impl fmt::Display for Span {
    /// `FILE:LINE` like nginx, or `FILE:LINE:COL` when the column is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.col != 0 {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One argument of a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The value: quotes removed, escapes applied, `$variables` kept verbatim.
    pub value: String,
    /// Whether it was written in quotes (informational; nginx gives quotes no meaning).
    pub quoted: bool,
    /// Where it starts.
    pub span: Span,
}

impl Arg {
    /// The value as `&str`.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// One directive: `name args…;` or `name args… { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The block, for block directives (`Some(vec![])` for an empty block).
    pub block: Option<Vec<Directive>>,
    /// Where the name starts.
    pub span: Span,
}

impl Directive {
    /// The value of argument `i`, if there is one.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(|a| a.value.as_str())
    }

    /// The argument values.
    pub fn values(&self) -> impl Iterator<Item = &str> + '_ {
        self.args.iter().map(|a| a.value.as_str())
    }

    /// The directives of the block (empty for a simple directive).
    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or_default()
    }

    /// An error about this directive, at its span.
    pub fn error(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.span, msg)
    }

    /// Whether two trees are the same, spans aside (names, argument values and quoting,
    /// blocks).
    pub fn same_as(&self, other: &Directive) -> bool {
        self.name == other.name
            && self.args.len() == other.args.len()
            && self
                .args
                .iter()
                .zip(&other.args)
                .all(|(a, b)| a.value == b.value && a.quoted == b.quoted)
            && match (&self.block, &other.block) {
                (None, None) => true,
                (Some(a), Some(b)) => same_tree(a, b),
                _ => false,
            }
    }
}

/// Whether two trees are the same, spans aside (see [`Directive::same_as`]).
pub fn same_tree(a: &[Directive], b: &[Directive]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
}

/// A config error, displayed like nginx: `MSG in FILE:LINE` (or just `MSG` without a span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, if known.
    pub span: Option<Span>,
    /// The message, nginx's text where nginx has one.
    pub msg: String,
}

impl ConfigError {
    /// An error at `span`.
    pub fn at(span: &Span, msg: impl Into<String>) -> Self {
        ConfigError {
            span: Some(span.clone()),
            msg: msg.into(),
        }
    }

    /// An error with no location.
    pub fn new(msg: impl Into<String>) -> Self {
        ConfigError {
            span: None,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.span {
            Some(s) => write!(f, "{} in {}", self.msg, s),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The include files nginx (and Debian's nginx-common) ships next to `nginx.conf`, embedded:
/// an `include` of one of these relative names that is not found on disk uses this copy (so a config written for a distro
/// nginx, `include fastcgi_params;`, works anywhere).
pub fn builtin_include(name: &str) -> Option<&'static str> {
    match name {
        "mime.types" => Some(include_str!("../../../config/mime.types")),
        "fastcgi_params" => Some(include_str!("../../../config/fastcgi_params")),
        "fastcgi.conf" => Some(include_str!("../../../config/fastcgi.conf")),
        "uwsgi_params" => Some(include_str!("../../../config/uwsgi_params")),
        "scgi_params" => Some(include_str!("../../../config/scgi_params")),
        // Debian's and Ubuntu's additions (nginx-common).
        "proxy_params" => Some(include_str!(
            "../../../config/debian/etc-nginx/proxy_params"
        )),
        "snippets/fastcgi-php.conf" => Some(include_str!(
            "../../../config/debian/etc-nginx/snippets/fastcgi-php.conf"
        )),
        _ => None,
    }
}

/// How deep includes may nest by default (a file including itself fails here).
pub const DEFAULT_MAX_INCLUDE_DEPTH: u32 = 32;

/// How deep blocks may nest (guards the recursive parser's stack).
const MAX_BLOCK_DEPTH: u32 = 128;

/// Loads config files: picks the syntax, expands includes, falls back to built-in include
/// files.
///
/// Include resolution: a relative pattern is resolved against the *prefix* directory, which
/// is the directory of the file given to [`Loader::load`] (or [`Loader::parse_nginx_str`]),
/// as nginx resolves them against its conf prefix; when nothing is found there, against the
/// directory of the including file (so an included file may include its neighbours).
/// Absolute patterns are used as they are. A pattern with `*`, `?` or `[` is a glob (matches
/// sorted, hidden files need a literal `.`, directories skipped) and may match nothing; a
/// plain path must exist, else ``open() "PATH" failed (2: No such file or directory)``, unless
/// it is a bare name the built-in hook knows ([`builtin_include`] by default). Included files
/// ending in `.toml` are read as TOML, others as nginx syntax.
#[derive(Clone)]
pub struct Loader<'a> {
    builtins: &'a dyn Fn(&str) -> Option<&'static str>,
    max_include_depth: u32,
    prefix: Option<PathBuf>,
}

impl fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loader")
            .field("max_include_depth", &self.max_include_depth)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Default for Loader<'static> {
    fn default() -> Self {
        Loader::new()
    }
}

impl Loader<'static> {
    /// A loader with the embedded built-in include files.
    pub fn new() -> Self {
        Loader {
            builtins: &builtin_include,
            max_include_depth: DEFAULT_MAX_INCLUDE_DEPTH,
            prefix: None,
        }
    }
}

impl<'a> Loader<'a> {
    /// Replace the built-in include hook (`|_| None` disables the fallback).
    pub fn with_builtins<'b>(self, hook: &'b dyn Fn(&str) -> Option<&'static str>) -> Loader<'b> {
        Loader {
            builtins: hook,
            max_include_depth: self.max_include_depth,
            prefix: self.prefix,
        }
    }

    /// Resolve relative includes against `dir` instead of the main file's directory (nginx's
    /// `-p`/conf prefix).
    pub fn with_prefix(mut self, dir: impl Into<PathBuf>) -> Self {
        self.prefix = Some(dir.into());
        self
    }

    /// Limit include nesting.
    pub fn with_max_include_depth(mut self, depth: u32) -> Self {
        self.max_include_depth = depth;
        self
    }

    fn session(&self, main_file: &Path) -> Session<'_, 'a> {
        let prefix = match &self.prefix {
            Some(p) => p.clone(),
            None => dir_of(main_file),
        };
        Session {
            loader: self,
            prefix,
            open: RefCell::new(vec![canonical(main_file)]),
        }
    }

    /// Load a config file: TOML if its name ends in `.toml`, nginx syntax otherwise.
    pub fn load(&self, path: &Path) -> Result<Vec<Directive>, ConfigError> {
        self.session(path).load_file(path, None, 0)
    }

    /// Parse nginx syntax read from `file` (used for spans and to resolve includes).
    pub fn parse_nginx_str(&self, src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
        let file = Arc::new(file.to_path_buf());
        self.session(&file).parse_nginx(src, &file, 0)
    }

    /// Parse TOML syntax read from `file` (used for spans and to resolve includes).
    pub fn parse_toml_str(&self, src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
        let file = Arc::new(file.to_path_buf());
        self.session(&file).parse_toml(src, &file, 0)
    }
}

/// Load a config file with the default [`Loader`]: TOML if the name ends in `.toml`, nginx
/// syntax otherwise; includes expanded.
pub fn load(path: &Path) -> Result<Vec<Directive>, ConfigError> {
    Loader::new().load(path)
}

/// Parse nginx syntax; `file` names it in spans and its directory resolves includes.
pub fn parse_nginx_str(src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
    Loader::new().parse_nginx_str(src, file)
}

/// Parse TOML syntax (see the crate docs for the mapping); `file` names it in spans and its
/// directory resolves includes.
pub fn parse_toml_str(src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
    Loader::new().parse_toml_str(src, file)
}

fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The path with symlinks and `..` resolved when it exists, to recognise a file included again.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

/// `(2: No such file or directory)`, like nginx's `ngx_strerror` suffix.
fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = match text.rfind(" (os error") {
                Some(i) => text.get(..i).unwrap_or(&text).to_string(),
                None => text,
            };
            format!("({code}: {text})")
        }
        None => format!("({e})"),
    }
}

/// One load: the prefix for relative includes is fixed by the main file.
struct Session<'l, 'a> {
    loader: &'l Loader<'a>,
    prefix: PathBuf,
    /// The files being read, outermost first, to report include cycles.
    open: RefCell<Vec<PathBuf>>,
}

impl Session<'_, '_> {
    fn load_file(
        &self,
        path: &Path,
        at: Option<&Span>,
        depth: u32,
    ) -> Result<Vec<Directive>, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            span: at.cloned(),
            msg: format!("open() \"{}\" failed {}", path.display(), os_error(&e)),
        })?;
        let src = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let file = Arc::new(path.to_path_buf());
        let canon = canonical(path);
        if at.is_some() {
            if self.open.borrow().contains(&canon) {
                return Err(ConfigError {
                    span: at.cloned(),
                    msg: format!("include cycle: \"{}\" includes itself", path.display()),
                });
            }
            self.open.borrow_mut().push(canon);
        }
        let tree = if is_toml(path) {
            self.parse_toml(&src, &file, depth)
        } else {
            self.parse_nginx(&src, &file, depth)
        };
        if at.is_some() {
            self.open.borrow_mut().pop();
        }
        tree
    }

    fn parse_nginx(
        &self,
        src: &str,
        file: &Arc<PathBuf>,
        depth: u32,
    ) -> Result<Vec<Directive>, ConfigError> {
        let mut lx = Lexer::new(src);
        self.nginx_block(&mut lx, file, depth, 0)
    }

    fn parse_toml(
        &self,
        src: &str,
        file: &Arc<PathBuf>,
        depth: u32,
    ) -> Result<Vec<Directive>, ConfigError> {
        let tree = crate::toml_syntax::parse(src, file)?;
        self.expand_all(tree, depth)
    }

    /// Expand the includes of a tree built without expanding them (TOML).
    fn expand_all(&self, tree: Vec<Directive>, depth: u32) -> Result<Vec<Directive>, ConfigError> {
        let mut out = Vec::with_capacity(tree.len());
        for mut d in tree {
            if d.name == "include" && d.block.is_none() {
                out.extend(self.include(&d, depth)?);
                continue;
            }
            if d.name == "include" {
                return Err(d.error("directive \"include\" is not terminated by \";\""));
            }
            if let Some(block) = d.block.take() {
                d.block = Some(self.expand_all(block, depth)?);
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Parse directives until the end of the block (`in_block > 0`) or of the file.
    fn nginx_block(
        &self,
        lx: &mut Lexer<'_>,
        file: &Arc<PathBuf>,
        depth: u32,
        in_block: u32,
    ) -> Result<Vec<Directive>, ConfigError> {
        let lex_err = |e: LexError| ConfigError::at(&Span::new(file.clone(), e.line, 0), e.msg);
        let mut out = Vec::new();
        loop {
            let mut words = Vec::new();
            let ev = lx.read_token(&mut words).map_err(lex_err)?;
            let here = Span::new(file.clone(), lx.line(), 0);
            match ev {
                Event::Eof => {
                    if in_block > 0 {
                        return Err(ConfigError::at(
                            &here,
                            "unexpected end of file, expecting \"}\"",
                        ));
                    }
                    return Ok(out);
                }
                Event::BlockDone => {
                    if in_block == 0 {
                        return Err(ConfigError::at(&here, "unexpected \"}\""));
                    }
                    return Ok(out);
                }
                Event::End | Event::BlockStart => {
                    let Some(mut d) = directive_from_words(words, file) else {
                        // the lexer never returns End/BlockStart without a word
                        continue;
                    };
                    // nginx reports a directive's errors at the line of its `;` or `{`.
                    d.span.line = here.line;
                    if ev == Event::End {
                        if d.name == "include" {
                            out.extend(self.include(&d, depth)?);
                        } else {
                            out.push(d);
                        }
                        continue;
                    }
                    if d.name == "include" {
                        return Err(ConfigError::at(
                            &here,
                            "directive \"include\" is not terminated by \";\"",
                        ));
                    }
                    if in_block >= MAX_BLOCK_DEPTH {
                        return Err(ConfigError::at(&here, "too deeply nested blocks"));
                    }
                    let block = self.nginx_block(lx, file, depth, in_block + 1)?;
                    out.push(Directive {
                        block: Some(block),
                        ..d
                    });
                }
            }
        }
    }

    /// Expand `include PATTERN;` into the directives of the files it names.
    fn include(&self, d: &Directive, depth: u32) -> Result<Vec<Directive>, ConfigError> {
        let [arg] = d.args.as_slice() else {
            return Err(d.error("invalid number of arguments in \"include\" directive"));
        };
        if depth >= self.loader.max_include_depth {
            return Err(d.error(format!(
                "too deep include nesting (more than {}) for \"{}\"",
                self.loader.max_include_depth, arg.value
            )));
        }
        let pattern = arg.value.as_str();
        let including_dir = dir_of(&d.span.file);
        let mut dirs = vec![self.prefix.clone()];
        if including_dir != self.prefix && !d.span.file.starts_with("<builtin>") {
            dirs.push(including_dir);
        }

        if pattern.contains(['*', '?', '[']) {
            for dir in &dirs {
                let files = glob_files(dir, pattern, d)?;
                if files.is_empty() {
                    continue;
                }
                let mut out = Vec::new();
                for f in files {
                    out.extend(self.load_file(&f, Some(&d.span), depth + 1)?);
                }
                return Ok(out);
            }
            return Ok(Vec::new());
        }

        let primary = self.prefix.join(pattern);
        for dir in &dirs {
            let path = dir.join(pattern);
            if std::fs::metadata(&path).is_ok() {
                return self.load_file(&path, Some(&d.span), depth + 1);
            }
        }
        if !Path::new(pattern).is_absolute() {
            if let Some(src) = (self.loader.builtins)(pattern) {
                let file = Arc::new(Path::new("<builtin>").join(pattern));
                return self.parse_nginx(src, &file, depth + 1);
            }
        }
        self.load_file(&primary, Some(&d.span), depth + 1)
    }
}

/// The files a glob include names, sorted, directories left out.
fn glob_files(dir: &Path, pattern: &str, d: &Directive) -> Result<Vec<PathBuf>, ConfigError> {
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_string()
    } else {
        let dir = glob::Pattern::escape(&dir.to_string_lossy());
        format!("{}/{}", dir.trim_end_matches('/'), pattern)
    };
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(&full, opts)
        .map_err(|e| d.error(format!("glob() \"{full}\" failed ({e})")))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| d.error(format!("glob() \"{full}\" failed ({e})")))?;
        if std::fs::metadata(&p).is_ok_and(|m| !m.is_dir()) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn directive_from_words(words: Vec<Word>, file: &Arc<PathBuf>) -> Option<Directive> {
    let mut it = words.into_iter();
    let name = it.next()?;
    let args = it
        .map(|w| Arg {
            value: w.value,
            quoted: w.quoted,
            span: Span::new(file.clone(), w.line, 0),
        })
        .collect();
    Some(Directive {
        name: name.value,
        args,
        block: None,
        span: Span::new(file.clone(), name.line, 0),
    })
}

// ---------------------------------------------------------------------------------------
// printing

/// Print a tree in nginx syntax (for `junction -T`): four-space indentation, arguments quoted
/// where needed so that parsing the output gives the same tree (spans aside): an argument
/// that was quoted is printed quoted; an unquoted one is printed bare with backslash escapes
/// when that reads back the same, else double-quoted.
pub fn print_nginx(tree: &[Directive]) -> String {
    let mut out = String::new();
    print_block(tree, 0, &mut out);
    out
}

fn print_block(tree: &[Directive], level: usize, out: &mut String) {
    for d in tree {
        for _ in 0..level {
            out.push_str("    ");
        }
        out.push_str(&encode_word(&d.name, false));
        for a in &d.args {
            out.push(' ');
            out.push_str(&encode_word(&a.value, a.quoted));
        }
        match &d.block {
            None => out.push_str(";\n"),
            Some(block) => {
                out.push_str(" {\n");
                print_block(block, level + 1, out);
                for _ in 0..level {
                    out.push_str("    ");
                }
                out.push_str("}\n");
            }
        }
    }
}

/// Escape `value` for nginx's lexer, bare or inside `quote`.
fn escape(value: &str, quote: Option<char>) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    if let Some(q) = quote {
        out.push(q);
    }
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                // a backslash the lexer would take as the start of an escape: double it
                None | Some('"' | '\'' | '\\' | 't' | 'r' | 'n' | '\t' | '\r' | '\n') => {
                    out.push_str("\\\\")
                }
                Some(_) => out.push('\\'),
            },
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '"' if quote != Some('\'') => out.push_str("\\\""),
            '\'' if quote != Some('"') => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    if let Some(q) = quote {
        out.push(q);
    }
    out
}

/// Whether the lexer reads `raw` back as exactly one word `value` with quoting `quoted`.
fn reads_back(raw: &str, value: &str, quoted: bool) -> bool {
    let src = format!("{raw};");
    let mut lx = Lexer::new(&src);
    let mut words = Vec::new();
    matches!(lx.read_token(&mut words), Ok(Event::End))
        && matches!(words.as_slice(), [w] if w.value == value && w.quoted == quoted)
}

/// How to write one word so that it reads back as `value` (quoted if `quoted`).
fn encode_word(value: &str, quoted: bool) -> String {
    if !quoted {
        let bare = escape(value, None);
        if reads_back(&bare, value, false) {
            return bare;
        }
    }
    let dq = escape(value, Some('"'));
    if reads_back(&dq, value, true) {
        return dq;
    }
    escape(value, Some('\''))
}

/// Whether `value` must be quoted to be read back by the nginx lexer as one word.
pub fn needs_quotes(value: &str) -> bool {
    !reads_back(&escape(value, None), value, false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::fs;

    fn p(src: &str) -> Vec<Directive> {
        parse_nginx_str(src, Path::new("/nonexistent/t.conf")).unwrap()
    }

    fn perr(src: &str) -> String {
        parse_nginx_str(src, Path::new("/nonexistent/t.conf"))
            .unwrap_err()
            .to_string()
    }

    fn shape(tree: &[Directive]) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(t: &[Directive], depth: usize, out: &mut Vec<String>) {
            for d in t {
                let mut s = format!("{}{}@{}", "  ".repeat(depth), d.name, d.span.line);
                for a in &d.args {
                    s.push_str(&format!(" [{}]@{}", a.value, a.span.line));
                }
                out.push(s);
                if let Some(b) = &d.block {
                    walk(b, depth + 1, out);
                }
            }
        }
        walk(tree, 0, &mut out);
        out
    }

    #[test]
    fn span_display() {
        let f = Arc::new(PathBuf::from("/etc/x.conf"));
        assert_eq!(Span::new(f.clone(), 3, 0).to_string(), "/etc/x.conf:3");
        assert_eq!(Span::new(f.clone(), 3, 7).to_string(), "/etc/x.conf:3:7");
        let e = ConfigError::at(&Span::new(f, 3, 0), "unknown directive \"x\"");
        assert_eq!(e.to_string(), "unknown directive \"x\" in /etc/x.conf:3");
        assert_eq!(ConfigError::new("boom").to_string(), "boom");
    }

    #[test]
    fn nested_blocks_with_lines() {
        let t = p("user www-data;\n\
                   events {\n\
                   \x20   worker_connections 512;\n\
                   }\n\
                   http {\n\
                   \x20   server {\n\
                   \x20       listen 80;\n\
                   \n\
                   \x20       location ~ \\.php$ { fastcgi_pass\n\
                   \x20           unix:/run/php.sock; }\n\
                   \x20   }\n\
                   }\n");
        assert_eq!(
            shape(&t),
            [
                "user@1 [www-data]@1",
                "events@2",
                "  worker_connections@3 [512]@3",
                "http@5",
                "  server@6",
                "    listen@7 [80]@7",
                "    location@9 [~]@9 [\\.php$]@9",
                "      fastcgi_pass@10 [unix:/run/php.sock]@10",
            ]
        );
        assert_eq!(t[0].span.to_string(), "/nonexistent/t.conf:1");
        assert_eq!(t[1].block.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn empty_block_and_comment_only() {
        let t = p("# only a comment\nevents {}\n");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].block, Some(vec![]));
        assert!(p("").is_empty());
        assert!(p("   \n# x").is_empty());
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            perr("http {\n  server {\n  }\n"),
            "unexpected end of file, expecting \"}\" in /nonexistent/t.conf:4"
        );
        assert_eq!(
            perr("http {\n}\n}\n"),
            "unexpected \"}\" in /nonexistent/t.conf:3"
        );
        assert_eq!(
            perr("user nobody"),
            "unexpected end of file, expecting \";\" or \"}\" in /nonexistent/t.conf:1"
        );
        assert_eq!(perr("\n\n;"), "unexpected \";\" in /nonexistent/t.conf:3");
        assert_eq!(
            perr("include a b;"),
            "invalid number of arguments in \"include\" directive in /nonexistent/t.conf:1"
        );
        assert_eq!(
            perr("include a {\n}"),
            "directive \"include\" is not terminated by \";\" in /nonexistent/t.conf:1"
        );
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("junction-config-{}-{}", name, std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn includes_glob_spans_and_errors() {
        let d = tmpdir("inc");
        fs::create_dir_all(d.join("conf.d")).unwrap();
        fs::create_dir_all(d.join("conf.d/sub.conf")).unwrap(); // a directory: skipped
        fs::write(d.join("conf.d/b.conf"), "server {\n    listen 82;\n}\n").unwrap();
        fs::write(d.join("conf.d/a.conf"), "\n\nserver { listen 81; }\n").unwrap();
        fs::write(d.join("conf.d/.hidden.conf"), "bogus;\n").unwrap();
        fs::write(d.join("conf.d/c.toml"), "[[server]]\nlisten = 83\n").unwrap();
        fs::write(d.join("snippet"), "gzip on;\n").unwrap();
        let main = d.join("nginx.conf");
        fs::write(
            &main,
            "http {\n    include conf.d/*.conf;\n    include conf.d/*.toml;\n    \
             include nothing/*.conf;\n    include snippet;\n}\n",
        )
        .unwrap();
        let t = load(&main).unwrap();
        let http = t[0].children();
        let got: Vec<_> = http
            .iter()
            .map(|d| {
                let inner = d.children().first().map(|c| c.span.to_string());
                (d.name.as_str(), d.span.to_string(), inner)
            })
            .collect();
        let f = |n: &str| d.join(n).display().to_string();
        assert_eq!(
            got,
            [
                (
                    "server",
                    format!("{}:3", f("conf.d/a.conf")),
                    Some(format!("{}:3", f("conf.d/a.conf")))
                ),
                (
                    "server",
                    format!("{}:1", f("conf.d/b.conf")),
                    Some(format!("{}:2", f("conf.d/b.conf")))
                ),
                (
                    "server",
                    format!("{}:1:1", f("conf.d/c.toml")),
                    Some(format!("{}:2:1", f("conf.d/c.toml")))
                ),
                ("gzip", format!("{}:1", f("snippet")), None),
            ]
        );

        // a plain path that does not exist
        fs::write(&main, "http {\n\n    include missing.conf;\n}\n").unwrap();
        assert_eq!(
            load(&main).unwrap_err().to_string(),
            format!(
                "open() \"{}\" failed (2: No such file or directory) in {}:3",
                f("missing.conf"),
                main.display()
            )
        );
        // the main file itself
        assert_eq!(
            load(&d.join("nope.conf")).unwrap_err().to_string(),
            format!(
                "open() \"{}\" failed (2: No such file or directory)",
                f("nope.conf")
            )
        );
        // an error inside an included file is reported there
        fs::write(d.join("conf.d/b.conf"), "server {\n    listen 82\n").unwrap();
        fs::write(&main, "include conf.d/b.conf;\n").unwrap();
        assert_eq!(
            load(&main).unwrap_err().to_string(),
            format!(
                "unexpected end of file, expecting \";\" or \"}}\" in {}:3",
                f("conf.d/b.conf")
            )
        );
        // recursion: a cycle, and plain depth
        fs::write(&main, "\ninclude nginx.conf;\n").unwrap();
        assert_eq!(
            load(&main).unwrap_err().to_string(),
            format!(
                "include cycle: \"{}\" includes itself in {}:2",
                main.display(),
                main.display()
            )
        );
        fs::write(d.join("x1"), "include x2;").unwrap();
        fs::write(d.join("x2"), "include x3;").unwrap();
        fs::write(d.join("x3"), "include x1;").unwrap();
        fs::write(&main, "include x1;").unwrap();
        let e = load(&main).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "include cycle: \"{}\" includes itself in {}:1",
                f("x1"),
                f("x3")
            )
        );
        let e = Loader::new()
            .with_max_include_depth(2)
            .load(&main)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("too deep include nesting (more than 2) for \"x3\""),
            "{e}"
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn nested_include_resolves_against_prefix_then_own_dir() {
        let d = tmpdir("nested");
        fs::create_dir_all(d.join("sites")).unwrap();
        fs::create_dir_all(d.join("snippets")).unwrap();
        fs::write(d.join("snippets/php.conf"), "fastcgi_index index.php;\n").unwrap();
        fs::write(d.join("sites/local.conf"), "fastcgi_read_timeout 5s;\n").unwrap();
        // like Debian: sites/x includes snippets/… (relative to the prefix) and a neighbour
        fs::write(
            d.join("sites/default"),
            "server {\n    include snippets/php.conf;\n    include local.conf;\n}\n",
        )
        .unwrap();
        fs::write(d.join("nginx.conf"), "http { include sites/*; }\n").unwrap();
        let t = load(&d.join("nginx.conf")).unwrap();
        let server = &t[0].children()[0];
        let names: Vec<_> = server.children().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["fastcgi_index", "fastcgi_read_timeout"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn builtin_fallback() {
        let d = tmpdir("builtin");
        let main = d.join("nginx.conf");
        fs::write(
            &main,
            "http { server { location / {\n    include fastcgi_params;\n} } }\n",
        )
        .unwrap();
        let t = load(&main).unwrap();
        let loc = &t[0].children()[0].children()[0];
        let first = &loc.children()[0];
        assert_eq!(first.name, "fastcgi_param");
        assert_eq!(first.arg(0), Some("QUERY_STRING"));
        assert_eq!(first.arg(1), Some("$query_string"));
        assert_eq!(
            first.span.file.as_path(),
            Path::new("<builtin>/fastcgi_params")
        );
        assert!(loc.children().iter().all(|d| d.name == "fastcgi_param"));

        // a file on disk wins over the built-in copy
        fs::write(d.join("fastcgi_params"), "fastcgi_param A b;\n").unwrap();
        let t = load(&main).unwrap();
        let loc = &t[0].children()[0].children()[0];
        assert_eq!(loc.children().len(), 1);

        // the hook can be replaced (or disabled)
        let _ = fs::remove_file(d.join("fastcgi_params"));
        let none = |_: &str| None;
        let e = Loader::new().with_builtins(&none).load(&main).unwrap_err();
        assert!(e.msg.starts_with("open() "), "{e}");
        let custom = |n: &str| (n == "fastcgi_params").then_some("fastcgi_param X y;\n");
        let t = Loader::new().with_builtins(&custom).load(&main).unwrap();
        assert_eq!(
            t[0].children()[0].children()[0].children()[0].arg(0),
            Some("X")
        );

        // every built-in file parses
        for name in [
            "mime.types",
            "fastcgi_params",
            "fastcgi.conf",
            "uwsgi_params",
            "scgi_params",
        ] {
            let src = builtin_include(name).unwrap();
            let t = parse_nginx_str(src, Path::new(name)).unwrap();
            assert!(!t.is_empty(), "{name}");
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn print_round_trip() {
        let src = r#"
user www-data;
http {
    log_format main '$remote_addr - "$request" ${status}' "it's";
    server {
        listen 8080 default_server;
        location ~* \.(gif|jpg)$ {
            add_header X-Msg "hello world" always;
            return 200 "a;b{c}\"d\\e\tf\ng";
        }
        location / {
            rewrite ^/(.*)$ /x/$1 break;
            set $x "";
            if ($http_x = "y") {
                return 403;
            }
            proxy_pass http://u;
            add_header X a\"b\tc a\ b \x;
        }
    }
}
"#;
        let t = p(src);
        let printed = print_nginx(&t);
        let t2 = p(&printed);
        assert!(same_tree(&t, &t2), "{printed}");
        assert_eq!(print_nginx(&t2), printed);
        assert!(printed.contains("    server {\n        listen 8080 default_server;\n"));
        assert!(printed.contains("location ~* \\.(gif|jpg)$ {"), "{printed}");
        assert!(printed.contains("set $x \"\";"), "{printed}");

        // values that need quotes (e.g. from TOML exact args) are quoted
        let f = Arc::new(PathBuf::from("x"));
        let arg = |v: &str| Arg {
            value: v.into(),
            quoted: false,
            span: Span::new(f.clone(), 1, 0),
        };
        let d = Directive {
            name: "add_header".into(),
            args: vec![
                arg("X"),
                arg("a b"),
                arg(""),
                arg("}"),
                arg("#x"),
                arg("a{"),
                arg("it's"),
            ],
            block: None,
            span: Span::new(f.clone(), 1, 0),
        };
        let out = print_nginx(std::slice::from_ref(&d));
        assert_eq!(
            out,
            "add_header X \"a b\" \"\" \"}\" \"#x\" \"a{\" it\\'s;\n"
        );
        let back = p(&out);
        let vals: Vec<_> = back[0].values().collect();
        assert_eq!(vals, ["X", "a b", "", "}", "#x", "a{", "it's"]);
        assert!(needs_quotes("a b") && needs_quotes("") && !needs_quotes("${x}y"));
    }
}
