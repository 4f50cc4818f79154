//! The `memcached_pass` location handler (being written).

use junction_config::model::{err, BuildCx, LocInfo, Scope};
use junction_config::ConfigError;
use junction_core::backend::Backend;
use std::sync::Arc;

/// Builds the backend when the location has `memcached_pass`.
pub fn build(scope: &Scope<'_>, _loc: &LocInfo, _bx: &mut BuildCx) -> Result<Option<Arc<dyn Backend>>, ConfigError> {
    match scope.local("memcached_pass") {
        None => Ok(None),
        Some(d) => Err(err(&d.span, "\"memcached_pass\" is not implemented yet")),
    }
}
