//! TLS to upstreams (`proxy_pass https://…` and the `proxy_ssl_*` directives), on
//! rustls with the `ring` provider.
//!
//! Built at load: one [`TlsClient`] (one rustls `ClientConfig`, its verifier and its
//! session cache) per distinct set of settings ([`TlsSettings`]), shared by every
//! location that has the same settings. Per request only the name to verify and send
//! is settled ([`UpstreamTls::target`]: a literal is ready at load, `proxy_ssl_name`
//! with variables is evaluated); a new connection then shakes hands
//! ([`handshake`], bounded by `*_connect_timeout`, counted in `$upstream_connect_time`
//! as nginx does) and a pooled one is reused only for the same client settings and
//! name ([`TlsTarget::same`]).
//!
//! As nginx (`ngx_http_upstream_ssl_init_connection`):
//! - SNI is sent only with `proxy_ssl_server_name on`, never for an IP literal;
//! - no ALPN is offered (nginx's HTTP/1 proxy sets none);
//! - `proxy_ssl_verify off` (the default) accepts any certificate (the handshake's
//!   signatures are still checked); `on` checks the chain against
//!   `proxy_ssl_trusted_certificate` (and `proxy_ssl_crl`), the depth against
//!   `proxy_ssl_verify_depth`, then the name against `proxy_ssl_name`, and a failure
//!   is logged in nginx's words: `upstream SSL certificate verify error: (20:unable
//!   to get local issuer certificate) while SSL handshaking to upstream`, `upstream
//!   SSL certificate does not match "NAME" while SSL handshaking to upstream`;
//! - every other handshake failure is `SSL_do_handshake() failed (…) while SSL
//!   handshaking to upstream`, an `error` for `proxy_next_upstream`.

use crate::error::{Error, ErrorKind};
use crate::upstream::Stream;
use crate::vars::Template;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// What the `*_ssl_*` directives of one location say, read at load.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// `proxy_ssl_protocols`: TLSv1.2 and/or TLSv1.3 (what rustls speaks).
    pub tls12: bool,
    /// TLSv1.3.
    pub tls13: bool,
    /// `proxy_ssl_ciphers` mapped to rustls' TLS 1.2 suites (`None`: all of them).
    pub tls12_suites: Option<Vec<rustls::SupportedCipherSuite>>,
    /// `proxy_ssl_verify` with its trusted certificates, CRLs and depth.
    pub verify: Option<VerifySettings>,
    /// `proxy_ssl_server_name`.
    pub server_name: bool,
    /// `proxy_ssl_session_reuse`.
    pub session_reuse: bool,
    /// `proxy_ssl_certificate` / `proxy_ssl_certificate_key`.
    pub client_cert: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

/// `proxy_ssl_verify on`.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// `proxy_ssl_trusted_certificate`.
    pub roots: Vec<CertificateDer<'static>>,
    /// `proxy_ssl_crl`.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// `proxy_ssl_verify_depth`: intermediate certificates allowed between the
    /// certificate and a trusted one (OpenSSL's verify depth).
    pub depth: usize,
}

/// One rustls client configuration, built once per distinct settings.
pub struct TlsClient {
    id: u64,
    connector: TlsConnector,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").field("id", &self.id).finish()
    }
}

/// The provider every client uses (ring: a small C/asm build).
fn provider(tls12_suites: Option<&[rustls::SupportedCipherSuite]>) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(keep) = tls12_suites {
        // TLS 1.3's suites as rustls orders them, then the list's, in its order (the
        // order offered).
        p.cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
        p.cipher_suites.extend(keep.iter().copied());
    }
    p
}

