//! Generator of `src/generated.rs`, the decoder's static table.
//!
//! Three sources, each authoritative for one thing, cross-checked against each other:
//! - `k8s-pb` 0.9.0 (prost-generated from the upstream `generated.proto` files): messages,
//!   field numbers, protobuf value kinds, message types, and `Resource` kinds.
//! - `k8s-openapi` 0.29 (`v1_33`) through its schemars output: the JSON property names and
//!   types, and the apiVersion/kind of every decoded kind.
//! - `gen/go-presence.tsv`, extracted from the Go type definitions (k8s.io/api,
//!   apimachinery, apiextensions-apiserver at `GO_TAG`): which fields are Go pointers,
//!   `omitempty` or `inline`, and the Go declaration order.
//!
//! A proto field is matched to its JSON property by the Go json name, which must equal the
//! prost name compared case-insensitively with underscores and other punctuation removed
//! (`pod_cidr` ~ `podCIDR`, `ref` ~ `$ref`); the property must exist in the OpenAPI
//! definition with a compatible type, and every property must be matched. Any mismatch is a
//! hard error, except the fields listed in `NEWER_FIELDS` (present in k8s-pb, which tracks a
//! newer Kubernetes than v1.33, and decoded like unknown fields: skipped).

pub mod go;
mod k8s_pb;
mod openapi;

use anyhow::{Context, Result, bail, ensure};
use k8s_pb::{PbField, PbMessage, PbShape, PbType};
use openapi::JsonShape;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use go::GoPresence;

/// Go module tag the presence facts were extracted from (matches k8s-openapi's `v1_33`).
pub const GO_TAG: &str = "v0.33.13";

/// The k8s-pb packages whose kinds are decoded. Every `Resource` in them must be a root in
/// `openapi::collect` (or be listed in `NEWER_KINDS`).
pub const PACKAGES: &[&str] = &[
    "api/core/v1",
    "api/apps/v1",
    "api/batch/v1",
    "api/autoscaling/v1",
    "api/autoscaling/v2",
    "api/policy/v1",
    "api/networking/v1",
    "api/rbac/v1",
    "api/coordination/v1",
    "api/discovery/v1",
    "api/scheduling/v1",
    "api/storage/v1",
    "api/authentication/v1",
    "api/authorization/v1",
    "api/events/v1",
    "api/node/v1",
    "api/certificates/v1",
    "api/admissionregistration/v1",
    "api/flowcontrol/v1",
    "apiextensions_apiserver/pkg/apis/apiextensions/v1",
    "apimachinery/pkg/apis/meta/v1",
];

/// Kinds of the covered packages that k8s-openapi `v1_33` does not have (added later).
const NEWER_KINDS: &[&str] = &["io.k8s.api.storage.v1.volumeattributesclass"];

/// Fields k8s-pb has but Kubernetes v1.33 does not (`message.rust_field_name`). Skipped when
/// decoding, exactly as Go skips fields it does not know.
const NEWER_FIELDS: &[&str] = &[
    "io.k8s.api.core.v1.Container.restart_policy_rules",
    "io.k8s.api.core.v1.EnvVarSource.file_key_ref",
    "io.k8s.api.core.v1.EphemeralContainerCommon.restart_policy_rules",
    "io.k8s.api.core.v1.NodeStatus.declared_features",
    "io.k8s.api.core.v1.PodSpec.hostname_override",
    "io.k8s.api.core.v1.PodSpec.workload_ref",
    "io.k8s.api.core.v1.PodStatus.allocated_resources",
    "io.k8s.api.core.v1.PodStatus.extended_resource_claim_status",
    "io.k8s.api.core.v1.PodStatus.resources",
    "io.k8s.api.core.v1.VolumeProjection.pod_certificate",
    "io.k8s.api.storage.v1.CSIDriverSpec.service_account_token_in_secrets",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionCondition.observed_generation",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus.observed_generation",
];

