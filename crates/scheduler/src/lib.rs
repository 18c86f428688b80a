//! berth's scheduler: assigns pending pods to nodes, as kube-scheduler does.
//!
//! Shape and reasons:
//! - A kube-rs client of the API server only (DESIGN §3); it never imports the API server or
//!   the store. Events go through the controllers' non-blocking recorder.
//! - An in-memory snapshot of nodes and placed pods (`snapshot`), including pods *assumed*
//!   onto a node while their binding is in flight, so cycles never wait for the API server
//!   and never overcommit (DESIGN §10).
//! - Cycles are pure functions over the snapshot (`algorithm`): filters (node ready and
//!   schedulable, resources, node selector and affinity, taints and tolerations, host ports,
//!   topology spread, inter-pod affinity and anti-affinity) with kube-scheduler's failure
//!   wording, then scores (least allocated, balanced, PreferNoSchedule taints, preferred
//!   node and pod affinity, spreading). Large clusters are sampled like kube-scheduler's
//!   `percentageOfNodesToScore`.
//! - The queue (`queue`) orders by priority, backs off failed pods and parks unschedulable
//!   ones until the cluster changes.

mod algorithm;
mod error;
mod podinfo;
mod queue;
mod scheduler;
mod snapshot;

pub use algorithm::{Decision, feasible_nodes_to_find, schedule};
pub use error::{Error, Result};
pub use podinfo::{PodInfo, pod_key};
pub use scheduler::{Scheduler, SchedulerConfig};
pub use snapshot::Snapshot;
