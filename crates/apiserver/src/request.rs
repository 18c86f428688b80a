//! Turning a request path and method into what it asks for: a non-resource path
//! (discovery, health, OpenAPI) or a resource request with its verb, group, version,
//! namespace, resource, name and subresource — the same decomposition Kubernetes makes.

use axum::http::Method;

/// The verb of a resource request, as authorization and handlers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request for a resource (or a collection of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: Verb,
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Path after the subresource (`pods/x/proxy/<rest>`).
    pub rest: Option<String>,
}

/// What a path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api` — the core group's versions.
    CoreVersions,
    /// `/apis` — every group.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>` — the resource list of a group version.
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourceRequest),
    /// `/version`, `/healthz`, `/livez`, `/readyz`, `/openapi/...`, anything else.
    NonResource(String),
}

/// Parses a request. `watch` is the value of the `watch` query parameter.
pub fn parse(method: &Method, path: &str, watch_param: bool) -> Target {
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        vec![]
    } else {
        trimmed.split('/').collect()
    };
    let (group, version) = match parts.as_slice() {
        ["api"] => return Target::CoreVersions,
        ["apis"] => return Target::Groups,
        ["apis", g] => return Target::Group(g.to_string()),
        ["api", v] => {
            return Target::GroupVersion {
                group: String::new(),
                version: v.to_string(),
            };
        }
        ["apis", g, v] => {
            return Target::GroupVersion {
                group: g.to_string(),
                version: v.to_string(),
            };
        }
        ["api", v, ..] => {
            let v = v.to_string();
            parts.drain(..2);
            (String::new(), v)
        }
        ["apis", g, v, ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            parts.drain(..3);
            (g, v)
        }
        _ => return Target::NonResource(path.to_string()),
    };

    let mut watch = watch_param;
    if parts.first() == Some(&"watch") {
        watch = true;
        parts.remove(0);
    }

    let mut namespace = None;
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    if parts.is_empty() {
        return Target::NonResource(path.to_string());
    }
    let resource = parts[0].to_string();
    let name = parts.get(1).map(|s| s.to_string());
    let subresource = parts.get(2).map(|s| s.to_string());
    let rest = if parts.len() > 3 {
        Some(parts[3..].join("/"))
    } else {
        None
    };
    // `/api/v1/namespaces/<name>` names the namespace object itself.
    if resource == "namespaces" && name.is_some() {
        namespace = None;
    }

    let verb = match *method {
        Method::GET | Method::HEAD => {
            if watch {
                Verb::Watch
            } else if name.is_some() {
                Verb::Get
            } else {
                Verb::List
            }
        }
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => {
            if name.is_some() {
                Verb::Delete
            } else {
                Verb::DeleteCollection
            }
        }
        _ => Verb::Get,
    };
    Target::Resource(ResourceRequest {
        verb,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match parse(&method, path, false) {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            (
                r.verb,
                r.group.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (
                Verb::Get,
                "",
                Some("default"),
                "pods",
                Some("web"),
                Some("log")
            )
        );
        let r = res(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (r.verb, r.group.as_str(), r.namespace),
            (Verb::List, "apps", None)
        );
        let r = res(Method::DELETE, "/apis/apps/v1/namespaces/ns1/deployments");
        assert_eq!(r.verb, Verb::DeleteCollection);
        let r = res(Method::GET, "/api/v1/nodes/n1/proxy/metrics/cadvisor");
        assert_eq!(r.rest.as_deref(), Some("metrics/cadvisor"));
    }

    #[test]
    fn namespaces_are_objects_and_scopes() {
        let r = res(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let r = res(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.resource.as_str(), r.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
        let r = res(Method::GET, "/api/v1/namespaces");
        assert_eq!((r.verb, r.resource.as_str()), (Verb::List, "namespaces"));
    }

    #[test]
    fn watch_forms() {
        let r = res(Method::GET, "/api/v1/watch/namespaces/default/pods");
        assert_eq!(
            (r.verb, r.namespace.as_deref()),
            (Verb::Watch, Some("default"))
        );
        match parse(&Method::GET, "/api/v1/pods", true) {
            Target::Resource(r) => assert_eq!(r.verb, Verb::Watch),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse(&Method::GET, "/api", false), Target::CoreVersions);
        assert_eq!(parse(&Method::GET, "/apis", false), Target::Groups);
        assert_eq!(
            parse(&Method::GET, "/apis/apps/v1", false),
            Target::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse(&Method::GET, "/version", false),
            Target::NonResource("/version".into())
        );
    }
}
