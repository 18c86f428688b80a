//! The resource registry: every kind berth serves, with the names, scope, verbs,
//! subresources, short names and categories that discovery publishes and routing relies on.
//!
//! Built-in resources are a static table; custom resources are added at runtime from
//! CustomResourceDefinitions, so the types own their strings.

use std::sync::Arc;

/// Whether objects live in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A subresource served under `<resource>/<name>/<subresource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subresource {
    /// `/status`: writes change only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `.spec.replicas`.
    Scale,
    /// `pods/binding`: assigns a pod to a node.
    Binding,
    /// `pods/eviction`.
    Eviction,
    /// `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward`, `nodes/proxy`, `pods/proxy`,
    /// `services/proxy`: streamed through to the node agent.
    Log,
    Exec,
    Attach,
    PortForward,
    Proxy,
    /// `namespaces/finalize`: writes change only `.spec.finalizers`.
    Finalize,
    /// `serviceaccounts/token`: a TokenRequest.
    Token,
    /// `deployments/rollback` is not served (removed upstream); listed for completeness of
    /// error messages only.
    Ephemeralcontainers,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
            Subresource::Finalize => "finalize",
            Subresource::Token => "token",
            Subresource::Ephemeralcontainers => "ephemeralcontainers",
        }
    }

    pub fn parse(s: &str) -> Option<Subresource> {
        ALL_SUBRESOURCES.iter().copied().find(|x| x.name() == s)
    }

    /// The (group, version, kind) a subresource's body has, when it is not the parent's kind.
    pub fn kind(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Subresource::Scale => Some(("autoscaling", "v1", "Scale")),
            Subresource::Binding => Some(("", "v1", "Binding")),
            Subresource::Eviction => Some(("policy", "v1", "Eviction")),
            Subresource::Token => Some(("authentication.k8s.io", "v1", "TokenRequest")),
            Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward
            | Subresource::Proxy => Some(("", "v1", "")),
            _ => None,
        }
    }

    /// Verbs discovery lists for the subresource.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale | Subresource::Ephemeralcontainers => {
                &["get", "patch", "update"]
            }
            Subresource::Binding | Subresource::Eviction | Subresource::Token => &["create"],
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::Attach | Subresource::PortForward => {
                &["create", "get"]
            }
            Subresource::Proxy => &["create", "delete", "get", "patch", "update"],
            Subresource::Finalize => &["update"],
        }
    }
}

const ALL_SUBRESOURCES: &[Subresource] = &[
    Subresource::Status,
    Subresource::Scale,
    Subresource::Binding,
    Subresource::Eviction,
    Subresource::Log,
    Subresource::Exec,
    Subresource::Attach,
    Subresource::PortForward,
    Subresource::Proxy,
    Subresource::Finalize,
    Subresource::Token,
    Subresource::Ephemeralcontainers,
];

/// One served resource (all its served versions).
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// API group; "" for the core group.
    pub group: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
    /// The version objects are stored in; requests in other versions are converted.
    pub storage_version: String,
    pub kind: String,
    pub list_kind: String,
    /// Lowercase plural: the URL segment.
    pub plural: String,
    pub singular: String,
    pub scope: Scope,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// Verbs of the main resource, in discovery order.
    pub verbs: Vec<String>,
    /// True for resources defined by a CustomResourceDefinition.
    pub custom: bool,
}

impl ResourceInfo {
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    pub fn has_subresource(&self, s: Subresource) -> bool {
        self.subresources.contains(&s)
    }

    pub fn serves_version(&self, v: &str) -> bool {
        self.versions.iter().any(|x| x == v)
    }

    /// `group/version` (or `version` for the core group).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The group-qualified plural name used in messages (`deployments.apps`, `pods`).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key prefix of this resource (every object's key starts with it).
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("/registry/{}/{}/", group, self.plural)
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    /// Storage key prefix for every object of a namespace.
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{}/", self.key_prefix(), namespace)
    }
}

