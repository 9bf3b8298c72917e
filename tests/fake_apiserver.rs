//! Tests of the fake kube-apiserver itself, mostly through kube's own client.

mod support;

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};
use support::fake_apiserver::{
    FLINK_NAMESPACE, FLINK_PLURAL, FakeApiServer, Fault, GcAction, GcEvent, JOB_PLURAL,
    job_complete, job_failed, job_running, owner_reference,
};

const NS: &str = FLINK_NAMESPACE;
const FLINKS: &str = "/apis/yelp.com/v1alpha1/namespaces/paasta-flinks/flinks";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";

/// A kube client as the cluster admin: these tests are about the fake's
/// API behaviour, not the reconciler's permissions (tests/rbac.rs).
async fn client(server: &FakeApiServer) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = server.write_admin_kubeconfig(dir.path());
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("config from kubeconfig");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

fn flink_resource() -> ApiResource {
    ApiResource {
        group: "yelp.com".into(),
        version: "v1alpha1".into(),
        api_version: "yelp.com/v1alpha1".into(),
        kind: "Flink".into(),
        plural: "flinks".into(),
    }
}

async fn flinks(server: &FakeApiServer) -> Api<DynamicObject> {
    Api::namespaced_with(client(server).await, NS, &flink_resource())
}

fn flink(name: &str, spec: Json) -> Json {
    json!({
        "apiVersion": "yelp.com/v1alpha1",
        "kind": "Flink",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
}

fn to_json(object: &DynamicObject) -> Json {
    serde_json::to_value(object).expect("serialise")
}

fn rv(object: &Json) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_owned()
}

fn entry<'a>(object: &'a Json, manager: &str, operation: &str) -> Option<&'a Json> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

async fn apply(
    api: &Api<DynamicObject>,
    manager: &str,
    config: &Json,
    force: bool,
) -> Result<Json, kube::Error> {
    let mut params = PatchParams::apply(manager);
    if force {
        params = params.force();
    }
    let name = config["metadata"]["name"].as_str().expect("name");
    api.patch(name, &params, &Patch::Apply(config))
        .await
        .map(|o| to_json(&o))
}

fn api_status(result: Result<Json, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_creates_and_identical_reapply_is_a_no_op() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let mut config = flink("a", json!({"replicas": 2, "jobs": ["x", "y"]}));
    config["metadata"]["labels"] = json!({"app": "a"});

    let created = apply(&api, "flink-gitops", &config, true)
        .await
        .expect("create via apply");
    assert_eq!(
        server
            .requests()
            .last()
            .map(|r| r.method.clone())
            .as_deref(),
        Some("PATCH")
    );
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(
        created["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        created["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let own = entry(&created, "flink-gitops", "Apply").expect("apply entry");
    assert_eq!(own["apiVersion"], "yelp.com/v1alpha1");
    assert_eq!(own["fieldsType"], "FieldsV1");
    assert_eq!(
        own["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {".": {}, "f:jobs": {}, "f:replicas": {}},
        })
    );

    let again = apply(&api, "flink-gitops", &config, true)
        .await
        .expect("re-apply");
    assert_eq!(
        rv(&again),
        rv(&created),
        "identical apply must not bump resourceVersion"
    );
    assert_eq!(again, created);
    assert_eq!(server.resource_version().to_string(), rv(&created));
}

#[tokio::test]
async fn apply_removes_a_field_it_no_longer_applies() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    apply(
        &api,
        "flink-gitops",
        &flink("a", json!({"keep": 1, "drop": {"deep": true}})),
        true,
    )
    .await
    .expect("first apply");
    let after = apply(&api, "flink-gitops", &flink("a", json!({"keep": 1})), true)
        .await
        .expect("second apply");
    assert_eq!(after["spec"], json!({"keep": 1}));
    assert_eq!(after["metadata"]["generation"], 2);
    assert_eq!(
        entry(&after, "flink-gitops", "Apply").expect("entry")["fieldsV1"],
        json!({"f:spec": {".": {}, "f:keep": {}}})
    );
}

#[tokio::test]
async fn same_value_is_shared_and_survives_one_owner_letting_go() {
    let server = FakeApiServer::with_flinks();
    server.insert_as("OpenAPI-Generator", flink("a", json!({"x": 1, "y": 2})));
    let api = flinks(&server).await;

    let shared = apply(&api, "flink-gitops", &flink("a", json!({"x": 1})), false)
        .await
        .expect("same value: no conflict without force");
    let paasta = entry(&shared, "OpenAPI-Generator", "Update").expect("paasta entry");
    assert!(
        paasta["fieldsV1"]["f:spec"].get("f:x").is_some(),
        "PaaSTA keeps x"
    );
    let ours = entry(&shared, "flink-gitops", "Apply").expect("our entry");
    assert!(
        ours["fieldsV1"]["f:spec"].get("f:x").is_some(),
        "we share x"
    );

    let after = apply(&api, "flink-gitops", &flink("a", json!({"z": 3})), false)
        .await
        .expect("stop applying x");
    assert_eq!(
        after["spec"],
        json!({"x": 1, "y": 2, "z": 3}),
        "x is still PaaSTA's"
    );
}

#[tokio::test]
async fn conflict_without_force_and_takeover_with_force() {
    let server = FakeApiServer::with_flinks();
    let seeded = server.insert_as("OpenAPI-Generator", flink("a", json!({"x": 1, "y": 2})));
    let time = entry(&seeded, "OpenAPI-Generator", "Update").expect("entry")["time"]
        .as_str()
        .expect("time")
        .to_owned();
    let api = flinks(&server).await;

    let status = api_status(apply(&api, "flink-gitops", &flink("a", json!({"x": 5})), false).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        format!(
            "Apply failed with 1 conflict: conflict with \"OpenAPI-Generator\" using yelp.com/v1alpha1 at {time}: .spec.x"
        )
    );
    let raw = server.raw("GET", &format!("{FLINKS}/a"), None, None).json();
    assert_eq!(raw["spec"]["x"], 1, "nothing written on conflict");

    let two = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=flink-gitops"),
        Some(APPLY),
        Some(&flink("a", json!({"x": 5, "y": 6})).to_string()),
    );
    assert_eq!(two.status, 409);
    let body = two.json();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(
        body["message"],
        format!(
            "Apply failed with 2 conflicts: conflicts with \"OpenAPI-Generator\" using yelp.com/v1alpha1 at {time}:\n- .spec.x\n- .spec.y"
        )
    );
    assert_eq!(
        body["details"]["causes"][0],
        json!({
            "type": "FieldManagerConflict",
            "message": format!("conflict with \"OpenAPI-Generator\" using yelp.com/v1alpha1 at {time}"),
            "field": ".spec.x",
        })
    );

    let forced = apply(&api, "flink-gitops", &flink("a", json!({"x": 5})), true)
        .await
        .expect("force takes over");
    assert_eq!(forced["spec"], json!({"x": 5, "y": 2}));
    let paasta = entry(&forced, "OpenAPI-Generator", "Update").expect("paasta keeps y");
    assert_eq!(paasta["fieldsV1"]["f:spec"], json!({".": {}, "f:y": {}}));
}

