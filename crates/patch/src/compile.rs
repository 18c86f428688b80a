//! Compiles OpenAPI v3 schemas (the built-in components, or a CRD's `openAPIV3Schema`) into
//! the node arena, following Kubernetes' conversion rules (kube-openapi `schemaconv`):
//!
//! * `x-kubernetes-list-type` decides a list's kind; without it, `patch-strategy: merge`
//!   makes a list-map keyed by the merge key (or a set without one), anything else atomic.
//! * `x-kubernetes-map-type: atomic` makes an object atomic; on a `$ref` property it
//!   overrides the referenced type's setting for that field only.
//! * Objects without properties, and everything below `x-kubernetes-preserve-unknown-fields`,
//!   accept undeclared keys as untyped values; `Quantity` is a scalar and `RawExtension`
//!   untyped and atomic.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::generate::REF_PREFIX;
use crate::overlay::{self, TypeRule, Zero};
use crate::schema::{
    Arena, DEDUCED, Field, ListKind, ListNode, Node, NodeId, OBJECT_META, ObjectNode, Scalar,
    Strategy, UNTYPED_ATOMIC, ZeroField,
};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";

pub(crate) struct Compiler<'a> {
    components: &'a Map<String, Value>,
    /// Overlay rules by type name, when compiling the built-in components.
    rules: HashMap<&'static str, &'static TypeRule>,
    nodes: Vec<Node>,
    named: HashMap<String, NodeId>,
    /// Field-level `x-kubernetes-map-type` overrides: (slot, referenced node, atomic).
    overrides: Vec<(NodeId, NodeId, bool)>,
    override_slots: HashMap<(NodeId, bool), NodeId>,
    error: Option<Error>,
    path: String,
}

fn untyped(atomic: bool) -> Node {
    let id = if atomic { UNTYPED_ATOMIC } else { DEDUCED };
    Node::Any {
        list: ListNode {
            items: UNTYPED_ATOMIC,
            kind: ListKind::Atomic,
        },
        object: ObjectNode {
            rest: Some(id),
            atomic,
            ..ObjectNode::default()
        },
    }
}

impl<'a> Compiler<'a> {
    /// A compiler resolving `$ref`s in `components`; `builtin` adds the overlay's zero-value
    /// knowledge of Go structs.
    pub(crate) fn new(components: &'a Map<String, Value>, builtin: bool) -> Self {
        let rules = if builtin {
            overlay::TYPES.iter().map(|t| (t.name, t)).collect()
        } else {
            HashMap::new()
        };
        Compiler {
            components,
            rules,
            nodes: vec![untyped(false), untyped(true)],
            named: HashMap::new(),
            overrides: Vec::new(),
            override_slots: HashMap::new(),
            error: None,
            path: String::new(),
        }
    }

    fn fail(&mut self, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(Error::invalid_schema(&self.path, message));
        }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// The node of the component schema `name`, compiling it (and what it references) on
    /// first use.
    pub(crate) fn named(&mut self, name: &str) -> NodeId {
        if let Some(id) = self.named.get(name) {
            return *id;
        }
        match name {
            RAW_EXTENSION => {
                self.named.insert(name.to_string(), UNTYPED_ATOMIC);
                return UNTYPED_ATOMIC;
            }
            QUANTITY => {
                let id = self.push(Node::Scalar(Scalar::Untyped));
                self.named.insert(name.to_string(), id);
                return id;
            }
            _ => {}
        }
        let slot = self.push(Node::Scalar(Scalar::Untyped));
        self.named.insert(name.to_string(), slot);
        let Some(schema) = self.components.get(name) else {
            self.fail(format!("reference to unknown schema {name:?}"));
            return slot;
        };
        let saved = std::mem::replace(&mut self.path, format!("#/components/schemas/{name}"));
        let mut node = self.node_of(schema, false);
        if let Some(rule) = self.rules.get(name)
            && let Node::Object(object) = &mut node
        {
            for field in rule.fields {
                let zero = match field.zero {
                    Zero::Omitted => continue,
                    Zero::Object => ZeroField::Object,
                    Zero::Null => ZeroField::Null,
                };
                object.zero.push((field.name.into(), zero));
            }
        }
        self.path = saved;
        self.nodes[slot as usize] = node;
        slot
    }

