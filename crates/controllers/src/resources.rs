//! Resource quantities as the scheduler, the node lifecycle and the autoscaler compute with
//! them: CPU in millicores, memory and storage in bytes, and a pod's effective requests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parses a Kubernetes quantity (`100m`, `1.5`, `2Gi`, `1e3`, `500M`) to its value.
pub fn parse_quantity(q: &str) -> Result<f64, String> {
    let s = q.trim();
    if s.is_empty() {
        return Err("empty quantity".into());
    }
    let split = s
        .char_indices()
        .find(|(i, c)| {
            !(c.is_ascii_digit()
                || *c == '.'
                || ((*c == '+' || *c == '-') && *i == 0)
                || ((*c == 'e' || *c == 'E')
                    && s[i + 1..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_ascii_digit() || n == '-' || n == '+')))
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("quantity {q:?}: {num:?} is not a number"))?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => return Err(format!("quantity {q:?}: unknown suffix {other:?}")),
    };
    let v = n * mult;
    if !v.is_finite() {
        return Err(format!("quantity {q:?} is out of range"));
    }
    Ok(v)
}

/// A quantity in thousandths, rounded up (CPU in millicores).
pub fn milli_value(q: &Quantity) -> Result<i64, String> {
    Ok((parse_quantity(&q.0)? * 1000.0).ceil() as i64)
}

/// A quantity's integer value, rounded up (bytes, counts).
pub fn int_value(q: &Quantity) -> Result<i64, String> {
    Ok(parse_quantity(&q.0)?.ceil() as i64)
}

/// Amounts of the resources the scheduler accounts for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceAmounts {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
}

impl ResourceAmounts {
    /// From a resource list (`capacity`, `allocatable`, `requests`); malformed or unknown
    /// entries are skipped.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> ResourceAmounts {
        let mut r = ResourceAmounts::default();
        let Some(list) = list else { return r };
        for (k, q) in list {
            match k.as_str() {
                "cpu" => r.milli_cpu = milli_value(q).unwrap_or(0),
                "memory" => r.memory = int_value(q).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage = int_value(q).unwrap_or(0),
                "pods" => r.pods = int_value(q).unwrap_or(0),
                _ => {}
            }
        }
        r
    }

    pub fn add(&mut self, o: &ResourceAmounts) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
    }

    pub fn sub(&mut self, o: &ResourceAmounts) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
    }

    fn max(&mut self, o: &ResourceAmounts) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }
}

/// What one container requests (its limits where it names no request, as the API server
/// defaults them).
fn container_requests(c: &Container) -> ResourceAmounts {
    let res = c.resources.as_ref();
    let mut r = ResourceAmounts::from_list(res.and_then(|r| r.requests.as_ref()));
    let limits = ResourceAmounts::from_list(res.and_then(|r| r.limits.as_ref()));
    let requests = res.and_then(|r| r.requests.as_ref());
    let has = |k: &str| requests.is_some_and(|m| m.contains_key(k));
    if !has("cpu") {
        r.milli_cpu = limits.milli_cpu;
    }
    if !has("memory") {
        r.memory = limits.memory;
    }
    if !has("ephemeral-storage") {
        r.ephemeral_storage = limits.ephemeral_storage;
    }
    r
}

/// A pod's effective requests: the larger of the sum of its containers and its largest init
/// container, plus its overhead; one pod slot.
pub fn pod_requests(spec: &PodSpec) -> ResourceAmounts {
    let mut sum = ResourceAmounts::default();
    for c in &spec.containers {
        sum.add(&container_requests(c));
    }
    for c in spec.init_containers.iter().flatten() {
        sum.max(&container_requests(c));
    }
    sum.add(&ResourceAmounts::from_list(spec.overhead.as_ref()));
    sum.pods = 1;
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("100m").unwrap(), 0.1);
        assert_eq!(parse_quantity("2").unwrap(), 2.0);
        assert_eq!(parse_quantity("1.5").unwrap(), 1.5);
        assert_eq!(
            parse_quantity("2Gi").unwrap(),
            2.0 * 1024.0 * 1024.0 * 1024.0
        );
        assert_eq!(parse_quantity("500M").unwrap(), 5e8);
        assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
        assert_eq!(parse_quantity("128974848").unwrap(), 128974848.0);
        assert!(parse_quantity("").is_err());
        assert!(parse_quantity("12x").is_err());
        assert!(parse_quantity("abc").is_err());
        assert_eq!(milli_value(&Quantity("250m".into())).unwrap(), 250);
        assert_eq!(milli_value(&Quantity("1".into())).unwrap(), 1000);
        assert_eq!(int_value(&Quantity("1Ki".into())).unwrap(), 1024);
    }

    #[test]
    fn pod_requests_take_limits_and_init_containers_into_account() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}
            ]
        }))
        .unwrap();
        let r = pod_requests(&spec);
        assert_eq!(r.milli_cpu, 1000);
        assert_eq!(r.memory, 64 * 1024 * 1024);
        assert_eq!(r.pods, 1);
    }
}
