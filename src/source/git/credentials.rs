//! What a fetch authenticates with, and how the ssh server is verified:
//! passwords and tokens read from files or the environment, ssh keys, and
//! OpenSSH known_hosts files.

use super::GitError;
use super::fetch::Stop;
use crate::config::daemon_settings::GitCredentials;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use git2::cert::Cert;
use git2::{CertificateCheckStatus, Cred, CredentialType};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};

/// known_hosts writes base64 padded, but hand-edited files drop the padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The secrets one fetch needs, read before connecting.
pub(super) struct Secrets {
    pub password: Option<String>,
    pub known_hosts: Option<KnownHosts>,
}

/// Reads the password and known_hosts before connecting, so that an
/// unreadable file is reported as such rather than as a refused login.
pub(super) fn read_secrets(
    credentials: &GitCredentials,
    display_url: &str,
) -> Result<Secrets, GitError> {
    let read_error = |from: String, reason: String| GitError::ReadCredentials {
        url: display_url.to_owned(),
        from,
        reason,
    };
    let password = if let Some(path) = &credentials.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| read_error(path.display().to_string(), e.to_string()))?;
        Some(text.trim_end_matches(['\n', '\r']).to_owned())
    } else if let Some(name) = &credentials.password_env {
        let value = std::env::var(name).map_err(|e| {
            let reason = match e {
                std::env::VarError::NotPresent => "not set",
                std::env::VarError::NotUnicode(_) => "not valid unicode",
            };
            read_error(format!("environment variable {name}"), reason.to_owned())
        })?;
        Some(value)
    } else {
        None
    };
    let known_hosts = match &credentials.known_hosts_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| read_error(path.display().to_string(), e.to_string()))?;
            Some(KnownHosts::parse(&text))
        }
        None => None,
    };
    Ok(Secrets {
        password,
        known_hosts,
    })
}

/// What the libgit2 callbacks of one fetch share.
pub(super) struct CallbackState<'a> {
    pub display_url: &'a str,
    pub credentials: &'a GitCredentials,
    pub secrets: &'a Secrets,
    pub ssh_port: Option<u16>,
    pub stop: &'a Stop,
    /// Each credential type is offered at most once per fetch: libgit2 asks
    /// again after a refusal, forever.
    pub tried: Cell<CredentialType>,
    pub auth_failure: RefCell<Option<String>>,
    pub host_key_failure: RefCell<Option<(String, String)>>,
}

impl CallbackState<'_> {
    pub fn credential(
        &self,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        self.stop.check()?;
        let first_try = |kind: CredentialType| {
            let tried = self.tried.get();
            if allowed.contains(kind) && !tried.contains(kind) {
                self.tried.set(tried | kind);
                true
            } else {
                false
            }
        };
        let ssh_user = user_from_url.unwrap_or("git");
        if first_try(CredentialType::USERNAME) {
            return Cred::username(ssh_user);
        }
        if let Some(key) = &self.credentials.ssh_key_file
            && first_try(CredentialType::SSH_KEY)
        {
            return Cred::ssh_key(ssh_user, None, key, None);
        }
        if let Some(password) = &self.secrets.password
            && first_try(CredentialType::USER_PASS_PLAINTEXT)
        {
            let user = self
                .credentials
                .username
                .as_deref()
                .or(user_from_url)
                .unwrap_or("git");
            return Cred::userpass_plaintext(user, password);
        }
        let tried = self.tried.get();
        let reason =
            if tried.intersects(CredentialType::SSH_KEY | CredentialType::USER_PASS_PLAINTEXT) {
                "the server refused the configured credentials".to_owned()
            } else if allowed.contains(CredentialType::SSH_KEY) {
                "the server asks for an ssh key and source.git.credentials.ssh_key_file is not set"
                    .to_owned()
            } else if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                "the server asks for a password and neither source.git.credentials.password_file \
                 nor password_env is set"
                    .to_owned()
            } else {
                format!("the server asks for credentials of an unsupported kind ({allowed:?})")
            };
        self.auth_failure.replace(Some(reason.clone()));
        Err(git2::Error::from_str(&reason))
    }

    pub fn check_certificate(
        &self,
        cert: &Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, git2::Error> {
        self.stop.check()?;
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: libgit2's own verification against the system roots.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let name = match self.ssh_port {
            Some(port) if port != 22 => format!("[{host}]:{port}"),
            _ => host.to_owned(),
        };
        let Some(known_hosts) = &self.secrets.known_hosts else {
            // `open` refused an ssh URL without known_hosts unless this
            // was set; an ssh connection to a URL it did not take for ssh
            // still fails closed.
            if self.credentials.insecure_skip_host_key_check {
                tracing::warn!(
                    url = %self.display_url, host = %name,
                    "accepting the ssh host key without verification \
                     (source.git.credentials.insecure_skip_host_key_check)"
                );
                return Ok(CertificateCheckStatus::CertificateOk);
            }
            let reason = "source.git.credentials.known_hosts_file is not set";
            self.host_key_failure
                .replace(Some((name, reason.to_owned())));
            return Err(git2::Error::from_str(reason));
        };
        let key = HostKey {
            blob: hostkey.hostkey(),
            sha256: hostkey.hash_sha256(),
        };
        let reason = match known_hosts.check(&name, &key) {
            HostKeyCheck::Match => return Ok(CertificateCheckStatus::CertificateOk),
            HostKeyCheck::Unknown => "the host is not in known_hosts_file",
            HostKeyCheck::Mismatch => "the host key does not match the one in known_hosts_file",
            HostKeyCheck::Revoked => "the host key is revoked in known_hosts_file",
            HostKeyCheck::NoKey => "the server presented no usable host key",
        };
        self.host_key_failure
            .replace(Some((name, reason.to_owned())));
        Err(git2::Error::from_str(reason))
    }
}

