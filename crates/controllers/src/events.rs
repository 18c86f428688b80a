//! The event recorder: core/v1 Events about what a component did, as `kubectl describe` and
//! `kubectl get events` show them.
//!
//! Recording never blocks the caller: events go through a bounded channel to one writer task
//! per recorder, and are dropped (with a debug log) when the channel is full, as client-go's
//! broadcaster does — events are informational and must never slow a reconcile or a
//! scheduling cycle. Repeats of the same event (same object, type, reason, message and
//! source) within ten minutes update the existing Event's `count` and `lastTimestamp` instead
//! of creating a new object.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

/// How long a repeated event is folded into the existing Event object.
const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
/// Events buffered before new ones are dropped.
const QUEUE: usize = 4096;
/// Aggregation entries kept before the oldest are forgotten.
const MAX_REMEMBERED: usize = 8192;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub field_path: Option<String>,
}

impl InvolvedObject {
    /// The reference to a typed object.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> InvolvedObject {
        InvolvedObject {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: obj.namespace(),
            name: obj.name_any(),
            uid: obj.uid(),
            resource_version: obj.resource_version(),
            field_path: None,
        }
    }

    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.clone()),
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            field_path: self.field_path.clone(),
        }
    }
}

struct Pending {
    object: InvolvedObject,
    kind: EventType,
    reason: String,
    message: String,
    at: jiff::Timestamp,
}

/// Records Events as one component (`source.component`).
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Pending>,
}

impl EventRecorder {
    /// A recorder writing through `client` as `component` (e.g. `default-scheduler`). Spawns
    /// its writer task, which ends when every clone of the recorder is dropped.
    pub fn new(client: Client, component: &str) -> EventRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            client,
            component: component.to_string(),
            seen: HashMap::new(),
        };
        tokio::spawn(writer.run(rx));
        EventRecorder { tx }
    }

    /// Records an event; never blocks.
    pub fn record(&self, object: &InvolvedObject, kind: EventType, reason: &str, message: &str) {
        let pending = Pending {
            object: object.clone(),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
            at: jiff::Timestamp::now(),
        };
        if self.tx.try_send(pending).is_err() {
            tracing::debug!(reason, "event dropped: the event queue is full");
        }
    }

    pub fn normal(&self, object: &InvolvedObject, reason: &str, message: &str) {
        self.record(object, EventType::Normal, reason, message);
    }

    pub fn warning(&self, object: &InvolvedObject, reason: &str, message: &str) {
        self.record(object, EventType::Warning, reason, message);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct AggregationKey {
    object: (String, String, Option<String>, String, Option<String>),
    kind: EventType,
    reason: String,
    message: String,
}

struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

struct Writer {
    client: Client,
    component: String,
    seen: HashMap<AggregationKey, Seen>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        while let Some(p) = rx.recv().await {
            if let Err(e) = self.write(p).await {
                tracing::debug!(error = %e, "cannot record an event");
            }
        }
    }

    async fn write(&mut self, p: Pending) -> Result<(), kube::Error> {
        let key = AggregationKey {
            object: (
                p.object.api_version.clone(),
                p.object.kind.clone(),
                p.object.namespace.clone(),
                p.object.name.clone(),
                p.object.uid.clone(),
            ),
            kind: p.kind,
            reason: p.reason.clone(),
            message: p.message.clone(),
        };
        let now = Instant::now();
        if let Some(seen) = self.seen.get_mut(&key)
            && now.duration_since(seen.last) < AGGREGATION_WINDOW
        {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &seen.namespace);
            let count = seen.count + 1;
            let patch = json!({"count": count, "lastTimestamp": Time(p.at)});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    seen.count = count;
                    seen.last = now;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        // Cluster-scoped objects' events live in `default`, as in Kubernetes.
        let namespace = p
            .object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let base: String = p.object.name.chars().take(200).collect();
        let name = format!(
            "{base}.{:x}",
            (p.at.as_nanosecond() as u128) ^ (rand::random::<u16>() as u128)
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: p.object.reference(),
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(p.kind.as_str().to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            count: Some(1),
            first_timestamp: Some(Time(p.at)),
            last_timestamp: Some(Time(p.at)),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen
                .retain(|_, s| now.duration_since(s.last) < AGGREGATION_WINDOW / 10);
        }
        self.seen.insert(
            key,
            Seen {
                namespace,
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}
