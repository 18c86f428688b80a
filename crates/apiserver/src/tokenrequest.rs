//! `serviceaccounts/<name>/token` (TokenRequest): issues a ServiceAccount token for the
//! audiences and lifetime asked for, optionally bound to a pod.

use axum::http::StatusCode;
use axum::response::Response;
use berth_api::meta;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::codec::FieldProblems;
use crate::error::{ApiError, Result};
use crate::handler::{Ctx, json_response};
use crate::satokens::{Claims, ISSUER, KubeClaims, Ref};

const DEFAULT_SECONDS: i64 = 3600;
const MIN_SECONDS: i64 = 600;
const MAX_SECONDS: i64 = 48 * 3600;

pub async fn create(ctx: Ctx, body: Bytes) -> Result<Response> {
    let ty = crate::input::body_type(&ctx)?;
    let req = if body.iter().all(|b| b.is_ascii_whitespace()) {
        json!({})
    } else {
        crate::input::decode_any(&body, ty, &mut FieldProblems::default())?
    };
    let ns = ctx.namespace().unwrap_or("default").to_string();
    let name = ctx.name().to_string();
    let sa = crate::read::read_object(&ctx, &name, false)
        .await?
        .ok_or_else(|| ctx.not_found(&name))?;
    let sa_uid = meta::meta_str(&sa, "uid").unwrap_or_default().to_string();
    let spec = req.get("spec").cloned().unwrap_or(json!({}));
    let seconds = spec
        .get("expirationSeconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(ApiError::Invalid {
            qualified_kind: "TokenRequest.authentication.k8s.io".into(),
            group: "authentication.k8s.io".into(),
            kind: "TokenRequest".into(),
            name: name.clone(),
            errors: berth_api::FieldErrors(vec![berth_api::FieldError::invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 10 minutes",
            )]),
        });
    }
    let seconds = seconds.min(MAX_SECONDS);
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    // A token bound to a pod lives no longer than the pod.
    let pod = match spec.get("boundObjectRef") {
        Some(r) if r.get("kind").and_then(|k| k.as_str()) == Some("Pod") => {
            let pod_name = r
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let key = format!("/registry/core/pods/{ns}/{pod_name}");
            let uid = match ctx.state.store.get(&key).await? {
                Some(kv) => crate::codec::decode_stored(&kv.value, kv.mod_revision)?
                    .pointer("/metadata/uid")
                    .and_then(|u| u.as_str())
                    .map(String::from),
                None => None,
            };
            let uid = uid.ok_or_else(|| ApiError::NotFound {
                qualified_resource: "pods".into(),
                group: String::new(),
                kind_plural: "pods".into(),
                name: pod_name.clone(),
            })?;
            if let Some(want) = r
                .get("uid")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                && want != uid
            {
                return Err(ctx.conflict(&name, format!("the UID in the bound object reference ({want}) does not match the UID in record ({uid})")));
            }
            Some(Ref {
                name: pod_name,
                uid,
            })
        }
        Some(r) if r.get("kind").is_some() => {
            return Err(ApiError::bad_request(format!(
                "cannot bind a token to a {}: only Pod is supported",
                r["kind"]
            )));
        }
        _ => None,
    };
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: format!("system:serviceaccount:{ns}:{name}"),
        aud: audiences.clone(),
        exp: now + seconds,
        iat: now,
        nbf: now,
        jti: crate::codec::new_uid(),
        kube: KubeClaims {
            namespace: ns.clone(),
            serviceaccount: Ref {
                name: name.clone(),
                uid: sa_uid,
            },
            pod,
        },
    };
    let token = ctx.state.auth.service_account_keys().issue(&claims);
    let expires = jiff::Timestamp::from_second(now + seconds)
        .map(|t| format!("{}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
        .unwrap_or_default();
    let mut out_spec = spec.clone();
    out_spec["audiences"] = json!(audiences);
    out_spec["expirationSeconds"] = json!(seconds);
    let body: Value = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": out_spec,
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(json_response(StatusCode::CREATED, &body))
}
