//! The `junction` binary (placeholder).
fn main() {}