impl TlsClient {
    /// Builds the rustls client for `s` (its errors are config errors: bad certificate or
    /// key, no usable protocol).
    pub fn build(s: &TlsSettings) -> Result<Arc<TlsClient>, String> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let provider = Arc::new(provider(s.tls12_suites.as_deref()));
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if s.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if s.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        if versions.is_empty() {
            return Err(
                "no TLS protocol version left that rustls supports (TLSv1.2, TLSv1.3)".into(),
            );
        }
        let algs = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match &s.verify {
            None => Arc::new(AcceptAny { algs }),
            Some(v) => {
                // A system bundle may hold a certificate webpki cannot read: it is
                // skipped (OpenSSL loads what it can too); none usable is an error.
                let mut store = rustls::RootCertStore::empty();
                let (added, _skipped) = store.add_parsable_certificates(v.roots.iter().cloned());
                if added == 0 {
                    return Err("no usable certificate in the trusted certificates".into());
                }
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .with_crls(v.crls.iter().cloned())
                        .enforce_revocation_expiration()
                        .build()
                        .map_err(|e| format!("cannot use the trusted certificates ({e})"))?;
                Arc::new(Verify {
                    inner,
                    depth: v.depth,
                })
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("no usable TLS configuration ({e})"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &s.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("cannot use the client certificate ({e})"))?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = s.server_name;
        config.resumption = if s.session_reuse {
            Resumption::in_memory_sessions(256)
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(TlsClient {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            connector: TlsConnector::from(Arc::new(config)),
        }))
    }
}

/// The name a connection verifies (and sends as SNI when `proxy_ssl_server_name on`).
#[derive(Debug, PartialEq, Eq)]
pub struct TlsName {
    server: ServerName<'static>,
    /// As written (port stripped), for the log.
    shown: String,
}

impl TlsName {
    /// `name` with a port stripped (`$proxy_host`, `$http_host` carry one), as nginx's
    /// `ngx_http_upstream_ssl_name`. A name rustls cannot hold (not a DNS name nor an IP
    /// address) still connects: it is never valid for a certificate, and no SNI is sent.
    pub fn new(name: &str) -> TlsName {
        let end = if name.starts_with('[') {
            name.find(']').map_or(name.len(), |i| i + 1)
        } else {
            name.find(':').unwrap_or(name.len())
        };
        let host = name.get(..end).unwrap_or(name);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server = ServerName::try_from(bare.to_string())
            .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()));
        TlsName {
            server,
            shown: host.to_string(),
        }
    }
}

/// `proxy_ssl_name`: absent (the `proxy_pass` host), a literal, or variables.
#[derive(Debug, Clone)]
pub enum SslName {
    /// Known at load (the `proxy_pass` host, or a literal `proxy_ssl_name`).
    Fixed(Arc<TlsName>),
    /// The request's `$proxy_host` (a `proxy_pass` with variables).
    ProxyHost,
    /// `proxy_ssl_name` with variables, evaluated per request.
    Template(Template),
}

/// TLS to one location's upstream: the client and how its name is found.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// The client (shared by every location with the same settings).
    pub client: Arc<TlsClient>,
    /// The name to verify and send.
    pub name: SslName,
}

impl UpstreamTls {
    /// The target of an active health probe (no request: a name with variables falls
    /// back to the `proxy_pass` host).
    pub fn probe_target(&self, host: &str) -> TlsTarget {
        let name = match &self.name {
            SslName::Fixed(n) => n.clone(),
            SslName::ProxyHost | SslName::Template(_) => Arc::new(TlsName::new(host)),
        };
        TlsTarget {
            client: self.client.clone(),
            name,
        }
    }

    /// The target of this request's connections.
    pub fn target(&self, cx: &crate::ctx::RequestCtx) -> TlsTarget {
        let name = match &self.name {
            SslName::Fixed(n) => n.clone(),
            SslName::ProxyHost => Arc::new(TlsName::new(&String::from_utf8_lossy(&cx.proxy_host))),
            SslName::Template(t) => Arc::new(TlsName::new(&t.eval_string(cx))),
        };
        TlsTarget {
            client: self.client.clone(),
            name,
        }
    }
}

/// What one request's upstream connections are: a client and a name. A pooled TLS
/// connection is reused only for the same target.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    client: Arc<TlsClient>,
    name: Arc<TlsName>,
}

impl TlsTarget {
    /// Whether a connection made for `self` may carry a request for `other`.
    pub fn same(&self, other: &TlsTarget) -> bool {
        self.client.id == other.client.id
            && (Arc::ptr_eq(&self.name, &other.name) || self.name == other.name)
    }
}

/// Shakes hands on a connected socket within `timeout` (`*_connect_timeout`).
pub async fn handshake(
    stream: Stream,
    target: &TlsTarget,
    timeout: Duration,
) -> Result<Stream, Error> {
    let connect = target
        .client
        .connector
        .connect(target.name.server.clone(), stream);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(Error::new(
            ErrorKind::Connect,
            handshake_error(&e, &target.name),
        )),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            "upstream timed out (110: Connection timed out) while SSL handshaking to upstream",
        )),
    }
}

