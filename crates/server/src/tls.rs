//! TLS listeners (`listen … ssl`): ngx_http_ssl_module on rustls.
//!
//! ## A connection's way
//! [`serve`] runs after the PROXY protocol header (as nginx: the header comes before
//! TLS). It peeks at the first byte: not a TLS handshake record → the connection is
//! served as plain HTTP/1 and every request gets nginx's 497 (the 400 page "The plain
//! HTTP request was sent to HTTPS port", or `error_page 497`). Else the ClientHello is
//! read (`LazyConfigAcceptor`), the SNI name chooses the server exactly as a `Host`
//! does (`route::select_server`; unknown or none → the listen's default server), and
//! the handshake finishes under that server's [`rustls::ServerConfig`] (its
//! certificates, client verification, session settings), all within the default
//! server's `client_header_timeout` (nginx's `post_accept_timeout`; the http module
//! has no `ssl_handshake_timeout`, only the stream module has). The facts of the handshake are kept once on
//! [`ConnInfo::tls`]; then [`dispatch`] hands the stream to the protocol ALPN chose.
//!
//! ## Built at load
//! [`ServerTls::from_scope`] reads a server's `ssl_*` directives (certificate files
//! loaded and checked there, errors with `FILE:LINE`); [`attach`] builds, for every
//! `listen … ssl`, one `ServerConfig` per server on it. Session caches
//! (`ssl_session_cache shared:NAME:SIZE`) and the ticket keys are built once per
//! configuration and shared by every worker thread.
//!
//! ## Where rustls differs from OpenSSL
//! No TLS 1.0/1.1, no DHE, no RSA key exchange, no CBC suites: naming them is a warning.
//! `ssl_verify_depth` is checked on the path from the client's certificate to the
//! trusted CA, following the chain by names (webpki does not report its path). Client
//! certificates are verified after the handshake (so that, as nginx, a bad or missing
//! certificate is answered with a 495/496 page instead of a failed handshake).

use crate::build::{Listen, VServer};
use crate::http1::conn::{self, Socket, Source};
use junction_config::model::{err, invalid, Scope};
use junction_config::tree::{ConfigError, Directive};
use junction_core::ctx::ConnInfo;
use junction_core::tls::{ClientCert, TlsInfo};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ProducesTickets, ResolvesServerCert,
    ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, DistinguishedName, ServerConfig, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// The TLS stream a client connection runs over.
pub(crate) type Stream = tokio_rustls::server::TlsStream<TcpStream>;

impl Socket for Stream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let (tcp, tls) = self.get_ref();
        // Plaintext rustls holds already (or a close_notify) is readable at once.
        if !tls.wants_read() {
            return Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }
    fn reset(&self) {
        self.get_ref().0.reset();
    }
    fn shutdown_on_close(&self) -> bool {
        true
    }
}

/// `ssl_verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// `off` (default).
    #[default]
    Off,
    /// `on`: a valid certificate is required (496 without, 495 when invalid).
    On,
    /// `optional`: asked for; an invalid one is a 495.
    Optional,
    /// `optional_no_ca`: asked for, not required to chain to a trusted CA.
    OptionalNoCa,
}

/// `ssl_session_cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SessionCache {
    /// `none` (default) / `off`: no server-side cache (tickets still resume).
    None,
    /// `builtin[:N]`: a cache of this server's own.
    Builtin(usize),
    /// `shared:NAME:SIZE`: one cache per name, shared by every server naming it.
    Shared(String, usize),
}

/// A server's `ssl_*` settings, read and checked once at load.
pub struct ServerTls {
    /// Certificate chains with their keys (`ssl_certificate`/`ssl_certificate_key` pairs).
    certs: Vec<Arc<CertifiedKey>>,
    /// Pairs named with `$ssl_server_name` (paths), loaded at each handshake.
    dynamic: Vec<(String, String)>,
    /// The first `ssl_certificate` (for the error naming it).
    cert_span: Option<junction_config::tree::Span>,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    suites: Vec<rustls::SupportedCipherSuite>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    prefer_server_ciphers: bool,
    /// `ssl_verify_client`.
    pub verify: VerifyClient,
    /// `ssl_verify_depth` (1).
    verify_depth: usize,
    /// The CAs client certificates are verified against (`ssl_client_certificate` +
    /// `ssl_trusted_certificate`), with `ssl_crl`.
    client_roots: Vec<CertificateDer<'static>>,
    /// The names sent in the CertificateRequest (`ssl_client_certificate` only).
    client_hints: Vec<DistinguishedName>,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
    session_cache: SessionCache,
    session_timeout: Duration,
    session_tickets: bool,
    /// `ssl_session_ticket_key` files' contents, in order (the first encrypts).
    ticket_keys: Vec<Vec<u8>>,
    buffer_size: usize,
    /// `ssl_reject_handshake on`.
    reject_handshake: bool,
    /// The handshake's time limit: `client_header_timeout` (60s), as nginx's
    /// `post_accept_timeout` (the http module has no `ssl_handshake_timeout`).
    pub handshake_timeout: Duration,
    /// `ssl_stapling_file`'s OCSP response.
    ocsp: Option<Vec<u8>>,
    /// `acme_certificate` (obtained and renewed while this configuration holds it).
    acme_cert: Option<Arc<crate::acme::Managed>>,
    /// The same, when `ssl_certificate $acme_certificate` serves it.
    acme: Option<Arc<crate::acme::Managed>>,
    /// `ssl_stapling on` without a file: one staple per entry of `certs` (`None` where
    /// stapling was ignored), fetched from the responder (`crate::ocsp`).
    staples: Vec<Option<Arc<crate::ocsp::Staple>>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("certs", &self.certs.len())
            .field("verify", &self.verify)
            .field("acme_certificate", &self.acme_cert)
            .finish_non_exhaustive()
    }
}

