//! Push-hook authentication: pure functions over the request headers and the
//! raw body, no IO besides reading the secret files at startup.
//!
//! Three providers, each enabled by its own secret file in
//! [`HookSettings`]:
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <token>`, compared in constant time;
//! - generic: `X-Flink-Gitops-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Secrets and header values never reach an error message or a log line.

use std::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::daemon_settings::HookSettings;

type HmacSha256 = Hmac<Sha256>;

/// `X-Hub-Signature-256`, GitHub's HMAC-SHA256 signature header.
pub const GITHUB_HEADER: &str = "x-hub-signature-256";
/// `X-Gitlab-Token`, GitLab's shared-token header.
pub const GITLAB_HEADER: &str = "x-gitlab-token";
/// `X-Flink-Gitops-Signature`, the generic HMAC-SHA256 signature header.
pub const GENERIC_HEADER: &str = "x-flink-gitops-signature";

const SHA256_PREFIX: &str = "sha256=";

pub use crate::secret::Secret;
use crate::secret::SecretFileError;

/// The configured push-hook secrets, one per provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookSecrets {
    github: Option<Secret>,
    gitlab: Option<Secret>,
    generic: Option<Secret>,
}

impl HookSecrets {
    /// Reads every configured secret file. One trailing newline (`\n` or
    /// `\r\n`) is dropped; a file that is empty or only whitespace after
    /// that is an error.
    pub fn load(settings: &HookSettings) -> Result<HookSecrets, HookError> {
        let read = |path: &Option<PathBuf>| path.as_deref().map(read_secret).transpose();
        Ok(HookSecrets {
            github: read(&settings.github_secret_file)?,
            gitlab: read(&settings.gitlab_token_file)?,
            generic: read(&settings.generic_secret_file)?,
        })
    }

    /// No provider configured: the hook endpoint should answer 404.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.github.is_none() && self.gitlab.is_none() && self.generic.is_none()
    }
}

fn read_secret(path: &Path) -> Result<Secret, HookError> {
    let secret = Secret::read_file(path).map_err(|error| match error {
        SecretFileError::Read { path, source } => HookError::ReadSecret { path, source },
        SecretFileError::Empty { path } => HookError::EmptySecret { path },
    })?;
    // A blank secret is almost always a templating mistake, and a space is
    // as guessable as nothing: an HMAC keyed with it authenticates anyone.
    if secret.expose().iter().all(u8::is_ascii_whitespace) {
        return Err(HookError::EmptySecret {
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

/// Who signed an accepted push hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Generic,
}

impl Provider {
    /// A bounded label for metrics and logs.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why secrets could not be loaded or a hook was refused. No variant carries
/// a secret or a header value.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("failed to read the hook secret file {}: {source}", path.display())]
    ReadSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hook secret file {} is empty or only whitespace", path.display())]
    EmptySecret { path: PathBuf },
    #[error("no push-hook secret is configured")]
    NotConfigured,
    #[error("no signature header for any configured hook provider")]
    MissingSignature,
    #[error("the {provider} signature does not match the body")]
    BadSignature { provider: Provider },
    #[error("the {provider} signature header is malformed")]
    Malformed { provider: Provider },
}

impl HookError {
    /// A bounded label for metrics and logs.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            HookError::ReadSecret { .. } => "secret_unreadable",
            HookError::EmptySecret { .. } => "secret_empty",
            HookError::NotConfigured => "not_configured",
            HookError::MissingSignature => "missing_signature",
            HookError::BadSignature { .. } => "bad_signature",
            HookError::Malformed { .. } => "malformed",
        }
    }

    /// The provider whose header was checked, if one was.
    #[must_use]
    pub fn provider(&self) -> Option<Provider> {
        match self {
            HookError::BadSignature { provider } | HookError::Malformed { provider } => {
                Some(*provider)
            }
            _ => None,
        }
    }
}

/// Authenticates a push hook against the configured secrets, over the raw
/// body exactly as received.
///
/// Providers are tried in the order GitHub, GitLab, generic; the first
/// *configured* provider whose header is present decides (headers of
/// unconfigured providers are ignored). No such header → `MissingSignature`.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &HookSecrets,
) -> Result<Provider, HookError> {
    if secrets.is_empty() {
        return Err(HookError::NotConfigured);
    }
    if let Some(secret) = &secrets.github
        && let Some(value) = single_header(headers, GITHUB_HEADER, Provider::GitHub)?
    {
        return verify_hmac(value, body, secret, Provider::GitHub);
    }
    if let Some(secret) = &secrets.gitlab
        && let Some(value) = single_header(headers, GITLAB_HEADER, Provider::GitLab)?
    {
        return verify_token(value, secret);
    }
    if let Some(secret) = &secrets.generic
        && let Some(value) = single_header(headers, GENERIC_HEADER, Provider::Generic)?
    {
        return verify_hmac(value, body, secret, Provider::Generic);
    }
    Err(HookError::MissingSignature)
}

