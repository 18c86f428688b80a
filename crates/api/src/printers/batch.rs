//! Printers of jobs and cron jobs.

use serde_json::{Value, json};

use super::cells::{bool_word, containers, format_label_selector, str_at};
use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, Printer, age, docs, human_duration, i, name, s, since,
};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("batch", "Job") => &JOB,
        ("batch", "CronJob") => &CRON_JOB,
        _ => return None,
    })
}

/// The status of the first condition of `kind`, when it is `True`.
fn has_condition(job: &Value, kind: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .and_then(|a| a.iter().find(|c| str_at(c, "type") == kind))
        .is_some_and(|c| str_at(c, "status") == "True")
}

fn ts(v: &Value, pointer: &str) -> Option<jiff::Timestamp> {
    v.pointer(pointer)
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok())
}

pub struct JobPrinter;
static JOB: JobPrinter = JobPrinter;

/// Kubernetes' job status word.
pub fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if crate::meta::is_deleting(job) {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

impl Printer for JobPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Status", "string", "Status of the job."),
            Column::new("Completions", "string", docs::JOB_SUCCEEDED),
            Column::new("Duration", "string", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", docs::JOB_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, job: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let succeeded = i(job, "/status/succeeded");
        let completions = match job.pointer("/spec/completions").and_then(|v| v.as_i64()) {
            Some(c) => format!("{succeeded}/{c}"),
            None => match i(job, "/spec/parallelism") {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let duration = match (
            ts(job, "/status/startTime"),
            ts(job, "/status/completionTime"),
        ) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration((now - start).get_seconds()),
            (Some(start), Some(done)) => human_duration((done - start).get_seconds()),
        };
        let (names, images) = containers(job.pointer("/spec/template/spec"));
        vec![
            name(job),
            json!(job_status(job)),
            json!(completions),
            json!(duration),
            age(job, now),
            json!(names),
            json!(images),
            json!(format_label_selector(job.pointer("/spec/selector"))),
        ]
    }
}

pub struct CronJobPrinter;
static CRON_JOB: CronJobPrinter = CronJobPrinter;

impl Printer for CronJobPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Schedule", "string", docs::CJ_SCHEDULE),
            Column::new("Timezone", "string", docs::CJ_TIME_ZONE),
            Column::new("Suspend", "boolean", docs::CJ_SUSPEND),
            Column::new("Active", "integer", docs::CJ_ACTIVE),
            Column::new("Last Schedule", "string", docs::CJ_LAST_SCHEDULE),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", docs::JOB_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, cj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let last = match cj
            .pointer("/status/lastScheduleTime")
            .and_then(|v| v.as_str())
        {
            Some(t) => since(Some(t), now),
            None => "<none>".into(),
        };
        let tz = cj
            .pointer("/spec/timeZone")
            .and_then(|v| v.as_str())
            .unwrap_or("<none>");
        let active = cj
            .pointer("/status/active")
            .and_then(|v| v.as_array())
            .map_or(0, |a| a.len());
        let (names, images) = containers(cj.pointer("/spec/jobTemplate/spec/template/spec"));
        vec![
            name(cj),
            json!(s(cj, "/spec/schedule")),
            json!(tz),
            json!(bool_word(cj.pointer("/spec/suspend"))),
            json!(active),
            json!(last),
            age(cj, now),
            json!(names),
            json!(images),
            json!(format_label_selector(
                cj.pointer("/spec/jobTemplate/spec/selector")
            )),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn job(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "pi", "creationTimestamp": "2025-03-01T11:50:00Z"}, "spec": spec, "status": status})
    }

    #[test]
    fn jobs() {
        let tpl = json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}});
        let sel = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}});
        let done = job(
            json!({"completions": 1, "parallelism": 1, "selector": sel, "template": tpl}),
            json!({"succeeded": 1, "startTime": "2025-03-01T11:50:00Z", "completionTime": "2025-03-01T11:50:42Z",
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(
            JOB.cells(&done, now()),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("10m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=u1")
            ]
        );
        let running = job(
            json!({"parallelism": 3, "template": tpl}),
            json!({"startTime": "2025-03-01T11:55:00Z"}),
        );
        let c = JOB.cells(&running, now());
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("Running"), json!("0/1 of 3"), json!("5m"))
        );
        let failed = job(
            json!({"completions": 3}),
            json!({"succeeded": 1, "conditions": [{"type": "Failed", "status": "True"}]}),
        );
        let c = JOB.cells(&failed, now());
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[3].clone()),
            (json!("Failed"), json!("1/3"), json!(""))
        );
        let suspended = job(
            json!({"completions": 1}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(JOB.cells(&suspended, now())[1], json!("Suspended"));
        let mut deleting = job(json!({"completions": 1}), json!({}));
        deleting["metadata"]["deletionTimestamp"] = json!("2025-03-01T11:59:00Z");
        assert_eq!(JOB.cells(&deleting, now())[1], json!("Terminating"));
    }

    #[test]
    fn cron_jobs() {
        let cj = json!({"metadata": {"name": "hello", "creationTimestamp": "2025-03-01T10:00:00Z"},
            "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox:1.36"}]}}}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2025-03-01T11:55:00Z"}});
        assert_eq!(
            CRON_JOB.cells(&cj, now()),
            vec![
                json!("hello"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("120m"),
                json!("hello"),
                json!("busybox:1.36"),
                json!("<none>")
            ]
        );
        let fresh = json!({"metadata": {"name": "x"}, "spec": {"schedule": "@hourly", "timeZone": "Europe/Paris"}});
        let c = CRON_JOB.cells(&fresh, now());
        assert_eq!(
            (c[2].clone(), c[3].clone(), c[4].clone(), c[5].clone()),
            (
                json!("Europe/Paris"),
                json!("<unset>"),
                json!(0),
                json!("<none>")
            )
        );
    }
}