/// The suites rustls has, with the names OpenSSL (and so `$ssl_cipher`, `ssl_ciphers`)
/// gives them.
fn suite_names() -> [(rustls::SupportedCipherSuite, &'static str); 9] {
    use rustls::crypto::ring::cipher_suite as cs;
    [
        (cs::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
        (cs::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
        (
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            "TLS_CHACHA20_POLY1305_SHA256",
        ),
        (
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
        (
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        (
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ),
        (
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-RSA-AES256-GCM-SHA384",
        ),
        (
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-RSA-AES128-GCM-SHA256",
        ),
        (
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-RSA-CHACHA20-POLY1305",
        ),
    ]
}

pub(crate) fn cipher_name(s: CipherSuite) -> &'static str {
    suite_names()
        .iter()
        .find(|(x, _)| x.suite() == s)
        .map_or("", |(_, n)| *n)
}

fn group_name(g: rustls::NamedGroup) -> &'static str {
    match g {
        rustls::NamedGroup::X25519 => "X25519",
        rustls::NamedGroup::secp256r1 => "prime256v1",
        rustls::NamedGroup::secp384r1 => "secp384r1",
        _ => "",
    }
}

/// OpenSSL cipher-string keywords that stand for every suite rustls has (rustls has
/// only strong AEAD suites with ECDHE, which all of these include).
const CIPHER_KEYWORDS: &[&str] = &[
    "HIGH",
    "ALL",
    "DEFAULT",
    "COMPLEMENTOFDEFAULT",
    "ECDHE",
    "EECDH",
    "kEECDH",
    "kECDHE",
    "ECDH",
    "AESGCM",
    "AES",
    "AES128",
    "AES256",
    "CHACHA20",
    "CHACHA20-POLY1305",
    "aRSA",
    "aECDSA",
    "ECDSA",
    "RSA",
    "SHA256",
    "SHA384",
    "TLSv1.2",
    "AEAD",
    "PROFILE=SYSTEM",
    "@SECLEVEL=0",
    "@SECLEVEL=1",
    "@SECLEVEL=2",
    "@STRENGTH",
];

/// `ssl_ciphers` → the TLS 1.2 suites in order (TLS 1.3 suites are not chosen by it,
/// as in OpenSSL). Names rustls lacks are listed in the warning.
fn parse_ciphers(spec: &str) -> (Vec<rustls::SupportedCipherSuite>, Vec<String>) {
    let names = suite_names();
    let tls12: Vec<_> = names
        .iter()
        .filter(|(s, _)| s.version() == &rustls::version::TLS12)
        .collect();
    let mut out: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut removed: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut unknown = Vec::new();
    let mut all = false;
    for tok in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (neg, name) = match tok.as_bytes().first() {
            Some(b'!' | b'-') => (true, tok.get(1..).unwrap_or("")),
            Some(b'+') => (false, tok.get(1..).unwrap_or("")),
            _ => (false, tok),
        };
        if let Some((s, _)) = tls12.iter().find(|(_, n)| *n == name) {
            if neg {
                removed.push(*s);
            } else if !out.contains(s) {
                out.push(*s);
            }
            continue;
        }
        if neg {
            // Exclusions of what rustls never has (`!aNULL`, `!MD5`, `!RC4`, …).
            continue;
        }
        let keyword = name
            .split('+')
            .all(|k| CIPHER_KEYWORDS.contains(&k) || k.starts_with("@SECLEVEL"));
        if keyword {
            all = true;
        } else {
            unknown.push(name.to_string());
        }
    }
    if all {
        for (s, _) in &tls12 {
            if !out.contains(s) {
                out.push(*s);
            }
        }
    }
    out.retain(|s| !removed.contains(s));
    (out, unknown)
}

/// Reads a PEM source: a file (relative to the conf prefix) or nginx's `data:` value.
fn read_pem(
    a: &junction_config::tree::Arg,
    d: &Directive,
    conf_dir: &Path,
    what: &str,
) -> Result<Vec<u8>, ConfigError> {
    if a.value.contains('$') {
        return Err(err(
            &a.span,
            format!(
                "variables in \"{}\" are not supported by junction yet (see docs/directives.md)",
                d.name
            ),
        ));
    }
    if let Some(data) = a.value.strip_prefix("data:") {
        return Ok(data.as_bytes().to_vec());
    }
    let path = resolve(conf_dir, &a.value);
    std::fs::read(&path).map_err(|e| {
        err(
            &d.span,
            format!("cannot load {what} \"{}\": {e}", path.display()),
        )
    })
}

/// A path from the configuration: absolute, or relative to the configuration's
/// directory (nginx's conf prefix).
pub(crate) fn resolve(conf_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        conf_dir.join(p)
    }
}

fn pem_certs(
    pem: &[u8],
    d: &Directive,
    a: &junction_config::tree::Arg,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(err(
            &d.span,
            format!("cannot load {what} \"{}\": no certificate in it", a.value),
        )),
        Err(e) => Err(err(
            &d.span,
            format!("cannot load {what} \"{}\": {e}", a.value),
        )),
    }
}

/// An encrypted key (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PKCS#8 PBES2, what
/// OpenSSL 3 writes) decrypted with the passwords of `ssl_password_file`, tried in
/// turn as nginx does.
fn decrypt_key(
    pem: &[u8],
    scope: &Scope<'_>,
    conf_dir: &Path,
) -> Result<PrivateKeyDer<'static>, String> {
    let Some((_, a)) = scope.arg("ssl_password_file") else {
        return Err("the key is encrypted and no \"ssl_password_file\" is given".into());
    };
    let text = std::fs::read_to_string(resolve(conf_dir, &a.value))
        .map_err(|e| format!("cannot read \"ssl_password_file\" \"{}\": {e}", a.value))?;
    let (label, der) = pkcs8::der::pem::decode_vec(pem).map_err(|_| {
        "only PKCS#8-encrypted keys (\"ENCRYPTED PRIVATE KEY\") can be decrypted; convert it with \"openssl pkcs8 -topk8\"".to_string()
    })?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err("only PKCS#8-encrypted keys (\"ENCRYPTED PRIVATE KEY\") can be decrypted; convert it with \"openssl pkcs8 -topk8\"".into());
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("invalid encrypted key ({e})"))?;
    for pw in text.lines() {
        if let Ok(doc) = info.decrypt(pw.as_bytes()) {
            return Ok(PrivateKeyDer::Pkcs8(doc.as_bytes().to_vec().into()));
        }
    }
    Err("bad password read".into())
}

