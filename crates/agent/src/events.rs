//! Events the agent reports (`Pulling`, `Started`, `Unhealthy`, `NodeReady`, ...), as
//! `core/v1` Events from source `kubelet` on this host. Repeats of the same event for the same
//! object within ten minutes bump the existing Event's count instead of creating another, as
//! Kubernetes' event correlator does. Writing never blocks the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const DEDUPE_WINDOW: Duration = Duration::from_secs(600);
const MAX_TRACKED: usize = 4096;

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    pub kind: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
}

impl InvolvedObject {
    pub fn pod(namespace: &str, name: &str, uid: &str) -> InvolvedObject {
        InvolvedObject {
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
            uid: uid.into(),
            field_path: None,
        }
    }

    pub fn node(name: &str) -> InvolvedObject {
        InvolvedObject {
            kind: "Node".into(),
            api_version: "v1".into(),
            namespace: None,
            name: name.into(),
            uid: name.into(),
            field_path: None,
        }
    }

    /// The same object, narrowed to one container.
    pub fn container(&self, field_path: String) -> InvolvedObject {
        InvolvedObject {
            field_path: Some(field_path),
            ..self.clone()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

/// (object, type, reason, message) of an event.
type SeenKey = (InvolvedObject, EventType, String, String);

struct Seen {
    name: String,
    namespace: String,
    count: i32,
    at: Instant,
}

/// Posts events through the API.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    host: String,
    seen: Arc<Mutex<HashMap<SeenKey, Seen>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, host: &str) -> Recorder {
        Recorder {
            client,
            host: host.to_string(),
            seen: Arc::default(),
        }
    }

    pub fn normal(&self, obj: &InvolvedObject, reason: &str, message: impl Into<String>) {
        self.record(obj, EventType::Normal, reason, message.into());
    }

    pub fn warning(&self, obj: &InvolvedObject, reason: &str, message: impl Into<String>) {
        self.record(obj, EventType::Warning, reason, message.into());
    }

    fn record(&self, obj: &InvolvedObject, ty: EventType, reason: &str, message: String) {
        let key = (obj.clone(), ty, reason.to_string(), message.clone());
        let repeat = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() > MAX_TRACKED {
                seen.retain(|_, s| s.at.elapsed() < DEDUPE_WINDOW);
            }
            match seen.get_mut(&key) {
                Some(s) if s.at.elapsed() < DEDUPE_WINDOW => {
                    s.count += 1;
                    s.at = Instant::now();
                    Some((s.name.clone(), s.namespace.clone(), s.count))
                }
                _ => None,
            }
        };
        let client = self.client.clone();
        let host = self.host.clone();
        let seen = self.seen.clone();
        let reason = reason.to_string();
        let obj = obj.clone();
        tokio::spawn(async move {
            let now = Time(jiff::Timestamp::now());
            if let Some((name, ns, count)) = repeat {
                let api: Api<Event> = Api::namespaced(client, &ns);
                let patch = json!({"count": count, "lastTimestamp": now});
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(error = %e, event = %name, "cannot update event");
                }
                return;
            }
            let ns = obj.namespace.clone().unwrap_or_else(|| "default".into());
            let name = format!(
                "{}.{:016x}",
                obj.name,
                rand::random::<u64>() & 0x00ff_ffff_ffff_ffff
            );
            let ev = Event {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    api_version: Some(obj.api_version.clone()),
                    kind: Some(obj.kind.clone()),
                    name: Some(obj.name.clone()),
                    namespace: obj.namespace.clone(),
                    uid: Some(obj.uid.clone()),
                    field_path: obj.field_path.clone(),
                    ..Default::default()
                },
                reason: Some(reason.clone()),
                message: Some(message.clone()),
                type_: Some(
                    match ty {
                        EventType::Normal => "Normal",
                        EventType::Warning => "Warning",
                    }
                    .into(),
                ),
                count: Some(1),
                first_timestamp: Some(now.clone()),
                last_timestamp: Some(now.clone()),
                event_time: None::<MicroTime>,
                source: Some(EventSource {
                    component: Some("kubelet".into()),
                    host: Some(host.clone()),
                }),
                reporting_component: Some("kubelet".into()),
                reporting_instance: Some(host),
                ..Default::default()
            };
            let api: Api<Event> = Api::namespaced(client, &ns);
            match api.create(&PostParams::default(), &ev).await {
                Ok(_) => {
                    seen.lock().unwrap_or_else(|p| p.into_inner()).insert(
                        (obj, ty, reason, message),
                        Seen {
                            name,
                            namespace: ns,
                            count: 1,
                            at: Instant::now(),
                        },
                    );
                }
                Err(e) => tracing::debug!(error = %e, "cannot record event"),
            }
        });
    }
}
