//! Builds the OpenAPI v3 component schemas of the built-in kinds from k8s-openapi's `schemars`
//! implementations, then enriches them: the patch/apply extensions of the overlay table,
//! `x-kubernetes-group-version-kind` on top-level kinds, `<Kind>List` schemas, and the
//! `autoscaling/v2beta2` copies that k8s-openapi does not carry.

use std::collections::BTreeSet;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, networking::v1 as networking, policy::v1 as policy,
    rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::overlay::{self, FieldRule, ListType, MapType};

/// Where component schemas live, as `$ref` prefixes use it.
pub(crate) const REF_PREFIX: &str = "#/components/schemas/";

/// One top-level kind: its group/version/kind and the name of its component schema.
#[derive(Debug, Clone)]
pub(crate) struct KindInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub schema_name: String,
    /// Whether the kind has a `<Kind>List` (collections are listed and watched).
    pub listable: bool,
    /// The name of the `<Kind>List` component, once generated.
    pub list_schema_name: Option<String>,
}

/// The generated components and the kinds rooted in them.
pub(crate) struct Generated {
    pub components: Map<String, Value>,
    pub kinds: Vec<KindInfo>,
}

struct Collector {
    generator: SchemaGenerator,
    kinds: Vec<KindInfo>,
}

impl Collector {
    fn kind<T: k8s_openapi::Resource + JsonSchema>(&mut self, listable: bool) {
        self.generator.subschema_for::<T>();
        self.kinds.push(KindInfo {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            schema_name: T::schema_name().into_owned(),
            listable,
            list_schema_name: None,
        });
    }

    fn other<T: JsonSchema>(&mut self) {
        self.generator.subschema_for::<T>();
    }
}

/// Generates every component schema berth serves. Called once per process.
pub(crate) fn generate() -> Generated {
    let mut c = Collector {
        generator: SchemaSettings::openapi3().into_generator(),
        kinds: Vec::new(),
    };
    // core/v1
    c.kind::<core::Namespace>(true);
    c.kind::<core::Pod>(true);
    c.kind::<core::Node>(true);
    c.kind::<core::Service>(true);
    c.kind::<core::Endpoints>(true);
    c.kind::<core::ConfigMap>(true);
    c.kind::<core::Secret>(true);
    c.kind::<core::ServiceAccount>(true);
    c.kind::<core::Event>(true);
    c.kind::<core::PersistentVolume>(true);
    c.kind::<core::PersistentVolumeClaim>(true);
    c.kind::<core::PodTemplate>(true);
    c.kind::<core::ReplicationController>(true);
    c.kind::<core::LimitRange>(true);
    c.kind::<core::ResourceQuota>(true);
    c.kind::<core::Binding>(false);
    // apps/v1
    c.kind::<apps::Deployment>(true);
    c.kind::<apps::ReplicaSet>(true);
    c.kind::<apps::DaemonSet>(true);
    c.kind::<apps::StatefulSet>(true);
    c.kind::<apps::ControllerRevision>(true);
    // batch/v1
    c.kind::<batch::Job>(true);
    c.kind::<batch::CronJob>(true);
    // autoscaling/v1, v2 (v2beta2 is derived from v2 below)
    c.kind::<autoscaling_v1::HorizontalPodAutoscaler>(true);
    c.kind::<autoscaling_v1::Scale>(false);
    c.kind::<autoscaling_v2::HorizontalPodAutoscaler>(true);
    // coordination.k8s.io/v1, discovery.k8s.io/v1
    c.kind::<coordination::Lease>(true);
    c.kind::<discovery::EndpointSlice>(true);
    // networking.k8s.io/v1
    c.kind::<networking::Ingress>(true);
    c.kind::<networking::IngressClass>(true);
    c.kind::<networking::NetworkPolicy>(true);
    // rbac.authorization.k8s.io/v1
    c.kind::<rbac::Role>(true);
    c.kind::<rbac::ClusterRole>(true);
    c.kind::<rbac::RoleBinding>(true);
    c.kind::<rbac::ClusterRoleBinding>(true);
    // apiextensions.k8s.io/v1
    c.kind::<apiextensions::CustomResourceDefinition>(true);
    // policy/v1
    c.kind::<policy::Eviction>(false);
    c.kind::<policy::PodDisruptionBudget>(true);
    // meta/v1 types served by every API server
    c.kind::<meta::Status>(false);
    c.other::<meta::DeleteOptions>();
    c.other::<meta::WatchEvent<Value>>();
    c.other::<meta::APIGroup>();
    c.other::<meta::APIGroupList>();
    c.other::<meta::APIResourceList>();
    c.other::<meta::APIVersions>();
    c.other::<meta::Patch>();

    let mut components = c.generator.take_definitions(true);
    let mut kinds = c.kinds;
    fix_untyped(&mut components);
    overlay::apply(&mut components);
    add_v2beta2(&mut components, &mut kinds);
    add_group_version_kinds(&mut components, &kinds);
    add_lists(&mut components, &mut kinds);
    Generated { components, kinds }
}

