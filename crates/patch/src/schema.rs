//! The compiled schema: an arena of type nodes with exactly what patching and apply need,
//! and the public handle and lookups over it.
//!
//! Built-in kinds share one arena, built once per process from the generated component
//! schemas; a custom resource gets its own arena from its CRD's `openAPIV3Schema`. A field
//! lookup is one hash lookup; a [`SchemaRef`] is an `Arc` and an index.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

use crate::compile::Compiler;
use crate::error::Result;
use crate::generate::{self, KindInfo};

pub(crate) type NodeId = u32;

/// Untyped: scalars are leaves, lists atomic, maps granular with untyped values.
pub(crate) const DEDUCED: NodeId = 0;
/// Untyped and atomic all the way down (`runtime.RawExtension`, list items of unknown type).
pub(crate) const UNTYPED_ATOMIC: NodeId = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Numeric,
    Boolean,
    /// int-or-string, quantity, date-time and other formats: any scalar.
    Untyped,
}

/// How strategic merge patch treats a field (`x-kubernetes-patch-strategy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// No strategy: maps merge, lists are replaced.
    Default,
    Merge,
    Replace,
    /// A strategy value Kubernetes rejects when it is used (`a,b` without `retainKeys`).
    Invalid(Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub node: NodeId,
    pub strategy: Strategy,
    pub merge_key: Option<Box<str>>,
    /// The field's default, used when a list-map key field is omitted.
    pub default: Option<Value>,
}

impl Field {
    pub(crate) fn plain(node: NodeId) -> Self {
        Field {
            node,
            strategy: Strategy::Default,
            merge_key: None,
            default: None,
        }
    }
}

/// What a Go zero value of a built-in struct serializes for a field (see `overlay::Zero`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZeroField {
    Object,
    Null,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectNode {
    pub fields: HashMap<Box<str>, Field>,
    /// The type of keys that are not declared fields (`additionalProperties`, or untyped
    /// when unknown fields are preserved); `None` means undeclared keys are unknown fields.
    pub rest: Option<NodeId>,
    pub atomic: bool,
    /// Fields a Go zero value of this struct serializes (built-in kinds only).
    pub zero: Vec<(Box<str>, ZeroField)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListKind {
    Atomic,
    Set,
    Map(Box<[Box<str>]>),
}

#[derive(Debug, Clone)]
pub(crate) struct ListNode {
    pub items: NodeId,
    pub kind: ListKind,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Scalar(Scalar),
    Object(ObjectNode),
    List(ListNode),
    /// No declared type: the value's own shape picks scalar, list or object handling.
    Any {
        list: ListNode,
        object: ObjectNode,
    },
}

/// The nodes of one schema universe.
#[derive(Debug)]
pub(crate) struct Arena {
    pub nodes: Vec<Node>,
}

impl Arena {
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The object shape of a node, if it has one.
    pub(crate) fn object(&self, id: NodeId) -> Option<&ObjectNode> {
        match self.node(id) {
            Node::Object(o) | Node::Any { object: o, .. } => Some(o),
            _ => None,
        }
    }

    /// The list shape of a node, if it has one.
    pub(crate) fn list(&self, id: NodeId) -> Option<&ListNode> {
        match self.node(id) {
            Node::List(l) | Node::Any { list: l, .. } => Some(l),
            _ => None,
        }
    }

    /// The field `name` of an object node, or its `rest` type. `None`: unknown field.
    pub(crate) fn field(&self, id: NodeId, name: &str) -> Option<FieldRef<'_>> {
        let object = self.object(id)?;
        if let Some(field) = object.fields.get(name) {
            return Some(FieldRef::Declared(field));
        }
        object.rest.map(FieldRef::Rest)
    }

    /// The zero value a Go struct of this node serializes, as Kubernetes' typed conversion
    /// of an empty object produces it: non-pointer structs as `{}` (recursively), slices and
    /// maps without `omitempty` as `null`.
    pub(crate) fn zero_value(&self, id: NodeId, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(object) = self.object(id)
            && depth < 16
        {
            for (name, kind) in &object.zero {
                let value = match kind {
                    ZeroField::Null => Value::Null,
                    ZeroField::Object => match object.fields.get(name) {
                        Some(field) => self.zero_value(field.node, depth + 1),
                        None => Value::Object(Map::new()),
                    },
                };
                out.insert(name.to_string(), value);
            }
        }
        Value::Object(out)
    }
}

/// A declared field, or the type of undeclared keys of a map.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldRef<'a> {
    Declared(&'a Field),
    Rest(NodeId),
}

/// A handle to the schema of one kind (the root of its object). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SchemaRef {
    pub(crate) arena: Arc<Arena>,
    pub(crate) root: NodeId,
}

