//! TOML syntax → the directive tree (the mapping is documented in the crate docs).
//!
//! Parsed with `toml_edit`'s span-keeping document, so every directive and argument gets
//! `FILE:LINE:COL`, and table keys keep their order.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use toml_edit::{ArrayOfTables, ImDocument, InlineTable, Item, Table, Value};

use crate::lexer::{Event, Lexer};
use crate::tree::{needs_quotes, Arg, ConfigError, Directive, Span};

/// Parse a TOML document into directives (includes not expanded yet).
pub(crate) fn parse(src: &str, file: &Arc<PathBuf>) -> Result<Vec<Directive>, ConfigError> {
    let cx = Cx::new(src, file);
    let doc = ImDocument::parse(src).map_err(|e| {
        let span = cx.span(e.span().map_or(0, |r| r.start));
        let msg = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        ConfigError::at(&span, format!("invalid TOML: {msg}"))
    })?;
    let top = cx.span(0);
    cx.entries(table_entries(doc.as_table()), &top, false)
}

/// One `key = …` of a table or inline table.
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
}

type Entry<'a> = (&'a str, Option<Range<usize>>, Node<'a>);

fn table_entries(t: &Table) -> Vec<Entry<'_>> {
    t.iter()
        .map(|(k, item)| (k, t.key(k).and_then(|k| k.span()), Node::Item(item)))
        .collect()
}

fn inline_entries(t: &InlineTable) -> Vec<Entry<'_>> {
    t.iter()
        .map(|(k, v)| (k, t.key(k).and_then(|k| k.span()), Node::Value(v)))
        .collect()
}

struct Cx<'s> {
    src: &'s str,
    file: Arc<PathBuf>,
    /// Byte offset of the start of each line.
    lines: Vec<usize>,
}

impl<'s> Cx<'s> {
    fn new(src: &'s str, file: &Arc<PathBuf>) -> Self {
        let mut lines = vec![0];
        lines.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Cx {
            src,
            file: file.clone(),
            lines,
        }
    }

    /// The 1-based line and column (in characters) of byte `off`.
    fn span(&self, off: usize) -> Span {
        let idx = self.lines.partition_point(|&s| s <= off).saturating_sub(1);
        let start = self.lines.get(idx).copied().unwrap_or(0);
        let col = self
            .src
            .get(start..off)
            .map_or(off.saturating_sub(start), |s| s.chars().count());
        let line = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let col = u32::try_from(col + 1).unwrap_or(u32::MAX);
        Span::new(self.file.clone(), line, col)
    }

    fn span_or(&self, r: Option<Range<usize>>, fallback: &Span) -> Span {
        match r {
            Some(r) => self.span(r.start),
            None => fallback.clone(),
        }
    }

    /// The directives for the entries of a table; `block` skips the `args` key.
    fn entries(
        &self,
        entries: Vec<Entry<'_>>,
        parent: &Span,
        block: bool,
    ) -> Result<Vec<Directive>, ConfigError> {
        let mut out = Vec::new();
        for (key, key_span, node) in entries {
            if block && key == "args" {
                continue;
            }
            let span = self.span_or(key_span, parent);
            match node {
                Node::Item(Item::None) => {}
                Node::Item(Item::Value(v)) | Node::Value(v) => {
                    self.value_directives(key, &span, v, &mut out)?
                }
                Node::Item(Item::Table(t)) => {
                    let span = self.span_or(t.span(), &span);
                    out.push(self.block(key, span, table_entries(t))?);
                }
                Node::Item(Item::ArrayOfTables(a)) => self.tables(key, &span, a, &mut out)?,
            }
        }
        Ok(out)
    }

    fn tables(
        &self,
        key: &str,
        span: &Span,
        a: &ArrayOfTables,
        out: &mut Vec<Directive>,
    ) -> Result<(), ConfigError> {
        for t in a.iter() {
            let span = self.span_or(t.span(), span);
            out.push(self.block(key, span, table_entries(t))?);
        }
        Ok(())
    }

    /// A block directive: args from the `args` key, block from the other keys.
    fn block(
        &self,
        name: &str,
        span: Span,
        entries: Vec<Entry<'_>>,
    ) -> Result<Directive, ConfigError> {
        let mut args = Vec::new();
        for (key, key_span, node) in &entries {
            if *key != "args" {
                continue;
            }
            let v = match node {
                Node::Item(Item::Value(v)) => v,
                Node::Value(v) => *v,
                _ => {
                    return Err(ConfigError::at(
                        &self.span_or(key_span.clone(), &span),
                        format!("\"args\" of \"{name}\" must be a string or an array"),
                    ))
                }
            };
            let at = self.span_or(v.span(), &span);
            args = match v {
                Value::String(s) => self.string_args(s.value(), v, &at)?,
                Value::Array(a) => self.exact_args(name, a, &at)?,
                _ => vec![self.scalar_arg(name, v, &at)?],
            };
        }
        let block = self.entries(entries, &span, true)?;
        Ok(Directive {
            name: name.to_string(),
            args,
            block: Some(block),
            span,
        })
    }

