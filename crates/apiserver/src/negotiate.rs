//! Response content negotiation: plain JSON objects, `meta.k8s.io/v1` Tables (what
//! `kubectl get` asks for), and PartialObjectMetadata (metadata-only clients).

use axum::http::HeaderMap;

use crate::error::{ApiError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    Table,
    PartialMetadata,
}

/// Picks the response form from the `Accept` header (first acceptable entry wins).
pub fn output(headers: &HeaderMap) -> Result<Output> {
    let Some(accept) = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Output::Json);
    };
    let mut saw_any = false;
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut group = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(v.trim().to_string()),
                    "g" => group = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        saw_any = true;
        let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        match (json_like, as_.as_deref(), group.as_deref()) {
            (true, Some("Table"), Some("meta.k8s.io")) => return Ok(Output::Table),
            (
                true,
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
            ) => {
                return Ok(Output::PartialMetadata);
            }
            (true, None, _) => return Ok(Output::Json),
            _ => {}
        }
        if media == "application/yaml" && as_.is_none() {
            return Ok(Output::Yaml);
        }
    }
    if saw_any {
        Err(ApiError::NotAcceptable {
            accepted: "application/json, application/yaml".into(),
        })
    } else {
        Ok(Output::Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept", accept.parse().unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_tables() {
        let h = with(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(output(&h).unwrap(), Output::Table);
        assert_eq!(
            output(&with(
                "application/vnd.kubernetes.protobuf,application/json"
            ))
            .unwrap(),
            Output::Json
        );
        assert_eq!(output(&with("*/*")).unwrap(), Output::Json);
        assert!(output(&with("application/vnd.kubernetes.protobuf")).is_err());
        assert_eq!(output(&HeaderMap::new()).unwrap(), Output::Json);
    }
}
