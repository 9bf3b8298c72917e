//! Authentication by bearer token and RBAC authorization, as kube-apiserver
//! does them, so that a verb missing from the shipped `deploy/rbac.yaml`
//! fails a test instead of a production cluster.
//!
//! - Authentication: `Authorization: Bearer <token>` names a user from a
//!   static token table ([`ADMIN_TOKEN`], [`SERVICE_ACCOUNT_TOKEN`]); an
//!   unknown token is 401, no token is `system:anonymous`
//!   (https://kubernetes.io/docs/reference/access-authn-authz/authentication/).
//!   In permissive mode both are the admin instead, for tests of the fake
//!   itself.
//! - Request attributes as the apiserver's RequestInfo derives them
//!   (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb).
//! - RBAC: Roles, ClusterRoles and their bindings
//!   (https://kubernetes.io/docs/reference/access-authn-authz/rbac/);
//!   `system:masters` may do anything; discovery paths are open to every
//!   authenticated user, as the default `system:discovery` ClusterRole
//!   grants them.
//! - Denied: 403 with the apiserver's `Forbidden` `Status` and message.

use super::status::{ApiError, qualified};
use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// The token of the cluster admin, for test setup through HTTP.
pub const ADMIN_TOKEN: &str = "admin-token";
/// The token of the reconciler's ServiceAccount, the identity it ships with.
pub const SERVICE_ACCOUNT_TOKEN: &str = "sa-flink-gitops";
/// The username kube-apiserver gives that ServiceAccount.
pub const SERVICE_ACCOUNT_USER: &str = "system:serviceaccount:flink-gitops:flink-gitops";

/// An authenticated (or anonymous) user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn admin() -> Self {
        Self {
            name: "kubernetes-admin".to_owned(),
            groups: vec![
                "system:masters".to_owned(),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// The groups kube-apiserver gives a ServiceAccount token's user.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }

    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".to_owned(),
            groups: vec!["system:unauthenticated".to_owned()],
        }
    }
}

/// One `rules` entry of a Role or ClusterRole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

impl PolicyRule {
    fn matches(&self, attributes: &Attributes) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let resource = match &attributes.subresource {
            Some(sub) => format!("{}/{sub}", attributes.resource),
            None => attributes.resource.clone(),
        };
        any(&self.verbs, &attributes.verb)
            && any(&self.api_groups, &attributes.api_group)
            && any(&self.resources, &resource)
            && (self.resource_names.is_empty()
                || attributes
                    .name
                    .as_ref()
                    .is_some_and(|n| self.resource_names.contains(n)))
    }
}

/// A Role (with its namespace) or a ClusterRole (namespace `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub rules: Vec<PolicyRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl Subject {
    fn includes(&self, user: &User) -> bool {
        match self.kind.as_str() {
            "ServiceAccount" => {
                let namespace = self.namespace.as_deref().unwrap_or_default();
                user.name == format!("system:serviceaccount:{namespace}:{}", self.name)
            }
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            _ => false,
        }
    }
}

/// A RoleBinding (with its namespace) or a ClusterRoleBinding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
}

/// The RBAC objects the authorizer knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rbac {
    pub roles: Vec<Role>,
    pub bindings: Vec<Binding>,
}

/// The shipped RBAC manifest's text.
pub fn shipped_text() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(value: &Json, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Json::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn text(value: &Json, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Json::as_str)
        .map(str::to_owned)
}

impl Rbac {
    /// `deploy/rbac.yaml` as shipped.
    pub fn shipped() -> Self {
        Self::parse(&shipped_text())
    }

    /// The Roles, ClusterRoles, RoleBindings and ClusterRoleBindings of a
    /// multi-document manifest, parsed with the product's YAML loader (as
    /// tests/deploy.rs does); other kinds and comments are ignored.
    pub fn parse(manifest: &str) -> Self {
        let mut rbac = Self::default();
        for document in manifest.split("\n---\n") {
            let Some(node) =
                load(document, &Limits::default()).unwrap_or_else(|e| panic!("RBAC manifest: {e}"))
            else {
                continue;
            };
            let value = to_value(&node, "")
                .expect("RBAC manifest: plain data")
                .to_json()
                .expect("RBAC manifest: JSON");
            rbac.add(&value);
        }
        rbac
    }

