//! Directive registry (work in progress).

use crate::tree::{ConfigError, Directive};

/// Check every directive name, context and argument count.
pub fn check(tree: &[Directive]) -> Result<(), Vec<ConfigError>> {
    let _ = tree;
    Ok(())
}

/// True when the top level is a bare http-level file (server/upstream blocks, no `http`).
pub fn is_bare_http(tree: &[Directive]) -> bool {
    !tree.iter().any(|d| d.name == "http")
        && tree
            .iter()
            .any(|d| d.block.is_some() && (d.name == "server" || d.name == "upstream"))
}
