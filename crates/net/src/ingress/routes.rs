//! The Ingress routing table: networking.k8s.io/v1 rules of berth's class, merged across
//! Ingresses, with backends resolved to ready endpoints.
//!
//! Matching follows the Ingress specification: an exact host beats a wildcard host
//! (`*.example.com` matches exactly one more label); within a host, an `Exact` path beats a
//! `Prefix` path, and the longest prefix wins, matched per path element (`/foo` matches
//! `/foo` and `/foo/bar` but not `/foobar`). `ImplementationSpecific` is treated as
//! `Prefix`. Requests no rule matches go to the default backend, if any.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

use crate::error::NetError;
use crate::ingress_class::IngressClassFilter;
use crate::proxy::model::{Proto, SERVICE_NAME_LABEL};

/// A Service backend with its ready endpoints, picked in turn.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs.
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    pub fn new(name: String, endpoints: Vec<SocketAddr>) -> Backend {
        Backend {
            name,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order to try them: round robin start, then the others.
    pub fn order(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.endpoints.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |i| self.endpoints[(start + i) % n])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathKind {
    Exact,
    Prefix,
}

#[derive(Debug)]
struct PathRule {
    kind: PathKind,
    path: String,
    backend: Arc<Backend>,
}

#[derive(Debug, Default)]
struct HostRules {
    paths: Vec<PathRule>,
}

/// The whole table.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact: BTreeMap<String, HostRules>,
    /// `*.example.com` keyed by `example.com`.
    wildcard: BTreeMap<String, HostRules>,
    /// Rules without a host.
    any: HostRules,
    default_backend: Option<Arc<Backend>>,
    /// Hosts with TLS, and the secret (`namespace/name`) holding their certificate.
    pub tls_hosts: BTreeMap<String, String>,
    /// Secrets named by TLS entries without hosts (fallback certificates).
    pub tls_default: Option<String>,
}

/// What a request matched.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub backend: Arc<Backend>,
}

fn path_matches(kind: PathKind, rule: &str, path: &str) -> bool {
    match kind {
        PathKind::Exact => rule == path,
        PathKind::Prefix => {
            let rule = rule.trim_end_matches('/');
            if rule.is_empty() {
                return true;
            }
            path == rule
                || (path.starts_with(rule) && path.as_bytes().get(rule.len()) == Some(&b'/'))
        }
    }
}

impl HostRules {
    fn best(&self, path: &str) -> Option<&PathRule> {
        self.paths
            .iter()
            .filter(|r| path_matches(r.kind, &r.path, path))
            .min_by(|a, b| {
                // Exact first, then the longest path.
                (
                    a.kind,
                    std::cmp::Reverse(a.path.trim_end_matches('/').len()),
                )
                    .cmp(&(
                        b.kind,
                        std::cmp::Reverse(b.path.trim_end_matches('/').len()),
                    ))
            })
    }
}