/// Shared handle to a resource description.
pub type ResourceRef = Arc<ResourceInfo>;

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Def {
    group: &'static str,
    versions: &'static [&'static str],
    storage: &'static str,
    kind: &'static str,
    plural: &'static str,
    scope: Scope,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    sub: &'static [Subresource],
    verbs: &'static [&'static str],
}

use Scope::{Cluster, Namespaced};
use Subresource as S;

const ALL: &[&str] = &["all"];

#[rustfmt::skip]
const BUILTIN: &[Def] = &[
    // core/v1
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Namespace", plural: "namespaces", scope: Cluster, short: &["ns"], categories: &[], sub: &[S::Status, S::Finalize], verbs: &["create", "delete", "get", "list", "patch", "update", "watch"] },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Pod", plural: "pods", scope: Namespaced, short: &["po"], categories: ALL, sub: &[S::Status, S::Binding, S::Eviction, S::Log, S::Exec, S::Attach, S::PortForward, S::Proxy, S::Ephemeralcontainers], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Node", plural: "nodes", scope: Cluster, short: &["no"], categories: &[], sub: &[S::Status, S::Proxy], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Service", plural: "services", scope: Namespaced, short: &["svc"], categories: ALL, sub: &[S::Status, S::Proxy], verbs: &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Endpoints", plural: "endpoints", scope: Namespaced, short: &["ep"], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "ConfigMap", plural: "configmaps", scope: Namespaced, short: &["cm"], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Secret", plural: "secrets", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "ServiceAccount", plural: "serviceaccounts", scope: Namespaced, short: &["sa"], categories: &[], sub: &[S::Token], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "Event", plural: "events", scope: Namespaced, short: &["ev"], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "PersistentVolume", plural: "persistentvolumes", scope: Cluster, short: &["pv"], categories: &[], sub: &[S::Status], verbs: CRUD },
    Def { group: "", versions: &["v1"], storage: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", scope: Namespaced, short: &["pvc"], categories: &[], sub: &[S::Status], verbs: CRUD },
    // apps/v1
    Def { group: "apps", versions: &["v1"], storage: "v1", kind: "Deployment", plural: "deployments", scope: Namespaced, short: &["deploy"], categories: ALL, sub: &[S::Status, S::Scale], verbs: CRUD },
    Def { group: "apps", versions: &["v1"], storage: "v1", kind: "ReplicaSet", plural: "replicasets", scope: Namespaced, short: &["rs"], categories: ALL, sub: &[S::Status, S::Scale], verbs: CRUD },
    Def { group: "apps", versions: &["v1"], storage: "v1", kind: "DaemonSet", plural: "daemonsets", scope: Namespaced, short: &["ds"], categories: ALL, sub: &[S::Status], verbs: CRUD },
    Def { group: "apps", versions: &["v1"], storage: "v1", kind: "StatefulSet", plural: "statefulsets", scope: Namespaced, short: &["sts"], categories: ALL, sub: &[S::Status, S::Scale], verbs: CRUD },
    Def { group: "apps", versions: &["v1"], storage: "v1", kind: "ControllerRevision", plural: "controllerrevisions", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    // batch/v1
    Def { group: "batch", versions: &["v1"], storage: "v1", kind: "Job", plural: "jobs", scope: Namespaced, short: &[], categories: ALL, sub: &[S::Status], verbs: CRUD },
    Def { group: "batch", versions: &["v1"], storage: "v1", kind: "CronJob", plural: "cronjobs", scope: Namespaced, short: &["cj"], categories: ALL, sub: &[S::Status], verbs: CRUD },
    // autoscaling: stored as v2; v1 and v2beta2 converted on the way in and out.
    Def { group: "autoscaling", versions: &["v2", "v1", "v2beta2"], storage: "v2", kind: "HorizontalPodAutoscaler", plural: "horizontalpodautoscalers", scope: Namespaced, short: &["hpa"], categories: ALL, sub: &[S::Status], verbs: CRUD },
    // coordination, discovery, networking, policy, scheduling, storage
    Def { group: "coordination.k8s.io", versions: &["v1"], storage: "v1", kind: "Lease", plural: "leases", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "discovery.k8s.io", versions: &["v1"], storage: "v1", kind: "EndpointSlice", plural: "endpointslices", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "networking.k8s.io", versions: &["v1"], storage: "v1", kind: "Ingress", plural: "ingresses", scope: Namespaced, short: &["ing"], categories: &[], sub: &[S::Status], verbs: CRUD },
    Def { group: "networking.k8s.io", versions: &["v1"], storage: "v1", kind: "IngressClass", plural: "ingressclasses", scope: Cluster, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "networking.k8s.io", versions: &["v1"], storage: "v1", kind: "NetworkPolicy", plural: "networkpolicies", scope: Namespaced, short: &["netpol"], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "policy", versions: &["v1"], storage: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", scope: Namespaced, short: &["pdb"], categories: &[], sub: &[S::Status], verbs: CRUD },
    Def { group: "scheduling.k8s.io", versions: &["v1"], storage: "v1", kind: "PriorityClass", plural: "priorityclasses", scope: Cluster, short: &["pc"], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "storage.k8s.io", versions: &["v1"], storage: "v1", kind: "StorageClass", plural: "storageclasses", scope: Cluster, short: &["sc"], categories: &[], sub: &[], verbs: CRUD },
    // rbac (stored now, enforced later)
    Def { group: "rbac.authorization.k8s.io", versions: &["v1"], storage: "v1", kind: "Role", plural: "roles", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "rbac.authorization.k8s.io", versions: &["v1"], storage: "v1", kind: "ClusterRole", plural: "clusterroles", scope: Cluster, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "rbac.authorization.k8s.io", versions: &["v1"], storage: "v1", kind: "RoleBinding", plural: "rolebindings", scope: Namespaced, short: &[], categories: &[], sub: &[], verbs: CRUD },
    Def { group: "rbac.authorization.k8s.io", versions: &["v1"], storage: "v1", kind: "ClusterRoleBinding", plural: "clusterrolebindings", scope: Cluster, short: &[], categories: &[], sub: &[], verbs: CRUD },
    // apiextensions
    Def { group: "apiextensions.k8s.io", versions: &["v1"], storage: "v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", scope: Cluster, short: &["crd", "crds"], categories: &["api-extensions"], sub: &[S::Status], verbs: CRUD },
];

/// The built-in resources, in discovery order.
pub fn builtin_resources() -> Vec<ResourceRef> {
    BUILTIN
        .iter()
        .map(|d| {
            Arc::new(ResourceInfo {
                group: d.group.into(),
                versions: d.versions.iter().map(|s| s.to_string()).collect(),
                storage_version: d.storage.into(),
                kind: d.kind.into(),
                list_kind: format!("{}List", d.kind),
                plural: d.plural.into(),
                singular: d.kind.to_lowercase(),
                scope: d.scope,
                short_names: d.short.iter().map(|s| s.to_string()).collect(),
                categories: d.categories.iter().map(|s| s.to_string()).collect(),
                subresources: d.sub.to_vec(),
                verbs: d.verbs.iter().map(|s| s.to_string()).collect(),
                custom: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_groups_namespaces_and_scopes() {
        let all = builtin_resources();
        let pods = all.iter().find(|r| r.plural == "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(deploy.key_prefix(), "/registry/apps/deployments/");
        assert_eq!(deploy.qualified_plural(), "deployments.apps");
        let nodes = all.iter().find(|r| r.plural == "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/core/nodes/n1");
    }

    #[test]
    fn plurals_and_short_names_are_unique_per_group() {
        let all = builtin_resources();
        let mut seen = std::collections::HashSet::new();
        for r in &all {
            assert!(
                seen.insert((r.group.clone(), r.plural.clone())),
                "{}",
                r.plural
            );
            for s in &r.short_names {
                assert!(seen.insert(("short".into(), s.clone())), "short name {s}");
            }
        }
    }

    #[test]
    fn subresources_round_trip_their_names() {
        for s in ALL_SUBRESOURCES {
            assert_eq!(Subresource::parse(s.name()), Some(*s));
        }
    }
}
