//! Names, labels and annotations exactly as PaaSTA writes them.

/// PaaSTA's `sanitise_kubernetes_name`: every `_` becomes `--`; a leading
/// `--` becomes `underscore-`; then lowercase. Nothing else is changed.
#[must_use]
pub fn sanitise_name(name: &str) -> String {
    let replaced = name.replace('_', "--");
    let replaced = match replaced.strip_prefix("--") {
        Some(rest) => format!("underscore-{rest}"),
        None => replaced,
    };
    replaced.to_lowercase()
}

/// The custom resource's `metadata.name`: `<service>-<instance>`, each sanitised.
#[must_use]
pub fn resource_name(service: &str, instance: &str) -> String {
    // Names are nearly always ASCII: one pass into one string. Anything
    // else takes `sanitise_name`, whose `to_lowercase` knows Unicode's
    // context rules (a final sigma), as Python's `lower` does.
    if !(service.is_ascii() && instance.is_ascii()) {
        return format!("{}-{}", sanitise_name(service), sanitise_name(instance));
    }
    let mut name = String::with_capacity(service.len() + instance.len() + 24);
    push_sanitised_ascii(&mut name, service);
    name.push('-');
    push_sanitised_ascii(&mut name, instance);
    name
}

/// [`sanitise_name`] of an ASCII `name`, appended to `out`.
fn push_sanitised_ascii(out: &mut String, name: &str) {
    // After `_` becomes `--`, the text starts with `--` when the name starts
    // with `_`, `--` or `-_`; those two characters become `underscore-`.
    let rest = match name.as_bytes() {
        [b'_', ..] => {
            out.push_str("underscore-");
            &name[1..]
        }
        [b'-', b'-', ..] => {
            out.push_str("underscore-");
            &name[2..]
        }
        [b'-', b'_', ..] => {
            out.push_str("underscore--");
            &name[2..]
        }
        _ => name,
    };
    for byte in rest.bytes() {
        if byte == b'_' {
            out.push_str("--");
        } else {
            out.push(char::from(byte.to_ascii_lowercase()));
        }
    }
}

/// PaaSTA's Flink ingress root, used when `dashboard_links` has no entry.
#[must_use]
pub fn default_dashboard_url(cluster: &str) -> String {
    format!("http://flink.eks.{cluster}.paasta:31080/")
}

pub const LABEL_SERVICE: &str = "paasta.yelp.com/service";
pub const LABEL_INSTANCE: &str = "paasta.yelp.com/instance";
pub const LABEL_CLUSTER: &str = "paasta.yelp.com/cluster";
pub const LABEL_CONFIG_SHA: &str = "paasta.yelp.com/config_sha";
pub const LABEL_GIT_SHA: &str = "paasta.yelp.com/git_sha";
pub const LABEL_EKS: &str = "paasta.yelp.com/eks";
pub const LABEL_OWNER: &str = "yelp.com/owner";
pub const LABEL_LEGACY_SERVICE: &str = "yelp.com/paasta_service";
pub const LABEL_LEGACY_INSTANCE: &str = "yelp.com/paasta_instance";
pub const LABEL_LEGACY_CLUSTER: &str = "yelp.com/paasta_cluster";
pub const LABEL_LEGACY_CONFIG_SHA: &str = "yelp.com/paasta_config_sha";
pub const ANNOTATION_DASHBOARD_BASE_URL: &str = "paasta.yelp.com/dashboard_base_url";
pub const ANNOTATION_DESIRED_STATE: &str = "paasta.yelp.com/desired_state";
pub const ANNOTATION_LEGACY_DESIRED_STATE: &str = "yelp.com/desired_state";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_matches_paasta_vectors() {
        let cases = [
            ("my_service", "my--service"),
            ("MY_SERVICE", "my--service"),
            ("myservice", "myservice"),
            ("_shared", "underscore-shared"),
            ("_shared_thing", "underscore-shared--thing"),
            ("a__b", "a----b"),
            ("__x", "underscore---x"),
            ("service.with.dots", "service.with.dots"),
            ("Foo-Bar", "foo-bar"),
            ("x_", "x--"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitise_name(input), expected, "{input}");
        }
    }

    /// The one-pass name is the two-step one, for every short name over
    /// the characters that matter (`_`, `-`, letters of both cases) and for
    /// non-ASCII names.
    #[test]
    fn resource_names_in_one_pass_are_sanitised_names_joined() {
        let alphabet = ['_', '-', 'a', 'Z', '0'];
        let mut names = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|name| alphabet.iter().map(move |c| format!("{name}{c}")))
                .collect();
            names.extend(longer);
        }
        names.sort();
        names.dedup();
        for service in &names {
            for instance in ["main", "_x", "--y", "-_Z", "ΣΑΣ_Σ"] {
                assert_eq!(
                    resource_name(service, instance),
                    format!("{}-{}", sanitise_name(service), sanitise_name(instance)),
                    "{service:?} {instance:?}"
                );
            }
        }
    }

    #[test]
    fn resource_names_match_paasta_vectors() {
        assert_eq!(
            resource_name("kurupt_fm", "radio_station"),
            "kurupt--fm-radio--station"
        );
        assert_eq!(
            resource_name("example_service", "main"),
            "example--service-main"
        );
        assert_eq!(resource_name("my-svc", "canary_2"), "my-svc-canary--2");
        assert_eq!(resource_name("_shared", "main"), "underscore-shared-main");
        assert_eq!(resource_name("kurupt", "fm"), "kurupt-fm");
    }
}
