//! What every pod worker of a node shares: the API client, the runtime, the configuration,
//! the event recorder, the services reflector and node facts used in pod configuration.

use std::path::PathBuf;
use std::sync::Arc;

use berth_cri::ContainerRuntime;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;

use crate::config::AgentConfig;
use crate::events::Recorder;
use crate::podspec::Qos;

pub struct NodeContext {
    pub client: kube::Client,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub config: AgentConfig,
    pub recorder: Recorder,
    pub services: Option<Store<Service>>,
    /// Allocatable (milli-CPU, memory bytes), for limits a container leaves unset.
    pub node_alloc: (i128, i128),
    pub node_memory: u64,
}

impl NodeContext {
    pub fn host_ip(&self) -> String {
        self.config.node_ip.to_string()
    }

    /// `<logs>/<namespace>_<name>_<uid>`, as kubelet lays pod logs out.
    pub fn pod_log_dir(&self, pod: &Pod) -> PathBuf {
        self.config.logs_dir().join(format!(
            "{}_{}_{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.uid.as_deref().unwrap_or_default()
        ))
    }

    /// The pod's cgroup: `/berth/<node>/kubepods[/burstable|/besteffort]/pod<uid>`.
    pub fn pod_cgroup(&self, uid: &str, qos: Qos) -> String {
        let class = match qos {
            Qos::Guaranteed => String::new(),
            Qos::Burstable => "/burstable".into(),
            Qos::BestEffort => "/besteffort".into(),
        };
        format!("/berth/{}/kubepods{class}/pod{uid}", self.config.node_name)
    }

    /// The `kubernetes` service (its variables go into every pod's environment).
    pub fn master_service(&self) -> Option<Service> {
        self.services.as_ref().and_then(|s| {
            s.state()
                .iter()
                .find(|svc| {
                    svc.metadata.namespace.as_deref() == Some("default")
                        && svc.metadata.name.as_deref() == Some("kubernetes")
                })
                .map(|svc| (**svc).clone())
        })
    }
}
