//! `map SOURCE $var { … }` (ngx_http_map_module) from the directive tree to
//! [`junction_core::map::Maps`], once at load: exact keys, `hostnames` masks,
//! `~`/`~*` regexes (PCRE2) whose captures — positional or named — the value may use,
//! `default`, `volatile`, `include` (expanded by the loader), values with variables.
//! A map's value is computed when its variable is first read (see `core::map`).

use junction_config::model::{err, BuildCx};
use junction_config::{ConfigError, Directive};
use junction_core::map::{Map, Maps};
use junction_core::regex::Regex;
use junction_core::vars::{resolve, Piece, Template, Var, VarTable};
use std::collections::HashMap;

fn map_blocks<'a>(levels: &'a [&'a [Directive]]) -> impl Iterator<Item = &'a Directive> + 'a {
    levels
        .iter()
        .flat_map(|l| l.iter())
        .filter(|d| d.name == "map")
}

/// Declares every map's variable (before any template is compiled, so that `$var`
/// resolves everywhere), with nginx's checks.
pub(crate) fn declare(levels: &[&[Directive]], bx: &mut BuildCx) -> Result<(), ConfigError> {
    for d in map_blocks(levels) {
        let (Some(_), Some(t)) = (d.args.first(), d.args.get(1)) else {
            return Err(err(
                &d.span,
                "invalid number of arguments in \"map\" directive",
            ));
        };
        let name = t
            .value
            .strip_prefix('$')
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(&t.span, format!("invalid variable name \"{}\"", t.value)))?;
        let builtin = matches!(
            resolve(name, &VarTable::default()),
            Some(v) if !matches!(v, Var::Http(_) | Var::Cookie(_) | Var::Arg(_) | Var::SentHttp(_) | Var::UpstreamHttp(_))
        );
        // A second map of the same variable replaces the first, as in nginx.
        if builtin {
            return Err(err(
                &t.span,
                format!("the duplicate \"{}\" variable", name.to_ascii_lowercase()),
            ));
        }
        bx.vars.declare_map(name);
    }
    Ok(())
}

/// `$name`/`${name}` of a named group becomes `${N}`: a regex key's captures are the
/// value's, positional or named.
fn positional(value: &str, re: &Regex) -> String {
    let names: HashMap<&str, usize> = re.names().map(|(i, n)| (n, i)).collect();
    if names.is_empty() {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
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

/// Builds every map, in the order [`declare`] numbered them.
pub(crate) fn build(levels: &[&[Directive]], bx: &BuildCx) -> Result<Maps, ConfigError> {
    let mut out = Maps::default();
    for d in map_blocks(levels) {
        let src = d
            .args
            .first()
            .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
        let mut m = Map {
            source: bx.template(src)?,
            exact: HashMap::new(),
            heads: Vec::new(),
            tails: Vec::new(),
            regexes: Vec::new(),
            values: Vec::new(),
            default: None,
            hostnames: false,
            volatile: false,
        };
        let entries = d.block.as_deref().unwrap_or(&[]);
        m.hostnames = entries
            .iter()
            .any(|e| e.name == "hostnames" && e.args.is_empty());
        for e in entries {
            let key = e.name.as_str();
            let Some(v) = e.args.first() else {
                match key {
                    "hostnames" => continue,
                    "volatile" => {
                        m.volatile = true;
                        continue;
                    }
                    _ => {
                        return Err(err(&e.span, "invalid number of the map parameters"));
                    }
                }
            };
            let compile =
                |s: &str| Template::compile(s, &bx.vars).map_err(|x| err(&v.span, x.to_string()));
            if key == "default" {
                if m.default.is_some() {
                    return Err(err(&e.span, "duplicate default map parameter"));
                }
                m.values.push(compile(&v.value)?);
                m.default = Some(m.values.len() - 1);
                continue;
            }
            if let Some(pat) = key.strip_prefix('~') {
                let (pat, caseless) = match pat.strip_prefix('*') {
                    Some(p) => (p, true),
                    None => (pat, false),
                };
                let re = Regex::compile(pat, caseless).map_err(|x| err(&e.span, x))?;
                m.values.push(compile(&positional(&v.value, &re))?);
                m.regexes.push((re, m.values.len() - 1));
                continue;
            }
            let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
            let idx = m.values.len();
            let conflict = || err(&e.span, format!("conflicting parameter \"{key}\""));
            if m.hostnames && (key.starts_with("*.") || key.starts_with('.')) {
                let bare = key.starts_with('.');
                let suffix = key.trim_start_matches('*').as_bytes().to_vec();
                if m.heads.iter().any(|(s, _, _)| *s == suffix) {
                    return Err(conflict());
                }
                m.heads.push((suffix, idx, bare));
            } else if m.hostnames && key.ends_with(".*") {
                let prefix = key.trim_end_matches('*').as_bytes().to_vec();
                if m.tails.iter().any(|(p, _)| *p == prefix) {
                    return Err(conflict());
                }
                m.tails.push((prefix, idx));
            } else if m.exact.insert(key.as_bytes().to_vec(), idx).is_some() {
                return Err(conflict());
            }
            m.values.push(compile(&v.value)?);
        }
        // The most specific mask first, as nginx's wildcard hashes find it.
        m.heads.sort_by_key(|h| std::cmp::Reverse(h.0.len()));
        m.tails.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        out.maps.push(m);
    }
    check_cycles(&out, levels)?;
    Ok(out)
}

fn deps(m: &Map) -> Vec<usize> {
    std::iter::once(&m.source)
        .chain(m.values.iter())
        .flat_map(|t| t.pieces().iter())
        .filter_map(|p| match p {
            Piece::Var(Var::Map(j)) => Some(*j),
            _ => None,
        })
        .collect()
}

/// A map whose value needs itself (directly or through other maps) cannot be computed.
fn check_cycles(maps: &Maps, levels: &[&[Directive]]) -> Result<(), ConfigError> {
    let graph: Vec<Vec<usize>> = maps.maps.iter().map(deps).collect();
    // 0 = unseen, 1 = on the path, 2 = done
    fn visit(i: usize, g: &[Vec<usize>], state: &mut [u8]) -> bool {
        match state.get(i) {
            Some(1) => return false,
            Some(2) | None => return true,
            _ => {}
        }
        if let Some(s) = state.get_mut(i) {
            *s = 1;
        }
        for &j in g.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            if !visit(j, g, state) {
                return false;
            }
        }
        if let Some(s) = state.get_mut(i) {
            *s = 2;
        }
        true
    }
    let mut state = vec![0u8; graph.len()];
    for (i, d) in map_blocks(levels).enumerate() {
        if !visit(i, &graph, &mut state) {
            let name = d.args.get(1).map_or("", |a| a.value.as_str());
            return Err(err(
                &d.span,
                format!(
                    "cycle while evaluating variable \"{}\"",
                    name.trim_start_matches('$')
                ),
            ));
        }
    }
    Ok(())
}
