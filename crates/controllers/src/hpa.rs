//! The HorizontalPodAutoscaler controller (autoscaling/v2; v2beta2 objects are the same
//! objects served in another version): reads the target's `scale` subresource, computes
//! the replicas each Resource metric (cpu or memory, Utilization or AverageValue) asks for
//! from pod usage (a [`MetricsSource`]) and pod requests, keeps within a 10% tolerance,
//! then normalizes the recommendation as Kubernetes does (`scaling`): with `behavior`, the
//! stabilization window of each direction, the rate `policies` (Pods or Percent per
//! period, over this autoscaler's recent scale events) combined by `selectPolicy`
//! (Max/Min/Disabled), with Kubernetes' defaults for what is left out; without it, the
//! scale-down window and at most max(2 × current, 4) at once; and min/max. A target outside
//! min/max is brought back without metrics. It writes the new scale and reports
//! currentMetrics and the AbleToScale/ScalingActive/ScalingLimited conditions
//! (`ScaleUpLimit`, `ScaleDownLimit`, `TooManyReplicas`, `TooFewReplicas`,
//! `DesiredWithinRange`).
//!
//! Recommendations and scale events live in memory, per autoscaler, as in Kubernetes: a
//! restarted controller starts them afresh; an autoscaler's are forgotten once it has not
//! been evaluated for [`FORGET_AFTER`] (it was deleted). Not implemented: Pods, Object and External
//! metrics (reported as ScalingActive=False) and the alpha per-rule `tolerance`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::metrics::MetricsSource;
use crate::pods::is_active;
use crate::resources::{int_value, milli_value};
use crate::scaling::{Behavior, Limits, READY, ScaleHistory};

const TOLERANCE: f64 = 0.1;

/// Settings of the autoscaler.
#[derive(Clone, Debug)]
pub struct HpaConfig {
    /// How often each autoscaler is evaluated.
    pub sync_period: Duration,
    /// Scale-down stabilization window when `behavior` names none.
    pub downscale_window: Duration,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            sync_period: Duration::from_secs(15),
            downscale_window: Duration::from_secs(300),
        }
    }
}

/// History of an autoscaler not evaluated for this long is dropped: longer than the longest
/// stabilization window (3600 s) and policy period (1800 s) validation allows, while a live
/// autoscaler is evaluated every sync period.
const FORGET_AFTER: Duration = Duration::from_secs(2 * 3600);

/// An autoscaler's history and when it was last evaluated.
struct Tracked {
    seen: Instant,
    history: ScaleHistory,
}

/// The history of `uid`, marked as seen now; histories not seen for [`FORGET_AFTER`] go.
fn tracked<'a>(
    all: &'a mut HashMap<String, Tracked>,
    uid: &str,
    now: Instant,
    current: i32,
) -> &'a mut ScaleHistory {
    all.retain(|_, t| now.saturating_duration_since(t.seen) < FORGET_AFTER);
    let t = all.entry(uid.to_string()).or_insert_with(|| Tracked {
        seen: now,
        history: ScaleHistory::new(now, current),
    });
    t.seen = now;
    &mut t.history
}

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    metrics: Arc<dyn MetricsSource>,
    config: HpaConfig,
    /// Recommendations and scale events per autoscaler uid.
    history: Mutex<HashMap<String, Tracked>>,
}

/// The autoscaler component.
pub struct HpaController {
    ctx: Arc<Ctx>,
}

