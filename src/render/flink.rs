//! The PaaSTA `Flink` custom resource, built exactly as PaaSTA's
//! `format_custom_resource` builds it, including the `config_sha` hash over
//! the resource as built so far.

use super::meta::{self, resource_name};
use crate::config::{KindSettings, Settings};
use crate::value::{Map, Value, python_json};
use md5::{Digest, Md5};

/// What the resource builder needs to know about one instance.
pub struct ResourceInput<'a> {
    pub service: &'a str,
    pub instance: &'a str,
    pub cluster: &'a str,
    pub kind: &'a KindSettings,
    pub settings: &'a Settings,
    pub spec: &'a Value,
    pub git_sha: &'a str,
}

/// A built resource and its hash.
pub struct BuiltResource {
    pub name: String,
    pub config_sha: String,
    pub object: Value,
}

/// Builds the resource. The hash covers apiVersion, kind, name, namespace,
/// the identity/owner/eks labels, the dashboard annotation and the spec; the
/// config_sha/git_sha labels and desired_state annotations are added after.
#[must_use]
pub fn build(input: &ResourceInput<'_>) -> BuiltResource {
    build_with_spec(input, input.spec.clone())
}

/// [`build`] with the spec moved in rather than copied (`input.spec` is not
/// read): rendering a configuration it owns needs no copy of each spec.
#[must_use]
pub fn build_with_spec(input: &ResourceInput<'_>, spec: Value) -> BuiltResource {
    let ResourceInput {
        service,
        instance,
        cluster,
        kind,
        settings,
        spec: _,
        git_sha,
    } = *input;
    let name = resource_name(service, instance);
    // Room for every label the resource ends with: the six below, eks and
    // owner, and the three sha labels added after hashing.
    let mut labels = Map::with_capacity(11);
    for (key, value) in [
        (meta::LABEL_LEGACY_SERVICE, service),
        (meta::LABEL_LEGACY_INSTANCE, instance),
        (meta::LABEL_LEGACY_CLUSTER, cluster),
        (meta::LABEL_SERVICE, service),
        (meta::LABEL_INSTANCE, instance),
        (meta::LABEL_CLUSTER, cluster),
    ] {
        labels.insert(key, Value::str(value));
    }
    if kind.is_eks() {
        // Python's `str(True)`.
        labels.insert(meta::LABEL_EKS, Value::str("True"));
    }
    let lower_kind = kind.kind.to_lowercase();
    if let Some(owner) = settings
        .cr_owners
        .get(&lower_kind)
        .filter(|o| !o.is_empty())
    {
        labels.insert(meta::LABEL_OWNER, Value::str(owner));
    }
    // The dashboard URL and the two desired_state annotations.
    let mut annotations = Map::with_capacity(3);
    if lower_kind == "flink" {
        annotations.insert(
            meta::ANNOTATION_DASHBOARD_BASE_URL,
            Value::str(dashboard_base_url(settings, cluster)),
        );
    }
    let mut object = resource_value(kind, &name, labels, annotations, spec);
    let config_sha = config_hash(&object);
    if let Some(metadata) = object
        .as_map_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_map_mut)
    {
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_map_mut) {
            annotations.insert(meta::ANNOTATION_LEGACY_DESIRED_STATE, Value::str("running"));
            annotations.insert(meta::ANNOTATION_DESIRED_STATE, Value::str("running"));
        }
        if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_map_mut) {
            labels.insert(meta::LABEL_LEGACY_CONFIG_SHA, Value::str(&config_sha));
            labels.insert(meta::LABEL_CONFIG_SHA, Value::str(&config_sha));
            labels.insert(meta::LABEL_GIT_SHA, Value::str(git_sha));
        }
    }
    BuiltResource {
        name,
        config_sha,
        object,
    }
}

fn resource_value(
    kind: &KindSettings,
    name: &str,
    labels: Map,
    annotations: Map,
    spec: Value,
) -> Value {
    let metadata = Map::from_unsorted([
        ("annotations", Value::Map(annotations)),
        ("labels", Value::Map(labels)),
        ("name", Value::str(name)),
        ("namespace", Value::str(kind.namespace())),
    ]);
    Value::Map(Map::from_unsorted([
        ("apiVersion", Value::str(kind.api_version())),
        ("kind", Value::str(kind.kind.as_str())),
        ("metadata", Value::Map(metadata)),
        ("spec", spec),
    ]))
}

