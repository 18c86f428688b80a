//! Writes: create, update (PUT) and patch, through one admission pipeline (names,
//! namespaces, system fields, defaulting, admission, validation, managed fields) and one
//! guaranteed-update loop (read, mutate, compare-and-swap, retry on conflict unless the
//! client sent a resourceVersion precondition).

use axum::http::StatusCode;
use axum::response::Response;
use berth_api::{FieldErrors, meta};
use bytes::Bytes;
use serde_json::Value;

use crate::admission;
use crate::codec::{BodyType, FieldProblems, encode_for_store, set_resource_version};
use crate::error::{ApiError, Result};
use crate::handler::{Ctx, object_response, with_warnings};
use crate::lifecycle;

/// How many times an unconditional update retries after losing a compare-and-swap race.
const MAX_RETRIES: usize = 16;

pub async fn create(ctx: Ctx, body: Bytes) -> Result<Response> {
    let (obj, warnings) = crate::input::object_from_body(&ctx, &body)?;
    let created = create_object(&ctx, obj).await?;
    let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, created)?;
    Ok(with_warnings(
        object_response(&ctx, StatusCode::CREATED, &out)?,
        &warnings,
    ))
}

/// Sets the namespace of `obj` from the request (checking a mismatch), or clears it for
/// cluster-scoped kinds.
fn place_in_namespace(ctx: &Ctx, obj: &mut Value) -> Result<()> {
    match ctx.namespace() {
        Some(ns) => {
            let m = meta::metadata_mut(obj);
            match m.get("namespace").and_then(|v| v.as_str()) {
                None | Some("") => {
                    m.insert("namespace".into(), Value::String(ns.to_string()));
                }
                Some(other) if other == ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        None => {
            meta::metadata_mut(obj).remove("namespace");
        }
    }
    Ok(())
}

fn invalid(ctx: &Ctx, obj: &Value, errors: FieldErrors) -> ApiError {
    let qualified_kind = if ctx.res.group.is_empty() {
        ctx.res.kind.clone()
    } else {
        format!("{}.{}", ctx.res.kind, ctx.res.group)
    };
    ApiError::Invalid {
        qualified_kind,
        group: ctx.res.group.clone(),
        kind: ctx.res.kind.clone(),
        name: meta::name(obj).unwrap_or_default().to_string(),
        errors,
    }
}

/// Admits and stores a new object (in storage version). Returns it with its
/// resourceVersion.
pub async fn create_object(ctx: &Ctx, mut obj: Value) -> Result<Value> {
    place_in_namespace(ctx, &mut obj)?;
    if let Some(url_name) = ctx.req.name.as_deref() {
        // create-on-update/apply: the URL names the object
        let body_name = meta::name(&obj).map(String::from);
        match body_name {
            None => {
                meta::metadata_mut(&mut obj).insert("name".into(), Value::String(url_name.into()));
            }
            Some(n) if n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {}
        }
    }
    lifecycle::generate_name(&ctx.res, &mut obj);
    lifecycle::prepare_create(&ctx.res, &mut obj);
    berth_api::defaults::apply(&ctx.res.group, &ctx.res.kind, &mut obj);
    crate::schema::default_and_prune_custom(&ctx.state, &ctx.res, &mut obj);
    let mut errs = FieldErrors::default();
    lifecycle::validate_metadata(&ctx.res, &obj, &mut errs);
    errs.extend(berth_api::validation::validate(
        &ctx.res.group,
        &ctx.res.kind,
        &obj,
        None,
    ));
    errs.extend(crate::schema::validate_custom(&ctx.state, &ctx.res, &obj));
    if !errs.is_empty() {
        return Err(invalid(ctx, &obj, errs));
    }
    admission::check_namespace(ctx, &obj).await?;
    let name = meta::name(&obj).unwrap_or_default().to_string();
    let key = ctx.key(&name);
    // An object the cache already holds exists: answer 409 before allocating anything for it
    // (the store's create is still the authority when the cache lags).
    if ctx
        .state
        .cache
        .resource(&ctx.res.key_prefix())
        .get(&key)
        .is_some()
    {
        return Err(ApiError::AlreadyExists {
            qualified_resource: ctx.res.qualified_plural(),
            group: ctx.res.group.clone(),
            kind_plural: ctx.res.plural.clone(),
            name,
        });
    }
    crate::managed::record(ctx, None, &mut obj, None)?;
    let allocations = admission::on_create(ctx, &mut obj).await?;
    if ctx.query.dry_run {
        allocations.release(&ctx.state).await;
        return Ok(obj);
    }
    match ctx.state.store.create(&key, encode_for_store(&obj)).await {
        Ok(rv) => {
            set_resource_version(&mut obj, rv);
            admission::after_create(ctx, &obj).await;
            Ok(obj)
        }
        Err(e) => {
            allocations.release(&ctx.state).await;
            if e.is_already_exists() {
                Err(ApiError::AlreadyExists {
                    qualified_resource: ctx.res.qualified_plural(),
                    group: ctx.res.group.clone(),
                    kind_plural: ctx.res.plural.clone(),
                    name,
                })
            } else {
                Err(e.into())
            }
        }
    }
}

/// Which part of the object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
    /// The server's own writes that set spec and status together (pods/binding).
    MainAndStatus,
}

/// The result of a mutation function inside [`guaranteed_update`].
pub enum Mutation {
    /// Store this object.
    Write(Value),
    /// The object does not exist and this object should be created instead.
    Create(Value),
}

/// Reads the current object, lets `mutate` compute the new one, admits it and stores it with
/// compare-and-swap, retrying on conflicts unless `precondition` (a resourceVersion the
/// client required) is set. Returns the stored object and whether it was created.
pub async fn guaranteed_update<F>(
    ctx: &Ctx,
    name: &str,
    part: Part,
    precondition: Option<i64>,
    mut mutate: F,
) -> Result<(Value, bool)>
where
    F: FnMut(Option<&Value>) -> Result<Mutation>,
{
    let key = ctx.key(name);
    // Start from the watch cache's copy (as Kubernetes' GuaranteedUpdate does): the
    // compare-and-swap rejects it if it is stale and returns the current value to retry
    // with. The store is read only when the cache lacks the object or is older than the
    // client's precondition.
    let cached = ctx
        .state
        .cache
        .resource(&ctx.res.key_prefix())
        .get(&key)
        .filter(|o| precondition.is_none_or(|p| o.rv >= p));
    let mut current = match cached {
        Some(o) => Some(berth_store::KeyValue {
            key: key.clone(),
            value: o.json.clone(),
            create_revision: 0,
            mod_revision: o.rv,
        }),
        None => ctx.state.store.get(&key).await?,
    };
    for _ in 0..MAX_RETRIES {
        let old = match &current {
            Some(kv) => Some(crate::codec::decode_stored(&kv.value, kv.mod_revision)?),
            None => None,
        };
        if let (Some(p), Some(kv)) = (precondition, &current)
            && p != kv.mod_revision
        {
            return Err(ctx.conflict(name, conflict_message(ctx, name)));
        }
        let new = match mutate(old.as_ref())? {
            Mutation::Create(obj) => return Ok((create_object(ctx, obj).await?, true)),
            Mutation::Write(new) => new,
        };
        let (Some(old), Some(kv)) = (old, &current) else {
            return Err(ctx.not_found(name));
        };
        let mut new = admit_update(ctx, new, &old, part).await?;
        let old_rv = kv.mod_revision;
        // Nothing changed: no write, the current object is the answer.
        let mut unchanged_check = new.clone();
        set_resource_version(&mut unchanged_check, old_rv);
        if unchanged_check == old {
            return Ok((old, false));
        }
        if ctx.query.dry_run {
            return Ok((new, false));
        }
        let finalized = lifecycle::is_finalized(&ctx.res, &new);
        let result = if finalized {
            ctx.state
                .store
                .delete(&key, Some(old_rv))
                .await
                .map(|(rv, _)| rv)
        } else {
            ctx.state
                .store
                .update(&key, encode_for_store(&new), old_rv)
                .await
        };
        match result {
            Ok(rv) => {
                set_resource_version(&mut new, rv);
                if finalized {
                    admission::after_delete(ctx, &new).await;
                } else {
                    admission::after_update(ctx, &new, &old).await;
                }
                return Ok((new, false));
            }
            Err(e) if e.is_conflict() && precondition.is_none() => {
                current = match e {
                    berth_store::Error::Conflict { current, .. } => current.map(|b| *b),
                    _ => None,
                };
                continue;
            }
            Err(e) if e.is_conflict() => {
                return Err(ctx.conflict(name, conflict_message(ctx, name)));
            }
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

pub fn conflict_message(ctx: &Ctx, name: &str) -> String {
    format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        ctx.res.qualified_plural()
    )
}

/// The admission pipeline of an update: what may not change, defaulting, validation.
async fn admit_update(ctx: &Ctx, mut new: Value, old: &Value, part: Part) -> Result<Value> {
    let name = meta::name(old).unwrap_or_default().to_string();
    match meta::name(&new) {
        None => {
            meta::metadata_mut(&mut new).insert("name".into(), Value::String(name.clone()));
        }
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    place_in_namespace(ctx, &mut new)?;
    if let Some(uid) = meta::meta_str(&new, "uid")
        && Some(uid) != meta::meta_str(old, "uid")
    {
        return Err(ctx.conflict(
            &name,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::meta_str(old, "uid").unwrap_or("")
            ),
        ));
    }
    let mut new = match part {
        Part::Main => {
            lifecycle::prepare_update(&ctx.res, &mut new, old);
            new
        }
        Part::Status => lifecycle::status_update(&new, old),
        Part::MainAndStatus => {
            let status = new.get("status").cloned();
            lifecycle::prepare_update(&ctx.res, &mut new, old);
            if let (Some(st), Some(o)) = (status, new.as_object_mut()) {
                o.insert("status".into(), st);
            }
            new
        }
    };
    // deletionTimestamp cannot be set by an update, and finalizers cannot be added once set.
    if meta::is_deleting(old) {
        let old_f = meta::finalizers(old);
        for f in meta::finalizers(&new) {
            if !old_f.contains(&f) {
                return Err(invalid(
                    ctx,
                    &new,
                    FieldErrors(vec![berth_api::FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{\"{f}\"}}"
                        ),
                    )]),
                ));
            }
        }
    }
    berth_api::defaults::apply(&ctx.res.group, &ctx.res.kind, &mut new);
    crate::schema::default_and_prune_custom(&ctx.state, &ctx.res, &mut new);
    let mut errs = FieldErrors::default();
    lifecycle::validate_metadata(&ctx.res, &new, &mut errs);
    errs.extend(berth_api::validation::validate(
        &ctx.res.group,
        &ctx.res.kind,
        &new,
        Some(old),
    ));
    errs.extend(crate::schema::validate_custom(&ctx.state, &ctx.res, &new));
    if !errs.is_empty() {
        return Err(invalid(ctx, &new, errs));
    }
    // Subresource writes (status, scale, binding) are recorded under their subresource.
    let subresource = match part {
        Part::Status => Some("status"),
        Part::Main | Part::MainAndStatus => {
            ctx.req.subresource.as_deref().filter(|s| *s != "status")
        }
    };
    crate::managed::record(ctx, Some(old), &mut new, subresource)?;
    admission::on_update(ctx, &mut new, old).await?;
    Ok(new)
}

pub async fn update(ctx: Ctx, body: Bytes) -> Result<Response> {
    let (obj, warnings) = crate::input::object_from_body(&ctx, &body)?;
    let (code, out) = update_with(&ctx, obj, Part::Main).await?;
    let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, out)?;
    Ok(with_warnings(object_response(&ctx, code, &out)?, &warnings))
}

/// PUT semantics shared by the main resource and `/status`.
pub async fn update_with(ctx: &Ctx, obj: Value, part: Part) -> Result<(StatusCode, Value)> {
    let name = ctx.name().to_string();
    let precondition = match meta::meta_str(&obj, "resourceVersion") {
        Some(rv) if !rv.is_empty() => Some(
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
        _ => None,
    };
    let allow_create = part == Part::Main && allows_create_on_update(&ctx.res);
    let (out, created) = guaranteed_update(ctx, &name, part, precondition, |old| match old {
        None if allow_create => Ok(Mutation::Create(obj.clone())),
        _ => Ok(Mutation::Write(obj.clone())),
    })
    .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        out,
    ))
}