#[tokio::test]
async fn dry_run_persists_nothing() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let created = apply(&api, "flink-gitops", &flink("a", json!({"x": 1})), true)
        .await
        .expect("apply");
    let before = server.resource_version();

    let params = PatchParams::apply("flink-gitops").force().dry_run();
    let preview = api
        .patch("a", &params, &Patch::Apply(flink("a", json!({"x": 2}))))
        .await
        .expect("dry-run apply");
    assert_eq!(preview.data["spec"]["x"], 2, "the answer shows the result");
    assert_eq!(
        server.object("flinks", NS, "a").expect("stored")["spec"]["x"],
        1
    );
    assert_eq!(server.resource_version(), before);

    let new = api
        .patch("b", &params, &Patch::Apply(flink("b", json!({"x": 2}))))
        .await
        .expect("dry-run create");
    assert!(new.metadata.resource_version.is_none());
    assert!(server.object("flinks", NS, "b").is_none());

    let dry_delete = api
        .delete(
            "a",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await;
    assert!(dry_delete.is_ok());
    assert_eq!(server.object("flinks", NS, "a").expect("still there"), {
        let mut c = created.clone();
        c["metadata"]["resourceVersion"] = json!(rv(&created));
        c
    });
    assert!(server.requests().iter().any(|r| r.is_dry_run()));
    assert_eq!(
        server.writes().len(),
        1,
        "only the first apply counts as a write"
    );
}

