//! Admission: checks and mutations that need more than the object itself — the namespace
//! must exist and not be terminating; Services get ClusterIPs and NodePorts from their ranges
//! without duplicates. Allocations are claimed as keys in the store (`/registry/ranges/...`),
//! so they are exclusive across API servers sharing a store and survive restarts.

use std::net::Ipv4Addr;

use berth_api::{FieldError, FieldErrors, meta};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::handler::Ctx;
use crate::state::ApiState;

const IP_PREFIX: &str = "/ranges/serviceips/";
const PORT_PREFIX: &str = "/ranges/servicenodeports/";

/// Allocations made for an object that must be released if it is not stored.
#[derive(Default, Debug)]
pub struct Allocations {
    keys: Vec<String>,
}

impl Allocations {
    pub async fn release(self, st: &ApiState) {
        for k in self.keys {
            let _ = st.store.delete(&k, None).await;
        }
    }
}

/// Namespaced objects may only be created in an existing namespace that is not being
/// deleted.
pub async fn check_namespace(ctx: &Ctx, obj: &Value) -> Result<()> {
    let Some(ns) = ctx.namespace() else {
        return Ok(());
    };
    let _ = obj;
    let key = format!("/registry/core/namespaces/{ns}");
    let rc = ctx.state.cache.resource("/registry/core/namespaces/");
    let nsobj = match rc.get(&key) {
        Some(o) => Some(o.value()),
        None => match ctx.state.store.get(&key).await? {
            Some(kv) => Some(crate::codec::decode_stored(&kv.value, kv.mod_revision)?),
            None => None,
        },
    };
    match nsobj {
        None => Err(ApiError::NotFound {
            qualified_resource: "namespaces".into(),
            group: String::new(),
            kind_plural: "namespaces".into(),
            name: ns.to_string(),
        }),
        Some(n) if meta::is_deleting(&n) => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            ctx.res.qualified_plural(),
            meta::name(obj).unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    }
}

fn is_service(ctx: &Ctx) -> bool {
    ctx.res.group.is_empty() && ctx.res.kind == "Service"
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(|v| v.as_str())
        .unwrap_or("ClusterIP")
}

fn owner_of(obj: &Value) -> Bytes {
    Bytes::from(format!(
        "{}/{}",
        meta::namespace(obj).unwrap_or_default(),
        meta::name(obj).unwrap_or_default()
    ))
}

/// Mutations of a new object that allocate shared resources.
fn is_crd(ctx: &Ctx) -> bool {
    ctx.res.group == "apiextensions.k8s.io" && ctx.res.kind == "CustomResourceDefinition"
}

fn is_pod(ctx: &Ctx) -> bool {
    ctx.res.group.is_empty() && ctx.res.kind == "Pod"
}

/// Kubernetes' DefaultTolerationSeconds admission: new pods tolerate not-ready and
/// unreachable nodes for the configured time unless they already tolerate those taints.
fn default_tolerations(ctx: &Ctx, pod: &mut Value) {
    let cfg = &ctx.state.config;
    let Some(spec) = pod.get_mut("spec").and_then(|s| s.as_object_mut()) else {
        return;
    };
    let slot = spec.entry("tolerations").or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!([]);
    }
    let Some(list) = slot.as_array_mut() else {
        return;
    };
    for (key, seconds) in [
        (
            "node.kubernetes.io/not-ready",
            cfg.default_not_ready_toleration_seconds,
        ),
        (
            "node.kubernetes.io/unreachable",
            cfg.default_unreachable_toleration_seconds,
        ),
    ] {
        let covered = list.iter().any(|t| {
            let k = t.get("key").and_then(|v| v.as_str()).unwrap_or("");
            let effect = t.get("effect").and_then(|v| v.as_str()).unwrap_or("");
            let exists_all =
                k.is_empty() && t.get("operator").and_then(|v| v.as_str()) == Some("Exists");
            (k == key || exists_all) && (effect == "NoExecute" || effect.is_empty())
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
        }
    }
}

pub async fn on_create(ctx: &Ctx, obj: &mut Value) -> Result<Allocations> {
    if is_pod(ctx) {
        default_tolerations(ctx, obj);
    }
    if is_crd(ctx) {
        crate::crd::add_cleanup_finalizer(obj);
        crate::crd::set_status(obj);
    }
    let mut alloc = Allocations::default();
    if is_service(ctx)
        && let Err(e) = allocate_service(ctx, obj, None, &mut alloc).await
    {
        alloc.release(&ctx.state).await;
        return Err(e);
    }
    Ok(alloc)
}

pub async fn on_update(ctx: &Ctx, new: &mut Value, old: &Value) -> Result<()> {
    if is_crd(ctx) && !meta::is_deleting(new) {
        crate::crd::set_status(new);
    }
    if is_service(ctx) {
        let mut alloc = Allocations::default();
        if let Err(e) = allocate_service(ctx, new, Some(old), &mut alloc).await {
            alloc.release(&ctx.state).await;
            return Err(e);
        }
    }
    Ok(())
}

