//! A container's environment as Kubernetes builds it: service variables of the pod's
//! namespace (`<SVC>_SERVICE_HOST`, `<SVC>_PORT_80_TCP`, ... unless `enableServiceLinks` is
//! false) and the `kubernetes` service's, then `envFrom` sources, then `env` with `$(VAR)`
//! expansion and `valueFrom` (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef).
//! Missing non-optional references are errors the pod reports as
//! `CreateContainerConfigError`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, Service};

use crate::objects::Lookup;
use crate::quantity;

/// A reference the container needs is missing or invalid (the message is user-facing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl From<crate::error::AgentError> for ConfigError {
    fn from(e: crate::error::AgentError) -> Self {
        ConfigError(e.to_string())
    }
}

/// Expands `$(VAR)` references from `env`; `$$` is a literal `$`; unknown references stay.
pub fn expand(s: &str, env: &HashMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'('
                && let Some(end) = s[i + 2..].find(')')
            {
                let name = &s[i + 2..i + 2 + end];
                if let Some(v) = env.get(name) {
                    out.push_str(v);
                } else {
                    out.push_str(&s[i..i + 3 + end]);
                }
                i += 3 + end;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn env_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

/// The Docker-link style variables of one service.
pub fn service_vars(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return vec![];
    };
    let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return vec![];
    };
    let name = env_name(svc.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.clone().unwrap_or_default();
    let mut out = vec![(format!("{name}_SERVICE_HOST"), ip.to_string())];
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        if i == 0 {
            out.push((format!("{name}_SERVICE_PORT"), p.port.to_string()));
            out.push((
                format!("{name}_PORT"),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
        }
        if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{name}_SERVICE_PORT_{}", env_name(pn)),
                p.port.to_string(),
            ));
        }
        let base = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((
            base.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
        ));
        out.push((format!("{base}_PROTO"), proto.to_lowercase()));
        out.push((format!("{base}_PORT"), p.port.to_string()));
        out.push((format!("{base}_ADDR"), ip.to_string()));
    }
    out
}

/// Values of `fieldRef` paths.
pub fn field_value(
    pod: &Pod,
    path: &str,
    host_ip: &str,
    pod_ip: &str,
) -> Result<String, ConfigError> {
    let m = &pod.metadata;
    let map_key = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?;
        let k = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(k.to_string())
    };
    if let Some(k) = map_key("metadata.labels") {
        return Ok(m
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(k) = map_key("metadata.annotations") {
        return Ok(m
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        other => return Err(ConfigError(format!("unsupported fieldRef path {other:?}"))),
    })
}

/// `key="value"` lines, sorted, as the downward API writes maps.
pub fn format_map(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// The value of a `resourceFieldRef` (limits default to the node's allocatable).
pub fn resource_value(
    pod: &Pod,
    container: &str,
    resource: &str,
    divisor: Option<&str>,
    node_alloc: (i128, i128),
) -> Result<String, ConfigError> {
    let spec = pod.spec.as_ref();
    let c = spec
        .and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == container)
        })
        .ok_or_else(|| ConfigError(format!("resourceFieldRef: no container {container:?}")))?;
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resource {resource:?}")))?;
    let r = c.resources.as_ref();
    let list = match kind {
        "limits" => r.and_then(|r| r.limits.as_ref()),
        "requests" => r.and_then(|r| r.requests.as_ref()),
        _ => return Err(ConfigError(format!("unsupported resource {resource:?}"))),
    };
    let cpu = name == "cpu";
    let milli = match list.and_then(|l| l.get(name)) {
        Some(q) => quantity::parse_milli(&q.0).map_err(ConfigError)?,
        None if kind == "limits" && cpu => node_alloc.0,
        None if kind == "limits" && name == "memory" => node_alloc.1 * 1000,
        None => 0,
    };
    let div = quantity::parse_milli(divisor.unwrap_or("1")).map_err(ConfigError)?;
    if div <= 0 {
        return Err(ConfigError(
            "resourceFieldRef divisor must be positive".into(),
        ));
    }
    let v = (milli + div - 1) / div;
    Ok(if cpu {
        v.max(if milli > 0 { 1 } else { 0 })
    } else {
        v
    }
    .to_string())
}

fn valid_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Inputs of [`resolve`].
pub struct EnvInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
    /// Node allocatable (milli-CPU, memory bytes) for limits a container does not set.
    pub node_alloc: (i128, i128),
    /// The `kubernetes` service in `default`.
    pub master: Option<&'a Service>,
}

