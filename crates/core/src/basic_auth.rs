//! The `Authorization: Basic …` credentials of a request, read as nginx's
//! `ngx_http_auth_basic_user` reads them: `$remote_user` (whether or not `auth_basic`
//! applies) and the auth_basic module both use this one reader.

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use http::HeaderMap;

/// nginx's `ngx_decode_base64`: the standard alphabet, padding optional, trailing bits
/// ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decoded `user:password` of a `Basic` Authorization header, split at the first `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    decoded: Vec<u8>,
    colon: usize,
}

impl Credentials {
    /// The user name (never empty).
    pub fn user(&self) -> &[u8] {
        self.decoded.get(..self.colon).unwrap_or(&[])
    }

    /// The password (may be empty).
    pub fn password(&self) -> &[u8] {
        self.decoded.get(self.colon + 1..).unwrap_or(&[])
    }
}

/// The credentials of `headers`, or `None` where nginx declines: no Authorization
/// header, a scheme other than `Basic` (case-insensitive, then spaces), bad base64, no
/// `:` or an empty user name.
pub fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let v = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = (v.get(..6)?, v.get(6..)?);
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    let encoded = rest.get(start..)?;
    // nginx stops at the first '='.
    let end = encoded
        .iter()
        .position(|&b| b == b'=')
        .unwrap_or(encoded.len());
    let decoded = LENIENT.decode(encoded.get(..end)?).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    if colon == 0 {
        return None;
    }
    Some(Credentials { decoded, colon })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn creds(v: &str) -> Option<(String, String)> {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        credentials(&h).map(|c| {
            (
                String::from_utf8_lossy(c.user()).into_owned(),
                String::from_utf8_lossy(c.password()).into_owned(),
            )
        })
    }

    #[test]
    fn reads_basic_credentials_as_nginx() {
        let ok = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        // "alice:secret"
        assert_eq!(creds("Basic YWxpY2U6c2VjcmV0"), ok("alice", "secret"));
        assert_eq!(creds("bAsIc    YWxpY2U6c2VjcmV0"), ok("alice", "secret"));
        // "a:b:c": split at the first colon
        assert_eq!(creds("Basic YTpiOmM="), ok("a", "b:c"));
        assert_eq!(creds("Basic YTpiOmM"), ok("a", "b:c"));
        // "bob:" (empty password is allowed)
        assert_eq!(creds("Basic Ym9iOg=="), ok("bob", ""));
        // ":x" (empty user), "abc" (no colon), bad base64, other schemes, nothing
        assert_eq!(creds("Basic Ong="), None);
        assert_eq!(creds("Basic YWJj"), None);
        assert_eq!(creds("Basic !!!!"), None);
        assert_eq!(creds("Bearer YWxpY2U6c2VjcmV0"), None);
        assert_eq!(creds("Basic"), None);
        assert_eq!(creds("Basic    "), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
    }
}
