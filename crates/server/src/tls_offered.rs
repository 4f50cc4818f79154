//! `$ssl_ciphers` and `$ssl_curves`: what the client offered in its ClientHello, read
//! where the listener peeks at it (before the server is chosen), in nginx's format
//! (`ngx_ssl_get_ciphers`, `ngx_ssl_get_curves`): OpenSSL's names joined by `:`, and
//! `0x` + hex for a value without a name (GREASE, suites rustls does not have).
//!
//! rustls names only the suites it implements; the signalling values every client
//! sends have OpenSSL's names here. Other suites OpenSSL knows (CBC, RSA key
//! exchange) come out in hex, where nginx prints their names.

use rustls::server::ClientHello;
use std::fmt::Write as _;

/// `($ssl_ciphers, $ssl_curves)` of a ClientHello.
pub(crate) fn offered(hello: &ClientHello<'_>) -> (Box<str>, Box<str>) {
    let mut ciphers = String::new();
    for s in hello.cipher_suites() {
        if !ciphers.is_empty() {
            ciphers.push(':');
        }
        let v = u16::from(*s);
        let name = match v {
            0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
            0x5600 => "TLS_FALLBACK_SCSV",
            _ => crate::tls::cipher_name(*s),
        };
        if name.is_empty() {
            let _ = write!(ciphers, "0x{v:04x}");
        } else {
            ciphers.push_str(name);
        }
    }
    let mut curves = String::new();
    for g in hello.named_groups().unwrap_or_default() {
        if !curves.is_empty() {
            curves.push(':');
        }
        let v = u16::from(*g);
        // OpenSSL's short names (OBJ_nid2sn / its group list).
        let name = match v {
            0x0017 => "prime256v1",
            0x0018 => "secp384r1",
            0x0019 => "secp521r1",
            0x001d => "X25519",
            0x001e => "X448",
            0x0100 => "ffdhe2048",
            0x0101 => "ffdhe3072",
            0x0102 => "ffdhe4096",
            0x0103 => "ffdhe6144",
            0x0104 => "ffdhe8192",
            _ => "",
        };
        if name.is_empty() {
            let _ = write!(curves, "0x{v:04x}");
        } else {
            curves.push_str(name);
        }
    }
    (ciphers.into(), curves.into())
}
