//! ngx_http_auth_basic_module: `auth_basic REALM|off` and `auth_basic_user_file FILE`
//! (both may hold variables), checked in the access phase (see [`crate::access`]).
//!
//! Per request, as nginx: no usable `Authorization: Basic` → 401 (log at info "no
//! user/password was provided for basic authentication"); the user file is read
//! (a missing file → 403, another open error → 500); the first line whose login is
//! the user decides (`#` comments and blank lines skipped; the password field ends
//! at CR, LF or `:`); a user not found or a password mismatch → 401 with its log
//! line. nginx opens and reads the file on every request; Junction keeps its bytes
//! and reads it again only when its inode, size or mtime changed.
//!
//! Password formats (`ngx_crypt`): `$apr1$` (Apache's MD5, here over the `md-5`
//! crate), `{PLAIN}`, `{SHA}`, `{SSHA}` (the `sha-1` crate), and everything else as
//! crypt(3) through the `pwhash` crate: `$1$` MD5, `$5$` SHA-256, `$6$` SHA-512,
//! `$2a$`/`$2b$`/`$2y$` bcrypt, traditional DES, and `$y$` yescrypt (Debian's default,
//! RustCrypto's `yescrypt` crate). The crypt(3) schemes are
//! slow on purpose, so they run on the blocking pool, not on the worker's thread.

use crate::access::log;
use base64::Engine as _;
use bytes::Bytes;
use junction_config::model::{err, BuildCx, Scope};
use junction_config::ConfigError;
use junction_core::ctx::RequestCtx;
use junction_core::vars::Template;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// `auth_basic` + `auth_basic_user_file` of one location (each inherited on its own).
#[derive(Debug)]
pub(crate) struct AuthBasic {
    realm: Template,
    user_file: Template,
    conf_dir: PathBuf,
}

/// What auth_basic decided.
#[derive(Debug)]
pub(crate) enum AuthResult {
    /// Not configured here (`off`, no file): nothing to say.
    Declined,
    /// The user's password matched.
    Granted,
    /// 401 with this realm.
    Unauthorized(Bytes),
    /// The user file does not exist.
    Forbidden,
    /// Reading the file failed (500).
    Error,
}

impl AuthBasic {
    /// `None` when either directive is missing or `auth_basic off;` is the literal
    /// value in force (nginx declines then).
    pub(crate) fn build(
        scope: &Scope<'_>,
        bx: &BuildCx,
        conf_dir: &Path,
    ) -> Result<Option<AuthBasic>, ConfigError> {
        let (Some((_, realm)), Some((_, file))) =
            (scope.arg("auth_basic"), scope.arg("auth_basic_user_file"))
        else {
            return Ok(None);
        };
        if realm.value == "off" {
            return Ok(None);
        }
        if file.value.is_empty() {
            return Err(err(&file.span, "invalid value \"\""));
        }
        Ok(Some(AuthBasic {
            realm: bx.template(realm)?,
            user_file: bx.template(file)?,
            conf_dir: conf_dir.to_path_buf(),
        }))
    }

    /// `ngx_http_auth_basic_handler`.
    pub(crate) async fn check(&self, cx: &RequestCtx) -> AuthResult {
        let realm = self.realm.eval(cx);
        if &realm[..] == b"off" {
            return AuthResult::Declined;
        }
        let Some(creds) = junction_core::basic_auth::credentials(&cx.headers) else {
            log(
                cx,
                "no user/password was provided for basic authentication",
                false,
                false,
            );
            return AuthResult::Unauthorized(realm);
        };
        let path = {
            let p = PathBuf::from(self.user_file.eval_string(cx));
            if p.is_relative() {
                self.conf_dir.join(p)
            } else {
                p
            }
        };
        let data = match read_cached(&path).await {
            Ok(d) => d,
            Err(e) => {
                let msg = format!(
                    "open() \"{}\" failed ({})",
                    path.display(),
                    junction_core::error::os_error_text(&e)
                );
                log(cx, &msg, true, false);
                return if e.kind() == std::io::ErrorKind::NotFound {
                    AuthResult::Forbidden
                } else {
                    AuthResult::Error
                };
            }
        };
        let user = || String::from_utf8_lossy(creds.user()).into_owned();
        let Some(hash) = find_password(&data, creds.user()) else {
            log(
                cx,
                &format!(
                    "user \"{}\" was not found in \"{}\"",
                    user(),
                    path.display()
                ),
                true,
                false,
            );
            return AuthResult::Unauthorized(realm);
        };
        let hash = data.slice_ref(hash);
        let password = Bytes::copy_from_slice(creds.password());
        let ok = if is_crypt3(&hash) {
            tokio::task::spawn_blocking(move || verify(&password, &hash))
                .await
                .unwrap_or(false)
        } else {
            verify(&password, &hash)
        };
        if ok {
            AuthResult::Granted
        } else {
            log(
                cx,
                &format!("user \"{}\": password mismatch", user()),
                true,
                false,
            );
            AuthResult::Unauthorized(realm)
        }
    }
}