/// Messages with their own JSON encoding in Go (custom `MarshalJSON`).
const SPECIAL: &[(&str, &str)] = &[
    ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", "Time"),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        "MicroTime",
    ),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.Duration", "Duration"),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1", "RawJson"),
    ("io.k8s.apimachinery.pkg.api.resource.Quantity", "Quantity"),
    (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "IntOrString",
    ),
    ("io.k8s.apimachinery.pkg.runtime.RawExtension", "RawJson"),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        "RawJson",
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
        "SchemaOrArray",
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
        "SchemaOrBool",
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
        "SchemaOrStringArray",
    ),
];

/// The field layout each special codec relies on: (number, prost name, type, shape).
fn special_layout(codec: &str) -> &'static [(u32, &'static str, &'static str, &'static str)] {
    match codec {
        "Time" | "MicroTime" => &[
            (1, "seconds", "int64", "single"),
            (2, "nanos", "int32", "single"),
        ],
        "Duration" => &[(1, "duration", "int64", "single")],
        "Quantity" => &[(1, "string", "string", "single")],
        "IntOrString" => &[
            (1, "type", "int64", "single"),
            (2, "int_val", "int32", "single"),
            (3, "str_val", "string", "single"),
        ],
        "RawJson" => &[(1, "raw", "bytes", "single")],
        "SchemaOrArray" => &[
            (1, "schema", "message", "single"),
            (2, "j_son_schemas", "message", "repeated"),
        ],
        "SchemaOrBool" => &[
            (1, "allows", "bool", "single"),
            (2, "schema", "message", "single"),
        ],
        "SchemaOrStringArray" => &[
            (1, "schema", "message", "single"),
            (2, "property", "string", "repeated"),
        ],
        _ => &[],
    }
}

/// Where the k8s-pb sources are: the registry copy cargo resolved for this workspace.
pub fn locate_k8s_pb_src(manifest_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let pkg = meta["packages"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["name"] == "k8s-pb" && p["version"] == "0.9.0")
        })
        .context("k8s-pb 0.9.0 is not in the dependency graph")?;
    let manifest = pkg["manifest_path"]
        .as_str()
        .context("k8s-pb manifest_path")?;
    Ok(Path::new(manifest)
        .parent()
        .context("manifest dir")?
        .join("src"))
}

/// Go package directories (relative to a directory holding checkouts named `api`,
/// `apimachinery` and `apiextensions-apiserver`) with their protobuf package names.
pub fn go_packages() -> Vec<(String, String)> {
    PACKAGES
        .iter()
        .map(|p| {
            let module: Vec<String> = p.split('/').map(String::from).collect();
            let dir = match module[0].as_str() {
                "api" => format!("api/{}", module[1..].join("/")),
                "apimachinery" => format!("apimachinery/{}", module[1..].join("/")),
                _ => format!("apiextensions-apiserver/{}", module[1..].join("/")),
            };
            (dir, k8s_pb::package_of(&module))
        })
        .collect()
}

/// Header of `gen/go-presence.tsv`.
pub fn go_presence_header() -> String {
    format!(
        "# Go JSON presence facts of the protobuf-tagged struct fields of k8s.io/api,\n\
         # k8s.io/apimachinery and k8s.io/apiextensions-apiserver at {GO_TAG}, in Go declaration order.\n\
         # Columns: protobuf message, field number, json name (empty when inline),\n\
         # flags (p = Go pointer, o = omitempty, i = inline, - = none).\n\
         # Regenerate: cargo run -p berth-protobuf --example regenerate -- --go-src DIR\n\
         # (DIR holds checkouts named api, apimachinery and apiextensions-apiserver at {GO_TAG}).\n"
    )
}

/// Header of `src/generated.rs`.
const HEADER: &str = "// @generated by `cargo run -p berth-protobuf --example regenerate` from k8s-pb 0.9.0,\n\
// k8s-openapi 0.29 (v1_33) and gen/go-presence.tsv. Do not edit; the test\n\
// `generated_table_is_up_to_date` fails when this file is stale.\n";

/// Lower-case, letters and digits only: `pod_cidr` and `podCIDR` both become `podcidr`.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

