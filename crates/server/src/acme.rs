//! Certificates that obtain and renew themselves: nginx's `ngx_http_acme_module`
//! (ACMEv2, RFC 8555, HTTP-01) on `instant-acme` and `rcgen`, both on ring.
//!
//! ## Directives (checked at load, errors with `FILE:LINE`)
//! - `acme_issuer NAME { uri …; contact …; state_path …; accept_terms_of_service;
//!   ssl_trusted_certificate …; ssl_verify …; account_key …; challenge http-01; }` at
//!   http level: [`Issuer`].
//! - `acme_certificate ISSUER [identifier…] [key=ecdsa:256|ecdsa:384];` in a server:
//!   the identifiers default to the server's exact `server_name`s (wildcards and regexes
//!   cannot be validated over HTTP-01 and are left out, as nginx's module does).
//! - `ssl_certificate $acme_certificate; ssl_certificate_key $acme_certificate_key;`
//!   serve the issued pair ([`crate::tls`] asks [`Managed::current`] at each handshake).
//! - `acme_shared_zone` is sizing only (the state lives in this process's memory).
//!
//! ## A certificate's life
//! Each `acme_certificate` is one [`Managed`] certificate, kept in a process-wide
//! registry by everything that defines it (issuer settings, identifiers, key type): a
//! reload that keeps the same definition gets the same [`Managed`], with the certificate
//! it has, and orders nothing. [`start`] (called by the binary after each load, never for
//! `-t`) gives every certificate without one a background task, which holds it weakly:
//! when no configuration uses the certificate any more, the task ends.
//!
//! The task first looks in `state_path` for a certificate issued before (a restart
//! orders nothing while it is not due); then, when due: account (restored from
//! `state_path/account.json`, or created and saved), order, HTTP-01 challenges (the
//! key authorizations are answered by every plain listener at
//! `/.well-known/acme-challenge/TOKEN`, [`challenge_response`]), a new key and CSR
//! (rcgen), finalize, download; the chain and key are saved to `state_path` and
//! installed for the next handshake, without a restart. A certificate is due at 2/3 of
//! its lifetime, as nginx's module (Let's Encrypt's advice); a failure is retried after
//! 1, 10, 100 minutes, then daily, as nginx's module.
//!
//! Until a certificate exists, a handshake for that server fails (no certificate:
//! rustls sends a handshake alert), as nginx's, whose `$acme_certificate` is empty then.

use junction_config::model::{err, Scope};
use junction_config::tree::{ConfigError, Directive};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The variables `ssl_certificate`/`ssl_certificate_key` name to serve the issued pair.
pub(crate) const CERT_VAR: &str = "$acme_certificate";
/// See [`CERT_VAR`].
pub(crate) const KEY_VAR: &str = "$acme_certificate_key";

/// An `acme_issuer {}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    name: String,
    /// `uri`: the directory URL.
    uri: String,
    /// `contact` (with `mailto:` added when no scheme is given).
    contacts: Vec<String>,
    /// `state_path` (`off`: none).
    state: Option<PathBuf>,
    /// `accept_terms_of_service`.
    tos: bool,
    /// `ssl_trusted_certificate` (default: the system's CAs).
    trusted: Option<PathBuf>,
    /// `ssl_verify` (on).
    verify: bool,
    /// `account_key FILE` (a P-256 key; default: generated and kept in `state_path`).
    account_key: Option<PathBuf>,
}

/// The key type of a certificate (`key=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyAlg {
    P256,
    P384,
}

/// One `acme_certificate`: its definition and the pair issued for it.
pub struct Managed {
    issuer: Issuer,
    identifiers: Vec<String>,
    alg: KeyAlg,
    /// The state files' name (`state_path/NAME.crt`, `.key`).
    file: String,
    /// What handshakes get; `None` until the first certificate exists.
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// When the current certificate is due for renewal (Unix seconds; 0: now).
    due: Mutex<u64>,
    /// Whether a task runs for it.
    started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("issuer", &self.issuer.name)
            .field("identifiers", &self.identifiers)
            .finish_non_exhaustive()
    }
}

impl Managed {
    /// The issued pair, if there is one yet.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    fn set(&self, ck: Arc<CertifiedKey>, due: u64) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(ck);
        }
        if let Ok(mut d) = self.due.lock() {
            *d = due;
        }
    }

    fn due(&self) -> u64 {
        self.due.lock().map_or(0, |d| *d)
    }
}

