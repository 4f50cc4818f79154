//! OCSP stapling fetched from the responder (`ssl_stapling on` without
//! `ssl_stapling_file`): ngx_event_openssl_stapling.c on rustls.
//!
//! ## At load
//! [`prepare`] runs for each `ssl_certificate` of a server with `ssl_stapling on`. As
//! nginx's `ngx_ssl_stapling_issuer`/`ngx_ssl_stapling_responder`, it finds the
//! issuer (in the certificate file's chain first, then among the trusted
//! certificates: `ssl_trusted_certificate`, `ssl_client_certificate`) and the
//! responder (`ssl_stapling_responder`, else the certificate's Authority Information
//! Access OCSP URL; `http://` only); when either is missing stapling is ignored with
//! nginx's warning. The OCSP request (RFC 6960, SHA-1 CertID, no nonce) is encoded
//! once here.
//!
//! ## While running
//! One task per certificate ([`tasks`], started by the binary on its control thread
//! beside the health checks, aborted at reload) fetches the response at once (nginx
//! waits for the first handshake: Junction staples from the first connections on)
//! and then again on nginx's schedule: after a good response, at
//! `max(min(nextUpdate - 5 min, now + 1 h), now + 5 min)`; after a failure, in
//! 5 minutes. The request is nginx's `GET /BASE64 HTTP/1.0` with a 60 s limit. A
//! response is kept only when it is successful, its status for the certificate is
//! `good` and it is within its validity (5 minutes' leeway); with
//! `ssl_stapling_verify on` its signature must also verify, made by the issuer or
//! by a responder certificate the issuer signed for OCSP signing
//! (`id-kp-OCSPSigning`). A revoked or unknown status is logged as nginx does and
//! nothing is stapled. [`Staple::stapled`] gives the handshake the certificate with
//! the response attached (rustls `CertifiedKey::ocsp`) while it is valid.
//!
//! ## Differences from nginx
//! The responder's host name is resolved at each fetch by the system resolver
//! (nginx resolves it at load, or with `resolver` when set); a signature made with
//! RSA-PSS is not verified (reported as a verification failure).

use der::asn1::{Null, OctetString};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::der;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest,
};

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_PE_AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
const ID_CE_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// nginx's `staple->timeout`: the whole request to the responder.
const TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's response buffer: a longer response is cut there (and so fails to parse).
const MAX_RESPONSE: usize = 16384;
/// The least time to the next fetch, and the wait after a failure.
const RETRY: Duration = Duration::from_secs(300);
/// The longest time to the next fetch after a good response.
const REFRESH: Duration = Duration::from_secs(3600);

/// `http://host[:port]/uri` of the OCSP responder.
#[derive(Debug, Clone)]
struct Responder {
    host: String,
    port: u16,
    uri: String,
}

impl Responder {
    /// nginx's `ngx_ssl_stapling_responder` parse: `http://` only, port 80 by default.
    fn parse(url: &str) -> Result<Responder, &'static str> {
        let rest = url
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .and_then(|_| url.get(7..))
            .ok_or("invalid URL prefix")?;
        let (hostport, uri) = match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or("invalid host")?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("no host");
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or("invalid port")?,
        };
        Ok(Responder {
            host: host.to_string(),
            port,
            uri: uri.to_string(),
        })
    }
}

/// The staple of one certificate: what is asked, of whom, and the last good answer.
pub(crate) struct Staple {
    /// The certificate file (nginx's `staple->name`, in log lines).
    name: String,
    base: Arc<CertifiedKey>,
    /// `GET` request line's target: the responder's URI + the escaped base64 request.
    target: String,
    id: CertId,
    issuer: Certificate,
    responder: Responder,
    verify: bool,
    current: RwLock<Option<Current>>,
}

struct Current {
    key: Arc<CertifiedKey>,
    /// nextUpdate (`None`: none given, good until replaced).
    valid: Option<SystemTime>,
}

impl std::fmt::Debug for Staple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staple")
            .field("name", &self.name)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

