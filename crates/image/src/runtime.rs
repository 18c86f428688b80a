//! Image config → what a container runtime needs (Kubernetes semantics for overrides:
//! `command` replaces the entrypoint and drops the image's cmd, `args` replaces the cmd).

use std::path::PathBuf;

use serde::Serialize;

use crate::model::ImageConfig;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Process settings from an image config.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// `user[:group]` as in the image, or `None` for root.
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub exposed_ports: Vec<String>,
}

impl RuntimeConfig {
    pub fn from_image(cfg: &ImageConfig) -> RuntimeConfig {
        let c = &cfg.config;
        let mut env = c.env.clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_owned());
        }
        RuntimeConfig {
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            cmd: c.cmd.clone().unwrap_or_default(),
            env,
            working_dir: c
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user: c.user.clone().filter(|u| !u.is_empty()),
            stop_signal: c.stop_signal.clone(),
            exposed_ports: c
                .exposed_ports
                .as_ref()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// The process arguments, with a pod's `command`/`args` overrides applied.
    pub fn args(&self, command: Option<&[String]>, args: Option<&[String]>) -> Vec<String> {
        match (command, args) {
            (Some(c), Some(a)) => c.iter().chain(a).cloned().collect(),
            (Some(c), None) => c.to_vec(),
            (None, Some(a)) => self.entrypoint.iter().chain(a).cloned().collect(),
            (None, None) => self.entrypoint.iter().chain(&self.cmd).cloned().collect(),
        }
    }
}

/// A container's root filesystem, ready for an overlayfs mount.
#[derive(Clone, Debug, Serialize)]
pub struct PreparedRootfs {
    /// Top-most first (the order of overlayfs `lowerdir=`).
    pub lowerdirs: Vec<PathBuf>,
    pub config: RuntimeConfig,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerConfig, RootFs};

    #[test]
    fn overrides_follow_kubernetes() {
        let cfg = ImageConfig {
            created: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            config: ContainerConfig {
                entrypoint: Some(vec!["/ep".into()]),
                cmd: Some(vec!["a".into()]),
                ..Default::default()
            },
            rootfs: RootFs::default(),
        };
        let r = RuntimeConfig::from_image(&cfg);
        assert_eq!(r.args(None, None), ["/ep", "a"]);
        assert_eq!(r.args(Some(&["/c".into()]), None), ["/c"]);
        assert_eq!(r.args(None, Some(&["b".into()])), ["/ep", "b"]);
        assert!(r.env[0].starts_with("PATH="));
        assert_eq!(r.working_dir, "/");
    }
}
