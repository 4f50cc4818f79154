//! What `tests/peers/echo.py` saw (its JSON answer), and table assertions.

use super::*;

/// What `echo.py` received, read from its JSON answer.
#[derive(Clone, Debug)]
pub struct Echo {
    pub method: String,
    /// The request-target exactly as the backend received it (query included).
    pub path: String,
    pub version: String,
    /// Request headers as received, in order.
    pub headers: Vec<(String, String)>,
    /// Source address of the connection the backend accepted.
    pub peer: String,
    pub peer_port: u16,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Echo {
    /// Reads echo.py's answer; panics (showing the response) if it is not one.
    pub fn from_response(r: &Response) -> Echo {
        let fail = |why: &str| -> ! {
            panic!("not an echo.py answer ({why}):\n{}", r.describe());
        };
        if r.status != 200 {
            fail("status");
        }
        let j = parse_json(&r.text()).unwrap_or_else(|e| fail(&e));
        let s = |k: &str| {
            j.get(k)
                .and_then(Json::as_str)
                .unwrap_or_else(|| fail(k))
                .to_string()
        };
        let n = |k: &str| j.get(k).and_then(Json::as_u64).unwrap_or_else(|| fail(k));
        let headers = j
            .get("headers")
            .and_then(Json::as_array)
            .unwrap_or_else(|| fail("headers"))
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([k, v]) => (
                    k.as_str().unwrap_or_default().to_string(),
                    v.as_str().unwrap_or_default().to_string(),
                ),
                _ => fail("header pair"),
            })
            .collect();
        Echo {
            method: s("method"),
            path: s("path"),
            version: s("version"),
            headers,
            peer: s("peer"),
            peer_port: u16::try_from(n("peer_port")).unwrap_or_else(|_| fail("peer_port")),
            body_len: n("body_len"),
            body_sha256: s("body_sha256"),
        }
    }

    /// First value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Every value of request header `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all_in(&self.headers, name)
    }
}

/// Runs a table of checks and panics once with every failing row.
pub fn assert_table(name: &str, failures: &[String], rows: usize) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {rows} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