    /// Adds one RBAC object (ignores any other kind).
    pub fn add(&mut self, object: &Json) {
        let kind = text(object, "/kind").unwrap_or_default();
        let namespace = text(object, "/metadata/namespace");
        let name = text(object, "/metadata/name").unwrap_or_default();
        match kind.as_str() {
            "Role" | "ClusterRole" => {
                let rules = object
                    .get("rules")
                    .and_then(Json::as_array)
                    .map(|rules| {
                        rules
                            .iter()
                            .map(|rule| PolicyRule {
                                api_groups: strings(rule, "apiGroups"),
                                resources: strings(rule, "resources"),
                                verbs: strings(rule, "verbs"),
                                resource_names: strings(rule, "resourceNames"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.roles.push(Role {
                    namespace: (kind == "Role").then_some(namespace).flatten(),
                    kind,
                    name,
                    rules,
                });
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let subjects = object
                    .get("subjects")
                    .and_then(Json::as_array)
                    .map(|subjects| {
                        subjects
                            .iter()
                            .map(|s| Subject {
                                kind: text(s, "/kind").unwrap_or_default(),
                                name: text(s, "/name").unwrap_or_default(),
                                namespace: text(s, "/namespace"),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.bindings.push(Binding {
                    namespace: (kind == "RoleBinding").then_some(namespace).flatten(),
                    kind,
                    name,
                    role_kind: text(object, "/roleRef/kind").unwrap_or_default(),
                    role_name: text(object, "/roleRef/name").unwrap_or_default(),
                    subjects,
                });
            }
            _ => {}
        }
    }

    /// The ClusterRole written out in the comment at the end of
    /// deploy/rbac.yaml (for `apply.create_namespaces: true`), with the
    /// ClusterRoleBinding to the ServiceAccount the comment asks for: read
    /// from the comment itself, so that the test proves what users are told
    /// to install.
    pub fn namespaces_addon() -> Self {
        let text = shipped_text();
        let commented: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("#   "))
            .collect();
        assert!(
            !commented.is_empty(),
            "deploy/rbac.yaml no longer documents the namespaces ClusterRole"
        );
        let mut addon = Self::parse(&commented.join("\n"));
        let role = addon
            .roles
            .first()
            .expect("the commented ClusterRole")
            .name
            .clone();
        addon.add(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "flink-gitops", "namespace": "flink-gitops"}],
        }));
        addon
    }

    /// Both sets of objects.
    #[must_use]
    pub fn with(mut self, other: Self) -> Self {
        self.roles.extend(other.roles);
        self.bindings.extend(other.bindings);
        self
    }

    /// This RBAC with `verb` removed from rule `rule` of the role `role`.
    #[must_use]
    pub fn without_verb(mut self, role: &str, rule: usize, verb: &str) -> Self {
        let target = self
            .roles
            .iter_mut()
            .find(|r| r.name == role)
            .unwrap_or_else(|| panic!("no role {role}"));
        let verbs = &mut target.rules[rule].verbs;
        let before = verbs.len();
        verbs.retain(|v| v != verb);
        assert_eq!(verbs.len() + 1, before, "{role} rule {rule} has no {verb}");
        self
    }

    /// Whether RBAC allows `attributes` to `user`: some binding that
    /// includes the user and applies where the request is (a RoleBinding in
    /// the request's namespace, any ClusterRoleBinding) refers to a role with
    /// a matching rule. `system:masters` is allowed everything, as
    /// kube-apiserver's authorizer chain does before RBAC.
    pub fn allows(&self, user: &User, attributes: &Attributes) -> bool {
        if user.groups.iter().any(|g| g == "system:masters") {
            return true;
        }
        if !attributes.resource_request {
            // system:discovery / system:public-info-viewer, bound to
            // system:authenticated by default.
            return user.groups.iter().any(|g| g == "system:authenticated")
                && is_discovery(&attributes.path);
        }
        self.bindings
            .iter()
            .filter(|b| b.subjects.iter().any(|s| s.includes(user)))
            .filter(|b| {
                b.namespace.is_none() || b.namespace.as_deref() == attributes.namespace.as_deref()
            })
            .filter_map(|b| {
                self.roles.iter().find(|r| {
                    r.kind == b.role_kind
                        && r.name == b.role_name
                        && (r.kind == "ClusterRole" || r.namespace == b.namespace)
                })
            })
            .any(|role| role.rules.iter().any(|rule| rule.matches(attributes)))
    }
}

fn is_discovery(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segments.as_slice(),
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] | ["version"]
    ) || segments.first().is_some_and(|s| *s == "openapi")
}

/// What a request asks for, as kube-apiserver's RequestInfo has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub resource_request: bool,
    pub path: String,
}

impl Attributes {
    /// RequestInfo: `/api/v1/...` is the core group `""`,
    /// `/apis/<group>/<version>/...` a named group; then
    /// `namespaces/<ns>/` (a namespace's own path is the resource
    /// `namespaces` named `<ns>`), the resource, the name, the subresource.
    /// The verb is the HTTP method's: GET is `get` on an object, `list` on a
    /// collection (`watch` with `watch=true`), POST `create`, PUT `update`,
    /// PATCH `patch`, DELETE `delete` on an object and `deletecollection` on
    /// a collection. Any other path is a non-resource request.
    pub fn of_request(method: &str, path: &str, query: &BTreeMap<String, String>) -> Self {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (api_group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => return Self::non_resource(method, path),
        };
        let mut parts = rest;
        let mut namespace = None;
        if parts[0] == "namespaces" && parts.len() > 1 {
            namespace = Some(parts[1].to_owned());
            if parts.len() > 2 {
                parts = &parts[2..];
            }
        }
        let name = parts.get(1).map(|s| (*s).to_owned());
        let verb = match method {
            "GET" | "HEAD" if name.is_some() => "get",
            "GET" | "HEAD" if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                "watch"
            }
            "GET" | "HEAD" => "list",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if name.is_some() => "delete",
            "DELETE" => "deletecollection",
            other => return Self::non_resource(other, path),
        };
        Self {
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            resource: parts[0].to_owned(),
            subresource: parts.get(2).map(|s| (*s).to_owned()),
            namespace,
            name,
            resource_request: true,
            path: path.to_owned(),
        }
    }