impl ServerTls {
    /// Reads the `ssl_*` directives in effect in a server; warnings go to `warnings`.
    pub fn from_scope(
        scope: &Scope<'_>,
        conf_dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<ServerTls, ConfigError> {
        // Certificates and keys: pairs in order (arrays, inherited as a whole).
        let cert_ds = scope.array("ssl_certificate");
        let key_ds = scope.array("ssl_certificate_key");
        let mut certs = Vec::new();
        let mut cert_names = Vec::new();
        let mut dynamic = Vec::new();
        let mut acme_serve = None;
        for (i, cd) in cert_ds.iter().enumerate() {
            let Some(ca) = cd.args.first() else { continue };
            let Some(kd) = key_ds.get(i) else {
                return Err(err(
                    &cd.span,
                    format!(
                        "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                        ca.value
                    ),
                ));
            };
            let Some(ka) = kd.args.first() else { continue };
            if ca.value == crate::acme::CERT_VAR || ka.value == crate::acme::KEY_VAR {
                if ca.value != crate::acme::CERT_VAR || ka.value != crate::acme::KEY_VAR {
                    return Err(err(
                        &cd.span,
                        "\"$acme_certificate\" and \"$acme_certificate_key\" go together",
                    ));
                }
                acme_serve = Some(cd);
                continue;
            }
            if ca.value.contains('$') || ka.value.contains('$') {
                // nginx 1.15.9+: files named by `$ssl_server_name`, loaded per handshake.
                for (d, a) in [(cd, ca), (kd, ka)] {
                    let rest = a
                        .value
                        .replace("${ssl_server_name}", "")
                        .replace("$ssl_server_name", "");
                    if rest.contains('$') || a.value.starts_with("data:") {
                        return Err(err(
                            &a.span,
                            format!(
                                "variables other than $ssl_server_name in \"{}\" are not supported by junction yet (see docs/directives.md)",
                                d.name
                            ),
                        ));
                    }
                }
                let path = |v: &str| resolve(conf_dir, v).to_string_lossy().into_owned();
                dynamic.push((path(&ca.value), path(&ka.value)));
                continue;
            }
            let chain = pem_certs(
                &read_pem(ca, cd, conf_dir, "certificate")?,
                cd,
                ca,
                "certificate",
            )?;
            let kpem = read_pem(ka, kd, conf_dir, "certificate key")?;
            let key = match rustls_pemfile::private_key(&mut &kpem[..]) {
                Ok(Some(k)) => k,
                _ if kpem.windows(9).any(|w| w == b"ENCRYPTED") => {
                    decrypt_key(&kpem, scope, conf_dir).map_err(|why| {
                        err(
                            &kd.span,
                            format!("cannot load certificate key \"{}\": {why}", ka.value),
                        )
                    })?
                }
                _ => {
                    return Err(err(
                        &kd.span,
                        format!(
                            "cannot load certificate key \"{}\": no private key in it",
                            ka.value
                        ),
                    ))
                }
            };
            let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
                err(
                    &kd.span,
                    format!("cannot load certificate key \"{}\": {e}", ka.value),
                )
            })?;
            let ck = CertifiedKey::new(chain, signer);
            if let Err(e) = ck.keys_match() {
                return Err(err(
                    &kd.span,
                    format!(
                        "SSL_CTX_use_PrivateKey(\"{}\") failed (key values mismatch: {e})",
                        ka.value
                    ),
                ));
            }
            certs.push(Arc::new(ck));
            cert_names.push(resolve(conf_dir, &ca.value).to_string_lossy().into_owned());
        }
        if let (Some(kd), true) = (key_ds.get(cert_ds.len()), !cert_ds.is_empty()) {
            return Err(err(
                &kd.span,
                "no \"ssl_certificate\" is defined for this \"ssl_certificate_key\"",
            ));
        }

