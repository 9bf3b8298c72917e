//! Remote URLs: the transport, the port, and every part that is a secret.
//!
//! The configured URL is handed to libgit2 only; everything shown to users
//! (logs, errors, `display_url()`, the cache folder's name) comes from
//! [`GitUrl::display`], and libgit2's messages are scrubbed of
//! [`GitUrl::secrets`].

use sha2::{Digest, Sha256};

/// What stands in for a secret in anything shown.
pub(super) const REDACTED: &str = "***";

/// A configured remote URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GitUrl {
    /// The URL without password, token or secret query value.
    pub display: String,
    /// The secrets written in the URL, as written and percent-decoded.
    pub secrets: Vec<String>,
    /// The explicit port, for known_hosts' `[host]:port` names.
    pub port: Option<u16>,
    /// Whether libgit2 connects with ssh (`ssh://` or scp-like `host:path`).
    pub ssh: bool,
}

impl GitUrl {
    /// Takes `scheme://[userinfo@]host[:port]/path[?query]` or the scp-like
    /// `[user@]host:path` apart. Parsing is lenient towards passwords that
    /// hold raw `/`, `#`, `?` or `@`: it rather hides too much than too little.
    pub fn parse(url: &str) -> Self {
        match url.split_once("://") {
            Some((scheme, rest)) => Self::parse_hierarchical(scheme, rest),
            None => Self::parse_scp_like(url),
        }
    }

    fn parse_hierarchical(scheme: &str, rest: &str) -> Self {
        let scheme_lower = scheme.to_ascii_lowercase();
        let ssh = matches!(scheme_lower.as_str(), "ssh" | "ssh+git" | "git+ssh");
        let userinfo_len = userinfo_len(rest);
        let (userinfo, after) = match userinfo_len {
            Some(len) => (Some(&rest[..len]), &rest[len + 1..]),
            None => (None, rest),
        };
        let mut secrets = Vec::new();
        let shown_userinfo = match userinfo {
            None => String::new(),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => {
                    push_secret(&mut secrets, password);
                    if user.is_empty() {
                        String::new()
                    } else {
                        format!("{user}@")
                    }
                }
                // Over http a lone user name is how tokens are passed
                // (`https://<token>@github.com/...`); over ssh it is not.
                None if matches!(scheme_lower.as_str(), "http" | "https") && !info.is_empty() => {
                    push_secret(&mut secrets, info);
                    format!("{REDACTED}@")
                }
                None => format!("{info}@"),
            },
        };
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let port = port_of(&after[..authority_end]);
        let after = redact_query(after, &mut secrets);
        GitUrl {
            display: format!("{scheme}://{shown_userinfo}{after}"),
            secrets,
            port,
            ssh,
        }
    }

    fn parse_scp_like(url: &str) -> Self {
        let first_slash = url.find('/').unwrap_or(url.len());
        // A local path (`/srv/soa`, `./soa`, `C:\soa`): no host, no secret.
        let (userinfo, hostpath) = match url[..first_slash].rfind('@') {
            Some(at) => (Some(&url[..at]), &url[at + 1..]),
            None => (None, url),
        };
        let host_colon = hostpath.find(':').filter(|&colon| {
            let slash = hostpath.find('/').unwrap_or(hostpath.len());
            colon < slash && colon > 1
        });
        let Some(_) = host_colon else {
            return GitUrl {
                display: url.to_owned(),
                secrets: Vec::new(),
                port: None,
                ssh: false,
            };
        };
        let mut secrets = Vec::new();
        let shown = match userinfo {
            // A user name alone is not a secret here: `git@github.com:org/x`.
            Some(info) => match info.split_once(':') {
                Some((user, password)) => {
                    push_secret(&mut secrets, password);
                    format!("{user}@{hostpath}")
                }
                None => format!("{info}@{hostpath}"),
            },
            None => hostpath.to_owned(),
        };
        GitUrl {
            display: shown,
            secrets,
            port: None,
            ssh: true,
        }
    }

    /// `message` with the configured URL shown as [`GitUrl::display`] and
    /// every secret (of the URL, and `extra`) replaced.
    pub fn scrub(&self, url: &str, message: &str, extra: Option<&str>) -> String {
        let mut message = message.replace(url, &self.display);
        for secret in self.secrets.iter().map(String::as_str).chain(extra) {
            if !secret.is_empty() {
                message = message.replace(secret, REDACTED);
            }
        }
        message
    }
}

