//! Reads the prost-generated sources of the `k8s-pb` crate: every message with its fields'
//! numbers, wire kinds and message types, and the `Resource` impls (apiVersion, kind).
//!
//! prost renames messages to UpperCamelCase (`JSONSchemaProps` becomes `JsonSchemaProps`), so
//! message names are keyed here in lower case; the generator recovers the exact spelling from
//! the Go and OpenAPI names.

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use syn::{Fields, GenericArgument, Item, PathArguments, Type};

/// What a prost field holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbType {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    Bytes,
    /// Lower-cased full protobuf name of the message.
    Message(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbShape {
    Single,
    Repeated,
    /// `map<string, T>`; the field's `ty` is the value type.
    Map,
}

#[derive(Clone, Debug)]
pub struct PbField {
    pub number: u32,
    /// The Rust field name (snake case, without `r#`).
    pub rust_name: String,
    pub ty: PbType,
    pub shape: PbShape,
}

#[derive(Clone, Debug)]
pub struct PbMessage {
    /// Protobuf package, e.g. `io.k8s.api.apps.v1`.
    pub package: String,
    /// The Rust struct name (prost's spelling).
    pub rust_name: String,
    pub fields: Vec<PbField>,
    /// `(apiVersion, kind)` when k8s-pb implements `Resource` for it.
    pub resource: Option<(String, String)>,
}

/// All messages of k8s-pb, keyed by lower-cased full name.
pub fn read_all(src: &Path) -> Result<BTreeMap<String, PbMessage>> {
    let mut out = BTreeMap::new();
    for top in ["api", "apimachinery", "apiextensions_apiserver"] {
        walk(&src.join(top), &mut vec![top.to_string()], &mut out)?;
    }
    Ok(out)
}

fn walk(dir: &Path, module: &mut Vec<String>, out: &mut BTreeMap<String, PbMessage>) -> Result<()> {
    let mod_rs = dir.join("mod.rs");
    let text = std::fs::read_to_string(&mod_rs)
        .with_context(|| format!("reading {}", mod_rs.display()))?;
    let file = syn::parse_file(&text).with_context(|| format!("parsing {}", mod_rs.display()))?;
    read_items(&file.items, module, out).with_context(|| format!("in {}", mod_rs.display()))?;
    let mut subdirs: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        module.push(sub.clone());
        walk(&dir.join(&sub), module, out)?;
        module.pop();
    }
    Ok(())
}

/// `["api", "apps", "v1"]` → `io.k8s.api.apps.v1`;
/// `["apiextensions_apiserver", "pkg", ...]` → `io.k8s.apiextensions-apiserver.pkg...`.
pub fn package_of(module: &[String]) -> String {
    let mut parts = vec!["io".to_string(), "k8s".to_string()];
    for (i, m) in module.iter().enumerate() {
        parts.push(if i == 0 {
            m.replace('_', "-")
        } else {
            m.clone()
        });
    }
    parts.join(".")
}

fn read_items(
    items: &[Item],
    module: &[String],
    out: &mut BTreeMap<String, PbMessage>,
) -> Result<()> {
    let package = package_of(module);
    let mut resources = Vec::new();
    for item in items {
        match item {
            Item::Struct(s) => {
                let mut fields = Vec::new();
                if let Fields::Named(named) = &s.fields {
                    for f in &named.named {
                        let name = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
                        let name = name.trim_start_matches("r#").to_string();
                        let field = read_field(f, &name, module)
                            .with_context(|| format!("field {}.{name}", s.ident))?;
                        if let Some(field) = field {
                            fields.push(field);
                        }
                    }
                }
                let key = format!("{package}.{}", s.ident).to_lowercase();
                out.insert(
                    key,
                    PbMessage {
                        package: package.clone(),
                        rust_name: s.ident.to_string(),
                        fields,
                        resource: None,
                    },
                );
            }
            Item::Impl(imp) => {
                let Some((_, trait_path, _)) = &imp.trait_ else {
                    continue;
                };
                if trait_path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .as_deref()
                    != Some("Resource")
                {
                    continue;
                }
                let Type::Path(self_ty) = &*imp.self_ty else {
                    continue;
                };
                let Some(name) = self_ty.path.segments.last().map(|s| s.ident.to_string()) else {
                    continue;
                };
                let mut api_version = None;
                let mut kind = None;
                for it in &imp.items {
                    if let syn::ImplItem::Const(c) = it
                        && let syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }) = &c.expr
                    {
                        match c.ident.to_string().as_str() {
                            "API_VERSION" => api_version = Some(s.value()),
                            "KIND" => kind = Some(s.value()),
                            _ => {}
                        }
                    }
                }
                if let (Some(a), Some(k)) = (api_version, kind) {
                    resources.push((format!("{package}.{name}").to_lowercase(), a, k));
                }
            }
            Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    let mut sub = module.to_vec();
                    sub.push(m.ident.to_string());
                    read_items(inner, &sub, out)?;
                }
            }
            _ => {}
        }
    }
    for (key, api_version, kind) in resources {
        let Some(m) = out.get_mut(&key) else {
            bail!("Resource impl for unknown struct {key}")
        };
        m.resource = Some((api_version, kind));
    }
    Ok(())
}