impl RouteTable {
    /// Builds the table; Ingresses (or parts) that cannot be used are skipped and reported.
    pub fn build(
        ingresses: &[Arc<Ingress>],
        filter: &IngressClassFilter,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> (RouteTable, Vec<NetError>) {
        let mut table = RouteTable::default();
        let mut errors = Vec::new();
        let mut ours: Vec<&Arc<Ingress>> = ingresses
            .iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none() && filter.is_ours(i))
            .collect();
        // Oldest first: for conflicting rules and the default backend, the oldest wins.
        ours.sort_by_key(|i| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                i.metadata.namespace.clone(),
                i.metadata.name.clone(),
            )
        });
        let mut backends: BTreeMap<String, Arc<Backend>> = BTreeMap::new();
        for ing in ours {
            let ns = ing.metadata.namespace.clone().unwrap_or_default();
            let what = format!(
                "ingress {ns}/{}",
                ing.metadata.name.as_deref().unwrap_or("")
            );
            let Some(spec) = &ing.spec else { continue };
            let mut resolve = |b: &IngressBackend,
                               field: String,
                               errors: &mut Vec<NetError>|
             -> Option<Arc<Backend>> {
                let Some(svc) = &b.service else {
                    errors.push(NetError::invalid(
                        &what,
                        field,
                        "only Service backends are supported",
                    ));
                    return None;
                };
                let port = svc.port.as_ref();
                let key = format!(
                    "{ns}/{}:{}",
                    svc.name,
                    port.and_then(|p| p.name.clone())
                        .or_else(|| port.and_then(|p| p.number).map(|n| n.to_string()))
                        .unwrap_or_default()
                );
                if let Some(b) = backends.get(&key) {
                    return Some(b.clone());
                }
                let eps = match resolve_endpoints(
                    &ns,
                    &svc.name,
                    port.and_then(|p| p.number),
                    port.and_then(|p| p.name.as_deref()),
                    services,
                    slices,
                ) {
                    Ok(e) => e,
                    Err(reason) => {
                        errors.push(NetError::invalid(&what, field, reason));
                        Vec::new()
                    }
                };
                let b = Arc::new(Backend::new(key.clone(), eps));
                backends.insert(key, b.clone());
                Some(b)
            };
            if let Some(db) = &spec.default_backend
                && table.default_backend.is_none()
            {
                table.default_backend = resolve(db, "spec.defaultBackend".into(), &mut errors);
            }
            for (ri, rule) in spec.rules.iter().flatten().enumerate() {
                let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
                let target = if host.is_empty() {
                    &mut table.any
                } else if let Some(rest) = host.strip_prefix("*.") {
                    table.wildcard.entry(rest.to_string()).or_default()
                } else {
                    table.exact.entry(host.clone()).or_default()
                };
                for (pi, p) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                    let field = format!("spec.rules[{ri}].http.paths[{pi}]");
                    let kind = match p.path_type.as_str() {
                        "Exact" => PathKind::Exact,
                        "Prefix" | "ImplementationSpecific" => PathKind::Prefix,
                        other => {
                            errors.push(NetError::invalid(
                                &what,
                                format!("{field}.pathType"),
                                format!("unknown path type {other:?}"),
                            ));
                            continue;
                        }
                    };
                    let path = p.path.clone().unwrap_or_else(|| "/".into());
                    if !path.starts_with('/') {
                        errors.push(NetError::invalid(
                            &what,
                            format!("{field}.path"),
                            format!("{path:?} must start with '/'"),
                        ));
                        continue;
                    }
                    if target
                        .paths
                        .iter()
                        .any(|r| r.kind == kind && r.path == path)
                    {
                        // An older Ingress has this rule already.
                        continue;
                    }
                    let Some(backend) =
                        resolve(&p.backend, format!("{field}.backend"), &mut errors)
                    else {
                        continue;
                    };
                    target.paths.push(PathRule {
                        kind,
                        path,
                        backend,
                    });
                }
            }
            for t in spec.tls.iter().flatten() {
                let Some(secret) = &t.secret_name else {
                    continue;
                };
                let key = format!("{ns}/{secret}");
                match &t.hosts {
                    Some(hosts) if !hosts.is_empty() => {
                        for h in hosts {
                            table
                                .tls_hosts
                                .entry(h.to_ascii_lowercase())
                                .or_insert_with(|| key.clone());
                        }
                    }
                    _ => {
                        table.tls_default.get_or_insert(key);
                    }
                }
            }
        }
        (table, errors)
    }

    /// The backend for a request to `host` (any case, port ignored) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<RouteMatch> {
        let host = host
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(host);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let by_host = self
            .exact
            .get(&host)
            .and_then(|r| r.best(path))
            .or_else(|| {
                let (_, parent) = host.split_once('.')?;
                self.wildcard.get(parent).and_then(|r| r.best(path))
            });
        by_host
            .or_else(|| self.any.best(path))
            .map(|r| RouteMatch {
                backend: r.backend.clone(),
            })
            .or_else(|| {
                self.default_backend
                    .clone()
                    .map(|backend| RouteMatch { backend })
            })
    }
}