struct Built {
    name: String,
    codec: &'static str,
    /// (number, json, type, shape, flags), sorted by number.
    fields: Vec<(u32, String, PbType, PbShape, u8)>,
    order: Vec<usize>,
}

/// Produces the text of `src/generated.rs`.
pub fn generate(k8s_pb_src: &Path, go: &GoPresence) -> Result<String> {
    let pb = k8s_pb::read_all(k8s_pb_src)?;
    let api = openapi::collect();
    let defs = &api.definitions;

    // Exact spelling of every message name, keyed by its lower-cased form.
    let mut canonical: BTreeMap<String, String> = BTreeMap::new();
    let names = defs
        .keys()
        .cloned()
        .chain(go.messages.keys().cloned())
        .chain(SPECIAL.iter().map(|(n, _)| n.to_string()));
    for name in names {
        let lower = name.to_lowercase();
        if let Some(prev) = canonical.get(&lower) {
            ensure!(
                *prev == name,
                "message names {prev} and {name} differ only in case"
            );
        }
        canonical.insert(lower, name);
    }
    let canon = |key: &str| -> Result<String> {
        canonical.get(key).cloned().with_context(|| {
            format!("no Go, OpenAPI or special definition for protobuf message {key}")
        })
    };

    // Every Resource of the covered packages must be decodable.
    let root_defs: BTreeSet<String> = api
        .roots
        .iter()
        .map(|r| r.definition.to_lowercase())
        .collect();
    for package in PACKAGES {
        let package = k8s_pb::package_of(&package.split('/').map(String::from).collect::<Vec<_>>());
        for (key, m) in &pb {
            if m.package == package
                && m.resource.is_some()
                && !root_defs.contains(key)
                && !NEWER_KINDS.contains(&key.as_str())
            {
                bail!(
                    "k8s-pb kind {key} is not listed in gen/openapi.rs (add it, or to NEWER_KINDS)"
                );
            }
        }
    }
    for root in &api.roots {
        let key = root.definition.to_lowercase();
        let m = pb
            .get(&key)
            .with_context(|| format!("k8s-pb has no message for kind {}", root.definition))?;
        if let Some((api_version, kind)) = &m.resource {
            ensure!(
                *api_version == root.api_version && *kind == root.kind,
                "kind {} is {api_version} {kind} in k8s-pb but {} {} in k8s-openapi",
                root.definition,
                root.api_version,
                root.kind
            );
        }
    }

    let mut queue: VecDeque<String> = api
        .roots
        .iter()
        .map(|r| r.definition.to_lowercase())
        .collect();
    queue.extend(api.meta_kinds.iter().map(|(_, d)| d.to_lowercase()));
    let mut built: BTreeMap<String, Built> = BTreeMap::new();
    let mut found = Found::default();
    let sources = Sources {
        defs,
        go,
        canonical: &canonical,
    };
    while let Some(key) = queue.pop_front() {
        if built.contains_key(&key) {
            continue;
        }
        let m = pb
            .get(&key)
            .with_context(|| format!("k8s-pb has no message {key}"))?;
        // Named slices (`type ExtraValue []string`) exist only in protobuf; keep prost's name.
        let name = if found.lists.contains(&key) {
            format!("{}.{}", m.package, m.rust_name)
        } else {
            canon(&key)?
        };
        let b = if let Some((_, codec)) = SPECIAL.iter().find(|(n, _)| *n == name) {
            build_special(&name, codec, m)?
        } else if found.lists.contains(&key) {
            build_list(&name, m)?
        } else {
            build_object(&name, m, &sources, &mut found)?
        };
        for (_, _, ty, _, _) in &b.fields {
            if let PbType::Message(t) = ty {
                queue.push_back(t.clone());
            }
        }
        built.insert(key, b);
    }
    for f in NEWER_FIELDS {
        ensure!(
            found.newer_used.contains(f),
            "NEWER_FIELDS entry {f} matches no field; remove it"
        );
    }

    // Render.
    let mut keys: Vec<&String> = built.keys().collect();
    keys.sort_by_key(|k| built[*k].name.clone());
    let position: BTreeMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    ensure!(keys.len() < u16::MAX as usize, "too many messages");
    let mut out = String::from(HEADER);
    out.push_str(
        "\nuse crate::schema::Shape::{Map, Repeated as Rep, Single as One};\n\
         use crate::schema::Type::{Bool as B, Bytes as Y, Double as D, Int32 as I32, Int64 as I64, Message as M, String as S};\n\
         use crate::schema::{Codec, INLINE as I, Message, OMITEMPTY as O, POINTER as P, f};\n\n",
    );
    writeln!(
        out,
        "pub(crate) static MESSAGES: [Message; {}] = [",
        keys.len()
    )?;
    for (i, key) in keys.iter().enumerate() {
        let b = &built[*key];
        writeln!(
            out,
            "    // {i}\n    Message {{\n        name: {:?},\n        codec: Codec::{},\n        fields: &[",
            b.name, b.codec
        )?;
        for (number, json, ty, shape, flags) in &b.fields {
            let ty = match ty {
                PbType::String => "S".to_string(),
                PbType::Int32 => "I32".to_string(),
                PbType::Int64 => "I64".to_string(),
                PbType::Bool => "B".to_string(),
                PbType::Double => "D".to_string(),
                PbType::Bytes => "Y".to_string(),
                PbType::Message(t) => format!("M({})", position[t.as_str()]),
            };
            let shape = match shape {
                PbShape::Single => "One",
                PbShape::Repeated => "Rep",
                PbShape::Map => "Map",
            };
            let mut fl: Vec<&str> = Vec::new();
            if flags & 1 != 0 {
                fl.push("P");
            }
            if flags & 2 != 0 {
                fl.push("O");
            }
            if flags & 4 != 0 {
                fl.push("I");
            }
            let fl = if fl.is_empty() {
                "0".to_string()
            } else {
                fl.join(" | ")
            };
            writeln!(
                out,
                "            f({number}, {json:?}, {ty}, {shape}, {fl}),"
            )?;
        }
        let order: Vec<String> = b.order.iter().map(|o| o.to_string()).collect();
        writeln!(
            out,
            "        ],\n        order: &[{}],\n    }},",
            order.join(", ")
        )?;
    }
    out.push_str("];\n\n");

    let mut kinds: Vec<(String, String, usize)> = api
        .roots
        .iter()
        .map(|r| {
            (
                r.api_version.clone(),
                r.kind.clone(),
                position[r.definition.to_lowercase().as_str()],
            )
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    writeln!(
        out,
        "/// `(apiVersion, kind, message)`, sorted.\npub(crate) static KINDS: [(&str, &str, u16); {}] = [",
        kinds.len()
    )?;
    for (a, k, i) in &kinds {
        writeln!(out, "    ({a:?}, {k:?}, {i}),")?;
    }
    out.push_str("];\n\n");
    let mut meta: Vec<(String, usize)> = api
        .meta_kinds
        .iter()
        .map(|(k, d)| (k.clone(), position[d.to_lowercase().as_str()]))
        .collect();
    meta.sort();
    writeln!(
        out,
        "/// Kinds every group version serves (`metav1.AddToGroupVersion`), sorted.\npub(crate) static META_KINDS: [(&str, u16); {}] = [",
        meta.len()
    )?;
    for (k, i) in &meta {
        writeln!(out, "    ({k:?}, {i}),")?;
    }
    out.push_str("];\n");
    Ok(out)
}

fn pb_type_name(ty: &PbType) -> &'static str {
    match ty {
        PbType::String => "string",
        PbType::Int32 => "int32",
        PbType::Int64 => "int64",
        PbType::Bool => "bool",
        PbType::Double => "double",
        PbType::Bytes => "bytes",
        PbType::Message(_) => "message",
    }
}

fn build_special(name: &str, codec: &'static str, m: &PbMessage) -> Result<Built> {
    let layout = special_layout(codec);
    ensure!(
        m.fields.len() == layout.len(),
        "{name}: expected {} fields for codec {codec}",
        layout.len()
    );
    let mut fields = Vec::new();
    for (number, rust_name, ty, shape) in layout {
        let f = m
            .fields
            .iter()
            .find(|f| f.number == *number)
            .with_context(|| format!("{name}: no field {number}"))?;
        let actual_shape = match f.shape {
            PbShape::Single => "single",
            PbShape::Repeated => "repeated",
            PbShape::Map => "map",
        };
        ensure!(
            f.rust_name == *rust_name && pb_type_name(&f.ty) == *ty && actual_shape == *shape,
            "{name}: field {number} is {} {} {actual_shape}, codec {codec} expects {rust_name} {ty} {shape}",
            f.rust_name,
            pb_type_name(&f.ty)
        );
        fields.push((
            f.number,
            f.rust_name.clone(),
            f.ty.clone(),
            f.shape.clone(),
            0,
        ));
    }
    fields.sort_by_key(|f| f.0);
    let order = (0..fields.len()).collect();
    Ok(Built {
        name: name.to_string(),
        codec,
        fields,
        order,
    })
}

fn build_list(name: &str, m: &PbMessage) -> Result<Built> {
    let [f] = &m.fields[..] else {
        bail!("{name}: a JSON array needs exactly one repeated field")
    };
    ensure!(
        f.number == 1 && f.shape == PbShape::Repeated && !matches!(f.ty, PbType::Message(_)),
        "{name}: a JSON array needs `repeated <scalar> items = 1`"
    );
    Ok(Built {
        name: name.to_string(),
        codec: "List",
        fields: vec![(1, "items".into(), f.ty.clone(), PbShape::Repeated, 0)],
        order: vec![0],
    })
}

/// What `build_object` reads.
struct Sources<'a> {
    defs: &'a serde_json::Map<String, serde_json::Value>,
    go: &'a GoPresence,
    canonical: &'a BTreeMap<String, String>,
}

