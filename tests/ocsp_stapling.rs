//! OCSP stapling fetched from the responder (`ssl_stapling on` without
//! `ssl_stapling_file`), against real `openssl ocsp` responders and a test CA:
//! the responder named in the certificate (Authority Information Access) or by
//! `ssl_stapling_responder`, `ssl_stapling_verify` with `ssl_trusted_certificate`
//! (the issuer's own signature and a delegated OCSP signer), a revoked certificate
//! (nothing stapled, nginx's error line) and a responder signed by a stranger.
//!
//! nginx fetches when a handshake finds no fresh response (the first clients get
//! none), Junction right after the start; the checks retry the handshake until the
//! staple is there, within a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A self-signed CA `NAME.pem`/`NAME.key`.
fn ca(d: &Path, name: &str) {
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/O=Test/CN={name}"),
        ],
    );
}

/// `NAME.pem`/`NAME.key` for `/CN=NAME`, signed by `ca`, with `serial` and the
/// extensions `ext` (lines of an openssl extensions file).
fn issue(d: &Path, name: &str, serial: &str, ext: &str) {
    let (key, csr, pem, extf) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    std::fs::write(d.join(&extf), ext).expect("ext");
    openssl(d, &["genrsa", "-out", &key, "2048"]);
    let subj = format!("/CN={name}");
    openssl(
        d,
        &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-out",
            &pem,
            "-days",
            "30",
            "-extfile",
            &extf,
        ],
    );
}

/// `openssl ocsp` answering for `ca.pem`'s certificates from `index.txt`, its
/// responses signed by `signer`; killed on drop.
struct Responder {
    child: Child,
    port: u16,
}

