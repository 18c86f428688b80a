//! The CronJob controller: creates a Job (`<name>-<scheduled unix minutes>`) at each
//! scheduled time of `spec.schedule` in `spec.timeZone`, honouring `suspend`,
//! `startingDeadlineSeconds` and `concurrencyPolicy` (Allow, Forbid, Replace); keeps
//! `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` finished Jobs; reports `active`,
//! `lastScheduleTime` and `lastSuccessfulTime`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cron::{Schedule, time_zone};
use crate::error::{Error, Result, has_code};
use crate::events::{EventRecorder, InvolvedObject};
use crate::pods::{controller_ref, controller_uid};

pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct Ctx {
    client: Client,
    recorder: EventRecorder,
}

/// The CronJob controller component.
pub struct CronJobController {
    ctx: Arc<Ctx>,
}

impl CronJobController {
    pub fn new(client: Client, recorder: EventRecorder) -> Self {
        CronJobController {
            ctx: Arc::new(Ctx { client, recorder }),
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let client = self.ctx.client.clone();
        Controller::new(
            Api::<CronJob>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(Api::<Job>::all(client), watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, self.ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
        Ok(())
    }
}

fn error_policy(cj: Arc<CronJob>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(cronjob = %cj.name_any(), error = %err, "cronjob controller: will retry");
    if err.is_invalid_object() {
        return Action::await_change();
    }
    Action::requeue(Duration::from_secs(2))
}

fn job_finished(job: &Job) -> Option<bool> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find_map(|c| {
            (c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
                .then_some(c.type_ == "Complete")
        })
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let who = format!("cronjob {ns}/{name}");
    let uid = cj.uid().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let schedule = Schedule::parse(&spec.schedule).map_err(|e| {
        ctx.recorder
            .warning(&InvolvedObject::of(cj.as_ref()), "UnparseableSchedule", &e);
        Error::invalid(&who, "spec.schedule", e)
    })?;
    let tz = time_zone(spec.time_zone.as_deref()).map_err(|e| {
        ctx.recorder
            .warning(&InvolvedObject::of(cj.as_ref()), "UnknownTimeZone", &e);
        Error::invalid(&who, "spec.timeZone", e)
    })?;
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api(format!("listing jobs of {who}"), e))?
        .items
        .into_iter()
        .filter(|j| controller_uid(&j.metadata) == Some(uid.as_str()))
        .collect();
    let now = jiff::Timestamp::now();
    let status = cj.status.clone().unwrap_or_default();
    let base = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    // The most recent missed time (Kubernetes starts only the latest).
    let mut due = None;
    let mut t = base;
    let mut missed = 0;
    while let Some(next) = schedule.next_after(t, &tz) {
        if next > now {
            break;
        }
        due = Some(next);
        t = next;
        missed += 1;
        if missed == 1000 {
            // Far behind: jump to the latest time before now.
            t = now - jiff::SignedDuration::from_secs(120);
        }
    }
    let mut last_schedule = status.last_schedule_time.clone();
    let active: Vec<&Job> = jobs.iter().filter(|j| job_finished(j).is_none()).collect();
    let mut active_refs: Vec<ObjectReference> = active
        .iter()
        .map(|j| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(j.name_any()),
            namespace: Some(ns.clone()),
            uid: j.uid(),
            resource_version: j.resource_version(),
            ..Default::default()
        })
        .collect();
    if let Some(scheduled) = due
        && !spec.suspend.unwrap_or(false)
    {
        let too_late = spec
            .starting_deadline_seconds
            .is_some_and(|d| now.duration_since(scheduled).as_secs() > d);
        let job_name = format!("{name}-{}", scheduled.as_second() / 60);
        let exists = jobs.iter().any(|j| j.name_any() == job_name);
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if too_late {
            ctx.recorder.warning(
                &InvolvedObject::of(cj.as_ref()),
                "MissSchedule",
                &format!("Missed scheduled time to start a job: {scheduled}"),
            );
            last_schedule = Some(Time(scheduled));
        } else if !exists && policy == "Forbid" && !active.is_empty() {
            // Wait for the running job; try again soon.
        } else if !exists {
            if policy == "Replace" {
                for j in &active {
                    match jobs_api
                        .delete(&j.name_any(), &DeleteParams::background())
                        .await
                    {
                        Ok(_) => ctx.recorder.normal(
                            &InvolvedObject::of(cj.as_ref()),
                            "SuccessfulDelete",
                            &format!("Deleted job {}", j.name_any()),
                        ),
                        Err(e) if has_code(&e, 404) => {}
                        Err(e) => {
                            return Err(Error::api(format!("replacing job {}", j.name_any()), e));
                        }
                    }
                }
                active_refs.clear();
            }
            let tmpl = spec.job_template.clone();
            let tmeta = tmpl.metadata.clone().unwrap_or_default();
            let mut annotations = tmeta.annotations.unwrap_or_default();
            annotations.insert(
                SCHEDULED_TIMESTAMP.into(),
                scheduled.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
            let job = Job {
                metadata: ObjectMeta {
                    name: Some(job_name.clone()),
                    namespace: Some(ns.clone()),
                    labels: tmeta.labels,
                    annotations: Some(annotations),
                    owner_references: Some(vec![controller_ref(cj.as_ref())]),
                    ..Default::default()
                },
                spec: tmpl.spec,
                status: None,
            };
            match jobs_api.create(&PostParams::default(), &job).await {
                Ok(created) => {
                    ctx.recorder.normal(
                        &InvolvedObject::of(cj.as_ref()),
                        "SuccessfulCreate",
                        &format!("Created job {job_name}"),
                    );
                    active_refs.push(ObjectReference {
                        api_version: Some("batch/v1".into()),
                        kind: Some("Job".into()),
                        name: Some(job_name.clone()),
                        namespace: Some(ns.clone()),
                        uid: created.uid(),
                        resource_version: created.resource_version(),
                        ..Default::default()
                    });
                    jobs.push(created);
                }
                Err(e) if has_code(&e, 409) => {}
                Err(e) => {
                    ctx.recorder.warning(
                        &InvolvedObject::of(cj.as_ref()),
                        "FailedCreate",
                        &format!("Error creating job: {e}"),
                    );
                    return Err(Error::api(format!("creating job {job_name}"), e));
                }
            }
            last_schedule = Some(Time(scheduled));
        } else {
            last_schedule = Some(Time(scheduled));
        }
    }
    // History limits.
    let mut finished: Vec<(&Job, bool)> = jobs
        .iter()
        .filter_map(|j| job_finished(j).map(|ok| (j, ok)))
        .collect();
    finished.sort_by_key(|(j, _)| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
    for (ok, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let of_kind: Vec<&Job> = finished
            .iter()
            .filter(|(_, k)| *k == ok)
            .map(|(j, _)| *j)
            .collect();
        let excess = of_kind.len().saturating_sub(limit.max(0) as usize);
        for j in &of_kind[..excess] {
            match jobs_api
                .delete(&j.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => ctx.recorder.normal(
                    &InvolvedObject::of(cj.as_ref()),
                    "SuccessfulDelete",
                    &format!("Deleted job {}", j.name_any()),
                ),
                Err(e) if has_code(&e, 404) => {}
                Err(e) => return Err(Error::api(format!("deleting old job {}", j.name_any()), e)),
            }
        }
    }
    let last_success = jobs
        .iter()
        .filter(|j| job_finished(j) == Some(true))
        .filter_map(|j| j.status.as_ref().and_then(|s| s.completion_time.clone()))
        .max_by_key(|t| t.0)
        .or(status.last_successful_time.clone());
    let new_status = json!({
        "active": if active_refs.is_empty() { serde_json::Value::Null } else { json!(active_refs) },
        "lastScheduleTime": last_schedule,
        "lastSuccessfulTime": last_success,
    });
    let old = serde_json::to_value(&status).unwrap_or_default();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.get("active")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if names(&old) != names(&new_status)
        || old.get("lastScheduleTime")
            != new_status.get("lastScheduleTime").filter(|v| !v.is_null())
        || old.get("lastSuccessfulTime")
            != new_status
                .get("lastSuccessfulTime")
                .filter(|v| !v.is_null())
    {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": new_status})),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if has_code(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("updating the status of {who}"), e)),
        }
    }
    let next = schedule.next_after(now, &tz);
    Ok(match next {
        Some(n) => {
            let wait = n.duration_since(now).as_secs_f64().max(0.0) + 0.05;
            // Forbid waits for the active job: look again soon.
            let wait = if spec.concurrency_policy.as_deref() == Some("Forbid")
                && !active_refs.is_empty()
            {
                wait.min(5.0)
            } else {
                wait
            };
            Action::requeue(Duration::from_secs_f64(wait))
        }
        None => Action::await_change(),
    })
}