pub async fn after_create(ctx: &Ctx, obj: &Value) {
    if is_crd(ctx) {
        crd_changed(ctx, obj).await;
    }
}

/// Makes a CRD change visible in discovery before the write returns, so that a client that
/// creates a CRD and then one of its objects finds the new resource.
async fn crd_changed(ctx: &Ctx, obj: &Value) {
    let rv = meta::meta_str(obj, "resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    ctx.state
        .cache
        .wait_for(rv, std::time::Duration::from_secs(2))
        .await;
    crate::crd::refresh(&ctx.state);
}

pub async fn after_update(ctx: &Ctx, new: &Value, old: &Value) {
    if is_crd(ctx) {
        crd_changed(ctx, new).await;
    }
    if is_service(ctx) {
        release_unused(ctx, Some(new), old).await;
    }
}

pub async fn after_delete(ctx: &Ctx, obj: &Value) {
    if is_crd(ctx) {
        crd_changed(ctx, obj).await;
    }
    if is_service(ctx) {
        release_unused(ctx, None, obj).await;
    }
}

async fn release_unused(ctx: &Ctx, new: Option<&Value>, old: &Value) {
    let keep_ips: Vec<String> = new.map(cluster_ips).unwrap_or_default();
    let keep_ports: Vec<i64> = new.map(node_ports).unwrap_or_default();
    for ip in cluster_ips(old) {
        if !keep_ips.contains(&ip) {
            let _ = ctx
                .state
                .store
                .delete(&format!("{IP_PREFIX}{ip}"), None)
                .await;
        }
    }
    for p in node_ports(old) {
        if !keep_ports.contains(&p) {
            let _ = ctx
                .state
                .store
                .delete(&format!("{PORT_PREFIX}{p}"), None)
                .await;
        }
    }
}

fn cluster_ips(obj: &Value) -> Vec<String> {
    let mut out: Vec<String> = obj
        .pointer("/spec/clusterIPs")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(|v| v.as_str())
        && !out.iter().any(|x| x == ip)
    {
        out.push(ip.to_string());
    }
    out.retain(|s| s != "None" && !s.is_empty());
    out
}

fn node_ports(obj: &Value) -> Vec<i64> {
    obj.pointer("/spec/ports")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("nodePort").and_then(|n| n.as_i64()))
                .filter(|n| *n != 0)
                .collect()
        })
        .unwrap_or_default()
}

fn invalid_service(obj: &Value, errs: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        qualified_kind: "Service".into(),
        group: String::new(),
        kind: "Service".into(),
        name: meta::name(obj).unwrap_or_default().to_string(),
        errors: FieldErrors(errs),
    }
}