type Registry = Mutex<Vec<Weak<Managed>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

/// Tokens → key authorizations of the HTTP-01 challenges in progress.
fn challenges() -> &'static RwLock<HashMap<String, String>> {
    static C: OnceLock<RwLock<HashMap<String, String>>> = OnceLock::new();
    C.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Whether any challenge is in progress (a plain load, no lock, on every request).
static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer to an HTTP-01 validation request (`GET /.well-known/acme-challenge/TOKEN`,
/// any server, before the rewrite phases: nginx's module answers in the post-read phase
/// so that no server configuration gets in the way), if it is one for a challenge in
/// progress.
pub(crate) fn challenge_response(
    method: &http::Method,
    uri: &str,
) -> Option<http::Response<junction_core::body::Body>> {
    use std::sync::atomic::Ordering;
    if PENDING.load(Ordering::Acquire) == 0 || method != http::Method::GET {
        return None;
    }
    let token = uri.strip_prefix(CHALLENGE_PREFIX)?;
    let ka = challenges().read().ok()?.get(token)?.clone();
    let len = ka.len();
    let mut r = http::Response::new(junction_core::body::full(bytes::Bytes::from(ka)));
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    Some(r)
}

fn add_challenge(token: String, ka: String) {
    if let Ok(mut m) = challenges().write() {
        if m.insert(token, ka).is_none() {
            PENDING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

fn remove_challenge(token: &str) {
    if let Ok(mut m) = challenges().write() {
        if m.remove(token).is_some() {
            PENDING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

fn arg1(d: &Directive) -> Result<&str, ConfigError> {
    d.args.first().map(|a| a.value.as_str()).ok_or_else(|| {
        err(
            &d.span,
            format!("invalid number of arguments in \"{}\" directive", d.name),
        )
    })
}

/// Reads the `acme_issuer NAME {}` block named `name` of the http level in `scope`.
fn issuer(
    scope: &Scope<'_>,
    name: &str,
    base: &Path,
    at: &Directive,
) -> Result<Issuer, ConfigError> {
    let Some(block) = scope
        .array("acme_issuer")
        .into_iter()
        .find(|d| d.args.first().is_some_and(|a| a.value == name))
    else {
        return Err(err(&at.span, format!("issuer \"{name}\" is missing")));
    };
    let mut i = Issuer {
        name: name.to_string(),
        uri: String::new(),
        contacts: Vec::new(),
        state: Some(base.join(format!("acme_{name}"))),
        tos: false,
        trusted: None,
        verify: true,
        account_key: None,
    };
    for d in block.block.iter().flatten() {
        match d.name.as_str() {
            "uri" => i.uri = arg1(d)?.to_string(),
            "contact" => {
                let v = arg1(d)?;
                i.contacts.push(if v.contains(':') {
                    v.to_string()
                } else {
                    format!("mailto:{v}")
                });
            }
            "state_path" => {
                let v = arg1(d)?;
                i.state = (v != "off").then(|| crate::tls::resolve(base, v));
            }
            "accept_terms_of_service" => i.tos = true,
            "ssl_trusted_certificate" => i.trusted = Some(crate::tls::resolve(base, arg1(d)?)),
            "ssl_verify" => {
                i.verify = match arg1(d)? {
                    "on" => true,
                    "off" => false,
                    v => {
                        return Err(err(
                            &d.span,
                            format!("invalid value \"{v}\" in \"ssl_verify\" directive, it must be \"on\" or \"off\""),
                        ))
                    }
                }
            }
            "challenge" => match arg1(d)? {
                "http-01" | "http" => {}
                v => {
                    return Err(err(
                        &d.span,
                        format!("challenge \"{v}\" is not supported by junction yet (only \"http-01\"; see docs/directives.md)"),
                    ))
                }
            },
            "account_key" => {
                let v = arg1(d)?;
                match v {
                    "ecdsa:256" | "ecdsa" => {}
                    "ecdsa:384" | "ecdsa:521" | "rsa" | "rsa:2048" | "rsa:3072" | "rsa:4096" => {
                        return Err(err(
                            &d.span,
                            format!("account_key \"{v}\" is not supported by junction yet (only \"ecdsa:256\" or a file with a P-256 key; see docs/directives.md)"),
                        ))
                    }
                    f => i.account_key = Some(crate::tls::resolve(base, f)),
                }
            }
            "external_account_key" | "preferred_chain" | "profile" => {
                return Err(err(
                    &d.span,
                    format!(
                        "\"{}\" directive is not supported by junction yet (see docs/directives.md)",
                        d.name
                    ),
                ))
            }
            _ => {}
        }
    }
    if i.uri.is_empty() {
        return Err(err(
            &block.span,
            format!("\"uri\" is missing in acme_issuer \"{name}\""),
        ));
    }
    if let Some(f) = &i.account_key {
        account_key_from(f).map_err(|e| err(&block.span, e))?;
    }
    if let Some(f) = &i.trusted {
        trusted_roots(f).map_err(|e| err(&block.span, e))?;
    }
    Ok(i)
}

/// Whether `name` can be validated over HTTP-01 (an exact DNS name or an IP address).
fn usable_identifier(name: &str) -> bool {
    name == "localhost"
        || (name.contains('.')
            && !name.starts_with('~')
            && !name.contains('*')
            && !name.starts_with('.'))
}

/// The `acme_certificate` of a server (`scope`), as a [`Managed`] certificate shared with
/// every configuration that defines the same one; `base` is where relative paths start.
pub(crate) fn server_certificate(
    scope: &Scope<'_>,
    base: &Path,
) -> Result<Option<Arc<Managed>>, ConfigError> {
    let Some(d) = scope.local("acme_certificate") else {
        return Ok(None);
    };
    let name = arg1(d)?;
    let issuer = issuer(scope, name, base, d)?;
    let mut identifiers = Vec::new();
    let mut alg = KeyAlg::P256;
    for a in d.args.iter().skip(1) {
        if let Some(k) = a.value.strip_prefix("key=") {
            alg = match k {
                "ecdsa:256" | "ecdsa" => KeyAlg::P256,
                "ecdsa:384" => KeyAlg::P384,
                _ => {
                    return Err(err(
                        &a.span,
                        format!("key \"{k}\" is not supported by junction yet (\"ecdsa:256\" or \"ecdsa:384\"; see docs/directives.md)"),
                    ))
                }
            };
        } else if usable_identifier(&a.value) {
            identifiers.push(a.value.to_ascii_lowercase());
        } else {
            return Err(err(
                &a.span,
                format!("invalid identifier \"{}\" (wildcards and regular expressions cannot be validated over HTTP-01)", a.value),
            ));
        }
    }
    if identifiers.is_empty() {
        for sn in scope.local_all("server_name") {
            for a in &sn.args {
                if usable_identifier(&a.value) {
                    identifiers.push(a.value.to_ascii_lowercase());
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    identifiers.retain(|x| seen.insert(x.clone()));
    if identifiers.is_empty() {
        return Err(err(
            &d.span,
            "no valid identifiers in \"acme_certificate\" (and none in \"server_name\")",
        ));
    }
    // The state files' name: the identifiers (and the key type when not the default),
    // so that two certificates never share files.
    let file = identifiers.join(",")
        + match alg {
            KeyAlg::P256 => "",
            KeyAlg::P384 => "_ecdsa384",
        };
    let mut reg = registry()
        .lock()
        .map_err(|_| err(&d.span, "acme state unavailable"))?;
    reg.retain(|w| w.strong_count() > 0);
    if let Some(m) = reg
        .iter()
        .filter_map(Weak::upgrade)
        .find(|m| m.issuer == issuer && m.identifiers == identifiers && m.alg == alg)
    {
        return Ok(Some(m));
    }
    let m = Arc::new(Managed {
        issuer,
        identifiers,
        alg,
        file,
        current: RwLock::new(None),
        due: Mutex::new(0),
        started: std::sync::atomic::AtomicBool::new(false),
    });
    // A certificate issued before is served from the first handshake on.
    restore(&m);
    reg.push(Arc::downgrade(&m));
    Ok(Some(m))
}

/// Gives every certificate in use a background task on `handle`, unless it has one.
/// Called by the binary after each load (never for `-t`).
pub fn start(handle: &tokio::runtime::Handle) {
    let Ok(reg) = registry().lock() else { return };
    for m in reg.iter().filter_map(Weak::upgrade) {
        if !m.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
            handle.spawn(run(Arc::downgrade(&m)));
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// nginx's module: 1, 10, 100 minutes, then a day.
fn retry_after(fails: u32) -> Duration {
    Duration::from_secs(match fails {
        0 => 60,
        1 => 600,
        2 => 6000,
        _ => 86400,
    })
}

async fn run(w: Weak<Managed>) {
    let mut fails = 0;
    loop {
        let Some(m) = w.upgrade() else { return };
        let due = m.due();
        let t = now();
        if t < due {
            drop(m);
            // Wake at least every minute to notice a configuration that dropped it.
            tokio::time::sleep(Duration::from_secs((due - t).min(60))).await;
            continue;
        }
        match obtain(&m).await {
            Ok(()) => fails = 0,
            Err(e) => {
                let wait = retry_after(fails);
                tracing::error!(
                    "acme: cannot obtain a certificate for \"{}\" from issuer \"{}\": {e}; next attempt in {}s",
                    m.identifiers.join(","),
                    m.issuer.name,
                    wait.as_secs()
                );
                fails += 1;
                if let Ok(mut d) = m.due.lock() {
                    *d = now() + wait.as_secs();
                }
            }
        }
    }
}

/// The certificate's validity, from the leaf of a chain: (not before, not after).
fn validity(leaf: &[u8]) -> Option<(u64, u64)> {
    let (_, x) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let v = x.validity();
    Some((
        u64::try_from(v.not_before.timestamp()).ok()?,
        u64::try_from(v.not_after.timestamp()).ok()?,
    ))
}

/// 2/3 of the lifetime, as nginx's module.
fn renewal_time(leaf: &[u8]) -> u64 {
    validity(leaf).map_or(0, |(a, b)| a + b.saturating_sub(a) * 2 / 3)
}

/// A pair from PEM text: the chain and the key, checked to belong together.
fn pair(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut &chain_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the chain".into());
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or("no private key")?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| format!("key values mismatch: {e}"))?;
    Ok(ck)
}

fn state_files(m: &Managed) -> Option<(PathBuf, PathBuf)> {
    let dir = m.issuer.state.as_ref()?;
    Some((
        dir.join(format!("{}.crt", m.file)),
        dir.join(format!("{}.key", m.file)),
    ))
}

/// A certificate issued before (in `state_path`) that still covers the identifiers.
fn restore(m: &Managed) {
    let Some((crt, key)) = state_files(m) else {
        return;
    };
    let (Ok(c), Ok(k)) = (std::fs::read(&crt), std::fs::read(&key)) else {
        return;
    };
    let ck = match pair(&c, &k) {
        Ok(ck) => ck,
        Err(e) => {
            tracing::warn!("acme: ignoring \"{}\": {e}", crt.display());
            return;
        }
    };
    let Some(leaf) = ck.cert.first() else { return };
    if !covers(leaf, &m.identifiers) {
        tracing::info!(
            "acme: \"{}\" does not cover {}; ordering a new certificate",
            crt.display(),
            m.identifiers.join(",")
        );
        return;
    }
    if validity(leaf).is_none_or(|(_, end)| end <= now()) {
        tracing::info!(
            "acme: \"{}\" has expired; ordering a new certificate",
            crt.display()
        );
        return;
    }
    let due = renewal_time(leaf);
    tracing::info!(
        "acme: certificate for \"{}\" restored from \"{}\"",
        m.identifiers.join(","),
        crt.display()
    );
    m.set(Arc::new(ck), due);
}

/// Whether the leaf's DNS names (and IP addresses) are exactly `ids`.
fn covers(leaf: &[u8], ids: &[String]) -> bool {
    let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf) else {
        return false;
    };
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return false;
    };
    let mut names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    names.sort();
    let mut want = ids.to_vec();
    want.sort();
    names == want
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn trusted_roots(f: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(f).map_err(|e| {
        format!(
            "cannot load \"ssl_trusted_certificate\" \"{}\": {e}",
            f.display()
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        let c = c.map_err(|e| format!("cannot load \"{}\": {e}", f.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("cannot use a certificate of \"{}\": {e}", f.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate in \"{}\"", f.display()));
    }
    Ok(roots)
}

fn account_key_from(f: &Path) -> Result<rustls::pki_types::PrivatePkcs8KeyDer<'static>, String> {
    let pem = std::fs::read(f)
        .map_err(|e| format!("cannot load \"account_key\" \"{}\": {e}", f.display()))?;
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k))) => {
            instant_acme::Key::from_pkcs8_der(k.clone_key())
                .map_err(|e| format!("\"account_key\" \"{}\": {e} (a P-256 key is needed)", f.display()))?;
            Ok(k)
        }
        _ => Err(format!(
            "\"account_key\" \"{}\": no PKCS#8 private key in it (convert it with \"openssl pkcs8 -topk8 -nocrypt\")",
            f.display()
        )),
    }
}

/// Accepts any server certificate (`ssl_verify off`).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The HTTPS client toward the issuer: its trusted CAs (`ssl_trusted_certificate`, else
/// the system's), or none (`ssl_verify off`).
fn http_client(i: &Issuer) -> Result<Box<dyn instant_acme::HttpClient>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let cfg = if !i.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let roots = match &i.trusted {
            Some(f) => trusted_roots(f)?,
            None => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for c in found.certs {
                    let _ = roots.add(c);
                }
                roots
            }
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, instant_acme::BodyWrapper<bytes::Bytes>>(https);
    Ok(Box::new(client))
}

type AccountSlot = Arc<tokio::sync::Mutex<Option<instant_acme::Account>>>;

/// The issuer's account, shared by its certificates: one is created (or restored) at a
/// time per issuer, so that two certificates do not make two accounts.
fn account_slot(i: &Issuer) -> AccountSlot {
    static A: OnceLock<Mutex<Vec<(Issuer, AccountSlot)>>> = OnceLock::new();
    let Ok(mut all) = A.get_or_init(|| Mutex::new(Vec::new())).lock() else {
        return Arc::default();
    };
    if let Some((_, slot)) = all.iter().find(|(x, _)| x == i) {
        return slot.clone();
    }
    let slot = AccountSlot::default();
    all.push((i.clone(), slot.clone()));
    slot
}

/// The issuer's account: the one in use, else restored from `state_path/account.json`,
/// else created (with `account_key`, or a new key) and saved there.
async fn shared_account(i: &Issuer) -> Result<instant_acme::Account, String> {
    let slot = account_slot(i);
    let mut a = slot.lock().await;
    if let Some(acc) = a.as_ref() {
        return Ok(acc.clone());
    }
    let acc = account(i).await?;
    *a = Some(acc.clone());
    Ok(acc)
}

/// Forgets the issuer's account (the server does not know it any more).
async fn forget_account(i: &Issuer) {
    *account_slot(i).lock().await = None;
    if let Some(p) = i.state.as_ref().map(|d| d.join("account.json")) {
        let _ = std::fs::remove_file(p);
    }
}

async fn account(i: &Issuer) -> Result<instant_acme::Account, String> {
    use instant_acme::{Account, AccountCredentials, NewAccount};
    let saved = i.state.as_ref().map(|d| d.join("account.json"));
    if let Some(p) = &saved {
        if let Ok(text) = std::fs::read(p) {
            match serde_json::from_slice::<AccountCredentials>(&text) {
                Ok(creds) => {
                    return Account::builder_with_http(http_client(i)?)
                        .from_credentials(creds)
                        .await
                        .map_err(|e| {
                            format!("cannot restore the account from \"{}\": {e}", p.display())
                        });
                }
                Err(e) => tracing::warn!("acme: ignoring \"{}\": {e}", p.display()),
            }
        }
    }
    let contacts: Vec<&str> = i.contacts.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: i.tos,
        only_return_existing: false,
    };
    let builder = Account::builder_with_http(http_client(i)?);
    let (account, creds) = match &i.account_key {
        Some(f) => {
            let der = account_key_from(f)?;
            let key =
                instant_acme::Key::from_pkcs8_der(der.clone_key()).map_err(|e| e.to_string())?;
            builder
                .create_from_key((key, der.into()), i.uri.clone())
                .await
        }
        None => builder.create(&new, i.uri.clone(), None).await,
    }
    .map_err(|e| format!("cannot create an account at \"{}\": {e}", i.uri))?;
    if let (Some(p), Ok(json)) = (&saved, serde_json::to_vec(&creds)) {
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if let Err(e) = write_private(p, &json) {
            tracing::error!("acme: cannot save the account to \"{}\": {e}", p.display());
        }
    }
    tracing::info!("acme: account created at \"{}\"", i.uri);
    Ok(account)
}

/// Challenges answered while an order runs; removed when it ends, however it ends.
struct Answered(Vec<String>);

impl Drop for Answered {
    fn drop(&mut self) {
        for t in &self.0 {
            remove_challenge(t);
        }
    }
}

/// What the issuer says about the failed challenges of an order (`; NAME: problem`…),
/// e.g. that the validation request got no answer.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut why = String::new();
    let mut auths = order.authorizations();
    while let Some(Ok(mut a)) = auths.next().await {
        let id = a.identifier().to_string();
        if let Ok(st) = a.refresh().await {
            for p in st.challenges.iter().filter_map(|c| c.error.as_ref()) {
                why.push_str(&format!("; {id}: {p}"));
            }
        }
    }
    why
}

/// One order, start to end: the new pair installed and saved.
async fn obtain(m: &Managed) -> Result<(), String> {
    use instant_acme::{
        AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
    };
    let account = shared_account(&m.issuer).await?;
    let ids: Vec<Identifier> = m
        .identifiers
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(n.clone()),
        })
        .collect();
    let mut order = match account.new_order(&NewOrder::new(&ids)).await {
        Ok(o) => o,
        Err(e) => {
            // An account the server no longer knows (a new ACME server, a lost
            // database): the next attempt creates one.
            if let instant_acme::Error::Api(p) = &e {
                let t = p.r#type.as_deref().unwrap_or("");
                if t.ends_with(":accountDoesNotExist") || t.ends_with(":unauthorized") {
                    forget_account(&m.issuer).await;
                }
            }
            return Err(format!("new order: {e}"));
        }
    };
    let mut answered = Answered(Vec::new());
    {
        let mut auths = order.authorizations();
        while let Some(a) = auths.next().await {
            let mut a = a.map_err(|e| format!("authorization: {e}"))?;
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                s => return Err(format!("authorization is {s:?}")),
            }
            let mut ch = a
                .challenge(ChallengeType::Http01)
                .ok_or("the issuer offers no http-01 challenge")?;
            let token = ch.token.clone();
            add_challenge(token.clone(), ch.key_authorization().as_str().to_string());
            answered.0.push(token);
            ch.set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
    }
    let retry = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = match order.poll_ready(&retry).await {
        Ok(s) => s,
        // The order's own problem (pebble, Let's Encrypt: the failed validation).
        Err(e) => return Err(format!("order: {e}")),
    };
    if status != OrderStatus::Ready {
        return Err(format!(
            "order is {status:?}{}",
            why_invalid(&mut order).await
        ));
    }
    let alg = match m.alg {
        KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    let key = rcgen::KeyPair::generate_for(alg).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(m.identifiers.clone()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    drop(answered);
    let key_pem = key.serialize_pem();
    let ck = pair(chain.as_bytes(), key_pem.as_bytes())?;
    let leaf = ck.cert.first().ok_or("empty chain")?;
    let due = renewal_time(leaf);
    if let Some((crt, kf)) = state_files(m) {
        if let Some(d) = crt.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        for (p, data) in [(&kf, key_pem.as_bytes()), (&crt, chain.as_bytes())] {
            if let Err(e) = write_private(p, data) {
                tracing::error!("acme: cannot save \"{}\": {e}", p.display());
            }
        }
    }
    tracing::info!(
        "acme: certificate for \"{}\" issued by \"{}\", renewal in {}s",
        m.identifiers.join(","),
        m.issuer.name,
        due.saturating_sub(now())
    );
    m.set(Arc::new(ck), due);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_http01_can_validate() {
        assert!(usable_identifier("example.com"));
        assert!(usable_identifier("localhost"));
        assert!(!usable_identifier("*.example.com"));
        assert!(!usable_identifier(".example.com"));
        assert!(!usable_identifier("~^www\\d+\\.example\\.com$"));
        assert!(!usable_identifier("_"));
        assert!(!usable_identifier(""));
    }

    #[test]
    fn retries_as_nginx() {
        assert_eq!(retry_after(0).as_secs(), 60);
        assert_eq!(retry_after(1).as_secs(), 600);
        assert_eq!(retry_after(2).as_secs(), 6000);
        assert_eq!(retry_after(9).as_secs(), 86400);
    }

    #[test]
    fn challenge_answered_only_while_pending() {
        let get = &http::Method::GET;
        assert!(challenge_response(get, "/.well-known/acme-challenge/tok-x").is_none());
        add_challenge("tok-x".into(), "tok-x.thumb".into());
        let r = challenge_response(get, "/.well-known/acme-challenge/tok-x");
        assert!(r.is_some_and(|r| r.status() == http::StatusCode::OK
            && r.headers().get("content-length").is_some_and(|v| v == "11")));
        assert!(
            challenge_response(&http::Method::POST, "/.well-known/acme-challenge/tok-x").is_none()
        );
        assert!(challenge_response(get, "/.well-known/acme-challenge/other").is_none());
        remove_challenge("tok-x");
        assert!(challenge_response(get, "/.well-known/acme-challenge/tok-x").is_none());
    }
}
