//! Jobs and CronJobs on simulated nodes.

use std::time::Duration;

use berth_testing::{TestCluster, TestClusterOptions};
use berth_tests::{WAIT, create, namespace, wait_for, within};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(120);

fn job(name: &str, spec: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
    let mut s = spec;
    s["template"] = json!({
        "metadata": {"annotations": annotations},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    });
    json!({"metadata": {"name": name}, "spec": s})
}

fn condition(j: &Job, t: &str) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t && c.status == "True")
        .and_then(|c| c.reason.clone())
}

#[tokio::test]
async fn jobs_complete_retry_and_give_up() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(2)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "batch").await?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        // completions with parallelism
        create(
            &jobs,
            job(
                "three",
                json!({"completions": 3, "parallelism": 2}),
                json!({}),
            ),
        )
        .await?;
        // fails twice, then succeeds: retried within backoffLimit
        create(
            &jobs,
            job(
                "flaky",
                json!({"backoffLimit": 4}),
                json!({"sim.berth.dev/fail-attempts": "2"}),
            ),
        )
        .await?;
        // always fails: gives up after backoffLimit
        create(
            &jobs,
            job(
                "doomed",
                json!({"backoffLimit": 1}),
                json!({"sim.berth.dev/exit-code": "1"}),
            ),
        )
        .await?;
        // indexed
        create(
            &jobs,
            job(
                "indexed",
                json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"}),
                json!({}),
            ),
        )
        .await?;

        let done = |name: &'static str, t: &'static str| {
            let jobs = jobs.clone();
            async move {
                wait_for(&format!("job {name} {t}"), WAIT, || async {
                    let j = jobs.get(name).await?;
                    Ok(condition(&j, t).map(|r| (j, r)))
                })
                .await
            }
        };
        let (j, _) = done("three", "Complete").await?;
        let st = j.status.unwrap();
        assert_eq!(st.succeeded, Some(3));
        assert!(st.completion_time.is_some());
        let (j, _) = done("flaky", "Complete").await?;
        assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
        assert_eq!(j.status.unwrap().succeeded, Some(1));
        let (j, reason) = done("doomed", "Failed").await?;
        assert_eq!(reason, "BackoffLimitExceeded");
        assert_eq!(j.status.unwrap().failed, Some(2));
        let (j, _) = done("indexed", "Complete").await?;
        assert_eq!(j.status.unwrap().completed_indexes.as_deref(), Some("0-2"));
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let indexed = pods
            .list(&ListParams::default().labels("batch.kubernetes.io/job-name=indexed"))
            .await?
            .items;
        let mut idx: Vec<String> = indexed
            .iter()
            .filter_map(|p| {
                p.annotations()
                    .get("batch.kubernetes.io/job-completion-index")
                    .cloned()
            })
            .collect();
        idx.sort();
        assert_eq!(idx, ["0", "1", "2"]);
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn finished_jobs_go_after_their_ttl() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(1)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "batch").await?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        create(
            &jobs,
            job(
                "short-lived",
                json!({"ttlSecondsAfterFinished": 1}),
                json!({}),
            ),
        )
        .await?;
        wait_for("the finished job to be deleted", WAIT, || async {
            Ok(jobs.get_opt("short-lived").await?.is_none().then_some(()))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cronjob_fires_and_keeps_history() -> anyhow::Result<()> {
    within(LIMIT, async {
        let cluster = TestCluster::start(TestClusterOptions::with_nodes(1)).await?;
        let client = cluster.client();
        let ns = namespace(&client, "batch").await?;
        let cjs: Api<CronJob> = Api::namespaced(client.clone(), &ns);
        create(&cjs, json!({
            "metadata": {"name": "tick"},
            "spec": {"schedule": "*/1 * * * *", "timeZone": "Europe/Paris", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}}
        }))
        .await?;
        // Pretend the last run was three minutes ago: the latest missed time is due now.
        let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(180);
        cjs.patch_status("tick", &PatchParams::default(), &Patch::Merge(json!({"status": {"lastScheduleTime": past.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}})))
            .await?;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let j = wait_for("the cronjob's job", WAIT, || async {
            Ok(jobs.list(&ListParams::default()).await?.items.into_iter().next())
        })
        .await?;
        assert!(j.name_any().starts_with("tick-"));
        assert!(j.annotations().contains_key("batch.kubernetes.io/cronjob-scheduled-timestamp"));
        assert!(j.owner_references().iter().any(|r| r.kind == "CronJob" && r.controller == Some(true)));
        wait_for("the job to complete and the cronjob to record it", WAIT, || async {
            let cj = cjs.get("tick").await?;
            Ok(cj.status.and_then(|s| s.last_successful_time))
        })
        .await?;
        cluster.stop().await;
        Ok(())
    })
    .await
}
