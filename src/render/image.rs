//! Which image (git sha) an instance runs: PaaSTA's `deployments.json` v2
//! lookup, `docker_url` override and git-sha extraction, with PaaSTA's
//! distinction between "not deployed yet" (a skip) and a broken entry (a
//! failure).

use crate::config::deployments::DockerImage;
use crate::config::{InstanceConfig, ServiceConfig};
use crate::value::Value;

/// The outcome of looking up an instance's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    /// The git sha that goes into the `paasta.yelp.com/git_sha` label.
    GitSha(String),
    /// Not deployed (yet): PaaSTA's `NoDeploymentsAvailable`.
    NotDeployed(String),
    /// A broken entry that fails the instance.
    Invalid(String),
}

/// Looks up the image of `instance` in `cluster`, as PaaSTA's
/// `load_flink_instance_config(load_deployments=True)` then `get_docker_url`.
#[must_use]
pub fn lookup(
    service: &ServiceConfig,
    instance: &InstanceConfig,
    cluster: &str,
    system_registry: Option<&str>,
) -> ImageLookup {
    let Some(deployments) = &service.deployments else {
        return ImageLookup::NotDeployed(format!(
            "{} was not found. 'generate_deployments_for_service --service {}' must be run first",
            service.deployments_path, service.name
        ));
    };
    let Some(v2) = &deployments.v2 else {
        return ImageLookup::Invalid(format!(
            "{} has no \"v2\" section",
            service.deployments_path
        ));
    };
    let branch = format!("{cluster}.{}", instance.instance);
    let deploy_group = match &instance.deploy_group {
        None => branch.clone(),
        Some(Value::Null) => {
            return ImageLookup::NotDeployed(format!(
                "{} not deployed to None. Has mark-for-deployment been run?",
                service.name
            ));
        }
        Some(Value::Str(template)) => {
            match interpolate(template, cluster, &instance.instance, &service.name) {
                Ok(group) => group,
                Err(message) => return ImageLookup::Invalid(message),
            }
        }
        Some(other) => {
            return ImageLookup::Invalid(format!(
                "deploy_group must be a string, found {}",
                crate::value::python_json::dumps(other)
            ));
        }
    };
    let not_deployed = || {
        ImageLookup::NotDeployed(format!(
            "{} not deployed to {deploy_group}. Has mark-for-deployment been run?",
            service.name
        ))
    };
    let Some(group) = v2.deployments.get(&deploy_group) else {
        return not_deployed();
    };
    let missing = |key: &str| {
        ImageLookup::Invalid(format!(
            "The configuration for service {} in deploy group {deploy_group} does not contain '{key}' metadata.",
            service.name
        ))
    };
    let Some(docker_image) = &group.docker_image else {
        return missing("docker_image");
    };
    if !group.has_git_sha {
        return missing("git_sha");
    }
    let control = format!("{}:{branch}", service.name);
    if !v2.controls.contains(&control) {
        return ImageLookup::NotDeployed(format!(
            "{} not configured for {control}. Has mark-for-deployment been run?",
            service.name
        ));
    }
    let docker_url = match &instance.docker_url {
        Some(Value::Str(url)) => url.to_string(),
        Some(other) => {
            return ImageLookup::Invalid(format!(
                "docker_url must be a string, found {}",
                crate::value::python_json::dumps(other)
            ));
        }
        None => {
            let image = match docker_image {
                DockerImage::Str(image) if !image.is_empty() => image,
                DockerImage::Str(_) | DockerImage::Null => {
                    return ImageLookup::Invalid(
                        "Docker url not available because there is no docker_image".to_owned(),
                    );
                }
                DockerImage::Other(json) => {
                    return ImageLookup::Invalid(format!(
                        "docker_image must be a string, found {json}"
                    ));
                }
            };
            let Some(registry) = service.docker_registry.as_deref().or(system_registry) else {
                return ImageLookup::Invalid(
                    "no docker_registry: set it in flink-gitops.yaml or the service's service.yaml"
                        .to_owned(),
                );
            };
            format!("{registry}/{image}")
        }
    };
    ImageLookup::GitSha(git_sha_from_docker_url(&docker_url))
}