fn extension(c: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn sha1(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// The staple of `ck` (loaded from `name`), or `None` with nginx's warning when
/// stapling cannot work for it. `trusted`: `ssl_trusted_certificate` and
/// `ssl_client_certificate`.
pub(crate) fn prepare(
    ck: &Arc<CertifiedKey>,
    name: &str,
    trusted: &[CertificateDer<'static>],
    responder: Option<&str>,
    verify: bool,
    warnings: &mut Vec<String>,
) -> Option<Arc<Staple>> {
    let leaf = ck
        .cert
        .first()
        .and_then(|c| Certificate::from_der(c).ok())?;
    let parse = |c: &CertificateDer<'_>| Certificate::from_der(c).ok();
    // ngx_ssl_stapling_issuer: the chain in the file, then the certificate store.
    let issuer = ck
        .cert
        .iter()
        .skip(1)
        .filter_map(parse)
        .chain(trusted.iter().filter_map(parse))
        .find(|c| c.tbs_certificate.subject == leaf.tbs_certificate.issuer);
    let Some(issuer) = issuer else {
        warnings.push(format!(
            "\"ssl_stapling\" ignored, issuer certificate not found for certificate \"{name}\""
        ));
        return None;
    };
    let url = match responder {
        Some(r) => Some(r.to_string()),
        None => extension(&leaf, ID_PE_AIA)
            .and_then(|v| x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(v).ok())
            .and_then(|aia| {
                aia.0.into_iter().find_map(|a| match a.access_location {
                    x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u)
                        if a.access_method == ID_AD_OCSP =>
                    {
                        Some(u.to_string())
                    }
                    _ => None,
                })
            }),
    };
    let Some(url) = url else {
        warnings.push(format!(
            "\"ssl_stapling\" ignored, no OCSP responder URL in the certificate \"{name}\""
        ));
        return None;
    };
    let responder = match Responder::parse(&url) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!(
                "\"ssl_stapling\" ignored, {e} in OCSP responder \"{url}\" in the certificate \"{name}\""
            ));
            return None;
        }
    };
    let id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(sha1(&issuer.tbs_certificate.subject.to_der().ok()?))
            .ok()?,
        issuer_key_hash: OctetString::new(sha1(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        ))
        .ok()?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .ok()?;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(request);
    let mut target = responder.uri.clone();
    if !target.ends_with('/') {
        target.push('/');
    }
    // NGX_ESCAPE_URI_COMPONENT over base64's alphabet: `+`, `/`, `=`.
    for ch in b64.chars() {
        match ch {
            '+' => target.push_str("%2B"),
            '/' => target.push_str("%2F"),
            '=' => target.push_str("%3D"),
            c => target.push(c),
        }
    }
    Some(Arc::new(Staple {
        name: name.to_string(),
        base: ck.clone(),
        target,
        id,
        issuer,
        responder,
        verify,
        current: RwLock::new(None),
    }))
}

impl Staple {
    /// The certificate with its OCSP response, while one is held and valid.
    pub(crate) fn stapled(&self) -> Option<Arc<CertifiedKey>> {
        let cur = self.current.read().ok()?;
        let c = cur.as_ref()?;
        if c.valid.is_some_and(|v| v < SystemTime::now()) {
            return None;
        }
        Some(c.key.clone())
    }

    /// Fetches and checks a response; the time to the next fetch.
    async fn update(&self) -> Duration {
        let mut peer = String::new();
        let result = tokio::time::timeout(TIMEOUT, self.fetch(&mut peer))
            .await
            .unwrap_or_else(|_| Err("OCSP responder timed out".to_string()))
            .and_then(|body| self.check(&body).map(|valid| (body, valid)));
        match result {
            Ok((body, valid)) => {
                let mut key = (*self.base).clone();
                key.ocsp = Some(body);
                if let Ok(mut cur) = self.current.write() {
                    *cur = Some(Current {
                        key: Arc::new(key),
                        valid,
                    });
                }
                let now = SystemTime::now();
                let until = valid
                    .and_then(|v| v.duration_since(now).ok())
                    .unwrap_or(Duration::MAX);
                until.saturating_sub(RETRY).min(REFRESH).max(RETRY)
            }
            Err(e) => {
                let peer = if peer.is_empty() {
                    String::new()
                } else {
                    format!(", peer: {peer}")
                };
                tracing::error!(
                    "{e} while requesting certificate status, responder: {}{peer}, certificate: \"{}\"",
                    self.responder.host,
                    self.name
                );
                RETRY
            }
        }
    }