/// The length of the userinfo of `rest` (what follows `scheme://`), without
/// its `@`.
fn userinfo_len(rest: &str) -> Option<usize> {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.starts_with('[') {
        return None;
    }
    if let Some(at) = authority.rfind('@') {
        return Some(at);
    }
    // `user:pa/ss@host/x`: a password with a raw delimiter ends the
    // authority early. A colon not followed by a port marks it.
    let (_, after_colon) = authority.split_once(':')?;
    if after_colon.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first_at = rest.find('@')?;
    let host_end = rest[first_at..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |end| first_at + end);
    rest[..host_end].rfind('@')
}

/// The port of `host[:port]` or `[v6]:port`.
fn port_of(hostport: &str) -> Option<u16> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        bracketed
            .split_once("]:")
            .and_then(|(_, port)| port.parse().ok())
    } else {
        hostport
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
    }
}

/// `rest` with the values of secret-looking query parameters replaced.
fn redact_query(rest: &str, secrets: &mut Vec<String>) -> String {
    let Some((before, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, value)) if is_secret_param(name) && !value.is_empty() => {
                push_secret(secrets, value);
                format!("{name}={REDACTED}")
            }
            _ => param.to_owned(),
        })
        .collect();
    let mut shown = format!("{before}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        shown.push('#');
        shown.push_str(fragment);
    }
    shown
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.ends_with("token")
        || name.contains("secret")
        || name.contains("pass")
        || matches!(name.as_str(), "key" | "sig" | "signature" | "auth")
}