/// The host key a server presented.
struct HostKey<'a> {
    /// The key in ssh wire format, as base64-encoded in known_hosts.
    blob: Option<&'a [u8]>,
    sha256: Option<&'a [u8; 32]>,
}

impl HostKey<'_> {
    fn is(&self, known: &[u8]) -> Option<bool> {
        if let Some(blob) = self.blob {
            return Some(blob == known);
        }
        self.sha256
            .map(|hash| hash.as_slice() == Sha256::digest(known).as_slice())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum HostKeyCheck {
    Match,
    Mismatch,
    Unknown,
    Revoked,
    NoKey,
}

/// An OpenSSH known_hosts file: plain, wildcard, negated and hashed
/// (`|1|salt|hash`) host patterns; `@revoked` keys; `@cert-authority` lines
/// are ignored (certificates are not supported).
#[derive(Debug, Default)]
pub(super) struct KnownHosts {
    entries: Vec<KnownHost>,
}

#[derive(Debug)]
struct KnownHost {
    revoked: bool,
    hosts: String,
    key: Vec<u8>,
}

impl KnownHosts {
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut revoked = false;
            let mut hosts = fields.next();
            if let Some(marker) = hosts.filter(|h| h.starts_with('@')) {
                if marker != "@revoked" {
                    continue;
                }
                revoked = true;
                hosts = fields.next();
            }
            let (Some(hosts), Some(_key_type), Some(key)) = (hosts, fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(key) = BASE64.decode(key) else {
                continue;
            };
            entries.push(KnownHost {
                revoked,
                hosts: hosts.to_owned(),
                key,
            });
        }
        KnownHosts { entries }
    }

    /// Checks the key `name` (`host` or `[host]:port`) presented.
    fn check(&self, name: &str, key: &HostKey<'_>) -> HostKeyCheck {
        if key.blob.is_none() && key.sha256.is_none() {
            return HostKeyCheck::NoKey;
        }
        let name = name.to_ascii_lowercase();
        if self
            .entries
            .iter()
            .any(|entry| entry.revoked && key.is(&entry.key) == Some(true))
        {
            return HostKeyCheck::Revoked;
        }
        let mut known = false;
        for entry in self
            .entries
            .iter()
            .filter(|e| !e.revoked && hosts_match(&e.hosts, &name))
        {
            known = true;
            if key.is(&entry.key) == Some(true) {
                return HostKeyCheck::Match;
            }
        }
        if known {
            HostKeyCheck::Mismatch
        } else {
            HostKeyCheck::Unknown
        }
    }
}

