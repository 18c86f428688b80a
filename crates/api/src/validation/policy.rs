//! Validation of pod disruption budgets and leases.

use serde_json::Value;

use super::field::*;
use crate::FieldErrors;

pub fn pod_disruption_budget(errs: &mut FieldErrors, pdb: &Value) {
    let spec = pdb.get("spec").unwrap_or(&Value::Null);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(invalid_raw(
            "spec",
            "policy.PodDisruptionBudgetSpec{...}".into(),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if min.is_some() {
        int_or_percent(errs, min, "spec.minAvailable", true);
    }
    if max.is_some() {
        int_or_percent(errs, max, "spec.maxUnavailable", true);
    }
    label_selector(errs, spec.get("selector"), "spec.selector");
    if let Some(p) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(|v| v.as_str())
        && !["AlwaysAllow", "IfHealthyBudget"].contains(&p)
    {
        errs.push(not_supported(
            "spec.unhealthyPodEvictionPolicy",
            p,
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
}

pub fn lease(errs: &mut FieldErrors, l: &Value) {
    let spec = l.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = int_of(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(invalid_num(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_of(spec, "leaseTransitions").filter(|t| *t < 0) {
        errs.push(invalid_num("spec.leaseTransitions", t, IS_NEGATIVE));
    }
    for k in ["acquireTime", "renewTime"] {
        if let Some(v) = spec.get(k).filter(|v| !v.is_null()) {
            let ok = v
                .as_str()
                .is_some_and(|s| s.parse::<jiff::Timestamp>().is_ok());
            if !ok {
                errs.push(invalid_raw(
                    child("spec", k),
                    render(v),
                    "must be an RFC 3339 time with microseconds",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(f: impl FnOnce(&mut FieldErrors)) -> Vec<String> {
        let mut e = FieldErrors::default();
        f(&mut e);
        e.0.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn budgets_and_leases() {
        let ok =
            json!({"spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(
            errs(|e| pod_disruption_budget(e, &ok)),
            Vec::<String>::new()
        );
        let bad = json!({"spec": {"minAvailable": 1, "maxUnavailable": "150%"}});
        assert_eq!(
            errs(|e| pod_disruption_budget(e, &bad)),
            vec![
                "spec: Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both set".to_string(),
                "spec.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%".to_string(),
            ]
        );
        let l = json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 0, "renewTime": "2025-01-01T00:00:00.000000Z"}});
        assert_eq!(
            errs(|e| lease(e, &l)),
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0".to_string()]
        );
    }
}
