//! Deletion: preconditions, graceful deletion (pods on a node, namespaces), and propagation
//! policies expressed as finalizers (`orphan`, `foregroundDeletion`) that the garbage
//! collector completes; objects with finalizers get a `deletionTimestamp` and stay until
//! their finalizers are removed.

use axum::http::StatusCode;
use axum::response::Response;
use berth_api::meta;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::codec::{BodyType, FieldProblems, encode_for_store, now_rfc3339, set_resource_version};
use crate::error::{ApiError, Result};
use crate::handler::{Ctx, object_response};
use crate::read::Filter;

/// The options of a delete request (query parameters and a DeleteOptions body).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_period: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

pub fn options(ctx: &Ctx, body: &[u8]) -> Result<DeleteOptions> {
    let mut o = DeleteOptions {
        propagation: ctx.query.propagation_policy.clone(),
        grace_period: ctx.query.grace_period_seconds,
        dry_run: ctx.query.dry_run,
        ..Default::default()
    };
    if let Some(orphan) = ctx.query.orphan_dependents {
        o.propagation
            .get_or_insert_with(|| if orphan { "Orphan" } else { "Background" }.into());
    }
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        let ty = crate::input::body_type(ctx)?;
        let v = if ty == BodyType::Protobuf {
            crate::protobuf::decode(body)?
        } else {
            crate::codec::decode_object(body, ty, &mut FieldProblems::default())?
        };
        if let Some(p) = v.get("propagationPolicy").and_then(|p| p.as_str()) {
            o.propagation = Some(p.to_string());
        }
        if let Some(orphan) = v.get("orphanDependents").and_then(|p| p.as_bool()) {
            o.propagation
                .get_or_insert_with(|| if orphan { "Orphan" } else { "Background" }.into());
        }
        if let Some(g) = v.get("gracePeriodSeconds").and_then(|p| p.as_i64()) {
            o.grace_period = Some(g);
        }
        if let Some(p) = v.get("preconditions") {
            o.uid = p.get("uid").and_then(|x| x.as_str()).map(String::from);
            o.resource_version = p
                .get("resourceVersion")
                .and_then(|x| x.as_str())
                .map(String::from);
        }
        if v.get("dryRun")
            .and_then(|d| d.as_array())
            .is_some_and(|a| !a.is_empty())
        {
            o.dry_run = true;
        }
    }
    match o.propagation.as_deref() {
        None | Some("Background") | Some("Foreground") | Some("Orphan") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    if o.grace_period.is_some_and(|g| g < 0) {
        o.grace_period = Some(0);
    }
    Ok(o)
}

pub async fn delete(ctx: Ctx, body: Bytes) -> Result<Response> {
    let opts = options(&ctx, &body)?;
    let name = ctx.name().to_string();
    let (code, obj) = delete_object(&ctx, &name, &opts).await?;
    let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, obj)?;
    object_response(&ctx, code, &out)
}

fn is_pod(ctx: &Ctx) -> bool {
    ctx.res.group.is_empty() && ctx.res.kind == "Pod"
}

fn is_namespace(ctx: &Ctx) -> bool {
    ctx.res.group.is_empty() && ctx.res.kind == "Namespace"
}

