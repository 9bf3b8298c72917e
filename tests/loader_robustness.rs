//! The soa-configs loader never panics, whatever a file holds: it returns a
//! value or an error with a position. (A panic would take every service down,
//! not just the broken one.)

use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use flink_gitops::config::{ServiceState, Settings};
use flink_gitops::source::{ServiceFiles, Snapshot};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn load_and_convert(text: &str) {
    load_and_convert_with(text, &Limits::default());
}

fn load_and_convert_with(text: &str, limits: &Limits) {
    if let Ok(Some(node)) = load(text, limits) {
        let _ = to_value(&node, "");
    }
}

fn snapshot(files: &[(&str, String)]) -> Snapshot {
    let mut services: BTreeMap<String, ServiceFiles> = BTreeMap::new();
    for (path, text) in files {
        let (service, file) = path.split_once('/').expect("service/file");
        services
            .entry(service.to_owned())
            .or_default()
            .files
            .insert(file.to_owned(), text.clone().into_bytes());
    }
    Snapshot {
        root: "soa".into(),
        revision: None,
        services,
    }
}

/// Issue 15: a file of a few MB under every other limit, one flow list of
/// millions of items, took ~500 MB to load. Over `max_nodes` it fails its
/// service with a position, and the other services load; at the limit it
/// loads.
#[test]
fn a_file_over_max_nodes_fails_only_its_service_with_a_position() {
    let settings = Settings::default();
    let limit = settings.limits.max_nodes;
    // A mapping, the instance, a mapping, a key and the list: 5 nodes.
    let instance = |items: usize| format!("main:\n  args: [{}]\n", vec!["x"; items].join(", "));
    let at = instance(limit - 5);
    let snap = snapshot(&[
        ("at/flink-c1.yaml", at),
        ("over/flink-c1.yaml", instance(limit + 1)),
        ("good/flink-c1.yaml", "main: {a: 1}\n".to_owned()),
    ]);
    let set = flink_gitops::config::load(&snap, &settings, "c1", None);
    for service in ["at", "good"] {
        match &set.services[service] {
            ServiceState::Loaded(config) => assert_eq!(config.instances.len(), 1),
            ServiceState::Unknown(d) => panic!("{service}: {d:?}"),
        }
    }
    match &set.services["over"] {
        ServiceState::Unknown(diagnostics) => {
            // Item number `limit - 5` (from 0) of the list is node `limit + 1`.
            let column = 10 + 3 * (limit - 5);
            assert_eq!(
                diagnostics[0].to_string(),
                format!(
                    "soa/over/flink-c1.yaml:2:{column}: over: invalid YAML: the file has {} \
                     nodes by here, over {limit} nodes (limit max_nodes)",
                    limit + 1
                )
            );
        }
        ServiceState::Loaded(_) => panic!("over must be unknown"),
    }
}

/// Fragments that steer random input towards YAML's tricky corners.
fn yaml_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a: ",
        "- ",
        "&x ",
        "*x",
        "<<: ",
        "{",
        "}",
        "[",
        "]",
        ", ",
        "? ",
        ": ",
        "!!int ",
        "!",
        "|\n  ",
        ">\n  ",
        "'",
        "\"",
        "\\u",
        "#",
        "\n",
        "  ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "010",
        "1:30",
        ".inf",
        "2024-01-01",
        "~",
        "yes",
        "=",
        "é",
        "🚀",
        "\t",
        "\r\n",
        "0x",
        "1e3",
        "&a [*a]",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            load_and_convert(text);
        }
    }

    #[test]
    fn yaml_shaped_input_never_panics(text in yaml_like()) {
        load_and_convert(&text);
    }

    #[test]
    fn yaml_shaped_input_never_panics_under_a_small_max_nodes(
        text in yaml_like(),
        max_nodes in 1usize..16,
    ) {
        load_and_convert_with(&text, &Limits { max_nodes, ..Limits::default() });
    }
}