    /// `key = value`: one directive, or one per element for an array.
    fn value_directives(
        &self,
        key: &str,
        key_span: &Span,
        v: &Value,
        out: &mut Vec<Directive>,
    ) -> Result<(), ConfigError> {
        match v {
            Value::Array(a) => {
                for elem in a.iter() {
                    let at = self.span_or(elem.span(), key_span);
                    let d = match elem {
                        Value::Array(inner) => Directive {
                            name: key.to_string(),
                            args: self.exact_args(key, inner, &at)?,
                            block: None,
                            span: at,
                        },
                        _ => self.one_directive(key, at, elem)?,
                    };
                    out.push(d);
                }
            }
            _ => out.push(self.one_directive(key, key_span.clone(), v)?),
        }
        Ok(())
    }

    /// One directive from a string (tokenized), a scalar (one arg) or an inline table (block).
    fn one_directive(&self, key: &str, span: Span, v: &Value) -> Result<Directive, ConfigError> {
        let at = self.span_or(v.span(), &span);
        let args = match v {
            Value::InlineTable(t) => return self.block(key, span, inline_entries(t)),
            Value::String(s) => self.string_args(s.value(), v, &at)?,
            _ => vec![self.scalar_arg(key, v, &at)?],
        };
        Ok(Directive {
            name: key.to_string(),
            args,
            block: None,
            span,
        })
    }

    /// An array of scalars: the exact args, no tokenizing.
    fn exact_args(
        &self,
        key: &str,
        a: &toml_edit::Array,
        at: &Span,
    ) -> Result<Vec<Arg>, ConfigError> {
        a.iter()
            .map(|elem| {
                let span = self.span_or(elem.span(), at);
                match elem {
                    Value::String(s) => Ok(Arg {
                        value: s.value().clone(),
                        quoted: needs_quotes(s.value()),
                        span,
                    }),
                    _ => self.scalar_arg(key, elem, &span),
                }
            })
            .collect()
    }

    /// An integer, float or bool as one argument.
    fn scalar_arg(&self, key: &str, v: &Value, span: &Span) -> Result<Arg, ConfigError> {
        let value = match v {
            Value::String(s) => s.value().clone(),
            Value::Integer(i) => i.value().to_string(),
            Value::Float(f) => f.value().to_string(),
            Value::Boolean(b) => if *b.value() { "on" } else { "off" }.to_string(),
            Value::Datetime(_) | Value::Array(_) | Value::InlineTable(_) => {
                return Err(ConfigError::at(
                    span,
                    format!(
                        "invalid value for \"{key}\": a {} is not an argument",
                        v.type_name()
                    ),
                ))
            }
        };
        Ok(Arg {
            quoted: needs_quotes(&value),
            value,
            span: span.clone(),
        })
    }

