//! Argument values of the value-typed directives (`on|off` flags, sizes, times,
//! `*_buffers N SIZE`, numbers), checked wherever a directive is written — nginx checks
//! them while parsing, not only where a value is used — as part of the registry's one
//! walk over the tree ([`crate::registry::Registry::check`]), so `junction -t` reports
//! every bad value of a file, each with `FILE:LINE`, next to the syntax errors. What a
//! directive's values must be is its [`Kind`] in the registry.

use crate::model::{err, invalid};
use crate::registry::Kind;
use crate::tree::{ConfigError, Directive};
use crate::values::{parse_flag, parse_size, parse_time_ms};

/// Checks the values of `d` (not its block) against `kind`; pushes at most one error.
pub fn check_values(d: &Directive, kind: Kind, errors: &mut Vec<ConfigError>) {
    if let Err(e) = check(d, kind) {
        errors.push(e);
    }
}

/// Every argument passes `ok`, else `invalid value "X" in "NAME" directive`.
fn each(d: &Directive, ok: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
    match d.args.iter().find(|a| !ok(&a.value)) {
        Some(a) => Err(invalid(d, a)),
        None => Ok(()),
    }
}

fn check(d: &Directive, kind: Kind) -> Result<(), ConfigError> {
    match kind {
        Kind::Any => Ok(()),
        Kind::Flag => match d.args.iter().find(|a| parse_flag(&a.value).is_none()) {
            Some(a) => Err(err(
                &d.span,
                format!(
                    "invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                    a.value, d.name
                ),
            )),
            None => Ok(()),
        },
        Kind::Size => each(d, |v| parse_size(v).is_some()),
        Kind::Time => each(d, |v| parse_time_ms(v).is_some()),
        Kind::Number => each(d, |v| v.parse::<u64>().is_ok()),
        Kind::Buffers => {
            let (Some(num), Some(size)) = (d.args.first(), d.args.get(1)) else {
                return Err(err(
                    &d.span,
                    format!("invalid number of arguments in \"{}\" directive", d.name),
                ));
            };
            if num.value.parse::<usize>().is_err() {
                return Err(invalid(d, num));
            }
            if parse_size(&size.value).is_none() {
                return Err(invalid(d, size));
            }
            Ok(())
        }
        Kind::Custom(f) => f(d),
    }
}

/// `server_tokens on | off | build`; a quoted string or one with variables is nginx
/// Plus's `server_tokens string` (the `Server` value); any other word is a typo, as
/// nginx OSS says.
pub fn server_tokens(d: &Directive) -> Result<(), ConfigError> {
    match d.args.iter().find(|a| {
        !matches!(a.value.as_str(), "on" | "off" | "build") && !a.quoted && !a.value.contains('$')
    }) {
        Some(a) => Err(invalid(d, a)),
        None => Ok(()),
    }
}

/// `client_body_in_file_only on | clean | off`.
pub fn client_body_in_file_only(d: &Directive) -> Result<(), ConfigError> {
    match d
        .args
        .iter()
        .find(|a| junction_core::body_file::BodyInFile::parse(&a.value).is_none())
    {
        Some(a) => Err(invalid(d, a)),
        None => Ok(()),
    }
}
