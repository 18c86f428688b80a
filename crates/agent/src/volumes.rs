//! Pod volumes on the node, under `<agent>/pods/<uid>/volumes/<plugin>/<name>`:
//! emptyDir (a directory, or tmpfs for `medium: Memory`, sized by `sizeLimit`), configMap,
//! secret, downwardAPI and projected (configMap, secret, downwardAPI and serviceAccountToken
//! sources; these three on tmpfs, as with kubelet) written atomically and refreshed in place when their sources
//! change, hostPath (with its type checks) and persistentVolumeClaim (the bound volume's
//! local or hostPath directory). Containers get bind mounts of these directories.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, Pod, ServiceAccount, Volume, VolumeMount,
};
use kube::api::{Api, PostParams};

use crate::atomic_dir::{self, FileSpec};
use crate::envvars;
use crate::objects::Lookup;

/// The annotation and provisioner name the server's volume controller puts on the hostPath
/// volumes it provisions for claims (`berth_controllers::volumes`).
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
const LOCAL_PATH_PROVISIONER: &str = "berth.dev/local-path";

/// A volume ready for containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePath {
    pub host: PathBuf,
    /// Always mounted read-only (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
}

/// The volumes of one pod, by name.
pub type PodVolumes = HashMap<String, VolumePath>;

/// Why a volume cannot be set up (user-facing, for `FailedMount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError {
    pub volume: String,
    pub message: String,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume {:?} : {}",
            self.volume, self.message
        )
    }
}

/// Where a pod's files live.
pub fn pod_dir(pods: &Path, uid: &str) -> PathBuf {
    pods.join(uid)
}

fn volume_dir(pods: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pod_dir(pods, uid)
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

fn cpath(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// Whether `p` is a mount point (its device differs from its parent's).
fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(parent)) = (std::fs::metadata(p), p.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|b| a.dev() != b.dev())
}

fn mount_tmpfs(dir: &Path, size: Option<u64>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let opts = match size {
        Some(s) => format!("mode=0755,size={s}"),
        None => "mode=0755".to_string(),
    };
    let (src, dst, ty, data) = (
        CString::new("tmpfs").unwrap_or_default(),
        cpath(dir).ok_or("NUL in path")?,
        CString::new("tmpfs").unwrap_or_default(),
        CString::new(opts).unwrap_or_default(),
    );
    // SAFETY: mount(2) with NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            ty.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(format!(
            "mount tmpfs on {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn mode_of(item: Option<i32>, default: Option<i32>, fallback: u32) -> u32 {
    item.or(default)
        .map(|m| m as u32 & 0o7777)
        .unwrap_or(fallback)
}

/// Files from a key/value source, honouring `items` (which must exist unless optional).
fn key_files(
    data: &[(String, Vec<u8>)],
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
    what: &str,
) -> Result<BTreeMap<String, FileSpec>, String> {
    let mut out = BTreeMap::new();
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.iter().find(|(k, _)| *k == it.key) {
                    Some((_, v)) => {
                        out.insert(
                            it.path.clone(),
                            FileSpec {
                                data: v.clone(),
                                mode: mode_of(it.mode, default_mode, 0o644),
                            },
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "configuration key {:?} not found in {what}",
                            it.key
                        ));
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(
                    k.clone(),
                    FileSpec {
                        data: v.clone(),
                        mode: mode_of(None, default_mode, 0o644),
                    },
                );
            }
        }
    }
    Ok(out)
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    host_ip: &str,
    pod_ip: &str,
    node_alloc: (i128, i128),
) -> Result<BTreeMap<String, FileSpec>, String> {
    let mut out = BTreeMap::new();
    for it in items {
        let v = if let Some(f) = &it.field_ref {
            envvars::field_value(pod, &f.field_path, host_ip, pod_ip).map_err(|e| e.0)?
        } else if let Some(r) = &it.resource_field_ref {
            let c = r.container_name.clone().unwrap_or_default();
            envvars::resource_value(
                pod,
                &c,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                node_alloc,
            )
            .map_err(|e| e.0)?
        } else {
            String::new()
        };
        out.insert(
            it.path.clone(),
            FileSpec {
                data: v.into_bytes(),
                mode: mode_of(it.mode, default_mode, 0o644),
            },
        );
    }
    Ok(out)
}

/// What the agent knows besides the pod, for volume contents.
pub struct VolumeContext<'a> {
    pub pods_dir: &'a Path,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
    pub node_alloc: (i128, i128),
    /// Memory available to tmpfs volumes without a size limit.
    pub node_memory: u64,
}