#[tokio::test]
async fn list_with_label_selectors_and_pagination() {
    let server = FakeApiServer::with_flinks();
    for (name, labels) in [
        ("e", json!({"app": "a", "env": "prod"})),
        ("d", json!({"app": "b", "env": "dev"})),
        ("c", json!({"app": "c"})),
        ("b", json!({"app": "a", "team": "x"})),
        ("a", json!({})),
    ] {
        let mut object = flink(name, json!({"n": name}));
        object["metadata"]["labels"] = labels;
        server.insert_as("OpenAPI-Generator", object);
    }
    let api = flinks(&server).await;
    let names = |list: &kube::core::ObjectList<DynamicObject>| {
        list.items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    for (selector, expected) in [
        ("", vec!["a", "b", "c", "d", "e"]),
        ("app", vec!["b", "c", "d", "e"]),
        ("!app", vec!["a"]),
        ("app=a", vec!["b", "e"]),
        ("app==a", vec!["b", "e"]),
        ("app!=a", vec!["a", "c", "d"]),
        ("app in (a,b)", vec!["b", "d", "e"]),
        ("app notin (a, b)", vec!["a", "c"]),
        ("app=a,env", vec!["e"]),
        ("app in (a),!team", vec!["e"]),
    ] {
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list");
        assert_eq!(names(&list), expected, "selector {selector:?}");
    }
    let raw = server.raw(
        "GET",
        &format!("{FLINKS}?labelSelector=app%20in%20%28a%2Cc%29"),
        None,
        None,
    );
    assert_eq!(raw.json()["items"].as_array().map(Vec::len), Some(3));
    let plus = server.raw(
        "GET",
        &format!("{FLINKS}?labelSelector=app+notin+(a)"),
        None,
        None,
    );
    assert_eq!(plus.json()["items"].as_array().map(Vec::len), Some(3));
    let bad = server.raw(
        "GET",
        &format!("{FLINKS}?labelSelector=app%20in%20a"),
        None,
        None,
    );
    assert_eq!(bad.status, 400);

    let list = server.raw("GET", FLINKS, None, None).json();
    assert_eq!(list["apiVersion"], "yelp.com/v1alpha1");
    assert_eq!(list["kind"], "FlinkList");
    assert_eq!(
        list["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    assert_eq!(list["items"][0]["kind"], "Flink");
    assert_eq!(list["items"][0]["apiVersion"], "yelp.com/v1alpha1");

    let mut seen = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.expect("page");
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(names(&page));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                assert!(page.metadata.remaining_item_count.is_some());
                params = ListParams::default().limit(2).continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec!["a", "b", "c", "d", "e"]);

    let selected = api
        .list(&ListParams::default().labels("app").limit(3))
        .await
        .expect("limited");
    assert_eq!(names(&selected), vec!["b", "c", "d"]);
    assert!(selected.metadata.continue_.is_some());
    assert!(selected.metadata.remaining_item_count.is_none());
    let other_ns = server.raw(
        "GET",
        "/apis/yelp.com/v1alpha1/namespaces/elsewhere/flinks",
        None,
        None,
    );
    assert_eq!(other_ns.json()["items"], json!([]));
    let all = server.raw(
        "GET",
        "/apis/yelp.com/v1alpha1/flinks?fieldSelector=metadata.name%3Dc",
        None,
        None,
    );
    assert_eq!(all.json()["items"][0]["metadata"]["name"], "c");
}

#[test]
fn integral_floats_are_served_as_integers() {
    let server = FakeApiServer::with_flinks();
    let body = r#"{"apiVersion":"yelp.com/v1alpha1","kind":"Flink","metadata":{"name":"a"},"spec":{"p":2.0,"q":2.5,"r":[1.0,-3.0],"s":1e3}}"#;
    let created = server.raw("POST", FLINKS, Some("application/json"), Some(body));
    assert_eq!(created.status, 201);
    let served = server.raw("GET", &format!("{FLINKS}/a"), None, None);
    assert!(served.body.contains(r#""p":2,"#), "{}", served.body);
    assert!(served.body.contains(r#""q":2.5"#));
    assert!(served.body.contains(r#""r":[1,-3]"#));
    assert!(served.body.contains(r#""s":1000"#));
    let spec = &server.object("flinks", NS, "a").expect("object")["spec"];
    assert!(spec["p"].is_i64());

    // 2.0 and 2 are the same value: no change, no new resourceVersion.
    let before = server.resource_version();
    let same = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=flink-gitops"),
        Some(MERGE),
        Some(r#"{"spec":{"p":2}}"#),
    );
    assert_eq!(same.status, 200);
    assert_eq!(server.resource_version(), before);
}

#[tokio::test]
async fn managed_fields_rewrite_lets_apply_remove_a_paasta_field() {
    let server = FakeApiServer::with_flinks();
    server.insert_as(
        "OpenAPI-Generator",
        flink("a", json!({"keep": 1, "gone": 2})),
    );
    let api = flinks(&server).await;

    let first = apply(&api, "flink-gitops", &flink("a", json!({"keep": 1})), true)
        .await
        .expect("apply");
    assert_eq!(first["spec"]["gone"], 2, "PaaSTA still owns gone");

    // Fold PaaSTA's Update entry into our Apply entry.
    let entries = first["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .clone();
    let paasta = entries
        .iter()
        .find(|e| e["manager"] == "OpenAPI-Generator")
        .expect("paasta");
    let mut ours = paasta.clone();
    ours["manager"] = json!("flink-gitops");
    ours["operation"] = json!("Apply");
    let patch = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv(&first)},
        {"op": "replace", "path": "/metadata/managedFields", "value": [ours]},
    ]);
    let rewritten = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=flink-gitops"),
        Some(JSON_PATCH),
        Some(&patch.to_string()),
    );
    assert_eq!(rewritten.status, 200, "{}", rewritten.body);
    let rewritten = rewritten.json();
    assert_eq!(
        rewritten["metadata"]["managedFields"],
        json!([ours]),
        "entries set verbatim"
    );
    assert_ne!(rv(&rewritten), rv(&first));
    assert_eq!(
        rewritten["metadata"]["generation"],
        first["metadata"]["generation"]
    );

    let stale = server.raw(
        "PATCH",
        &format!("{FLINKS}/a"),
        Some(JSON_PATCH),
        Some(&patch.to_string()),
    );
    assert_eq!(
        stale.status, 422,
        "the test op sees the new resourceVersion"
    );

    let after = apply(&api, "flink-gitops", &flink("a", json!({"keep": 1})), false)
        .await
        .expect("apply");
    assert_eq!(
        after["spec"],
        json!({"keep": 1}),
        "formerly PaaSTA-owned field removed"
    );
    assert_eq!(
        after["metadata"]["managedFields"].as_array().map(Vec::len),
        Some(1),
        "{}",
        after["metadata"]["managedFields"]
    );
}

#[tokio::test]
async fn generation_counts_spec_changes_only() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let a = apply(&api, "m", &flink("a", json!({"x": 1})), true)
        .await
        .expect("create");
    assert_eq!(a["metadata"]["generation"], 1);

    let mut labelled = flink("a", json!({"x": 1}));
    labelled["metadata"]["labels"] = json!({"l": "v"});
    let b = apply(&api, "m", &labelled, true).await.expect("label");
    assert_eq!(b["metadata"]["generation"], 1);
    assert_ne!(rv(&b), rv(&a));

    server.set_status("flinks", NS, "a", json!({"state": "running"}));
    let c = server.object("flinks", NS, "a").expect("object");
    assert_eq!(c["metadata"]["generation"], 1);
    assert_ne!(rv(&c), rv(&b));
    assert_eq!(c["status"]["state"], "running");

    let mut changed = labelled.clone();
    changed["spec"]["x"] = json!(2);
    changed["status"] = json!({"state": "ignored"});
    let d = apply(&api, "m", &changed, true).await.expect("spec change");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["status"]["state"], "running", "status is a subresource");
    assert!(
        entry(&d, "m", "Apply").expect("entry")["fieldsV1"]
            .get("f:status")
            .is_none()
    );
}

#[tokio::test]
async fn crud_through_kube() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let object: DynamicObject =
        serde_json::from_value(flink("a", json!({"x": 1}))).expect("object");
    let pp = PostParams {
        field_manager: Some("creator".into()),
        ..PostParams::default()
    };
    let created = api.create(&pp, &object).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let created_json = to_json(&created);
    assert_eq!(
        entry(&created_json, "creator", "Update").expect("entry")["fieldsV1"]["f:spec"],
        json!({".": {}, "f:x": {}})
    );
    let again = api.create(&pp, &object).await;
    let status = api_status(again.map(|o| to_json(&o)));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "flinks.yelp.com \"a\" already exists");

    let mut stale = created.clone();
    stale.metadata.resource_version = Some("1".into());
    stale.data["spec"]["x"] = json!(2);
    let status = api_status(
        api.replace("a", &PostParams::default(), &stale)
            .await
            .map(|o| to_json(&o)),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    let mut fresh = created.clone();
    fresh.data["spec"]["x"] = json!(2);
    let replaced = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        entry(&to_json(&replaced), "unknown", "Update").expect("user-agent-less manager")["fieldsV1"]
            ["f:spec"],
        json!({"f:x": {}})
    );

    let got = api.get("a").await.expect("get");
    assert_eq!(got.data["spec"]["x"], 2);
    let deleted = api
        .delete("a", &DeleteParams::foreground())
        .await
        .expect("delete");
    let status = deleted.right().expect("a Status");
    assert_eq!(status.details.map(|d| d.name), Some("a".to_owned()));
    let status = api_status(api.get("a").await.map(|o| to_json(&o)));
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "flinks.yelp.com \"a\" not found");
    assert!(api.delete("a", &DeleteParams::default()).await.is_err());
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count(),
        2
    );
    let delete_body = server
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("delete")
        .body;
    assert_eq!(delete_body["propagationPolicy"], "Foreground");
}

#[test]
fn field_manager_defaults_to_the_user_agent_prefix() {
    let server = FakeApiServer::with_flinks();
    let body = flink("a", json!({"x": 1})).to_string();
    let created = server.raw_as(
        "OpenAPI-Generator/12.0.0/python",
        "POST",
        FLINKS,
        Some("application/json"),
        Some(&body),
    );
    assert_eq!(created.status, 201);
    let object = created.json();
    assert!(
        entry(&object, "OpenAPI-Generator", "Update").is_some(),
        "{object}"
    );
    let request = &server.requests()[0];
    assert_eq!(
        request.user_agent.as_deref(),
        Some("OpenAPI-Generator/12.0.0/python")
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.body["metadata"]["name"], "a");
}

#[test]
fn merge_patch_moves_ownership_and_apply_then_conflicts_with_it() {
    let server = FakeApiServer::with_flinks();
    server.apply_as("flink-gitops", flink("a", json!({"x": 1, "y": 1})));
    let edited = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=kubectl-edit"),
        Some(MERGE),
        Some(r#"{"spec":{"x":9,"y":null}}"#),
    );
    assert_eq!(edited.status, 200);
    let edited = edited.json();
    assert_eq!(edited["spec"], json!({"x": 9}));
    assert_eq!(
        entry(&edited, "kubectl-edit", "Update").expect("edit entry")["fieldsV1"],
        json!({"f:spec": {"f:x": {}}})
    );
    assert_eq!(
        entry(&edited, "flink-gitops", "Apply").expect("keeps the spec map node")["fieldsV1"],
        json!({"f:spec": {}}),
        "it lost both leaves"
    );

    let conflict = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=flink-gitops"),
        Some(APPLY),
        Some(&flink("a", json!({"x": 1, "y": 1})).to_string()),
    );
    assert_eq!(conflict.status, 409);
    assert!(
        conflict.json()["message"].as_str().is_some_and(
            |m| m.contains("conflict with \"kubectl-edit\" using yelp.com/v1alpha1 at ")
        )
    );
}

