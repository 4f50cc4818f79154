//! What a TLS handshake established, kept once per connection
//! ([`crate::ctx::ConnInfo::tls`]; a plain connection holds `None`), and the `$ssl_*`
//! variables read from it (ngx_http_ssl_module's variables, nginx's spelling).
//!
//! The handshake itself is `junction_server::tls`; this module is plain data so that
//! variables are evaluated here without knowing rustls.

use bytes::{BufMut, BytesMut};

/// The `$ssl_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslVar {
    /// `$ssl_protocol`: `TLSv1.2`, `TLSv1.3`.
    Protocol,
    /// `$ssl_cipher`: OpenSSL's name of the suite (`TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`).
    Cipher,
    /// `$ssl_curve`: OpenSSL's name of the key-exchange group (`X25519`, `prime256v1`).
    Curve,
    /// `$ssl_ciphers`: the suites the client offered, OpenSSL's names (`0xHHHH` for
    /// one rustls does not know), `:`-separated.
    Ciphers,
    /// `$ssl_curves`: the groups the client offered (`X25519:prime256v1`, `0xHHHH`).
    Curves,
    /// `$ssl_server_name`: the SNI name.
    ServerName,
    /// `$ssl_alpn_protocol`.
    AlpnProtocol,
    /// `$ssl_session_id` (rustls does not expose one: empty).
    SessionId,
    /// `$ssl_session_reused`: `r` or `.`.
    SessionReused,
    /// `$ssl_early_data`: `1` while the request came in 0-RTT data, else empty.
    EarlyData,
    /// `$ssl_client_verify`: `NONE`, `SUCCESS`, `FAILED:reason`.
    ClientVerify,
    /// `$ssl_client_s_dn` (RFC 2253).
    ClientSDn,
    /// `$ssl_client_i_dn` (RFC 2253).
    ClientIDn,
    /// `$ssl_client_serial` (upper-case hex).
    ClientSerial,
    /// `$ssl_client_fingerprint` (SHA-1 of the DER, lower-case hex).
    ClientFingerprint,
    /// `$ssl_client_cert`: the PEM, every line after the first indented by a tab.
    ClientCert,
    /// `$ssl_client_raw_cert`: the PEM.
    ClientRawCert,
    /// `$ssl_client_escaped_cert`: the PEM, URL-encoded.
    ClientEscapedCert,
    /// `$ssl_client_v_start`.
    ClientVStart,
    /// `$ssl_client_v_end`.
    ClientVEnd,
    /// `$ssl_client_v_remain`: whole days left.
    ClientVRemain,
    /// `$ssl_client_s_dn_legacy` (OpenSSL's one-line form, `/C=…/CN=…`).
    ClientSDnLegacy,
    /// `$ssl_client_i_dn_legacy`.
    ClientIDnLegacy,
}

impl SslVar {
    /// The variable a (lower-cased) name without `$` stands for.
    pub fn parse(name: &str) -> Option<SslVar> {
        Some(match name {
            "ssl_protocol" => SslVar::Protocol,
            "ssl_cipher" => SslVar::Cipher,
            "ssl_curve" => SslVar::Curve,
            "ssl_ciphers" => SslVar::Ciphers,
            "ssl_curves" => SslVar::Curves,
            "ssl_server_name" => SslVar::ServerName,
            "ssl_alpn_protocol" => SslVar::AlpnProtocol,
            "ssl_session_id" => SslVar::SessionId,
            "ssl_session_reused" => SslVar::SessionReused,
            "ssl_early_data" => SslVar::EarlyData,
            "ssl_client_verify" => SslVar::ClientVerify,
            "ssl_client_s_dn" => SslVar::ClientSDn,
            "ssl_client_i_dn" => SslVar::ClientIDn,
            "ssl_client_serial" => SslVar::ClientSerial,
            "ssl_client_fingerprint" => SslVar::ClientFingerprint,
            "ssl_client_cert" => SslVar::ClientCert,
            "ssl_client_raw_cert" => SslVar::ClientRawCert,
            "ssl_client_escaped_cert" => SslVar::ClientEscapedCert,
            "ssl_client_v_start" => SslVar::ClientVStart,
            "ssl_client_v_end" => SslVar::ClientVEnd,
            "ssl_client_v_remain" => SslVar::ClientVRemain,
            "ssl_client_s_dn_legacy" => SslVar::ClientSDnLegacy,
            "ssl_client_i_dn_legacy" => SslVar::ClientIDnLegacy,
            _ => return None,
        })
    }
}

