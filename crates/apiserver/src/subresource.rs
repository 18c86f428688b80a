//! Subresources: `/status` (only status changes), `/scale` (an `autoscaling/v1 Scale` view
//! of spec.replicas), `pods/binding`, `pods/eviction` and `namespaces/finalize`. Streaming
//! subresources (log, exec, attach, portforward, proxy) are served by the node agent.

use axum::http::StatusCode;
use axum::response::Response;
use berth_api::{LabelSelector, Subresource, meta};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::codec::{BodyType, FieldProblems};
use crate::error::{ApiError, Result};
use crate::handler::{Ctx, object_response};
use crate::request::Verb;
use crate::write::{Mutation, Part, guaranteed_update};

pub async fn serve(ctx: Ctx, sub: Subresource, body: Bytes) -> Result<Response> {
    match (sub, ctx.req.verb) {
        (Subresource::Status, Verb::Get) => crate::read::get(ctx).await,
        (Subresource::Status, Verb::Update) => {
            let (obj, warnings) = crate::input::object_from_body(&ctx, &body)?;
            let (code, out) = crate::write::update_with(&ctx, obj, Part::Status).await?;
            let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, out)?;
            Ok(crate::handler::with_warnings(
                object_response(&ctx, code, &out)?,
                &warnings,
            ))
        }
        (Subresource::Status, Verb::Patch) => {
            let (code, out, warnings) = crate::write::patch_with(&ctx, &body, Part::Status).await?;
            let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, out)?;
            Ok(crate::handler::with_warnings(
                object_response(&ctx, code, &out)?,
                &warnings,
            ))
        }
        (Subresource::Scale, Verb::Get) => {
            let name = ctx.name().to_string();
            let obj = crate::read::read_object(&ctx, &name, false)
                .await?
                .ok_or_else(|| ctx.not_found(&name))?;
            object_response(&ctx, StatusCode::OK, &scale_of(&obj)?)
        }
        (Subresource::Scale, Verb::Update | Verb::Patch) => scale_write(ctx, body).await,
        (Subresource::Finalize, Verb::Update) => finalize(ctx, body).await,
        (Subresource::Binding, Verb::Create) => binding(ctx, body).await,
        (Subresource::Token, Verb::Create) => crate::tokenrequest::create(ctx, body).await,
        (Subresource::Eviction, Verb::Create) => eviction(ctx, body).await,
        (
            Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward
            | Subresource::Proxy,
            _,
        ) => crate::proxy::serve(ctx, sub, body).await,
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The Scale view of an object with spec.replicas.
pub fn scale_of(obj: &Value) -> Result<Value> {
    let selector = match obj.pointer("/spec/selector") {
        Some(sel) if sel.is_object() => LabelSelector::from_structured(sel)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let m = meta::metadata(obj).cloned().unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(f) {
            metadata.insert(f.into(), v.clone());
        }
    }
    let mut status =
        json!({"replicas": obj.pointer("/status/replicas").and_then(|v| v.as_i64()).unwrap_or(0)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(|v| v.as_i64()).unwrap_or(0)},
        "status": status,
    }))
}

async fn scale_write(ctx: Ctx, body: Bytes) -> Result<Response> {
    let name = ctx.name().to_string();
    let ty = crate::input::body_type(&ctx)?;
    let is_patch = ctx.req.verb == Verb::Patch;
    let mut problems = FieldProblems::default();
    let doc = if ty == BodyType::Protobuf {
        crate::protobuf::decode(&body)?
    } else {
        crate::codec::decode_object(&body, ty, &mut problems)?
    };
    if !is_patch {
        let mut d = doc.clone();
        crate::input::check_type(&ctx.res, &ctx.req.version, &mut d, Some("Scale")).or_else(
            |_| {
                if d.get("apiVersion").and_then(|v| v.as_str()) == Some("autoscaling/v1") {
                    Ok(())
                } else {
                    Err(ApiError::bad_request(
                        "the body of a scale update must be an autoscaling/v1 Scale",
                    ))
                }
            },
        )?;
    }
    let precondition = doc
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))
        })
        .transpose()?;
    let (out, _) = guaranteed_update(&ctx, &name, Part::Main, precondition, |old| {
        let old = old.ok_or_else(|| ctx.not_found(&name))?;
        let current = scale_of(old)?;
        let scale = if is_patch {
            crate::patch::apply_patch(&ctx, ty, &current, &doc)?
        } else {
            doc.clone()
        };
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::Invalid {
                qualified_kind: "Scale.autoscaling".into(),
                group: "autoscaling".into(),
                kind: "Scale".into(),
                name: name.clone(),
                errors: berth_api::FieldErrors(vec![berth_api::FieldError::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                )]),
            });
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        Ok(Mutation::Write(new))
    })
    .await?;
    object_response(&ctx, StatusCode::OK, &scale_of(&out)?)
}

async fn finalize(ctx: Ctx, body: Bytes) -> Result<Response> {
    let (obj, _) = crate::input::object_from_body(&ctx, &body)?;
    let name = ctx.name().to_string();
    let finalizers = obj
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or(json!([]));
    let (out, _) = guaranteed_update(&ctx, &name, Part::Main, None, |old| {
        let mut new = old.ok_or_else(|| ctx.not_found(&name))?.clone();
        new["spec"]["finalizers"] = finalizers.clone();
        Ok(Mutation::Write(new))
    })
    .await?;
    object_response(&ctx, StatusCode::OK, &out)
}

async fn binding(ctx: Ctx, body: Bytes) -> Result<Response> {
    let ty = crate::input::body_type(&ctx)?;
    let doc = crate::input::decode_any(&body, ty, &mut FieldProblems::default())?;
    let node = doc
        .pointer("/target/name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("Binding.target.name is required"))?
        .to_string();
    let name = ctx.name().to_string();
    let now = crate::codec::now_rfc3339();
    // One write: spec.nodeName and the PodScheduled condition together.
    guaranteed_update(&ctx, &name, Part::MainAndStatus, None, |old| {
        let old = old.ok_or_else(|| ctx.not_found(&name))?;
        if meta::is_deleting(old) {
            return Err(ctx.conflict(
                &name,
                format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(existing) = old
            .pointer("/spec/nodeName")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
        {
            return Err(ctx.conflict(
                &name,
                format!("pod {name} is already assigned to node \"{existing}\""),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        new["status"]["conditions"] = Value::Array(conds);
        Ok(Mutation::Write(new))
    })
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(crate::handler::json_response(StatusCode::CREATED, &status))
}

async fn eviction(ctx: Ctx, body: Bytes) -> Result<Response> {
    let ty = crate::input::body_type(&ctx)?;
    let doc = crate::input::decode_any(&body, ty, &mut FieldProblems::default())?;
    let mut opts = crate::delete::DeleteOptions::default();
    if let Some(d) = doc.get("deleteOptions") {
        opts.grace_period = d.get("gracePeriodSeconds").and_then(|v| v.as_i64());
        opts.uid = d
            .pointer("/preconditions/uid")
            .and_then(|v| v.as_str())
            .map(String::from);
    }
    let name = ctx.name().to_string();
    crate::delete::delete_object(&ctx, &name, &opts).await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(crate::handler::json_response(StatusCode::CREATED, &status))
}