        // ssl_protocols (TLSv1.2 TLSv1.3)
        let mut versions = vec![&rustls::version::TLS12, &rustls::version::TLS13];
        if let Some(d) = scope.get("ssl_protocols") {
            versions.clear();
            for a in &d.args {
                match a.value.as_str() {
                    "TLSv1.2" => versions.push(&rustls::version::TLS12),
                    "TLSv1.3" => versions.push(&rustls::version::TLS13),
                    "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => warnings.push(format!(
                        "\"ssl_protocols\": {} is not supported by junction (rustls speaks TLSv1.2 and TLSv1.3 only) in {}",
                        a.value, a.span
                    )),
                    _ => return Err(invalid(d, a)),
                }
            }
            if versions.is_empty() {
                return Err(err(
                    &d.span,
                    "\"ssl_protocols\" enables no protocol junction supports (TLSv1.2, TLSv1.3)",
                ));
            }
        }

        // ssl_ciphers (HIGH:!aNULL:!MD5): TLS 1.2 suites; TLS 1.3 suites always.
        let mut suites: Vec<rustls::SupportedCipherSuite> = suite_names()
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| s.version() == &rustls::version::TLS13)
            .collect();
        match scope.arg("ssl_ciphers") {
            Some((d, a)) => {
                let (tls12, unknown) = parse_ciphers(&a.value);
                if !unknown.is_empty() {
                    warnings.push(format!(
                        "\"ssl_ciphers\": {} not available in junction (rustls has no such suite) in {}",
                        unknown.join(":"),
                        d.span
                    ));
                }
                if tls12.is_empty() && versions == [&rustls::version::TLS12] {
                    return Err(err(
                        &d.span,
                        format!(
                            "SSL_CTX_set_cipher_list(\"{}\") failed (no cipher match)",
                            a.value
                        ),
                    ));
                }
                suites.extend(tls12);
            }
            None => suites.extend(
                suite_names()
                    .iter()
                    .map(|(s, _)| *s)
                    .filter(|s| s.version() == &rustls::version::TLS12),
            ),
        }

        // ssl_ecdh_curve (auto)
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> =
            rustls::crypto::ring::ALL_KX_GROUPS.to_vec();
        if let Some((d, a)) = scope.arg("ssl_ecdh_curve") {
            if a.value != "auto" {
                use rustls::crypto::ring::kx_group;
                groups.clear();
                let mut unknown = Vec::new();
                for c in a.value.split(':').filter(|c| !c.is_empty()) {
                    let g = match c {
                        "X25519" | "x25519" => kx_group::X25519,
                        "prime256v1" | "P-256" | "secp256r1" => kx_group::SECP256R1,
                        "secp384r1" | "P-384" => kx_group::SECP384R1,
                        _ => {
                            unknown.push(c);
                            continue;
                        }
                    };
                    groups.push(g);
                }
                if !unknown.is_empty() {
                    warnings.push(format!(
                        "\"ssl_ecdh_curve\": {} not available in junction in {}",
                        unknown.join(":"),
                        d.span
                    ));
                }
                if groups.is_empty() {
                    return Err(err(
                        &d.span,
                        format!(
                            "SSL_CTX_set1_curves_list(\"{}\") failed (no curve junction supports)",
                            a.value
                        ),
                    ));
                }
            }
        }
        if let Some(d) = scope.get("ssl_dhparam") {
            warnings.push(format!(
                "\"ssl_dhparam\" directive is accepted but has no effect in junction (rustls has no DHE suites) in {}",
                d.span
            ));
        }
        // Known to nginx, not to Junction yet, except beside the ACME pair (held in
        // memory by `crate::acme`: nothing to cache).
        if let Some(d) = scope.get("ssl_certificate_cache") {
            if acme_serve.is_none() || !dynamic.is_empty() {
                return Err(err(
                    &d.span,
                    "\"ssl_certificate_cache\" directive is not supported by junction yet (see docs/directives.md)",
                ));
            }
        }
        if let Some(d) = scope.get("ssl_conf_command") {
            return Err(err(
                &d.span,
                "\"ssl_conf_command\" directive is not supported by junction (it is an OpenSSL interface)",
            ));
        }

        let verify = match scope.arg("ssl_verify_client") {
            None => VerifyClient::Off,
            Some((d, a)) => match a.value.as_str() {
                "off" => VerifyClient::Off,
                "on" => VerifyClient::On,
                "optional" => VerifyClient::Optional,
                "optional_no_ca" => VerifyClient::OptionalNoCa,
                _ => return Err(invalid(d, a)),
            },
        };
        let mut client_roots = Vec::new();
        let mut client_hints = Vec::new();
        for (name, hint) in [
            ("ssl_client_certificate", true),
            ("ssl_trusted_certificate", false),
        ] {
            if let Some((d, a)) = scope.arg(name) {
                let certs = pem_certs(
                    &read_pem(a, d, conf_dir, "certificate")?,
                    d,
                    a,
                    "certificate",
                )?;
                if hint && verify != VerifyClient::Off {
                    let mut store = rustls::RootCertStore::empty();
                    for c in &certs {
                        let _ = store.add(c.clone());
                    }
                    client_hints.extend(store.subjects());
                }
                client_roots.extend(certs);
            }
        }
        if matches!(verify, VerifyClient::On | VerifyClient::Optional) && client_roots.is_empty() {
            let d = scope.get("ssl_verify_client");
            return Err(ConfigError {
                span: d.map(|d| d.span.clone()),
                msg: "no ssl_client_certificate for ssl_verify_client".into(),
            });
        }
        let mut crls = Vec::new();
        if let Some((d, a)) = scope.arg("ssl_crl") {
            let pem = read_pem(a, d, conf_dir, "CRL")?;
            for c in rustls_pemfile::crls(&mut &pem[..]) {
                crls.push(
                    c.map_err(|e| err(&d.span, format!("cannot load CRL \"{}\": {e}", a.value)))?,
                );
            }
        }
        let verify_depth = match scope.arg("ssl_verify_depth") {
            Some((d, a)) => a.value.parse::<usize>().map_err(|_| invalid(d, a))?,
            None => 1,
        };

        let session_cache = match scope.get("ssl_session_cache") {
            None => SessionCache::None,
            Some(d) => {
                let mut c = SessionCache::None;
                for a in &d.args {
                    let v = a.value.as_str();
                    c = if v == "off" || v == "none" {
                        SessionCache::None
                    } else if v == "builtin" {
                        SessionCache::Builtin(20480)
                    } else if let Some(n) = v.strip_prefix("builtin:") {
                        SessionCache::Builtin(n.parse().map_err(|_| invalid(d, a))?)
                    } else if let Some(rest) = v.strip_prefix("shared:") {
                        let (name, size) = rest.split_once(':').ok_or_else(|| invalid(d, a))?;
                        let size = junction_config::values::parse_size(size)
                            .filter(|s| *s >= 8192)
                            .ok_or_else(|| {
                                err(&a.span, format!("session cache \"{v}\" is too small"))
                            })?;
                        // nginx: about 4000 sessions per megabyte.
                        SessionCache::Shared(name.to_string(), (size / 256).max(1) as usize)
                    } else {
                        return Err(invalid(d, a));
                    };
                }
                c
            }
        };
        let mut ticket_keys = Vec::new();
        for d in scope.array("ssl_session_ticket_key") {
            if let Some(a) = d.args.first() {
                let k = std::fs::read(resolve(conf_dir, &a.value)).map_err(|e| {
                    err(
                        &d.span,
                        format!("cannot load ticket key \"{}\": {e}", a.value),
                    )
                })?;
                if k.len() != 48 && k.len() != 80 {
                    return Err(err(
                        &d.span,
                        format!("\"{}\" must be 48 or 80 bytes", a.value),
                    ));
                }
                ticket_keys.push(k);
            }
        }
        let stapling = scope.flag("ssl_stapling", false)?;
        // nginx reads `ssl_stapling_file` only under `ssl_stapling on`.
        let ocsp = match scope.arg("ssl_stapling_file").filter(|_| stapling) {
            Some((d, a)) => Some(std::fs::read(resolve(conf_dir, &a.value)).map_err(|e| {
                err(
                    &d.span,
                    format!("cannot load OCSP response \"{}\": {e}", a.value),
                )
            })?),
            None => None,
        };
        let mut staples = Vec::new();
        if stapling && ocsp.is_none() {
            let responder = scope
                .arg("ssl_stapling_responder")
                .map(|(_, a)| a.value.as_str());
            let verify = scope.flag("ssl_stapling_verify", false)?;
            let span = scope.get("ssl_stapling").map(|d| d.span.to_string());
            for (ck, name) in certs.iter().zip(&cert_names) {
                let mut w = Vec::new();
                staples.push(crate::ocsp::prepare(
                    ck,
                    name,
                    &client_roots,
                    responder,
                    verify,
                    &mut w,
                ));
                warnings.extend(w.into_iter().map(|w| match &span {
                    Some(s) => format!("{w} in {s}"),
                    None => w,
                }));
            }
        }
        let buffer_size = scope.size("ssl_buffer_size", 16384)? as usize;
        if scope.flag("ssl_early_data", false)? {
            if let Some(d) = scope.get("ssl_early_data") {
                warnings.push(format!(
                    "\"ssl_early_data\" is accepted but has no effect in junction yet (no 0-RTT: clients send their request after the handshake) in {}",
                    d.span
                ));
            }
        }
        let acme = crate::acme::server_certificate(scope, conf_dir)?;
        if let (Some(cd), None) = (acme_serve, &acme) {
            return Err(err(
                &cd.span,
                "\"$acme_certificate\" is used in a server without \"acme_certificate\"",
            ));
        }
        Ok(ServerTls {
            acme: acme_serve.and(acme.clone()),
            acme_cert: acme,
            cert_span: cert_ds.first().map(|d| d.span.clone()),
            certs,
            dynamic,
            versions,
            suites,
            groups,
            prefer_server_ciphers: scope.flag("ssl_prefer_server_ciphers", false)?,
            verify,
            verify_depth,
            client_roots,
            client_hints,
            crls,
            session_cache,
            session_timeout: scope.time("ssl_session_timeout", Duration::from_secs(300))?,
            session_tickets: scope.flag("ssl_session_tickets", true)?,
            ticket_keys,
            buffer_size,
            reject_handshake: scope.flag("ssl_reject_handshake", false)?,
            handshake_timeout: scope.time("client_header_timeout", Duration::from_secs(60))?,
            ocsp,
            staples,
        })
    }

    /// The staples fetched from OCSP responders.
    pub(crate) fn staples(&self) -> impl Iterator<Item = Arc<crate::ocsp::Staple>> + '_ {
        self.staples.iter().flatten().cloned()
    }
}

/// Several certificates of one server: the first whose key can sign with a scheme the
/// client offers, taken in the client's order of preference (as OpenSSL picks between
/// an RSA and an ECDSA certificate).
#[derive(Debug)]
struct Certs {
    fixed: Vec<Arc<CertifiedKey>>,
    /// The staple of each of `fixed` (empty without stapling from a responder).
    staples: Vec<Option<Arc<crate::ocsp::Staple>>>,
    /// Pairs named with `$ssl_server_name`: read from disk at each handshake, as
    /// nginx does without `ssl_certificate_cache`.
    dynamic: Vec<(String, String)>,
    /// The `acme_certificate` pair, once issued (`crate::acme`).
    acme: Option<Arc<crate::acme::Managed>>,
}