    /// A request for a path that names no resource (discovery, `/version`):
    /// its verb is the lower-cased HTTP method.
    fn non_resource(method: &str, path: &str) -> Self {
        Self {
            verb: method.to_ascii_lowercase(),
            api_group: String::new(),
            resource: String::new(),
            subresource: None,
            namespace: None,
            name: None,
            resource_request: false,
            path: path.to_owned(),
        }
    }

    /// The same resource and name under another verb (the extra checks
    /// of a create through apply).
    #[must_use]
    pub fn with_verb(&self, verb: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            ..self.clone()
        }
    }

    /// kube-apiserver's `forbiddenMessage`: `User "u" cannot <verb>
    /// resource "<resource>[/<sub>]" in API group "<g>" in the namespace
    /// "<ns>"` (or `at the cluster scope`, or `path "<p>"`).
    pub fn denial(&self, user: &User) -> String {
        if !self.resource_request {
            return format!(
                "User {:?} cannot {} path {:?}",
                user.name, self.verb, self.path
            );
        }
        let resource = match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in the namespace {ns:?}"),
            None => "at the cluster scope".to_owned(),
        };
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            user.name, self.verb, self.api_group
        )
    }

    /// The 403 `Status` for `reason`, as `apierrors.NewForbidden` builds it:
    /// `<resource>.<group> "<name>" is forbidden: <reason>`.
    pub fn forbidden(&self, reason: &str) -> ApiError {
        let (message, details) = if !self.resource_request {
            (format!("forbidden: {reason}"), json!({}))
        } else {
            let resource = qualified(&self.resource, &self.api_group);
            let mut details = json!({"kind": self.resource});
            if !self.api_group.is_empty() {
                details["group"] = json!(self.api_group);
            }
            match &self.name {
                Some(name) => {
                    details["name"] = json!(name);
                    (
                        format!("{resource} {name:?} is forbidden: {reason}"),
                        details,
                    )
                }
                None => (format!("{resource} is forbidden: {reason}"), details),
            }
        };
        ApiError::new(403, message).details(details)
    }
}

/// Who may call, and how strictly.
#[derive(Clone, Debug)]
pub struct Auth {
    pub rbac: Rbac,
    pub tokens: BTreeMap<String, User>,
    /// No token or an unknown token is the admin (tests of the fake
    /// itself); otherwise no token is `system:anonymous` and an unknown one
    /// is 401.
    pub permissive: bool,
}

impl Default for Auth {
    fn default() -> Self {
        let mut tokens = BTreeMap::new();
        tokens.insert(ADMIN_TOKEN.to_owned(), User::admin());
        tokens.insert(
            SERVICE_ACCOUNT_TOKEN.to_owned(),
            User::service_account("flink-gitops", "flink-gitops"),
        );
        Self {
            rbac: Rbac::shipped(),
            tokens,
            permissive: false,
        }
    }
}

impl Auth {
    /// The user of a request's `Authorization` header.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<User, ApiError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(token) => match self.tokens.get(token) {
                Some(user) => Ok(user.clone()),
                None if self.permissive => Ok(User::admin()),
                None => Err(ApiError::new(401, "Unauthorized").details(Json::Null)),
            },
            None if self.permissive => Ok(User::admin()),
            None => Ok(User::anonymous()),
        }
    }

    /// `Ok` when allowed, else the 403 to answer.
    pub fn authorize(&self, user: &User, attributes: &Attributes) -> Result<(), ApiError> {
        if self.rbac.allows(user, attributes) {
            return Ok(());
        }
        Err(attributes.forbidden(&attributes.denial(user)))
    }
}