#[test]
fn an_appliers_own_update_entry_is_another_manager() {
    let server = FakeApiServer::with_flinks();
    server.insert_as("flink-gitops", flink("a", json!({"x": 1})));
    let conflict = server.raw(
        "PATCH",
        &format!("{FLINKS}/a?fieldManager=flink-gitops"),
        Some(APPLY),
        Some(&flink("a", json!({"x": 2})).to_string()),
    );
    assert_eq!(
        conflict.status, 409,
        "as in kube-apiserver, entries are per manager and operation"
    );
}

#[test]
fn clearing_managed_fields_with_an_empty_entry() {
    let server = FakeApiServer::with_flinks();
    server.insert_as("OpenAPI-Generator", flink("a", json!({"x": 1})));
    let ignored = server.raw(
        "PATCH",
        &format!("{FLINKS}/a"),
        Some(MERGE),
        Some(r#"{"metadata":{"managedFields":[]}}"#),
    );
    assert!(
        ignored.json()["metadata"]["managedFields"].is_array(),
        "an empty list is ignored"
    );
    let cleared = server.raw(
        "PATCH",
        &format!("{FLINKS}/a"),
        Some(MERGE),
        Some(r#"{"metadata":{"managedFields":[{}]}}"#),
    );
    assert_eq!(cleared.status, 200);
    assert!(cleared.json()["metadata"].get("managedFields").is_none());
}

#[test]
fn patch_types_and_validation() {
    let server = FakeApiServer::with_flinks();
    server.insert_as("OpenAPI-Generator", flink("a", json!({"x": 1})));
    let path = format!("{FLINKS}/a");

    let strategic = server.raw(
        "PATCH",
        &path,
        Some("application/strategic-merge-patch+json"),
        Some("{}"),
    );
    assert_eq!(strategic.status, 415);
    assert_eq!(strategic.json()["reason"], "UnsupportedMediaType");

    let failed = server.raw(
        "PATCH",
        &path,
        Some(JSON_PATCH),
        Some(r#"[{"op":"test","path":"/spec/x","value":2}]"#),
    );
    assert_eq!(failed.status, 422);
    assert_eq!(failed.json()["reason"], "Invalid");
    let ok = server.raw(
        "PATCH",
        &path,
        Some(JSON_PATCH),
        Some(r#"[{"op":"test","path":"/spec/x","value":1},{"op":"add","path":"/spec/l","value":[1]},{"op":"add","path":"/spec/l/-","value":2},{"op":"remove","path":"/spec/x"}]"#),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["spec"], json!({"l": [1, 2]}));
    let missing = server.raw(
        "PATCH",
        &path,
        Some(JSON_PATCH),
        Some(r#"[{"op":"remove","path":"/spec/nope"}]"#),
    );
    assert_eq!(missing.status, 422);

    let no_manager = server.raw(
        "PATCH",
        &path,
        Some(APPLY),
        Some(&flink("a", json!({})).to_string()),
    );
    assert_eq!(no_manager.status, 422);
    assert_eq!(
        no_manager.json()["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let force_on_merge = server.raw(
        "PATCH",
        &format!("{path}?force=true"),
        Some(MERGE),
        Some("{}"),
    );
    assert_eq!(force_on_merge.status, 422);
    let mut with_fields = flink("a", json!({}));
    with_fields["metadata"]["managedFields"] = json!([]);
    let managed_in_apply = server.raw(
        "PATCH",
        &format!("{path}?fieldManager=m"),
        Some(APPLY),
        Some(&with_fields.to_string()),
    );
    assert_eq!(managed_in_apply.status, 400);
    let wrong_kind = server.raw(
        "PATCH",
        &format!("{path}?fieldManager=m"),
        Some(APPLY),
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#),
    );
    assert_eq!(wrong_kind.status, 400);
    let wrong_name = server.raw(
        "PATCH",
        &format!("{path}?fieldManager=m"),
        Some(APPLY),
        Some(&flink("b", json!({})).to_string()),
    );
    assert_eq!(wrong_name.status, 400);
    let missing_object = server.raw("PATCH", &format!("{FLINKS}/zzz"), Some(MERGE), Some("{}"));
    assert_eq!(missing_object.status, 404);
}

#[tokio::test]
async fn missing_namespace_and_unknown_kinds_are_404() {
    let server = FakeApiServer::with_flinks();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client(&server).await, "nope", &flink_resource());
    let mut config = flink("a", json!({}));
    config["metadata"]["namespace"] = json!("nope");
    let status = api_status(apply(&api, "flink-gitops", &config, true).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "namespaces \"nope\" not found");
    let post = server.raw(
        "POST",
        "/apis/yelp.com/v1alpha1/namespaces/nope/flinks",
        Some("application/json"),
        Some(&config.to_string()),
    );
    assert_eq!(post.status, 404);

    let unknown = server.raw(
        "GET",
        "/apis/yelp.com/v1alpha1/namespaces/paasta-flinks/sparks",
        None,
        None,
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["kind"], "Status");
    let other_group = server.raw(
        "GET",
        "/apis/example.com/v1alpha1/namespaces/paasta-flinks/flinks",
        None,
        None,
    );
    assert_eq!(other_group.status, 404);
}

#[test]
fn namespaces() {
    let server = FakeApiServer::start();
    assert_eq!(
        server
            .raw("GET", "/api/v1/namespaces/team", None, None)
            .status,
        404
    );
    let body = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}"#;
    let created = server.raw(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(body),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["status"]["phase"], "Active");
    let again = server.raw(
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        Some(body),
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["reason"], "AlreadyExists");
    let got = server
        .raw("GET", "/api/v1/namespaces/team", None, None)
        .json();
    assert_eq!(
        got["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    server.create_namespace("other");
    assert_eq!(
        server.raw("GET", "/api/v1/namespaces", None, None).json()["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn kube_reads_namespaces_and_version() {
    let server = FakeApiServer::with_flinks();
    let client = client(&server).await;
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let ns = namespaces.get(NS).await.expect("namespace");
    assert_eq!(ns.metadata.name.as_deref(), Some(NS));
    assert!(namespaces.get("absent").await.is_err());
}

#[test]
fn injected_status_faults() {
    let server = FakeApiServer::with_flinks();
    server.insert_as("OpenAPI-Generator", flink("a", json!({})));
    let path = format!("{FLINKS}/a");
    for (code, reason) in [
        (404_u16, "NotFound"),
        (409, "Conflict"),
        (422, "Invalid"),
        (500, "InternalError"),
    ] {
        server.inject(Fault::status(code).method("GET").path("/flinks/a"));
        let r = server.raw("GET", &path, None, None);
        assert_eq!(r.status, code);
        let body = r.json();
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["code"], code);
        assert_eq!(body["reason"], reason);
        assert_eq!(
            server.raw("GET", &path, None, None).status,
            200,
            "used up after one"
        );
    }

    server.inject(Fault::status(429).retry_after(3).path("/flinks").times(2));
    for _ in 0..2 {
        let r = server.raw("GET", FLINKS, None, None);
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.json()["reason"], "TooManyRequests");
        assert_eq!(r.json()["details"]["retryAfterSeconds"], 3);
    }
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(server.raw("GET", FLINKS, None, None).status, 200);

    server.inject(Fault::status(500).method("PATCH"));
    assert_eq!(
        server.raw("GET", &path, None, None).status,
        200,
        "method filter"
    );
    assert_eq!(
        server.raw("PATCH", &path, Some(MERGE), Some("{}")).status,
        500
    );

    assert_eq!(server.count("GET", "/flinks/a"), 9);
    assert_eq!(server.count("", "/flinks"), 13);
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.fault.is_some())
            .count(),
        7
    );
    server.clear_requests();
    assert_eq!(server.requests().len(), 0);
}

#[tokio::test]
async fn injected_delay_and_429_through_kube() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    server.inject(Fault::delay(Duration::from_millis(300)).method("GET"));
    let started = Instant::now();
    api.list(&ListParams::default())
        .await
        .expect("delayed list succeeds");
    assert!(started.elapsed() >= Duration::from_millis(300));

    server.inject(Fault::status(429).retry_after(1));
    let status = api_status(
        api.list(&ListParams::default())
            .await
            .map(|l| json!(l.items.len())),
    );
    assert_eq!(status.code, 429);
    assert_eq!(server.count("GET", "/flinks"), 2);
    assert!(server.writes().is_empty());
}

#[tokio::test]
async fn unchanged_replace_is_a_no_op_and_owned_maps_are_pruned_whole() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    apply(
        &api,
        "m",
        &flink("a", json!({"a": {"b": 1}, "keep": true})),
        true,
    )
    .await
    .expect("apply");
    let live = api.get("a").await.expect("get");
    let before = server.resource_version();
    let same = api
        .replace("a", &PostParams::default(), &live)
        .await
        .expect("replace with what was read");
    assert_eq!(
        server.resource_version(),
        before,
        "no change, no new resourceVersion"
    );
    assert_eq!(to_json(&same), to_json(&live));

    let after = apply(&api, "m", &flink("a", json!({"keep": true})), true)
        .await
        .expect("apply without a");
    assert_eq!(after["spec"], json!({"keep": true}));
}

#[test]
fn malformed_managed_fields_in_a_write_keep_the_live_entries() {
    let server = FakeApiServer::with_flinks();
    let seeded = server.insert_as("OpenAPI-Generator", flink("a", json!({"x": 1})));
    let patch = json!([{"op": "replace", "path": "/metadata/managedFields",
                        "value": [{"manager": "m", "operation": "Apply", "fieldsV1": {}}]}]);
    let r = server.raw(
        "PATCH",
        &format!("{FLINKS}/a"),
        Some(JSON_PATCH),
        Some(&patch.to_string()),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["metadata"]["managedFields"],
        seeded["metadata"]["managedFields"],
        "no fieldsType: the entries do not decode, the live ones stay"
    );
}

const JOBS: &str = "/apis/batch/v1/namespaces/paasta-flinks/jobs";

async fn jobs(server: &FakeApiServer) -> Api<Job> {
    Api::namespaced(client(server).await, NS)
}

/// A shutdown Job as the prune feature creates it, owned by `owner` when given.
fn shutdown_job(name: &str, owner: Option<&Json>) -> Json {
    let mut job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "shutdown"}},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "shutdown", "image": "busybox"}],
            }},
        },
    });
    if let Some(owner) = owner {
        job["metadata"]["ownerReferences"] = json!([owner_reference(owner)]);
    }
    job
}

