//! The directive tree both syntaxes parse into (work in progress).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a directive or argument was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The file (shared by all spans of that file).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, or 0 when unknown (nginx syntax).
    pub col: u32,
}

impl fmt::Display for Span {
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
    /// The value with quotes removed and escapes applied.
    pub value: String,
    /// Whether it was written in quotes.
    pub quoted: bool,
    /// Where it starts.
    pub span: Span,
}

/// One directive: `name args… ;` or `name args… { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The block, for block directives.
    pub block: Option<Vec<Directive>>,
    /// Where the name starts.
    pub span: Span,
}

/// A config error, displayed like nginx: `MSG in FILE:LINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, if known.
    pub span: Option<Span>,
    /// The message.
    pub msg: String,
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

/// Load a config file (TOML if it ends in `.toml`, nginx syntax otherwise).
pub fn load(path: &Path) -> Result<Vec<Directive>, ConfigError> {
    let _ = path;
    Err(ConfigError {
        span: None,
        msg: "not yet implemented".into(),
    })
}

/// Parse nginx syntax.
pub fn parse_nginx_str(src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
    let _ = (src, file);
    Err(ConfigError {
        span: None,
        msg: "not yet implemented".into(),
    })
}

/// Parse TOML syntax.
pub fn parse_toml_str(src: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
    let _ = (src, file);
    Err(ConfigError {
        span: None,
        msg: "not yet implemented".into(),
    })
}

/// Print a tree in nginx syntax.
pub fn print_nginx(tree: &[Directive]) -> String {
    let _ = tree;
    String::new()
}
