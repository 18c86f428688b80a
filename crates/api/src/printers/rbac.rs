//! Printers of role bindings and cluster role bindings (roles and cluster roles print Name
//! and Created At, as every built-in kind without columns of its own).

use serde_json::{Value, json};

use super::cells::str_at;
use super::{AGE, Column, NAME, Printer, age, docs, name, s};

pub fn for_kind(group: &str, kind: &str) -> Option<&'static dyn Printer> {
    Some(match (group, kind) {
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        _ => return None,
    })
}

pub struct BindingPrinter {
    columns: &'static [Column],
}

static ROLE_BINDING: BindingPrinter = BindingPrinter {
    columns: &[
        NAME,
        Column::new("Role", "string", docs::RB_ROLE_REF),
        AGE,
        Column::new("Users", "string", "Users in the roleBinding").wide(),
        Column::new("Groups", "string", "Groups in the roleBinding").wide(),
        Column::new(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the roleBinding",
        )
        .wide(),
    ],
};

static CLUSTER_ROLE_BINDING: BindingPrinter = BindingPrinter {
    columns: &[
        NAME,
        Column::new("Role", "string", docs::CRB_ROLE_REF),
        AGE,
        Column::new("Users", "string", "Users in the clusterRoleBinding").wide(),
        Column::new("Groups", "string", "Groups in the clusterRoleBinding").wide(),
        Column::new(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the clusterRoleBinding",
        )
        .wide(),
    ],
};

impl Printer for BindingPrinter {
    fn columns(&self) -> &[Column] {
        self.columns
    }
    fn cells(&self, b: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
        for subj in b
            .get("subjects")
            .and_then(|v| v.as_array())
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            match str_at(subj, "kind") {
                "ServiceAccount" => sas.push(format!(
                    "{}/{}",
                    str_at(subj, "namespace"),
                    str_at(subj, "name")
                )),
                "User" => users.push(str_at(subj, "name").to_string()),
                "Group" => groups.push(str_at(subj, "name").to_string()),
                _ => {}
            }
        }
        vec![
            name(b),
            json!(format!(
                "{}/{}",
                s(b, "/roleRef/kind"),
                s(b, "/roleRef/name")
            )),
            age(b, now),
            json!(users.join(", ")),
            json!(groups.join(", ")),
            json!(sas.join(", ")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_rows() {
        let now: jiff::Timestamp = "2025-03-01T12:00:00Z".parse().unwrap();
        let b = json!({"metadata": {"name": "admins", "creationTimestamp": "2025-03-01T11:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "ops"},
                         {"kind": "ServiceAccount", "namespace": "kube-system", "name": "deployer"}]});
        assert_eq!(
            CLUSTER_ROLE_BINDING.cells(&b, now),
            vec![
                json!("admins"),
                json!("ClusterRole/cluster-admin"),
                json!("60m"),
                json!("alice, bob"),
                json!("ops"),
                json!("kube-system/deployer")
            ]
        );
        assert_eq!(
            ROLE_BINDING.columns()[3].description,
            "Users in the roleBinding"
        );
    }
}
