//! The Job controller: runs pods until `completions` succeed (NonIndexed or Indexed), at
//! most `parallelism` at once, retrying failed pods with exponential backoff until
//! `backoffLimit` failures; enforces `activeDeadlineSeconds` and `suspend`; reports
//! active/ready/succeeded/failed counts, `completedIndexes` and the Complete/Failed
//! conditions; deletes finished Jobs after `ttlSecondsAfterFinished`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{
    Expectations, controller_ref, controller_uid, create_pod, delete_pod, is_ready, phase,
    pod_from_template,
};

pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// Settings of the Job controller.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// First retry delay after a pod failure (doubles per failure, capped at 6 minutes).
    pub backoff_base: Duration,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            backoff_base: Duration::from_secs(10),
        }
    }
}

struct Ctx {
    client: Client,
    recorder: EventRecorder,
    config: JobConfig,
    expectations: Expectations,
}

/// The Job controller component.
pub struct JobController {
    ctx: Arc<Ctx>,
}

impl JobController {
    pub fn new(config: JobConfig, client: Client, recorder: EventRecorder) -> Self {
        JobController {
            ctx: Arc::new(Ctx {
                client,
                recorder,
                config,
                expectations: Expectations::default(),
            }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
            .owns(Api::<Pod>::all(client), watcher::Config::default())
            .with_config(kube::runtime::controller::Config::default().concurrency(8))
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, self.ctx)
            .for_each(|_| futures::future::ready(()))
            .await;
        Ok(())
    }
}

fn error_policy(job: Arc<Job>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(job = %job.name_any(), error = %err, "job controller: will retry");
    Action::requeue(Duration::from_secs(1))
}

fn finished(job: &Job) -> Option<(&'static str, jiff::Timestamp)> {
    for c in job.status.as_ref()?.conditions.as_ref()? {
        if c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed") {
            let t = c
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(jiff::Timestamp::now);
            return Some((
                if c.type_ == "Complete" {
                    "Complete"
                } else {
                    "Failed"
                },
                t,
            ));
        }
    }
    None
}

fn pod_index(p: &Pod) -> Option<i32> {
    p.annotations()
        .get(COMPLETION_INDEX)
        .and_then(|v| v.parse().ok())
}