/// The container's environment, in order.
pub async fn resolve(
    i: &EnvInput<'_>,
    lookup: &mut Lookup,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = i.pod.metadata.namespace.clone().unwrap_or_default();
    let spec = i.pod.spec.clone().unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut env: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, env: &mut HashMap<String, String>, k: String, v: String| {
        if !env.contains_key(&k) {
            order.push(k.clone());
        }
        env.insert(k, v);
    };
    let mut services: Vec<Service> = if spec.enable_service_links.unwrap_or(true) {
        lookup.services(&ns)
    } else {
        vec![]
    };
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    if let Some(m) = i.master
        && ns != "default"
    {
        services.push(m.clone());
    }
    for svc in &services {
        for (k, v) in service_vars(svc) {
            set(&mut order, &mut env, k, v);
        }
    }
    for src in i.container.env_from.iter().flatten() {
        let prefix = src.prefix.clone().unwrap_or_default();
        let pairs: Vec<(String, Vec<u8>)> = if let Some(r) = &src.config_map_ref {
            match lookup.configmap(&ns, &r.name).await? {
                Some(cm) => Lookup::configmap_data(&cm),
                None if r.optional == Some(true) => vec![],
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        } else if let Some(r) = &src.secret_ref {
            match lookup.secret(&ns, &r.name).await? {
                Some(s) => Lookup::secret_data(&s),
                None if r.optional == Some(true) => vec![],
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        } else {
            vec![]
        };
        for (k, v) in pairs {
            let name = format!("{prefix}{k}");
            if valid_env_name(&name) {
                set(
                    &mut order,
                    &mut env,
                    name,
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
    }
    for e in i.container.env.iter().flatten() {
        let v = value_of(i, e, &ns, &env, lookup).await?;
        if let Some(v) = v {
            set(&mut order, &mut env, e.name.clone(), v);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = env.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

async fn value_of(
    i: &EnvInput<'_>,
    e: &EnvVar,
    ns: &str,
    env: &HashMap<String, String>,
    lookup: &mut Lookup,
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &e.value_from else {
        return Ok(Some(expand(e.value.as_deref().unwrap_or_default(), env)));
    };
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        return match lookup.configmap(ns, &r.name).await? {
            Some(cm) => match Lookup::configmap_data(&cm)
                .into_iter()
                .find(|(k, _)| *k == r.key)
            {
                Some((_, v)) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
                None if optional => Ok(None),
                None => Err(ConfigError(format!(
                    "couldn't find key {} in ConfigMap {ns}/{}",
                    r.key, r.name
                ))),
            },
            None if optional => Ok(None),
            None => Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        return match lookup.secret(ns, &r.name).await? {
            Some(s) => match Lookup::secret_data(&s)
                .into_iter()
                .find(|(k, _)| *k == r.key)
            {
                Some((_, v)) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
                None if optional => Ok(None),
                None => Err(ConfigError(format!(
                    "couldn't find key {} in Secret {ns}/{}",
                    r.key, r.name
                ))),
            },
            None if optional => Ok(None),
            None => Err(ConfigError(format!("secret \"{}\" not found", r.name))),
        };
    }
    if let Some(f) = &from.field_ref {
        return field_value(i.pod, &f.field_path, i.host_ip, i.pod_ip).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let cname = r
            .container_name
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| i.container.name.clone());
        return resource_value(
            i.pod,
            &cname,
            &r.resource,
            r.divisor.as_ref().map(|d| d.0.as_str()),
            i.node_alloc,
        )
        .map(Some);
    }
    Ok(Some(String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let mut env = HashMap::new();
        env.insert("A".to_string(), "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
        assert_eq!(expand("é$(A)", &env), "éx");
    }

    #[test]
    fn service_variables() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "my-svc"},
            "spec": {"clusterIP": "10.43.0.5", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        let v: HashMap<String, String> = service_vars(&svc).into_iter().collect();
        assert_eq!(v["MY_SVC_SERVICE_HOST"], "10.43.0.5");
        assert_eq!(v["MY_SVC_SERVICE_PORT"], "80");
        assert_eq!(v["MY_SVC_SERVICE_PORT_HTTP"], "80");
        assert_eq!(v["MY_SVC_PORT"], "tcp://10.43.0.5:80");
        assert_eq!(v["MY_SVC_PORT_80_TCP_ADDR"], "10.43.0.5");
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        assert!(service_vars(&headless).is_empty());
    }

    #[test]
    fn field_and_resource_references() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}}]}
        }))
        .unwrap();
        assert_eq!(
            field_value(&pod, "metadata.labels['app']", "", "").unwrap(),
            "web"
        );
        assert_eq!(field_value(&pod, "spec.nodeName", "", "").unwrap(), "n1");
        assert_eq!(
            field_value(&pod, "status.hostIP", "1.2.3.4", "").unwrap(),
            "1.2.3.4"
        );
        assert!(field_value(&pod, "spec.bogus", "", "").is_err());
        assert_eq!(
            resource_value(&pod, "c", "limits.cpu", None, (2000, 0)).unwrap(),
            "1"
        );
        assert_eq!(
            resource_value(&pod, "c", "limits.cpu", Some("1m"), (2000, 0)).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&pod, "c", "limits.memory", Some("1Mi"), (0, 0)).unwrap(),
            "64"
        );
        assert_eq!(
            resource_value(&pod, "c", "requests.memory", None, (0, 0)).unwrap(),
            "0"
        );
    }
}