/// Ready endpoints of a Service port given by number or name.
fn resolve_endpoints(
    ns: &str,
    name: &str,
    number: Option<i32>,
    port_name: Option<&str>,
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Result<Vec<SocketAddr>, String> {
    let svc = services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .ok_or_else(|| format!("service {ns}/{name} not found"))?;
    let sp = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .find(|p| match (number, port_name) {
            (Some(n), _) => p.port == n,
            (None, Some(pn)) => p.name.as_deref() == Some(pn),
            _ => false,
        })
        .ok_or_else(|| {
            format!(
                "service {ns}/{name} has no port {}",
                number
                    .map(|n| n.to_string())
                    .or(port_name.map(str::to_string))
                    .unwrap_or_default()
            )
        })?;
    let wanted_name = sp.name.clone().unwrap_or_default();
    let proto = Proto::parse(sp.protocol.as_deref());
    if proto != Some(Proto::Tcp) {
        return Err(format!("service {ns}/{name} port {} is not TCP", sp.port));
    }
    let mut out = Vec::new();
    for s in slices.iter().filter(|s| {
        s.metadata.namespace.as_deref() == Some(ns)
            && s.address_type == "IPv4"
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
                == Some(name)
    }) {
        let Some(port) = s
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == wanted_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &s.endpoints {
            if !ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                continue;
            }
            for a in &ep.addresses {
                if let Ok(ip) = a.parse::<std::net::IpAddr>() {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"name": "http", "port": 80}]}}))
            .unwrap(),
        )
    }

    fn slice(svc: &str, ips: &[&str]) -> Arc<EndpointSlice> {
        let eps: Vec<_> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": format!("{svc}-x"), "namespace": "d",
                "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": eps}),
            )
            .unwrap(),
        )
    }

    fn ing(name: &str, created: &str, spec: serde_json::Value) -> Arc<Ingress> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "creationTimestamp": created}, "spec": spec})).unwrap())
    }

    fn be(svc: &str) -> serde_json::Value {
        json!({"service": {"name": svc, "port": {"number": 80}}})
    }

    fn table() -> RouteTable {
        let ings = vec![
            ing(
                "a",
                "2026-01-01T00:00:00Z",
                json!({"ingressClassName": "berth", "rules": [
                {"host": "shop.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": be("front")},
                    {"path": "/api", "pathType": "Prefix", "backend": be("api")},
                    {"path": "/api/v2/exact", "pathType": "Exact", "backend": be("exact")}]}},
                {"host": "*.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": be("wild")}]}}],
                "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]}),
            ),
            ing(
                "b",
                "2026-01-02T00:00:00Z",
                json!({"ingressClassName": "berth", "defaultBackend": be("fallback"),
                "rules": [{"http": {"paths": [{"path": "/any", "pathType": "Prefix", "backend": be("anyhost")}]}}]}),
            ),
            ing(
                "c",
                "2026-01-03T00:00:00Z",
                json!({"ingressClassName": "other", "defaultBackend": be("theirs")}),
            ),
        ];
        let names = [
            "front", "api", "exact", "wild", "fallback", "anyhost", "theirs",
        ];
        let services: Vec<_> = names.iter().map(|n| svc(n)).collect();
        let slices: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| slice(n, &[&format!("10.42.0.{}", i + 10)]))
            .collect();
        let (t, errs) = RouteTable::build(
            &ings,
            &IngressClassFilter::new("berth", &[]),
            &services,
            &slices,
        );
        assert!(errs.is_empty(), "{errs:?}");
        t
    }

    fn to(t: &RouteTable, host: &str, path: &str) -> String {
        t.route(host, path)
            .map(|m| m.backend.name.clone())
            .unwrap_or_default()
    }

    #[test]
    fn hosts_and_paths_match_as_the_ingress_spec_says() {
        let t = table();
        assert_eq!(to(&t, "shop.example.com", "/"), "d/front:80");
        assert_eq!(to(&t, "SHOP.example.com:8443", "/cart"), "d/front:80");
        assert_eq!(to(&t, "shop.example.com", "/api"), "d/api:80");
        assert_eq!(to(&t, "shop.example.com", "/api/v1"), "d/api:80");
        assert_eq!(
            to(&t, "shop.example.com", "/apix"),
            "d/front:80",
            "prefix matches whole path elements"
        );
        assert_eq!(to(&t, "shop.example.com", "/api/v2/exact"), "d/exact:80");
        assert_eq!(to(&t, "shop.example.com", "/api/v2/exact/more"), "d/api:80");
        assert_eq!(to(&t, "blog.example.com", "/x"), "d/wild:80");
        assert_eq!(
            to(&t, "a.b.example.com", "/x"),
            "d/fallback:80",
            "a wildcard covers one label"
        );
        assert_eq!(to(&t, "other.org", "/any/thing"), "d/anyhost:80");
        assert_eq!(to(&t, "other.org", "/"), "d/fallback:80");
        assert_eq!(
            t.tls_hosts.get("shop.example.com").map(String::as_str),
            Some("d/shop-tls")
        );
        let b = t.route("shop.example.com", "/").unwrap().backend;
        assert_eq!(b.endpoints, vec!["10.42.0.10:8080".parse().unwrap()]);
    }

    #[test]
    fn round_robin_order_starts_at_the_next_endpoint() {
        let b = Backend::new(
            "x".into(),
            vec![
                "10.0.0.1:1".parse().unwrap(),
                "10.0.0.2:1".parse().unwrap(),
                "10.0.0.3:1".parse().unwrap(),
            ],
        );
        let firsts: Vec<SocketAddr> = (0..3).map(|_| b.order().next().unwrap()).collect();
        assert_eq!(firsts.len(), 3);
        let mut uniq = firsts.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 3, "each endpoint first once");
        assert_eq!(b.order().count(), 3, "every endpoint is tried");
    }

    #[test]
    fn bad_backends_are_reported_with_the_field() {
        let ings = vec![ing(
            "bad",
            "2026-01-01T00:00:00Z",
            json!({"ingressClassName": "berth", "rules": [{"host": "x", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "missing", "port": {"number": 80}}}},
            {"path": "nope", "pathType": "Prefix", "backend": be("front")}]}}]}),
        )];
        let (t, errs) = RouteTable::build(
            &ings,
            &IngressClassFilter::new("berth", &[]),
            &[svc("front")],
            &[],
        );
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            msgs[0].contains(
                "ingress d/bad: spec.rules[0].http.paths[0].backend: service d/missing not found"
            ),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("paths[1].path"), "{msgs:?}");
        // The route exists but has no endpoints (503 at request time).
        assert!(t.route("x", "/").unwrap().backend.endpoints.is_empty());
    }
}