/// `1,3-5,7` from a set of indexes.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().peekable();
    while let Some(&start) = it.next() {
        let mut end = start;
        while it.peek().is_some_and(|n| **n == end + 1) {
            end = *it.next().unwrap_or(&end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    if job.metadata.deletion_timestamp.is_some() {
        ctx.expectations.forget(&uid);
        return Ok(Action::await_change());
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = job.spec.clone().unwrap_or_default();
    // Finished: only the TTL is left to handle.
    if let Some((_, at)) = finished(&job) {
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let due = at + jiff::SignedDuration::from_secs(ttl as i64);
            let now = jiff::Timestamp::now();
            if now >= due {
                match jobs.delete(&name, &DeleteParams::foreground()).await {
                    Ok(_) => {}
                    Err(e) if has_code(&e, 404) => {}
                    Err(e) => return Err(Error::api(format!("deleting finished job {name}"), e)),
                }
                return Ok(Action::await_change());
            }
            return Ok(Action::requeue(Duration::from_secs_f64(
                due.duration_since(now).as_secs_f64().max(0.1),
            )));
        }
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&format!("{CONTROLLER_UID_LABEL}={uid}")))
        .await
        .map_err(|e| Error::api(format!("listing pods of job {name}"), e))?
        .items
        .into_iter()
        .filter(|p| controller_uid(&p.metadata) == Some(uid.as_str()))
        .collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend.unwrap_or(false);
    let now = jiff::Timestamp::now();

    let succeeded_pods: Vec<&Pod> = pods.iter().filter(|p| phase(p) == "Succeeded").collect();
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i32;
    let active: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .collect();
    let completed_indexes: BTreeSet<i32> =
        succeeded_pods.iter().filter_map(|p| pod_index(p)).collect();
    let succeeded = if indexed {
        completed_indexes.len() as i32
    } else {
        succeeded_pods.len() as i32
    };
    let start_time = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .unwrap_or(Time(now));

    let mut outcome: Option<(&str, &str, String)> = None;
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    if complete {
        outcome = Some((
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods".into(),
        ));
    } else if failed > backoff_limit {
        outcome = Some((
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".into(),
        ));
    } else if let Some(deadline) = spec.active_deadline_seconds
        && !suspended
        && now.duration_since(start_time.0).as_secs() >= deadline
    {
        outcome = Some((
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline".into(),
        ));
    }

    let mut requeue: Option<Duration> = None;
    let mut delete: Vec<&Pod> = Vec::new();
    let mut create_indexes: Vec<Option<i32>> = Vec::new();
    if outcome.is_some() || suspended {
        delete.extend(active.iter().copied());
    } else if ctx.expectations.satisfied(&uid, &pods) {
        // Backoff after failures: wait before creating the next pod.
        let last_failure = pods
            .iter()
            .filter(|p| phase(p) == "Failed")
            .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .max();
        let delay = if failed > 0 {
            ctx.config
                .backoff_base
                .saturating_mul(1u32 << (failed - 1).clamp(0, 10) as u32)
                .min(Duration::from_secs(360))
        } else {
            Duration::ZERO
        };
        let wait = last_failure
            .map(|t| delay.as_secs_f64() - now.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        if wait > 0.0 {
            requeue = Some(Duration::from_secs_f64(wait));
        } else if indexed {
            let total = completions.unwrap_or(1);
            let busy: BTreeSet<i32> = active.iter().filter_map(|p| pod_index(p)).collect();
            let room = (parallelism - active.len() as i32).max(0);
            for i in (0..total)
                .filter(|i| !completed_indexes.contains(i) && !busy.contains(i))
                .take(room as usize)
            {
                create_indexes.push(Some(i));
            }
        } else {
            let remaining = completions.map(|c| c - succeeded).unwrap_or(parallelism);
            let want = parallelism.min(remaining).max(0);
            for _ in active.len() as i32..want {
                create_indexes.push(None);
            }
        }
    } else {
        requeue = Some(Duration::from_millis(200));
    }

    let owner = InvolvedObject::of(job.as_ref());
    let mut created = Vec::new();
    for index in create_indexes {
        let mut labels = BTreeMap::from([
            (JOB_NAME_LABEL.to_string(), name.clone()),
            ("job-name".to_string(), name.clone()),
            (CONTROLLER_UID_LABEL.to_string(), uid.clone()),
            ("controller-uid".to_string(), uid.clone()),
        ]);
        let template = spec.template.clone();
        let mut pod = pod_from_template(
            &template,
            &ns,
            controller_ref(job.as_ref()),
            None,
            Some(format!("{name}-")),
            &labels,
        );
        if let Some(i) = index {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata.generate_name = Some(format!("{name}-{i}-"));
            if let Some(s) = pod.spec.as_mut()
                && s.hostname.is_none()
            {
                s.hostname = Some(format!("{name}-{i}"));
            }
        }
        let p = create_pod(&ctx.recorder, &owner, &pods_api, &pod)
            .await
            .map_err(|e| Error::api(format!("creating a pod for job {name}"), e))?;
        created.push(p.name_any());
    }
    let mut deleted = Vec::new();
    for p in &delete {
        let dp = DeleteParams::background();
        deleted.extend(delete_pod(&ctx.recorder, &owner, &pods_api, p, &dp).await?);
    }
    ctx.expectations.expect(&uid, created.clone(), deleted);

    // Status.
    let mut conditions: Vec<JobCondition> = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, message: &str| JobCondition {
        type_: t.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    let mut completion_time = job.status.as_ref().and_then(|s| s.completion_time.clone());
    if let Some((t, reason, message)) = &outcome {
        // Kubernetes 1.31+ first sets the interim condition, then the terminal one.
        let interim = if *t == "Complete" {
            "SuccessCriteriaMet"
        } else {
            "FailureTarget"
        };
        if !conditions.iter().any(|c| c.type_ == interim) {
            conditions.push(cond(interim, reason, message));
        }
        conditions.push(cond(t, reason, message));
        if *t == "Complete" {
            completion_time = Some(Time(now));
            ctx.recorder.normal(
                &InvolvedObject::of(job.as_ref()),
                "Completed",
                "Job completed",
            );
        } else {
            ctx.recorder
                .warning(&InvolvedObject::of(job.as_ref()), reason, message);
        }
    }
    conditions.retain(|c| c.type_ != "Suspended");
    if suspended && outcome.is_none() {
        conditions.push(cond("Suspended", "JobSuspended", "Job suspended"));
    }
    let still_active = if outcome.is_some() || suspended {
        0
    } else {
        active.len() + created.len()
    };
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let mut status = json!({
        "active": still_active,
        "ready": ready,
        "succeeded": succeeded,
        "failed": failed,
        "startTime": start_time,
        "conditions": conditions,
        "terminating": pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some()).count(),
    });
    if let Some(t) = completion_time {
        status["completionTime"] = json!(t);
    }
    if indexed {
        status["completedIndexes"] = json!(format_indexes(&completed_indexes));
    }
    let old = serde_json::to_value(job.status.clone().unwrap_or_default()).unwrap_or_default();
    let same = ["active", "ready", "succeeded", "failed", "completedIndexes"]
        .iter()
        .all(|k| {
            old.get(*k).cloned().unwrap_or(json!(0)) == status.get(*k).cloned().unwrap_or(json!(0))
        })
        && old
            .get("conditions")
            .and_then(|c| c.as_array())
            .map(|c| c.len())
            .unwrap_or(0)
            == conditions.len()
        && old.get("startTime").is_some();
    if !same {
        match jobs
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("updating the status of job {name}"), e)),
        }
    }
    if outcome.is_some() {
        return Ok(match spec.ttl_seconds_after_finished {
            Some(ttl) => {
                Action::requeue(Duration::from_secs(ttl.max(0) as u64) + Duration::from_millis(100))
            }
            None => Action::await_change(),
        });
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        let left = deadline - now.duration_since(start_time.0).as_secs();
        let d = Duration::from_secs(left.max(1) as u64);
        requeue = Some(requeue.map_or(d, |r| r.min(d)));
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_are_compressed_into_ranges() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&s), "0-2,4,6-7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