/// What `build_object` learns along the way.
#[derive(Default)]
struct Found {
    /// Messages that are Go named slices (JSON arrays).
    lists: BTreeSet<String>,
    newer_used: BTreeSet<&'static str>,
    /// Inlined Go structs without an OpenAPI definition of their own: message → the
    /// definition of the parent whose properties they supply.
    inline_defs: BTreeMap<String, String>,
}

fn build_object(name: &str, m: &PbMessage, src: &Sources<'_>, found: &mut Found) -> Result<Built> {
    let (def_name, partial) = match (src.defs.contains_key(name), found.inline_defs.get(name)) {
        (true, _) => (name.to_string(), false),
        (false, Some(parent)) => (parent.clone(), true),
        (false, None) => bail!("k8s-openapi has no JSON definition {name}"),
    };
    let def = &src.defs[&def_name];
    let empty = serde_json::Map::new();
    let props = def
        .get("properties")
        .and_then(|p| p.as_object())
        .unwrap_or(&empty);
    let no_fields = Vec::new();
    let go_fields = match src.go.messages.get(name) {
        Some(fields) => fields,
        // `type X struct{}` has no tagged field to record.
        None if m.fields.is_empty() => &no_fields,
        None => bail!("gen/go-presence.tsv has no Go struct {name}"),
    };
    let mut fields: Vec<(u32, String, PbType, PbShape, u8)> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    for pbf in &m.fields {
        let Some(gof) = go_fields.iter().find(|g| g.number == pbf.number) else {
            let id = format!("{name}.{}", pbf.rust_name);
            match NEWER_FIELDS.iter().find(|n| **n == id) {
                Some(n) => {
                    found.newer_used.insert(n);
                    continue;
                }
                None => bail!(
                    "protobuf field {id} = {} has no Go field at {GO_TAG} (list it in NEWER_FIELDS?)",
                    pbf.number
                ),
            }
        };
        let mut flags = 0u8;
        if gof.pointer {
            flags |= 1;
        }
        if gof.omitempty {
            flags |= 2;
        }
        if gof.inline {
            flags |= 4;
            let PbType::Message(target) = &pbf.ty else {
                bail!("{name}.{}: inline field is not a message", pbf.rust_name)
            };
            ensure!(
                pbf.shape == PbShape::Single,
                "{name}.{}: inline field is repeated",
                pbf.rust_name
            );
            let target = src
                .canonical
                .get(target)
                .with_context(|| format!("inline target {target}"))?;
            let inlined: Vec<String> = match src.defs.get(target) {
                Some(tdef) => tdef
                    .get("properties")
                    .and_then(|p| p.as_object())
                    .unwrap_or(&empty)
                    .keys()
                    .cloned()
                    .collect(),
                None => {
                    found.inline_defs.insert(target.clone(), def_name.clone());
                    let tgo = src.go.messages.get(target).with_context(|| {
                        format!("gen/go-presence.tsv has no Go struct {target}")
                    })?;
                    tgo.iter()
                        .filter(|g| !g.inline)
                        .map(|g| g.json.clone())
                        .collect()
                }
            };
            for p in inlined {
                ensure!(
                    props.contains_key(&p),
                    "{name}: inline {target} property {p} is not a property of {def_name}"
                );
                covered.insert(p);
            }
            fields.push((
                pbf.number,
                String::new(),
                pbf.ty.clone(),
                pbf.shape.clone(),
                flags,
            ));
            continue;
        }
        ensure!(
            normalize(&pbf.rust_name) == normalize(&gof.json),
            "{name}: protobuf field {} = {} is Go json {:?}; names do not match",
            pbf.rust_name,
            pbf.number,
            gof.json
        );
        let prop = props.get(&gof.json).with_context(|| {
            format!(
                "{name}: k8s-openapi has no property {:?} (protobuf field {})",
                gof.json, pbf.rust_name
            )
        })?;
        check_type(name, pbf, &openapi::shape(prop), &mut found.lists)?;
        covered.insert(gof.json.clone());
        fields.push((
            pbf.number,
            gof.json.clone(),
            pbf.ty.clone(),
            pbf.shape.clone(),
            flags,
        ));
    }
    for g in go_fields {
        ensure!(
            m.fields.iter().any(|f| f.number == g.number),
            "{name}: Go field {:?} = {} is missing from k8s-pb",
            g.json,
            g.number
        );
    }
    for p in props.keys().filter(|_| !partial) {
        ensure!(
            covered.contains(p) || p == "apiVersion" || p == "kind",
            "{name}: JSON property {p:?} has no protobuf field"
        );
    }
    fields.sort_by_key(|f| f.0);
    let order = go_fields
        .iter()
        .filter_map(|g| fields.iter().position(|f| f.0 == g.number))
        .collect::<Vec<_>>();
    ensure!(
        order.len() == fields.len() && fields.len() < 256,
        "{name}: field order"
    );
    Ok(Built {
        name: name.to_string(),
        codec: "Object",
        fields,
        order,
    })
}

