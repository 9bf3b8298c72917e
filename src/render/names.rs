//! Kubernetes' rules for object names and label values, checked before a
//! resource leaves the renderer so that a bad name fails its instance with
//! the rule spelled out, instead of a 422 from the API server later.

const MAX_NAME: usize = 253;
const MAX_LABEL_VALUE: usize = 63;

/// Checks the object name `name` (the `resource_name` of the service and
/// instance) and the label values PaaSTA derives from the service, instance,
/// cluster and git sha.
pub fn check_named(
    name: &str,
    service: &str,
    instance: &str,
    cluster: &str,
    git_sha: &str,
) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "the resource name `{name}` is {} characters; Kubernetes allows at most {MAX_NAME} (DNS-1123 subdomain)",
            name.len()
        ));
    }
    if !is_dns1123_subdomain(name) {
        return Err(format!(
            "the resource name `{name}` is not a DNS-1123 subdomain: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit"
        ));
    }
    for (what, value) in [
        ("service", service),
        ("instance", instance),
        ("cluster", cluster),
        ("git sha", git_sha),
    ] {
        if let Err(rule) = check_label_value(value) {
            return Err(format!(
                "the {what} `{value}` cannot be a label value: {rule}"
            ));
        }
    }
    Ok(())
}

fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_LABEL_VALUE {
        return Err(format!(
            "it is {} characters and label values are at most {MAX_LABEL_VALUE}",
            value.len()
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Ok(());
    }
    let valid_inner = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_inner
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return Err(
            "label values must begin and end with a letter or digit and contain only letters, digits, `-`, `_` and `.`"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::meta::resource_name;

    fn check(service: &str, instance: &str, cluster: &str, git_sha: &str) -> Result<(), String> {
        check_named(
            &resource_name(service, instance),
            service,
            instance,
            cluster,
            git_sha,
        )
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn ordinary_names_pass() {
        assert_eq!(check("ad_events", "canary_2", "pnw-prod", SHA), Ok(()));
        assert_eq!(check("svc.with.dots", "main", "c", SHA), Ok(()));
    }

    #[test]
    fn leading_underscore_service_is_an_invalid_label_value() {
        let err = check("_shared", "main", "c", SHA).expect_err("label");
        assert!(err.contains("label value"), "{err}");
    }

    #[test]
    fn overlong_and_non_dns_names_fail_with_the_rule() {
        let long = "a".repeat(300);
        assert!(
            check(&long, "main", "c", SHA)
                .expect_err("long")
                .contains("253")
        );
        assert!(
            check("svc", "bad!", "c", SHA)
                .expect_err("chars")
                .contains("DNS-1123")
        );
        assert!(
            check("svc", "x_", "c", SHA)
                .expect_err("trailing dash")
                .contains("DNS-1123")
        );
        let long_label = "b".repeat(64);
        assert!(
            check(&long_label, "main", "c", SHA)
                .expect_err("label")
                .contains("63")
        );
    }
}