fn owner_uids(object: &Json) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .map(|r| r["uid"].as_str().expect("uid").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn gc_names(events: &[GcEvent]) -> Vec<(GcAction, String, String)> {
    events
        .iter()
        .map(|e| (e.action, e.plural.clone(), e.name.clone()))
        .collect()
}

#[tokio::test]
async fn jobs_create_get_list_by_label_and_conflict_on_recreate() {
    let server = FakeApiServer::with_flinks();
    let api = jobs(&server).await;
    let mut body = shutdown_job("a-shutdown", None);
    body["status"] = json!({"active": 3, "succeeded": 9});
    let job: Job = serde_json::from_value(body).expect("job");
    let pp = PostParams {
        field_manager: Some("flink-gitops".into()),
        ..PostParams::default()
    };
    let created = api.create(&pp, &job).await.expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    assert_eq!(uid.len(), 36);
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(
        created.status,
        Some(JobStatus::default()),
        "the status sent is ignored, an empty one is served"
    );
    let created_json = serde_json::to_value(&created).expect("json");
    assert_eq!(created_json["status"], json!({}));
    assert_eq!(
        entry(&created_json, "flink-gitops", "Update").expect("entry")["apiVersion"],
        "batch/v1"
    );

    let status = api_status(api.create(&pp, &job).await.map(|j| json!(j)));
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "jobs.batch \"a-shutdown\" already exists");

    let got = api.get("a-shutdown").await.expect("get");
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(got.spec.expect("spec").backoff_limit, Some(0));

    let mut other = shutdown_job("b-other", None);
    other["metadata"]["labels"] = json!({"app": "other"});
    server.insert_as("someone", other);
    let listed = api
        .list(&ListParams::default().labels("app=shutdown"))
        .await
        .expect("list");
    let names: Vec<_> = listed
        .items
        .iter()
        .map(|j| j.metadata.name.clone().expect("name"))
        .collect();
    assert_eq!(names, ["a-shutdown"]);
    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
    assert_eq!(server.count("GET", JOBS), 3);

    // A raw POST: status ignored, uid set; a merge patch keeps the status.
    let raw = server.raw(
        "POST",
        JOBS,
        Some("application/json"),
        Some(
            &json!({"apiVersion": "batch/v1", "kind": "Job",
                     "metadata": {"name": "c"}, "spec": {},
                     "status": {"failed": 1}})
            .to_string(),
        ),
    );
    assert_eq!(raw.status, 201, "{}", raw.body);
    let served = server.object(JOB_PLURAL, NS, "c").expect("stored");
    assert_eq!(served["status"], json!({}));
    assert!(served["metadata"]["uid"].is_string());
    server.set_job_status(NS, "c", job_running());
    let patched = server.raw(
        "PATCH",
        &format!("{JOBS}/c"),
        Some(MERGE),
        Some(r#"{"metadata":{"labels":{"x":"1"}},"status":{"active":7}}"#),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.json()["status"],
        server.object(JOB_PLURAL, NS, "c").expect("c")["status"]
    );
    assert_eq!(patched.json()["status"]["active"], 1);
}

#[tokio::test]
async fn job_status_set_by_the_test_is_served() {
    let server = FakeApiServer::with_flinks();
    let api = jobs(&server).await;
    let created = server.insert_as("flink-gitops", shutdown_job("a-shutdown", None));
    let rv_before = rv(&created);

    server.set_job_status(NS, "a-shutdown", job_running());
    let running = api.get("a-shutdown").await.expect("get");
    let status = running.status.clone().expect("status");
    assert_eq!((status.active, status.ready), (Some(1), Some(1)));
    assert!(status.start_time.is_some());
    assert!(status.conditions.is_none());
    assert_ne!(
        running.metadata.resource_version.as_deref(),
        Some(rv_before.as_str())
    );
    assert_eq!(
        running.metadata.generation,
        Some(1),
        "status does not count"
    );

    server.set_job_status(NS, "a-shutdown", job_complete());
    let complete = api.get("a-shutdown").await.expect("get");
    let status = complete.status.expect("status");
    let conditions = status.conditions.expect("conditions");
    let types: Vec<_> = conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        [("SuccessCriteriaMet", "True"), ("Complete", "True")]
    );
    assert_eq!(conditions[1].reason.as_deref(), Some("CompletionsReached"));
    assert_eq!((status.succeeded, status.active), (Some(1), None));
    assert!(status.completion_time.is_some());

    server.set_job_status(NS, "a-shutdown", job_failed());
    let failed = api.get("a-shutdown").await.expect("get");
    let status = failed.status.expect("status");
    let conditions = status.conditions.expect("conditions");
    assert_eq!(conditions.last().map(|c| c.type_.as_str()), Some("Failed"));
    assert_eq!(
        conditions[1].reason.as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!((status.failed, status.succeeded), (Some(1), None));
    assert!(status.completion_time.is_none());

    // The status subresource serves the same.
    let status_path = format!("{JOBS}/a-shutdown/status");
    let via_status = server.raw("GET", &status_path, None, None);
    assert_eq!(via_status.json()["status"]["failed"], 1);
}

#[tokio::test]
async fn background_delete_of_a_flink_collects_its_job_only() {
    let server = FakeApiServer::with_flinks();
    let flinks_api = flinks(&server).await;
    let a = server.apply_as("flink-gitops", flink("a", json!({"x": 1})));
    let b = server.apply_as("flink-gitops", flink("b", json!({"x": 1})));
    server.insert_as("flink-gitops", shutdown_job("a-shutdown", Some(&a)));
    server.insert_as("flink-gitops", shutdown_job("b-shutdown", Some(&b)));
    server.insert_as("flink-gitops", shutdown_job("unowned", None));
    server.clear_requests();

    let deleted = flinks_api
        .delete("a", &DeleteParams::background())
        .await
        .expect("delete");
    let status = deleted.right().expect("a Status");
    assert_eq!(
        status.details.map(|d| d.uid),
        a["metadata"]["uid"].as_str().map(str::to_owned)
    );
    assert!(server.object(FLINK_PLURAL, NS, "a").is_none());
    assert!(server.object(JOB_PLURAL, NS, "a-shutdown").is_none());
    assert!(server.object(JOB_PLURAL, NS, "b-shutdown").is_some());
    assert!(server.object(JOB_PLURAL, NS, "unowned").is_some());
    assert!(server.object(FLINK_PLURAL, NS, "b").is_some());

    let events = server.gc_deleted();
    assert_eq!(
        gc_names(&events),
        [(
            GcAction::Deleted,
            "jobs".to_owned(),
            "a-shutdown".to_owned()
        )]
    );
    assert_eq!(events[0].group, "batch");
    assert_eq!(events[0].namespace, NS);
    assert_eq!(
        events[0].owner_uid,
        a["metadata"]["uid"].as_str().expect("uid")
    );
    assert_eq!(server.gc_events(), events);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "only the client's DELETE: {requests:?}");
    assert_eq!(requests[0].path, format!("{FLINKS}/a"));
    assert_eq!(requests[0].body["propagationPolicy"], "Background");
    assert_eq!(server.count("", "/jobs"), 0);
}