/// `apiextensions.v1.JSON` holds any JSON value: k8s-openapi types it as an object, the
/// upstream spec leaves it untyped (it is neither pruned nor merged as an object).
fn fix_untyped(components: &mut Map<String, Value>) {
    if let Some(Value::Object(json)) =
        components.get_mut("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
    {
        json.remove("type");
        json.insert(
            "x-kubernetes-preserve-unknown-fields".into(),
            Value::Bool(true),
        );
    }
}

/// Copies every `io.k8s.api.autoscaling.v2.*` schema to `...v2beta2.*` (same structure,
/// different apiVersion) and registers the v2beta2 HorizontalPodAutoscaler kind.
fn add_v2beta2(components: &mut Map<String, Value>, kinds: &mut Vec<KindInfo>) {
    const V2: &str = "io.k8s.api.autoscaling.v2.";
    const V2BETA2: &str = "io.k8s.api.autoscaling.v2beta2.";
    let copies: Vec<(String, Value)> = components
        .iter()
        .filter_map(|(name, schema)| {
            let rest = name.strip_prefix(V2)?;
            let mut schema = schema.clone();
            rewrite_refs(
                &mut schema,
                &format!("{REF_PREFIX}{V2}"),
                &format!("{REF_PREFIX}{V2BETA2}"),
            );
            Some((format!("{V2BETA2}{rest}"), schema))
        })
        .collect();
    components.extend(copies);
    kinds.push(KindInfo {
        group: "autoscaling",
        version: "v2beta2",
        kind: "HorizontalPodAutoscaler",
        schema_name: format!("{V2BETA2}HorizontalPodAutoscaler"),
        listable: true,
        list_schema_name: None,
    });
}

fn rewrite_refs(schema: &mut Value, from: &str, to: &str) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = value
                    && let Some(rest) = target.strip_prefix(from)
                {
                    *target = format!("{to}{rest}");
                } else {
                    rewrite_refs(value, from, to);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_refs(item, from, to)),
        _ => {}
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Every group-version that has a kind, in a stable order (for DeleteOptions/WatchEvent).
fn group_versions(kinds: &[KindInfo]) -> Vec<(&'static str, &'static str)> {
    let set: BTreeSet<(&str, &str)> = kinds
        .iter()
        .filter(|k| k.kind != "Status")
        .map(|k| (k.group, k.version))
        .collect();
    set.into_iter().collect()
}

fn add_group_version_kinds(components: &mut Map<String, Value>, kinds: &[KindInfo]) {
    for k in kinds {
        if let Some(Value::Object(schema)) = components.get_mut(&k.schema_name) {
            let list = schema
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(gvk(k.group, k.version, k.kind));
            }
        }
    }
    // Request and event envelopes accepted by every group-version.
    let gvs = group_versions(kinds);
    for (name, kind) in [
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "DeleteOptions",
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
            "WatchEvent",
        ),
    ] {
        if let Some(Value::Object(schema)) = components.get_mut(name) {
            let list = gvs.iter().map(|(g, v)| gvk(g, v, kind)).collect();
            schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
}

fn add_lists(components: &mut Map<String, Value>, kinds: &mut [KindInfo]) {
    for k in kinds.iter_mut().filter(|k| k.listable) {
        let list_name = format!("{}List", k.schema_name);
        let plural = format!("{}s", k.kind);
        let api_version_doc = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
        let kind_doc = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
        let schema = json!({
            "description": format!("{}List is a list of {}.", k.kind, plural),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"description": api_version_doc, "type": "string"},
                "items": {
                    "description": format!("Items is the list of {plural}."),
                    "type": "array",
                    "items": {"$ref": format!("{REF_PREFIX}{}", k.schema_name)},
                },
                "kind": {"description": kind_doc, "type": "string"},
                "metadata": {
                    "allOf": [{"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")}],
                    "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                },
            },
            "x-kubernetes-group-version-kind": [gvk(k.group, k.version, &format!("{}List", k.kind))],
        });
        components.insert(list_name.clone(), schema);
        k.list_schema_name = Some(list_name);
    }
}

/// The extension keys the overlay writes for one field.
pub(crate) fn field_extensions(rule: &FieldRule) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    match rule.list_type {
        ListType::None => {}
        ListType::Atomic => out.push(("x-kubernetes-list-type", Value::from("atomic"))),
        ListType::Set => out.push(("x-kubernetes-list-type", Value::from("set"))),
        ListType::Map(keys) => {
            out.push(("x-kubernetes-list-map-keys", Value::from(keys.to_vec())));
            out.push(("x-kubernetes-list-type", Value::from("map")));
        }
    }
    match rule.map_type {
        MapType::None => {}
        MapType::Atomic => out.push(("x-kubernetes-map-type", Value::from("atomic"))),
        MapType::Granular => out.push(("x-kubernetes-map-type", Value::from("granular"))),
    }
    if !rule.merge_key.is_empty() {
        out.push(("x-kubernetes-patch-merge-key", Value::from(rule.merge_key)));
    }
    if !rule.patch_strategy.is_empty() {
        out.push((
            "x-kubernetes-patch-strategy",
            Value::from(rule.patch_strategy),
        ));
    }
    out
}