/// A certificate pair named by the SNI name (`ssl_certificate …/$ssl_server_name.pem`).
fn load_dynamic(cert: &str, key: &str) -> Result<CertifiedKey, String> {
    let cpem =
        std::fs::read(cert).map_err(|e| format!("cannot load certificate \"{cert}\": {e}"))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut &cpem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot load certificate \"{cert}\": {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "cannot load certificate \"{cert}\": no certificate in it"
        ));
    }
    let kpem =
        std::fs::read(key).map_err(|e| format!("cannot load certificate key \"{key}\": {e}"))?;
    let k = rustls_pemfile::private_key(&mut &kpem[..])
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!("cannot load certificate key \"{key}\": no (unencrypted) private key in it")
        })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&k)
        .map_err(|e| format!("cannot load certificate key \"{key}\": {e}"))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| format!("SSL_use_PrivateKey(\"{key}\") failed (key values mismatch: {e})"))?;
    Ok(ck)
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut loaded = Vec::new();
        if !self.dynamic.is_empty() {
            // rustls gives a validated DNS name (no `/`, no empty label).
            let sni = hello.server_name().unwrap_or("");
            if !sni.contains('/') && !sni.contains("..") {
                for (c, k) in &self.dynamic {
                    let name = |t: &str| {
                        t.replace("${ssl_server_name}", sni)
                            .replace("$ssl_server_name", sni)
                    };
                    match load_dynamic(&name(c), &name(k)) {
                        Ok(ck) => loaded.push(Arc::new(ck)),
                        Err(e) => tracing::error!("{e} while SSL handshaking"),
                    }
                }
            }
        }
        if let Some(ck) = self.acme.as_ref().and_then(|m| m.current()) {
            loaded.push(ck);
        }
        let all = || self.fixed.iter().chain(loaded.iter()).enumerate();
        let chosen = hello
            .signature_schemes()
            .iter()
            .find_map(|s| {
                all().find(|(_, c)| c.key.choose_scheme(std::slice::from_ref(s)).is_some())
            })
            .or_else(|| all().next());
        let (i, c) = chosen?;
        // With its OCSP response, when one was fetched and is valid.
        if let Some(Some(st)) = self.staples.get(i) {
            if let Some(stapled) = st.stapled() {
                return Some(stapled);
            }
        }
        Some(c.clone())
    }
}

/// Asks for a client certificate and checks that the client holds its key, but takes
/// any chain: the chain is verified after the handshake ([`verify_client`]), so that
/// a request can be answered with nginx's 495/496 pages.
#[derive(Debug)]
struct AskClient {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AskClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A session stamped with the time it was made; `None` once older than `lifetime`
/// (nginx's `ssl_session_timeout`, which rustls does not apply to TLS 1.2 sessions).
fn stamp(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&now_secs().to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn unstamp(mut stamped: Vec<u8>, lifetime: u32) -> Option<Vec<u8>> {
    let t: [u8; 8] = stamped.get(..8)?.try_into().ok()?;
    if now_secs().saturating_sub(u64::from_be_bytes(t)) > u64::from(lifetime) {
        return None;
    }
    stamped.drain(..8);
    Some(stamped)
}

/// The ticket keys of one configuration, with `ssl_session_timeout` as the lifetime
/// the tickets announce and the age past which they are refused.
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn ProducesTickets>,
    lifetime: u32,
}

impl ProducesTickets for Timed {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn lifetime(&self) -> u32 {
        self.lifetime
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamp(plain))
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.decrypt(cipher)?, self.lifetime)
    }
}

/// A session cache (possibly shared by servers) seen through one server's
/// `ssl_session_timeout`.
#[derive(Debug)]
struct Aged {
    inner: Arc<dyn StoresServerSessions>,
    lifetime: u32,
}

impl StoresServerSessions for Aged {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamp(&value))
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.get(key)?, self.lifetime)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamp(self.inner.take(key)?, self.lifetime)
    }
    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Tickets under keys from `ssl_session_ticket_key` files: AES-256-GCM (ring) under a
/// key derived from each file, the key's name (16 bytes) first, so that several
/// Junction instances sharing the files resume each other's sessions; the first file
/// encrypts, all decrypt (nginx's rotation).
struct FileTickets {
    keys: Vec<([u8; 16], ring::aead::LessSafeKey)>,
    lifetime: u32,
}

impl std::fmt::Debug for FileTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTickets")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl FileTickets {
    fn new(files: &[Vec<u8>], lifetime: u32) -> Option<FileTickets> {
        let mut keys = Vec::new();
        for f in files {
            let mut name = [0u8; 16];
            name.copy_from_slice(f.get(..16)?);
            let secret = ring::digest::digest(&ring::digest::SHA256, f.get(16..)?);
            let key =
                ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, secret.as_ref()).ok()?;
            keys.push((name, ring::aead::LessSafeKey::new(key)));
        }
        Some(FileTickets { keys, lifetime })
    }
}

impl ProducesTickets for FileTickets {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        self.lifetime
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        use ring::rand::SecureRandom;
        let (name, key) = self.keys.first()?;
        let mut nonce = [0u8; 12];
        ring::rand::SystemRandom::new().fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(16 + 12 + plain.len() + 16);
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(name),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let name = cipher.get(..16)?;
        let nonce: [u8; 12] = cipher.get(16..28)?.try_into().ok()?;
        let (kname, key) = self.keys.iter().find(|(n, _)| n == name)?;
        let mut body = cipher.get(28..)?.to_vec();
        let plain = key
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(kname),
                &mut body,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A `listen … ssl` address: a configuration per server on it (by position in
/// `Listen::servers`; `None`: the server has no certificate or rejects handshakes).
pub struct TlsListen {
    /// The servers on the address (`Listen::servers`) and its default (position).
    servers: Vec<usize>,
    default: usize,
    configs: Vec<Option<Arc<ServerConfig>>>,
    /// Client verification per server (post-handshake), same positions.
    verifiers: Vec<Option<Arc<ClientVerify>>>,
    /// The default server's `client_header_timeout` (the handshake's limit).
    handshake_timeout: Duration,
    /// `http2` on this listen (ALPN `h2` offered; see [`dispatch`]).
    pub http2: bool,
}

impl std::fmt::Debug for TlsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListen")
            .field("servers", &self.configs.len())
            .finish_non_exhaustive()
    }
}

/// A server's post-handshake client verification.
struct ClientVerify {
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// `ssl_verify_depth`.
    depth: usize,
    /// The trusted CAs' subjects (DER), where a chain ends.
    roots: Vec<Vec<u8>>,
}

impl ClientVerify {
    /// How deep in a verified chain the trusted CA sits (the client's certificate is
    /// 0), following issuer names through what the client sent.
    fn anchor_depth(&self, ee: &CertificateDer<'_>, rest: &[CertificateDer<'_>]) -> Option<usize> {
        let parsed: Vec<_> = rest
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c).ok().map(|(_, x)| x))
            .collect();
        let (_, leaf) = x509_parser::parse_x509_certificate(ee).ok()?;
        let mut issuer = leaf.issuer().as_raw();
        for depth in 1..=parsed.len() + 1 {
            if self.roots.iter().any(|r| r.as_slice() == issuer) {
                return Some(depth);
            }
            let next = parsed.iter().find(|c| c.subject().as_raw() == issuer)?;
            issuer = next.issuer().as_raw();
        }
        None
    }
}

