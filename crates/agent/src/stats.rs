//! Resource usage: CPU and memory of every running container from its cgroup (through the
//! runtime), sampled periodically; CPU rates from the difference of two samples (the first
//! from the container's start). Served as a kubelet-style summary (`/stats/summary`, which
//! the API server turns into `metrics.k8s.io`) and in Prometheus text format (`/metrics`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_cri::{ContainerRuntime, ContainerState};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::hostinfo;

/// Usage of one container.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUsage {
    pub name: String,
    pub usage_nano_cores: u64,
    pub usage_core_nano_seconds: u64,
    pub working_set_bytes: u64,
    pub usage_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub containers: Vec<ContainerUsage>,
}

/// The latest sample.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node_name: String,
    /// RFC 3339 time of the sample.
    pub time: String,
    pub window_seconds: f64,
    pub node_usage_nano_cores: u64,
    pub node_working_set_bytes: u64,
    pub pods: Vec<PodUsage>,
}

struct State {
    prev: HashMap<String, (i64, u64)>,
    node_prev: Option<(Instant, u64)>,
    latest: Summary,
    containers_running: usize,
    containers_exited: usize,
    sandboxes: usize,
}

/// Samples usage in the background.
pub struct Stats {
    runtime: Arc<dyn ContainerRuntime>,
    node: String,
    interval: Duration,
    state: Mutex<State>,
}

fn rate(delta_ns: u64, window_ns: i64) -> u64 {
    if window_ns <= 0 {
        return 0;
    }
    ((delta_ns as u128 * 1_000_000_000) / window_ns as u128) as u64
}

impl Stats {
    pub fn new(runtime: Arc<dyn ContainerRuntime>, node: &str, interval: Duration) -> Arc<Stats> {
        Arc::new(Stats {
            runtime,
            node: node.to_string(),
            interval,
            state: Mutex::new(State {
                prev: HashMap::new(),
                node_prev: None,
                latest: Summary::default(),
                containers_running: 0,
                containers_exited: 0,
                sandboxes: 0,
            }),
        })
    }

    pub fn summary(&self) -> Summary {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latest
            .clone()
    }

    /// Takes one sample.
    pub async fn sample(&self) {
        let snap = match self.runtime.snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "stats: cannot list containers");
                return;
            }
        };
        let now_ns = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        let mut samples = Vec::new();
        for c in snap
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
        {
            if let Ok(s) = self.runtime.container_stats(&c.id).await {
                samples.push((c.clone(), s));
            }
        }
        let busy = hostinfo::cpu_busy_ns();
        let (avail, total) = hostinfo::memory_available();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let node_rate = match st.node_prev {
            Some((t, b)) if busy >= b => rate(busy - b, t.elapsed().as_nanos() as i64),
            _ => 0,
        };
        st.node_prev = Some((Instant::now(), busy));
        let mut pods: HashMap<String, PodUsage> = HashMap::new();
        let sandboxes: HashMap<&str, &berth_cri::SandboxStatus> =
            snap.sandboxes.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut next_prev = HashMap::new();
        for (c, s) in &samples {
            let Some(sb) = sandboxes.get(c.sandbox_id.as_str()) else {
                continue;
            };
            let cpu_rate = match st.prev.get(&c.id) {
                Some((t, cpu)) if s.cpu_usage_ns >= *cpu => {
                    rate(s.cpu_usage_ns - cpu, s.timestamp_ns - t)
                }
                _ => c
                    .started_at_ns
                    .map(|start| rate(s.cpu_usage_ns, now_ns - start))
                    .unwrap_or(0),
            };
            next_prev.insert(c.id.clone(), (s.timestamp_ns, s.cpu_usage_ns));
            pods.entry(sb.uid.clone())
                .or_insert_with(|| PodUsage {
                    namespace: sb.namespace.clone(),
                    name: sb.name.clone(),
                    uid: sb.uid.clone(),
                    containers: vec![],
                })
                .containers
                .push(ContainerUsage {
                    name: c.name.clone(),
                    usage_nano_cores: cpu_rate,
                    usage_core_nano_seconds: s.cpu_usage_ns,
                    working_set_bytes: s.memory_working_set_bytes,
                    usage_bytes: s.memory_usage_bytes,
                });
        }
        st.prev = next_prev;
        let mut pods: Vec<PodUsage> = pods.into_values().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        st.containers_running = samples.len();
        st.containers_exited = snap
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Exited)
            .count();
        st.sandboxes = snap.sandboxes.len();
        st.latest = Summary {
            node_name: self.node.clone(),
            time: jiff::Timestamp::now().to_string(),
            window_seconds: self.interval.as_secs_f64(),
            node_usage_nano_cores: node_rate,
            node_working_set_bytes: total.saturating_sub(avail),
            pods,
        };
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.sample().await,
            }
        }
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self, pods: usize) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut o = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            o,
            "# HELP berth_agent_pods Pods bound to this node.\n# TYPE berth_agent_pods gauge\nberth_agent_pods {pods}"
        );
        let _ = writeln!(
            o,
            "# HELP berth_agent_sandboxes Pod sandboxes on this node.\n# TYPE berth_agent_sandboxes gauge\nberth_agent_sandboxes {}",
            st.sandboxes
        );
        let _ = writeln!(
            o,
            "# HELP berth_agent_containers Containers on this node by state.\n# TYPE berth_agent_containers gauge"
        );
        let _ = writeln!(
            o,
            "berth_agent_containers{{state=\"running\"}} {}",
            st.containers_running
        );
        let _ = writeln!(
            o,
            "berth_agent_containers{{state=\"exited\"}} {}",
            st.containers_exited
        );
        let _ = writeln!(
            o,
            "# HELP container_cpu_usage_seconds_total Cumulative CPU time of a container.\n# TYPE container_cpu_usage_seconds_total counter"
        );
        for p in &st.latest.pods {
            for c in &p.containers {
                let _ = writeln!(
                    o,
                    "container_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\"}} {}",
                    esc(&p.namespace),
                    esc(&p.name),
                    esc(&c.name),
                    c.usage_core_nano_seconds as f64 / 1e9
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP container_memory_working_set_bytes Working set of a container.\n# TYPE container_memory_working_set_bytes gauge"
        );
        for p in &st.latest.pods {
            for c in &p.containers {
                let _ = writeln!(
                    o,
                    "container_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\",container=\"{}\"}} {}",
                    esc(&p.namespace),
                    esc(&p.name),
                    esc(&c.name),
                    c.working_set_bytes
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP node_cpu_usage_nanocores CPU use of the node.\n# TYPE node_cpu_usage_nanocores gauge\nnode_cpu_usage_nanocores {}",
            st.latest.node_usage_nano_cores
        );
        let _ = writeln!(
            o,
            "# HELP node_memory_working_set_bytes Memory in use on the node.\n# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes {}",
            st.latest.node_working_set_bytes
        );
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let _ = writeln!(
            o,
            "# HELP process_resident_memory_bytes Resident memory of the agent's process.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_are_per_second() {
        assert_eq!(rate(500_000_000, 1_000_000_000), 500_000_000);
        assert_eq!(rate(1_000_000, 10_000_000_000), 100_000);
        assert_eq!(rate(5, 0), 0);
    }
}
