//! Compute resources of containers (and a pod's overhead): resource names, quantities that
//! parse, are not negative and are whole where they must be, requests within limits, and
//! resources that cannot be overcommitted.

use serde_json::Value;

use super::Quantity;
use super::field::*;
use crate::FieldErrors;

/// A resource name a container may request.
fn container_resource_name(errs: &mut FieldErrors, name: &str, path: &str) -> bool {
    let before = errs.0.len();
    qualified_name(errs, name, path);
    if errs.0.len() != before {
        return false;
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !standard {
            errs.push(invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
            return false;
        }
    } else if !name.contains("kubernetes.io/") && name.starts_with("requests.") {
        errs.push(invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
        return false;
    }
    true
}

/// Extended resources and huge pages cannot be overcommitted: requests must equal limits.
fn overcommit_allowed(name: &str) -> bool {
    (!name.contains('/') || name.contains("kubernetes.io/")) && !name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Parses every quantity of a resource list, reporting those that are not quantities.
pub fn quantities<'a>(
    errs: &mut FieldErrors,
    list: Option<&'a Value>,
    path: &str,
) -> Vec<(&'a str, Quantity)> {
    let mut out = Vec::new();
    let Some(list) = list.filter(|v| !v.is_null()) else {
        return out;
    };
    let Some(map) = list.as_object() else {
        errs.push(invalid_raw(
            path,
            render(list),
            "must be a map of resource quantities",
        ));
        return out;
    };
    for (name, v) in map {
        match Quantity::from_json(v) {
            Ok(q) => out.push((name.as_str(), q)),
            Err(e) => errs.push(invalid_raw(key(path, name), render(v), e.to_string())),
        }
    }
    out
}

/// `ValidateResourceQuantityValue`: not negative, and whole for integer resources.
pub fn quantity_value(errs: &mut FieldErrors, name: &str, q: &Quantity, path: &str) {
    if q.is_negative() {
        errs.push(invalid(path, &q.canonical(), IS_NEGATIVE));
    }
    if is_extended(name) && q.milli_value() % 1000 != 0 {
        errs.push(invalid(path, &q.canonical(), "must be an integer"));
    }
}

/// `ValidateResourceRequirements` of a container (or a pod's overhead, as limits).
pub fn resource_requirements(errs: &mut FieldErrors, res: &Value, path: &str) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = quantities(errs, res.get("limits"), &lim_path);
    let requests = quantities(errs, res.get("requests"), &req_path);
    let mut cpu_or_memory = false;
    let mut hugepages = false;
    for (name, q) in &limits {
        let p = key(&lim_path, name);
        if container_resource_name(errs, name, &p) {
            quantity_value(errs, name, q, &p);
        }
        cpu_or_memory |= matches!(*name, "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    for (name, q) in &requests {
        let p = key(&req_path, name);
        if container_resource_name(errs, name, &p) {
            quantity_value(errs, name, q, &p);
        }
        match limits.iter().find(|(n, _)| n == name) {
            Some((_, limit)) => {
                let ord = q.cmp_value(limit);
                if ord != std::cmp::Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(invalid(
                        &req_path,
                        &q.canonical(),
                        format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if ord == std::cmp::Ordering::Greater {
                    errs.push(invalid(
                        &req_path,
                        &q.canonical(),
                        format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
        cpu_or_memory |= matches!(*name, "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    if hugepages && !cpu_or_memory {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
}