/// What [`attach`] shares between the configurations of one build.
#[derive(Default)]
struct Shared {
    caches: HashMap<String, Arc<ServerSessionMemoryCache>>,
    tickets: Option<Arc<dyn ProducesTickets>>,
}

fn provider(t: &ServerTls) -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.clone_from(&t.suites);
    p.kx_groups.clone_from(&t.groups);
    Arc::new(p)
}

fn server_config(
    t: &ServerTls,
    versions: &[&'static rustls::SupportedProtocolVersion],
    http2: bool,
    shared: &mut Shared,
) -> Result<ServerConfig, String> {
    let provider = provider(t);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = if t.verify == VerifyClient::Off {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_verifier(Arc::new(AskClient {
            hints: t.client_hints.clone(),
            provider,
        }))
    };
    let mut certs = t.certs.clone();
    if let Some(o) = &t.ocsp {
        certs = certs
            .into_iter()
            .map(|c| {
                let mut c = (*c).clone();
                c.ocsp = Some(o.clone());
                Arc::new(c)
            })
            .collect();
    }
    let mut cfg = builder.with_cert_resolver(Arc::new(Certs {
        fixed: certs,
        staples: t.staples.clone(),
        dynamic: t.dynamic.clone(),
        acme: t.acme.clone(),
    }));
    cfg.ignore_client_order = t.prefer_server_ciphers;
    cfg.alpn_protocols = if http2 {
        vec![crate::http2::ALPN_H2.to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let lifetime = u32::try_from(t.session_timeout.as_secs()).unwrap_or(u32::MAX);
    let cache: Option<Arc<dyn StoresServerSessions>> = match &t.session_cache {
        SessionCache::None => None,
        SessionCache::Builtin(n) => Some(ServerSessionMemoryCache::new(*n)),
        SessionCache::Shared(name, n) => Some(
            shared
                .caches
                .entry(name.clone())
                .or_insert_with(|| ServerSessionMemoryCache::new(*n))
                .clone(),
        ),
    };
    cfg.session_storage = match cache {
        None => Arc::new(NoServerSessionStorage {}),
        Some(inner) => Arc::new(Aged { inner, lifetime }),
    };
    if t.session_tickets {
        let inner: Arc<dyn ProducesTickets> = if t.ticket_keys.is_empty() {
            match &shared.tickets {
                Some(k) => k.clone(),
                None => {
                    let k = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
                    shared.tickets = Some(k.clone());
                    k
                }
            }
        } else {
            Arc::new(
                FileTickets::new(&t.ticket_keys, lifetime)
                    .ok_or_else(|| "invalid ssl_session_ticket_key".to_string())?,
            )
        };
        cfg.ticketer = Arc::new(Timed { inner, lifetime });
    } else {
        cfg.send_tls13_tickets = usize::from(!matches!(t.session_cache, SessionCache::None));
    }
    // `ssl_early_data on` is a warning (see `from_scope`): rustls hands 0-RTT data out
    // beside the stream (`ServerConnection::early_data`), which the connection does not
    // read yet, so none is offered (`max_early_data_size` stays 0).
    if (512..16384).contains(&t.buffer_size) {
        // rustls counts the record header in the fragment size.
        cfg.max_fragment_size = Some(t.buffer_size + 5);
    }
    Ok(cfg)
}

fn client_verify(t: &ServerTls) -> ClientVerify {
    let mut roots = rustls::RootCertStore::empty();
    for c in &t.client_roots {
        let _ = roots.add(c.clone());
    }
    let verifier = if roots.is_empty() {
        None
    } else {
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider(t))
            .with_crls(t.crls.clone())
            .allow_unknown_revocation_status()
            .build()
            .ok()
    };
    let roots = t
        .client_roots
        .iter()
        .filter_map(|c| {
            x509_parser::parse_x509_certificate(c)
                .ok()
                .map(|(_, x)| x.subject().as_raw().to_vec())
        })
        .collect();
    ClientVerify {
        verifier,
        depth: t.verify_depth,
        roots,
    }
}

/// Builds the TLS side of every `listen … ssl` (given by the spans of those
/// directives): a configuration per server on it; the default server must have a
/// certificate (nginx: `no "ssl_certificate" is defined for the "listen ... ssl"
/// directive`).
pub(crate) fn attach(
    listens: &mut [Listen],
    servers: &[Arc<VServer>],
    ssl: &[(SocketAddr, Option<PathBuf>, bool, Directive)],
    errors: &mut Vec<ConfigError>,
) {
    let mut shared = Shared::default();
    for l in listens.iter_mut() {
        let Some((_, _, http2, d)) = ssl.iter().find(|(a, u, _, _)| *a == l.addr && *u == l.unix)
        else {
            continue;
        };
        if l.unix.is_some() {
            errors.push(err(
                &d.span,
                "\"ssl\" on a unix listen is not supported by junction yet",
            ));
            continue;
        }
        let tls_of = |i: usize| {
            l.servers
                .get(i)
                .and_then(|s| servers.get(*s))
                .map(|s| &s.tls)
        };
        let Some(default) = tls_of(l.default) else {
            continue;
        };
        if default.certs.is_empty()
            && default.dynamic.is_empty()
            && default.acme.is_none()
            && !default.reject_handshake
        {
            errors.push(err(
                &d.span,
                "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
            ));
            continue;
        }
        let versions = default.versions.clone();
        let mut configs = Vec::new();
        let mut verifiers = Vec::new();
        for i in 0..l.servers.len() {
            let Some(t) = tls_of(i) else {
                configs.push(None);
                verifiers.push(None);
                continue;
            };
            if (t.certs.is_empty() && t.dynamic.is_empty() && t.acme.is_none())
                || t.reject_handshake
            {
                configs.push(None);
                verifiers.push(None);
                continue;
            }
            // ALPN `h2`: `listen … http2`, or `http2 on` in the server SNI chose (nginx
            // 1.25.1+).
            let h2 = l
                .servers
                .get(i)
                .and_then(|s| servers.get(*s))
                .is_some_and(|s| crate::http2::alpn_h2(l, &s.conn));
            match server_config(t, &versions, h2, &mut shared) {
                Ok(c) => configs.push(Some(Arc::new(c))),
                Err(e) => {
                    errors.push(ConfigError {
                        span: t.cert_span.clone(),
                        msg: format!("cannot set up TLS: {e}"),
                    });
                    configs.push(None);
                }
            }
            verifiers.push((t.verify != VerifyClient::Off).then(|| Arc::new(client_verify(t))));
        }
        l.tls = Some(Arc::new(TlsListen {
            servers: l.servers.clone(),
            default: l.default,
            configs,
            verifiers,
            handshake_timeout: default.handshake_timeout,
            http2: *http2,
        }));
    }
}

/// A TCP connection on a `listen … ssl` address (its PROXY protocol header read).
pub(crate) async fn serve(stream: TcpStream, mut info: ConnInfo, src: Source, tls: Arc<TlsListen>) {
    let id = info.id;
    let client = info.remote.ip();
    let server = info.local;
    let timeout = tls.handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // A TLS connection starts with a handshake record (content type 22).
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1..)) => {}
        Ok(_) => return,
        Err(_) => {
            tracing::info!("*{id} client timed out (110: Connection timed out) while SSL handshaking, client: {client}, server: {server}");
            return;
        }
    }
    if first != [0x16] {
        // Plain HTTP on a TLS port: every request gets the 497 (serve.rs).
        conn::serve(stream, Arc::new(info), src).await;
        return;
    }
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout_at(deadline, acceptor).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!("*{id} SSL_do_handshake() failed (SSL: {e}) while SSL handshaking, client: {client}, server: {server}");
            return;
        }
        Err(_) => {
            tracing::info!("*{id} client timed out (110: Connection timed out) while SSL handshaking, client: {client}, server: {server}");
            return;
        }
    };
    // SNI chooses the server as a Host would (ngx_http_ssl_servername).
    let (sni, pos, matched, offered) = {
        let hello = start.client_hello();
        let offered = crate::tls_offered::offered(&hello);
        let sni = hello
            .server_name()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let rt = src.config.borrow();
        let names = |i: usize| {
            tls.servers
                .get(i)
                .and_then(|s| rt.servers.get(*s))
                .map_or(&[][..], |s| s.names.as_slice())
        };
        let hit = if sni.is_empty() {
            usize::MAX
        } else {
            crate::route::select_server(tls.servers.len(), names, &sni, usize::MAX)
        };
        let matched = hit != usize::MAX;
        (
            sni,
            if matched { hit } else { tls.default },
            matched,
            offered,
        )
    };
    let Some(config) = tls.configs.get(pos).cloned().flatten() else {
        // ssl_reject_handshake, or a server without a certificate.
        tracing::info!("*{id} SSL_do_handshake() failed (SSL: no certificate for the server name \"{sni}\", handshake rejected) while SSL handshaking, client: {client}, server: {server}");
        return;
    };
    let stream = match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!("*{id} SSL_do_handshake() failed (SSL: {e}) while SSL handshaking, client: {client}, server: {server}");
            return;
        }
        Err(_) => {
            tracing::info!("*{id} client timed out (110: Connection timed out) while SSL handshaking, client: {client}, server: {server}");
            return;
        }
    };
    let verifier = tls.verifiers.get(pos).cloned().flatten();
    let mut facts = facts(&stream, sni, matched, verifier.as_deref());
    (facts.ciphers, facts.curves) = offered;
    info.scheme = "https";
    info.tls = Some(Arc::new(facts));
    dispatch(stream, Arc::new(info), src).await;
}