    /// Split a string into args with the nginx lexer. Arg spans point into the string when
    /// it is written without escapes, else at the string.
    fn string_args(&self, s: &str, v: &Value, at: &Span) -> Result<Vec<Arg>, ConfigError> {
        let base = v.span().and_then(|r| {
            let raw = self.src.get(r.clone())?;
            let (open, q) = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
                (3, 3)
            } else {
                (1, 1)
            };
            let mut start = r.start + open;
            let end = r.end.checked_sub(q)?;
            // a newline right after the opening delimiter of a multi-line string is trimmed
            if open == 3 {
                if self.src.get(start..).is_some_and(|t| t.starts_with("\r\n")) {
                    start += 2;
                } else if self.src.get(start..).is_some_and(|t| t.starts_with('\n')) {
                    start += 1;
                }
            }
            (self.src.get(start..end)? == s).then_some(start)
        });
        let mut lx = Lexer::for_args(s);
        let mut words = Vec::new();
        let ev = lx
            .read_token(&mut words)
            .map_err(|e| ConfigError::at(at, format!("{} in the string", e.msg)))?;
        let unexpected = match ev {
            Event::Eof => None,
            Event::End => Some(';'),
            Event::BlockStart => Some('{'),
            Event::BlockDone => Some('}'),
        };
        if let Some(c) = unexpected {
            return Err(ConfigError::at(
                at,
                format!(
                    "unexpected \"{c}\" in the string (one string is one directive's arguments)"
                ),
            ));
        }
        Ok(words
            .into_iter()
            .map(|w| Arg {
                span: match base {
                    Some(b) => self.span(b + w.offset),
                    None => at.clone(),
                },
                value: w.value,
                quoted: w.quoted,
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::registry;
    use crate::tree::{parse_nginx_str, parse_toml_str, print_nginx, same_tree};
    use std::path::Path;

    const FILE: &str = "/nonexistent/j.toml";

    fn t(src: &str) -> Vec<Directive> {
        parse_toml_str(src, Path::new(FILE)).unwrap()
    }

    fn terr(src: &str) -> String {
        parse_toml_str(src, Path::new(FILE))
            .unwrap_err()
            .to_string()
    }

    fn n(src: &str) -> Vec<Directive> {
        parse_nginx_str(src, Path::new("/nonexistent/n.conf")).unwrap()
    }

    const FULL_TOML: &str = r#"
user = "www-data"
worker_processes = 2

[events]
worker_connections = 1024

[http]
sendfile = true
keepalive_timeout = "65s"
proxy_buffers = "8 2k"
types_hash_max_size = 0.5

[[http.upstream]]
args = "app"
server = ["127.0.0.1:9000", "127.0.0.1:9001 backup"]
keepalive = 16

[[http.server]]
listen = [80, "[::]:80"]
server_name = "example.com www.example.com"
add_header = 'X-Msg "hello world" always'

[[http.server.location]]
args = "/"
proxy_pass = "http://app"
proxy_set_header = [
    "Host $host",
    "X-Real-IP $remote_addr",
]

[[http.server.location]]
args = "~ \\.php$"
fastcgi_param = [["SCRIPT_FILENAME", "$document_root$fastcgi_script_name"], ["X", "a b"]]
fastcgi_pass = "unix:/run/php/php-fpm.sock"
internal = ""
"#;

    const FULL_NGINX: &str = r#"
user www-data;
worker_processes 2;
events {
    worker_connections 1024;
}
http {
    sendfile on;
    keepalive_timeout 65s;
    proxy_buffers 8 2k;
    types_hash_max_size 0.5;
    upstream app {
        server 127.0.0.1:9000;
        server 127.0.0.1:9001 backup;
        keepalive 16;
    }
    server {
        listen 80;
        listen [::]:80;
        server_name example.com www.example.com;
        add_header X-Msg "hello world" always;
        location / {
            proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
        }
        location ~ \.php$ {
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param X "a b";
            fastcgi_pass unix:/run/php/php-fpm.sock;
            internal;
        }
    }
}
"#;

    #[test]
    fn full_example_matches_nginx_twin() {
        let tt = t(FULL_TOML);
        let nt = n(FULL_NGINX);
        assert!(
            same_tree(&tt, &nt),
            "{}\n---\n{}",
            print_nginx(&tt),
            print_nginx(&nt)
        );
        assert_eq!(print_nginx(&tt), print_nginx(&nt));
        registry::TEST.check(&tt).unwrap();
        assert!(!registry::is_bare_http(&tt));
        // printing the TOML tree as nginx and parsing that gives the same tree back
        assert!(same_tree(&tt, &n(&print_nginx(&tt))));
    }

    fn find<'a>(tree: &'a [Directive], path: &[(&str, usize)]) -> &'a Directive {
        let mut level = tree;
        let mut found = None;
        for (name, nth) in path {
            let d = level.iter().filter(|d| d.name == *name).nth(*nth).unwrap();
            level = d.children();
            found = Some(d);
        }
        found.unwrap()
    }

    #[test]
    fn spans_have_line_and_column() {
        let tt = t(FULL_TOML);
        let at = |path: &[(&str, usize)]| find(&tt, path).span.to_string();
        assert_eq!(at(&[("user", 0)]), format!("{FILE}:2:1"));
        assert_eq!(at(&[("events", 0)]), format!("{FILE}:5:1"));
        assert_eq!(
            at(&[("events", 0), ("worker_connections", 0)]),
            format!("{FILE}:6:1")
        );
        // an array-of-tables element: its [[header]]
        assert_eq!(at(&[("http", 0), ("server", 0)]), format!("{FILE}:19:1"));
        assert_eq!(
            at(&[("http", 0), ("server", 0), ("location", 1)]),
            format!("{FILE}:32:1")
        );
        // array elements: each element's own position
        assert_eq!(
            at(&[
                ("http", 0),
                ("server", 0),
                ("location", 0),
                ("proxy_set_header", 1)
            ]),
            format!("{FILE}:29:5")
        );
        assert_eq!(
            at(&[("http", 0), ("server", 0), ("listen", 1)]),
            format!("{FILE}:20:15")
        );
        // args split out of a string point into the string
        let add = find(&tt, &[("http", 0), ("server", 0), ("add_header", 0)]);
        let spans: Vec<_> = add.args.iter().map(|a| (a.span.line, a.span.col)).collect();
        assert_eq!(spans, [(22, 15), (22, 21), (22, 35)]);
        // a string with escapes: args point at the string
        let loc = find(&tt, &[("http", 0), ("server", 0), ("location", 1)]);
        let spans: Vec<_> = loc.args.iter().map(|a| (a.span.line, a.span.col)).collect();
        assert_eq!(spans, [(33, 8), (33, 8)]);
        let vals: Vec<_> = loc.values().collect();
        assert_eq!(vals, ["~", "\\.php$"]);
        // exact args: each element
        let fp = find(
            &tt,
            &[
                ("http", 0),
                ("server", 0),
                ("location", 1),
                ("fastcgi_param", 1),
            ],
        );
        let spans: Vec<_> = fp.args.iter().map(|a| (a.span.line, a.span.col)).collect();
        assert_eq!(spans, [(34, 78), (34, 83)]);
        assert!(
            fp.args[1].quoted,
            "an exact arg with a space is marked as needing quotes"
        );
    }

    #[test]
    fn bare_server_style() {
        let src = r#"
[[upstream]]
args = "php"
server = "unix:/run/php.sock"

[[server]]
listen = 8080
root = "/srv/www"

[[server.location]]
args = ["=", "/status"]
return = '200 "ok\n"'

[[server]]
listen = [[8081, "default_server"]]
"#;
        let tt = t(src);
        assert!(registry::is_bare_http(&tt));
        registry::TEST.check(&tt).unwrap();
        let names: Vec<_> = tt.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["upstream", "server", "server"]);
        let ret = find(&tt, &[("server", 0), ("location", 0), ("return", 0)]);
        assert_eq!(ret.values().collect::<Vec<_>>(), ["200", "ok\n"]);
        let listen = find(&tt, &[("server", 1), ("listen", 0)]);
        assert_eq!(
            listen.values().collect::<Vec<_>>(),
            ["8081", "default_server"]
        );
        let nt = n(r#"
upstream php { server unix:/run/php.sock; }
server {
    listen 8080;
    root /srv/www;
    location = /status { return 200 "ok\n"; }
}
server { listen 8081 default_server; }
"#);
        assert!(same_tree(&tt, &nt), "{}", print_nginx(&tt));
    }

    #[test]
    fn scalars_inline_tables_and_key_order() {
        let tt = t(r#"
daemon = false
events = { worker_connections = 64, multi_accept = true }
env = ["A", ["B=1 2"]]
"#);
        let got: Vec<_> = tt
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.values().collect::<Vec<_>>().join("|"),
                    d.block.is_some(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("daemon", "off".to_string(), false),
                ("events", String::new(), true),
                ("env", "A".to_string(), false),
                ("env", "B=1 2".to_string(), false),
            ]
        );
        let ev: Vec<_> = tt[1].children().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(ev, ["worker_connections", "multi_accept"]);
        assert_eq!(tt[1].children()[1].arg(0), Some("on"));
    }

    #[test]
    fn errors_have_line_and_column() {
        assert_eq!(
            terr("user = \"x\"\n[http]\nsendfile = \n"),
            format!("invalid TOML: invalid string: expected `\"`, `'` in {FILE}:3:12")
        );
        assert_eq!(
            terr("[http]\n[http]\n"),
            format!(
                "invalid TOML: invalid table header: duplicate key `\"http\"` in document root \
                 in {FILE}:2:1"
            )
        );
        assert_eq!(
            terr("[http]\n  root = \"/a; b\"\n"),
            format!(
                "unexpected \";\" in the string (one string is one directive's arguments) \
                 in {FILE}:2:10"
            )
        );
        assert_eq!(
            terr("root = '\"/a'\n"),
            format!("unexpected end of string in the string in {FILE}:1:8")
        );
        assert_eq!(
            terr("x = 1979-05-27\n"),
            format!("invalid value for \"x\": a datetime is not an argument in {FILE}:1:5")
        );
        assert_eq!(
            terr("[[server]]\nargs = { a = 1 }\n"),
            format!(
                "invalid value for \"server\": a inline table is not an argument in {FILE}:2:8"
            )
        );
        // registry errors point at line:col too
        let tt = t("[[server]]\nlisten = 80\n  proxy_pass = \"http://x\"\n");
        let errs = registry::TEST.check(&tt).unwrap_err();
        let errs: Vec<_> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            [format!(
                "\"proxy_pass\" directive is not allowed here in {FILE}:3:3"
            )]
        );
    }
}