impl SchemaRef {
    /// A schema that knows nothing: maps merge, lists are replaced (strategic merge patch),
    /// lists are atomic (apply). What Kubernetes uses for fields of unknown type.
    pub fn untyped() -> SchemaRef {
        SchemaRef {
            arena: BUILTINS.arena.clone(),
            root: DEDUCED,
        }
    }
}

struct Builtins {
    arena: Arc<Arena>,
    kinds: Vec<KindInfo>,
    /// kind -> [(group, version, root)]
    by_kind: HashMap<&'static str, Vec<(&'static str, &'static str, NodeId)>>,
    components: Map<String, Value>,
}

static BUILTINS: LazyLock<Builtins> = LazyLock::new(build_builtins);

fn build_builtins() -> Builtins {
    let generate::Generated { components, kinds } = generate::generate();
    let mut compiler = Compiler::new(&components, true);
    let mut by_kind: HashMap<&'static str, Vec<(&'static str, &'static str, NodeId)>> =
        HashMap::new();
    for KindInfo {
        group,
        version,
        kind,
        schema_name,
        ..
    } in &kinds
    {
        let root = compiler.named(schema_name);
        by_kind
            .entry(kind)
            .or_default()
            .push((group, version, root));
    }
    let arena = compiler
        .finish()
        .unwrap_or_else(|e| unreachable!("the built-in schemas compile: {e}"));
    Builtins {
        arena: Arc::new(arena),
        kinds,
        by_kind,
        components,
    }
}

pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The schema of a built-in kind (`group` is `""` for the core group), or `None` when berth
/// does not know the kind. The first call builds every built-in schema (once per process).
pub fn builtin(group: &str, version: &str, kind: &str) -> Option<SchemaRef> {
    let builtins = &*BUILTINS;
    builtins
        .by_kind
        .get(kind)?
        .iter()
        .find(|(g, v, _)| *g == group && *v == version)
        .map(|(_, _, root)| SchemaRef {
            arena: builtins.arena.clone(),
            root: *root,
        })
}

/// A built-in kind and the names of its component schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinKind {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The component schema of the kind, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub schema_name: &'static str,
    /// The component schema of its list (`...DeploymentList`), for kinds that are listed.
    pub list_schema_name: Option<&'static str>,
}

/// Every built-in kind berth has a schema for, in a stable order.
pub fn builtin_kinds() -> impl Iterator<Item = BuiltinKind> {
    let builtins: &'static Builtins = &BUILTINS;
    builtins.kinds.iter().map(|k| BuiltinKind {
        group: k.group,
        version: k.version,
        kind: k.kind,
        schema_name: &k.schema_name,
        list_schema_name: k.list_schema_name.as_deref(),
    })
}

/// Every component schema of the built-in kinds, keyed by name
/// (`io.k8s.api.core.v1.PodSpec`), with descriptions and the `x-kubernetes-*` extensions,
/// ready to serve under `components.schemas` of `/openapi/v3` documents. `$ref`s point to
/// `#/components/schemas/<name>`.
pub fn component_schemas() -> &'static Map<String, Value> {
    &BUILTINS.components
}