/// The one place a finished handshake goes to the protocol ALPN chose: `h2`
/// (`crate::http2`) or HTTP/1.x.
async fn dispatch(stream: Stream, info: Arc<ConnInfo>, src: Source) {
    let h2 = info.tls.as_ref().is_some_and(|t| &*t.alpn == "h2");
    if h2 {
        Box::pin(crate::http2::serve_h2(stream, info, src)).await;
    } else {
        conn::serve(stream, info, src).await;
    }
}

/// What `$ssl_*` read, taken once from the finished handshake.
fn facts(stream: &Stream, sni: String, matched: bool, verify: Option<&ClientVerify>) -> TlsInfo {
    let (_, c) = stream.get_ref();
    let protocol = match c.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let mut t = TlsInfo {
        protocol,
        cipher: c
            .negotiated_cipher_suite()
            .map_or("", |s| cipher_name(s.suite())),
        curve: c
            .negotiated_key_exchange_group()
            .map_or("", |g| group_name(g.name())),
        ciphers: Box::default(),
        curves: Box::default(),
        server_name: sni.into(),
        sni_matched: matched,
        alpn: c
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default()
            .into(),
        reused: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        verify: "NONE".into(),
        verify_unknown_ca: false,
        client: None,
    };
    if let (Some(v), Some(chain)) = (verify, c.peer_certificates()) {
        if let Some((ee, rest)) = chain.split_first() {
            t.client = cert_facts(ee).map(Box::new);
            let self_signed = t.client.as_ref().is_some_and(|c| c.s_dn == c.i_dn);
            let result = match &v.verifier {
                Some(w) => w.verify_client_cert(ee, rest, UnixTime::now()).map(|_| ()),
                None => Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
            };
            match result {
                // X509_V_ERR_CERT_CHAIN_TOO_LONG: OpenSSL's depth counts the CAs
                // between the client's certificate and the trust anchor (depth 1:
                // one intermediate).
                Ok(()) if v.anchor_depth(ee, rest).is_some_and(|d| d > v.depth + 1) => {
                    t.verify = "FAILED:certificate chain too long".into();
                }
                Ok(()) => t.verify = "SUCCESS".into(),
                Err(e) => {
                    let (reason, unknown_ca) = verify_reason(&e, self_signed, rest.is_empty());
                    t.verify = format!("FAILED:{reason}").into();
                    t.verify_unknown_ca = unknown_ca;
                }
            }
        }
    }
    t
}

/// OpenSSL's wording of a verification failure (`X509_verify_cert_error_string`), and
/// whether it is one `optional_no_ca` tolerates (`ngx_ssl_verify_error_optional`).
fn verify_reason(e: &rustls::Error, self_signed: bool, leaf_only: bool) -> (&'static str, bool) {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => ("certificate has expired", false),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                ("certificate is not yet valid", false)
            }
            C::Revoked => ("certificate revoked", false),
            C::UnknownIssuer if self_signed => ("self-signed certificate", true),
            // X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: the issuer of a lone leaf.
            C::UnknownIssuer if leaf_only => ("unable to verify the first certificate", true),
            C::UnknownIssuer => ("unable to get local issuer certificate", true),
            C::BadSignature => ("certificate signature failure", false),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                ("unsupported certificate purpose", false)
            }
            _ => ("certificate verify failed", false),
        },
        _ => ("certificate verify failed", false),
    }
}

