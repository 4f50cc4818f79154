//! `map SOURCE $var { … }` (ngx_http_map_module) from the directive tree to
//! [`junction_core::map::Maps`], once at load: exact keys, `hostnames` masks,
//! `~`/`~*` regexes (PCRE2) whose captures — positional or named — the value may use,
//! `default`, `volatile`, `include` (expanded by the loader), values with variables.
//! A map's value is computed when its variable is first read (see `core::map`).

use junction_config::model::{err, BuildCx};
use junction_config::{ConfigError, Directive};
use junction_core::map::{Computed, Geo, Map, Maps, Split};
use junction_core::regex::Regex;
use junction_core::vars::{resolve, Piece, Template, Var, VarTable};
use std::collections::HashMap;

fn map_blocks<'a>(levels: &'a [&'a [Directive]]) -> impl Iterator<Item = &'a Directive> + 'a {
    levels
        .iter()
        .flat_map(|l| l.iter())
        .filter(|d| matches!(d.name.as_str(), "map" | "geo" | "split_clients"))
}

/// The variable a `map`/`geo`/`split_clients` block defines (`geo $var` has one argument).
fn target(d: &Directive) -> Option<&junction_config::Arg> {
    if d.name == "geo" && d.args.len() == 1 {
        d.args.first()
    } else {
        d.args.get(1)
    }
}