/// A failed handshake in nginx's words.
fn handshake_error(e: &std::io::Error, name: &TlsName) -> String {
    const WHILE: &str = "while SSL handshaking to upstream";
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        if let rustls::Error::InvalidCertificate(c) = tls {
            return match c {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!(
                        "upstream SSL certificate does not match \"{}\" {WHILE}",
                        name.shown
                    )
                }
                CertificateError::Other(o) => match o.0.downcast_ref::<VerifyError>() {
                    Some(v) => format!("upstream SSL certificate verify error: ({v}) {WHILE}"),
                    None => format!("upstream SSL certificate verify error: ({o:?}) {WHILE}"),
                },
                other => format!(
                    "upstream SSL certificate verify error: ({}) {WHILE}",
                    openssl_verify_text(other)
                ),
            };
        }
        return format!("SSL_do_handshake() failed (SSL: {tls}) {WHILE}");
    }
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return format!("peer closed connection in SSL handshake {WHILE}");
    }
    format!(
        "SSL_do_handshake() failed ({}) {WHILE}",
        crate::error::os_error_text(e)
    )
}

/// OpenSSL's `X509_V_ERR_*` code and text for a rustls certificate error.
fn openssl_verify_text(c: &CertificateError) -> &'static str {
    match c {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "10:certificate has expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "9:certificate is not yet valid"
        }
        CertificateError::Revoked => "23:certificate revoked",
        CertificateError::UnknownIssuer => "20:unable to get local issuer certificate",
        CertificateError::UnknownRevocationStatus => "3:unable to get certificate CRL",
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => "12:CRL has expired",
        CertificateError::BadSignature => "7:certificate signature failure",
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "26:unsupported certificate purpose"
        }
        _ => "1:unspecified certificate verification error",
    }
}

/// A verification failure with OpenSSL's code and text, built where the certificate is
/// at hand (a self-signed certificate is told apart from an unknown issuer).
#[derive(Debug)]
struct VerifyError(&'static str);

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for VerifyError {}

fn verify_error(text: &'static str) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        VerifyError(text),
    ))))
}

