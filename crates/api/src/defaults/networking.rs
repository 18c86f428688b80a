//! Defaults of network policies (policy types, port protocols), ingress classes (parameter
//! scope) and endpoint slices (port names and protocols).

use serde_json::{Value, json};

use super::{child, existing, is_empty, items, set_default};

pub fn network_policy(obj: &mut Value) {
    let Some(spec) = obj.as_object_mut().and_then(|o| child(o, "spec")) else {
        return;
    };
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
    if is_empty(spec, "policyTypes") {
        let mut types = vec![json!("Ingress")];
        if !is_empty(spec, "egress") {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

pub fn ingress_class(obj: &mut Value) {
    if let Some(params) = obj
        .as_object_mut()
        .and_then(|o| existing(o, "spec"))
        .and_then(|s| existing(s, "parameters"))
    {
        set_default(params, "scope", json!("Cluster"));
    }
}

pub fn endpoint_slice(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    for port in items(o, "ports") {
        set_default(port, "name", json!(""));
        set_default(port, "protocol", json!("TCP"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_classes_and_slices() {
        let mut np = json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}], "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}});
        network_policy(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
        let mut deny = json!({"spec": {"podSelector": {}}});
        network_policy(&mut deny);
        assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress"]));
        let mut explicit = json!({"spec": {"podSelector": {}, "policyTypes": ["Egress"]}});
        network_policy(&mut explicit);
        assert_eq!(explicit["spec"]["policyTypes"], json!(["Egress"]));
        let mut ic =
            json!({"spec": {"controller": "x/y", "parameters": {"kind": "K", "name": "n"}}});
        ingress_class(&mut ic);
        assert_eq!(ic["spec"]["parameters"]["scope"], "Cluster");
        let mut es = json!({"addressType": "IPv4", "ports": [{"port": 80}]});
        endpoint_slice(&mut es);
        assert_eq!(
            es["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
    }
}
