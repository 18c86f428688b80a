//! The scheduler's in-memory snapshot: nodes with their allocatable resources, taints and
//! labels, and the pods on them — bound pods from the watch, and pods the scheduler has
//! *assumed* onto a node while their binding is in flight, so the next cycle already sees
//! the capacity they take.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_controllers::ResourceAmounts;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::ResourceExt;

use crate::podinfo::{HostPort, PodInfo, PodKey};

/// One node as the scheduler sees it.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    /// False for a placeholder holding pods bound to a node not (yet) seen.
    pub present: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub allocatable: ResourceAmounts,
    pub requested: ResourceAmounts,
    pub unschedulable: bool,
    pub ready: bool,
    pub pods: HashMap<PodKey, Arc<PodInfo>>,
    pub ports: Vec<HostPort>,
}

impl NodeInfo {
    fn update_from(&mut self, node: &Node) {
        self.present = true;
        self.labels = node.labels().clone();
        let spec = node.spec.clone().unwrap_or_default();
        self.taints = spec.taints.unwrap_or_default();
        self.unschedulable = spec.unschedulable.unwrap_or(false);
        let status = node.status.clone().unwrap_or_default();
        self.allocatable =
            ResourceAmounts::from_list(status.allocatable.as_ref().or(status.capacity.as_ref()));
        self.ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
    }

    fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.ports.extend(pod.host_ports.iter().cloned());
        self.pods.insert(pod.key.clone(), pod);
    }

    fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let pod = self.pods.remove(key)?;
        self.requested.sub(&pod.requests);
        for hp in &pod.host_ports {
            if let Some(i) = self.ports.iter().position(|p| p == hp) {
                self.ports.swap_remove(i);
            }
        }
        Some(pod)
    }
}

/// Where a pod sits in the snapshot.
#[derive(Clone, Debug)]
struct Placement {
    node: String,
    assumed: bool,
}

/// Nodes and placed pods.
#[derive(Default)]
pub struct Snapshot {
    nodes: HashMap<String, NodeInfo>,
    /// Names of present nodes in a stable order (the scheduler starts each search where the
    /// previous one stopped).
    order: Vec<String>,
    placements: HashMap<PodKey, Placement>,
    /// Placed pods with required anti-affinity terms (others' cycles must honour them).
    anti_affinity_pods: usize,
}

impl Snapshot {
    pub fn upsert_node(&mut self, node: &Node) {
        let name = node.name_any();
        let info = self.nodes.entry(name.clone()).or_insert_with(|| NodeInfo {
            name: name.clone(),
            ..Default::default()
        });
        let was_present = info.present;
        info.update_from(node);
        if !was_present {
            self.order.push(name);
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.present = false;
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.order.retain(|n| n != name);
    }

    pub fn node_names(&self) -> &[String] {
        &self.order
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.present)
    }

    /// Every node holding pods, present or not (for inter-pod terms).
    pub fn all_nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// Places a bound pod (confirming an assumption, or moving it).
    pub fn place_bound(&mut self, pod: PodInfo, node: &str) {
        self.place(pod, node, false);
    }

    /// Places a pod whose binding is in flight.
    pub fn assume(&mut self, pod: PodInfo, node: &str) {
        self.place(pod, node, true);
    }

    fn place(&mut self, pod: PodInfo, node: &str, assumed: bool) {
        let key = pod.key.clone();
        self.remove_pod(&key);
        if !pod.anti_affinity.is_empty() {
            self.anti_affinity_pods += 1;
        }
        let info = self
            .nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo {
                name: node.to_string(),
                ..Default::default()
            });
        info.add_pod(Arc::new(pod));
        self.placements.insert(
            key,
            Placement {
                node: node.to_string(),
                assumed,
            },
        );
    }

    /// Removes a pod (deleted, finished, or a binding that failed).
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(p) = self.placements.remove(key)
            && let Some(info) = self.nodes.get_mut(&p.node)
        {
            if info
                .remove_pod(key)
                .is_some_and(|pod| !pod.anti_affinity.is_empty())
            {
                self.anti_affinity_pods -= 1;
            }
            if !info.present && info.pods.is_empty() {
                self.nodes.remove(&p.node);
            }
        }
    }

    /// Whether any placed pod has required anti-affinity terms.
    pub fn has_anti_affinity_pods(&self) -> bool {
        self.anti_affinity_pods > 0
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.placements.get(key).is_some_and(|p| p.assumed)
    }

    pub fn is_placed(&self, key: &str) -> bool {
        self.placements.contains_key(key)
    }

    /// Keys of all placed pods (to reconcile after a re-list).
    pub fn placed_keys(&self) -> Vec<PodKey> {
        self.placements.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"zone": "a"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn pod(key: &str, cpu: i64) -> PodInfo {
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": key, "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": format!("{cpu}m")}}}]}
        }))
        .unwrap();
        PodInfo::from_pod(&p)
    }

    #[test]
    fn accounting_of_assumed_and_bound_pods() {
        let mut s = Snapshot::default();
        s.upsert_node(&node("n1"));
        assert_eq!(s.node("n1").unwrap().allocatable.milli_cpu, 2000);
        s.assume(pod("a", 500), "n1");
        assert!(s.is_assumed("ns/a"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 500);
        // confirmation does not double count
        s.place_bound(pod("a", 500), "n1");
        assert!(!s.is_assumed("ns/a"));
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 500);
        s.remove_pod("ns/a");
        assert_eq!(s.node("n1").unwrap().requested.milli_cpu, 0);
        // pods on a node seen later are kept in a placeholder
        s.place_bound(pod("b", 100), "n2");
        assert!(s.node("n2").is_none());
        s.upsert_node(&node("n2"));
        assert_eq!(s.node("n2").unwrap().requested.milli_cpu, 100);
        assert_eq!(s.node_names(), ["n1".to_string(), "n2".to_string()]);
    }
}
