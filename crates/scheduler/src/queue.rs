//! The scheduling queue: pods waiting for a cycle (highest priority first, then oldest),
//! pods backing off after a failed attempt, and unschedulable pods parked until the cluster
//! changes (a node appears or changes, a pod goes away) or a periodic flush.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::podinfo::{PodInfo, PodKey};

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even without a cluster change.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
}

struct Entry {
    info: PodInfo,
    at: Where,
    /// When the pod may be tried again (after a failure).
    not_before: Instant,
    parked_at: Instant,
}

/// The queue.
#[derive(Default)]
pub struct SchedulingQueue {
    entries: HashMap<PodKey, Entry>,
    /// (priority, Reverse(sequence)) → key; stale heap items are skipped on pop.
    active: BinaryHeap<(i32, Reverse<u64>, PodKey)>,
    seq: u64,
    /// The last failure message per pod (to avoid rewriting the same pod condition).
    messages: HashMap<PodKey, String>,
}

impl SchedulingQueue {
    fn push_active(&mut self, key: PodKey, priority: i32) {
        self.seq += 1;
        self.active.push((priority, Reverse(self.seq), key));
    }

    /// Adds a new pending pod, or updates one already queued (an update may make an
    /// unschedulable pod schedulable, so it is retried).
    pub fn add_or_update(&mut self, info: PodInfo) {
        let key = info.key.clone();
        let priority = info.priority;
        match self.entries.get_mut(&key) {
            Some(e) => {
                let changed = e.info.requests != info.requests
                    || e.info.tolerations != info.tolerations
                    || e.info.node_selector != info.node_selector
                    || e.info.labels != info.labels
                    || e.info.node_name != info.node_name;
                e.info = info;
                if changed && e.at == Where::Unschedulable {
                    e.at = Where::Active;
                    self.push_active(key, priority);
                }
            }
            None => {
                let now = Instant::now();
                self.entries.insert(
                    key.clone(),
                    Entry {
                        info,
                        at: Where::Active,
                        not_before: now,
                        parked_at: now,
                    },
                );
                self.push_active(key, priority);
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
        self.messages.remove(key);
    }

    /// The next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<PodInfo> {
        while let Some((_, _, key)) = self.active.pop() {
            if let Some(e) = self.entries.get(&key)
                && e.at == Where::Active
            {
                // Stays in `entries` until it is bound or fails (as in-flight).
                let info = e.info.clone();
                self.entries.remove(&key);
                return Some(info);
            }
        }
        None
    }

    /// Whether a pod is ready for a cycle (stale heap entries are dropped on the way).
    pub fn has_active(&mut self) -> bool {
        while let Some((_, _, k)) = self.active.peek() {
            if self.entries.get(k).is_some_and(|e| e.at == Where::Active) {
                return true;
            }
            self.active.pop();
        }
        false
    }

    /// Parks a pod that did not fit; it backs off exponentially. Returns whether its
    /// failure message differs from the previous one.
    pub fn unschedulable(&mut self, info: PodInfo, attempts: u32, message: &str) -> bool {
        let now = Instant::now();
        let backoff = INITIAL_BACKOFF
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(4))
            .min(MAX_BACKOFF);
        let key = info.key.clone();
        let changed = self.messages.get(&key).map(String::as_str) != Some(message);
        if changed {
            self.messages.insert(key.clone(), message.to_string());
        }
        self.entries.insert(
            key,
            Entry {
                info,
                at: Where::Unschedulable,
                not_before: now + backoff,
                parked_at: now,
            },
        );
        changed
    }

    /// Re-queues a pod whose binding failed, after its backoff.
    pub fn retry_later(&mut self, info: PodInfo, attempts: u32) {
        let now = Instant::now();
        let backoff = INITIAL_BACKOFF
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(4))
            .min(MAX_BACKOFF);
        self.entries.insert(
            info.key.clone(),
            Entry {
                info,
                at: Where::Backoff,
                not_before: now + backoff,
                parked_at: now,
            },
        );
    }

    /// The cluster changed: unschedulable pods may fit now (after their backoff).
    pub fn cluster_changed(&mut self) {
        for e in self.entries.values_mut() {
            if e.at == Where::Unschedulable {
                e.at = Where::Backoff;
            }
        }
    }

    /// Moves pods whose backoff ended to the active queue, and flushes pods parked as
    /// unschedulable for too long. Returns when the next one will be due.
    pub fn tick(&mut self) -> Option<Instant> {
        self.tick_at(Instant::now())
    }

    fn tick_at(&mut self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (k, e) in self.entries.iter_mut() {
            let ready = match e.at {
                Where::Backoff => e.not_before <= now,
                Where::Unschedulable => now.duration_since(e.parked_at) >= UNSCHEDULABLE_FLUSH,
                Where::Active => false,
            };
            if ready {
                e.at = Where::Active;
                due.push((k.clone(), e.info.priority));
            } else {
                let when = match e.at {
                    Where::Backoff => Some(e.not_before),
                    Where::Unschedulable => Some(e.parked_at + UNSCHEDULABLE_FLUSH),
                    Where::Active => None,
                };
                if let Some(w) = when {
                    next = Some(next.map_or(w, |n| n.min(w)));
                }
            }
        }
        for (k, p) in due {
            self.push_active(k, p);
        }
        next
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn info(name: &str, priority: i32) -> PodInfo {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "c"}], "priority": priority}
        }))
        .unwrap();
        PodInfo::from_pod(&p)
    }

    #[test]
    fn priority_order_backoff_and_cluster_changes() {
        let mut q = SchedulingQueue::default();
        q.add_or_update(info("low", 0));
        q.add_or_update(info("high", 10));
        q.add_or_update(info("low2", 0));
        assert_eq!(q.pop().unwrap().key, "ns/high");
        assert_eq!(q.pop().unwrap().key, "ns/low");
        let p = q.pop().unwrap();
        assert!(q.pop().is_none());
        assert!(q.unschedulable(p.clone(), 1, "0/1 nodes are available"));
        assert!(!q.unschedulable(p, 1, "0/1 nodes are available"));
        // parked: not retried before a cluster change or the flush
        q.tick();
        assert!(q.pop().is_none());
        q.cluster_changed();
        q.tick();
        assert!(q.pop().is_none(), "still backing off");
        q.tick_at(Instant::now() + Duration::from_millis(1100));
        assert_eq!(q.pop().unwrap().key, "ns/low2");
    }
}