/// Python `str.format(cluster=…, instance=…, service=…)` for the forms a
/// deploy group uses: `{name}` fields and `{{`/`}}` escapes.
fn interpolate(
    template: &str,
    cluster: &str,
    instance: &str,
    service: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => field.push(c),
                        None => {
                            return Err(format!(
                                "deploy_group `{template}`: single '{{' encountered in format string"
                            ));
                        }
                    }
                }
                match field.as_str() {
                    "cluster" => out.push_str(cluster),
                    "instance" => out.push_str(instance),
                    "service" => out.push_str(service),
                    other => {
                        return Err(format!(
                            "deploy_group `{template}` uses the unknown field `{{{other}}}`; only {{cluster}}, {{instance}} and {{service}} exist"
                        ));
                    }
                }
            }
            '}' => {
                return Err(format!(
                    "deploy_group `{template}`: single '}}' encountered in format string"
                ));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// PaaSTA's `get_git_sha_from_dockerurl(url, long=True)`.
#[must_use]
pub fn git_sha_from_docker_url(docker_url: &str) -> String {
    if docker_url.contains(":paasta-") {
        return paasta_tag_sha(docker_url).unwrap_or_default().to_owned();
    }
    let last_segment = docker_url.rsplit('/').next().unwrap_or(docker_url);
    let last_part = last_segment.rsplit('-').next().unwrap_or(last_segment);
    last_part.rsplit(':').next().unwrap_or(last_part).to_owned()
}

/// `.*:paasta-(?P<git_sha>[A-Za-z0-9]+)`: the greedy `.*` prefers the last
/// `:paasta-` followed by at least one alphanumeric character.
fn paasta_tag_sha(docker_url: &str) -> Option<&str> {
    let mut end = docker_url.len();
    while let Some(position) = docker_url[..end].rfind(":paasta-") {
        let start = position + ":paasta-".len();
        let after = &docker_url[start..];
        let len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        if len > 0 {
            return Some(&after[..len]);
        }
        end = position;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_sha_extraction_matches_paasta() {
        let cases = [
            (
                "registry.localhost:443/services-whatever:paasta-aaaabbbbccccdddd",
                "aaaabbbbccccdddd",
            ),
            (
                "registry.localhost:443/services-whatever:foobar-aaaabbbbccccdddd",
                "aaaabbbbccccdddd",
            ),
            (
                "registry.localhost:443/toolbox-something-something:1.2.3",
                "1.2.3",
            ),
            (
                "docker-paasta.yelpcorp.com:443/services-example_service:paasta-0123456789abcdef0123456789abcdef01234567-20240101T000000",
                "0123456789abcdef0123456789abcdef01234567",
            ),
            ("docker.io/busybox", "busybox"),
        ];
        for (url, sha) in cases {
            assert_eq!(git_sha_from_docker_url(url), sha, "{url}");
        }
    }

    #[test]
    fn when_the_paasta_tag_has_no_sha_the_fallback_is_not_used() {
        // `:paasta-` present but nothing alphanumeric after it: PaaSTA's regex
        // does not match and the sha is empty.
        assert_eq!(git_sha_from_docker_url("r/x:paasta-"), "");
    }

    #[test]
    fn deploy_group_interpolation_is_python_format() {
        assert_eq!(
            interpolate("{cluster}.everything", "c", "i", "s"),
            Ok("c.everything".into())
        );
        assert_eq!(
            interpolate("{service}-{instance}", "c", "i", "s"),
            Ok("s-i".into())
        );
        assert_eq!(
            interpolate("{{literal}}", "c", "i", "s"),
            Ok("{literal}".into())
        );
        assert!(interpolate("{region}.x", "c", "i", "s").is_err());
        assert!(interpolate("open{", "c", "i", "s").is_err());
        assert!(interpolate("close}", "c", "i", "s").is_err());
    }
}