/// `dashboard_links[cluster]["Flink"]`, else PaaSTA's ingress root; always
/// ending in `/`.
fn dashboard_base_url(settings: &Settings, cluster: &str) -> String {
    let mut url = settings
        .dashboard_links
        .get(cluster)
        .and_then(|links| links.get("Flink"))
        .cloned()
        .unwrap_or_else(|| meta::default_dashboard_url(cluster));
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

/// PaaSTA's `get_config_hash`: `"config"` + the first 8 hex digits of the MD5
/// of `json.dumps(resource, sort_keys=True)`.
#[must_use]
pub fn config_hash(resource: &Value) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    thread_local! {
        // One buffer per thread, reused for every resource it hashes.
        static JSON: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let digest = JSON.with_borrow_mut(|json| {
        json.clear();
        python_json::dumps_into(json, resource);
        Md5::digest(json.as_bytes())
    });
    let mut hash = String::with_capacity(14);
    hash.push_str("config");
    for byte in &digest[..4] {
        hash.push(char::from(HEX[usize::from(byte >> 4)]));
        hash.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::convert::to_value;
    use crate::config::yaml::{Limits, load};

    fn value(yaml: &str) -> Value {
        let node = load(yaml, &Limits::default()).expect("yaml").expect("doc");
        to_value(&node, "").expect("value")
    }

    #[test]
    fn config_hash_vectors_from_paasta() {
        assert_eq!(config_hash(&value("{}")), "config99914b93");
        assert_eq!(config_hash(&value("{a: 1}")), "config42b7b4f2");
        assert_eq!(config_hash(&value("{a: 1.0}")), "config4b893796");
        assert_eq!(config_hash(&value("{b: 1, a: [1, 2]}")), "configbd2ae43f");
        assert_eq!(config_hash(&value("{é: ü}")), "configc4f2a430");
        assert_eq!(config_hash(&value("{a: true, b: null}")), "config2dc2e58e");
        assert_eq!(config_hash(&value("{spec: {cpus: 1}}")), "config7b722529");
        assert_eq!(config_hash(&value("{spec: {cpus: 1.0}}")), "config4cfa1558");
    }

    fn seed_spec() -> Value {
        value(concat!(
            "job_type: stateful\ncheckpoint_interval_ms: 60000\ndeploy_group: prod.everything\n",
            "taskmanager: {cpus: 2, mem: 4096, instances: 3}\n",
            "checkpoint_path: s3://bucket/checkpoints/\nsavepoint_path: s3://bucket/savepoints/\n",
            "flink_conf: {state.backend.type: rocksdb, execution.checkpointing.interval: '60000'}\n",
        ))
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn seed_example_with_owner_matches_paasta() {
        let settings = Settings {
            cr_owners: [("flink".to_owned(), "stream-processing".to_owned())].into(),
            ..Settings::default()
        };
        let spec = seed_spec();
        let built = build(&ResourceInput {
            service: "example_service",
            instance: "main",
            cluster: "pnw-prod",
            kind: &settings.kinds[0],
            settings: &settings,
            spec: &spec,
            git_sha: SHA,
        });
        assert_eq!(built.name, "example--service-main");
        assert_eq!(built.config_sha, "config76426282");
        let labels = built
            .object
            .pointer(&["metadata", "labels"])
            .expect("labels");
        assert_eq!(
            labels.pointer(&[meta::LABEL_GIT_SHA]),
            Some(&Value::str(SHA))
        );
        assert_eq!(
            labels.pointer(&[meta::LABEL_OWNER]),
            Some(&Value::str("stream-processing"))
        );
        let annotations = built
            .object
            .pointer(&["metadata", "annotations"])
            .expect("annotations");
        assert_eq!(
            annotations.pointer(&[meta::ANNOTATION_DESIRED_STATE]),
            Some(&Value::str("running"))
        );
    }

    #[test]
    fn seed_example_eks_with_dashboard_link_matches_paasta() {
        let settings = Settings {
            dashboard_links: [(
                "pnw-prod".to_owned(),
                [(
                    "Flink".to_owned(),
                    "http://flink.pnw-prod.example".to_owned(),
                )]
                .into(),
            )]
            .into(),
            ..Settings::default()
        };
        let kind = KindSettings::for_prefix("flinkeks");
        let spec = seed_spec();
        let built = build(&ResourceInput {
            service: "example_service",
            instance: "main",
            cluster: "pnw-prod",
            kind: &kind,
            settings: &settings,
            spec: &spec,
            git_sha: SHA,
        });
        assert_eq!(built.config_sha, "configb843ff9a");
        assert_eq!(
            built.object.pointer(&[
                "metadata",
                "annotations",
                meta::ANNOTATION_DASHBOARD_BASE_URL
            ]),
            Some(&Value::str("http://flink.pnw-prod.example/"))
        );
        assert_eq!(
            built
                .object
                .pointer(&["metadata", "labels", meta::LABEL_EKS]),
            Some(&Value::str("True"))
        );
    }

    #[test]
    fn format_custom_resource_vector() {
        let settings = Settings {
            cr_owners: [("flink".to_owned(), "stream-processing".to_owned())].into(),
            ..Settings::default()
        };
        let kind = KindSettings {
            version: "v1".to_owned(),
            kind: "flink".to_owned(),
            ..KindSettings::for_prefix("flink")
        };
        let spec = value("{dummy: conf}");
        let built = build(&ResourceInput {
            service: "kurupt_fm",
            instance: "radio_station",
            cluster: "mycluster",
            kind: &kind,
            settings: &settings,
            spec: &spec,
            git_sha: "gitsha",
        });
        assert_eq!(built.config_sha, "configf0b54df4");
        assert_eq!(built.name, "kurupt--fm-radio--station");
    }
}
