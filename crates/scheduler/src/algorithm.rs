//! One scheduling cycle: filter plugins decide which nodes can run a pod (with the reason
//! for each that cannot, as kube-scheduler words it), score plugins rank the feasible ones,
//! and the best node wins. Pure computation over the snapshot: no I/O.
//!
//! Like kube-scheduler, a cycle stops filtering once it has found enough feasible nodes in
//! large clusters (`percentageOfNodesToScore`, adaptive), starting where the previous cycle
//! stopped so that every node gets its turn.

use std::collections::{BTreeMap, HashMap};

use crate::podinfo::{AffinityTerm, PodInfo, term_matches, tolerates};
use crate::snapshot::{NodeInfo, Snapshot};

pub const REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const REASON_NOT_READY: &str = "node(s) were not ready";
pub const REASON_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const REASON_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const REASON_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const REASON_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// Requests assumed for scoring when a pod requests nothing (kube-scheduler's defaults).
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// The outcome of a cycle.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Bind to this node.
    Node(String),
    /// No node fits: `reason count` pairs, and the message for the FailedScheduling event.
    Unschedulable { message: String },
}

/// How many feasible nodes to look for before scoring (kube-scheduler's adaptive
/// `percentageOfNodesToScore`).
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    if nodes < 100 {
        return nodes;
    }
    let pct = (50i64 - (nodes as i64) / 125).max(5) as usize;
    (nodes * pct / 100).max(100)
}

/// Precomputed counts for the inter-pod and spreading plugins of one pod.
struct CycleState {
    /// Per required affinity term: topology value → matching pods; and whether any pod
    /// anywhere matched.
    affinity: Vec<(HashMap<String, usize>, bool)>,
    anti_affinity: Vec<HashMap<String, usize>>,
    /// (topology key, value) domains that existing pods' anti-affinity forbids.
    forbidden: Vec<(String, String)>,
    /// Per spread constraint: domain → matching pods, and the minimum over domains.
    spread: Vec<(HashMap<String, usize>, usize)>,
    /// Pods of the same controller per node (default spreading).
    siblings: HashMap<String, usize>,
}

