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
    format!("{}-{}", sanitise_name(service), sanitise_name(instance))
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
