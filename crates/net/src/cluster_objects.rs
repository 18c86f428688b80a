//! Objects the networking adds to a cluster at start: the `kube-system/kube-dns` Service at
//! the cluster DNS address (answered on every node by berth's DNS server, so it has no
//! selector and no endpoints) and berth's default IngressClass.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::IngressClass;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::error::{NetError, Result};
use crate::ingress_class::{CONTROLLER, DEFAULT_CLASS_ANNOTATION};

/// Creates what is missing (existing objects are left as the user made them).
pub async fn ensure_cluster_objects(
    client: &Client,
    cluster_dns: Option<IpAddr>,
    ingress_class: Option<&str>,
) -> Result<()> {
    if let Some(ip) = cluster_dns {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "berth-dns"}},
            "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
        }))
        .map_err(|e| NetError::Internal(e.to_string()))?;
        create_if_missing(
            Api::<Service>::namespaced(client.clone(), "kube-system"),
            &svc,
            "service kube-system/kube-dns",
        )
        .await?;
    }
    if let Some(class) = ingress_class {
        let ic: IngressClass = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": class, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": CONTROLLER}
        }))
        .map_err(|e| NetError::Internal(e.to_string()))?;
        create_if_missing(
            Api::<IngressClass>::all(client.clone()),
            &ic,
            &format!("ingressclass {class}"),
        )
        .await?;
    }
    Ok(())
}

async fn create_if_missing<K>(api: Api<K>, obj: &K, what: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => {
            tracing::info!("created {what}");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(NetError::api(format!("creating {what}"), e)),
    }
}

/// The cluster-wide network settings the server publishes for its agents
/// (`kube-system/berth-network`), so every node programs the same CIDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNetworkSettings {
    pub cluster_cidr: ipnet::Ipv4Net,
    pub service_cidr: ipnet::Ipv4Net,
    pub cluster_dns: std::net::Ipv4Addr,
    pub cluster_domain: String,
    pub network_policy: bool,
}

const SETTINGS: &str = "berth-network";

impl ClusterNetworkSettings {
    fn to_data(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("clusterCIDR", self.cluster_cidr.to_string()),
            ("serviceCIDR", self.service_cidr.to_string()),
            ("clusterDNS", self.cluster_dns.to_string()),
            ("clusterDomain", self.cluster_domain.clone()),
            ("networkPolicy", self.network_policy.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn from_data(
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<ClusterNetworkSettings> {
        let what = format!("configmap kube-system/{SETTINGS}");
        let get = |k: &str| {
            data.get(k)
                .cloned()
                .ok_or_else(|| NetError::invalid(what.clone(), format!("data.{k}"), "missing"))
        };
        let parse = |k: &str| -> Result<ipnet::Ipv4Net> {
            get(k)?
                .parse()
                .map_err(|e| NetError::invalid(what.clone(), format!("data.{k}"), format!("{e}")))
        };
        Ok(ClusterNetworkSettings {
            cluster_cidr: parse("clusterCIDR")?,
            service_cidr: parse("serviceCIDR")?,
            cluster_dns: get("clusterDNS")?
                .parse()
                .map_err(|e| NetError::invalid(what.clone(), "data.clusterDNS", format!("{e}")))?,
            cluster_domain: get("clusterDomain")?,
            network_policy: get("networkPolicy")? != "false",
        })
    }

    /// Writes the settings (server side), replacing older ones.
    pub async fn publish(&self, client: &Client) -> Result<()> {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::api::{Patch, PatchParams};
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": SETTINGS, "namespace": "kube-system"}, "data": self.to_data()});
        api.patch(
            SETTINGS,
            &PatchParams::apply("berth-network").force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| NetError::api(format!("writing configmap kube-system/{SETTINGS}"), e))?;
        Ok(())
    }

    /// Reads the settings (agent side); `None` while the server has not written them.
    pub async fn fetch(client: &Client) -> Result<Option<ClusterNetworkSettings>> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
        match api.get_opt(SETTINGS).await {
            Ok(Some(cm)) => Ok(Some(Self::from_data(&cm.data.unwrap_or_default())?)),
            Ok(None) => Ok(None),
            Err(e) => Err(NetError::api(
                format!("reading configmap kube-system/{SETTINGS}"),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_name_bad_fields() {
        let s = ClusterNetworkSettings {
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
            cluster_dns: "10.43.0.10".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
            network_policy: false,
        };
        assert_eq!(ClusterNetworkSettings::from_data(&s.to_data()).unwrap(), s);
        let mut bad = s.to_data();
        bad.insert("serviceCIDR".into(), "10.43.0.0/33".into());
        let e = ClusterNetworkSettings::from_data(&bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("configmap kube-system/berth-network: data.serviceCIDR"),
            "{e}"
        );
    }
}
