//! Repository metadata on the filesystem under `<root>/repositories/<name>/`:
//! `_blobs/<alg>/<hex>` (empty link files: the repository may serve that blob),
//! `_manifests/<alg>/<hex>` (link files holding the manifest's media type; their mtime is
//! the time of the last PUT, which garbage collection reads), `_tags/<tag>` (the digest),
//! `_referrers/<alg>/<subject hex>/<alg>-<hex>` (the referrer's descriptor as JSON).
//!
//! Validated names never start a component with `_` or `.`, so they cannot collide with the
//! `_` directories or escape the root. These are small files read on hot paths, so plain
//! `std::fs` calls are made inline (page-cache hits, no blocking-pool hop).

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::digest::{Algorithm, Digest};
use crate::error::{RegistryError, Result};

#[derive(Clone, Debug)]
pub(crate) struct Meta {
    root: PathBuf,
}

fn not_found_to_none<T>(r: io::Result<T>, op: &'static str, path: &Path) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::io(op, path, e)),
    }
}

fn remove(path: &Path) -> Result<bool> {
    Ok(not_found_to_none(std::fs::remove_file(path), "remove", path)?.is_some())
}

/// Writes `data` to `path` atomically (temp file in the same directory + rename).
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("metadata path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| RegistryError::io("create", dir, e))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    std::fs::write(&tmp, data).map_err(|e| RegistryError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RegistryError::io("rename", path, e)
    })
}

