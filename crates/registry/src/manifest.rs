//! Parsing of pushed manifests: media type, the blobs and manifests they reference, the
//! `subject` and what a referrers listing shows of them.

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Layer media types whose blobs live elsewhere and need not be in the registry.
const FOREIGN_LAYERS: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// What a manifest refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reference {
    Blob(Digest),
    Manifest(Digest),
}

#[derive(Debug)]
pub(crate) struct ParsedManifest {
    pub media_type: String,
    pub references: Vec<Reference>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

impl ParsedManifest {
    /// The descriptor that a referrers listing shows for this manifest.
    pub(crate) fn referrer_descriptor(&self, digest: &Digest, size: u64) -> Value {
        let mut d = Map::new();
        d.insert("mediaType".into(), self.media_type.clone().into());
        d.insert("digest".into(), digest.to_string().into());
        d.insert("size".into(), size.into());
        if let Some(a) = &self.artifact_type {
            d.insert("artifactType".into(), a.clone().into());
        }
        if let Some(a) = &self.annotations {
            d.insert("annotations".into(), Value::Object(a.clone()));
        }
        Value::Object(d)
    }
}

fn invalid(reason: impl Into<String>) -> RegistryError {
    RegistryError::ManifestInvalid {
        reason: reason.into(),
    }
}

fn descriptor(v: &Value, field: &str) -> Result<(String, Digest)> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(format!("{field} is not an object")))?;
    let mt = o
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}.mediaType is missing")))?;
    let d = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}.digest is missing")))?;
    let digest = d
        .parse::<Digest>()
        .map_err(|e| invalid(format!("{field}.digest: {e}")))?;
    match o.get("size") {
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        _ => {
            return Err(invalid(format!(
                "{field}.size must be a non-negative integer"
            )));
        }
    }
    Ok((mt.to_owned(), digest))
}

/// Parses a manifest body; `content_type` is the request's Content-Type without parameters.
pub(crate) fn parse(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let o = v.as_object().ok_or_else(|| invalid("not a JSON object"))?;
    match o.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        _ => return Err(invalid("schemaVersion must be 2")),
    }
    let body_type = o.get("mediaType").and_then(Value::as_str);
    let content_type = content_type.filter(|c| !c.is_empty());
    let media_type = match (content_type, body_type) {
        (Some(c), Some(b)) if c != b => {
            return Err(invalid(format!(
                "Content-Type {c} differs from the body's mediaType {b}"
            )));
        }
        (Some(c), _) => c.to_owned(),
        (None, Some(b)) => b.to_owned(),
        (None, None) if o.contains_key("manifests") => OCI_INDEX.to_owned(),
        (None, None) => OCI_MANIFEST.to_owned(),
    };
    let mut references = Vec::new();
    let mut artifact_type = o
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = o
                .get("config")
                .ok_or_else(|| invalid("config is missing"))?;
            let (config_type, config_digest) = descriptor(config, "config")?;
            references.push(Reference::Blob(config_digest));
            if artifact_type.is_none() && media_type == OCI_MANIFEST {
                artifact_type = Some(config_type);
            }
            let layers = match o.get("layers") {
                None if media_type == OCI_MANIFEST => &Vec::new(),
                Some(Value::Array(a)) => a,
                _ => return Err(invalid("layers must be an array")),
            };
            for (i, l) in layers.iter().enumerate() {
                let (mt, d) = descriptor(l, &format!("layers[{i}]"))?;
                if !FOREIGN_LAYERS.contains(&mt.as_str()) {
                    references.push(Reference::Blob(d));
                }
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            let manifests = match o.get("manifests") {
                Some(Value::Array(a)) => a,
                _ => return Err(invalid("manifests must be an array")),
            };
            for (i, m) in manifests.iter().enumerate() {
                let (_, d) = descriptor(m, &format!("manifests[{i}]"))?;
                references.push(Reference::Manifest(d));
            }
        }
        other => return Err(invalid(format!("unsupported manifest media type {other}"))),
    }
    let subject = match o.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor(s, "subject")?.1),
    };
    let annotations = o.get("annotations").and_then(Value::as_object).cloned();
    Ok(ParsedManifest {
        media_type,
        references,
        subject,
        artifact_type,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &[u8]) -> String {
        Digest::sha256_of(s).to_string()
    }

    #[test]
    fn image_manifest_references() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(b"c"), "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(b"l"), "size": 1}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d(b"s"), "size": 1}
        });
        let p = parse(body.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(p.references.len(), 2);
        assert_eq!(p.subject.unwrap().to_string(), d(b"s"));
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn rejects_bad_manifests() {
        for (body, ct) in [
            ("{", Some(OCI_MANIFEST)),
            (r#"{"schemaVersion":1}"#, None),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                Some(OCI_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1}}"#,
                None,
            ),
            (r#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
        ] {
            let e = parse(body.as_bytes(), ct).unwrap_err();
            assert!(e.is_invalid_input(), "{body}: {e}");
        }
    }
}