#[tokio::test]
async fn orphan_keeps_the_job_and_strips_the_owner_reference() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let a = server.apply_as("flink-gitops", flink("a", json!({"x": 1})));
    let job = server.insert_as("flink-gitops", shutdown_job("a-shutdown", Some(&a)));
    assert!(
        entry(&job, "flink-gitops", "Update").expect("entry")["fieldsV1"]["f:metadata"]
            .get("f:ownerReferences")
            .is_some()
    );

    api.delete("a", &DeleteParams::orphan())
        .await
        .expect("delete");
    assert!(server.object(FLINK_PLURAL, NS, "a").is_none());
    let kept = server.object(JOB_PLURAL, NS, "a-shutdown").expect("kept");
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
    assert_ne!(rv(&kept), rv(&job), "the collector's patch is a write");
    assert_eq!(kept["metadata"]["generation"], 1);
    assert_eq!(kept["spec"], job["spec"]);
    let fields = &entry(&kept, "flink-gitops", "Update").expect("entry")["fieldsV1"];
    assert!(
        fields["f:metadata"].get("f:ownerReferences").is_none(),
        "{fields}"
    );
    assert!(server.gc_deleted().is_empty());
    assert_eq!(
        gc_names(&server.gc_events()),
        [(
            GcAction::Orphaned,
            "jobs".to_owned(),
            "a-shutdown".to_owned()
        )]
    );
    assert_eq!(server.writes().len(), 1);
}

