//! Encoding of objects: what is stored (JSON without `resourceVersion`, which the store's
//! revision supplies), how request bodies are decoded (JSON, YAML, protobuf) and checked for
//! duplicate fields, and timestamps/UIDs the server assigns.

use berth_store::Revision;
use bytes::Bytes;
use serde_json::Value;

use crate::error::{ApiError, Result};

/// Largest request body accepted (Kubernetes' limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn set_resource_version(obj: &mut Value, rv: Revision) {
    if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// The bytes stored for an object: its JSON without `metadata.resourceVersion` (serialized
/// directly, skipping that one field, without copying the object).
pub fn encode_for_store(obj: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&WithoutResourceVersion(obj)).unwrap_or_default())
}

struct WithoutResourceVersion<'a>(&'a Value);

impl serde::Serialize for WithoutResourceVersion<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(s);
        };
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match (k.as_str(), v) {
                ("metadata", Value::Object(meta)) => map.serialize_entry(k, &MetaWithout(meta))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct MetaWithout<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for MetaWithout<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let n = self.0.len() - usize::from(self.0.contains_key("resourceVersion"));
        let mut map = s.serialize_map(Some(n))?;
        for (k, v) in self.0 {
            if k != "resourceVersion" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Decodes a stored value and sets its resourceVersion.
pub fn decode_stored(value: &[u8], rv: Revision) -> Result<Value> {
    let mut obj: Value = serde_json::from_slice(value)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))?;
    set_resource_version(&mut obj, rv);
    Ok(obj)
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    format!("{}", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The media type of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    Protobuf,
    JsonPatch,
    MergePatch,
    StrategicMergePatch,
    ApplyPatch,
}

impl BodyType {
    pub fn from_content_type(ct: Option<&str>) -> Option<BodyType> {
        let ct = ct.unwrap_or("application/json");
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match base.as_str() {
            "application/json" | "" => BodyType::Json,
            "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
            "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
            "application/json-patch+json" => BodyType::JsonPatch,
            "application/merge-patch+json" => BodyType::MergePatch,
            "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
            "application/apply-patch+yaml" | "application/apply-patch+json" => BodyType::ApplyPatch,
            _ => return None,
        })
    }
}

/// Unknown or duplicate fields found while decoding, reported according to the request's
/// `fieldValidation`.
#[derive(Clone, Debug, Default)]
pub struct FieldProblems {
    pub duplicates: Vec<String>,
    pub unknown: Vec<String>,
}

impl FieldProblems {
    pub fn is_empty(&self) -> bool {
        self.duplicates.is_empty() && self.unknown.is_empty()
    }

    /// Messages in the form Kubernetes uses for strict decoding errors and warnings.
    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        out.extend(
            self.duplicates
                .iter()
                .map(|f| format!("duplicate field \"{f}\"")),
        );
        out
    }
}

/// Decodes a JSON or YAML object body, collecting duplicate keys.
pub fn decode_object(body: &[u8], ty: BodyType, problems: &mut FieldProblems) -> Result<Value> {
    let value: Value = match ty {
        BodyType::Json
        | BodyType::JsonPatch
        | BodyType::MergePatch
        | BodyType::StrategicMergePatch => {
            check_duplicate_keys(body, problems)?;
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding request body: {}", json_error(&e)))
            })?
        }
        BodyType::Yaml | BodyType::ApplyPatch => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("error decoding YAML: body is not UTF-8"))?;
            if text.trim_start().starts_with('{') {
                check_duplicate_keys(body, problems)?;
            }
            let mut opts = serde_saphyr::Options::default();
            opts.legacy_octal_numbers = true;
            opts.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
            serde_saphyr::from_str_with_options::<Value>(text, opts)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
        }
        BodyType::Protobuf => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/yaml".into(),
            });
        }
    };
    Ok(value)
}

fn json_error(e: &serde_json::Error) -> String {
    format!("{e}")
}

/// Walks JSON text and records keys that occur twice in one object (`spec.replicas`).
fn check_duplicate_keys(body: &[u8], problems: &mut FieldProblems) -> Result<()> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;

    struct Walk<'a> {
        path: String,
        out: &'a mut Vec<String>,
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{}", self.path, key)
                };
                if !seen.insert(key) {
                    self.out.push(path.clone());
                }
                map.next_value_seed(Walk {
                    path,
                    out: &mut *self.out,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{}]", self.path, i),
                    out: &mut *self.out,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> std::result::Result<(), E> {
            Ok(())
        }
    }

    let mut de = serde_json::Deserializer::from_slice(body);
    Walk {
        path: String::new(),
        out: &mut problems.duplicates,
    }
    .deserialize(&mut de)
    .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_have_no_resource_version() {
        let obj = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let b = encode_for_store(&obj);
        assert!(!String::from_utf8_lossy(&b).contains("resourceVersion"));
        let back = decode_stored(&b, 9).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn duplicate_keys_are_found_with_their_paths() {
        let mut p = FieldProblems::default();
        decode_object(
            br#"{"spec":{"replicas":1,"replicas":2},"items":[{"a":1,"a":2}]}"#,
            BodyType::Json,
            &mut p,
        )
        .unwrap();
        assert_eq!(
            p.duplicates,
            vec!["spec.replicas".to_string(), "items[0].a".to_string()]
        );
    }

    #[test]
    fn yaml_reads_legacy_octal_like_kubectl() {
        let mut p = FieldProblems::default();
        let v = decode_object(b"spec:\n  defaultMode: 0644\n", BodyType::Yaml, &mut p).unwrap();
        assert_eq!(v["spec"]["defaultMode"], 420);
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        let mut p = FieldProblems::default();
        let e = decode_object(b"{\"a\":", BodyType::Json, &mut p).unwrap_err();
        assert_eq!(e.code(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyType::from_content_type(Some("application/json; charset=utf-8")),
            Some(BodyType::Json)
        );
        assert_eq!(
            BodyType::from_content_type(Some("application/apply-patch+yaml")),
            Some(BodyType::ApplyPatch)
        );
        assert_eq!(BodyType::from_content_type(Some("text/plain")), None);
    }
}