/// The password field of the first line of `data` whose login is `user`, read with
/// the state machine of `ngx_http_auth_basic_handler`: a line starting with `#` or CR
/// is skipped, empty lines too; the login is compared byte for byte up to its `:`;
/// the password ends at CR, LF, `:` or the end of the file.
fn find_password<'a>(data: &'a [u8], user: &[u8]) -> Option<&'a [u8]> {
    for line in data.split(|&b| b == b'\n') {
        if matches!(line.first(), None | Some(b'#' | b'\r')) {
            continue;
        }
        let Some(rest) = line.strip_prefix(user).and_then(|r| r.strip_prefix(b":")) else {
            continue;
        };
        let end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b':')
            .unwrap_or(rest.len());
        return rest.get(..end);
    }
    None
}

/// Whether `hash` goes to crypt(3) (the slow schemes).
fn is_crypt3(hash: &[u8]) -> bool {
    !(hash.starts_with(b"$apr1$") || hash.starts_with(b"{"))
}

/// `ngx_crypt`: whether `password` matches the stored `hash`.
fn verify(password: &[u8], hash: &[u8]) -> bool {
    if let Some(rest) = hash.strip_prefix(b"$apr1$") {
        return apr1(password, rest).is_some_and(|h| h.as_bytes() == hash);
    }
    if let Some(plain) = hash.strip_prefix(b"{PLAIN}") {
        return plain == password;
    }
    if let Some(b64) = hash.strip_prefix(b"{SHA}") {
        let digest = <sha1::Sha1 as sha1::Digest>::digest(password);
        let enc = base64::engine::general_purpose::STANDARD.encode(digest);
        return enc.as_bytes() == b64;
    }
    if let Some(b64) = hash.strip_prefix(b"{SSHA}") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let (Some(want), Some(salt)) = (raw.get(..20), raw.get(20..)) else {
            return false;
        };
        let mut h = <sha1::Sha1 as sha1::Digest>::new();
        sha1::Digest::update(&mut h, password);
        sha1::Digest::update(&mut h, salt);
        return sha1::Digest::finalize(h).iter().eq(want.iter());
    }
    let Ok(h) = std::str::from_utf8(hash) else {
        return false;
    };
    if h.starts_with("$y$") {
        use yescrypt::PasswordVerifier as _;
        return yescrypt::Yescrypt::default()
            .verify_password(password, h)
            .is_ok();
    }
    pwhash::unix::verify(password, h)
}

