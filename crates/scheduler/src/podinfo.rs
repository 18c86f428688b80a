//! What the scheduler needs to know about a pod, parsed once from the object: requests,
//! host ports, node selection, tolerations, inter-pod (anti-)affinity terms and topology
//! spread constraints.

use std::collections::{BTreeMap, HashSet};

use berth_controllers::{ResourceAmounts, pod_requests};
use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Toleration,
    TopologySpreadConstraint,
};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

/// `namespace/name`.
pub type PodKey = String;

pub fn pod_key(pod: &Pod) -> PodKey {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// A host port a pod binds on its node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || wildcard(&self.ip) || wildcard(&o.ip))
    }
}

/// An inter-pod affinity term, resolved against the pod's namespace.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    pub selector: Option<Selector>,
    /// `None`: every namespace.
    pub namespaces: Option<HashSet<String>>,
    pub topology_key: String,
}

impl AffinityTerm {
    fn parse(term: &PodAffinityTerm, own_namespace: &str) -> AffinityTerm {
        let selector = term
            .label_selector
            .clone()
            .and_then(|s| Selector::try_from(s).ok());
        let mut namespaces: HashSet<String> = term.namespaces.iter().flatten().cloned().collect();
        let all = term.namespace_selector.is_some();
        if namespaces.is_empty() && !all {
            namespaces.insert(own_namespace.to_string());
        }
        AffinityTerm {
            selector,
            // A namespace selector is evaluated as "every namespace" (namespace labels are
            // not part of the snapshot).
            namespaces: if all { None } else { Some(namespaces) },
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether an existing pod matches the term.
    pub fn matches(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        if let Some(ns) = &self.namespaces
            && !ns.contains(namespace)
        {
            return false;
        }
        // A term without a selector matches nothing.
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// A weighted (preferred) affinity term.
#[derive(Clone, Debug)]
pub struct WeightedTerm {
    pub weight: i32,
    pub term: AffinityTerm,
}

/// A parsed topology spread constraint.
#[derive(Clone, Debug)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub hard: bool,
    pub selector: Option<Selector>,
}

impl SpreadConstraint {
    fn parse(c: &TopologySpreadConstraint, labels: &BTreeMap<String, String>) -> SpreadConstraint {
        let mut selector = c
            .label_selector
            .clone()
            .and_then(|s| Selector::try_from(s).ok());
        // matchLabelKeys: the pod's own values of those keys join the selector.
        if let (Some(sel), Some(keys)) = (selector.as_mut(), c.match_label_keys.as_ref()) {
            let extra: Selector = keys
                .iter()
                .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            sel.extend(extra);
        }
        SpreadConstraint {
            max_skew: c.max_skew.max(1),
            topology_key: c.topology_key.clone(),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            selector,
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// A pod as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub key: PodKey,
    pub uid: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub requests: ResourceAmounts,
    pub host_ports: Vec<HostPort>,
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_terms: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_terms: Vec<(i32, NodeSelectorTerm)>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Vec<AffinityTerm>,
    pub anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    pub spread: Vec<SpreadConstraint>,
    /// The uid of the controller owning the pod (for default spreading).
    pub owner_uid: Option<String>,
    pub priority: i32,
    pub scheduler_name: String,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let namespace = pod.namespace().unwrap_or_default();
        let labels = pod.labels().clone();
        let spec = pod.spec.clone().unwrap_or_default();
        let affinity = spec.affinity.clone().unwrap_or_default();
        let node_aff = affinity.node_affinity.unwrap_or_default();
        let pod_aff = affinity.pod_affinity.unwrap_or_default();
        let anti = affinity.pod_anti_affinity.unwrap_or_default();
        let terms = |t: Option<Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            t.unwrap_or_default()
                .iter()
                .map(|t| AffinityTerm::parse(t, &namespace))
                .collect()
        };
        let weighted =
            |t: Option<Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| -> Vec<WeightedTerm> {
                t.unwrap_or_default()
                    .iter()
                    .map(|w| WeightedTerm {
                        weight: w.weight,
                        term: AffinityTerm::parse(&w.pod_affinity_term, &namespace),
                    })
                    .collect()
            };
        let mut host_ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p.host_ip.clone().unwrap_or_default(),
                        port: hp,
                    });
                }
            }
        }
        PodInfo {
            key: pod_key(pod),
            uid: pod.uid().unwrap_or_default(),
            requests: pod_requests(&spec),
            host_ports,
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_terms: node_aff
                .required_during_scheduling_ignored_during_execution
                .map(|s| s.node_selector_terms),
            preferred_node_terms: node_aff
                .preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.weight, p.preference))
                .collect(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            affinity: terms(pod_aff.required_during_scheduling_ignored_during_execution),
            anti_affinity: terms(anti.required_during_scheduling_ignored_during_execution),
            preferred_affinity: weighted(
                pod_aff.preferred_during_scheduling_ignored_during_execution,
            ),
            preferred_anti_affinity: weighted(
                anti.preferred_during_scheduling_ignored_during_execution,
            ),
            spread: spec
                .topology_spread_constraints
                .iter()
                .flatten()
                .map(|c| SpreadConstraint::parse(c, &labels))
                .collect(),
            owner_uid: pod
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true))
                .map(|r| r.uid.clone()),
            priority: spec.priority.unwrap_or(0),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .unwrap_or_else(|| "default-scheduler".into()),
            labels,
            namespace,
        }
    }
}

