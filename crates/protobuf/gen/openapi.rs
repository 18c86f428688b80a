//! JSON side of the table, from `k8s-openapi`'s schemars output: for every kind decoded, its
//! apiVersion and kind (the `Resource` consts) and the JSON Schema definitions of the kind and
//! of every type it reaches (property names, `required`, property types).

use k8s_openapi::Resource;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

/// A top-level kind: `(apiVersion, kind, definition name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub api_version: String,
    pub kind: String,
    pub definition: String,
}

pub struct OpenApi {
    pub roots: Vec<Root>,
    /// Kinds accepted under any apiVersion (`DeleteOptions`), with their definition name.
    pub meta_kinds: Vec<(String, String)>,
    pub definitions: Map<String, Value>,
}

struct Collector {
    generator: SchemaGenerator,
    roots: Vec<Root>,
    meta_kinds: Vec<(String, String)>,
}

impl Collector {
    fn kind<T: Resource + JsonSchema>(&mut self) {
        self.generator.subschema_for::<T>();
        self.roots.push(Root {
            api_version: T::API_VERSION.to_string(),
            kind: T::KIND.to_string(),
            definition: T::schema_name().into_owned(),
        });
    }

    fn meta_kind<T: JsonSchema>(&mut self, kind: &str) {
        self.generator.subschema_for::<T>();
        self.meta_kinds
            .push((kind.to_string(), T::schema_name().into_owned()));
    }
}

macro_rules! kinds {
    ($c:ident; $($module:ident)::+ => { $($ty:ident),* $(,)? } $($rest:tt)*) => {
        {
            use k8s_openapi::$($module)::+ as m;
            $( $c.kind::<m::$ty>(); )*
        }
        kinds!($c; $($rest)*);
    };
    ($c:ident;) => {};
}

/// The kinds the decoder accepts. Every `Resource` of the covered k8s-pb packages must be
/// listed (the generator checks it), plus subresource kinds (Scale, Eviction, TokenRequest).
pub fn collect() -> OpenApi {
    let mut c = Collector {
        generator: SchemaGenerator::new(schemars::generate::SchemaSettings::draft2020_12()),
        roots: Vec::new(),
        meta_kinds: Vec::new(),
    };
    kinds! { c;
        api::core::v1 => {
            Binding, ComponentStatus, ConfigMap, Endpoints, Event, LimitRange, Namespace, Node,
            PersistentVolume, PersistentVolumeClaim, Pod, PodTemplate, ReplicationController,
            ResourceQuota, Secret, Service, ServiceAccount,
        }
        api::apps::v1 => { ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet }
        api::batch::v1 => { CronJob, Job }
        api::autoscaling::v1 => { HorizontalPodAutoscaler, Scale }
        api::autoscaling::v2 => { HorizontalPodAutoscaler }
        api::policy::v1 => { Eviction, PodDisruptionBudget }
        api::networking::v1 => { IPAddress, Ingress, IngressClass, NetworkPolicy, ServiceCIDR }
        api::rbac::v1 => { ClusterRole, ClusterRoleBinding, Role, RoleBinding }
        api::coordination::v1 => { Lease }
        api::discovery::v1 => { EndpointSlice }
        api::scheduling::v1 => { PriorityClass }
        api::storage::v1 => { CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment }
        apiextensions_apiserver::pkg::apis::apiextensions::v1 => { CustomResourceDefinition }
        api::authentication::v1 => { SelfSubjectReview, TokenRequest, TokenReview }
        api::authorization::v1 => {
            LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview,
            SubjectAccessReview,
        }
        api::events::v1 => { Event }
        api::node::v1 => { RuntimeClass }
        api::certificates::v1 => { CertificateSigningRequest }
        api::admissionregistration::v1 => {
            MutatingWebhookConfiguration, ValidatingAdmissionPolicy,
            ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration,
        }
        api::flowcontrol::v1 => { FlowSchema, PriorityLevelConfiguration }
        apimachinery::pkg::apis::meta::v1 => { Status }
    }
    c.meta_kind::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>("DeleteOptions");
    c.meta_kind::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>("Status");
    let definitions = c.generator.take_definitions(false);
    OpenApi {
        roots: c.roots,
        meta_kinds: c.meta_kinds,
        definitions,
    }
}

/// The JSON shape of one property schema.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonShape {
    Ref(String),
    String {
        byte: bool,
    },
    Integer,
    Boolean,
    Number,
    Array(Box<JsonShape>),
    Map(Box<JsonShape>),
    /// Anything else (free-form object, `x-kubernetes-int-or-string`, ...).
    Other(Value),
}

pub fn shape(schema: &Value) -> JsonShape {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return JsonShape::Ref(name.to_string());
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => JsonShape::String {
            byte: schema.get("format").and_then(Value::as_str) == Some("byte"),
        },
        Some("integer") => JsonShape::Integer,
        Some("boolean") => JsonShape::Boolean,
        Some("number") => JsonShape::Number,
        Some("array") => match schema.get("items") {
            Some(items) => JsonShape::Array(Box::new(shape(items))),
            None => JsonShape::Other(schema.clone()),
        },
        Some("object") => match schema.get("additionalProperties") {
            Some(v) if v.is_object() => JsonShape::Map(Box::new(shape(v))),
            _ => JsonShape::Other(schema.clone()),
        },
        _ => JsonShape::Other(schema.clone()),
    }
}