/// crypt(3)'s base-64 alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Apache's `$apr1$`: MD5-crypt (Poul-Henning Kamp's algorithm, as `ngx_crypt_apr1`)
/// with the magic `$apr1$`; `setting` is what follows the magic (salt of at most 8
/// characters up to `$`). No crate offers this variant (`pwhash`'s MD5-crypt has the
/// `$1$` magic built in); the digest itself is the `md-5` crate's.
fn apr1(password: &[u8], setting: &[u8]) -> Option<String> {
    use md5::{Digest, Md5};
    const MAGIC: &[u8] = b"$apr1$";
    let salt_end = setting
        .iter()
        .position(|&b| b == b'$')
        .unwrap_or(setting.len())
        .min(8);
    let salt = setting.get(..salt_end)?;
    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(alt.get(..n)?);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(password.get(..1)?);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(password);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let f = |i: usize| u32::from(fin.get(i).copied().unwrap_or(0));
    let mut out = String::with_capacity(MAGIC.len() + salt.len() + 23);
    out.push_str("$apr1$");
    out.push_str(std::str::from_utf8(salt).ok()?);
    out.push('$');
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(
                ITOA64.get((v & 0x3f) as usize).copied().unwrap_or(b'.'),
            ));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put((f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    put(f(11), 2);
    Some(out)
}

/// One user file as last read.
struct Cached {
    stamp: (u64, u64, Option<SystemTime>),
    data: Bytes,
}

/// User files by path, shared by every worker; a file is read again when its inode,
/// size or mtime changed. At most this many paths are kept (a path made of variables
/// could name any number of files).
const CACHE_MAX: usize = 256;

static CACHE: Mutex<Option<HashMap<PathBuf, Arc<Cached>>>> = Mutex::new(None);

async fn read_cached(path: &Path) -> std::io::Result<Bytes> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = tokio::fs::metadata(path).await?;
    let stamp = (meta.ino(), meta.len(), meta.modified().ok());
    let hit = CACHE
        .lock()
        .ok()
        .and_then(|c| c.as_ref().and_then(|m| m.get(path).cloned()));
    if let Some(c) = hit.filter(|c| c.stamp == stamp) {
        return Ok(c.data.clone());
    }
    let data = Bytes::from(tokio::fs::read(path).await?);
    if let Ok(mut c) = CACHE.lock() {
        let m = c.get_or_insert_with(HashMap::new);
        if m.len() >= CACHE_MAX && !m.contains_key(path) {
            m.clear();
        }
        m.insert(
            path.to_path_buf(),
            Arc::new(Cached {
                stamp,
                data: data.clone(),
            }),
        );
    }
    Ok(data)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn apr1_matches_openssl() {
        // `openssl passwd -apr1 -salt xxxxxxxx password`
        assert_eq!(
            apr1(b"password", b"xxxxxxxx$").unwrap(),
            "$apr1$xxxxxxxx$dxHfLAsjHkDRmG83UXe8K0"
        );
        assert!(verify(
            b"password",
            b"$apr1$xxxxxxxx$dxHfLAsjHkDRmG83UXe8K0"
        ));
        assert!(!verify(
            b"passwore",
            b"$apr1$xxxxxxxx$dxHfLAsjHkDRmG83UXe8K0"
        ));
    }

    #[test]
    fn formats() {
        assert!(verify(b"secret", b"{PLAIN}secret"));
        assert!(!verify(b"secre", b"{PLAIN}secret"));
        // {SHA} of "password" (htpasswd -s)
        assert!(verify(b"password", b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        assert!(!verify(b"Password", b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="));
        // `openssl passwd -1 -salt xxxxxxxx password`
        assert!(verify(b"password", b"$1$xxxxxxxx$UYCIxa628.9qXjpQCjM4a."));
        // `openssl passwd -crypt -salt xx password`
        assert!(verify(b"password", b"xxj31ZMTZzkVA"));
        assert!(!verify(b"password", b"$y$j9T$abc$def"));
        // `mkpasswd -m yescrypt pw-yes` (libxcrypt)
        let y = b"$y$j9T$CD2EyxO/36PsvLAwjb5ex1$Y4XfHrrys.Ext6cv2PRtMcpR9pqWWkyNYvvHq3T78S3";
        assert!(verify(b"pw-yes", y));
        assert!(!verify(b"pw-yet", y));
        assert!(!verify(b"password", b"{SSHA}!!"));
    }

    #[test]
    fn user_lines_as_nginx_reads_them() {
        let f = b"# comment\n\nalice:{PLAIN}a1\r\nbob:{PLAIN}b1:extra\nalice:{PLAIN}second\nbobby:{PLAIN}x\ncarol:{PLAIN}last";
        assert_eq!(find_password(f, b"alice"), Some(&b"{PLAIN}a1"[..]));
        assert_eq!(find_password(f, b"bob"), Some(&b"{PLAIN}b1"[..]));
        assert_eq!(find_password(f, b"bobby"), Some(&b"{PLAIN}x"[..]));
        assert_eq!(find_password(f, b"carol"), Some(&b"{PLAIN}last"[..]));
        assert_eq!(find_password(f, b"bo"), None);
        assert_eq!(find_password(f, b"# comment"), None);
        assert_eq!(find_password(f, b"dave"), None);
    }
}