#[tokio::test]
async fn a_dependent_with_another_live_owner_only_loses_the_reference() {
    let server = FakeApiServer::with_flinks();
    let api = flinks(&server).await;
    let a = server.apply_as("flink-gitops", flink("a", json!({})));
    let b = server.apply_as("flink-gitops", flink("b", json!({})));
    let mut shared = shutdown_job("shared", Some(&a));
    shared["metadata"]["ownerReferences"] = json!([owner_reference(&a), owner_reference(&b)]);
    server.insert_as("flink-gitops", shared);

    api.delete("a", &DeleteParams::background())
        .await
        .expect("delete");
    let kept = server
        .object(JOB_PLURAL, NS, "shared")
        .expect("b still owns it");
    assert_eq!(
        owner_uids(&kept),
        [b["metadata"]["uid"].as_str().expect("uid")]
    );
    assert_eq!(
        gc_names(&server.gc_events()),
        [(GcAction::Orphaned, "jobs".to_owned(), "shared".to_owned())]
    );

    api.delete("b", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(
        server.object(JOB_PLURAL, NS, "shared").is_none(),
        "Background is the default"
    );
    assert_eq!(server.gc_deleted().len(), 1);
}

#[test]
fn delete_options_in_the_body_or_the_query() {
    let server = FakeApiServer::with_flinks();
    let setup = |name: &str| {
        let owner = server.apply_as("flink-gitops", flink(name, json!({})));
        server.insert_as(
            "flink-gitops",
            shutdown_job(&format!("{name}-shutdown"), Some(&owner)),
        );
    };
    let job_kept = |name: &str| server.object(JOB_PLURAL, NS, &format!("{name}-shutdown"));
    let delete = |path: &str, body: Option<&str>| {
        let response = server.raw("DELETE", path, body.map(|_| "application/json"), body);
        (response.status, response.json())
    };

    // The DeleteOptions body of the Kubernetes docs' curl examples.
    setup("body");
    let (code, body) = delete(
        &format!("{FLINKS}/body"),
        Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Orphan"}"#),
    );
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("Success")),
        "{body}"
    );
    assert!(job_kept("body").is_some_and(|j| owner_uids(&j).is_empty()));

    setup("query");
    let (code, _) = delete(&format!("{FLINKS}/query?propagationPolicy=Orphan"), None);
    assert_eq!(code, 200);
    assert!(job_kept("query").is_some_and(|j| owner_uids(&j).is_empty()));

    setup("deprecated");
    let (code, _) = delete(&format!("{FLINKS}/deprecated?orphanDependents=true"), None);
    assert_eq!(code, 200);
    assert!(job_kept("deprecated").is_some());

    setup("default");
    let (code, _) = delete(&format!("{FLINKS}/default"), None);
    assert_eq!(code, 200);
    assert!(job_kept("default").is_none(), "Background by default");

    // With a body, the query is not read.
    setup("both");
    let (code, _) = delete(
        &format!("{FLINKS}/both?propagationPolicy=Orphan"),
        Some(r#"{"propagationPolicy":"Background"}"#),
    );
    assert_eq!(code, 200);
    assert!(job_kept("both").is_none());

    setup("foreground");
    let (code, _) = delete(
        &format!("{FLINKS}/foreground"),
        Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}"#),
    );
    assert_eq!(code, 200);
    assert!(job_kept("foreground").is_none());
    assert!(server.object(FLINK_PLURAL, NS, "foreground").is_none());

    // Invalid options: 422 after the lookup (404 first), nothing deleted.
    setup("bad");
    let (code, body) = delete(&format!("{FLINKS}/bad?propagationPolicy=Sometimes"), None);
    assert_eq!(
        (code, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \
         \"Sometimes\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
    );
    let (code, body) = delete(
        &format!("{FLINKS}/bad"),
        Some(r#"{"propagationPolicy":"Orphan","orphanDependents":true}"#),
    );
    assert_eq!(code, 422, "{body}");
    let (code, _) = delete(&format!("{FLINKS}/bad?orphanDependents=maybe"), None);
    assert_eq!(code, 400);
    let (code, _) = delete(
        &format!("{FLINKS}/missing?propagationPolicy=Sometimes"),
        None,
    );
    assert_eq!(code, 404);
    assert!(server.object(FLINK_PLURAL, NS, "bad").is_some());
    assert!(job_kept("bad").is_some_and(|j| owner_uids(&j).len() == 1));
}

#[tokio::test]
async fn job_deletes_orphan_by_default_and_cascades_nest() {
    let server = FakeApiServer::with_flinks();
    let api = jobs(&server).await;
    // Jobs owning Jobs stand in for a Job's Pods, which the fake does not serve.
    let parent = server.insert_as("flink-gitops", shutdown_job("parent", None));
    server.insert_as("flink-gitops", shutdown_job("child", Some(&parent)));
    api.delete("parent", &DeleteParams::default())
        .await
        .expect("delete");
    let child = server
        .object(JOB_PLURAL, NS, "child")
        .expect("orphaned, not deleted");
    assert!(owner_uids(&child).is_empty());
    assert!(server.gc_deleted().is_empty());

    // Flink -> Job -> Job: the collector deletes a dependent with an explicit
    // policy, so the chain goes whole; foreground deletes the deepest first.
    for (policy, expected) in [
        (DeleteParams::background(), ["f-job", "f-job-child"]),
        (DeleteParams::foreground(), ["f-job-child", "f-job"]),
    ] {
        server.remove_object(JOB_PLURAL, NS, "child");
        let owner = server.apply_as("flink-gitops", flink("f", json!({})));
        let job = server.insert_as("flink-gitops", shutdown_job("f-job", Some(&owner)));
        server.insert_as("flink-gitops", shutdown_job("f-job-child", Some(&job)));
        let before = server.gc_deleted().len();
        flinks(&server)
            .await
            .delete("f", &policy)
            .await
            .expect("delete");
        let names: Vec<_> = server.gc_deleted()[before..]
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(names, expected, "{policy:?}");
        assert!(server.objects(JOB_PLURAL, NS).is_empty());
    }
}

#[tokio::test]
async fn dry_run_delete_deletes_no_job_and_collects_nothing() {
    let server = FakeApiServer::with_flinks();
    let a = server.apply_as("flink-gitops", flink("a", json!({})));
    server.insert_as("flink-gitops", shutdown_job("a-shutdown", Some(&a)));
    let before = server.resource_version();

    let dry = DeleteParams::background().dry_run();
    flinks(&server)
        .await
        .delete("a", &dry)
        .await
        .expect("dry-run delete of the flink");
    jobs(&server)
        .await
        .delete("a-shutdown", &dry)
        .await
        .expect("dry-run delete of the job");
    let raw = server.raw(
        "DELETE",
        &format!("{JOBS}/a-shutdown?dryRun=All&propagationPolicy=Background"),
        None,
        None,
    );
    assert_eq!(raw.status, 200, "{}", raw.body);

    assert!(server.object(FLINK_PLURAL, NS, "a").is_some());
    let job = server
        .object(JOB_PLURAL, NS, "a-shutdown")
        .expect("job kept");
    assert_eq!(owner_uids(&job).len(), 1);
    assert_eq!(server.resource_version(), before);
    assert!(server.gc_events().is_empty());
    assert!(server.requests().iter().all(|r| r.is_dry_run()));
    assert!(server.writes().is_empty());
}

// --- Authentication and RBAC (the product's own permissions: tests/rbac.rs).

const SA: Option<&str> = Some(support::fake_apiserver::SERVICE_ACCOUNT_TOKEN);

fn flink_body(name: &str) -> String {
    flink(name, json!({"image": "x"})).to_string()
}

#[test]
fn the_service_account_gets_what_deploy_rbac_grants_and_403_otherwise() {
    let server = FakeApiServer::with_flinks();
    server.register_leases();
    server.create_namespace("flink-gitops");
    let ok = server.raw_with_token(SA, "GET", FLINKS, None, None);
    assert_eq!(ok.status, 200, "list is granted: {}", ok.body);
    // No `update` on flinks: PUT is refused before the handler (not 404).
    let put = server.raw_with_token(
        SA,
        "PUT",
        &format!("{FLINKS}/x"),
        Some("application/json"),
        Some(&flink_body("x")),
    );
    assert_eq!(put.status, 403, "{}", put.body);
    assert_eq!(
        put.json(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "flinks.yelp.com \"x\" is forbidden: User \"system:serviceaccount:flink-gitops:flink-gitops\" cannot update resource \"flinks\" in API group \"yelp.com\" in the namespace \"paasta-flinks\"",
            "reason": "Forbidden",
            "details": {"name": "x", "group": "yelp.com", "kind": "flinks"},
            "code": 403,
        })
    );
    // A collection has no name in the message; the core group is "".
    let pods = server.raw_with_token(
        SA,
        "GET",
        "/api/v1/namespaces/paasta-flinks/pods",
        None,
        None,
    );
    assert_eq!(pods.status, 403);
    assert_eq!(
        pods.json()["message"],
        "pods is forbidden: User \"system:serviceaccount:flink-gitops:flink-gitops\" cannot list resource \"pods\" in API group \"\" in the namespace \"paasta-flinks\""
    );
    // The Role binds in its own namespace only.
    let elsewhere = server.raw_with_token(
        SA,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/paasta-flinks/leases/l",
        None,
        None,
    );
    assert_eq!(elsewhere.status, 403);
    let lease = server.raw_with_token(
        SA,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/flink-gitops/leases/l",
        None,
        None,
    );
    assert_eq!(lease.status, 404, "authorized, then not found");
    // Cluster scope and namespaces: not granted by the shipped file.
    let namespace =
        server.raw_with_token(SA, "GET", "/api/v1/namespaces/paasta-flinks", None, None);
    assert_eq!(namespace.status, 403);
    assert!(
        namespace.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot get resource \"namespaces\" in API group \"\" in the namespace \"paasta-flinks\""),
        "{}",
        namespace.body
    );
    // Discovery is open to every authenticated user (system:discovery).
    for path in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/yelp.com/v1alpha1",
    ] {
        let reply = server.raw_with_token(SA, "GET", path, None, None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let denied = server.denied();
    assert_eq!(denied.len(), 4, "{denied:#?}");
    assert!(
        denied
            .iter()
            .all(|d| d.code == 403 && d.user == support::fake_apiserver::SERVICE_ACCOUNT_USER)
    );
}

#[test]
fn no_token_is_anonymous_an_unknown_one_401_unless_permissive() {
    let server = FakeApiServer::with_flinks();
    let anonymous = server.raw_with_token(None, "GET", FLINKS, None, None);
    assert_eq!(anonymous.status, 403);
    assert!(
        anonymous
            .body
            .contains("User \\\"system:anonymous\\\" cannot list"),
        "{}",
        anonymous.body
    );
    assert_eq!(
        server
            .raw_with_token(None, "GET", "/version", None, None)
            .status,
        403,
        "anonymous is not system:authenticated"
    );
    let unknown = server.raw_with_token(Some("nope"), "GET", FLINKS, None, None);
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["reason"], "Unauthorized");
    assert_eq!(
        server.raw("GET", FLINKS, None, None).status,
        200,
        "raw() is the admin"
    );
    server.set_permissive(true);
    assert_eq!(
        server
            .raw_with_token(None, "GET", FLINKS, None, None)
            .status,
        200
    );
    assert_eq!(
        server
            .raw_with_token(Some("nope"), "GET", FLINKS, None, None)
            .status,
        200
    );
    // Known tokens keep their identity.
    assert_eq!(
        server
            .raw_with_token(SA, "DELETE", FLINKS, None, None)
            .status,
        403,
        "deletecollection is not granted"
    );
}

