//! The daemon's sections of `flink-gitops.yaml`: where soa-configs come from
//! (`source`), the HTTP server and push hooks (`server`, `hooks`), and leader
//! election (`leader_election`). Every key has a default; secrets are only
//! ever named by file or environment variable, never written inline.

use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// Durations written as text: `90s`, `30m`, `1h 30m`.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration like 30s: {e}")))
}

/// `source`: a git repository, or a directory synced by other means.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// A git repository, fetched every `poll_interval` and on push hooks.
    #[serde(default)]
    pub git: Option<GitSettings>,
    /// A directory (PaaSTA's `/nail/etc/services`), watched for changes.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How often to fetch (git) or rescan (dir); jittered by ±10%.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Quiet period after a file event before the directory is rescanned.
    #[serde(default = "default_debounce", deserialize_with = "duration")]
    pub debounce: Duration,
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings {
            git: None,
            dir: None,
            poll_interval: default_poll_interval(),
            debounce: default_debounce(),
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_debounce() -> Duration {
    Duration::from_millis(500)
}

/// `source.git`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSettings {
    /// `https://…`, `ssh://…`, `git@host:path`, `git://…` or `file://…`.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Where the bare clone lives between restarts.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    #[serde(default)]
    pub credentials: GitCredentials,
    /// Accept a new head that does not descend from the last one (a
    /// force-push). Off by default: the last good snapshot is kept and the
    /// source reported unhealthy until an operator decides.
    #[serde(default)]
    pub accept_force_push: bool,
    /// The longest a fetch may take, connecting included: a remote that
    /// stops answering fails the fetch instead of holding the source.
    #[serde(default = "default_git_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_git_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_branch() -> String {
    "master".to_owned()
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from("/var/cache/flink-gitops")
}

/// `source.git.credentials`: where secrets are read from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GitCredentials {
    /// https: user name for basic auth (a token's user for GitHub/GitLab).
    #[serde(default)]
    pub username: Option<String>,
    /// https: a file holding the token or password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// https: an environment variable holding the token or password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// ssh: the private key file.
    #[serde(default)]
    pub ssh_key_file: Option<PathBuf>,
    /// ssh: known_hosts to check the server's key against. Required for an
    /// ssh URL unless `insecure_skip_host_key_check` is set.
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// ssh without `known_hosts_file`: accept any host key, with a warning
    /// at each connection. Anyone on the path to the server could then
    /// serve the soa-configs that get deployed.
    #[serde(default)]
    pub insecure_skip_host_key_check: bool,
}

/// Durations that must be longer than zero: a zero timeout would close
/// every connection before its first byte.
fn positive_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = duration(deserializer)?;
    if value.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(value)
}

/// `server`: the HTTP endpoints and the limits that keep them answering
/// when clients misbehave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ServerSettingsFile")]
pub struct ServerSettings {
    /// `/healthz`, `/readyz`, `/metrics`, `/status`, and `/hooks/push`
    /// unless `hooks_listen` is set.
    pub listen: String,
    /// When set, `/hooks/push` is served here and only here, so that the
    /// hook port can be exposed to the internet while probes, metrics and
    /// status stay on `listen`.
    pub hooks_listen: Option<String>,
    /// A client must send a whole request head within this long of
    /// connecting, and of its previous response on a kept-alive connection
    /// (so this is also the idle keep-alive timeout).
    pub header_timeout: Duration,
    /// A request must be read (body included) and answered within this long.
    pub request_timeout: Duration,
    /// Open connections per listener; further connections are closed at once.
    pub max_connections: usize,
}

/// `server` as written: checked as a whole before it becomes
/// [`ServerSettings`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSettingsFile {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    hooks_listen: Option<String>,
    #[serde(
        default = "default_header_timeout",
        deserialize_with = "positive_duration"
    )]
    header_timeout: Duration,
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "positive_duration"
    )]
    request_timeout: Duration,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
}

impl TryFrom<ServerSettingsFile> for ServerSettings {
    type Error = String;

    fn try_from(file: ServerSettingsFile) -> Result<Self, Self::Error> {
        if file.max_connections == 0 {
            return Err("max_connections must be at least 1".to_owned());
        }
        if file.hooks_listen.as_deref() == Some(file.listen.as_str()) {
            return Err(format!(
                "hooks_listen must differ from listen (both are {})",
                file.listen
            ));
        }
        Ok(ServerSettings {
            listen: file.listen,
            hooks_listen: file.hooks_listen,
            header_timeout: file.header_timeout,
            request_timeout: file.request_timeout,
            max_connections: file.max_connections,
        })
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".to_owned()
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    256
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            hooks_listen: None,
            header_timeout: default_header_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

/// `hooks`: the push-hook receiver. A hook is only accepted with a valid
/// signature from one of the configured secrets; with none configured the
/// endpoint answers 404.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// GitHub: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub github_secret_file: Option<PathBuf>,
    /// GitLab: `X-Gitlab-Token: <token>`.
    #[serde(default)]
    pub gitlab_token_file: Option<PathBuf>,
    /// Anything else: `X-Flink-Gitops-Signature: sha256=<HMAC-SHA256 of the body>`.
    #[serde(default)]
    pub generic_secret_file: Option<PathBuf>,
    /// Larger bodies are refused with 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// At most one hook-triggered cycle per this long: hooks inside the
    /// interval are accepted and merged into one trigger at its end, so
    /// replayed or bursty deliveries cannot drive a fetch per request.
    /// `0s` triggers on every accepted hook.
    #[serde(default = "default_min_interval", deserialize_with = "duration")]
    pub min_interval: Duration,
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_min_interval() -> Duration {
    Duration::from_secs(1)
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            github_secret_file: None,
            gitlab_token_file: None,
            generic_secret_file: None,
            max_body_bytes: default_max_body_bytes(),
            min_interval: default_min_interval(),
        }
    }
}