    /// The node id for an inline schema or a `$ref`.
    fn schema(&mut self, schema: &Value, preserve: bool) -> NodeId {
        if let Some(name) = reference(schema) {
            return match name.strip_prefix(REF_PREFIX) {
                Some(name) => self.named(name),
                None => {
                    self.fail(format!("unsupported $ref {name:?}"));
                    DEDUCED
                }
            };
        }
        let node = self.node_of(schema, preserve);
        self.push(node)
    }

    fn node_of(&mut self, schema: &Value, preserve: bool) -> Node {
        let Some(map) = schema.as_object() else {
            // `true` schemas and the like: anything goes.
            return untyped(false);
        };
        let preserve =
            preserve || map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Node::Scalar(Scalar::Untyped);
        }
        let ty = match map.get("type") {
            None => "",
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or(""),
            Some(other) => {
                self.fail(format!("type must be a string, got {other}"));
                ""
            }
        };
        match ty {
            "" => Node::Any {
                list: self.list(map, preserve),
                object: self.object(map, preserve),
            },
            "object" => Node::Object(self.object(map, preserve)),
            "array" => Node::List(self.list(map, preserve)),
            "integer" | "number" => Node::Scalar(Scalar::Numeric),
            "boolean" => Node::Scalar(Scalar::Boolean),
            "string" => match map.get("format").and_then(Value::as_str).unwrap_or("") {
                "" | "byte" => Node::Scalar(Scalar::String),
                _ => Node::Scalar(Scalar::Untyped),
            },
            other => {
                self.fail(format!("unrecognized type {other:?}"));
                Node::Scalar(Scalar::Untyped)
            }
        }
    }

    fn object(&mut self, map: &Map<String, Value>, preserve: bool) -> ObjectNode {
        let mut object = ObjectNode::default();
        let properties = map.get("properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (name, member) in properties {
                let len = self.path.len();
                self.path.push_str(".properties.");
                self.path.push_str(name);
                let field = self.field(member, preserve);
                self.path.truncate(len);
                object.fields.insert(name.as_str().into(), field);
            }
        }
        let no_properties = properties.is_none_or(Map::is_empty);
        object.rest = match map.get("additionalProperties") {
            None | Some(Value::Null) => (preserve || no_properties).then_some(DEDUCED),
            Some(Value::Bool(true)) => Some(DEDUCED),
            Some(Value::Bool(false)) => None,
            Some(schema) => {
                let len = self.path.len();
                self.path.push_str(".additionalProperties");
                let id = self.schema(schema, preserve);
                self.path.truncate(len);
                Some(id)
            }
        };
        object.atomic = match map.get("x-kubernetes-map-type") {
            None => false,
            Some(v) if v == "atomic" => true,
            Some(v) if v == "granular" => false,
            Some(v) => {
                self.fail(format!("unknown x-kubernetes-map-type {v}"));
                false
            }
        };
        if map.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
            self.add_type_and_object_meta(&mut object);
        }
        object
    }

    /// Declares `apiVersion`, `kind` and `metadata` (as ObjectMeta), as Kubernetes does for
    /// the root of a custom resource and for embedded resources.
    fn add_type_and_object_meta(&mut self, object: &mut ObjectNode) {
        for name in ["apiVersion", "kind"] {
            if !object.fields.contains_key(name) {
                let id = self.push(Node::Scalar(Scalar::String));
                object.fields.insert(name.into(), Field::plain(id));
            }
        }
        let meta = self.named(OBJECT_META);
        object.fields.insert("metadata".into(), Field::plain(meta));
    }

    fn field(&mut self, member: &Value, preserve: bool) -> Field {
        let mut node = self.schema(member, preserve);
        let ext = member.as_object();
        let get = |key: &str| ext.and_then(|m| m.get(key));
        if reference(member).is_some()
            && let Some(map_type) = get("x-kubernetes-map-type")
        {
            let atomic = match map_type.as_str() {
                Some("atomic") => Some(true),
                Some("granular") => Some(false),
                _ => {
                    self.fail(format!("unknown x-kubernetes-map-type {map_type}"));
                    None
                }
            };
            if let Some(atomic) = atomic {
                node = self.override_slot(node, atomic);
            }
        }
        // `retainKeys` only matters to clients (which send `$retainKeys`); the server applies
        // the directive.
        let strategy = match get("x-kubernetes-patch-strategy") {
            None => Strategy::Default,
            Some(Value::String(s)) => parse_strategy(s).0,
            Some(other) => Strategy::Invalid(other.to_string().into()),
        };
        let merge_key = get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(Into::into);
        Field {
            node,
            strategy,
            merge_key,
            default: get("default").cloned(),
        }
    }

    fn override_slot(&mut self, target: NodeId, atomic: bool) -> NodeId {
        if let Some(slot) = self.override_slots.get(&(target, atomic)) {
            return *slot;
        }
        let slot = self.push(Node::Scalar(Scalar::Untyped));
        self.overrides.push((slot, target, atomic));
        self.override_slots.insert((target, atomic), slot);
        slot
    }

    fn list(&mut self, map: &Map<String, Value>, preserve: bool) -> ListNode {
        let kind = match map.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("atomic") => ListKind::Atomic,
            Some("set") => ListKind::Set,
            Some("map") => match map
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
            {
                Some(keys) if !keys.is_empty() && keys.iter().all(Value::is_string) => {
                    ListKind::Map(
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(Into::into)
                            .collect(),
                    )
                }
                _ => {
                    self.fail("x-kubernetes-list-type map needs x-kubernetes-list-map-keys");
                    ListKind::Atomic
                }
            },
            Some(other) => {
                self.fail(format!("unknown x-kubernetes-list-type {other:?}"));
                ListKind::Atomic
            }
            None => match map
                .get("x-kubernetes-patch-strategy")
                .and_then(Value::as_str)
            {
                Some("merge" | "merge,retainKeys") => {
                    match map
                        .get("x-kubernetes-patch-merge-key")
                        .and_then(Value::as_str)
                    {
                        Some(key) => ListKind::Map(vec![key.into()].into()),
                        None => ListKind::Set,
                    }
                }
                _ => ListKind::Atomic,
            },
        };
        let items = match map.get("items") {
            None => UNTYPED_ATOMIC,
            Some(items @ Value::Object(_)) => {
                let len = self.path.len();
                self.path.push_str(".items");
                let id = self.schema(items, preserve);
                self.path.truncate(len);
                id
            }
            Some(_) => {
                self.fail("arrays must have exactly one items schema");
                UNTYPED_ATOMIC
            }
        };
        ListNode { items, kind }
    }

    /// Compiles a CRD's `openAPIV3Schema` and types its `metadata` as ObjectMeta.
    pub(crate) fn custom_resource_root(&mut self, schema: &Value) -> Result<NodeId> {
        self.path = "openAPIV3Schema".to_string();
        if !schema.is_object() {
            return Err(Error::invalid_schema(
                &self.path,
                "must be an object schema",
            ));
        }
        let mut node = self.node_of(schema, false);
        let object = match &mut node {
            Node::Object(o) | Node::Any { object: o, .. } => o,
            _ => {
                return Err(Error::invalid_schema(
                    &self.path,
                    "the root of a custom resource must be of type object",
                ));
            }
        };
        let mut object = std::mem::take(object);
        self.add_type_and_object_meta(&mut object);
        let root = self.push(Node::Object(object));
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        Ok(root)
    }

    /// The finished arena, or the first error found.
    pub(crate) fn finish(mut self) -> Result<Arena> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        for (slot, target, atomic) in std::mem::take(&mut self.overrides) {
            let mut node = self.nodes[target as usize].clone();
            match &mut node {
                Node::Object(o) | Node::Any { object: o, .. } => o.atomic = atomic,
                _ => {}
            }
            self.nodes[slot as usize] = node;
        }
        Ok(Arena { nodes: self.nodes })
    }
}