/// Whether a known_hosts host field matches `name` (lower case).
fn hosts_match(hosts: &str, name: &str) -> bool {
    if let Some(hashed) = hosts.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(name.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    let mut matched = false;
    for pattern in hosts.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern),
        };
        if wildcard_match(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `*` and `?` glob matching.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| wildcard_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && wildcard_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && wildcard_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    fn hashed(salt: &[u8], name: &str) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).expect("any key length");
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            encode(salt),
            encode(&mac.finalize().into_bytes())
        )
    }

    #[test]
    fn a_hashed_entry_written_by_ssh_keygen_matches_its_host_only() {
        // `ssh-keygen -H` of `hashed.example.com ssh-ed25519 AAAA...`.
        let text = "|1|LdCWrJ4B4klKiChTfSZMs8Uvr6w=|9JDjVB3zGT8AAYztUxWHkIVH8mw= ssh-ed25519 \
                    AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
        let known = KnownHosts::parse(text);
        let blob = BASE64
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
            .expect("base64");
        let key = HostKey {
            blob: Some(&blob),
            sha256: None,
        };
        assert_eq!(known.check("hashed.example.com", &key), HostKeyCheck::Match);
        assert_eq!(
            known.check("other.example.com", &key),
            HostKeyCheck::Unknown
        );
    }

    #[test]
    fn base64_without_padding_is_read() {
        assert_eq!(BASE64.decode("Zm9vYg").ok().as_deref(), Some(&b"foob"[..]));
        assert_eq!(
            BASE64.decode("Zm9vYg==").ok().as_deref(),
            Some(&b"foob"[..])
        );
        assert!(BASE64.decode("not base64!").is_err());
    }

    #[test]
    fn known_hosts_checks_plain_wildcard_port_hashed_and_revoked_entries() {
        let good = b"\0\0\0\x0bssh-ed25519 good key".to_vec();
        let other = b"\0\0\0\x0bssh-ed25519 other key".to_vec();
        let revoked = b"\0\0\0\x0bssh-ed25519 revoked".to_vec();
        let hashed_name = hashed(b"0123456789abcdef0123", "hashed.example.com");
        let text = format!(
            "# comment\n\
             github.com,140.82.1.1 ssh-ed25519 {good}\n\
             *.corp.example.com,!bad.corp.example.com ssh-ed25519 {good}\n\
             [git.example.com]:2222 ssh-ed25519 {good}\n\
             {hashed_name} ssh-ed25519 {good}\n\
             @revoked * ssh-ed25519 {revoked}\n\
             @cert-authority * ssh-ed25519 {other}\n\
             broken line\n",
            good = encode(&good),
            other = encode(&other),
            revoked = encode(&revoked),
        );
        let known = KnownHosts::parse(&text);
        fn key(blob: &[u8]) -> HostKey<'_> {
            HostKey {
                blob: Some(blob),
                sha256: None,
            }
        }
        assert_eq!(known.check("github.com", &key(&good)), HostKeyCheck::Match);
        assert_eq!(known.check("GitHub.com", &key(&good)), HostKeyCheck::Match);
        assert_eq!(
            known.check("github.com", &key(&other)),
            HostKeyCheck::Mismatch
        );
        assert_eq!(
            known.check("a.corp.example.com", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("bad.corp.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("[git.example.com]:2222", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("git.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("hashed.example.com", &key(&good)),
            HostKeyCheck::Match
        );
        assert_eq!(
            known.check("unknown.example.com", &key(&good)),
            HostKeyCheck::Unknown
        );
        assert_eq!(
            known.check("github.com", &key(&revoked)),
            HostKeyCheck::Revoked
        );
        let digest: [u8; 32] = Sha256::digest(&good).into();
        let by_hash = HostKey {
            blob: None,
            sha256: Some(&digest),
        };
        assert_eq!(known.check("github.com", &by_hash), HostKeyCheck::Match);
        let none = HostKey {
            blob: None,
            sha256: None,
        };
        assert_eq!(known.check("github.com", &none), HostKeyCheck::NoKey);
    }
}