/// A client certificate's facts, formatted once at the handshake.
#[derive(Debug, Clone, Default)]
pub struct ClientCert {
    /// Subject DN, RFC 2253.
    pub s_dn: String,
    /// Issuer DN, RFC 2253.
    pub i_dn: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-1 of the DER, lower-case hex.
    pub fingerprint: String,
    /// The certificate in PEM.
    pub pem: String,
    /// `notBefore` as OpenSSL prints it (`Dec  1 22:00:00 2026 GMT`).
    pub v_start: String,
    /// `notAfter`.
    pub v_end: String,
    /// `notAfter`, seconds since the epoch (`$ssl_client_v_remain`).
    pub not_after: i64,
    /// Subject DN, OpenSSL's one-line form.
    pub s_dn_legacy: String,
    /// Issuer DN, OpenSSL's one-line form.
    pub i_dn_legacy: String,
}

/// What the handshake of one connection established.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.2`/`TLSv1.3`.
    pub protocol: &'static str,
    /// OpenSSL's name of the cipher suite.
    pub cipher: &'static str,
    /// OpenSSL's name of the key-exchange group.
    pub curve: &'static str,
    /// `$ssl_ciphers`, formatted at the handshake from the ClientHello.
    pub ciphers: Box<str>,
    /// `$ssl_curves`, likewise.
    pub curves: Box<str>,
    /// The SNI name the client sent (lower-case; empty: none).
    pub server_name: Box<str>,
    /// Whether the SNI name chose a server (nginx's `hc->ssl_servername`).
    pub sni_matched: bool,
    /// The ALPN protocol negotiated (empty: none).
    pub alpn: Box<str>,
    /// Whether the session was resumed.
    pub reused: bool,
    /// `$ssl_client_verify`.
    pub verify: Box<str>,
    /// Whether the client certificate failed only for want of a trusted issuer
    /// (what `ssl_verify_client optional_no_ca` tolerates).
    pub verify_unknown_ca: bool,
    /// The client certificate, if one was sent.
    pub client: Option<Box<ClientCert>>,
}

impl TlsInfo {
    /// Appends the value of `v` to `out`.
    pub fn var_into(&self, v: SslVar, out: &mut BytesMut) {
        let client = self.client.as_deref();
        match v {
            SslVar::Protocol => out.put_slice(self.protocol.as_bytes()),
            SslVar::Cipher => out.put_slice(self.cipher.as_bytes()),
            SslVar::Curve => out.put_slice(self.curve.as_bytes()),
            SslVar::Ciphers => out.put_slice(self.ciphers.as_bytes()),
            SslVar::Curves => out.put_slice(self.curves.as_bytes()),
            SslVar::ServerName => out.put_slice(self.server_name.as_bytes()),
            SslVar::AlpnProtocol => out.put_slice(self.alpn.as_bytes()),
            SslVar::SessionId => {}
            SslVar::SessionReused => out.put_u8(if self.reused { b'r' } else { b'.' }),
            SslVar::EarlyData => {}
            SslVar::ClientVerify => out.put_slice(self.verify.as_bytes()),
            SslVar::ClientSDn => put(out, client.map(|c| &c.s_dn)),
            SslVar::ClientIDn => put(out, client.map(|c| &c.i_dn)),
            SslVar::ClientSerial => put(out, client.map(|c| &c.serial)),
            SslVar::ClientFingerprint => put(out, client.map(|c| &c.fingerprint)),
            SslVar::ClientVStart => put(out, client.map(|c| &c.v_start)),
            SslVar::ClientVEnd => put(out, client.map(|c| &c.v_end)),
            SslVar::ClientSDnLegacy => put(out, client.map(|c| &c.s_dn_legacy)),
            SslVar::ClientIDnLegacy => put(out, client.map(|c| &c.i_dn_legacy)),
            SslVar::ClientVRemain => {
                // ngx_ssl_get_client_v_remain: days left, 0 once expired.
                if let Some(c) = client {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let days = (c.not_after - now).max(0) / 86400;
                    out.put_slice(days.to_string().as_bytes());
                }
            }
            SslVar::ClientRawCert => put(out, client.map(|c| &c.pem)),
            SslVar::ClientCert => {
                // ngx_ssl_get_certificate: a tab after every inner newline.
                if let Some(c) = client {
                    let pem = c.pem.trim_end_matches('\n');
                    for (i, line) in pem.split('\n').enumerate() {
                        if i > 0 {
                            out.put_slice(b"\n\t");
                        }
                        out.put_slice(line.as_bytes());
                    }
                }
            }
            SslVar::ClientEscapedCert => {
                // ngx_ssl_get_escaped_certificate: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT).
                if let Some(c) = client {
                    for b in c.pem.bytes() {
                        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                            out.put_u8(b);
                        } else {
                            let hex = b"0123456789ABCDEF";
                            out.put_u8(b'%');
                            out.put_u8(hex.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
                            out.put_u8(hex.get(usize::from(b & 15)).copied().unwrap_or(b'0'));
                        }
                    }
                }
            }
        }
    }
}

fn put(out: &mut BytesMut, s: Option<&String>) {
    if let Some(s) = s {
        out.put_slice(s.as_bytes());
    }
}