fn digest_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(d.algorithm().as_str()).join(d.hex())
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let Some(rd) = not_found_to_none(std::fs::read_dir(dir), "read dir", dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| RegistryError::io("read dir", dir, e))?;
        if let Some(n) = e.file_name().to_str()
            && !n.starts_with(".tmp-")
        {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn list_digests(dir: &Path) -> Result<Vec<(Digest, SystemTime)>> {
    let mut out = Vec::new();
    for alg in Algorithm::all() {
        let adir = dir.join(alg.as_str());
        for name in list_dir(&adir)? {
            if let Ok(d) = Digest::new(alg, &name) {
                let p = adir.join(&name);
                if let Some(m) = not_found_to_none(std::fs::metadata(&p), "stat", &p)? {
                    out.push((d, m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
                }
            }
        }
    }
    Ok(out)
}

impl Meta {
    pub(crate) fn new(root: PathBuf) -> Result<Meta> {
        std::fs::create_dir_all(&root).map_err(|e| RegistryError::io("create", &root, e))?;
        Ok(Meta { root })
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether the repository has any content.
    pub(crate) fn repo_exists(&self, name: &str) -> bool {
        let r = self.repo(name);
        r.join("_manifests").is_dir() || r.join("_blobs").is_dir() || r.join("_tags").is_dir()
    }

    pub(crate) fn link_blob(&self, name: &str, d: &Digest) -> Result<()> {
        let p = digest_path(&self.repo(name).join("_blobs"), d);
        let dir = p.parent().expect("link has a parent");
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::io("create", dir, e))?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
        {
            Ok(f) => {
                // Refresh the mtime so garbage collection sees the link as recent.
                let _ = f.set_modified(SystemTime::now());
                Ok(())
            }
            Err(e) => Err(RegistryError::io("create", &p, e)),
        }
    }

    pub(crate) fn blob_linked(&self, name: &str, d: &Digest) -> bool {
        digest_path(&self.repo(name).join("_blobs"), d).exists()
    }

    pub(crate) fn unlink_blob(&self, name: &str, d: &Digest) -> Result<bool> {
        remove(&digest_path(&self.repo(name).join("_blobs"), d))
    }

    pub(crate) fn blob_links(&self, name: &str) -> Result<Vec<(Digest, SystemTime)>> {
        list_digests(&self.repo(name).join("_blobs"))
    }

    pub(crate) fn link_manifest(&self, name: &str, d: &Digest, media_type: &str) -> Result<()> {
        write_atomic(
            &digest_path(&self.repo(name).join("_manifests"), d),
            media_type.as_bytes(),
        )
    }

    /// The media type of a manifest linked in the repository.
    pub(crate) fn manifest_media_type(&self, name: &str, d: &Digest) -> Result<Option<String>> {
        let p = digest_path(&self.repo(name).join("_manifests"), d);
        not_found_to_none(std::fs::read_to_string(&p), "read", &p)
    }

    pub(crate) fn unlink_manifest(&self, name: &str, d: &Digest) -> Result<bool> {
        remove(&digest_path(&self.repo(name).join("_manifests"), d))
    }

    pub(crate) fn manifests(&self, name: &str) -> Result<Vec<(Digest, SystemTime)>> {
        list_digests(&self.repo(name).join("_manifests"))
    }

    pub(crate) fn set_tag(&self, name: &str, tag: &str, d: &Digest) -> Result<()> {
        write_atomic(
            &self.repo(name).join("_tags").join(tag),
            d.to_string().as_bytes(),
        )
    }

    pub(crate) fn tag(&self, name: &str, tag: &str) -> Result<Option<Digest>> {
        let p = self.repo(name).join("_tags").join(tag);
        match not_found_to_none(std::fs::read_to_string(&p), "read", &p)? {
            None => Ok(None),
            Some(s) => Ok(Some(s.trim().parse()?)),
        }
    }

    pub(crate) fn delete_tag(&self, name: &str, tag: &str) -> Result<bool> {
        remove(&self.repo(name).join("_tags").join(tag))
    }

    /// The repository's tags in lexical order, or `None` when the repository is unknown.
    pub(crate) fn tags(&self, name: &str) -> Result<Option<Vec<String>>> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let mut t = list_dir(&self.repo(name).join("_tags"))?;
        t.sort();
        Ok(Some(t))
    }

    /// Every repository with content, in lexical order.
    pub(crate) fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = if prefix.is_empty() {
                self.root.clone()
            } else {
                self.root.join(&prefix)
            };
            for n in list_dir(&dir)? {
                if n.starts_with('_') || n.starts_with('.') {
                    continue;
                }
                let name = if prefix.is_empty() {
                    n
                } else {
                    format!("{prefix}/{n}")
                };
                if self.root.join(&name).is_dir() {
                    if self.repo_exists(&name) {
                        out.push(name.clone());
                    }
                    stack.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        digest_path(&self.repo(name).join("_referrers"), subject)
    }

    pub(crate) fn add_referrer(
        &self,
        name: &str,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &serde_json::Value,
    ) -> Result<()> {
        let p = self.referrers_dir(name, subject).join(format!(
            "{}-{}",
            referrer.algorithm().as_str(),
            referrer.hex()
        ));
        write_atomic(&p, descriptor.to_string().as_bytes())
    }

    pub(crate) fn remove_referrer(
        &self,
        name: &str,
        subject: &Digest,
        referrer: &Digest,
    ) -> Result<bool> {
        remove(&self.referrers_dir(name, subject).join(format!(
            "{}-{}",
            referrer.algorithm().as_str(),
            referrer.hex()
        )))
    }

    /// Descriptors of the manifests whose subject is `subject`, ordered by digest.
    pub(crate) fn referrers(&self, name: &str, subject: &Digest) -> Result<Vec<serde_json::Value>> {
        let dir = self.referrers_dir(name, subject);
        let mut names = list_dir(&dir)?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let p = dir.join(&n);
            if let Some(s) = not_found_to_none(std::fs::read(&p), "read", &p)?
                && let Ok(v) = serde_json::from_slice(&s)
            {
                out.push(v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_links_and_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let m = Meta::new(dir.path().to_owned()).unwrap();
        let d = Digest::sha256_of(b"x");
        assert!(m.tags("a/b").unwrap().is_none());
        m.link_manifest("a/b", &d, "application/vnd.oci.image.manifest.v1+json")
            .unwrap();
        for t in ["z", "a", "M", "1"] {
            m.set_tag("a/b", t, &d).unwrap();
        }
        assert_eq!(m.tags("a/b").unwrap().unwrap(), ["1", "M", "a", "z"]);
        assert_eq!(m.tag("a/b", "z").unwrap(), Some(d.clone()));
        assert!(m.delete_tag("a/b", "z").unwrap());
        assert!(!m.delete_tag("a/b", "z").unwrap());
        m.link_blob("a", &d).unwrap();
        m.link_blob("c", &d).unwrap();
        assert_eq!(m.repositories().unwrap(), ["a", "a/b", "c"]);
        assert!(m.blob_linked("a", &d) && !m.blob_linked("a/b", &d));
    }
}