/// The `$ref` of a schema, directly or as its single `allOf` member.
fn reference(schema: &Value) -> Option<&str> {
    let map = schema.as_object()?;
    if let Some(Value::String(r)) = map.get("$ref") {
        return Some(r);
    }
    match map.get("allOf") {
        Some(Value::Array(all)) if all.len() == 1 => all[0].get("$ref")?.as_str(),
        _ => None,
    }
}

/// Splits `x-kubernetes-patch-strategy` as apimachinery's `extractRetainKeysPatchStrategy`.
fn parse_strategy(s: &str) -> (Strategy, bool) {
    fn one(s: &str) -> Strategy {
        match s {
            "merge" => Strategy::Merge,
            "replace" => Strategy::Replace,
            _ => Strategy::Default,
        }
    }
    let parts: Vec<&str> = s.split(',').collect();
    match parts.as_slice() {
        ["retainKeys"] => (Strategy::Default, true),
        [single] => (one(single), false),
        ["retainKeys", other] | [other, "retainKeys"] => (one(other), true),
        _ => (Strategy::Invalid(s.into()), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::from_crd_openapi;
    use serde_json::json;

    #[test]
    fn strategies_parse_like_apimachinery() {
        assert_eq!(parse_strategy("merge"), (Strategy::Merge, false));
        assert_eq!(parse_strategy("retainKeys"), (Strategy::Default, true));
        assert_eq!(parse_strategy("merge,retainKeys"), (Strategy::Merge, true));
        assert_eq!(
            parse_strategy("retainKeys,replace"),
            (Strategy::Replace, true)
        );
        assert!(matches!(
            parse_strategy("merge,replace").0,
            Strategy::Invalid(_)
        ));
    }

    #[test]
    fn crd_schema_compiles_with_extensions() {
        let schema = from_crd_openapi(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["id"],
                            "items": {"type": "object", "properties": {"id": {"type": "string"}, "v": {"type": "integer"}}}
                        },
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}}
                    }
                }
            }
        }))
        .unwrap();
        let arena = &schema.arena;
        let root = arena.object(schema.root).unwrap();
        assert!(root.fields.contains_key("apiVersion"));
        let meta = root.fields.get("metadata").unwrap().node;
        assert!(
            arena
                .object(meta)
                .unwrap()
                .fields
                .contains_key("managedFields")
        );
        let spec = arena.object(root.fields["spec"].node).unwrap();
        assert_eq!(
            arena.list(spec.fields["items"].node).unwrap().kind,
            ListKind::Map(vec!["id".into()].into())
        );
        assert_eq!(
            arena.list(spec.fields["tags"].node).unwrap().kind,
            ListKind::Set
        );
        assert_eq!(
            arena.object(spec.fields["free"].node).unwrap().rest,
            Some(DEDUCED)
        );
        assert!(arena.object(spec.fields["sel"].node).unwrap().atomic);
        assert_eq!(arena.object(spec.fields["sel"].node).unwrap().rest, None);
    }

    #[test]
    fn bad_crd_schemas_are_errors_with_a_path() {
        let err = from_crd_openapi(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "l": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}
            }}}
        }))
        .unwrap_err();
        assert!(err.is_invalid_schema());
        assert!(
            err.to_string()
                .contains("openAPIV3Schema.properties.spec.properties.l"),
            "{err}"
        );
        let err = from_crd_openapi(&json!({"type": "string"})).unwrap_err();
        assert!(err.to_string().contains("type object"), "{err}");
        let err =
            from_crd_openapi(&json!({"type": "object", "properties": {"a": {"type": "strange"}}}))
                .unwrap_err();
        assert!(err.to_string().contains("strange"), "{err}");
    }
}
