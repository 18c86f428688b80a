//! The API objects pods refer to (ConfigMaps, Secrets, claims, volumes, services), read
//! through the agent's client. A [`Lookup`] memoizes reads for the length of one pod sync, so
//! a ConfigMap used by env and a volume is read once; services come from a shared reflector.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, Service,
};
use kube::api::Api;
use kube::runtime::reflector::Store;

use crate::error::{AgentError, Result};

/// Reads of one sync.
pub struct Lookup {
    client: kube::Client,
    services: Option<Store<Service>>,
    configmaps: HashMap<(String, String), Option<ConfigMap>>,
    secrets: HashMap<(String, String), Option<Secret>>,
}

async fn get_opt<K>(api: Api<K>, name: &str, what: &str) -> Result<Option<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| AgentError::api(format!("get {what} {name}"), e))
}

impl Lookup {
    pub fn new(client: kube::Client, services: Option<Store<Service>>) -> Lookup {
        Lookup {
            client,
            services,
            configmaps: HashMap::new(),
            secrets: HashMap::new(),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    pub async fn configmap(&mut self, ns: &str, name: &str) -> Result<Option<ConfigMap>> {
        let key = (ns.to_string(), name.to_string());
        if let Some(v) = self.configmaps.get(&key) {
            return Ok(v.clone());
        }
        let v = get_opt(Api::namespaced(self.client.clone(), ns), name, "configmap").await?;
        self.configmaps.insert(key, v.clone());
        Ok(v)
    }

    pub async fn secret(&mut self, ns: &str, name: &str) -> Result<Option<Secret>> {
        let key = (ns.to_string(), name.to_string());
        if let Some(v) = self.secrets.get(&key) {
            return Ok(v.clone());
        }
        let v = get_opt(Api::namespaced(self.client.clone(), ns), name, "secret").await?;
        self.secrets.insert(key, v.clone());
        Ok(v)
    }

    pub async fn claim(&mut self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>> {
        get_opt(
            Api::namespaced(self.client.clone(), ns),
            name,
            "persistentvolumeclaim",
        )
        .await
    }

    pub async fn volume(&mut self, name: &str) -> Result<Option<PersistentVolume>> {
        get_opt(Api::all(self.client.clone()), name, "persistentvolume").await
    }

    /// Services of a namespace (from the reflector; empty until it synced).
    pub fn services(&self, ns: &str) -> Vec<Service> {
        self.services
            .as_ref()
            .map(|s| {
                s.state()
                    .iter()
                    .filter(|svc| svc.metadata.namespace.as_deref() == Some(ns))
                    .map(|svc| (**svc).clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A ConfigMap's data (text and binary) as bytes.
    pub fn configmap_data(cm: &ConfigMap) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        out.extend(
            cm.binary_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone())),
        );
        out.sort();
        out
    }

    /// A Secret's data (`data` and `stringData`) as bytes.
    pub fn secret_data(s: &Secret) -> Vec<(String, Vec<u8>)> {
        let mut m: std::collections::BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in s.string_data.iter().flatten() {
            m.insert(k.clone(), v.clone().into_bytes());
        }
        m.into_iter().collect()
    }
}