#[test]
fn an_apply_that_creates_also_needs_create() {
    let server = FakeApiServer::with_flinks();
    server.set_rbac(support::fake_apiserver::Rbac::shipped().without_verb(
        "flink-gitops",
        0,
        "create",
    ));
    let path = format!("{FLINKS}/new?fieldManager=m");
    let create = server.raw_with_token(SA, "PATCH", &path, Some(APPLY), Some(&flink_body("new")));
    assert_eq!(create.status, 403, "{}", create.body);
    assert_eq!(
        create.json()["message"],
        "flinks.yelp.com \"new\" is forbidden: User \"system:serviceaccount:flink-gitops:flink-gitops\" cannot create resource \"flinks\" in API group \"yelp.com\" in the namespace \"paasta-flinks\""
    );
    assert!(server.object(FLINK_PLURAL, NS, "new").is_none());
    // An apply to an existing object is a patch only.
    server.insert_as("paasta", flink("new", json!({"image": "x"})));
    let update = server.raw_with_token(SA, "PATCH", &path, Some(APPLY), Some(&flink_body("new")));
    assert_eq!(update.status, 200, "{}", update.body);
}

#[test]
fn block_owner_deletion_needs_update_on_the_owners_finalizers() {
    let server = FakeApiServer::with_flinks();
    let owner = server.insert_as("paasta", flink("owner", json!({"image": "x"})));
    let job = |block: bool| {
        let mut reference = owner_reference(&owner);
        reference["blockOwnerDeletion"] = json!(block);
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("j-{block}"), "ownerReferences": [reference]},
            "spec": {},
        })
        .to_string()
    };
    let jobs = "/apis/batch/v1/namespaces/paasta-flinks/jobs";
    let blocking =
        server.raw_with_token(SA, "POST", jobs, Some("application/json"), Some(&job(true)));
    assert_eq!(blocking.status, 403, "{}", blocking.body);
    assert_eq!(
        blocking.json()["message"],
        "jobs.batch \"j-true\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: User \"system:serviceaccount:flink-gitops:flink-gitops\" cannot update resource \"flinks/finalizers\" in API group \"yelp.com\" in the namespace \"paasta-flinks\""
    );
    let plain = server.raw_with_token(
        SA,
        "POST",
        jobs,
        Some("application/json"),
        Some(&job(false)),
    );
    assert_eq!(plain.status, 201, "{}", plain.body);
    // Granting the subresource is enough.
    server.grant(support::fake_apiserver::Rbac::parse(
        "kind: Role\nmetadata: {name: f, namespace: paasta-flinks}\nrules:\n- {apiGroups: [yelp.com], resources: [flinks/finalizers], verbs: [update]}\n---\nkind: RoleBinding\nmetadata: {name: f, namespace: paasta-flinks}\nroleRef: {kind: Role, name: f}\nsubjects: [{kind: ServiceAccount, name: flink-gitops, namespace: flink-gitops}]\n",
    ));
    let granted =
        server.raw_with_token(SA, "POST", jobs, Some("application/json"), Some(&job(true)));
    assert_eq!(granted.status, 201, "{}", granted.body);
}