impl HpaController {
    pub fn new(
        config: HpaConfig,
        client: Client,
        recorder: EventRecorder,
        metrics: Arc<dyn MetricsSource>,
    ) -> Self {
        HpaController {
            ctx: Arc::new(Ctx {
                client,
                recorder,
                metrics,
                config,
                history: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        Controller::new(
            Api::<HorizontalPodAutoscaler>::all(self.ctx.client.clone()),
            watcher::Config::default(),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, self.ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
        Ok(())
    }
}

fn error_policy(h: Arc<HorizontalPodAutoscaler>, err: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(hpa = %h.name_any(), error = %err, "autoscaler: will retry");
    Action::requeue(ctx.config.sync_period)
}

/// The resource of a scale target kind.
fn target_resource(api_version: Option<&str>, kind: &str) -> Option<ApiResource> {
    let (group, version, plural) = match kind {
        "Deployment" => ("apps", "v1", "deployments"),
        "ReplicaSet" => ("apps", "v1", "replicasets"),
        "StatefulSet" => ("apps", "v1", "statefulsets"),
        "ReplicationController" => ("", "v1", "replicationcontrollers"),
        _ => {
            let av = api_version?;
            let (g, v) = av.split_once('/').unwrap_or(("", av));
            let plural = format!("{}s", kind.to_lowercase());
            return Some(ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(g, v, kind),
                &plural,
            ));
        }
    };
    Some(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

fn request_of(p: &Pod, resource: &str) -> i64 {
    p.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| {
            c.resources
                .as_ref()?
                .requests
                .as_ref()?
                .get(resource)
                .cloned()
        })
        .map(|q| {
            if resource == "cpu" {
                milli_value(&q).unwrap_or(0)
            } else {
                int_value(&q).unwrap_or(0)
            }
        })
        .sum()
}

/// The replicas one metric asks for, and its current value for the status.
struct MetricResult {
    replicas: i32,
    status: Value,
    description: String,
}

async fn evaluate(
    ctx: &Ctx,
    ns: &str,
    selector: &Selector,
    metric: &MetricSpec,
    current: i32,
) -> Result<MetricResult> {
    let Some(res) = metric
        .resource
        .as_ref()
        .filter(|_| metric.type_ == "Resource")
    else {
        return Err(Error::invalid(
            ns,
            "spec.metrics",
            format!("metric type {} is not supported", metric.type_),
        ));
    };
    let name = res.name.as_str();
    if name != "cpu" && name != "memory" {
        return Err(Error::invalid(
            ns,
            "spec.metrics.resource.name",
            format!("resource {name} is not supported"),
        ));
    }
    let usage = ctx.metrics.pod_usage(ns, selector).await?;
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector.to_string()))
        .await
        .map_err(|e| Error::api("listing the target's pods", e))?
        .items
        .into_iter()
        .filter(is_active)
        .collect();
    let mut used = 0i64;
    let mut requested = 0i64;
    let mut counted = 0i64;
    for p in &pods {
        let Some(u) = usage.iter().find(|u| u.name == p.name_any()) else {
            continue;
        };
        used += if name == "cpu" { u.milli_cpu } else { u.memory };
        requested += request_of(p, name);
        counted += 1;
    }
    if counted == 0 {
        return Err(Error::invalid(
            ns,
            "metrics",
            format!("no metrics returned for resource {name}"),
        ));
    }
    let target = &res.target;
    let (ratio, status, description) = if let Some(util) = target.average_utilization {
        if requested == 0 {
            return Err(Error::invalid(
                ns,
                "metrics",
                format!("missing request for {name}"),
            ));
        }
        let current_util = (used as f64 * 100.0 / requested as f64).round() as i32;
        let avg = used / counted;
        let avg_q = if name == "cpu" {
            format!("{avg}m")
        } else {
            avg.to_string()
        };
        (
            current_util as f64 / util as f64,
            json!({"type": "Resource", "resource": {"name": name, "current": {"averageUtilization": current_util, "averageValue": avg_q}}}),
            format!("{name} resource utilization (percentage of request)"),
        )
    } else if let Some(q) = target.average_value.as_ref() {
        let t = if name == "cpu" {
            milli_value(q)
        } else {
            int_value(q)
        }
        .map_err(|e| Error::invalid(ns, "spec.metrics.resource.target.averageValue", e))?;
        let avg = used / counted;
        let avg_q = if name == "cpu" {
            format!("{avg}m")
        } else {
            avg.to_string()
        };
        (
            avg as f64 / t.max(1) as f64,
            json!({"type": "Resource", "resource": {"name": name, "current": {"averageValue": Quantity(avg_q)}}}),
            format!("{name} resource"),
        )
    } else {
        return Err(Error::invalid(
            ns,
            "spec.metrics.resource.target",
            "needs averageUtilization or averageValue",
        ));
    };
    let replicas = if (ratio - 1.0).abs() <= TOLERANCE {
        current
    } else {
        (ratio * counted as f64).ceil() as i32
    };
    Ok(MetricResult {
        replicas,
        status,
        description,
    })
}

fn cond(t: &str, status: bool, reason: &str, message: &str, now: Time) -> Value {
    json!({"type": t, "status": if status { "True" } else { "False" }, "reason": reason, "message": message, "lastTransitionTime": now})
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = hpa.namespace().unwrap_or_default();
    let name = hpa.name_any();
    let uid = hpa.uid().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let target = &spec.scale_target_ref;
    let write_status = |status: Value| {
        let api = api.clone();
        let name = name.clone();
        async move {
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if has_code(&e, 404) => Ok(()),
                Err(e) => Err(Error::api(
                    format!("updating the status of autoscaler {name}"),
                    e,
                )),
            }
        }
    };
    let Some(ar) = target_resource(target.api_version.as_deref(), &target.kind) else {
        write_status(json!({"conditions": [cond("AbleToScale", false, "FailedGetScale", &format!("unknown target kind {}", target.kind), now)]})).await?;
        return Ok(Action::requeue(ctx.config.sync_period));
    };
    let scale_api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
    let scale = match scale_api.get_scale(&target.name).await {
        Ok(s) => s,
        Err(e) => {
            let msg =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            ctx.recorder
                .warning(&InvolvedObject::of(hpa.as_ref()), "FailedGetScale", &msg);
            write_status(
                json!({"conditions": [cond("AbleToScale", false, "FailedGetScale", &msg, now)]}),
            )
            .await?;
            return Ok(Action::requeue(ctx.config.sync_period));
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1).max(1);
    let max = spec.max_replicas.max(min);
    if current == 0 && min > 0 {
        write_status(json!({"currentReplicas": 0, "desiredReplicas": 0, "conditions": [
            cond("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale", now.clone()),
            cond("ScalingActive", false, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero", now)]})).await?;
        return Ok(Action::requeue(ctx.config.sync_period));
    }
    let who = format!("horizontalpodautoscaler {ns}/{name}");
    let behavior = spec
        .behavior
        .as_ref()
        .map(|b| Behavior::from_spec(&who, b, ctx.config.downscale_window))
        .transpose()?;
    let old = hpa.status.clone().unwrap_or_default();
    let old_cond = |t: &str| {
        old.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .and_then(|c| serde_json::to_value(c).ok())
    };
    // Outside min..max the target is brought back without looking at metrics (and the
    // metric conditions stay as they were); otherwise the metrics decide.
    let mut current_metrics = Vec::new();
    let (desired, rescale_reason, decision, active) = if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
            None,
            old_cond("ScalingActive"),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
            None,
            old_cond("ScalingActive"),
        )
    } else {
        let selector_str = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let selector: Selector = selector_str
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let metrics = spec.metrics.clone().unwrap_or_else(|| {
            vec![serde_json::from_value(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}})).unwrap_or_default()]
        });
        let mut proposal: Option<(i32, String)> = None;
        let mut metric_error = None;
        for m in &metrics {
            match evaluate(&ctx, &ns, &selector, m, current).await {
                Ok(r) => {
                    current_metrics.push(r.status);
                    if proposal.as_ref().is_none_or(|(p, _)| r.replicas > *p) {
                        proposal = Some((r.replicas, r.description));
                    }
                }
                Err(e) => metric_error = Some(e.to_string()),
            }
        }
        let Some((raw, metric)) = proposal else {
            let msg = format!(
                "the HPA was unable to compute the replica count: {}",
                metric_error.unwrap_or_default()
            );
            ctx.recorder.warning(
                &InvolvedObject::of(hpa.as_ref()),
                "FailedGetResourceMetric",
                &msg,
            );
            write_status(json!({"currentReplicas": current, "desiredReplicas": current, "conditions": [
                cond("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale", now.clone()),
                cond("ScalingActive", false, "FailedGetResourceMetric", &msg, now)]})).await?;
            return Ok(Action::requeue(ctx.config.sync_period));
        };
        let decision = {
            let mut hist = ctx.history.lock().unwrap_or_else(|p| p.into_inner());
            let nowi = Instant::now();
            tracked(&mut hist, &uid, nowi, current).decide(
                nowi,
                behavior.as_ref(),
                &Limits {
                    min,
                    max,
                    down_window: ctx.config.downscale_window,
                },
                current,
                raw,
            )
        };
        let reason = if decision.desired > current {
            format!("{metric} above target")
        } else {
            "All metrics below target".to_string()
        };
        let active = cond(
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!("the HPA was able to successfully calculate a replica count from {metric}"),
            now.clone(),
        );
        (decision.desired, reason, Some(decision), Some(active))
    };
    let mut last_scale = old.last_scale_time.clone();
    let able = if desired != current {
        scale_api
            .patch_scale(
                &target.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": desired}})),
            )
            .await
            .map_err(|e| Error::api(format!("rescaling {} {}", target.kind, target.name), e))?;
        ctx.recorder.normal(
            &InvolvedObject::of(hpa.as_ref()),
            "SuccessfulRescale",
            &format!("New size: {desired}; reason: {rescale_reason}"),
        );
        {
            let mut hist = ctx.history.lock().unwrap_or_else(|p| p.into_inner());
            let nowi = Instant::now();
            tracked(&mut hist, &uid, nowi, current).record_scale(
                nowi,
                behavior.as_ref(),
                current,
                desired,
            );
        }
        last_scale = Some(now.clone());
        cond(
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
            now.clone(),
        )
    } else {
        let r = decision.as_ref().map(|d| &d.able).unwrap_or(&READY);
        cond("AbleToScale", r.status, r.reason, r.message, now.clone())
    };
    let limited = match &decision {
        Some(d) => Some(cond(
            "ScalingLimited",
            d.limited.status,
            d.limited.reason,
            d.limited.message,
            now.clone(),
        )),
        None => old_cond("ScalingLimited"),
    };
    let conditions: Vec<Value> = [Some(able), active, limited]
        .into_iter()
        .flatten()
        .collect();
    write_status(json!({
        "observedGeneration": hpa.metadata.generation,
        "currentReplicas": current,
        "desiredReplicas": desired,
        "currentMetrics": current_metrics,
        "lastScaleTime": last_scale,
        "conditions": conditions,
    }))
    .await?;
    Ok(Action::requeue(ctx.config.sync_period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_of_autoscalers_not_evaluated_for_long_are_forgotten() {
        let mut all = HashMap::new();
        let t0 = Instant::now();
        tracked(&mut all, "a", t0, 3);
        tracked(&mut all, "b", t0, 3);
        // "a" keeps being evaluated; "b" was deleted.
        let mut t = t0;
        while t < t0 + FORGET_AFTER {
            t += Duration::from_secs(15);
            tracked(&mut all, "a", t, 3);
        }
        assert!(all.contains_key("a"));
        assert!(
            !all.contains_key("b"),
            "a deleted autoscaler's history is dropped"
        );
    }
}