/// The header's value, if present exactly once; repeated → malformed.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
    provider: Provider,
) -> Result<Option<&'h [u8]>, HookError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HookError::Malformed { provider });
    }
    Ok(Some(first.as_bytes()))
}

fn verify_hmac(
    value: &[u8],
    body: &[u8],
    secret: &Secret,
    provider: Provider,
) -> Result<Provider, HookError> {
    let hex_digest = value
        .strip_prefix(SHA256_PREFIX.as_bytes())
        .ok_or(HookError::Malformed { provider })?;
    let signature = hex::decode(hex_digest).map_err(|_| HookError::Malformed { provider })?;
    if signature.len() != <Sha256 as Digest>::output_size() {
        return Err(HookError::Malformed { provider });
    }
    let mut mac = HmacSha256::new_from_slice(secret.expose())
        .map_err(|_| HookError::Malformed { provider })?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| HookError::BadSignature { provider })?;
    Ok(provider)
}

/// GitLab sends the token itself. Both sides are hashed first so the
/// constant-time comparison does not leak the token's length either.
fn verify_token(value: &[u8], secret: &Secret) -> Result<Provider, HookError> {
    let provider = Provider::GitLab;
    if value.is_empty() {
        return Err(HookError::Malformed { provider });
    }
    let given = Sha256::digest(value);
    let expected = Sha256::digest(secret.expose());
    if bool::from(given.ct_eq(&expected)) {
        Ok(provider)
    } else {
        Err(HookError::BadSignature { provider })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_PAYLOAD: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(github: Option<&str>, gitlab: Option<&str>, generic: Option<&str>) -> HookSecrets {
        let s = |v: Option<&str>| v.map(|v| Secret::from_bytes(v.as_bytes()));
        HookSecrets {
            github: s(github),
            gitlab: s(gitlab),
            generic: s(generic),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// Independent of the code path: plain `hmac` + `sha2` + `hex`.
    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_documented_vector() {
        assert_eq!(sign(GITHUB_SECRET, GITHUB_PAYLOAD), GITHUB_SIGNATURE);
        let s = secrets(Some(GITHUB_SECRET), None, None);
        let h = headers(&[("X-Hub-Signature-256", GITHUB_SIGNATURE)]);
        assert_eq!(verify(&h, GITHUB_PAYLOAD, &s).unwrap(), Provider::GitHub);
    }

    #[test]
    fn github_uppercase_hex_is_accepted() {
        let s = secrets(Some(GITHUB_SECRET), None, None);
        let upper = format!("sha256={}", GITHUB_SIGNATURE[7..].to_uppercase());
        let h = headers(&[("X-Hub-Signature-256", &upper)]);
        assert_eq!(verify(&h, GITHUB_PAYLOAD, &s).unwrap(), Provider::GitHub);
    }

    #[test]
    fn github_rejects_a_changed_body_or_secret() {
        let s = secrets(Some(GITHUB_SECRET), None, None);
        let h = headers(&[("X-Hub-Signature-256", GITHUB_SIGNATURE)]);
        let err = verify(&h, b"Hello, World?", &s).unwrap_err();
        assert!(matches!(
            err,
            HookError::BadSignature {
                provider: Provider::GitHub
            }
        ));
        assert_eq!(err.category(), "bad_signature");

        let other = secrets(Some("another secret"), None, None);
        let err = verify(&h, GITHUB_PAYLOAD, &other).unwrap_err();
        assert!(matches!(
            err,
            HookError::BadSignature {
                provider: Provider::GitHub
            }
        ));
    }

    #[test]
    fn github_malformed_headers() {
        let s = secrets(Some(GITHUB_SECRET), None, None);
        let hex_only = &GITHUB_SIGNATURE[7..];
        let sha1 = format!("sha1={hex_only}");
        let not_hex = format!("sha256={}", "zz".repeat(32));
        let short = format!("sha256={}", &hex_only[..62]);
        let odd = format!("sha256={}", &hex_only[..63]);
        for value in [
            hex_only,
            sha1.as_str(),
            not_hex.as_str(),
            short.as_str(),
            odd.as_str(),
            "",
        ] {
            let h = headers(&[("X-Hub-Signature-256", value)]);
            let err = verify(&h, GITHUB_PAYLOAD, &s).unwrap_err();
            assert!(
                matches!(
                    err,
                    HookError::Malformed {
                        provider: Provider::GitHub
                    }
                ),
                "{value:?}: {err:?}"
            );
            assert_eq!(err.category(), "malformed");
        }
        // Sent twice: refuse rather than pick one.
        let h = headers(&[
            ("X-Hub-Signature-256", GITHUB_SIGNATURE),
            ("X-Hub-Signature-256", GITHUB_SIGNATURE),
        ]);
        assert!(matches!(
            verify(&h, GITHUB_PAYLOAD, &s).unwrap_err(),
            HookError::Malformed {
                provider: Provider::GitHub
            }
        ));
    }

    #[test]
    fn generic_computed_vector() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let s = secrets(None, None, Some("generic-secret"));
        let sig = sign("generic-secret", body);
        let h = headers(&[("X-Flink-Gitops-Signature", &sig)]);
        assert_eq!(verify(&h, body, &s).unwrap(), Provider::Generic);

        let bad = sign("wrong", body);
        let h = headers(&[("X-Flink-Gitops-Signature", &bad)]);
        assert!(matches!(
            verify(&h, body, &s).unwrap_err(),
            HookError::BadSignature {
                provider: Provider::Generic
            }
        ));
        let h = headers(&[("X-Flink-Gitops-Signature", "sha256=nothex")]);
        assert!(matches!(
            verify(&h, body, &s).unwrap_err(),
            HookError::Malformed {
                provider: Provider::Generic
            }
        ));
    }

    #[test]
    fn gitlab_token() {
        let s = secrets(None, Some("gl-token"), None);
        let h = headers(&[("X-Gitlab-Token", "gl-token")]);
        assert_eq!(verify(&h, b"anything", &s).unwrap(), Provider::GitLab);
        for wrong in ["gl-toke", "gl-token2", "GL-TOKEN"] {
            let h = headers(&[("X-Gitlab-Token", wrong)]);
            assert!(matches!(
                verify(&h, b"anything", &s).unwrap_err(),
                HookError::BadSignature {
                    provider: Provider::GitLab
                }
            ));
        }
        let h = headers(&[("X-Gitlab-Token", "")]);
        assert!(matches!(
            verify(&h, b"anything", &s).unwrap_err(),
            HookError::Malformed {
                provider: Provider::GitLab
            }
        ));
    }

    #[test]
    fn missing_signature_and_unconfigured_providers() {
        let s = secrets(Some("a"), Some("b"), Some("c"));
        let err = verify(&HeaderMap::new(), b"x", &s).unwrap_err();
        assert!(matches!(err, HookError::MissingSignature));
        assert_eq!(err.category(), "missing_signature");

        // A valid GitHub signature is ignored when only generic is configured.
        let only_generic = secrets(None, None, Some(GITHUB_SECRET));
        let h = headers(&[("X-Hub-Signature-256", GITHUB_SIGNATURE)]);
        assert!(matches!(
            verify(&h, GITHUB_PAYLOAD, &only_generic).unwrap_err(),
            HookError::MissingSignature
        ));

        let none = HookSecrets::default();
        assert!(none.is_empty());
        assert!(matches!(
            verify(&h, GITHUB_PAYLOAD, &none).unwrap_err(),
            HookError::NotConfigured
        ));
    }

    #[test]
    fn first_configured_present_header_decides() {
        let body = b"payload";
        let s = secrets(Some("gh"), None, Some("gen"));
        let h = headers(&[
            ("X-Hub-Signature-256", &sign("wrong", body)),
            ("X-Flink-Gitops-Signature", &sign("gen", body)),
        ]);
        assert!(matches!(
            verify(&h, body, &s).unwrap_err(),
            HookError::BadSignature {
                provider: Provider::GitHub
            }
        ));
    }

    #[test]
    fn load_trims_one_newline_and_refuses_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let gh = dir.path().join("github");
        let gl = dir.path().join("gitlab");
        let generic = dir.path().join("generic");
        std::fs::write(&gh, "It's a Secret to Everybody\n").unwrap();
        std::fs::write(&gl, "token\r\n").unwrap();
        std::fs::write(&generic, "two\n\n").unwrap();
        let settings = HookSettings {
            github_secret_file: Some(gh.clone()),
            gitlab_token_file: Some(gl),
            generic_secret_file: Some(generic),
            ..HookSettings::default()
        };
        let loaded = HookSecrets::load(&settings).unwrap();
        assert!(!loaded.is_empty());
        assert_eq!(
            loaded.github.as_ref().unwrap().expose(),
            GITHUB_SECRET.as_bytes()
        );
        assert_eq!(loaded.gitlab.as_ref().unwrap().expose(), b"token");
        assert_eq!(loaded.generic.as_ref().unwrap().expose(), b"two\n");

        let h = headers(&[("X-Hub-Signature-256", GITHUB_SIGNATURE)]);
        assert_eq!(
            verify(&h, GITHUB_PAYLOAD, &loaded).unwrap(),
            Provider::GitHub
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let settings = HookSettings {
            gitlab_token_file: Some(empty.clone()),
            ..HookSettings::default()
        };
        let err = HookSecrets::load(&settings).unwrap_err();
        assert!(matches!(err, HookError::EmptySecret { .. }));
        assert!(err.to_string().contains(&empty.display().to_string()));

        for blank in [" ", " \n", "\t\r\n", "  \n\n", "\r\n\r\n"] {
            let path = dir.path().join("blank");
            std::fs::write(&path, blank).unwrap();
            let settings = HookSettings {
                github_secret_file: Some(path.clone()),
                ..HookSettings::default()
            };
            let err = HookSecrets::load(&settings).unwrap_err();
            assert!(matches!(err, HookError::EmptySecret { .. }), "{blank:?}");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{blank:?}: {err}"
            );
        }

        let missing = dir.path().join("missing");
        let settings = HookSettings {
            generic_secret_file: Some(missing.clone()),
            ..HookSettings::default()
        };
        let err = HookSecrets::load(&settings).unwrap_err();
        assert!(matches!(err, HookError::ReadSecret { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));

        let none = HookSecrets::load(&HookSettings::default()).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn secrets_never_print() {
        let s = secrets(Some("hunter2-github"), Some("hunter2-gitlab"), None);
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }
}