/// Records `secret` as written and percent-decoded: libgit2 may show either.
fn push_secret(secrets: &mut Vec<String>, secret: &str) {
    if secret.is_empty() {
        return;
    }
    let decoded = percent_decode(secret);
    secrets.push(secret.to_owned());
    if decoded != secret {
        secrets.push(decoded);
    }
    // Longest first, so that a secret holding another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cache folder of a repository: a readable tail of the URL and a hash
/// of the whole (secret-free) URL.
pub(super) fn cache_name(display_url: &str) -> String {
    let digest = Sha256::digest(display_url.as_bytes());
    let tail = display_url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or_default();
    let tail = tail.split(['?', '#']).next().unwrap_or_default();
    let tail = tail.strip_suffix(".git").unwrap_or(tail);
    let tail: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let tail = tail.trim_start_matches('.');
    let tail = if tail.is_empty() { "repo" } else { tail };
    format!("{tail}-{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_form_is_shown_without_its_secrets() {
        /// Configured, shown, secrets that must not appear, port, ssh.
        type Case = (
            &'static str,
            &'static str,
            &'static [&'static str],
            Option<u16>,
            bool,
        );
        let cases: &[Case] = &[
            (
                "https://user:s3cret@github.com/org/repo.git",
                "https://user@github.com/org/repo.git",
                &["s3cret"],
                None,
                false,
            ),
            (
                "https://:tok@github.com/org/repo.git",
                "https://github.com/org/repo.git",
                &["tok"],
                None,
                false,
            ),
            (
                "https://ghp_T0KEN@github.com/org/repo.git",
                "https://***@github.com/org/repo.git",
                &["ghp_T0KEN"],
                None,
                false,
            ),
            (
                "http://T0KEN@127.0.0.1:8080/x",
                "http://***@127.0.0.1:8080/x",
                &["T0KEN"],
                Some(8080),
                false,
            ),
            (
                "https://user:p%23ss@host/x",
                "https://user@host/x",
                &["p%23ss", "p#ss"],
                None,
                false,
            ),
            (
                "https://u:pa/ss@host/x",
                "https://u@host/x",
                &["pa/ss"],
                None,
                false,
            ),
            (
                "https://u:pa#ss@host/x",
                "https://u@host/x",
                &["pa#ss"],
                None,
                false,
            ),
            (
                "https://u:pa?ss@host/x",
                "https://u@host/x",
                &["pa?ss"],
                None,
                false,
            ),
            (
                "https://u:p@ss@host/x",
                "https://u@host/x",
                &["p@ss"],
                None,
                false,
            ),
            (
                "https://u:pa/s#s@host:8443/x",
                "https://u@host:8443/x",
                &["pa/s#s"],
                Some(8443),
                false,
            ),
            (
                "ssh://user:pw@host:2222/x",
                "ssh://user@host:2222/x",
                &["pw"],
                Some(2222),
                true,
            ),
            (
                "ssh://git@git.example.com:2222/soa.git",
                "ssh://git@git.example.com:2222/soa.git",
                &[],
                Some(2222),
                true,
            ),
            (
                "ssh://git@[::1]:2200/soa.git",
                "ssh://git@[::1]:2200/soa.git",
                &[],
                Some(2200),
                true,
            ),
            (
                "git+ssh://host/soa.git",
                "git+ssh://host/soa.git",
                &[],
                None,
                true,
            ),
            (
                "git@github.com:org/repo.git",
                "git@github.com:org/repo.git",
                &[],
                None,
                true,
            ),
            (
                "deploy@git.example.com:soa",
                "deploy@git.example.com:soa",
                &[],
                None,
                true,
            ),
            (
                "user:pw@host:soa.git",
                "user@host:soa.git",
                &["pw"],
                None,
                true,
            ),
            (
                "github.com:org/repo.git",
                "github.com:org/repo.git",
                &[],
                None,
                true,
            ),
            (
                "https://gitlab.example.com/org/x.git?private_token=glpat-S3&ref=main",
                "https://gitlab.example.com/org/x.git?private_token=***&ref=main",
                &["glpat-S3"],
                None,
                false,
            ),
            (
                "https://host/x?access_token=AT1#frag",
                "https://host/x?access_token=***#frag",
                &["AT1"],
                None,
                false,
            ),
            (
                "https://host/x?token=T%2F1&a=b",
                "https://host/x?token=***&a=b",
                &["T%2F1", "T/1"],
                None,
                false,
            ),
            (
                "https://host:8443/x",
                "https://host:8443/x",
                &[],
                Some(8443),
                false,
            ),
            (
                "https://[::1]:8443/x",
                "https://[::1]:8443/x",
                &[],
                Some(8443),
                false,
            ),
            (
                "git://127.0.0.1:9418/x",
                "git://127.0.0.1:9418/x",
                &[],
                Some(9418),
                false,
            ),
            ("file:///srv/soa", "file:///srv/soa", &[], None, false),
            ("/srv/soa", "/srv/soa", &[], None, false),
            ("./soa", "./soa", &[], None, false),
        ];
        for (url, shown, secrets, port, ssh) in cases {
            let parsed = GitUrl::parse(url);
            assert_eq!(parsed.display, *shown, "{url}");
            assert_eq!(parsed.port, *port, "{url}");
            assert_eq!(parsed.ssh, *ssh, "{url}");
            for secret in *secrets {
                assert!(
                    parsed.secrets.iter().any(|s| s == secret),
                    "{url}: {secret}"
                );
                assert!(!parsed.display.contains(secret), "{url}: {secret}");
                let message = format!("failed to reach {url}: bad password {secret}");
                let scrubbed = parsed.scrub(url, &message, None);
                assert!(!scrubbed.contains(secret), "{url}: {scrubbed}");
            }
            assert!(!cache_name(&parsed.display).contains(REDACTED));
        }
    }

    #[test]
    fn cache_names_are_readable_and_distinct() {
        let a = cache_name("https://github.com/org/soa-configs.git");
        let b = cache_name("https://github.com/other/soa-configs.git");
        assert!(a.starts_with("soa-configs-"), "{a}");
        assert_ne!(a, b);
        assert!(cache_name("file:///").starts_with("repo-"));
        assert!(cache_name("https://h/..").starts_with("repo-"));
    }
}
