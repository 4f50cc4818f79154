//! ngx_http_rewrite_module: `set`, `rewrite`, `return`, `break` and `if`, compiled
//! once at load into a [`Script`] per server and per location, run per request in
//! nginx's phase order (the server's script before the location search, the
//! location's after it).
//!
//! As nginx compiles them (`ngx_http_rewrite_*` into one code array per level), the
//! directives of an `if` block run inline, in order, and the script then goes on
//! after the block; a location-level `if` whose condition holds also switches the
//! request to the `if`'s own location (`ngx_http_script_if_code`): a location of
//! its own that inherits the enclosing one's configuration and keeps its content
//! handler unless it sets one (`proxy_pass` inside the `if`). A server-level `if`
//! switches nothing (`if_code->loc_conf = NULL`).
//!
//! `rewrite` flags (`ngx_http_script_regex_start_code` / `_end_code`): none — the URI
//! changes and the script goes on, the location is searched again at its end;
//! `last` — stop, search again; `break` — stop, stay; `redirect`/`permanent` (or a
//! replacement starting with `http://`, `https://`, `$scheme`) — answer 302/301.
//! A `last` restart counts against the 10 URI changes (then 500).

use crate::build::{LocConf, Return, SetVar};
use crate::phases::Outcome;
use crate::route::Loc;
use bytes::Bytes;
use junction_config::model::{err, BuildCx, Scope};
use junction_config::{ConfigError, Directive};
use junction_core::ctx::{Captures, RequestCtx};
use junction_core::regex::Regex;
use junction_core::vars::{Template, VarTable};
use std::sync::Arc;

/// The rewrite-module directives of one level, in order.
#[derive(Debug, Default)]
pub struct Script {
    ops: Vec<Op>,
    /// `rewrite_log`: log each match / rewrite at notice level.
    log: bool,
}

