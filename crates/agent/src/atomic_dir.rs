//! Atomic updates of a directory of files that running containers see (ConfigMap, Secret,
//! downward API and projected volumes), as kubelet's AtomicWriter does: the payload goes into
//! a fresh hidden `..<timestamp>` directory, the `..data` symlink is swapped to it with one
//! rename, and each visible name is a symlink through `..data`. A reader therefore sees the
//! old set or the new set of files, never a mix, and updates reach containers in place.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const DATA: &str = "..data";

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Checks a payload path: relative, no `..`, not starting with `..`.
pub fn check_path(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return Err(format!("path {p:?} must be relative and non-empty"));
    }
    if p.starts_with("..") {
        return Err(format!("path {p:?} must not start with '..'"));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!("path {p:?} must not contain '..' or '.' elements"));
    }
    Ok(())
}

fn io(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", p.display())
}

/// What the directory currently holds through `..data`.
fn current(dir: &Path) -> Option<BTreeMap<String, FileSpec>> {
    let data = dir.join(DATA);
    std::fs::read_link(&data).ok()?;
    let mut out = BTreeMap::new();
    fn walk(base: &Path, rel: &Path, out: &mut BTreeMap<String, FileSpec>) -> Option<()> {
        for e in std::fs::read_dir(base.join(rel)).ok()?.flatten() {
            let r = rel.join(e.file_name());
            let md = e.metadata().ok()?;
            if md.is_dir() {
                walk(base, &r, out)?;
            } else {
                let data = std::fs::read(base.join(&r)).ok()?;
                out.insert(
                    r.to_string_lossy().into_owned(),
                    FileSpec {
                        data,
                        mode: md.permissions().mode() & 0o7777,
                    },
                );
            }
        }
        Some(())
    }
    walk(&data, Path::new(""), &mut out)?;
    Some(out)
}

/// Makes `dir` hold exactly `payload`; returns whether anything changed.
pub fn write(dir: &Path, payload: &BTreeMap<String, FileSpec>) -> Result<bool, String> {
    for p in payload.keys() {
        check_path(p)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    if current(dir).as_ref() == Some(payload) {
        return Ok(false);
    }
    let stamp = format!(
        "..{}.{:08x}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S"),
        rand::random::<u32>()
    );
    let ts_dir = dir.join(&stamp);
    std::fs::create_dir(&ts_dir).map_err(|e| io("create", &ts_dir, e))?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| io("chmod", &ts_dir, e))?;
    let fill = || -> Result<(), String> {
        for (p, f) in payload {
            let target = ts_dir.join(p);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
            }
            std::fs::write(&target, &f.data).map_err(|e| io("write", &target, e))?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(f.mode))
                .map_err(|e| io("chmod", &target, e))?;
        }
        Ok(())
    };
    if let Err(e) = fill() {
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link).map_err(|e| io("symlink", &tmp_link, e))?;
    std::fs::rename(&tmp_link, dir.join(DATA)).map_err(|e| io("rename", &tmp_link, e))?;
    // Visible names: the top-level entries of the payload.
    let tops: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| Path::new(p).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for t in &tops {
        let link = dir.join(t);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from(DATA).join(t), &link)
                .map_err(|e| io("symlink", &link, e))?;
        }
    }
    for e in std::fs::read_dir(dir)
        .map_err(|e| io("read", dir, e))?
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with("..") && !tops.contains(&n) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old
        && old.as_os_str() != stamp.as_str()
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(items: &[(&str, &str)]) -> BTreeMap<String, FileSpec> {
        items
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    FileSpec {
                        data: v.as_bytes().to_vec(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn updates_swap_the_whole_set() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("vol");
        assert!(write(&dir, &payload(&[("a", "1"), ("sub/b", "2")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert!(!write(&dir, &payload(&[("a", "1"), ("sub/b", "2")])).unwrap());
        assert!(write(&dir, &payload(&[("a", "3")])).unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
        assert!(!dir.join("sub").exists());
        let stamps = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("..") && n != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "old payload directories are removed");
    }

    #[test]
    fn paths_cannot_escape() {
        for bad in ["/etc/x", "../x", "a/../../x", "..data", ""] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_path("a/b.txt").is_ok());
    }
}