impl Responder {
    fn start(d: &Path, signer: &str) -> Responder {
        let mut child = Command::new("openssl")
            .args(["ocsp", "-index", "index.txt", "-port", "0", "-CA", "ca.pem"])
            .args(["-rsigner", &format!("{signer}.pem")])
            .args(["-rkey", &format!("{signer}.key")])
            .args(["-ndays", "1"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("openssl is needed (apt-get install -y openssl): {e}"));
        // Ready when it says where it listens (on stdout): "ACCEPT [::]:PORT PID=…".
        let mut err = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut seen = String::new();
        let port = loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("openssl ocsp did not start: {seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.strip_prefix("ACCEPT ") {
                let addr = rest.split_whitespace().next().unwrap_or("");
                let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                break port.unwrap_or_else(|| panic!("no port in {line:?}"));
            }
        };
        // Keep draining its stdout so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while err.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Responder { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl s_client -status` to `name` on `port`: stdout and stderr.
fn s_client_status(port: u16, name: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name, "-status"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl is needed (apt-get install -y openssl): {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.write_all(b"");
    drop(stdin);
    let out = child.wait_with_output().expect("s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Handshakes with `name` until the server staples a response (bounded): the last
/// `s_client` output.
fn until_stapled(port: u16, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s_client_status(port, name);
        if out.contains("OCSP Response Status:") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stapling_from_the_responder() {
    let pki = tempfile::Builder::new()
        .prefix("junction-ocsp-")
        .tempdir()
        .expect("temp dir");
    let d = pki.path();
    ca(d, "ca");
    ca(d, "stranger");
    issue(
        d,
        "signer",
        "0x20",
        "extendedKeyUsage=OCSPSigning\nbasicConstraints=CA:FALSE\n",
    );
    // openssl's index: V(alid)/R(evoked), expiry, revocation time, serial, file, subject.
    let index = "V\t301231235959Z\t\t10\tunknown\t/CN=good\n\
                 R\t301231235959Z\t260101000000Z\t11\tunknown\t/CN=revoked\n\
                 V\t301231235959Z\t\t12\tunknown\t/CN=delegated\n\
                 V\t301231235959Z\t\t13\tunknown\t/CN=strange\n";
    std::fs::write(d.join("index.txt"), index).expect("index");
    std::fs::write(d.join("index.txt.attr"), "unique_subject = no\n").expect("attr");
    // The responders come first: the certificates name one of them in their AIA.
    let by_ca = Responder::start(d, "ca");
    let delegated = Responder::start(d, "signer");
    let by_stranger = Responder::start(d, "stranger");
    let leaf = |name: &str, serial: &str, aia: Option<&str>| {
        let aia = aia
            .map(|u| format!("authorityInfoAccess=OCSP;URI:{u}\n"))
            .unwrap_or_default();
        issue(
            d,
            name,
            serial,
            &format!("subjectAltName=DNS:{name}.test\n{aia}"),
        );
    };
    leaf("good", "0x10", Some(&by_ca.url()));
    leaf("revoked", "0x11", None);
    leaf("delegated", "0x12", None);
    leaf("strange", "0x13", None);
    leaf("noaia", "0x14", None);

    let path = |f: &str| d.join(f).to_str().expect("utf-8").to_string();
    let server = |name: &str, extra: &str| {
        format!(
            "server {{\n    listen 127.0.0.1:{{PORT}} ssl;\n    server_name {name}.test;\n    \
             ssl_certificate {c};\n    ssl_certificate_key {k};\n    ssl_stapling on;\n    \
             {extra}\n    location / {{ return 200 \"ok\\n\"; }}\n}}\n",
            c = path(&format!("{name}.pem")),
            k = path(&format!("{name}.key")),
        )
    };
    let conf = [
        "ssl_protocols TLSv1.2 TLSv1.3;".to_string(),
        format!("ssl_trusted_certificate {};", path("ca.pem")),
        // The responder from the certificate, its response verified (signed by the CA).
        server("good", "ssl_stapling_verify on;"),
        server(
            "revoked",
            &format!("ssl_stapling_responder {};", by_ca.url()),
        ),
        // A responder certificate the CA issued for OCSP signing.
        server(
            "delegated",
            &format!(
                "ssl_stapling_responder {}; ssl_stapling_verify on;",
                delegated.url()
            ),
        ),
        // Signed by a stranger: refused when verifying …
        server(
            "strange",
            &format!(
                "ssl_stapling_responder {}; ssl_stapling_verify on;",
                by_stranger.url()
            ),
        ),
        // … stapled when not (nginx's default: ssl_stapling_verify off).
        server(
            "noaia",
            &format!("ssl_stapling_responder {};", by_stranger.url()),
        )
        .replace("noaia.test", "unverified.test")
        .replace("noaia.pem", "strange.pem")
        .replace("noaia.key", "strange.key"),
    ]
    .join("\n");
    let p = Proxy::start(&conf);

    let good = until_stapled(p.port, "good.test");
    assert!(
        good.contains("OCSP Response Status: successful") && good.contains("Cert Status: good"),
        "good.test: {good}\n{}",
        p.error_log()
    );
    let delegated_out = until_stapled(p.port, "delegated.test");
    assert!(
        delegated_out.contains("OCSP Response Status: successful")
            && delegated_out.contains("Cert Status: good")
            && delegated_out.contains("CN = signer"),
        "delegated.test: {delegated_out}\n{}",
        p.error_log()
    );
    let unverified = until_stapled(p.port, "unverified.test");
    assert!(
        unverified.contains("OCSP Response Status: successful")
            && unverified.contains("Cert Status: good"),
        "unverified.test: {unverified}\n{}",
        p.error_log()
    );

    // Revoked: nothing stapled, the status is logged (once a fetch has been made:
    // nginx's first handshake starts it).
    let wanted = "certificate status \"revoked\" in the OCSP response while requesting certificate status, responder: 127.0.0.1";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.error_log().contains(wanted) && Instant::now() < deadline {
        let _ = s_client_status(p.port, "revoked.test");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = p.error_log();
    assert!(log.contains(wanted), "{log}");
    assert!(
        log.contains(&format!("certificate: \"{}\"", path("revoked.pem"))),
        "{log}"
    );
    let revoked = s_client_status(p.port, "revoked.test");
    assert!(
        revoked.contains("OCSP response: no response sent"),
        "revoked.test: {revoked}"
    );

    // A stranger's signature with ssl_stapling_verify on: refused, nothing stapled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.error_log().contains("OCSP_basic_verify() failed") && Instant::now() < deadline {
        let _ = s_client_status(p.port, "strange.test");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = p.error_log();
    assert!(log.contains("OCSP_basic_verify() failed"), "{log}");
    let strange = s_client_status(p.port, "strange.test");
    assert!(
        strange.contains("OCSP response: no response sent"),
        "strange.test: {strange}"
    );
}

/// Stapling that cannot work is ignored with nginx's warnings: no issuer certificate
/// (neither in the certificate file nor trusted), no responder URL, a responder
/// that is not `http://`.
#[test]
fn stapling_ignored_with_a_warning() {
    let pki = tempfile::Builder::new()
        .prefix("junction-ocsp-")
        .tempdir()
        .expect("temp dir");
    let d = pki.path();
    ca(d, "ca");
    issue(d, "leaf", "0x10", "subjectAltName=DNS:leaf.test\n");
    let path = |f: &str| d.join(f).to_str().expect("utf-8").to_string();
    let rows = [
        ("", "\"ssl_stapling\" ignored, issuer certificate not found for certificate"),
        (
            "ssl_trusted_certificate CA;",
            "\"ssl_stapling\" ignored, no OCSP responder URL in the certificate",
        ),
        (
            "ssl_trusted_certificate CA; ssl_stapling_responder https://127.0.0.1:1/;",
            "\"ssl_stapling\" ignored, invalid URL prefix in OCSP responder \"https://127.0.0.1:1/\"",
        ),
    ];
    let mut failures = Vec::new();
    for (extra, want) in rows {
        let conf = format!(
            "server {{\n    listen 127.0.0.1:8443 ssl;\n    ssl_certificate {c};\n    \
             ssl_certificate_key {k};\n    ssl_stapling on;\n    {extra}\n}}\n",
            c = path("leaf.pem"),
            k = path("leaf.key"),
            extra = extra.replace("CA", &path("ca.pem")),
        );
        let (out, _dir) = check_config(&[("site.conf", &conf)], "site.conf");
        let all = format!("{}{}", out.stdout, out.stderr);
        if out.code != Some(0) || !all.contains(want) || !all.contains(&path("leaf.pem")) {
            failures.push(format!("{extra}: {:?} {all}", out.code));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