/// Whether a node selector requirement holds for a node's labels (or its name, for
/// `matchFields`).
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term holds (an empty term matches nothing).
pub fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(node_name);
            requirement_matches(r, v)
        })
}

/// Whether a toleration tolerates a taint (Kubernetes' `ToleratesTaint`).
pub fn tolerates(t: &Toleration, key: &str, value: Option<&str>, effect: &str) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty())
        && e != effect
    {
        return false;
    }
    let op = t.operator.as_deref().unwrap_or("Equal");
    match t.key.as_deref().filter(|k| !k.is_empty()) {
        None => op == "Exists",
        Some(k) if k != key => false,
        Some(_) => match op {
            "Exists" => true,
            _ => t.value.as_deref().unwrap_or("") == value.unwrap_or(""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn toleration_rules() {
        let t = tol(
            serde_json::json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}),
        );
        assert!(tolerates(&t, "k", Some("v"), "NoSchedule"));
        assert!(!tolerates(&t, "k", Some("w"), "NoSchedule"));
        assert!(!tolerates(&t, "k", Some("v"), "NoExecute"));
        let any = tol(serde_json::json!({"operator": "Exists"}));
        assert!(tolerates(&any, "whatever", None, "NoExecute"));
        let exists = tol(serde_json::json!({"key": "k", "operator": "Exists"}));
        assert!(tolerates(&exists, "k", Some("x"), "NoExecute"));
        assert!(!tolerates(&exists, "j", Some("x"), "NoExecute"));
    }

    #[test]
    fn node_selector_terms() {
        let term: NodeSelectorTerm = serde_json::from_value(serde_json::json!({
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                {"key": "gpu", "operator": "DoesNotExist"},
                {"key": "cores", "operator": "Gt", "values": ["4"]}
            ]
        }))
        .unwrap();
        let labels = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(term_matches(
            &term,
            "n",
            &labels(&[("zone", "a"), ("cores", "8")])
        ));
        assert!(!term_matches(
            &term,
            "n",
            &labels(&[("zone", "c"), ("cores", "8")])
        ));
        assert!(!term_matches(
            &term,
            "n",
            &labels(&[("zone", "a"), ("cores", "2")])
        ));
        assert!(!term_matches(
            &term,
            "n",
            &labels(&[("zone", "a"), ("cores", "8"), ("gpu", "1")])
        ));
        let by_name: NodeSelectorTerm = serde_json::from_value(serde_json::json!({
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]
        }))
        .unwrap();
        assert!(term_matches(&by_name, "n1", &labels(&[])));
        assert!(!term_matches(&by_name, "n2", &labels(&[])));
        assert!(!term_matches(
            &NodeSelectorTerm::default(),
            "n1",
            &labels(&[])
        ));
    }

    #[test]
    fn host_port_conflicts() {
        let p = |ip: &str, port| HostPort {
            protocol: "TCP".into(),
            ip: ip.into(),
            port,
        };
        assert!(p("", 80).conflicts(&p("10.0.0.1", 80)));
        assert!(!p("10.0.0.2", 80).conflicts(&p("10.0.0.1", 80)));
        assert!(!p("", 80).conflicts(&p("", 81)));
    }
}