/// The schema of a custom resource from its CRD version's `schema.openAPIV3Schema` (which
/// carries its own `x-kubernetes-*` extensions). `metadata` is typed as `ObjectMeta`, as
/// Kubernetes does, whatever the CRD declares for it.
pub fn from_crd_openapi(open_api_v3_schema: &Value) -> Result<SchemaRef> {
    let builtins = &*BUILTINS;
    let mut compiler = Compiler::new(&builtins.components, false);
    let root = compiler.custom_resource_root(open_api_v3_schema)?;
    let arena = compiler.finish()?;
    Ok(SchemaRef {
        arena: Arc::new(arena),
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_object(schema: &SchemaRef) -> &ObjectNode {
        schema.arena.object(schema.root).expect("object")
    }

    #[test]
    fn builtin_lookup_finds_served_kinds() {
        for (g, v, k) in [
            ("", "v1", "Pod"),
            ("", "v1", "Namespace"),
            ("apps", "v1", "Deployment"),
            ("batch", "v1", "CronJob"),
            ("autoscaling", "v1", "Scale"),
            ("autoscaling", "v2", "HorizontalPodAutoscaler"),
            ("autoscaling", "v2beta2", "HorizontalPodAutoscaler"),
            ("coordination.k8s.io", "v1", "Lease"),
            ("discovery.k8s.io", "v1", "EndpointSlice"),
            ("networking.k8s.io", "v1", "Ingress"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            ("policy", "v1", "Eviction"),
            ("policy", "v1", "PodDisruptionBudget"),
        ] {
            let schema = builtin(g, v, k).unwrap_or_else(|| panic!("{g}/{v} {k}"));
            assert!(root_object(&schema).fields.contains_key("metadata"), "{k}");
        }
        assert!(builtin("apps", "v1beta1", "Deployment").is_none());
        assert!(builtin("", "v1", "Nope").is_none());
    }

    #[test]
    fn handles_and_errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<SchemaRef>();
        send_sync::<crate::Error>();
        let schema = builtin("", "v1", "ConfigMap").unwrap();
        std::thread::spawn(move || assert!(schema.arena.object(schema.root).is_some()))
            .join()
            .unwrap();
    }

    #[test]
    fn builtin_kinds_name_existing_components() {
        let kinds: Vec<BuiltinKind> = builtin_kinds().collect();
        assert!(kinds.len() >= 38);
        for k in &kinds {
            assert!(component_schemas().contains_key(k.schema_name), "{k:?}");
            if let Some(list) = k.list_schema_name {
                assert!(component_schemas().contains_key(list), "{k:?}");
            }
        }
        let eviction = kinds.iter().find(|k| k.kind == "Eviction").unwrap();
        assert_eq!(eviction.list_schema_name, None);
        assert!(kinds.iter().any(|k| k.version == "v2beta2"));
    }

    #[test]
    fn containers_merge_by_name_and_are_a_list_map() {
        let schema = builtin("", "v1", "Pod").unwrap();
        let arena = &schema.arena;
        let spec = root_object(&schema).fields.get("spec").unwrap().node;
        let containers = arena
            .object(spec)
            .unwrap()
            .fields
            .get("containers")
            .unwrap();
        assert_eq!(containers.strategy, Strategy::Merge);
        assert_eq!(containers.merge_key.as_deref(), Some("name"));
        let list = arena.list(containers.node).unwrap();
        assert_eq!(list.kind, ListKind::Map(vec!["name".into()].into()));
        let ports = arena
            .object(list.items)
            .unwrap()
            .fields
            .get("ports")
            .unwrap();
        let ports_list = arena.list(ports.node).unwrap();
        assert_eq!(
            ports_list.kind,
            ListKind::Map(vec!["containerPort".into(), "protocol".into()].into())
        );
        let protocol = arena
            .object(ports_list.items)
            .unwrap()
            .fields
            .get("protocol")
            .unwrap();
        assert_eq!(protocol.default, Some(Value::from("TCP")));
    }

    #[test]
    fn label_selector_is_atomic_and_labels_are_granular() {
        let schema = builtin("apps", "v1", "Deployment").unwrap();
        let arena = &schema.arena;
        let spec = root_object(&schema).fields.get("spec").unwrap().node;
        let selector = arena.object(spec).unwrap().fields.get("selector").unwrap();
        assert!(arena.object(selector.node).unwrap().atomic);
        let metadata = root_object(&schema).fields.get("metadata").unwrap().node;
        let labels = arena
            .object(metadata)
            .unwrap()
            .fields
            .get("labels")
            .unwrap();
        let labels = arena.object(labels.node).unwrap();
        assert!(!labels.atomic);
        assert!(labels.rest.is_some());
    }

    #[test]
    fn zero_value_of_a_deployment_matches_go() {
        let schema = builtin("apps", "v1", "Deployment").unwrap();
        let zero = schema.arena.zero_value(schema.root, 0);
        assert_eq!(
            zero,
            serde_json::json!({
                "metadata": {},
                "spec": {"template": {"metadata": {}, "spec": {"containers": null}}, "strategy": {}},
                "status": {}
            })
        );
    }

    #[test]
    fn component_schemas_carry_descriptions_extensions_and_gvk() {
        let components = component_schemas();
        let pod_spec = &components["io.k8s.api.core.v1.PodSpec"];
        let containers = &pod_spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert!(
            containers["description"]
                .as_str()
                .unwrap()
                .contains("containers")
        );
        let deployment = &components["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let hpa = &components["io.k8s.api.autoscaling.v2beta2.HorizontalPodAutoscaler"];
        assert_eq!(
            hpa["x-kubernetes-group-version-kind"][0]["version"],
            "v2beta2"
        );
        assert!(
            hpa["properties"]["spec"]["allOf"][0]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("v2beta2.HorizontalPodAutoscalerSpec")
        );
        assert!(components.contains_key("io.k8s.api.apps.v1.DeploymentList"));
        // Every $ref resolves.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if let (true, Some(r)) = (k == "$ref", v.as_str()) {
                            out.push(r.to_string());
                        } else {
                            refs(v, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        for schema in components.values() {
            refs(schema, &mut all);
        }
        for r in all {
            let name = r.strip_prefix(generate::REF_PREFIX).unwrap();
            assert!(components.contains_key(name), "{r}");
        }
    }

    #[test]
    fn every_overlay_row_names_an_existing_type_and_field() {
        let components = component_schemas();
        for rule in crate::overlay::TYPES {
            let schema = components
                .get(rule.name)
                .unwrap_or_else(|| panic!("overlay type {} is not a component", rule.name));
            for field in rule.fields {
                assert!(
                    schema["properties"].get(field.name).is_some(),
                    "overlay field {}.{} does not exist",
                    rule.name,
                    field.name
                );
            }
        }
    }
}