#[derive(Debug)]
enum Op {
    Set(SetVar, Template),
    Rewrite(Box<Rewrite>),
    Return(Return),
    Break,
    If(Box<IfBlock>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    /// No flag: change the URI and go on.
    Next,
    Last,
    Break,
    /// 301 / 302.
    Redirect(u16),
}

#[derive(Debug)]
struct Rewrite {
    re: Regex,
    /// The replacement (for an internal rewrite: up to its first `?`).
    uri: Template,
    /// An internal rewrite's new arguments (after the `?`).
    args: Option<Template>,
    /// The replacement has a `?` (a redirect then appends the old arguments with `&`).
    has_args: bool,
    /// No trailing `?`: the request's arguments are kept / appended.
    add_args: bool,
    flag: Flag,
    /// Named captures: (group, variable slot).
    names: Vec<(usize, usize)>,
}

#[derive(Debug)]
struct IfBlock {
    cond: Cond,
    ops: Vec<Op>,
    /// The `if`'s own location (location level only).
    loc: Option<Arc<Loc<LocConf>>>,
}

#[derive(Debug, Clone, Copy)]
enum FileOp {
    File,
    Dir,
    Exists,
    Exec,
}

#[derive(Debug)]
enum Cond {
    /// `($var)`: true unless empty or `0`.
    Var(Template),
    /// `($var = value)` / `!=`.
    Eq {
        lhs: Template,
        rhs: Template,
        neg: bool,
    },
    /// `($var ~ re)`, `~*`, `!~`, `!~*`.
    Match {
        lhs: Template,
        re: Regex,
        neg: bool,
        names: Vec<(usize, usize)>,
    },
    /// `(-f path)` … `(!-x path)`.
    File {
        path: Template,
        op: FileOp,
        neg: bool,
    },
}

impl Script {
    /// Whether the level has no rewrite-module directive.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Builds an `if`'s location from its block (a scope nested in the current one).
pub(crate) type BuildIf<'s, 'a> =
    dyn FnMut(&Scope<'a>, &Directive, &mut BuildCx) -> Result<Arc<Loc<LocConf>>, ConfigError> + 's;

/// Compiles the rewrite-module directives of `scope`'s own level. `build_if` builds
/// the location of each `if` block (`None`: server level, where `if` switches nothing).
pub(crate) fn compile<'a>(
    scope: &Scope<'a>,
    bx: &mut BuildCx,
    build_if: Option<&mut BuildIf<'_, 'a>>,
    set_target: fn(&junction_config::Arg, &mut BuildCx) -> Result<SetVar, ConfigError>,
    parse_return: fn(&Directive, &BuildCx) -> Result<Return, ConfigError>,
) -> Result<Script, ConfigError> {
    let mut build_if = build_if;
    let log = scope.flag("rewrite_log", false)?;
    let mut ops = Vec::new();
    for d in scope.here() {
        if d.name == "if" {
            let cond = condition(d, bx)?;
            let block = d.block.as_deref().unwrap_or(&[]);
            let inner = scope.child(block);
            let loc = match build_if.as_mut() {
                Some(b) => Some(b(&inner, d, bx)?),
                None => None,
            };
            let mut inner_ops = Vec::new();
            for id in block {
                if let Some(op) = simple_op(id, bx, set_target, parse_return)? {
                    inner_ops.push(op);
                }
            }
            ops.push(Op::If(Box::new(IfBlock {
                cond,
                ops: inner_ops,
                loc,
            })));
        } else if let Some(op) = simple_op(d, bx, set_target, parse_return)? {
            ops.push(op);
        }
    }
    Ok(Script { ops, log })
}

fn simple_op(
    d: &Directive,
    bx: &mut BuildCx,
    set_target: fn(&junction_config::Arg, &mut BuildCx) -> Result<SetVar, ConfigError>,
    parse_return: fn(&Directive, &BuildCx) -> Result<Return, ConfigError>,
) -> Result<Option<Op>, ConfigError> {
    Ok(Some(match d.name.as_str() {
        "set" => {
            let (Some(n), Some(v)) = (d.args.first(), d.args.get(1)) else {
                return Err(err(
                    &d.span,
                    "invalid number of arguments in \"set\" directive",
                ));
            };
            Op::Set(set_target(n, bx)?, bx.template(v)?)
        }
        "return" => Op::Return(parse_return(d, bx)?),
        "break" => Op::Break,
        "rewrite" => Op::Rewrite(Box::new(rewrite(d, bx)?)),
        _ => return Ok(None),
    }))
}

fn regex(a: &junction_config::Arg, caseless: bool) -> Result<Regex, ConfigError> {
    Regex::compile(&a.value, caseless).map_err(|e| err(&a.span, e))
}

fn names(re: &Regex, vars: &mut VarTable) -> Vec<(usize, usize)> {
    re.names().map(|(i, n)| (i, vars.slot(n))).collect()
}

/// `ngx_http_rewrite`: `rewrite REGEX REPLACEMENT [FLAG]`.
fn rewrite(d: &Directive, bx: &mut BuildCx) -> Result<Rewrite, ConfigError> {
    let (Some(pat), Some(rep)) = (d.args.first(), d.args.get(1)) else {
        return Err(err(
            &d.span,
            "invalid number of arguments in \"rewrite\" directive",
        ));
    };
    if rep.value.is_empty() {
        return Err(err(&rep.span, "empty replacement"));
    }
    let re = regex(pat, false)?;
    let (src, add_args) = match rep.value.strip_suffix('?') {
        Some(s) => (s, false),
        None => (rep.value.as_str(), true),
    };
    let mut flag = if src.starts_with("http://")
        || src.starts_with("https://")
        || src.starts_with("$scheme")
    {
        Flag::Redirect(302)
    } else {
        Flag::Next
    };
    if let Some(f) = d.args.get(2) {
        flag = match f.value.as_str() {
            "last" => {
                if flag == Flag::Next {
                    Flag::Last
                } else {
                    flag
                }
            }
            "break" => {
                if flag == Flag::Next {
                    Flag::Break
                } else {
                    flag
                }
            }
            "redirect" => Flag::Redirect(302),
            "permanent" => Flag::Redirect(301),
            _ => return Err(err(&f.span, format!("invalid parameter \"{}\"", f.value))),
        };
    }
    let compile = |s: &str, bx: &BuildCx| {
        Template::compile(s, &bx.vars).map_err(|e| err(&rep.span, e.to_string()))
    };
    let has_args = src.contains('?');
    let (uri, args) = match (flag, src.split_once('?')) {
        (Flag::Redirect(_), _) | (_, None) => (compile(src, bx)?, None),
        (_, Some((u, a))) => (compile(u, bx)?, Some(compile(a, bx)?)),
    };
    let names = names(&re, &mut bx.vars);
    Ok(Rewrite {
        re,
        uri,
        args,
        has_args,
        add_args,
        flag,
        names,
    })
}

/// `ngx_http_rewrite_if_condition`: the condition of `if (…)`, with nginx's errors.
fn condition(d: &Directive, bx: &mut BuildCx) -> Result<Cond, ConfigError> {
    let invalid_cond =
        |a: &junction_config::Arg| err(&a.span, format!("invalid condition \"{}\"", a.value));
    let mut words: Vec<junction_config::Arg> = d.args.clone();
    let first = words
        .first_mut()
        .ok_or_else(|| err(&d.span, "invalid number of arguments in \"if\" directive"))?;
    if !first.value.starts_with('(') {
        return Err(invalid_cond(first));
    }
    first.value.remove(0);
    if first.value.is_empty() {
        // `( $a …`: the parenthesis was a word of its own
        words.remove(0);
    }
    let last = words
        .last_mut()
        .ok_or_else(|| err(&d.span, "invalid condition"))?;
    if !last.value.ends_with(')') {
        return Err(invalid_cond(last));
    }
    last.value.pop();
    if last.value.is_empty() {
        // `… $b )` or `… "")`: the parenthesis was a word of its own
        words.pop();
    }
    let Some(cur) = words.first() else {
        return Err(err(&d.span, "invalid condition \"\""));
    };
    let var = |a: &junction_config::Arg, bx: &BuildCx| -> Result<Template, ConfigError> {
        let name = a.value.get(1..).unwrap_or("");
        let t = Template::compile(&format!("${{{name}}}"), &bx.vars)
            .map_err(|e| err(&a.span, e.to_string()))?;
        Ok(t)
    };
    if cur.value.len() > 1 && cur.value.starts_with('$') {
        let lhs = var(cur, bx)?;
        match words.as_slice() {
            [_] => return Ok(Cond::Var(lhs)),
            [_, op, rhs] => {
                let neg = op.value.starts_with('!');
                return match op.value.as_str() {
                    "=" | "!=" => Ok(Cond::Eq {
                        lhs,
                        rhs: bx.template(rhs)?,
                        neg,
                    }),
                    "~" | "~*" | "!~" | "!~*" => {
                        let re = regex(rhs, op.value.ends_with('*'))?;
                        let names = names(&re, &mut bx.vars);
                        Ok(Cond::Match {
                            lhs,
                            re,
                            neg,
                            names,
                        })
                    }
                    _ => Err(err(
                        &op.span,
                        format!("unexpected \"{}\" in condition", op.value),
                    )),
                };
            }
            _ => return Err(invalid_cond(cur)),
        }
    }
    let v = cur.value.as_str();
    let (neg, opch) = match (v.len(), v.strip_prefix('!').unwrap_or(v)) {
        (2 | 3, o)
            if o.len() == 2 && o.starts_with('-') && (v.len() == 2 || v.starts_with('!')) =>
        {
            (v.starts_with('!'), o.as_bytes().get(1).copied())
        }
        _ => return Err(invalid_cond(cur)),
    };
    let op = match opch {
        Some(b'f') => FileOp::File,
        Some(b'd') => FileOp::Dir,
        Some(b'e') => FileOp::Exists,
        Some(b'x') => FileOp::Exec,
        _ => return Err(invalid_cond(cur)),
    };
    match words.as_slice() {
        [_, path] => Ok(Cond::File {
            path: bx.template(path)?,
            op,
            neg,
        }),
        _ => Err(invalid_cond(cur)),
    }
}

/// What running a script decided, beyond the variables it set.
#[derive(Default)]
pub(crate) struct Exec {
    /// nginx's `r->uri_changed`: search the locations again at the end.
    pub uri_changed: bool,
    /// The `if` location the request entered (the last whose condition held).
    pub loc: Option<Arc<Loc<LocConf>>>,
    /// Whether the URI or the location changed (the paths need computing again).
    pub touched: bool,
    /// Internal rewrites done so far.
    rewrites: u32,
}

enum Flow {
    Go,
    Stop,
    Answer(Outcome),
}

/// Runs `script` (the server's or a location's) against the request. `Some`: an
/// answer (`return`, a redirect, an error); else `ex` says what changed. `refresh`
/// computes `$request_filename` again after a rewrite (nginx computes it when read).
pub(crate) fn run(
    script: &Script,
    cx: &mut RequestCtx,
    conf: &LocConf,
    ex: &mut Exec,
    refresh: &dyn Fn(&mut RequestCtx),
) -> Option<Outcome> {
    if script.ops.is_empty() {
        return None;
    }
    match run_ops(&script.ops, script.log, cx, conf, ex, refresh) {
        Flow::Answer(o) => Some(o),
        Flow::Go | Flow::Stop => None,
    }
}

fn run_ops(
    ops: &[Op],
    log: bool,
    cx: &mut RequestCtx,
    conf: &LocConf,
    ex: &mut Exec,
    refresh: &dyn Fn(&mut RequestCtx),
) -> Flow {
    for op in ops {
        match op {
            Op::Set(var, t) => {
                let v = t.eval(cx);
                match var {
                    SetVar::Slot(slot) => cx.set_slot(*slot, v),
                    SetVar::Args => cx.args = String::from_utf8_lossy(&v).into_owned(),
                }
            }
            Op::Break => {
                // `ngx_http_script_break_code`: stay in this location.
                ex.uri_changed = false;
                return Flow::Stop;
            }
            Op::Return(r) => {
                let c = ex.loc.as_ref().map_or(conf, |l| &l.data);
                return Flow::Answer(crate::phases::do_return(cx, c, r));
            }
            Op::Rewrite(rw) => {
                let before = ex.rewrites;
                let f = do_rewrite(rw, log, cx, conf, ex);
                if ex.rewrites != before {
                    refresh(cx);
                }
                match f {
                    Flow::Go => {}
                    f => return f,
                }
            }
            Op::If(b) => {
                let holds = match test(&b.cond, log, cx) {
                    Ok(h) => h,
                    Err(e) => return Flow::Answer(internal_error(cx, conf, e)),
                };
                if holds {
                    if let Some(l) = &b.loc {
                        ex.loc = Some(l.clone());
                        ex.touched = true;
                    }
                    match run_ops(&b.ops, log, cx, conf, ex, refresh) {
                        Flow::Go => {}
                        f => return f,
                    }
                }
            }
        }
    }
    Flow::Go
}

fn internal_error(cx: &RequestCtx, conf: &LocConf, msg: String) -> Outcome {
    crate::pages::log_error(cx, &junction_core::Error::internal(msg));
    Outcome::Response(
        crate::pages::status_response(http::StatusCode::INTERNAL_SERVER_ERROR, conf.server_tokens),
        true,
    )
}

fn set_captures(
    cx: &mut RequestCtx,
    subject: Arc<str>,
    spans: junction_core::regex::Spans,
    names: &[(usize, usize)],
) {
    cx.captures = Captures { subject, spans };
    crate::phases::set_named_captures(cx, names);
}

fn do_rewrite(rw: &Rewrite, log: bool, cx: &mut RequestCtx, conf: &LocConf, ex: &mut Exec) -> Flow {
    let spans = match rw.re.captures(cx.uri.as_bytes()) {
        Ok(Some(s)) => s,
        Ok(None) => {
            if log {
                // The request's span adds `*N` and client, server, request, host.
                tracing::info!("\"{}\" does not match \"{}\"", rw.re.as_str(), cx.uri);
            }
            // nginx: `r->ncaptures = 0`.
            cx.captures = Captures::default();
            return Flow::Go;
        }
        Err(e) => return Flow::Answer(internal_error(cx, conf, e.0)),
    };
    if log {
        tracing::info!("\"{}\" matches \"{}\"", rw.re.as_str(), cx.uri);
    }
    let subject: Arc<str> = Arc::from(cx.uri.as_str());
    set_captures(cx, subject, spans, &rw.names);
    if let Flag::Redirect(code) = rw.flag {
        let mut url = redirect_url(&rw.uri, cx);
        if rw.add_args && !cx.args.is_empty() {
            url.push(if rw.has_args { '&' } else { '?' });
            url.push_str(&cx.args);
        }
        if log {
            tracing::info!("rewritten redirect: \"{url}\"");
        }
        let c = ex.loc.as_ref().map_or(conf, |l| &l.data);
        let r = Return {
            code,
            text: Some(Template::literal(Bytes::from(url))),
        };
        return Flow::Answer(crate::phases::do_return(cx, c, &r));
    }
    let uri = rw.uri.eval_string(cx);
    match &rw.args {
        Some(a) => {
            // nginx escapes the captures it copies into the arguments (`e->is_args`).
            let mut args = String::from_utf8_lossy(&eval_quoted(a, cx)).into_owned();
            if rw.add_args && !cx.args.is_empty() {
                args.push('&');
                args.push_str(&cx.args);
            }
            cx.args = args;
        }
        None => {
            if !rw.add_args {
                cx.args.clear();
            }
        }
    }
    if log {
        tracing::info!("rewritten data: \"{uri}\", args: \"{}\"", cx.args);
    }
    if uri.is_empty() {
        return Flow::Answer(internal_error(
            cx,
            conf,
            "the rewritten URI has a zero length".into(),
        ));
    }
    cx.uri = uri;
    cx.uri_changed = true;
    ex.touched = true;
    ex.rewrites += 1;
    match rw.flag {
        Flag::Break => {
            ex.uri_changed = false;
            Flow::Stop
        }
        Flag::Last => {
            ex.uri_changed = true;
            Flow::Stop
        }
        _ => {
            ex.uri_changed = true;
            Flow::Go
        }
    }
}

/// nginx's redirect replacement (`ngx_http_script_copy_capture_code` with `e->quote`,
/// then `ngx_unescape_uri(NGX_UNESCAPE_REDIRECT)`): when the request's path was
/// percent-encoded (or had a `+`), `$1…` are escaped as arguments; then every `%XX` of a
/// printable character above `%` is decoded (so `%20` and bytes ≥ 0x80 stay encoded).
fn redirect_url(t: &Template, cx: &RequestCtx) -> String {
    let buf = eval_quoted(t, cx);
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        if b == b'%' {
            let hex = buf
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(ch) = hex {
                if ch > b'%' && ch < 0x7f {
                    out.push(ch);
                } else if let Some(raw) = buf.get(i..i + 3) {
                    out.extend_from_slice(raw);
                }
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Evaluates `t` with `$1…` escaped as arguments when the request's path was
/// percent-encoded or had a `+` (nginx's `quoted_uri`/`plus_in_uri`).
fn eval_quoted(t: &Template, cx: &RequestCtx) -> bytes::BytesMut {
    use junction_core::vars::{Piece, Var};
    let path = cx.request_uri.split('?').next().unwrap_or("");
    let quoted = path.contains('%') || path.contains('+');
    let mut buf = bytes::BytesMut::new();
    for p in t.pieces() {
        match p {
            Piece::Lit(b) => buf.extend_from_slice(b),
            Piece::Var(Var::Capture(n)) if quoted => {
                if let Some(c) = cx.captures.get(*n) {
                    for &b in c.as_bytes() {
                        if escape_args(b) {
                            buf.extend_from_slice(format!("%{b:02X}").as_bytes());
                        } else {
                            buf.extend_from_slice(&[b]);
                        }
                    }
                }
            }
            Piece::Var(v) => cx.var_into(v, &mut buf),
        }
    }
    buf
}

/// nginx's `NGX_ESCAPE_ARGS` set: controls, space `"` `#` `%` `&` `+` `;` `<` `>` `?`
/// `\` `^` `` ` `` `{` `|` `}`, DEL and bytes ≥ 0x80.
fn escape_args(b: u8) -> bool {
    !(0x20..0x7f).contains(&b)
        || matches!(
            b,
            b' ' | b'"'
                | b'#'
                | b'%'
                | b'&'
                | b'+'
                | b';'
                | b'<'
                | b'>'
                | b'?'
                | b'\\'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        )
}

fn test(cond: &Cond, log: bool, cx: &mut RequestCtx) -> Result<bool, String> {
    Ok(match cond {
        Cond::Var(t) => {
            let v = t.eval(cx);
            !(v.is_empty() || v.as_ref() == b"0")
        }
        Cond::Eq { lhs, rhs, neg } => (lhs.eval(cx) == rhs.eval(cx)) != *neg,
        Cond::Match {
            lhs,
            re,
            neg,
            names,
        } => {
            let v = lhs.eval(cx);
            match re.captures(&v) {
                Ok(Some(spans)) => {
                    if log {
                        tracing::info!(
                            "\"{}\" matches \"{}\"",
                            re.as_str(),
                            String::from_utf8_lossy(&v)
                        );
                    }
                    let subject: Arc<str> = Arc::from(String::from_utf8_lossy(&v).as_ref());
                    set_captures(cx, subject, spans, names);
                    !*neg
                }
                Ok(None) => {
                    if log {
                        tracing::info!(
                            "\"{}\" does not match \"{}\"",
                            re.as_str(),
                            String::from_utf8_lossy(&v)
                        );
                    }
                    cx.captures = Captures::default();
                    *neg
                }
                Err(e) => return Err(e.0),
            }
        }
        Cond::File { path, op, neg } => {
            let p = path.eval_string(cx);
            // nginx tests with open_file_cache's stat(); a blocking stat of a local path
            // as nginx does (no open file cache here).
            let holds = match std::fs::metadata(&p) {
                Ok(m) => match op {
                    FileOp::File => m.is_file(),
                    FileOp::Dir => m.is_dir(),
                    FileOp::Exists => true,
                    FileOp::Exec => {
                        use std::os::unix::fs::PermissionsExt;
                        m.permissions().mode() & 0o100 != 0
                    }
                },
                Err(_) => false,
            };
            holds != *neg
        }
    })
}

/// nginx's `ngx_http_find_virtual_server`: the `server_name` regex that chose the
/// server sets `$1…` and its named captures (`~^(?<user>.+)\.example\.net$`).
pub(crate) fn server_name_captures(
    cx: &mut RequestCtx,
    names: &[crate::route::ServerName],
    host: &str,
) {
    use crate::route::ServerName;
    // Chosen by an exact or wildcard name: no regex ran for it.
    let by_name = names.iter().any(|n| match n {
        ServerName::Exact(e) => e == host,
        ServerName::WildFront(suf) => host.ends_with(suf.as_str()),
        ServerName::WildBack(pre) => host.starts_with(pre.as_str()),
        ServerName::Regex(..) => false,
    });
    if by_name {
        return;
    }
    for n in names {
        if let crate::route::ServerName::Regex(re, slots) = n {
            if let Ok(Some(spans)) = re.captures(host.as_bytes()) {
                set_captures(cx, Arc::from(host), spans, slots);
                return;
            }
        }
    }
}

/// Named groups written in a pattern (`(?<n>…)`, `(?'n'…)`, `(?P<n>…)`), found
/// before anything is compiled so that `$n` resolves in every template.
pub(crate) fn named_groups(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            i += 2;
            continue;
        }
        if c == b'(' && b.get(i + 1) == Some(&b'?') {
            let mut j = i + 2;
            if b.get(j) == Some(&b'P') {
                j += 1;
            }
            let close = match b.get(j) {
                Some(b'<') => Some(b'>'),
                Some(b'\'') => Some(b'\''),
                _ => None,
            };
            if let Some(close) = close {
                let start = j + 1;
                let len = b
                    .get(start..)
                    .unwrap_or(&[])
                    .iter()
                    .take_while(|&&x| x.is_ascii_alphanumeric() || x == b'_')
                    .count();
                if len > 0 && b.get(start + len) == Some(&close) {
                    if let Some(n) = s.get(start..start + len) {
                        out.push(n.to_string());
                    }
                }
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::named_groups;

    #[test]
    fn finds_named_groups_in_all_spellings() {
        assert_eq!(
            named_groups(r"^/(?<a>x)(?'b'y)(?P<c>z)(?<=w)(?<!v)\(?<d>"),
            vec!["a", "b", "c"]
        );
    }
}
