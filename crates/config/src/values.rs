//! Scalar value parsers shared by all directives (work in progress).

/// Parse an nginx size: `8`, `2k`, `1m`, `1g`.
pub fn parse_size(s: &str) -> Option<u64> {
    let _ = s;
    None
}

/// Parse an nginx time into milliseconds.
pub fn parse_time_ms(s: &str) -> Option<u64> {
    let _ = s;
    None
}

/// Parse `on`/`off`.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}
