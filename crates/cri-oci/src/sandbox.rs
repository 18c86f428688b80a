//! Pod sandboxes: a directory per sandbox holding its record (`sandbox.json`), its pinned
//! namespaces (`ns/net`, `ns/ipc`, `ns/uts`) and the files its containers share
//! (`resolv.conf`, `hostname`). A sandbox is Ready while its namespaces are pinned.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_cri::{CriError, DnsConfig, Result, SandboxConfig, SandboxState, SandboxStatus};
use serde::{Deserialize, Serialize};

use crate::netns::{self, NsKind};

pub const RECORD: &str = "sandbox.json";

/// What the runtime records about a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub hostname: String,
    pub host_network: bool,
    pub log_directory: PathBuf,
    pub cgroup_parent: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub created_at_ns: i64,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    pub ready: bool,
}

impl SandboxRecord {
    pub fn from_config(id: &str, c: &SandboxConfig, created_at_ns: i64) -> SandboxRecord {
        SandboxRecord {
            id: id.into(),
            name: c.name.clone(),
            namespace: c.namespace.clone(),
            uid: c.uid.clone(),
            attempt: c.attempt,
            hostname: c.hostname.clone(),
            host_network: c.host_network,
            log_directory: c.log_directory.clone(),
            cgroup_parent: c.cgroup_parent.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            created_at_ns,
            ips: vec![],
            ready: false,
        }
    }

    /// The namespaces this sandbox pins: IPC always; network and UTS unless it shares the
    /// host's network (Kubernetes gives `hostNetwork` pods the host's UTS namespace too).
    pub fn kinds(&self) -> &'static [NsKind] {
        if self.host_network {
            &[NsKind::Ipc]
        } else {
            &[NsKind::Net, NsKind::Ipc, NsKind::Uts]
        }
    }

    pub fn status(&self) -> SandboxStatus {
        SandboxStatus {
            id: self.id.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            uid: self.uid.clone(),
            attempt: self.attempt,
            state: if self.ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            ip: self.ips.first().copied(),
            created_at_ns: self.created_at_ns,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// One sandbox's directory.
#[derive(Debug, Clone)]
pub struct SandboxDir {
    pub dir: PathBuf,
}

impl SandboxDir {
    pub fn new(root: &Path, id: &str) -> SandboxDir {
        SandboxDir { dir: root.join(id) }
    }

    pub fn ns_dir(&self) -> PathBuf {
        self.dir.join("ns")
    }

    pub fn netns(&self) -> PathBuf {
        netns::ns_path(&self.ns_dir(), NsKind::Net)
    }

    pub fn ns(&self, kind: NsKind) -> PathBuf {
        netns::ns_path(&self.ns_dir(), kind)
    }

    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    pub fn hostname_file(&self) -> PathBuf {
        self.dir.join("hostname")
    }

    pub fn read(&self) -> Result<SandboxRecord> {
        let p = self.dir.join(RECORD);
        let b = std::fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CriError::NotFound {
                kind: "sandbox",
                id: self
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
            _ => CriError::internal(format!("read {}: {e}", p.display())),
        })?;
        serde_json::from_slice(&b)
            .map_err(|e| CriError::internal(format!("corrupt {}: {e}", p.display())))
    }

    pub fn write(&self, r: &SandboxRecord) -> Result<()> {
        let p = self.dir.join(RECORD);
        let tmp = self.dir.join(".sandbox.json.tmp");
        let b = serde_json::to_vec(r).map_err(CriError::internal)?;
        std::fs::write(&tmp, b)
            .and_then(|_| std::fs::rename(&tmp, &p))
            .map_err(|e| CriError::internal(format!("write {}: {e}", p.display())))
    }

    /// Writes the files shared by the sandbox's containers.
    pub fn write_files(&self, r: &SandboxRecord, dns: &DnsConfig) -> Result<()> {
        let resolv = resolv_conf(dns);
        let io =
            |p: &Path, e: std::io::Error| CriError::internal(format!("write {}: {e}", p.display()));
        std::fs::write(self.resolv_conf(), resolv).map_err(|e| io(&self.resolv_conf(), e))?;
        let hostname = if r.host_network {
            std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| format!("{}\n", r.hostname))
        } else {
            format!("{}\n", r.hostname)
        };
        std::fs::write(self.hostname_file(), hostname).map_err(|e| io(&self.hostname_file(), e))
    }
}

/// `resolv.conf` for a sandbox: the given servers, searches and options, or the host's file
/// when no server is given (`dnsPolicy: Default`).
pub fn resolv_conf(dns: &DnsConfig) -> String {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    }
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for s in &dns.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lists_search_servers_and_options() {
        let dns = DnsConfig {
            servers: vec!["10.43.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }
}