fn count_by_topology(
    snap: &Snapshot,
    key: &str,
    matches: impl Fn(&str, &BTreeMap<String, String>) -> bool,
) -> (HashMap<String, usize>, bool) {
    let mut counts = HashMap::new();
    let mut any = false;
    for node in snap.all_nodes() {
        for p in node.pods.values() {
            if matches(&p.namespace, &p.labels) {
                any = true;
                if let Some(v) = node.labels.get(key) {
                    *counts.entry(v.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    (counts, any)
}

impl CycleState {
    fn new(pod: &PodInfo, snap: &Snapshot, eligible: &dyn Fn(&NodeInfo) -> bool) -> CycleState {
        let affinity = pod
            .affinity
            .iter()
            .map(|t| count_by_topology(snap, &t.topology_key, |ns, l| t.matches(ns, l)))
            .collect();
        let anti_affinity = pod
            .anti_affinity
            .iter()
            .map(|t| count_by_topology(snap, &t.topology_key, |ns, l| t.matches(ns, l)).0)
            .collect();
        let mut forbidden = Vec::new();
        for node in snap.all_nodes().filter(|_| snap.has_anti_affinity_pods()) {
            for p in node.pods.values() {
                for t in &p.anti_affinity {
                    if t.matches(&pod.namespace, &pod.labels)
                        && let Some(v) = node.labels.get(&t.topology_key)
                    {
                        forbidden.push((t.topology_key.clone(), v.clone()));
                    }
                }
            }
        }
        let spread = pod
            .spread
            .iter()
            .map(|c| {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for name in snap.node_names() {
                    if let Some(n) = snap.node(name)
                        && eligible(n)
                        && let Some(v) = n.labels.get(&c.topology_key)
                    {
                        let matching = n
                            .pods
                            .values()
                            .filter(|p| p.namespace == pod.namespace && c.matches(&p.labels))
                            .count();
                        *counts.entry(v.clone()).or_insert(0) += matching;
                    }
                }
                let min = counts.values().copied().min().unwrap_or(0);
                (counts, min)
            })
            .collect();
        let mut siblings = HashMap::new();
        if let Some(owner) = &pod.owner_uid {
            for node in snap.all_nodes() {
                let n = node
                    .pods
                    .values()
                    .filter(|p| p.owner_uid.as_ref() == Some(owner))
                    .count();
                if n > 0 {
                    siblings.insert(node.name.clone(), n);
                }
            }
        }
        CycleState {
            affinity,
            anti_affinity,
            forbidden,
            spread,
            siblings,
        }
    }
}

fn taint_display(key: &str, value: Option<&str>) -> String {
    format!("{{{key}: {}}}", value.unwrap_or(""))
}

fn node_affinity_ok(pod: &PodInfo, node: &NodeInfo) -> bool {
    if !pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return false;
    }
    match &pod.required_node_terms {
        None => true,
        Some(terms) => terms
            .iter()
            .any(|t| term_matches(t, &node.name, &node.labels)),
    }
}

/// The filter plugins. Returns the reasons a node cannot run the pod.
fn filter(pod: &PodInfo, node: &NodeInfo, st: &CycleState) -> Vec<String> {
    if node.unschedulable
        && !pod
            .tolerations
            .iter()
            .any(|t| tolerates(t, "node.kubernetes.io/unschedulable", None, "NoSchedule"))
    {
        return vec![REASON_UNSCHEDULABLE.into()];
    }
    if !node.ready {
        return vec![REASON_NOT_READY.into()];
    }
    if let Some(name) = &pod.node_name
        && *name != node.name
    {
        return vec![REASON_NODE_NAME.into()];
    }
    for taint in &node.taints {
        if taint.effect == "PreferNoSchedule" {
            continue;
        }
        if !pod
            .tolerations
            .iter()
            .any(|t| tolerates(t, &taint.key, taint.value.as_deref(), &taint.effect))
        {
            return vec![format!(
                "node(s) had untolerated taint {}",
                taint_display(&taint.key, taint.value.as_deref())
            )];
        }
    }
    if !node_affinity_ok(pod, node) {
        return vec![REASON_NODE_AFFINITY.into()];
    }
    if pod
        .host_ports
        .iter()
        .any(|p| node.ports.iter().any(|q| p.conflicts(q)))
    {
        return vec![REASON_PORTS.into()];
    }
    let mut insufficient = Vec::new();
    let free = |alloc: i64, used: i64| alloc - used;
    if node.requested.pods + 1 > node.allocatable.pods {
        insufficient.push("Too many pods".to_string());
    }
    let r = &pod.requests;
    if r.milli_cpu > 0 && r.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu) {
        insufficient.push("Insufficient cpu".into());
    }
    if r.memory > 0 && r.memory > free(node.allocatable.memory, node.requested.memory) {
        insufficient.push("Insufficient memory".into());
    }
    if r.ephemeral_storage > 0
        && r.ephemeral_storage
            > free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            )
    {
        insufficient.push("Insufficient ephemeral-storage".into());
    }
    if !insufficient.is_empty() {
        return insufficient;
    }
    for (c, (counts, min)) in pod.spread.iter().zip(&st.spread) {
        if !c.hard {
            continue;
        }
        let Some(v) = node.labels.get(&c.topology_key) else {
            return vec![REASON_SPREAD_LABEL.into()];
        };
        let self_match = usize::from(c.matches(&pod.labels));
        let count = counts.get(v).copied().unwrap_or(0);
        if (count + self_match) as i64 - *min as i64 > c.max_skew as i64 {
            return vec![REASON_SPREAD.into()];
        }
    }
    for (t, (counts, any)) in pod.affinity.iter().zip(&st.affinity) {
        let Some(v) = node.labels.get(&t.topology_key) else {
            return vec![REASON_AFFINITY.into()];
        };
        let here = counts.get(v).copied().unwrap_or(0) > 0;
        // The first pod of a group that matches its own term may go anywhere.
        let first_of_group = !*any && t.matches(&pod.namespace, &pod.labels);
        if !here && !first_of_group {
            return vec![REASON_AFFINITY.into()];
        }
    }
    for (t, counts) in pod.anti_affinity.iter().zip(&st.anti_affinity) {
        if let Some(v) = node.labels.get(&t.topology_key)
            && counts.get(v).copied().unwrap_or(0) > 0
        {
            return vec![REASON_ANTI_AFFINITY.into()];
        }
    }
    if st
        .forbidden
        .iter()
        .any(|(k, v)| node.labels.get(k) == Some(v))
    {
        return vec![REASON_EXISTING_ANTI_AFFINITY.into()];
    }
    Vec::new()
}

/// Raw scores of one node, before normalisation.
struct RawScores {
    least_allocated: i64,
    balanced: i64,
    prefer_no_schedule: i64,
    node_affinity: i64,
    inter_pod: i64,
    spread: i64,
}

fn fraction(used: i64, alloc: i64) -> f64 {
    if alloc <= 0 {
        1.0
    } else {
        (used as f64 / alloc as f64).min(1.0)
    }
}

fn topology_weight(snap: &Snapshot, node: &NodeInfo, t: &AffinityTerm) -> i64 {
    let Some(v) = node.labels.get(&t.topology_key) else {
        return 0;
    };
    let mut n = 0;
    for other in snap.all_nodes() {
        if other.labels.get(&t.topology_key) == Some(v) {
            n += other
                .pods
                .values()
                .filter(|p| t.matches(&p.namespace, &p.labels))
                .count() as i64;
        }
    }
    n
}

fn raw_scores(pod: &PodInfo, node: &NodeInfo, snap: &Snapshot, st: &CycleState) -> RawScores {
    let cpu_req = if pod.requests.milli_cpu == 0 {
        DEFAULT_MILLI_CPU
    } else {
        pod.requests.milli_cpu
    };
    let mem_req = if pod.requests.memory == 0 {
        DEFAULT_MEMORY
    } else {
        pod.requests.memory
    };
    let fc = fraction(
        node.requested.milli_cpu + cpu_req,
        node.allocatable.milli_cpu,
    );
    let fm = fraction(node.requested.memory + mem_req, node.allocatable.memory);
    let least_allocated = (((1.0 - fc) + (1.0 - fm)) * 50.0) as i64;
    let balanced = ((1.0 - (fc - fm).abs() / 2.0) * 100.0) as i64;
    let prefer_no_schedule = node
        .taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|taint| {
            !pod.tolerations
                .iter()
                .any(|t| tolerates(t, &taint.key, taint.value.as_deref(), "PreferNoSchedule"))
        })
        .count() as i64;
    let node_affinity = pod
        .preferred_node_terms
        .iter()
        .filter(|(_, t)| term_matches(t, &node.name, &node.labels))
        .map(|(w, _)| *w as i64)
        .sum();
    let mut inter_pod = 0;
    for w in &pod.preferred_affinity {
        inter_pod += w.weight as i64 * topology_weight(snap, node, &w.term);
    }
    for w in &pod.preferred_anti_affinity {
        inter_pod -= w.weight as i64 * topology_weight(snap, node, &w.term);
    }
    let mut spread = st.siblings.get(&node.name).copied().unwrap_or(0) as i64;
    for (c, (counts, _)) in pod.spread.iter().zip(&st.spread) {
        if !c.hard
            && let Some(v) = node.labels.get(&c.topology_key)
        {
            spread += counts.get(v).copied().unwrap_or(0) as i64;
        }
    }
    RawScores {
        least_allocated,
        balanced,
        prefer_no_schedule,
        node_affinity,
        inter_pod,
        spread,
    }
}

/// Scales raw values to 0..=100; `reverse` when smaller raw values are better.
fn normalize(values: &[i64], reverse: bool) -> Vec<i64> {
    let (min, max) = values
        .iter()
        .fold((i64::MAX, i64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    values
        .iter()
        .map(|v| {
            if max == min {
                // All equal: no preference (full marks unless nothing scored at all).
                if reverse || max > 0 { 100 } else { 0 }
            } else {
                let s = (v - min) * 100 / (max - min);
                if reverse { 100 - s } else { s }
            }
        })
        .collect()
}

/// Runs a scheduling cycle. `start` is where the node search begins (rotated by the caller);
/// returns the decision and how many nodes were examined.
pub fn schedule(pod: &PodInfo, snap: &Snapshot, start: usize) -> (Decision, usize) {
    let names = snap.node_names();
    let total = names.len();
    if total == 0 {
        return (
            Decision::Unschedulable {
                message: "0/0 nodes are available: no nodes available to schedule pods.".into(),
            },
            0,
        );
    }
    let eligible = |n: &NodeInfo| node_affinity_ok(pod, n);
    let st = CycleState::new(pod, snap, &eligible);
    let want = feasible_nodes_to_find(total);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(total));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut examined = 0;
    for i in 0..total {
        let name = &names[(start + i) % total];
        let Some(node) = snap.node(name) else {
            continue;
        };
        examined += 1;
        let why = filter(pod, node, &st);
        if why.is_empty() {
            feasible.push(node);
            if feasible.len() >= want {
                break;
            }
        } else {
            for r in why {
                *reasons.entry(r).or_insert(0) += 1;
            }
        }
    }
    if feasible.is_empty() {
        // Sorted as strings, as kube-scheduler's FitError does.
        let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        return (
            Decision::Unschedulable {
                message: format!("0/{total} nodes are available: {}.", parts.join(", ")),
            },
            examined,
        );
    }
    if feasible.len() == 1 {
        return (Decision::Node(feasible[0].name.clone()), examined);
    }
    let raw: Vec<RawScores> = feasible
        .iter()
        .map(|n| raw_scores(pod, n, snap, &st))
        .collect();
    let col = |f: fn(&RawScores) -> i64| raw.iter().map(f).collect::<Vec<i64>>();
    let least = col(|r| r.least_allocated);
    let balanced = col(|r| r.balanced);
    let taints = normalize(&col(|r| r.prefer_no_schedule), true);
    let node_aff = normalize(&col(|r| r.node_affinity), false);
    let inter = normalize(&col(|r| r.inter_pod), false);
    let spread = normalize(&col(|r| r.spread), true);
    let mut best = 0;
    let mut best_score = i64::MIN;
    for i in 0..feasible.len() {
        let s =
            least[i] + balanced[i] + 3 * taints[i] + 2 * node_aff[i] + 2 * inter[i] + 2 * spread[i];
        if s > best_score {
            best_score = s;
            best = i;
        }
    }
    (Decision::Node(feasible[best].name.clone()), examined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    fn node(name: &str, cpu: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn pod(name: &str, spec: Value, labels: Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": spec
        }))
        .unwrap();
        PodInfo::from_pod(&p)
    }

    fn cpu(m: &str) -> Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": m}}}]})
    }

    #[test]
    fn explains_failures_like_kube_scheduler() {
        let mut s = Snapshot::default();
        s.upsert_node(&node("a", "1", json!({}), json!([])));
        s.upsert_node(&node("b", "1", json!({}), json!([])));
        s.upsert_node(&node(
            "c",
            "8",
            json!({}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
        ));
        let (d, _) = schedule(&pod("p", cpu("2"), json!({})), &s, 0);
        assert_eq!(
            d,
            Decision::Unschedulable {
                message: "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.".into()
            }
        );
    }

    #[test]
    fn prefers_the_least_allocated_node_and_counts_assumed_pods() {
        let mut s = Snapshot::default();
        s.upsert_node(&node("a", "4", json!({}), json!([])));
        s.upsert_node(&node("b", "4", json!({}), json!([])));
        s.assume(pod("x", cpu("3"), json!({})), "a");
        let (d, _) = schedule(&pod("p", cpu("500m"), json!({})), &s, 0);
        assert_eq!(d, Decision::Node("b".into()));
        // b full too: nothing fits 2 cpus
        s.assume(pod("y", cpu("3"), json!({})), "b");
        let (d, _) = schedule(&pod("q", cpu("2"), json!({})), &s, 0);
        assert!(matches!(d, Decision::Unschedulable { .. }));
    }

    #[test]
    fn node_selector_affinity_and_tolerations() {
        let mut s = Snapshot::default();
        s.upsert_node(&node("ssd", "4", json!({"disk": "ssd"}), json!([])));
        s.upsert_node(&node(
            "gpu",
            "4",
            json!({"disk": "hdd"}),
            json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
        ));
        let (d, _) = schedule(
            &pod("p", json!({"nodeSelector": {"disk": "ssd"}}), json!({})),
            &s,
            1,
        );
        assert_eq!(d, Decision::Node("ssd".into()));
        let tolerant = json!({
            "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}]}}}
        });
        let (d, _) = schedule(&pod("g", tolerant, json!({})), &s, 0);
        assert_eq!(d, Decision::Node("gpu".into()));
        let (d, _) = schedule(
            &pod("n", json!({"nodeSelector": {"disk": "nvme"}}), json!({})),
            &s,
            0,
        );
        assert_eq!(
            d,
            Decision::Unschedulable {
                message: "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {gpu: yes}.".into()
            }
        );
    }

    #[test]
    fn pod_anti_affinity_and_affinity() {
        let mut s = Snapshot::default();
        for (n, zone) in [("a", "z1"), ("b", "z1"), ("c", "z2")] {
            s.upsert_node(&node(
                n,
                "4",
                json!({"zone": zone, "kubernetes.io/hostname": n}),
                json!([]),
            ));
        }
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}});
        let (d, _) = schedule(&pod("w1", anti.clone(), json!({"app": "web"})), &s, 0);
        let Decision::Node(first) = d else {
            panic!("{d:?}")
        };
        s.place_bound(pod("w1", anti.clone(), json!({"app": "web"})), &first);
        let (d, _) = schedule(&pod("w2", anti.clone(), json!({"app": "web"})), &s, 0);
        let Decision::Node(second) = d else {
            panic!("{d:?}")
        };
        let zone = |n: &str| if n == "c" { "z2" } else { "z1" };
        assert_ne!(zone(&first), zone(&second));
        s.place_bound(pod("w2", anti.clone(), json!({"app": "web"})), &second);
        let (d, _) = schedule(&pod("w3", anti, json!({"app": "web"})), &s, 0);
        assert!(matches!(d, Decision::Unschedulable { .. }), "{d:?}");
        // affinity: a cache pod must share a zone with web pods; a pod without affinity that
        // web's anti-affinity rejects can't land near them either.
        let aff = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        let (d, _) = schedule(&pod("cache", aff, json!({"app": "cache"})), &s, 0);
        assert!(d == Decision::Node(first.clone()) || d == Decision::Node(second.clone()));
        let (d, _) = schedule(&pod("intruder", json!({}), json!({"app": "web"})), &s, 0);
        assert!(
            matches!(d, Decision::Unschedulable { ref message } if message.contains(REASON_EXISTING_ANTI_AFFINITY)),
            "{d:?}"
        );
    }

    #[test]
    fn topology_spread_is_respected() {
        let mut s = Snapshot::default();
        for (n, zone) in [("a", "z1"), ("b", "z2")] {
            s.upsert_node(&node(n, "16", json!({"zone": zone}), json!([])));
        }
        let spec = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]});
        let mut per_zone: HashMap<String, usize> = HashMap::new();
        for i in 0..6 {
            let p = pod(&format!("s{i}"), spec.clone(), json!({"app": "s"}));
            let (d, _) = schedule(&p, &s, 0);
            let Decision::Node(n) = d else {
                panic!("{d:?}")
            };
            *per_zone.entry(n.clone()).or_default() += 1;
            s.place_bound(p, &n);
            let (a, b) = (
                per_zone.get("a").copied().unwrap_or(0),
                per_zone.get("b").copied().unwrap_or(0),
            );
            assert!(a.abs_diff(b) <= 1, "skew after {i}: {a} vs {b}");
        }
        // a node without the topology label is not eligible
        s.upsert_node(&node("bare", "16", json!({}), json!([])));
        let mut only_bare = spec.clone();
        only_bare["nodeName"] = json!("bare");
        let (d, _) = schedule(&pod("x", only_bare, json!({"app": "s"})), &s, 0);
        assert!(
            matches!(d, Decision::Unschedulable { ref message } if message.contains("missing required label")),
            "{d:?}"
        );
    }

    #[test]
    fn host_ports_and_unschedulable_nodes() {
        let mut s = Snapshot::default();
        s.upsert_node(&node("a", "4", json!({}), json!([])));
        let mut cordoned = node("b", "4", json!({}), json!([]));
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        s.upsert_node(&cordoned);
        let hp = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        s.place_bound(pod("first", hp.clone(), json!({})), "a");
        let (d, _) = schedule(&pod("second", hp, json!({})), &s, 0);
        assert_eq!(
            d,
            Decision::Unschedulable {
                message: "0/2 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 1 node(s) were unschedulable.".into()
            }
        );
    }

    #[test]
    fn sampling_in_large_clusters() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
    }
}
