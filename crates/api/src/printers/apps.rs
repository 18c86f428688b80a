//! Printers of the apps kinds: deployments, replica sets, daemon sets, stateful sets and
//! controller revisions.

use serde_json::{Value, json};

use super::cells::{
    containers, format_label_selector, format_labels, label_selector_string, str_at,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, age, docs, i, name};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("apps", "DaemonSet") => &DAEMON_SET,
        ("apps", "StatefulSet") => &STATEFUL_SET,
        ("apps", "ControllerRevision") => &CONTROLLER_REVISION,
        _ => return None,
    })
}

fn template_spec(obj: &Value) -> Option<&Value> {
    obj.pointer("/spec/template/spec")
}

pub struct DeploymentPrinter;
static DEPLOYMENT: DeploymentPrinter = DeploymentPrinter;

impl Printer for DeploymentPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::new("Up-to-date", "string", docs::DEPLOY_UPDATED),
            Column::new("Available", "string", docs::DEPLOY_AVAILABLE),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", docs::DEPLOY_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, d: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (names, images) = containers(template_spec(d));
        let selector = label_selector_string(d.pointer("/spec/selector"))
            .unwrap_or_else(|| "<invalid>".into());
        vec![
            name(d),
            json!(format!(
                "{}/{}",
                i(d, "/status/readyReplicas"),
                i(d, "/spec/replicas")
            )),
            json!(i(d, "/status/updatedReplicas")),
            json!(i(d, "/status/availableReplicas")),
            age(d, now),
            json!(names),
            json!(images),
            json!(selector),
        ]
    }
}

pub struct ReplicaSetPrinter;
static REPLICA_SET: ReplicaSetPrinter = ReplicaSetPrinter;

impl Printer for ReplicaSetPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Desired", "integer", docs::RS_SPEC_REPLICAS),
            Column::new("Current", "integer", docs::RS_STATUS_REPLICAS),
            Column::new("Ready", "integer", docs::RS_READY_REPLICAS),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", docs::RS_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, rs: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (names, images) = containers(template_spec(rs));
        vec![
            name(rs),
            json!(i(rs, "/spec/replicas")),
            json!(i(rs, "/status/replicas")),
            json!(i(rs, "/status/readyReplicas")),
            age(rs, now),
            json!(names),
            json!(images),
            json!(format_label_selector(rs.pointer("/spec/selector"))),
        ]
    }
}

pub struct DaemonSetPrinter;
static DAEMON_SET: DaemonSetPrinter = DaemonSetPrinter;

impl Printer for DaemonSetPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Desired", "integer", docs::DS_DESIRED),
            Column::new("Current", "integer", docs::DS_CURRENT),
            Column::new("Ready", "integer", docs::DS_READY),
            Column::new("Up-to-date", "integer", docs::DS_UPDATED),
            Column::new("Available", "integer", docs::DS_AVAILABLE),
            Column::new("Node Selector", "string", docs::NODE_SELECTOR),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", docs::DS_SELECTOR).wide(),
        ];
        COLS
    }
    fn cells(&self, ds: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (names, images) = containers(template_spec(ds));
        let node_selector = ds
            .pointer("/spec/template/spec/nodeSelector")
            .and_then(|v| v.as_object());
        vec![
            name(ds),
            json!(i(ds, "/status/desiredNumberScheduled")),
            json!(i(ds, "/status/currentNumberScheduled")),
            json!(i(ds, "/status/numberReady")),
            json!(i(ds, "/status/updatedNumberScheduled")),
            json!(i(ds, "/status/numberAvailable")),
            json!(format_labels(node_selector)),
            age(ds, now),
            json!(names),
            json!(images),
            json!(format_label_selector(ds.pointer("/spec/selector"))),
        ]
    }
}

pub struct StatefulSetPrinter;
static STATEFUL_SET: StatefulSetPrinter = StatefulSetPrinter;