/// Deletes (or starts deleting) one object. Returns 200 with the deleted object, or 202 with
/// the object when deletion waits for finalizers or a grace period.
pub async fn delete_object(
    ctx: &Ctx,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(StatusCode, Value)> {
    let key = ctx.key(name);
    for _ in 0..16 {
        let kv = ctx
            .state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ctx.not_found(name))?;
        let mut obj = crate::codec::decode_stored(&kv.value, kv.mod_revision)?;
        if let Some(uid) = &opts.uid {
            let actual = meta::meta_str(&obj, "uid").unwrap_or("");
            if uid != actual {
                return Err(ctx.conflict(name, format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                )));
            }
        }
        if let Some(rv) = &opts.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ctx.conflict(name, format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                )));
        }
        let already = meta::is_deleting(&obj);
        let mut finalizers = meta::finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                finalizers.push("orphan".into())
            }
            Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                finalizers.push("foregroundDeletion".into())
            }
            _ => {}
        }
        let grace = if is_pod(ctx) {
            pod_grace(&obj, opts)
        } else {
            0
        };
        let waits_for_namespace_finalizers = is_namespace(ctx);
        let immediate = finalizers.is_empty() && grace == 0 && !waits_for_namespace_finalizers;

        if immediate {
            if opts.dry_run {
                return Ok((StatusCode::OK, obj));
            }
            match ctx.state.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((rv, _)) => {
                    set_resource_version(&mut obj, rv);
                    crate::admission::after_delete(ctx, &obj).await;
                    return Ok((StatusCode::OK, obj));
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // Deletion that waits: record the intent on the object.
        {
            let m = meta::metadata_mut(&mut obj);
            if !already {
                let ts = if grace > 0 {
                    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    format!("{}", t.strftime("%Y-%m-%dT%H:%M:%SZ"))
                } else {
                    now_rfc3339()
                };
                m.insert("deletionTimestamp".into(), json!(ts));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            } else if grace == 0 && is_pod(ctx) {
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if finalizers.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), json!(finalizers));
            }
        }
        if is_namespace(ctx) {
            obj["status"]["phase"] = json!("Terminating");
        }
        // A pod already being deleted that is now deleted with grace 0 and no finalizers goes.
        if already && grace == 0 && finalizers.is_empty() && !waits_for_namespace_finalizers {
            if opts.dry_run {
                return Ok((StatusCode::OK, obj));
            }
            match ctx.state.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((rv, _)) => {
                    set_resource_version(&mut obj, rv);
                    crate::admission::after_delete(ctx, &obj).await;
                    return Ok((StatusCode::OK, obj));
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if opts.dry_run {
            return Ok((StatusCode::ACCEPTED, obj));
        }
        let mut stored = obj.clone();
        if let Some(m) = stored.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
        }
        if stored
            == crate::codec::decode_stored(&kv.value, 0).map(|mut v| {
                if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    m.remove("resourceVersion");
                }
                v
            })?
        {
            return Ok((StatusCode::ACCEPTED, obj));
        }
        match ctx
            .state
            .store
            .update(&key, encode_for_store(&obj), kv.mod_revision)
            .await
        {
            Ok(rv) => {
                set_resource_version(&mut obj, rv);
                return Ok((StatusCode::ACCEPTED, obj));
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Err(ctx.not_found(name)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ctx.conflict(
        name,
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": too many concurrent updates",
            ctx.res.qualified_plural()
        ),
    ))
}

/// Grace period of a pod deletion: the request's, else the pod's
/// `terminationGracePeriodSeconds`; 0 for pods not on a node or already finished.
fn pod_grace(pod: &Value, opts: &DeleteOptions) -> i64 {
    let on_node = pod
        .pointer("/spec/nodeName")
        .and_then(|v| v.as_str())
        .is_some_and(|s| !s.is_empty());
    let phase = pod
        .pointer("/status/phase")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !on_node || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    opts.grace_period.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(|v| v.as_i64())
            .unwrap_or(30)
    })
}

pub async fn delete_collection(ctx: Ctx, body: Bytes) -> Result<Response> {
    let opts = options(&ctx, &body)?;
    let filter = Filter::from_ctx(&ctx)?;
    let page = crate::read::read_page(&ctx, &filter).await?;
    let mut items = Vec::new();
    for o in page.items {
        match delete_object(&ctx, &o.name, &opts).await {
            Ok((_, obj)) => items.push(crate::versions::from_storage(
                &ctx.res,
                &ctx.req.version,
                obj,
            )?),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": ctx.res.list_kind,
        "apiVersion": ctx.api_version(),
        "metadata": {"resourceVersion": ctx.state.cache.revision().to_string()},
        "items": items,
    });
    object_response(&ctx, StatusCode::OK, &list)
}
