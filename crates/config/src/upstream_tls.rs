//! The `PREFIX_ssl_*` directives of a location (`proxy_ssl_verify`,
//! `proxy_ssl_trusted_certificate`, …) read at load into
//! [`junction_core::upstream_tls::UpstreamTls`]: nginx's defaults and messages
//! (`ngx_http_proxy_merge_loc_conf`, `ngx_http_proxy_set_ssl`), every file read and the
//! rustls client built now. Locations with the same settings share one client (one
//! `ClientConfig` and one session cache), kept in [`BuildCx`].
//!
//! What rustls cannot do is said at load: SSLv2/SSLv3/TLSv1/TLSv1.1 in
//! `proxy_ssl_protocols` and cipher names rustls does not have are warnings (skipped);
//! `proxy_ssl_conf_command` and `proxy_ssl_certificate_cache` are accepted without
//! effect (warning); certificates named with variables are errors.
//! `proxy_ssl_password_file` decrypts PKCS#8 keys (PBES2).

use crate::model::{err, invalid, BuildCx, Scope};
use crate::tree::{ConfigError, Span};
use junction_core::upstream_tls::{
    load_certs, load_crls, load_key, load_passwords, map_ciphers, SslName, TlsClient, TlsName,
    TlsSettings, UpstreamTls, VerifySettings,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file named by a directive: absolute, or relative to nginx's conf prefix (the main
/// configuration file's directory, `ngx_conf_full_name`).
fn path_of(bx: &BuildCx, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    bx.conf_dir.join(p)
}

fn warn(bx: &mut BuildCx, msg: String) {
    if !bx.warnings.contains(&msg) {
        bx.warnings.push(msg);
    }
}

/// Reads `PREFIX_ssl_*` at `scope`. `host` is the `proxy_pass` host (the default
/// `proxy_ssl_name`), `None` when it is known per request only (variables); `at` is
/// where the `*_pass` is written (errors of the settings as a whole point there).
pub fn build(
    scope: &Scope<'_>,
    prefix: &str,
    host: Option<&str>,
    at: &Span,
    bx: &mut BuildCx,
) -> Result<UpstreamTls, ConfigError> {
    let n = |s: &str| format!("{prefix}_ssl_{s}");
    let mut key = String::new();

    // proxy_ssl_protocols (default TLSv1.2 TLSv1.3, nginx 1.23.4+).
    let (mut tls12, mut tls13) = (true, true);
    if let Some(d) = scope.get(&n("protocols")) {
        (tls12, tls13) = (false, false);
        for a in &d.args {
            match a.value.as_str() {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => warn(
                    bx,
                    format!(
                        "\"{}\" in \"{}\" is not supported by rustls and is ignored in {}",
                        a.value, d.name, a.span
                    ),
                ),
                _ => return Err(invalid(d, a)),
            }
        }
        if !tls12 && !tls13 {
            return Err(err(
                &d.span,
                format!(
                    "\"{}\" names no protocol that junction supports (TLSv1.2, TLSv1.3)",
                    d.name
                ),
            ));
        }
    }
    key.push_str(&format!("{tls12}{tls13}|"));

    // proxy_ssl_ciphers (default DEFAULT).
    let tls12_suites = match scope.arg(&n("ciphers")) {
        None => None,
        Some((d, a)) => {
            let (suites, unknown) = map_ciphers(&a.value);
            for u in unknown {
                warn(
                    bx,
                    format!(
                        "cipher \"{u}\" in \"{}\" is not supported by rustls and is ignored in {}",
                        d.name, a.span
                    ),
                );
            }
            if suites.as_ref().is_some_and(Vec::is_empty) && !tls13 {
                return Err(err(
                    &a.span,
                    format!(
                        "no cipher match in \"{}\" (rustls has no such TLS 1.2 suite)",
                        d.name
                    ),
                ));
            }
            key.push_str(&a.value);
            suites
        }
    };
    key.push('|');

    // proxy_ssl_verify, _trusted_certificate, _verify_depth, _crl.
    let verify = scope.flag(&n("verify"), false)?;
    let verify = if verify {
        let Some((_, ta)) = scope
            .arg(&n("trusted_certificate"))
            .filter(|(_, a)| !a.value.is_empty())
        else {
            let span = scope.get(&n("verify")).map_or(at, |d| &d.span);
            return Err(err(
                span,
                format!("no {prefix}_ssl_trusted_certificate for {prefix}_ssl_verify"),
            ));
        };
        let depth = match scope.arg(&n("verify_depth")) {
            None => 1,
            Some((d, a)) => a.value.parse::<usize>().map_err(|_| invalid(d, a))?,
        };
        let roots_path = path_of(bx, &ta.value);
        let roots = load_certs(&roots_path).map_err(|e| err(&ta.span, e))?;
        let crls = match scope.arg(&n("crl")).filter(|(_, a)| !a.value.is_empty()) {
            None => Vec::new(),
            Some((_, a)) => {
                let p = path_of(bx, &a.value);
                key.push_str(&p.display().to_string());
                load_crls(&p).map_err(|e| err(&a.span, e))?
            }
        };
        key.push_str(&format!("|{}|{depth}", roots_path.display()));
        Some(VerifySettings { roots, crls, depth })
    } else {
        None
    };
    key.push('|');

    let server_name = scope.flag(&n("server_name"), false)?;
    let session_reuse = scope.flag(&n("session_reuse"), true)?;
    key.push_str(&format!("{server_name}{session_reuse}|"));

    // proxy_ssl_certificate / _key: the client certificate sent to the upstream.
    // proxy_ssl_password_file: the passwords of an encrypted key.
    let passwords = match scope.arg(&n("password_file")) {
        None => Vec::new(),
        Some((_, a)) => {
            let p = path_of(bx, &a.value);
            key.push_str(&format!("{}|", p.display()));
            load_passwords(&p).map_err(|e| err(&a.span, e))?
        }
    };
    let client_cert = match scope
        .arg(&n("certificate"))
        .filter(|(_, a)| !a.value.is_empty())
    {
        None => None,
        Some((cd, ca)) => {
            let Some((kd, ka)) = scope
                .arg(&n("certificate_key"))
                .filter(|(_, a)| !a.value.is_empty())
            else {
                return Err(err(
                    &cd.span,
                    format!(
                        "no \"{prefix}_ssl_certificate_key\" is defined for certificate \"{}\"",
                        ca.value
                    ),
                ));
            };
            for (d, a) in [(cd, ca), (kd, ka)] {
                if a.value.contains('$') {
                    return Err(err(
                        &a.span,
                        format!("variables in \"{}\" are not supported by junction", d.name),
                    ));
                }
            }
            let cp = path_of(bx, &ca.value);
            let kp = path_of(bx, &ka.value);
            let chain = load_certs(&cp).map_err(|e| err(&ca.span, e))?;
            let k = load_key(&kp, &passwords).map_err(|e| err(&ka.span, e))?;
            key.push_str(&format!("{}|{}", cp.display(), kp.display()));
            Some((chain, Arc::new(k)))
        }
    };

    let client = match bx.tls_clients.get(&key) {
        Some(c) => c.clone(),
        None => {
            let settings = TlsSettings {
                tls12,
                tls13,
                tls12_suites,
                verify,
                server_name,
                session_reuse,
                client_cert,
            };
            let c = TlsClient::build(&settings).map_err(|e| err(at, e))?;
            bx.tls_clients.insert(key, c.clone());
            c
        }
    };

    // proxy_ssl_name (default: the proxy_pass host).
    let name = match scope.arg(&n("name")) {
        Some((_, a)) => {
            let t = bx.template(a)?;
            match t.as_literal() {
                Some(lit) => SslName::Fixed(Arc::new(TlsName::new(&String::from_utf8_lossy(&lit)))),
                None => SslName::Template(t),
            }
        }
        None => match host {
            Some(h) => SslName::Fixed(Arc::new(TlsName::new(h))),
            None => SslName::ProxyHost,
        },
    };
    Ok(UpstreamTls { client, name })
}