/// Declares every map's variable (before any template is compiled, so that `$var`
/// resolves everywhere), with nginx's checks.
pub(crate) fn declare(levels: &[&[Directive]], bx: &mut BuildCx) -> Result<(), ConfigError> {
    for d in map_blocks(levels) {
        let Some(t) = target(d) else {
            return Err(err(
                &d.span,
                format!("invalid number of arguments in \"{}\" directive", d.name),
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

/// Builds every map, in the order [`declare`] numbered them.
pub(crate) fn build(levels: &[&[Directive]], bx: &BuildCx) -> Result<Maps, ConfigError> {
    let mut out = Maps::default();
    for d in map_blocks(levels) {
        match d.name.as_str() {
            "geo" => {
                out.maps.push(Computed::Geo(geo(d, bx)?));
                continue;
            }
            "split_clients" => {
                out.maps.push(Computed::Split(split(d, bx)?));
                continue;
            }
            _ => {}
        }
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
        // As in nginx, `hostnames` applies to the masks written after it.
        let mut masks = false;
        for e in entries {
            let key = e.name.as_str();
            let Some(v) = e.args.first() else {
                match key {
                    "hostnames" => {
                        masks = true;
                        m.hostnames = true;
                        continue;
                    }
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
                m.values.push(compile(&re.positional(&v.value))?);
                m.regexes.push((re, m.values.len() - 1));
                continue;
            }
            let key = key.strip_prefix('\\').unwrap_or(key).to_ascii_lowercase();
            let idx = m.values.len();
            let conflict = || err(&e.span, format!("conflicting parameter \"{key}\""));
            if masks && (key.starts_with("*.") || key.starts_with('.')) {
                let bare = key.starts_with('.');
                let suffix = key.trim_start_matches('*').as_bytes().to_vec();
                if m.heads.iter().any(|(s, _, _)| *s == suffix) {
                    return Err(conflict());
                }
                m.heads.push((suffix, idx, bare));
            } else if masks && key.ends_with(".*") {
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
        out.maps.push(Computed::Map(m));
    }
    check_cycles(&out, levels)?;
    Ok(out)
}

fn deps(m: &Computed) -> Vec<usize> {
    m.templates()
        .into_iter()
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
            let name = target(d).map_or("", |a| a.value.as_str());
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

/// `split_clients STRING $var { PERCENT% VALUE; … [* VALUE;] }` with nginx's bounds
/// (`ngx_conf_split_clients_block`): hundredths of a percent scaled to 32 bits.
fn split(d: &Directive, bx: &BuildCx) -> Result<Split, ConfigError> {
    let src = d
        .args
        .first()
        .ok_or_else(|| err(&d.span, "invalid number of arguments"))?;
    let mut parts: Vec<(u32, bytes::Bytes)> = Vec::new();
    for e in d.block.as_deref().unwrap_or(&[]) {
        let v = e
            .args
            .first()
            .ok_or_else(|| err(&e.span, "invalid number of arguments"))?;
        let percent = if e.name == "*" {
            0
        } else {
            let bad = || err(&e.span, format!("invalid percent value \"{}\"", e.name));
            let num = e.name.strip_suffix('%').ok_or_else(bad)?;
            hundredths(num).filter(|n| *n > 0).ok_or_else(bad)?
        };
        parts.push((percent, bytes::Bytes::from(v.value.clone())));
    }
    let mut sum: u32 = 0;
    let mut last: u32 = 0;
    for (p, _) in parts.iter_mut() {
        sum = if *p != 0 {
            sum.saturating_add(*p)
        } else {
            10000
        };
        if sum == 10000 {
            *p = 0;
        }
        if sum > 10000 {
            return Err(err(&d.span, "percent total is greater than 100%"));
        }
        if *p != 0 {
            last = last.wrapping_add((u64::from(*p) * 0xffff_ffff / 10000) as u32);
            *p = last;
        }
    }
    Ok(Split {
        source: bx.template(src)?,
        parts,
    })
}

/// `ngx_atofp(s, 2)`: a decimal with at most two fraction digits, in hundredths.
fn hundredths(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (int.is_empty() && frac.is_empty())
    {
        return None;
    }
    let i: u32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: u32 = format!("{frac:0<2}").parse().ok()?;
    i.checked_mul(100)?.checked_add(f)
}

/// `ADDR[/LEN]` as nginx's `ngx_ptocidr` reads it (a bare address is a host).
fn cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match l {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((ip, len))
}

/// `geo [ADDRESS] $var { default V; NET V; delete NET; proxy NET; proxy_recursive;
/// ranges; A-B V; include FILE; }` (ngx_http_geo_module).
fn geo(d: &Directive, bx: &BuildCx) -> Result<Geo, ConfigError> {
    use std::net::IpAddr;
    let source = if d.args.len() == 2 {
        d.args.first().map(|a| bx.template(a)).transpose()?
    } else {
        None
    };
    let entries = d.block.as_deref().unwrap_or(&[]);
    let ranges = entries
        .iter()
        .any(|e| e.name == "ranges" && e.args.is_empty());
    let mut g = Geo {
        source,
        v4: Vec::new(),
        v6: Vec::new(),
        ranges: if ranges { Some(Vec::new()) } else { None },
        default: bytes::Bytes::new(),
        proxies: Vec::new(),
        proxy_recursive: false,
    };
    let mut v4: std::collections::BTreeMap<u8, HashMap<u32, bytes::Bytes>> = Default::default();
    let mut v6: std::collections::BTreeMap<u8, HashMap<u128, bytes::Bytes>> = Default::default();
    for e in entries {
        let bad = |what: &str| err(&e.span, format!("invalid {what} \"{}\"", e.name));
        match (e.name.as_str(), e.args.first()) {
            ("ranges", None) => {}
            ("proxy_recursive", None) => g.proxy_recursive = true,
            ("proxy", Some(a)) => {
                let net = cidr(&a.value)
                    .ok_or_else(|| err(&a.span, format!("invalid network \"{}\"", a.value)))?;
                g.proxies.push(net);
            }
            ("default", Some(v)) => g.default = bytes::Bytes::from(v.value.clone()),
            ("delete", Some(a)) => {
                if let Some(r) = g.ranges.as_mut() {
                    let (lo, hi) = range(&a.value).ok_or_else(|| bad("range"))?;
                    r.retain(|(l, h, _)| !(*l == lo && *h == hi));
                    continue;
                }
                match cidr(&a.value)
                    .ok_or_else(|| err(&a.span, format!("invalid network \"{}\"", a.value)))?
                {
                    (IpAddr::V4(ip), len) => {
                        if let Some(m) = v4.get_mut(&len) {
                            m.remove(&(u32::from(ip) & junction_core::map::mask4(len)));
                        }
                    }
                    (IpAddr::V6(ip), len) => {
                        if let Some(m) = v6.get_mut(&len) {
                            m.remove(&(u128::from(ip) & junction_core::map::mask6(len)));
                        }
                    }
                }
            }
            (key, Some(v)) => {
                let value = bytes::Bytes::from(v.value.clone());
                if let Some(r) = g.ranges.as_mut() {
                    let (lo, hi) = range(key).ok_or_else(|| bad("range"))?;
                    // nginx (`ngx_http_geo_add_range`): a range may only lie inside an
                    // earlier one (and then wins there) or beside it; the same range
                    // again replaces the value; any other overlap is an error.
                    if let Some(same) = r.iter_mut().find(|(l, h, _)| *l == lo && *h == hi) {
                        same.2 = value;
                        continue;
                    }
                    if let Some((l, h, _)) = r
                        .iter()
                        .find(|(l, h, _)| lo <= *h && *l <= hi && !(*l <= lo && hi <= *h))
                    {
                        return Err(err(
                            &e.span,
                            format!(
                                "range \"{key}\" overlaps \"{}-{}\"",
                                std::net::Ipv4Addr::from(*l),
                                std::net::Ipv4Addr::from(*h)
                            ),
                        ));
                    }
                    r.push((lo, hi, value));
                    continue;
                }
                match cidr(key).ok_or_else(|| bad("network"))? {
                    (IpAddr::V4(ip), len) => {
                        v4.entry(len)
                            .or_default()
                            .insert(u32::from(ip) & junction_core::map::mask4(len), value);
                    }
                    (IpAddr::V6(ip), len) => {
                        v6.entry(len)
                            .or_default()
                            .insert(u128::from(ip) & junction_core::map::mask6(len), value);
                    }
                }
            }
            (_, None) => return Err(err(&e.span, "invalid number of the geo parameters")),
        }
    }
    g.v4 = v4
        .into_iter()
        .rev()
        .filter(|(_, m)| !m.is_empty())
        .collect();
    g.v6 = v6
        .into_iter()
        .rev()
        .filter(|(_, m)| !m.is_empty())
        .collect();
    Ok(g)
}

/// `A-B` of IPv4 addresses (`ranges`).
fn range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let b: std::net::Ipv4Addr = b.parse().ok()?;
    let (a, b) = (u32::from(a), u32::from(b));
    (a <= b).then_some((a, b))
}