/// `leader_election`: one writer among the replicas, on a
/// `coordination.k8s.io/v1` Lease.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderSettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// Default: the namespace the pod runs in (`POD_NAMESPACE`), else `default`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A standby takes over this long after the leader's last renewal.
    #[serde(default = "default_lease_duration", deserialize_with = "duration")]
    pub lease_duration: Duration,
    /// How often the leader renews and a standby retries.
    #[serde(default = "default_retry_period", deserialize_with = "duration")]
    pub retry_period: Duration,
    /// Default: `POD_NAME`, else the host name.
    #[serde(default)]
    pub identity: Option<String>,
}

fn default_true() -> bool {
    true
}
fn default_lease_name() -> String {
    "flink-gitops".to_owned()
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
fn default_retry_period() -> Duration {
    Duration::from_secs(2)
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            enabled: true,
            lease_name: default_lease_name(),
            namespace: None,
            lease_duration: default_lease_duration(),
            retry_period: default_retry_period(),
            identity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn server_and_hook_limits_have_defaults() {
        let settings = Settings::parse("", "f.yaml").expect("defaults");
        assert_eq!(settings.server, ServerSettings::default());
        assert_eq!(settings.server.listen, "0.0.0.0:8080");
        assert_eq!(settings.server.hooks_listen, None);
        assert_eq!(settings.server.header_timeout, Duration::from_secs(10));
        assert_eq!(settings.server.request_timeout, Duration::from_secs(30));
        assert_eq!(settings.server.max_connections, 256);
        assert_eq!(settings.hooks.min_interval, Duration::from_secs(1));
    }

    #[test]
    fn server_and_hook_limits_are_configurable() {
        let text = "server:\n  listen: 127.0.0.1:9000\n  hooks_listen: 0.0.0.0:9001\n  header_timeout: 2s\n  request_timeout: 1m\n  max_connections: 16\nhooks: {min_interval: 0s}\n";
        let settings = Settings::parse(text, "f.yaml").expect("settings");
        assert_eq!(
            settings.server,
            ServerSettings {
                listen: "127.0.0.1:9000".to_owned(),
                hooks_listen: Some("0.0.0.0:9001".to_owned()),
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(60),
                max_connections: 16,
            }
        );
        assert_eq!(settings.hooks.min_interval, Duration::ZERO);
    }

    #[test]
    fn bad_server_limits_are_refused_naming_the_key() {
        for (text, needle) in [
            ("server: {header_timeout: 0s}\n", "header_timeout"),
            ("server: {request_timeout: 0s}\n", "request_timeout"),
            ("server: {request_timeout: soon}\n", "request_timeout"),
            ("server: {max_connections: 0}\n", "max_connections"),
            (
                "server: {listen: 0.0.0.0:8080, hooks_listen: 0.0.0.0:8080}\n",
                "hooks_listen",
            ),
            ("server: {max_conections: 3}\n", "max_conections"),
            ("hooks: {min_interval: often}\n", "min_interval"),
        ] {
            let err = Settings::parse(text, "f.yaml").expect_err(text);
            let shown = err.to_string();
            assert!(shown.contains(needle), "{text}: {shown}");
        }
    }

    #[test]
    fn git_timeout_defaults_to_a_minute_and_reads_durations() {
        let settings: GitSettings =
            serde_json::from_str(r#"{"url": "https://h/x"}"#).expect("parse");
        assert_eq!(settings.timeout, Duration::from_secs(60));
        assert!(!settings.credentials.insecure_skip_host_key_check);
        let settings: GitSettings = serde_json::from_str(
            r#"{"url": "ssh://h/x", "timeout": "1m 30s",
                "credentials": {"insecure_skip_host_key_check": true}}"#,
        )
        .expect("parse");
        assert_eq!(settings.timeout, Duration::from_secs(90));
        assert!(settings.credentials.insecure_skip_host_key_check);
        let error = serde_json::from_str::<GitSettings>(r#"{"url": "x", "timeout": "soon"}"#)
            .expect_err("not a duration");
        assert!(
            error.to_string().contains("`soon` is not a duration"),
            "{error}"
        );
    }
}