async fn sa_token(
    lookup: &Lookup,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(lookup.client().clone(), &ns);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
            expiration_seconds: Some(expiration.unwrap_or(3600)),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .map_err(|e| format!("failed to fetch token for service account {ns}/{sa}: {e}"))?;
    resp.status
        .map(|s| s.token)
        .ok_or_else(|| format!("the token request for {ns}/{sa} returned no token"))
}

/// The payload of a content volume (None for volumes that are not written by the agent).
async fn content(
    v: &Volume,
    pod: &Pod,
    ctx: &VolumeContext<'_>,
    lookup: &mut Lookup,
) -> Result<Option<(BTreeMap<String, FileSpec>, bool)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    if let Some(c) = &v.config_map {
        let optional = c.optional == Some(true);
        let data = match lookup
            .configmap(&ns, &c.name)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(cm) => Lookup::configmap_data(&cm),
            None if optional => vec![],
            None => return Err(format!("configmap {:?} not found", c.name)),
        };
        let f = key_files(
            &data,
            c.items.as_ref(),
            c.default_mode,
            optional,
            &format!("ConfigMap {ns}/{}", c.name),
        )?;
        return Ok(Some((f, false)));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        let data = match lookup.secret(&ns, &name).await.map_err(|e| e.to_string())? {
            Some(sec) => Lookup::secret_data(&sec),
            None if optional => vec![],
            None => return Err(format!("secret {name:?} not found")),
        };
        let f = key_files(
            &data,
            s.items.as_ref(),
            s.default_mode,
            optional,
            &format!("Secret {ns}/{name}"),
        )?;
        return Ok(Some((f, true)));
    }
    if let Some(d) = &v.downward_api {
        let f = downward_files(
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode,
            ctx.host_ip,
            ctx.pod_ip,
            ctx.node_alloc,
        )?;
        return Ok(Some((f, false)));
    }
    if let Some(p) = &v.projected {
        let mut all = BTreeMap::new();
        let mut secret = false;
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                let optional = c.optional == Some(true);
                let data = match lookup
                    .configmap(&ns, &c.name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(cm) => Lookup::configmap_data(&cm),
                    None if optional => vec![],
                    None => return Err(format!("configmap {:?} not found", c.name)),
                };
                all.extend(key_files(
                    &data,
                    c.items.as_ref(),
                    p.default_mode,
                    optional,
                    &format!("ConfigMap {ns}/{}", c.name),
                )?);
            }
            if let Some(s) = &src.secret {
                secret = true;
                let optional = s.optional == Some(true);
                let data = match lookup
                    .secret(&ns, &s.name)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(sec) => Lookup::secret_data(&sec),
                    None if optional => vec![],
                    None => return Err(format!("secret {:?} not found", s.name)),
                };
                all.extend(key_files(
                    &data,
                    s.items.as_ref(),
                    p.default_mode,
                    optional,
                    &format!("Secret {ns}/{}", s.name),
                )?);
            }
            if let Some(d) = &src.downward_api {
                all.extend(downward_files(
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    p.default_mode,
                    ctx.host_ip,
                    ctx.pod_ip,
                    ctx.node_alloc,
                )?);
            }
            if let Some(t) = &src.service_account_token {
                secret = true;
                let token =
                    sa_token(lookup, pod, t.audience.as_deref(), t.expiration_seconds).await?;
                all.insert(
                    t.path.clone(),
                    FileSpec {
                        data: token.into_bytes(),
                        mode: mode_of(None, p.default_mode, 0o600),
                    },
                );
            }
        }
        return Ok(Some((all, secret)));
    }
    Ok(None)
}

fn plugin(v: &Volume) -> Option<&'static str> {
    Some(if v.empty_dir.is_some() {
        "empty-dir"
    } else if v.config_map.is_some() {
        "configmap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.downward_api.is_some() {
        "downward-api"
    } else if v.projected.is_some() {
        "projected"
    } else {
        return None;
    })
}