/// Kinds whose PUT creates a missing object (as in Kubernetes).
fn allows_create_on_update(res: &berth_api::ResourceInfo) -> bool {
    matches!(
        (res.group.as_str(), res.kind.as_str()),
        ("", "Endpoints")
            | ("", "Event")
            | ("coordination.k8s.io", "Lease")
            | ("rbac.authorization.k8s.io", _)
    )
}

pub async fn patch(ctx: Ctx, body: Bytes) -> Result<Response> {
    let (code, out, warnings) = patch_with(&ctx, &body, Part::Main).await?;
    let out = crate::versions::from_storage(&ctx.res, &ctx.req.version, out)?;
    Ok(with_warnings(object_response(&ctx, code, &out)?, &warnings))
}

/// PATCH semantics shared by the main resource and `/status`.
pub async fn patch_with(
    ctx: &Ctx,
    body: &[u8],
    part: Part,
) -> Result<(StatusCode, Value, Vec<String>)> {
    let ty = crate::input::body_type(ctx)?;
    let name = ctx.name().to_string();
    let mut problems = FieldProblems::default();
    let patch_doc: Value = match ty {
        BodyType::Json | BodyType::Yaml | BodyType::Protobuf => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json".into(),
            });
        }
        _ => crate::codec::decode_object(body, ty, &mut problems)?,
    };
    let is_apply = ty == BodyType::ApplyPatch;
    if is_apply && ctx.query.field_manager.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requires fieldManager to be set",
        ));
    }
    if (is_apply || ty == BodyType::StrategicMergePatch || ty == BodyType::MergePatch)
        && !patch_doc.is_object()
    {
        return Err(ApiError::bad_request(format!(
            "the patch must be a JSON object, got {}",
            crate::input::type_name(&patch_doc)
        )));
    }
    let mut warnings = Vec::new();
    if is_apply {
        let mut applied = patch_doc.clone();
        crate::input::check_type(&ctx.res, &ctx.req.version, &mut applied, None)?;
        warnings = crate::input::field_validation(ctx, &ctx.res, &applied, problems)?;
    } else if !problems.duplicates.is_empty() {
        warnings = crate::input::field_validation(ctx, &ctx.res, &Value::Null, problems)?;
    }
    // A patch that carries metadata.resourceVersion is a precondition.
    let precondition = patch_doc
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<i64>().ok());
    let res = ctx.res.clone();
    let version = ctx.req.version.clone();
    let (out, created) = guaranteed_update(ctx, &name, part, precondition, |old| {
        let Some(old) = old else {
            if is_apply {
                let mut obj = crate::patch::apply(ctx, None, &patch_doc)?;
                crate::input::check_type(&res, &version, &mut obj, None)?;
                return Ok(Mutation::Create(crate::versions::to_storage(
                    &res, &version, obj,
                )?));
            }
            return Err(ctx.not_found(&name));
        };
        // Patches apply to the object in the version the client addressed.
        let old_v = crate::versions::from_storage(&res, &version, old.clone())?;
        let mut new = match ty {
            BodyType::ApplyPatch => crate::patch::apply(ctx, Some(&old_v), &patch_doc)?,
            _ => crate::patch::apply_patch(ctx, ty, &old_v, &patch_doc)?,
        };
        crate::input::check_type(&res, &version, &mut new, None)?;
        let mut new = crate::versions::to_storage(&res, &version, new)?;
        // The resourceVersion of a patched object is the current one unless the patch set it.
        if precondition.is_none()
            && let Some(rv) = meta::meta_str(old, "resourceVersion").map(String::from)
        {
            meta::metadata_mut(&mut new).insert("resourceVersion".into(), Value::String(rv));
        }
        Ok(Mutation::Write(new))
    })
    .await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        out,
        warnings,
    ))
}