fn check_type(
    name: &str,
    f: &PbField,
    prop: &JsonShape,
    lists: &mut BTreeSet<String>,
) -> Result<()> {
    let element = match (&f.shape, prop) {
        (PbShape::Single, p) => p,
        (PbShape::Repeated, JsonShape::Array(item)) => item,
        (PbShape::Map, JsonShape::Map(value)) => value,
        (shape, p) => bail!(
            "{name}.{}: protobuf {shape:?} field but JSON {p:?}",
            f.rust_name
        ),
    };
    let ok = match (&f.ty, element) {
        (PbType::String, JsonShape::String { byte: false }) => true,
        (PbType::Bytes, JsonShape::String { byte: true }) => true,
        (PbType::Int32 | PbType::Int64, JsonShape::Integer) => true,
        (PbType::Bool, JsonShape::Boolean) => true,
        (PbType::Double, JsonShape::Number) => true,
        (PbType::Message(t), JsonShape::Ref(r)) => r.to_lowercase() == *t,
        (PbType::Message(t), JsonShape::Array(_)) => {
            lists.insert(t.clone());
            true
        }
        _ => false,
    };
    ensure!(
        ok,
        "{name}.{}: protobuf {:?} does not fit JSON {element:?}",
        f.rust_name,
        f.ty
    );
    Ok(())
}