/// `proxy_ssl_verify off`: any certificate is accepted; the handshake's signatures
/// are still checked against it.
#[derive(Debug)]
struct AcceptAny {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `proxy_ssl_verify on`: webpki's chain, CRL and name checks, plus the depth limit
/// and OpenSSL's wording for a self-signed certificate.
#[derive(Debug)]
struct Verify {
    inner: Arc<WebPkiServerVerifier>,
    depth: usize,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match r {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                Err(verify_error(if self_signed(end_entity) {
                    "18:self-signed certificate"
                } else if intermediates.iter().any(|c| self_signed(c)) {
                    "19:self-signed certificate in certificate chain"
                } else if intermediates.is_empty() {
                    // OpenSSL's chain of one (`X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
                    "21:unable to verify the first certificate"
                } else {
                    "20:unable to get local issuer certificate"
                }))
            }
            Ok(v) if intermediates.len() > self.depth => {
                // The chain must also hold with at most `depth` intermediates (servers
                // send theirs in order, the leaf's issuer first).
                let short = intermediates.get(..self.depth).unwrap_or(intermediates);
                match self
                    .inner
                    .verify_server_cert(end_entity, short, server_name, ocsp, now)
                {
                    Ok(_) => Ok(v),
                    // OpenSSL stops looking for issuers past the depth: what it then
                    // reports (nginx 1.22 on OpenSSL 3) is the missing issuer.
                    Err(_) => Err(verify_error("20:unable to get local issuer certificate")),
                }
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a DER certificate's issuer equals its subject (a crude but sufficient
/// reading: the two names are the first two SEQUENCEs after the serial/algorithm).
fn self_signed(der: &[u8]) -> bool {
    match tbs_names(der) {
        Some((issuer, subject)) => issuer == subject,
        None => false,
    }
}

/// (issuer, subject) of a DER certificate, as raw bytes.
fn tbs_names(der: &[u8]) -> Option<(&[u8], &[u8])> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serial INTEGER,
    // signature AlgorithmIdentifier, issuer Name, validity, subject Name, … } … }
    let (_, cert, _) = der_item(der)?;
    let (_, mut tbs, _) = der_item(cert)?;
    let (tag, _, rest) = der_item(tbs)?;
    if tag == 0xa0 {
        tbs = rest; // version
    }
    let (_, _, rest) = der_item(tbs)?; // serial
    let (_, _, rest) = der_item(rest)?; // signature algorithm
    let issuer_start = rest;
    let (_, _, after_issuer) = der_item(rest)?;
    let issuer = issuer_start.get(..issuer_start.len() - after_issuer.len())?;
    let (_, _, rest) = der_item(after_issuer)?; // validity
    let subject_start = rest;
    let (_, _, after_subject) = der_item(rest)?;
    let subject = subject_start.get(..subject_start.len() - after_subject.len())?;
    Some((issuer, subject))
}

/// One DER item: (tag, content, the bytes after it).
fn der_item(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let content = b.get(hdr..hdr.checked_add(len)?)?;
    let rest = b.get(hdr + len..)?;
    Some((tag, content, rest))
}

/// OpenSSL's names of the TLS 1.2 suites rustls has.
const SUITE_NAMES: &[(&str, rustls::CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// An OpenSSL cipher string (`proxy_ssl_ciphers`) read for rustls: the TLS 1.2 suites
/// it names, in its order (`None`: keywords only, such as nginx's `DEFAULT` or
/// `HIGH:!aNULL:!MD5`, which keep every suite rustls has; rustls has nothing weak to
/// exclude), and the names rustls does not have (a warning, as they are skipped).
/// TLS 1.3 suites are not chosen by a cipher string (in OpenSSL either).
pub fn map_ciphers(spec: &str) -> (Option<Vec<rustls::SupportedCipherSuite>>, Vec<String>) {
    let all = rustls::crypto::ring::default_provider().cipher_suites;
    let find = |name: &str| {
        SUITE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, id)| all.iter().find(|s| s.suite() == *id).copied())
    };
    let mut chosen: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut excluded: Vec<rustls::SupportedCipherSuite> = Vec::new();
    let mut named = false;
    let mut unknown = Vec::new();
    for tok in spec.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
        let (negative, name) = match tok.strip_prefix(['!', '-']) {
            Some(rest) => (true, rest),
            None => (false, tok.trim_start_matches('+')),
        };
        // A single suite has dashes (or is a TLS 1.3 name); keywords have none.
        let suite_name = name.contains('-') || name.starts_with("TLS_");
        if !suite_name {
            continue;
        }
        if name.starts_with("TLS_") {
            continue; // TLS 1.3 suites: not set by a cipher string
        }
        match find(name) {
            Some(s) if negative => excluded.push(s),
            Some(s) => {
                named = true;
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(s);
                }
            }
            None => {
                if !negative {
                    named = true;
                    unknown.push(name.to_string());
                }
            }
        }
    }
    if !named && excluded.is_empty() {
        return (None, unknown);
    }
    let mut list = if named {
        chosen
    } else {
        all.iter()
            .copied()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .collect()
    };
    list.retain(|s| !excluded.iter().any(|e| e.suite() == s.suite()));
    (Some(list), unknown)
}

/// Every certificate of a PEM file (`proxy_ssl_trusted_certificate`,
/// `proxy_ssl_certificate`).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = read(path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot load certificate \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cannot load certificate \"{}\": no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (`proxy_ssl_certificate_key`). An encrypted PKCS#8
/// key (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 as `openssl pkey -aes256` writes it) is
/// decrypted with the first of `passwords` (`proxy_ssl_password_file`) that fits, as
/// nginx tries each line of the file; the old OpenSSL form (`Proc-Type: 4,ENCRYPTED`)
/// is refused with the command that converts it.
pub fn load_key(path: &Path, passwords: &[String]) -> Result<PrivateKeyDer<'static>, String> {
    let data = read(path)?;
    let fail = |why: &str| format!("cannot load certificate key \"{}\": {why}", path.display());
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if has(b"Proc-Type: 4,ENCRYPTED") {
        return Err(fail(
            "a legacy encrypted PEM key is not supported (convert it: `openssl pkcs8 -topk8 -v2 aes-256-cbc`)",
        ));
    }
    if has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        if passwords.is_empty() {
            return Err(fail(
                "the key is encrypted and no \"proxy_ssl_password_file\" is set",
            ));
        }
        let start = data
            .windows(b"-----BEGIN ENCRYPTED".len())
            .position(|w| w == b"-----BEGIN ENCRYPTED")
            .unwrap_or(0);
        let (_, der) = pkcs8::der::pem::decode_vec(data.get(start..).unwrap_or(&[]))
            .map_err(|e| fail(&format!("bad PEM ({e})")))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| fail(&format!("bad encrypted key ({e})")))?;
        for pw in passwords {
            if let Ok(doc) = info.decrypt(pw.as_bytes()) {
                return Ok(PrivateKeyDer::Pkcs8(doc.as_bytes().to_vec().into()));
            }
        }
        return Err(fail(
            "no password of \"proxy_ssl_password_file\" decrypts it (bad password read)",
        ));
    }
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| fail(&e.to_string()))?
        .ok_or_else(|| fail("no private key in the file"))
}