impl Printer for StatefulSetPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Ready", "string", "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ];
        COLS
    }
    fn cells(&self, sts: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (names, images) = containers(template_spec(sts));
        vec![
            name(sts),
            json!(format!(
                "{}/{}",
                i(sts, "/status/readyReplicas"),
                i(sts, "/spec/replicas")
            )),
            age(sts, now),
            json!(names),
            json!(images),
        ]
    }
}

pub struct ControllerRevisionPrinter;
static CONTROLLER_REVISION: ControllerRevisionPrinter = ControllerRevisionPrinter;

/// `kind.group/name` (lowercase) of an object's controller, or `<none>`.
fn controller_of(obj: &Value) -> String {
    let owner = crate::meta::metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(|o| o.as_array())
        .and_then(|a| {
            a.iter()
                .find(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))
        });
    let Some(owner) = owner else {
        return "<none>".into();
    };
    let api_version = str_at(owner, "apiVersion");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = str_at(owner, "kind");
    let gk = match (kind.is_empty(), group.is_empty()) {
        (true, _) => return str_at(owner, "name").to_string(),
        (false, true) => kind.to_string(),
        (false, false) => format!("{kind}.{group}"),
    };
    format!("{}/{}", gk.to_lowercase(), str_at(owner, "name"))
}

impl Printer for ControllerRevisionPrinter {
    fn columns(&self) -> &[Column] {
        const COLS: &[Column] = &[
            NAME,
            Column::new("Controller", "string", "Controller of the object"),
            Column::new("Revision", "string", docs::CR_REVISION),
            AGE,
        ];
        COLS
    }
    fn cells(&self, cr: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(cr),
            json!(controller_of(cr)),
            json!(i(cr, "/revision")),
            age(cr, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2025-03-01T12:00:00Z".parse().unwrap()
    }

    fn workload(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": "2025-03-01T11:58:00Z"}, "spec": spec, "status": status})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployments_and_replica_sets() {
        let d = workload(
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
            json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            DEPLOYMENT.cells(&d, now()),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
        let fresh = workload(json!({"replicas": 1, "template": template()}), json!({}));
        let c = DEPLOYMENT.cells(&fresh, now());
        assert_eq!(
            (c[1].clone(), c[2].clone(), c[7].clone()),
            (json!("0/1"), json!(0), json!(""))
        );
        let rs = workload(
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}, "template": template()}),
            json!({"replicas": 3, "readyReplicas": 1}),
        );
        assert_eq!(
            REPLICA_SET.cells(&rs, now()),
            vec![
                json!("web"),
                json!(3),
                json!(3),
                json!(1),
                json!("2m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=5d4f")
            ]
        );
    }

    #[test]
    fn daemon_sets_stateful_sets_and_revisions() {
        let mut t = template();
        t["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds = workload(
            json!({"selector": {"matchLabels": {"app": "web"}}, "template": t}),
            json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}),
        );
        assert_eq!(
            DAEMON_SET.cells(&ds, now()),
            vec![
                json!("web"),
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux"),
                json!("2m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
        let sts = workload(
            json!({"replicas": 3, "template": template()}),
            json!({"readyReplicas": 3}),
        );
        assert_eq!(
            STATEFUL_SET.cells(&sts, now()),
            vec![
                json!("web"),
                json!("3/3"),
                json!("2m"),
                json!("web,log"),
                json!("nginx:1.27,busybox")
            ]
        );
        let cr = json!({"metadata": {"name": "web-7c9", "creationTimestamp": "2025-03-01T11:58:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]}, "revision": 2});
        assert_eq!(
            CONTROLLER_REVISION.cells(&cr, now()),
            vec![
                json!("web-7c9"),
                json!("statefulset.apps/web"),
                json!(2),
                json!("2m")
            ]
        );
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!(
            CONTROLLER_REVISION.cells(&orphan, now())[1],
            json!("<none>")
        );
    }
}
