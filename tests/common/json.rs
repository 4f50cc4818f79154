//! JSON answers of the peers, read with `serde_json`.

/// A JSON value.
pub use serde_json::Value as Json;

/// Parses `text` as JSON.
pub fn parse_json(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// `Json::parse(text)`, as the testkit's own parser was called.
pub trait JsonParse: Sized {
    /// Parses `text` as JSON.
    fn parse(text: &str) -> Result<Self, String>;
}

impl JsonParse for Json {
    fn parse(text: &str) -> Result<Json, String> {
        parse_json(text)
    }
}
