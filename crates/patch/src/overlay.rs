//! The overlay: list/map strategies of the built-in types that k8s-openapi's schemas do not
//! carry (`x-kubernetes-patch-strategy`, `-patch-merge-key`, `-list-type`, `-list-map-keys`,
//! `-map-type`), the defaults of list-map key fields, and which fields a Go zero value
//! serializes (needed to compute managed fields on create the way Kubernetes does).
//!
//! The facts come from the `+listType`, `+listMapKey`, `+mapType`, `+structType`,
//! `+default` markers and `patchStrategy`/`patchMergeKey` tags of the Kubernetes 1.33 Go
//! types; the rows themselves live in `overlay_table.rs`.

use serde_json::{Map, Value};

use crate::generate::field_extensions;
pub(crate) use crate::overlay_table::TYPES;

/// `x-kubernetes-list-type` (with `-list-map-keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    None,
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

/// `x-kubernetes-map-type`, on a field (overrides the referenced type's) or a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    None,
    Atomic,
    Granular,
}

/// What a Go zero value of the enclosing struct serializes for this field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// Omitted (pointer, `omitempty` slice/map, scalar).
    Omitted,
    /// A non-pointer struct: always serialized, as `{}` plus its own zero fields.
    Object,
    /// A slice or map without `omitempty`: serialized as `null`.
    Null,
}

/// Metadata of one field of a type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldRule {
    pub name: &'static str,
    pub patch_strategy: &'static str,
    pub merge_key: &'static str,
    pub list_type: ListType,
    pub map_type: MapType,
    pub zero: Zero,
    /// JSON text of the field's default, or "".
    pub default: &'static str,
}

/// Metadata of one type: whether it is atomic as a whole, and its fields' rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TypeRule {
    pub name: &'static str,
    pub map_type: MapType,
    pub fields: &'static [FieldRule],
}

/// A field with no metadata; the builder methods below add some.
pub(crate) const fn f(name: &'static str) -> FieldRule {
    FieldRule {
        name,
        patch_strategy: "",
        merge_key: "",
        list_type: ListType::None,
        map_type: MapType::None,
        zero: Zero::Omitted,
        default: "",
    }
}

impl FieldRule {
    /// `patchStrategy: merge` with a merge key (lists of objects).
    pub(crate) const fn merge(mut self, key: &'static str) -> Self {
        self.patch_strategy = "merge";
        self.merge_key = key;
        self
    }
    /// Any other patch strategy (`merge` for primitive lists, `replace`, `retainKeys`,
    /// `merge,retainKeys`); combine with [`FieldRule::key`] for a merge key.
    pub(crate) const fn strategy(mut self, strategy: &'static str) -> Self {
        self.patch_strategy = strategy;
        self
    }
    pub(crate) const fn key(mut self, key: &'static str) -> Self {
        self.merge_key = key;
        self
    }
    pub(crate) const fn atomic(mut self) -> Self {
        self.list_type = ListType::Atomic;
        self
    }
    pub(crate) const fn set(mut self) -> Self {
        self.list_type = ListType::Set;
        self
    }
    pub(crate) const fn map(mut self, keys: &'static [&'static str]) -> Self {
        self.list_type = ListType::Map(keys);
        self
    }
    pub(crate) const fn map_atomic(mut self) -> Self {
        self.map_type = MapType::Atomic;
        self
    }
    pub(crate) const fn map_granular(mut self) -> Self {
        self.map_type = MapType::Granular;
        self
    }
    pub(crate) const fn zero_object(mut self) -> Self {
        self.zero = Zero::Object;
        self
    }
    pub(crate) const fn zero_null(mut self) -> Self {
        self.zero = Zero::Null;
        self
    }
    pub(crate) const fn default(mut self, json: &'static str) -> Self {
        self.default = json;
        self
    }
}

/// A type whose fields have rules.
pub(crate) const fn t(name: &'static str, fields: &'static [FieldRule]) -> TypeRule {
    TypeRule {
        name,
        map_type: MapType::None,
        fields,
    }
}

/// An atomic type (`+structType=atomic`), with field rules.
pub(crate) const fn atomic(name: &'static str, fields: &'static [FieldRule]) -> TypeRule {
    TypeRule {
        name,
        map_type: MapType::Atomic,
        fields,
    }
}

/// Writes the table's extensions and defaults into the component schemas. Rows for types or
/// fields the components lack are skipped (a unit test checks there are none).
pub(crate) fn apply(components: &mut Map<String, Value>) {
    for rule in TYPES {
        let Some(Value::Object(schema)) = components.get_mut(rule.name) else {
            continue;
        };
        match rule.map_type {
            MapType::None => {}
            MapType::Atomic => {
                schema.insert("x-kubernetes-map-type".into(), Value::from("atomic"));
            }
            MapType::Granular => {
                schema.insert("x-kubernetes-map-type".into(), Value::from("granular"));
            }
        }
        let Some(Value::Object(properties)) = schema.get_mut("properties") else {
            continue;
        };
        for field in rule.fields {
            let Some(Value::Object(property)) = properties.get_mut(field.name) else {
                continue;
            };
            for (key, value) in field_extensions(field) {
                property.insert(key.into(), value);
            }
            if !field.default.is_empty()
                && let Ok(default) = serde_json::from_str::<Value>(field.default)
            {
                property.insert("default".into(), default);
            }
        }
    }
}