fn host_path(v: &Volume, path: &str, ty: Option<&str>) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(format!("hostPath {path:?} must be absolute"));
    }
    let md = std::fs::metadata(&p);
    let exists = md.is_ok();
    use std::os::unix::fs::FileTypeExt;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "hostPath type check failed: {path} is not a {what}"
            ))
        }
    };
    match ty.unwrap_or("") {
        "" => {}
        "DirectoryOrCreate" => {
            if !exists {
                std::fs::create_dir_all(&p).map_err(|e| format!("create {path}: {e}"))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            } else {
                check(md.as_ref().is_ok_and(|m| m.is_dir()), "directory")?;
            }
        }
        "Directory" => check(md.as_ref().is_ok_and(|m| m.is_dir()), "directory")?,
        "FileOrCreate" => {
            if !exists {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("create {}: {e}", parent.display()))?;
                }
                std::fs::File::create(&p).map_err(|e| format!("create {path}: {e}"))?;
            } else {
                check(md.as_ref().is_ok_and(|m| m.is_file()), "file")?;
            }
        }
        "File" => check(md.as_ref().is_ok_and(|m| m.is_file()), "file")?,
        "Socket" => check(
            md.as_ref().is_ok_and(|m| m.file_type().is_socket()),
            "socket",
        )?,
        "CharDevice" => check(
            md.as_ref().is_ok_and(|m| m.file_type().is_char_device()),
            "character device",
        )?,
        "BlockDevice" => check(
            md.as_ref().is_ok_and(|m| m.file_type().is_block_device()),
            "block device",
        )?,
        other => {
            return Err(format!(
                "volume {:?}: unsupported hostPath type {other:?}",
                v.name
            ));
        }
    }
    Ok(p)
}

/// Sets up (or refreshes) every volume of `pod`.
pub async fn setup(
    pod: &Pod,
    ctx: &VolumeContext<'_>,
    lookup: &mut Lookup,
) -> Result<PodVolumes, MountError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = PodVolumes::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let err = |m: String| MountError {
            volume: v.name.clone(),
            message: m,
        };
        if let Some(hp) = &v.host_path {
            let p = host_path(v, &hp.path, hp.type_.as_deref()).map_err(err)?;
            out.insert(
                v.name.clone(),
                VolumePath {
                    host: p,
                    read_only: false,
                },
            );
            continue;
        }
        if let Some(c) = &v.persistent_volume_claim {
            let claim = lookup
                .claim(&ns, &c.claim_name)
                .await
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| {
                    err(format!(
                        "persistentvolumeclaim {:?} not found",
                        c.claim_name
                    ))
                })?;
            let pv_name = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|n| !n.is_empty())
                .filter(|_| claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
                .ok_or_else(|| {
                    err(format!(
                        "persistentvolumeclaim {:?} is not bound",
                        c.claim_name
                    ))
                })?;
            let pv = lookup
                .volume(&pv_name)
                .await
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err(format!("persistentvolume {pv_name:?} not found")))?;
            let provisioned = pv
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PROVISIONED_BY))
                .is_some_and(|p| p == LOCAL_PATH_PROVISIONER);
            let spec = pv.spec.unwrap_or_default();
            let p = if let Some(hp) = &spec.host_path {
                let p = host_path(
                    v,
                    &hp.path,
                    hp.type_.as_deref().or(Some("DirectoryOrCreate")),
                )
                .map_err(err)?;
                if provisioned {
                    // A provisioned volume is the claim's own: writable by whatever user the
                    // pod runs as, as local-path provisioners make it.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))
                        .map_err(|e| err(format!("chmod {}: {e}", p.display())))?;
                }
                p
            } else if let Some(l) = &spec.local {
                host_path(v, &l.path, Some("Directory")).map_err(err)?
            } else {
                return Err(err(format!(
                    "persistentvolume {pv_name:?} is neither hostPath nor local; this node cannot mount it"
                )));
            };
            out.insert(
                v.name.clone(),
                VolumePath {
                    host: p,
                    read_only: c.read_only == Some(true),
                },
            );
            continue;
        }
        let Some(plug) = plugin(v) else {
            return Err(err(
                "this volume type is not supported on berth nodes".into()
            ));
        };
        let dir = volume_dir(ctx.pods_dir, &uid, plug, &v.name);
        if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .and_then(|q| crate::quantity::parse_value(&q.0).ok())
                .map(|v| v.max(0) as u64);
            if e.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir, Some(size.unwrap_or(ctx.node_memory))).map_err(err)?;
            } else {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| err(format!("create {}: {e}", dir.display())))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
            }
            out.insert(
                v.name.clone(),
                VolumePath {
                    host: dir,
                    read_only: false,
                },
            );
            continue;
        }
        let (payload, secret) = content(v, pod, ctx, lookup)
            .await
            .map_err(err)?
            .unwrap_or_default();
        // As kubelet does: secrets, projected volumes (service account tokens) and the
        // downward API live in memory, never on the node's disk.
        if secret || v.projected.is_some() || v.downward_api.is_some() {
            mount_tmpfs(&dir, None).map_err(err)?;
        }
        atomic_dir::write(&dir, &payload).map_err(err)?;
        out.insert(
            v.name.clone(),
            VolumePath {
                host: dir,
                read_only: true,
            },
        );
    }
    Ok(out)
}