/// The passwords of a `*_ssl_password_file`: one a line, as nginx reads it.
pub fn load_passwords(path: &Path) -> Result<Vec<String>, String> {
    let data = read(path)?;
    let text = String::from_utf8_lossy(&data);
    let pw: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if pw.is_empty() {
        return Err(format!("no passwords in \"{}\"", path.display()));
    }
    Ok(pw)
}

/// Every CRL of a PEM file (`proxy_ssl_crl`).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let data = read(path)?;
    let crls: Vec<_> = rustls_pemfile::crls(&mut data.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot load CRL \"{}\": {e}", path.display()))?;
    if crls.is_empty() {
        return Err(format!(
            "cannot load CRL \"{}\": no CRL in the file",
            path.display()
        ));
    }
    Ok(crls)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "cannot open \"{}\" ({})",
            path.display(),
            crate::error::os_error_text(&e)
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_port_as_nginx() {
        assert_eq!(TlsName::new("backend.test:8443").shown, "backend.test");
        assert_eq!(TlsName::new("[::1]:8443").shown, "[::1]");
        assert!(matches!(
            TlsName::new("[::1]:8443").server,
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            TlsName::new("127.0.0.1").server,
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            TlsName::new("my_backend").server,
            ServerName::DnsName(_)
        ));
    }

    #[test]
    fn cipher_strings_map_to_rustls_suites() {
        assert!(map_ciphers("DEFAULT").0.is_none());
        assert!(map_ciphers("HIGH:!aNULL:!MD5").0.is_none());
        let (l, unknown) = map_ciphers(
            "ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256",
        );
        let l = l.unwrap();
        assert_eq!(
            l.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            vec![
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert_eq!(unknown, vec!["DHE-RSA-AES128-SHA".to_string()]);
        let (l, _) = map_ciphers("ALL:!ECDHE-RSA-CHACHA20-POLY1305");
        assert_eq!(l.unwrap().len(), 5);
    }

    fn settings() -> TlsSettings {
        TlsSettings {
            tls12: true,
            tls13: true,
            tls12_suites: None,
            verify: None,
            server_name: false,
            session_reuse: true,
            client_cert: None,
        }
    }

    #[test]
    fn clients_and_targets() {
        let a = TlsClient::build(&settings()).unwrap();
        let b = TlsClient::build(&settings()).unwrap();
        let name = Arc::new(TlsName::new("backend.test:443"));
        let t = |c: &Arc<TlsClient>, n: &Arc<TlsName>| TlsTarget {
            client: c.clone(),
            name: n.clone(),
        };
        // The same client and an equal name: reusable; another client (other settings)
        // or another name: not.
        assert!(t(&a, &name).same(&t(&a, &Arc::new(TlsName::new("backend.test")))));
        assert!(!t(&a, &name).same(&t(&b, &name)));
        assert!(!t(&a, &name).same(&t(&a, &Arc::new(TlsName::new("other.test")))));
        // Nothing rustls can speak, or verification without a usable root: errors.
        let none = TlsSettings {
            tls12: false,
            tls13: false,
            ..settings()
        };
        assert!(TlsClient::build(&none).is_err());
        let no_roots = TlsSettings {
            verify: Some(VerifySettings {
                roots: vec![CertificateDer::from(vec![0x30, 0x00])],
                crls: Vec::new(),
                depth: 1,
            }),
            ..settings()
        };
        assert!(TlsClient::build(&no_roots).is_err());
    }

    #[test]
    fn der_items_are_bounded() {
        assert!(der_item(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(der_item(&[0x30, 0x05, 1]).is_none());
        assert!(!self_signed(b""));
        assert!(!self_signed(&[0x30, 0x02, 0x30, 0x00]));
    }
}