fn read_field(f: &syn::Field, name: &str, module: &[String]) -> Result<Option<PbField>> {
    let Some(attr) = f.attrs.iter().find(|a| a.path().is_ident("prost")) else {
        return Ok(None);
    };
    let mut base: Option<String> = None;
    let mut repeated = false;
    let mut map: Option<String> = None;
    let mut tag: Option<u32> = None;
    attr.parse_nested_meta(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "tag" => {
                let lit: syn::LitStr = meta.value()?.parse()?;
                tag = Some(
                    lit.value()
                        .parse()
                        .map_err(|e| meta.error(format!("tag: {e}")))?,
                );
            }
            "btree_map" | "hash_map" | "map" => {
                let lit: syn::LitStr = meta.value()?.parse()?;
                map = Some(lit.value());
            }
            "bytes" | "packed" => {
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::LitStr = meta.value()?.parse()?;
                }
                if key == "bytes" {
                    base = Some(key);
                }
            }
            "repeated" => repeated = true,
            "optional" | "required" | "boxed" => {}
            _ => base = Some(key),
        }
        Ok(())
    })?;
    let number = tag.context("prost attribute without tag")?;
    let message_type = || -> Result<PbType> {
        let path = innermost_path(&f.ty).context("cannot find the message type")?;
        Ok(PbType::Message(resolve(path, module)?))
    };
    if let Some(map) = map {
        let (key, value) = map.split_once(',').context("map attribute")?;
        if key.trim() != "string" {
            bail!("map key type {key} is not string");
        }
        let ty = match value.trim() {
            "message" => message_type()?,
            other => scalar(other)?,
        };
        return Ok(Some(PbField {
            number,
            rust_name: name.to_string(),
            ty,
            shape: PbShape::Map,
        }));
    }
    let base = base.context("prost attribute without a type")?;
    let ty = if base == "message" {
        message_type()?
    } else {
        scalar(&base)?
    };
    let shape = if repeated {
        PbShape::Repeated
    } else {
        PbShape::Single
    };
    Ok(Some(PbField {
        number,
        rust_name: name.to_string(),
        ty,
        shape,
    }))
}

fn scalar(name: &str) -> Result<PbType> {
    Ok(match name {
        "string" => PbType::String,
        "int32" => PbType::Int32,
        "int64" => PbType::Int64,
        "bool" => PbType::Bool,
        "double" => PbType::Double,
        "bytes" => PbType::Bytes,
        other => bail!("unsupported protobuf scalar type {other}"),
    })
}

/// The message type inside `Option<..>`, `Vec<..>`, `Box<..>` or a map's value position.
fn innermost_path(ty: &Type) -> Option<&syn::Path> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    match last.ident.to_string().as_str() {
        "Option" | "Vec" | "Box" | "BTreeMap" | "HashMap" => {
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return None;
            };
            let inner = args.args.iter().rev().find_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })?;
            innermost_path(inner)
        }
        _ => Some(&tp.path),
    }
}

/// Resolves a Rust path (`super::super::core::v1::PodSpec`, `crate::api::...`, `PodSpec`)
/// seen in `module` to a lower-cased full protobuf name.
fn resolve(path: &syn::Path, module: &[String]) -> Result<String> {
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let (name, prefix) = segs.split_last().context("empty path")?;
    let mut m: Vec<String> = module.to_vec();
    let mut rest = prefix;
    if rest.first().map(String::as_str) == Some("crate") {
        m.clear();
        rest = &rest[1..];
    }
    for seg in rest {
        if seg == "super" {
            m.pop().context("too many `super`")?;
        } else {
            m.push(seg.clone());
        }
    }
    Ok(format!("{}.{name}", package_of(&m)).to_lowercase())
}
