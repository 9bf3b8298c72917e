//! Plan rules, one test each.

use super::*;
use crate::config::Diagnostic;
use crate::render::{FailedInstance, SkippedInstance};
use serde_json::json;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn resource(service: &str, instance: &str, spec: Json, config_sha: &str) -> DesiredResource {
    let name = meta::resource_name(service, instance);
    let object = json!({
        "apiVersion": "yelp.com/v1alpha1",
        "kind": "Flink",
        "metadata": {
            "name": name,
            "namespace": "paasta-flinks",
            "labels": {
                "paasta.yelp.com/service": service,
                "paasta.yelp.com/instance": instance,
                "paasta.yelp.com/cluster": "c1",
                "paasta.yelp.com/config_sha": config_sha,
                "yelp.com/paasta_config_sha": config_sha,
                "paasta.yelp.com/git_sha": SHA,
            },
            "annotations": {
                "paasta.yelp.com/desired_state": "running",
                "yelp.com/desired_state": "running",
            }
        },
        "spec": spec,
    });
    DesiredResource {
        service: service.into(),
        instance: instance.into(),
        file_prefix: "flink".into(),
        api_version: "yelp.com/v1alpha1".into(),
        kind: "Flink".into(),
        plural: "flinks".into(),
        namespace: "paasta-flinks".into(),
        name,
        config_sha: config_sha.into(),
        git_sha: SHA.into(),
        object: Value::from_json(&object),
        source: "soa/svc/flink-c1.yaml:1".into(),
    }
}

fn desired(resources: Vec<DesiredResource>) -> DesiredSet {
    DesiredSet {
        cluster: "c1".into(),
        resources,
        ..DesiredSet::default()
    }
}

/// What the API server hands back for an applied intent: server fields,
/// status, and integral floats as integers.
fn live_from(resource: &DesiredResource, edit: impl FnOnce(&mut Json)) -> LiveObject {
    let mut object = resource.object.to_json().expect("json");
    object["metadata"]["resourceVersion"] = json!("42");
    object["metadata"]["uid"] = json!("u-1");
    object["metadata"]["generation"] = json!(3);
    object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    object["status"] = json!({"state": "running"});
    edit(&mut object);
    LiveObject {
        kind: "Flink".into(),
        plural: "flinks".into(),
        api_version: "yelp.com/v1alpha1".into(),
        object,
    }
}

fn only(plan: &Plan) -> &PlanEntry {
    assert_eq!(plan.entries.len(), 1, "{:#?}", plan.entries);
    &plan.entries[0]
}

#[test]
fn missing_object_is_created_with_the_intent_as_body() {
    let r = resource("svc", "main", json!({"x": 1}), "configaaaa1111");
    let plan = plan(&desired(vec![r.clone()]), &[], &Policy::default());
    let entry = only(&plan);
    assert_eq!(entry.action, Action::Create);
    let apply = entry.apply.as_ref().expect("apply");
    assert_eq!(apply.body, r.object.to_json().expect("json"));
    assert_eq!(apply.name, "svc-main");
}