async fn claim(
    st: &ApiState,
    key: String,
    owner: Bytes,
    alloc: &mut Allocations,
    dry_run: bool,
) -> Result<bool> {
    if dry_run {
        return Ok(st.store.get(&key).await?.is_none());
    }
    match st.store.create(&key, owner).await {
        Ok(_) => {
            alloc.keys.push(key);
            Ok(true)
        }
        Err(e) if e.is_already_exists() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn allocate_service(
    ctx: &Ctx,
    obj: &mut Value,
    old: Option<&Value>,
    alloc: &mut Allocations,
) -> Result<()> {
    let st = &ctx.state;
    let dry = ctx.query.dry_run;
    let owner = owner_of(obj);
    let ty = service_type(obj).to_string();
    if ty == "ExternalName" {
        if let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        return Ok(());
    }
    // ClusterIP: immutable once set; allocated when empty; "None" means headless.
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(|v| v.as_str())
        .map(String::from);
    let requested = obj
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let ip = match (&old_ip, requested.as_str()) {
        (Some(o), "") => o.clone(),
        (Some(o), r) if o == r => o.clone(),
        (Some(o), r) => {
            return Err(invalid_service(
                obj,
                vec![FieldError::invalid(
                    "spec.clusterIPs[0]",
                    format!("[]string{{\"{r}\"}}"),
                    format!("may not change once set (was {o})"),
                )],
            ));
        }
        (None, "None") => "None".to_string(),
        (None, "") => {
            let net = st.config.service_cidr;
            let size = 1u32 << (32 - net.prefix_len());
            let base = u32::from(net.network());
            // Offsets 0 (network) and 1 (the `kubernetes` Service) and the broadcast
            // address are never handed out.
            let usable = size.saturating_sub(3) as u64;
            let band = static_band(usable, 16, 256);
            let mut found = None;
            for k in dynamic_order(usable, band) {
                let off = k as u32 + 2;
                let cand = Ipv4Addr::from(base + off).to_string();
                if claim(st, format!("{IP_PREFIX}{cand}"), owner.clone(), alloc, dry).await? {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or_else(|| {
                invalid_service(
                    obj,
                    vec![FieldError::invalid(
                        "spec.clusterIPs",
                        "",
                        "failed to allocate IP: range is full",
                    )],
                )
            })?
        }
        (None, r) => {
            let parsed: Ipv4Addr = r.parse().map_err(|_| {
                invalid_service(
                    obj,
                    vec![FieldError::invalid(
                        "spec.clusterIPs[0]",
                        r,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )],
                )
            })?;
            if !st.config.service_cidr.contains(&parsed) {
                return Err(invalid_service(
                    obj,
                    vec![FieldError::invalid(
                        "spec.clusterIPs",
                        format!("[]string{{\"{r}\"}}"),
                        format!(
                            "failed to allocate IP {r}: the provided IP ({r}) is not in the valid range. The range of valid IPs is {}",
                            st.config.service_cidr
                        ),
                    )],
                ));
            }
            if !claim(st, format!("{IP_PREFIX}{r}"), owner.clone(), alloc, dry).await? {
                return Err(invalid_service(
                    obj,
                    vec![FieldError::invalid(
                        "spec.clusterIPs",
                        format!("[]string{{\"{r}\"}}"),
                        format!("failed to allocate IP {r}: provided IP is already allocated"),
                    )],
                ));
            }
            r.to_string()
        }
    };
    if let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }

    // NodePorts for NodePort and LoadBalancer services.
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let old_ports = old.map(node_ports).unwrap_or_default();
    let (lo, hi) = st.config.node_port_range;
    let n_ports = obj
        .pointer("/spec/ports")
        .and_then(|p| p.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    for i in 0..n_ports {
        let current = obj
            .pointer(&format!("/spec/ports/{i}/nodePort"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if !wants_node_ports {
            if current != 0 && ty == "ClusterIP" {
                return Err(invalid_service(
                    obj,
                    vec![FieldError::forbidden(
                        format!("spec.ports[{i}].nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    )],
                ));
            }
            continue;
        }
        let port = if current != 0 {
            if old_ports.contains(&current) {
                current
            } else {
                if current < lo as i64 || current > hi as i64 {
                    return Err(invalid_service(
                        obj,
                        vec![FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            current,
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                            ),
                        )],
                    ));
                }
                if !claim(
                    st,
                    format!("{PORT_PREFIX}{current}"),
                    owner.clone(),
                    alloc,
                    dry,
                )
                .await?
                {
                    return Err(invalid_service(
                        obj,
                        vec![FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            current,
                            "provided port is already allocated",
                        )],
                    ));
                }
                current
            }
        } else {
            let span = (hi - lo + 1) as u64;
            let band = static_band(span, 32, 128);
            let mut found = None;
            for k in dynamic_order(span, band) {
                let cand = lo as i64 + k as i64;
                if old_ports.contains(&cand) {
                    continue;
                }
                if claim(
                    st,
                    format!("{PORT_PREFIX}{cand}"),
                    owner.clone(),
                    alloc,
                    dry,
                )
                .await?
                {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or_else(|| {
                invalid_service(
                    obj,
                    vec![FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        0,
                        "failed to allocate a nodePort: range is full",
                    )],
                )
            })?
        };
        if let Some(p) = obj
            .pointer_mut(&format!("/spec/ports/{i}"))
            .and_then(|p| p.as_object_mut())
        {
            p.insert("nodePort".into(), json!(port));
        }
    }
    Ok(())
}

/// The size of the lower band of a range of `size` values that dynamic allocation leaves for
/// values users ask for by name, as Kubernetes sizes it (ClusterIPs: `size/16` within
/// 16..=256; NodePorts: `size/32` within 16..=128). A Service that asks for an address or
/// port in that band only collides with another that asked for the same one.
fn static_band(size: u64, divisor: u64, max: u64) -> u64 {
    if size < 16 {
        return 0;
    }
    (size / divisor).clamp(16, max)
}

/// Offsets `0..size` in the order dynamic allocation tries them: the upper band
/// (`band..size`) from a random start, then the lower band from a random start.
fn dynamic_order(size: u64, band: u64) -> impl Iterator<Item = u64> {
    let upper = size - band;
    let up_start = if upper > 0 {
        rand::random_range(0..upper)
    } else {
        0
    };
    let low_start = if band > 0 {
        rand::random_range(0..band)
    } else {
        0
    };
    (0..upper)
        .map(move |k| band + (up_start + k) % upper)
        .chain((0..band).map(move |k| (low_start + k) % band))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_allocation_prefers_the_upper_band_and_covers_everything() {
        assert_eq!(static_band(2768, 32, 128), 86);
        assert_eq!(static_band(65533, 16, 256), 256);
        assert_eq!(static_band(253, 16, 256), 16);
        assert_eq!(static_band(5, 16, 256), 0);
        let order: Vec<u64> = dynamic_order(100, 16).collect();
        assert!(order[..84].iter().all(|&o| o >= 16));
        assert!(order[84..].iter().all(|&o| o < 16));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(dynamic_order(5, 0).count(), 5);
    }
}