    /// nginx's request: `GET /BASE64 HTTP/1.0`, `Host`; the body of a 200
    /// `application/ocsp-response`.
    async fn fetch(&self, peer: &mut String) -> Result<Vec<u8>, String> {
        let r = &self.responder;
        let addrs: Vec<_> = tokio::net::lookup_host((r.host.as_str(), r.port))
            .await
            .map_err(|e| format!("{} could not be resolved ({e})", r.host))?
            .collect();
        let mut last = format!("{} could not be resolved", r.host);
        let mut stream = None;
        for a in addrs {
            *peer = a.to_string();
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    last = format!("connect() failed ({e})");
                    tracing::error!(
                        "{last} while requesting certificate status, responder: {}, peer: {a}, certificate: \"{}\"",
                        r.host,
                        self.name
                    );
                }
            }
        }
        let mut s = stream.ok_or(last)?;
        let req = format!("GET {} HTTP/1.0\r\nHost: {}\r\n\r\n", self.target, r.host);
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send() failed ({e})"))?;
        let mut buf = Vec::with_capacity(4096);
        loop {
            if buf.len() >= MAX_RESPONSE {
                break;
            }
            let mut chunk = [0u8; 4096];
            let n = s
                .read(&mut chunk)
                .await
                .map_err(|e| format!("recv() failed ({e})"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        buf.truncate(MAX_RESPONSE);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return Err("OCSP responder prematurely closed connection".into())
            }
            Err(_) => return Err("OCSP responder sent invalid response".into()),
        };
        if resp.code != Some(200) {
            return Err(format!(
                "OCSP responder sent invalid response status \"{}\"",
                resp.code.unwrap_or(0)
            ));
        }
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-type")
                && !h.value.eq_ignore_ascii_case(b"application/ocsp-response")
            {
                return Err(format!(
                    "OCSP responder sent invalid \"Content-Type\" header: \"{}\"",
                    String::from_utf8_lossy(h.value)
                ));
            }
        }
        Ok(buf.get(head..).unwrap_or_default().to_vec())
    }

    /// nginx's `ngx_ssl_ocsp_verify` and the status check after it: the response's
    /// nextUpdate when it may be stapled.
    fn check(&self, body: &[u8]) -> Result<Option<SystemTime>, String> {
        let resp = OcspResponse::from_der(body)
            .map_err(|e| format!("d2i_OCSP_RESPONSE() failed ({e})"))?;
        if resp.response_status != OcspResponseStatus::Successful {
            let (n, s) = match resp.response_status {
                OcspResponseStatus::Successful => (0, "successful"),
                OcspResponseStatus::MalformedRequest => (1, "malformedrequest"),
                OcspResponseStatus::InternalError => (2, "internalerror"),
                OcspResponseStatus::TryLater => (3, "trylater"),
                OcspResponseStatus::SigRequired => (5, "sigrequired"),
                OcspResponseStatus::Unauthorized => (6, "unauthorized"),
            };
            return Err(format!("OCSP response not successful ({n}: {s})"));
        }
        let bytes = resp
            .response_bytes
            .filter(|b| b.response_type == ID_PKIX_OCSP_BASIC)
            .ok_or("OCSP_response_get1_basic() failed")?;
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
            .map_err(|e| format!("OCSP_response_get1_basic() failed ({e})"))?;
        if self.verify {
            self.verify_signature(&basic)
                .map_err(|e| format!("OCSP_basic_verify() failed ({e})"))?;
        }
        let single = basic
            .tbs_response_data
            .responses
            .iter()
            .find(|r| {
                r.cert_id.hash_algorithm.oid == self.id.hash_algorithm.oid
                    && r.cert_id.issuer_name_hash == self.id.issuer_name_hash
                    && r.cert_id.issuer_key_hash == self.id.issuer_key_hash
                    && r.cert_id.serial_number == self.id.serial_number
            })
            .ok_or("certificate status not found in the OCSP response")?;
        // OCSP_check_validity(thisUpdate, nextUpdate, 300, -1)
        let now = SystemTime::now();
        let leeway = RETRY;
        let this = single.this_update.0.to_system_time();
        let next = single.next_update.map(|t| t.0.to_system_time());
        if this > now + leeway || next.is_some_and(|n| n + leeway < now || n < this) {
            return Err("OCSP_check_validity() failed (status not yet valid or expired)".into());
        }
        match single.cert_status {
            CertStatus::Good(_) => Ok(next),
            CertStatus::Revoked(_) => {
                Err("certificate status \"revoked\" in the OCSP response".into())
            }
            CertStatus::Unknown(_) => {
                Err("certificate status \"unknown\" in the OCSP response".into())
            }
        }
    }

    /// OCSP_basic_verify: the signer is the issuer itself or a certificate in the
    /// response that the issuer signed for OCSP signing.
    fn verify_signature(&self, basic: &BasicOcspResponse) -> Result<(), String> {
        let names = |c: &Certificate| match &basic.tbs_response_data.responder_id {
            ResponderId::ByName(n) => c.tbs_certificate.subject == *n,
            ResponderId::ByKey(k) => {
                k.as_bytes()
                    == sha1(
                        c.tbs_certificate
                            .subject_public_key_info
                            .subject_public_key
                            .raw_bytes(),
                    )
                    .as_slice()
            }
        };
        let tbs = basic
            .tbs_response_data
            .to_der()
            .map_err(|e| e.to_string())?;
        let sig = basic.signature.raw_bytes();
        if names(&self.issuer) {
            return verify(&self.issuer, &basic.signature_algorithm, &tbs, sig);
        }
        let signer = basic
            .certs
            .iter()
            .flatten()
            .find(|c| names(c))
            .ok_or("signer certificate not found")?;
        if signer.tbs_certificate.issuer != self.issuer.tbs_certificate.subject {
            return Err("responder certificate not issued by the certificate's issuer".into());
        }
        let signer_tbs = signer.tbs_certificate.to_der().map_err(|e| e.to_string())?;
        verify(
            &self.issuer,
            &signer.signature_algorithm,
            &signer_tbs,
            signer.signature.raw_bytes(),
        )
        .map_err(|e| format!("responder certificate: {e}"))?;
        let ocsp_signing = extension(signer, ID_CE_EKU)
            .and_then(|v| x509_cert::ext::pkix::ExtendedKeyUsage::from_der(v).ok())
            .is_some_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING));
        if !ocsp_signing {
            return Err("missing ocspsigning usage".into());
        }
        verify(signer, &basic.signature_algorithm, &tbs, sig)
    }
}