/// A client certificate's names, serial and fingerprint as nginx prints them.
fn cert_facts(der: &CertificateDer<'_>) -> Option<ClientCert> {
    use base64::Engine as _;
    let (_, x) = x509_parser::parse_x509_certificate(der).ok()?;
    let fp = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let mut serial: &[u8] = x.raw_serial();
    while let [0, rest @ ..] = serial {
        if rest.is_empty() {
            break;
        }
        serial = rest;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Some(ClientCert {
        s_dn: rfc2253(x.subject()),
        i_dn: rfc2253(x.issuer()),
        serial: serial.iter().map(|b| format!("{b:02X}")).collect(),
        fingerprint: fp.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        pem,
        v_start: asn1_time(&x.validity().not_before),
        v_end: asn1_time(&x.validity().not_after),
        not_after: x.validity().not_after.timestamp(),
        s_dn_legacy: oneline(x.subject()),
        i_dn_legacy: oneline(x.issuer()),
    })
}

/// `X509_NAME_print_ex(…, XN_FLAG_RFC2253)`: the last RDN first, `,` between RDNs,
/// `+` inside one, RFC 2253 escapes.
fn rfc2253(n: &x509_parser::x509::X509Name<'_>) -> String {
    let reg = x509_parser::objects::oid_registry();
    let mut out = String::new();
    let rdns: Vec<_> = n.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type();
            match x509_parser::objects::oid2abbrev(oid, reg) {
                Ok("Email") => out.push_str("emailAddress"),
                Ok(a) => out.push_str(a),
                Err(_) => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            let v = atv
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| String::from_utf8_lossy(atv.attr_value().data).into_owned());
            let last = v.chars().count().saturating_sub(1);
            for (k, ch) in v.chars().enumerate() {
                let esc = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                    || (k == 0 && (ch == '#' || ch == ' '))
                    || (k == last && ch == ' ');
                if esc {
                    out.push('\\');
                }
                out.push(ch);
            }
        }
    }
    out
}

/// `X509_NAME_oneline`: `/C=US/O=Test/CN=client`, in the certificate's order.
fn oneline(n: &x509_parser::x509::X509Name<'_>) -> String {
    let reg = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for rdn in n.iter_rdn() {
        for (j, atv) in rdn.iter().enumerate() {
            out.push(if j > 0 { '+' } else { '/' });
            let oid = atv.attr_type();
            match x509_parser::objects::oid2abbrev(oid, reg) {
                Ok("Email") => out.push_str("emailAddress"),
                Ok(a) => out.push_str(a),
                Err(_) => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            out.push_str(
                &atv.as_str().map(str::to_string).unwrap_or_else(|_| {
                    String::from_utf8_lossy(atv.attr_value().data).into_owned()
                }),
            );
        }
    }
    out
}

/// `ASN1_TIME_print`: `Dec  1 22:00:00 2026 GMT`.
fn asn1_time(t: &x509_parser::time::ASN1Time) -> String {
    let d = t.to_datetime();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS
        .get(usize::from(u8::from(d.month())).saturating_sub(1))
        .copied()
        .unwrap_or("");
    format!(
        "{m} {:>2} {:02}:{:02}:{:02} {} GMT",
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

/// nginx's checks of a request on a TLS port before its phases
/// (`ngx_http_process_request`, `ngx_http_set_virtual_server`): plain HTTP → 497;
/// a client certificate `ssl_verify_client` refuses → 495, none when required → 496;
/// a Host other than the SNI name on a server that verifies clients → 421.
pub(crate) fn request_check(
    conn: &ConnInfo,
    listen: &Listen,
    srv: &VServer,
    host: &str,
) -> Option<u16> {
    listen.tls.as_ref()?;
    let Some(t) = &conn.tls else {
        tracing::info!(
            "*{} client sent plain HTTP request to HTTPS port, client: {}, server: {}",
            conn.id,
            conn.remote.ip(),
            srv.name0
        );
        return Some(497);
    };
    let verify = srv.tls.verify;
    if t.sni_matched && verify != VerifyClient::Off && *t.server_name != *host {
        tracing::info!(
            "*{} client attempted to request the server name different from the one that was negotiated, client: {}, server: {}",
            conn.id,
            conn.remote.ip(),
            srv.name0
        );
        return Some(421);
    }
    if verify == VerifyClient::Off {
        return None;
    }
    if t.verify.starts_with("FAILED")
        && !(verify == VerifyClient::OptionalNoCa && t.verify_unknown_ca)
    {
        tracing::info!(
            "*{} client SSL certificate verify error: ({}), client: {}, server: {}",
            conn.id,
            t.verify.trim_start_matches("FAILED:"),
            conn.remote.ip(),
            srv.name0
        );
        return Some(495);
    }
    if verify == VerifyClient::On && t.client.is_none() {
        tracing::info!(
            "*{} client sent no required SSL certificate, client: {}, server: {}",
            conn.id,
            conn.remote.ip(),
            srv.name0
        );
        return Some(496);
    }
    None
}

/// nginx's pages for 495/496/497 (`ngx_http_error_495_page` …): status 400.
pub(crate) fn reject_page(code: u16, tokens: bool) -> http::Response<junction_core::body::Body> {
    let text = match code {
        495 => "The SSL certificate error",
        496 => "No required SSL certificate was sent",
        _ => "The plain HTTP request was sent to HTTPS port",
    };
    let body = crate::pages::bad_request_page(text, tokens);
    let mut r = crate::pages::status_response(http::StatusCode::BAD_REQUEST, tokens);
    r.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    *r.body_mut() = junction_core::body::full(body);
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(spec: &str) -> (Vec<&'static str>, Vec<String>) {
        let (suites, unknown) = parse_ciphers(spec);
        (
            suites.iter().map(|s| cipher_name(s.suite())).collect(),
            unknown,
        )
    }

    #[test]
    fn openssl_cipher_strings_map_to_rustls_suites() {
        // nginx's default: every TLS 1.2 suite rustls has.
        let (all, unknown) = names("HIGH:!aNULL:!MD5");
        assert_eq!(all.len(), 6);
        assert!(unknown.is_empty());
        // Named suites keep their order; what rustls lacks is reported.
        let (s, unknown) = names(
            "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305",
        );
        assert_eq!(
            s,
            [
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
        assert_eq!(unknown, ["DHE-RSA-AES256-GCM-SHA384"]);
        // A keyword adds the rest after the named ones; `!NAME` removes one.
        let (s, _) = names("ECDHE-RSA-CHACHA20-POLY1305:HIGH:!ECDHE-RSA-AES256-GCM-SHA384");
        assert_eq!(s.first(), Some(&"ECDHE-RSA-CHACHA20-POLY1305"));
        assert_eq!(s.len(), 5);
        assert!(!s.contains(&"ECDHE-RSA-AES256-GCM-SHA384"));
        // Only what rustls lacks: nothing.
        let (s, unknown) = names("AES128-SHA:DES-CBC3-SHA");
        assert!(s.is_empty());
        assert_eq!(unknown.len(), 2);
    }

    #[test]
    fn verify_errors_in_openssl_words() {
        let e = |c| rustls::Error::InvalidCertificate(c);
        use rustls::CertificateError as C;
        assert_eq!(
            verify_reason(&e(C::Expired), false, true),
            ("certificate has expired", false)
        );
        assert_eq!(
            verify_reason(&e(C::UnknownIssuer), false, true),
            ("unable to verify the first certificate", true)
        );
        assert_eq!(
            verify_reason(&e(C::UnknownIssuer), false, false),
            ("unable to get local issuer certificate", true)
        );
        assert_eq!(
            verify_reason(&e(C::UnknownIssuer), true, true),
            ("self-signed certificate", true)
        );
        assert_eq!(
            verify_reason(&e(C::Revoked), false, true),
            ("certificate revoked", false)
        );
    }
}