#[test]
fn in_sync_object_with_server_fields_and_foreign_metadata_is_unchanged() {
    let r = resource(
        "svc",
        "main",
        json!({"x": 2.0, "nested": {"a": [1, 2]}}),
        "configaaaa1111",
    );
    let live = live_from(&r, |o| {
        o["spec"]["x"] = json!(2);
        o["metadata"]["annotations"]["flink.yelp.com/dashboard_url"] = json!("http://x/");
        o["metadata"]["labels"]["other"] = json!("y");
        o["metadata"]["managedFields"] = json!([{"manager": "flink-operator", "operation": "Update",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:flink.yelp.com/dashboard_url": {}}}}}]);
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert_eq!(only(&plan).action, Action::Unchanged);
    assert_eq!(plan.writes().count(), 0);
}

#[test]
fn hand_edit_is_drift_and_keeps_a_live_stop() {
    let r = resource("svc", "main", json!({"x": 1}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["spec"]["x"] = json!(5);
        o["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
        o["metadata"]["annotations"]["yelp.com/desired_state"] = json!("stop");
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    let entry = only(&plan);
    assert_eq!(
        entry.action,
        Action::Update(vec![Reason::Drift(FieldPath::of(&["spec", "x"]))])
    );
    let body = &entry.apply.as_ref().expect("apply").body;
    assert_eq!(body["spec"]["x"], json!(1));
    assert_eq!(
        body["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("stop")
    );
}

#[test]
fn a_live_stop_alone_is_not_drift() {
    let r = resource("svc", "main", json!({"x": 1}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert_eq!(only(&plan).action, Action::Unchanged);
}

#[test]
fn config_change_resets_desired_state_to_running() {
    let old = resource("svc", "main", json!({"x": 1}), "configaaaa1111");
    let new = resource("svc", "main", json!({"x": 2}), "configbbbb2222");
    let live = live_from(&old, |o| {
        o["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
    });
    let plan = plan(&desired(vec![new]), &[live], &Policy::default());
    let entry = only(&plan);
    let Action::Update(reasons) = &entry.action else {
        panic!("{:?}", entry.action)
    };
    assert!(reasons.contains(&Reason::ConfigShaChanged {
        from: Some("configaaaa1111".into()),
        to: "configbbbb2222".into()
    }));
    assert!(reasons.contains(&Reason::Changed(FieldPath::of(&["spec", "x"]))));
    let body = &entry.apply.as_ref().expect("apply").body;
    assert_eq!(
        body["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("running")
    );
}

#[test]
fn new_image_is_a_git_sha_change() {
    let r = resource("svc", "main", json!({}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["metadata"]["labels"]["paasta.yelp.com/git_sha"] = json!("ffff")
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert_eq!(
        only(&plan).action,
        Action::Update(vec![Reason::GitShaChanged {
            from: Some("ffff".into()),
            to: SHA.into()
        }])
    );
}

#[test]
fn a_field_we_own_that_git_dropped_is_a_change() {
    let r = resource(
        "svc",
        "main",
        json!({"flink_conf": {"a": "1"}}),
        "configaaaa1111",
    );
    let live = live_from(&r, |o| {
        o["spec"]["flink_conf"]["b"] = json!("2");
        o["metadata"]["managedFields"] = json!([{"manager": "flink-gitops", "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:flink_conf": {"f:a": {}, "f:b": {}}}}}]);
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert_eq!(
        only(&plan).action,
        Action::Update(vec![Reason::FieldRemoved(FieldPath::of(&[
            "spec",
            "flink_conf",
            "b"
        ]))])
    );
}

#[test]
fn a_field_someone_else_owns_is_not_ours_to_remove() {
    let r = resource("svc", "main", json!({"a": 1}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["spec"]["extra"] = json!(1);
        o["metadata"]["managedFields"] = json!([{"manager": "kubectl-edit", "operation": "Update",
            "fieldsV1": {"f:spec": {"f:extra": {}}}}]);
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert_eq!(only(&plan).action, Action::Unchanged);
}

#[test]
fn paasta_owned_objects_in_sync_need_no_write_and_take_over_on_change() {
    let paasta_fields = json!([{"manager": "OpenAPI-Generator", "operation": "Update",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:paasta.yelp.com/service": {}}},
                     "f:spec": {"f:a": {}, "f:gone": {}}}}]);
    let r = resource("svc", "main", json!({"a": 1, "gone": 2}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["metadata"]["managedFields"] = paasta_fields.clone()
    });
    let in_sync = plan(
        &desired(vec![r.clone()]),
        std::slice::from_ref(&live),
        &Policy::default(),
    );
    assert_eq!(only(&in_sync).action, Action::Unchanged);

    let without_gone = resource("svc", "main", json!({"a": 1}), "configbbbb2222");
    let changed = plan(&desired(vec![without_gone]), &[live], &Policy::default());
    let entry = only(&changed);
    let Action::Update(reasons) = &entry.action else {
        panic!("{:?}", entry.action)
    };
    assert!(reasons.contains(&Reason::FieldRemoved(FieldPath::of(&["spec", "gone"]))));
    assert_eq!(
        entry.apply.as_ref().expect("apply").takeover_from,
        ["OpenAPI-Generator"]
    );
}

#[test]
fn unlabelled_object_with_our_name_is_left_alone() {
    let r = resource("svc", "main", json!({}), "configaaaa1111");
    let live = live_from(&r, |o| o["metadata"]["labels"] = json!({}));
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    assert!(matches!(only(&plan).action, Action::Failed(_)));
    assert_eq!(plan.writes().count(), 0);
}

#[test]
fn skips_failures_blocked_services_and_orphans() {
    let kept = resource("svc", "main", json!({}), "configaaaa1111");
    let mut set = desired(vec![kept.clone()]);
    set.skipped.push(SkippedInstance {
        service: "svc".into(),
        instance: "new".into(),
        file_prefix: "flink".into(),
        reason: "not deployed".into(),
    });
    set.failed.push(FailedInstance {
        service: "svc".into(),
        instance: "broken".into(),
        file_prefix: "flink".into(),
        diagnostic: Diagnostic::file("f.yaml", "bad"),
    });
    set.unknown_services.insert(
        "lost".into(),
        vec![Diagnostic::file("lost/flink-c1.yaml", "invalid YAML")],
    );
    let live_of = |service: &str, instance: &str, cluster: &str| {
        live_from(
            &resource(service, instance, json!({}), "configaaaa1111"),
            |o| {
                o["metadata"]["labels"]["paasta.yelp.com/cluster"] = json!(cluster);
            },
        )
    };
    let live = vec![
        live_from(&kept, |_| {}),
        live_of("svc", "new", "c1"),
        live_of("svc", "broken", "c1"),
        live_of("lost", "main", "c1"),
        live_of("svc", "removed", "c1"),
        live_of("gone", "main", "c1"),
        live_of("gone", "elsewhere", "c2"),
    ];
    let plan = plan(&set, &live, &Policy::default());
    let actions: Vec<(String, &str)> = plan
        .entries
        .iter()
        .map(|e| (format!("{}.{}", e.service, e.instance), e.action.name()))
        .collect();
    assert_eq!(
        actions,
        [
            ("lost.main".to_owned(), "blocked"),
            ("svc.broken".to_owned(), "failed"),
            ("svc.main".to_owned(), "unchanged"),
            ("svc.new".to_owned(), "skip"),
        ]
    );
    let orphans: Vec<&str> = plan.orphans.iter().map(|o| o.subject.as_str()).collect();
    assert_eq!(
        orphans,
        [
            "Flink/paasta-flinks/gone-main",
            "Flink/paasta-flinks/svc-removed"
        ]
    );
}

/// A live object named like `resource` but labelled with another service
/// (a case-only rename of the service folder: `svc2` → `Svc2`).
fn relabelled(resource: &DesiredResource, service: &str) -> LiveObject {
    live_from(resource, |o| {
        o["metadata"]["labels"]["paasta.yelp.com/service"] = json!(service);
    })
}

#[test]
fn a_desired_object_is_never_an_orphan_whatever_its_labels_say() {
    let renamed = resource("Svc2", "main", json!({}), "configaaaa1111");
    assert_eq!(renamed.name, "svc2-main");
    let live = relabelled(&renamed, "svc2");
    let plan = plan(&desired(vec![renamed]), &[live], &Policy::default());
    assert!(plan.orphans.is_empty(), "{:?}", plan.orphans);
    let entry = only(&plan);
    assert_eq!(entry.service, "Svc2");
    let Action::Update(reasons) = &entry.action else {
        panic!("{:?}", entry.action)
    };
    assert_eq!(
        reasons,
        &[Reason::Drift(FieldPath::of(&[
            "metadata",
            "labels",
            "paasta.yelp.com/service"
        ]))],
        "the labels are corrected by the apply"
    );
}

#[test]
fn an_object_of_an_unknown_service_rendered_by_another_is_blocked_not_taken() {
    let mut set = desired(vec![resource("Svc2", "main", json!({}), "configaaaa1111")]);
    set.unknown_services.insert(
        "svc2".into(),
        vec![Diagnostic::file("svc2/flink-c1.yaml", "invalid YAML")],
    );
    let live = relabelled(&set.resources[0], "svc2");
    let plan = plan(&set, &[live], &Policy::default());
    let entry = only(&plan);
    assert_eq!(entry.action.name(), "blocked");
    assert!(
        entry
            .action
            .message()
            .is_some_and(|m| m.contains("belongs to service svc2, which failed to load")),
        "{:?}",
        entry.action
    );
    assert_eq!(plan.writes().count(), 0);
    assert!(plan.orphans.is_empty());
}

#[test]
fn objects_listed_twice_get_one_step() {
    let kept = resource("svc", "main", json!({}), "configaaaa1111");
    let gone = live_from(
        &resource("svc", "gone", json!({}), "configaaaa1111"),
        |_| {},
    );
    let live = vec![live_from(&kept, |_| {}), gone.clone(), gone];
    let plan = plan(&desired(vec![kept]), &live, &Policy::default());
    assert_eq!(plan.orphans.len(), 1, "{:?}", plan.orphans);
    assert!(plan.objects_with_several_steps().is_empty());
}

#[test]
fn two_resources_for_one_object_are_both_failed() {
    let a = resource("svc", "main", json!({}), "configaaaa1111");
    let mut b = resource("svc", "main", json!({"other": 1}), "configbbbb2222");
    b.instance = "main2".into();
    let plan = plan(&desired(vec![a, b]), &[], &Policy::default());
    assert_eq!(plan.writes().count(), 0);
    assert!(plan.entries.iter().all(|e| e.action.name() == "failed"));
}

#[test]
fn unclaimed_objects_are_unmanaged_never_orphans_unless_desired() {
    let kept = resource("svc", "main", json!({}), "configaaaa1111");
    let eks_gone = live_from(&resource("svc", "eks", json!({}), "configaaaa1111"), |o| {
        o["metadata"]["labels"]["paasta.yelp.com/eks"] = json!("True");
    });
    // Written by our `flinkeks` kind before it left the configuration.
    let eks_wanted = live_from(&kept, |o| {
        o["metadata"]["labels"]["paasta.yelp.com/eks"] = json!("True");
        o["metadata"]["managedFields"] = json!([{"manager": "flink-gitops", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:paasta.yelp.com/eks": {}}}}}]);
    });
    let inventory = Inventory {
        managed: Vec::new(),
        unmanaged: vec![eks_gone, eks_wanted],
    };
    let plan = plan_inventory(&desired(vec![kept]), &inventory, &Policy::default());
    assert!(plan.orphans.is_empty());
    let unmanaged: Vec<&str> = plan.unmanaged.iter().map(|u| u.subject.as_str()).collect();
    assert_eq!(unmanaged, ["Flink/paasta-flinks/svc-eks"]);
    assert!(plan.unmanaged[0].message().contains("never pruned"));
    // The desired one is planned by its resource, which drops the eks label.
    assert_eq!(only(&plan).action.name(), "update");
}

#[test]
fn an_orphan_mark_on_a_wanted_object_is_dropped_and_nothing_else_written() {
    let r = resource("svc", "main", json!({"x": 1}), "configaaaa1111");
    let live = live_from(&r, |o| {
        o["metadata"]["annotations"][prune::ANNOTATION_ORPHANED_SINCE] =
            json!("2026-11-26T12:00:00Z");
        o["metadata"]["annotations"]["paasta.yelp.com/desired_state"] = json!("stop");
        o["metadata"]["managedFields"] = json!([{"manager": "flink-gitops-prune", "operation": "Apply",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:flink-gitops/orphaned-since": {}}}}}]);
    });
    let plan = plan(&desired(vec![r]), &[live], &Policy::default());
    let entry = only(&plan);
    assert_eq!(
        entry.action,
        Action::Update(vec![Reason::OrphanMarkCleared])
    );
    let request = entry.apply.as_ref().expect("apply");
    assert!(request.clear_orphan_mark && !request.cancel_prune);
    assert!(request.only_clears_orphan_mark(&entry.action));
    assert_eq!(
        request.body["metadata"]["annotations"]["paasta.yelp.com/desired_state"],
        json!("stop"),
        "a paasta stop survives"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Service names that collide once lowercased, instance names, eks-ness.
    fn object() -> impl Strategy<Value = (String, String, bool, bool)> {
        (
            prop::sample::select(vec!["svc", "Svc", "SVC", "other", "a_b", "a--b"]),
            prop::sample::select(vec!["main", "canary", "x"]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(s, i, eks, managed)| (s.to_owned(), i.to_owned(), eks, managed))
    }

    proptest! {
        #[test]
        fn never_a_prune_of_a_desired_name_nor_two_steps_for_one_object(
            wanted in prop::collection::vec(object(), 0..8),
            listed in prop::collection::vec(object(), 0..12),
        ) {
            let resources: Vec<DesiredResource> = wanted
                .iter()
                .map(|(s, i, _, _)| resource(s, i, json!({}), "configaaaa1111"))
                .collect();
            let desired_names: HashSet<String> =
                resources.iter().map(|r| r.name.clone()).collect();
            let mut inventory = Inventory::default();
            for (s, i, eks, managed) in &listed {
                let object = live_from(&resource(s, i, json!({}), "configbbbb2222"), |o| {
                    if *eks {
                        o["metadata"]["labels"]["paasta.yelp.com/eks"] = json!("True");
                    }
                });
                if *managed {
                    inventory.managed.push(object);
                } else {
                    inventory.unmanaged.push(object);
                }
            }
            let plan = plan_inventory(&desired(resources), &inventory, &Policy::default());
            for orphan in &plan.orphans {
                prop_assert!(!desired_names.contains(orphan.object.name()), "{}", orphan.subject);
            }
            for unmanaged in &plan.unmanaged {
                let name = unmanaged.subject.rsplit('/').next().unwrap_or_default();
                prop_assert!(!desired_names.contains(name), "{}", unmanaged.subject);
            }
            prop_assert!(plan.objects_with_several_steps().is_empty());
            let writes: Vec<&str> = plan.writes().map(|e| e.subject.as_str()).collect();
            let unique: HashSet<&str> = writes.iter().copied().collect();
            prop_assert_eq!(writes.len(), unique.len());
        }
    }
}
