//! The one `Content-Type` lookup (nginx's `ngx_http_set_exten` +
//! `ngx_http_set_content_type`), for static files and every backend that types its
//! responses (memcached). The map itself is read at load (`types {}`, `default_type`).

use bytes::Bytes;
use std::collections::HashMap;

/// The extension of `uri` as nginx's `ngx_http_set_exten` finds it: after the last
/// `.` of the last path segment, not for a dot file (`/.htaccess`).
pub fn extension(uri: &str) -> Option<&str> {
    let b = uri.as_bytes();
    let mut i = b.len().checked_sub(1)?;
    while i > 1 {
        match b.get(i) {
            Some(b'.') if b.get(i - 1) != Some(&b'/') => return uri.get(i + 1..),
            Some(b'/') => return None,
            _ => {}
        }
        i -= 1;
    }
    None
}

/// The `Content-Type` for `uri`: its extension (case-insensitive) in `types`, else
/// `default_type` — nginx's `ngx_http_set_content_type`.
pub fn content_type(uri: &str, types: &HashMap<String, Bytes>, default_type: &Bytes) -> Bytes {
    extension(uri)
        .filter(|e| !e.is_empty())
        .and_then(|e| match types.get(e) {
            Some(t) => Some(t.clone()),
            None if e.bytes().any(|c| c.is_ascii_uppercase()) => {
                types.get(&e.to_ascii_lowercase()).cloned()
            }
            None => None,
        })
        .unwrap_or_else(|| default_type.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_as_nginx() {
        assert_eq!(extension("/a/b.html"), Some("html"));
        assert_eq!(extension("/a.b/c"), None);
        assert_eq!(extension("/a/.htaccess"), None);
        assert_eq!(extension("/a/x.tar.gz"), Some("gz"));
        assert_eq!(extension("/file."), Some(""));
        assert_eq!(extension("/"), None);
        assert_eq!(extension(""), None);
        assert_eq!(extension("/.x"), None);
    }

    #[test]
    fn dot_files_and_case() {
        let mut types = HashMap::new();
        types.insert("html".to_string(), Bytes::from_static(b"text/html"));
        types.insert("htaccess".to_string(), Bytes::from_static(b"text/x-wrong"));
        let dflt = Bytes::from_static(b"application/octet-stream");
        assert_eq!(content_type("/a/.htaccess", &types, &dflt), dflt);
        assert_eq!(content_type("/A.HTML", &types, &dflt), "text/html");
        assert_eq!(content_type("/x.html/y", &types, &dflt), dflt);
    }
}