/// The host path and read-only flag of one mount, with `subPath`/`subPathExpr` resolved.
pub fn mount_source(
    m: &VolumeMount,
    vols: &PodVolumes,
    env: &HashMap<String, String>,
) -> Result<(PathBuf, bool), String> {
    let v = vols
        .get(&m.name)
        .ok_or_else(|| format!("volumeMount {:?}: no such volume", m.name))?;
    let sub = match (&m.sub_path, &m.sub_path_expr) {
        (Some(s), _) if !s.is_empty() => Some(s.clone()),
        (_, Some(e)) if !e.is_empty() => Some(envvars::expand(e, env)),
        _ => None,
    };
    let ro = m.read_only == Some(true) || v.read_only;
    let Some(sub) = sub else {
        return Ok((v.host.clone(), ro));
    };
    atomic_dir::check_path(&sub).map_err(|e| format!("subPath: {e}"))?;
    let p = v.host.join(&sub);
    let canon_base =
        std::fs::canonicalize(&v.host).map_err(|e| format!("{}: {e}", v.host.display()))?;
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(|e| format!("create subPath {}: {e}", p.display()))?;
    }
    let canon = std::fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !canon.starts_with(&canon_base) {
        return Err(format!("subPath {sub:?} escapes its volume"));
    }
    Ok((canon, ro))
}

/// Bytes used under `dir` (for emptyDir size limits).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if let Ok(md) = e.metadata() {
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    total += md.blocks() * 512;
                }
            }
        }
    }
    total
}

/// The emptyDir volumes over their `sizeLimit` (name, limit quantity).
pub fn over_limit(pod: &Pod, pods_dir: &Path) -> Option<(String, String)> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(e) = &v.empty_dir else { continue };
        if e.medium.as_deref() == Some("Memory") {
            continue;
        }
        let Some(limit) = &e.size_limit else { continue };
        let Ok(max) = crate::quantity::parse_value(&limit.0) else {
            continue;
        };
        let used = disk_usage(&volume_dir(pods_dir, &uid, "empty-dir", &v.name));
        if used as i128 > max {
            return Some((v.name.clone(), limit.0.clone()));
        }
    }
    None
}

/// Unmounts and removes everything the agent made for a pod.
pub fn teardown(pods_dir: &Path, uid: &str) -> Result<(), String> {
    let dir = pod_dir(pods_dir, uid);
    if !dir.exists() {
        return Ok(());
    }
    // Unmount every mount below the pod directory, deepest first.
    let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|m| m.starts_with(&dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in &mounts {
        if let Some(c) = cpath(m) {
            // SAFETY: umount2 of a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let still: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| Path::new(m).starts_with(&dir))
        .collect();
    if !still.is_empty() {
        return Err(format!("still mounted: {}", still.join(", ")));
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_select_and_rename_keys() {
        let data = vec![
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ];
        let all = key_files(&data, None, Some(0o400), false, "x").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"].mode, 0o400);
        let items = vec![KeyToPath {
            key: "b".into(),
            path: "dir/bee".into(),
            mode: Some(0o600),
        }];
        let some = key_files(&data, Some(&items), None, false, "x").unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), vec!["dir/bee"]);
        assert_eq!(some["dir/bee"].mode, 0o600);
        let missing = vec![KeyToPath {
            key: "zz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(key_files(&data, Some(&missing), None, false, "x").is_err());
        assert!(
            key_files(&data, Some(&missing), None, true, "x")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sub_paths_stay_inside_their_volume() {
        let d = tempfile::tempdir().unwrap();
        let mut vols = PodVolumes::new();
        vols.insert(
            "data".into(),
            VolumePath {
                host: d.path().to_path_buf(),
                read_only: false,
            },
        );
        let m = |sub: &str| VolumeMount {
            name: "data".into(),
            mount_path: "/x".into(),
            sub_path: Some(sub.into()),
            ..Default::default()
        };
        let env = HashMap::new();
        let (p, ro) = mount_source(&m("a/b"), &vols, &env).unwrap();
        assert!(p.ends_with("a/b") && p.is_dir() && !ro);
        assert!(mount_source(&m("../etc"), &vols, &env).is_err());
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        assert!(mount_source(&m("link"), &vols, &env).is_err());
    }

    #[test]
    fn host_path_types_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let v = Volume {
            name: "h".into(),
            ..Default::default()
        };
        let dir = d.path().join("new");
        assert!(host_path(&v, dir.to_str().unwrap(), Some("Directory")).is_err());
        assert!(host_path(&v, dir.to_str().unwrap(), Some("DirectoryOrCreate")).is_ok());
        assert!(dir.is_dir());
        assert!(host_path(&v, dir.to_str().unwrap(), Some("File")).is_err());
        assert!(host_path(&v, "relative", None).is_err());
    }
}