/// Checks `sig` over `data` with the public key of `by`.
fn verify(
    by: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    data: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    use ring::signature as s;
    let algs: &[&dyn s::VerificationAlgorithm] = match alg.oid.to_string().as_str() {
        "1.2.840.113549.1.1.11" => &[&s::RSA_PKCS1_2048_8192_SHA256],
        "1.2.840.113549.1.1.12" => &[&s::RSA_PKCS1_2048_8192_SHA384],
        "1.2.840.113549.1.1.13" => &[&s::RSA_PKCS1_2048_8192_SHA512],
        "1.2.840.113549.1.1.5" => &[&s::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY],
        "1.2.840.10045.4.3.2" => &[&s::ECDSA_P256_SHA256_ASN1, &s::ECDSA_P384_SHA256_ASN1],
        "1.2.840.10045.4.3.3" => &[&s::ECDSA_P384_SHA384_ASN1, &s::ECDSA_P256_SHA384_ASN1],
        "1.3.101.112" => &[&s::ED25519],
        other => return Err(format!("unsupported signature algorithm {other}")),
    };
    let key = by
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    if algs
        .iter()
        .any(|a| s::UnparsedPublicKey::new(*a, key).verify(data, sig).is_ok())
    {
        Ok(())
    } else {
        Err("signature failure".into())
    }
}

/// A staple's refresh loop: fetch now, then on nginx's schedule; runs until aborted.
async fn run(staple: Arc<Staple>) {
    loop {
        let wait = staple.update().await;
        tokio::time::sleep(wait).await;
    }
}

/// The refresh loops of every staple of `rt`, for the binary to spawn (and abort at
/// the next reload, with the health checks).
pub fn tasks(rt: &crate::build::Runtime) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
    rt.servers
        .iter()
        .flat_map(|s| s.tls.staples())
        .map(|st| Box::pin(run(st)) as Pin<Box<dyn Future<Output = ()> + Send>>)
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::Responder;

    #[test]
    fn responder_urls() {
        let r = Responder::parse("http://ocsp.example.com/").expect("parse");
        assert_eq!(
            (r.host.as_str(), r.port, r.uri.as_str()),
            ("ocsp.example.com", 80, "/")
        );
        let r = Responder::parse("HTTP://127.0.0.1:8888").expect("parse");
        assert_eq!(
            (r.host.as_str(), r.port, r.uri.as_str()),
            ("127.0.0.1", 8888, "/")
        );
        let r = Responder::parse("http://[::1]:81/ocsp").expect("parse");
        assert_eq!(
            (r.host.as_str(), r.port, r.uri.as_str()),
            ("::1", 81, "/ocsp")
        );
        assert!(Responder::parse("https://ocsp.example.com/").is_err());
        assert!(Responder::parse("http://h:0/").is_err());
        assert!(Responder::parse("http:/").is_err());
    }
}
