//! A set of header names built once at load and tested per response header in a
//! few instructions: names bucketed by length, so a test compares at most the
//! one or two names of that length (`*_hide_header` and its defaults).

use http::HeaderName;

/// Header names, bucketed by the length of their (lower-case) name.
#[derive(Debug, Clone, Default)]
pub struct HeaderSet {
    by_len: Vec<Vec<HeaderName>>,
}

impl HeaderSet {
    /// The set of these names (duplicates kept once).
    pub fn new(names: impl IntoIterator<Item = HeaderName>) -> Self {
        let mut s = HeaderSet::default();
        for n in names {
            s.insert(n);
        }
        s
    }

    /// Adds a name.
    pub fn insert(&mut self, n: HeaderName) {
        let len = n.as_str().len();
        if self.by_len.len() <= len {
            self.by_len.resize_with(len + 1, Vec::new);
        }
        if let Some(b) = self.by_len.get_mut(len) {
            if !b.contains(&n) {
                b.push(n);
            }
        }
    }

    /// Whether `n` is in the set.
    #[inline]
    pub fn contains(&self, n: &HeaderName) -> bool {
        self.by_len
            .get(n.as_str().len())
            .is_some_and(|b| b.iter().any(|x| x == n))
    }

    /// The same set without `n`.
    pub fn without(&self, n: &HeaderName) -> Self {
        HeaderSet::new(self.iter().filter(|x| *x != n).cloned())
    }

    /// Every name in the set.
    pub fn iter(&self) -> impl Iterator<Item = &HeaderName> {
        self.by_len.iter().flatten()
    }

    /// Whether the set has no name.
    pub fn is_empty(&self) -> bool {
        self.by_len.iter().all(Vec::is_empty)
    }

    /// Whether any of the map's names is in the set.
    pub fn any_in(&self, map: &http::HeaderMap) -> bool {
        !self.is_empty() && map.keys().any(|k| self.contains(k))
    }

    /// The map without the names in the set, in its order (moved, not cloned).
    /// The map itself when none of its names is in the set.
    pub fn remove_from(&self, map: http::HeaderMap) -> http::HeaderMap {
        if !self.any_in(&map) {
            return map;
        }
        let mut out = http::HeaderMap::with_capacity(map.len());
        let mut name: Option<HeaderName> = None;
        let mut hidden = false;
        for (k, v) in map {
            if let Some(k) = k {
                hidden = self.contains(&k);
                name = Some(k);
            }
            if let (false, Some(k)) = (hidden, &name) {
                out.append(k.clone(), v);
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn membership_by_length_and_name() {
        let s = HeaderSet::new([
            header::DATE,
            header::SERVER,
            HeaderName::from_static("x-pad"),
            HeaderName::from_static("x-accel-expires"),
        ]);
        assert!(s.contains(&header::DATE));
        assert!(s.contains(&HeaderName::from_static("x-pad")));
        assert!(!s.contains(&header::ETAG));
        assert!(!s.contains(&header::CONTENT_LENGTH));
        assert!(!s.contains(&HeaderName::from_static("x-padding-too-long-for-any")));
        assert!(!s.without(&header::DATE).contains(&header::DATE));
        assert!(s.without(&header::DATE).contains(&header::SERVER));
        assert!(HeaderSet::default().is_empty());
    }

    #[test]
    fn removal_keeps_order_and_duplicates() {
        let s = HeaderSet::new([header::SERVER]);
        let mut m = http::HeaderMap::new();
        m.append(header::SERVER, "a".parse().unwrap());
        m.append(header::SET_COOKIE, "1".parse().unwrap());
        m.append(header::CONTENT_TYPE, "t".parse().unwrap());
        m.append(header::SET_COOKIE, "2".parse().unwrap());
        let out = s.remove_from(m);
        let got: Vec<_> = out
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("set-cookie", "1"),
                ("set-cookie", "2"),
                ("content-type", "t")
            ]
        );
    }
}

/// The name of a header line as it arrived: the names peers send most, in the
/// case they send them, are matched whole (no lower-casing pass); any other name
/// goes through [`HeaderName::from_bytes`].
#[inline]
pub fn header_name(b: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
    use http::header as h;
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    const STATUS: HeaderName = HeaderName::from_static("status");
    const X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");
    let n = match b {
        b"Host" | b"host" => h::HOST,
        b"Date" | b"date" => h::DATE,
        b"Server" | b"server" => h::SERVER,
        b"Content-Type" | b"content-type" => h::CONTENT_TYPE,
        b"Content-Length" | b"content-length" => h::CONTENT_LENGTH,
        b"Connection" | b"connection" => h::CONNECTION,
        b"Last-Modified" | b"last-modified" => h::LAST_MODIFIED,
        b"ETag" | b"etag" | b"Etag" => h::ETAG,
        b"Accept-Ranges" | b"accept-ranges" => h::ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => h::CACHE_CONTROL,
        b"Expires" | b"expires" => h::EXPIRES,
        b"Set-Cookie" | b"set-cookie" => h::SET_COOKIE,
        b"Location" | b"location" => h::LOCATION,
        b"Vary" | b"vary" => h::VARY,
        b"Content-Encoding" | b"content-encoding" => h::CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => h::TRANSFER_ENCODING,
        b"Keep-Alive" | b"keep-alive" => KEEP_ALIVE,
        b"User-Agent" | b"user-agent" => h::USER_AGENT,
        b"Accept" | b"accept" => h::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => h::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => h::ACCEPT_LANGUAGE,
        b"Cookie" | b"cookie" => h::COOKIE,
        b"Referer" | b"referer" => h::REFERER,
        b"Authorization" | b"authorization" => h::AUTHORIZATION,
        b"If-Modified-Since" | b"if-modified-since" => h::IF_MODIFIED_SINCE,
        b"If-None-Match" | b"if-none-match" => h::IF_NONE_MATCH,
        b"X-Forwarded-For" | b"x-forwarded-for" => X_FORWARDED_FOR,
        b"X-Real-IP" | b"x-real-ip" => X_REAL_IP,
        b"Upgrade" | b"upgrade" => h::UPGRADE,
        b"Range" | b"range" => h::RANGE,
        b"Status" | b"status" => STATUS,
        b"X-Powered-By" | b"x-powered-by" => X_POWERED_BY,
        _ => return HeaderName::from_bytes(b),
    };
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod name_tests {
    use super::header_name;

    #[test]
    fn the_fast_names_are_what_from_bytes_gives() {
        for n in [
            "Host",
            "host",
            "Date",
            "Server",
            "Content-Type",
            "Content-Length",
            "Connection",
            "Last-Modified",
            "ETag",
            "Etag",
            "Accept-Ranges",
            "Cache-Control",
            "Expires",
            "Set-Cookie",
            "Location",
            "Vary",
            "Content-Encoding",
            "Transfer-Encoding",
            "Keep-Alive",
            "User-Agent",
            "Accept",
            "Accept-Encoding",
            "Accept-Language",
            "Cookie",
            "Referer",
            "Authorization",
            "If-Modified-Since",
            "If-None-Match",
            "X-Forwarded-For",
            "X-Real-IP",
            "Upgrade",
            "Range",
            "Status",
            "X-Powered-By",
            "x-powered-by",
            "CONTENT-TYPE",
            "X-Custom",
            "cOnNeCtIoN",
        ] {
            assert_eq!(
                header_name(n.as_bytes()).unwrap(),
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                "{n}"
            );
        }
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"").is_err());
    }
}
