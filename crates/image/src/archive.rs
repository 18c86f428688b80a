//! Import from an OCI image layout (directory), an OCI archive (tar of a layout), a Docker
//! archive (`docker save` format) or a plain root-filesystem tar (optionally compressed);
//! export to an OCI image layout directory or an OCI archive (`.tar`).
//!
//! Archives are extracted into a private directory under the store with the tar crate's
//! `unpack`, which refuses entries outside the target; every blob is verified against its
//! digest before it enters the content store. Layer contents are checked when unpacked.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::digest::{Digest, Hasher, HashingReader};
use crate::error::{ImageError, Result};
use crate::model::{self, AnyManifest, Descriptor, Index, Platform, parse_manifest};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore};
use crate::unpack::decompress;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Removes a directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn name_ok(name: &str) -> Result<String> {
    Ok(ImageRef::parse(name)?.store_name())
}

/// Imports images from `path`; `name` names the result (required for a plain rootfs tar
/// and for layouts whose entries carry only a tag).
pub fn import(store: &ImageStore, path: &Path, name: Option<&str>) -> Result<Vec<Image>> {
    let _l = store.ingest_lock()?;
    if path.is_dir() {
        return import_layout(store, path, name);
    }
    let kind = archive_kind(path)?;
    if kind == ArchiveKind::Rootfs {
        let name = name.ok_or_else(|| {
            ImageError::invalid(
                path.display().to_string(),
                "a root-filesystem tar needs an image name",
            )
        })?;
        return import_rootfs(store, path, &name_ok(name)?).map(|i| vec![i]);
    }
    let tmp = TempDir(
        store
            .root()
            .join(format!(".import-{}", uuid::Uuid::new_v4())),
    );
    fs::create_dir_all(&tmp.0).map_err(|e| ImageError::io("create", &tmp.0, e))?;
    let f = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let r = decompress(f).map_err(|e| ImageError::io("read", path, e))?;
    tar::Archive::new(r)
        .unpack(&tmp.0)
        .map_err(|e| ImageError::invalid(path.display().to_string(), format!("extracting: {e}")))?;
    match kind {
        ArchiveKind::OciLayout => import_layout(store, &tmp.0, name),
        _ => import_docker(store, &tmp.0, name),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArchiveKind {
    OciLayout,
    Docker,
    Rootfs,
}

fn archive_kind(path: &Path) -> Result<ArchiveKind> {
    let f = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let r = decompress(f).map_err(|e| ImageError::io("read", path, e))?;
    let mut a = tar::Archive::new(r);
    let (mut layout, mut manifest) = (false, false);
    let bad = |reason: String| ImageError::invalid(path.display().to_string(), reason);
    let entries = a
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    let mut last: Option<String> = None;
    for e in entries {
        let e = e.map_err(|e| match &last {
            Some(l) => bad(format!(
                "entry {l:?}: data shorter than its header declares, or corrupt: {e}"
            )),
            None => bad(format!("corrupt tar archive: {e}")),
        })?;
        let p = e.path_bytes();
        let p = String::from_utf8_lossy(&p).into_owned();
        match p.trim_start_matches("./") {
            "oci-layout" => layout = true,
            "manifest.json" => manifest = true,
            _ => {}
        }
        last = Some(p);
    }
    Ok(if layout {
        ArchiveKind::OciLayout
    } else if manifest {
        ArchiveKind::Docker
    } else {
        ArchiveKind::Rootfs
    })
}

fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs").join(d.algorithm()).join(d.hex())
}

fn copy_blob(store: &ImageStore, dir: &Path, d: &Digest) -> Result<()> {
    if store.content().has(d) {
        return Ok(());
    }
    let p = layout_blob(dir, d);
    let f = fs::File::open(&p).map_err(|e| ImageError::io("open", &p, e))?;
    store
        .content()
        .write_from(io::BufReader::with_capacity(1 << 20, f), Some(d))
        .map(|_| ())
}

fn import_layout(store: &ImageStore, dir: &Path, name: Option<&str>) -> Result<Vec<Image>> {
    let lp = dir.join("oci-layout");
    let layout: serde_json::Value =
        serde_json::from_slice(&fs::read(&lp).map_err(|e| ImageError::io("read", &lp, e))?)
            .map_err(|e| ImageError::invalid(lp.display().to_string(), e.to_string()))?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::invalid(
            lp.display().to_string(),
            "imageLayoutVersion is missing",
        ));
    }
    let ip = dir.join("index.json");
    let index: Index =
        serde_json::from_slice(&fs::read(&ip).map_err(|e| ImageError::io("read", &ip, e))?)
            .map_err(|e| ImageError::invalid(ip.display().to_string(), e.to_string()))?;
    if index.manifests.is_empty() {
        return Err(ImageError::invalid(
            ip.display().to_string(),
            "the layout holds no image",
        ));
    }
    let wanted_tag = name
        .and_then(|n| ImageRef::parse(n).ok())
        .and_then(|r| r.tag);
    let mut entries: Vec<&Descriptor> = index.manifests.iter().collect();
    if let Some(n) = name {
        let pick = entries
            .iter()
            .find(|d| ref_name(d).is_some_and(|r| Some(r) == wanted_tag.as_deref() || r == n))
            .copied()
            .unwrap_or(entries[0]);
        entries = vec![pick];
    }
    let mut out = Vec::new();
    for desc in entries {
        let image_name = match (name, ref_name(desc)) {
            (Some(n), _) => name_ok(n)?,
            (None, Some(r))
                if r.contains('/') || ImageRef::parse(r).is_ok_and(|x| x.tag.is_some()) =>
            {
                name_ok(r)?
            }
            (None, r) => {
                return Err(ImageError::invalid(
                    ip.display().to_string(),
                    format!(
                        "entry {} is tagged only {:?}; give an image name",
                        desc.digest,
                        r.unwrap_or("")
                    ),
                ));
            }
        };
        out.push(import_manifest(store, dir, desc, &image_name)?);
    }
    Ok(out)
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

fn import_manifest(store: &ImageStore, dir: &Path, desc: &Descriptor, name: &str) -> Result<Image> {
    copy_blob(store, dir, &desc.digest)?;
    let raw = store.content().read(&desc.digest)?;
    let (digest, mt, index) = match parse_manifest(&raw, Some(&desc.media_type))? {
        AnyManifest::Index(idx) => {
            let host = Platform::host();
            let child = idx
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_none_or(|p| p.os == host.os && p.architecture == host.architecture)
                })
                .ok_or_else(|| ImageError::PlatformMissing {
                    name: name.into(),
                    platform: host.to_string(),
                    available: String::new(),
                })?;
            copy_blob(store, dir, &child.digest)?;
            (
                child.digest.clone(),
                child.media_type.clone(),
                Some(desc.digest.clone()),
            )
        }
        AnyManifest::Image(_) => (desc.digest.clone(), desc.media_type.clone(), None),
    };
    let m = match parse_manifest(&store.content().read(&digest)?, Some(&mt))? {
        AnyManifest::Image(m) => m,
        AnyManifest::Index(_) => {
            return Err(ImageError::invalid(
                name,
                "nested indexes are not supported",
            ));
        }
    };
    copy_blob(store, dir, &m.config.digest)?;
    for l in &m.layers {
        copy_blob(store, dir, &l.digest)?;
    }
    store.set(name, &digest, &mt, index)
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A path inside an extracted archive, refusing names that leave it.
fn inside(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ImageError::invalid(
            "manifest.json",
            format!("path {rel:?} leaves the archive"),
        ));
    }
    Ok(dir.join(p))
}

fn import_docker(store: &ImageStore, dir: &Path, name: Option<&str>) -> Result<Vec<Image>> {
    let mp = dir.join("manifest.json");
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&fs::read(&mp).map_err(|e| ImageError::io("read", &mp, e))?)
            .map_err(|e| ImageError::invalid("manifest.json", e.to_string()))?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let image_name = match (name, e.repo_tags.as_ref().and_then(|t| t.first())) {
            (Some(n), _) => name_ok(n)?,
            (None, Some(t)) => name_ok(t)?,
            (None, None) => {
                return Err(ImageError::invalid(
                    "manifest.json",
                    format!("image {i} has no RepoTags; give an image name"),
                ));
            }
        };
        let config_bytes = fs::read(inside(dir, &e.config)?)
            .map_err(|err| ImageError::io("read", &e.config, err))?;
        let config_digest = store.content().write(&config_bytes, None)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let p = inside(dir, l)?;
            let mut f = fs::File::open(&p).map_err(|err| ImageError::io("open", &p, err))?;
            let mut magic = [0u8; 2];
            let gz = f
                .read(&mut magic)
                .map(|n| n == 2 && magic == [0x1f, 0x8b])
                .unwrap_or(false);
            let f = fs::File::open(&p).map_err(|err| ImageError::io("open", &p, err))?;
            let (d, size) = store
                .content()
                .write_from(io::BufReader::with_capacity(1 << 20, f), None)?;
            let mt = if gz {
                model::OCI_LAYER_GZIP
            } else {
                model::OCI_LAYER_TAR
            };
            layers.push(json!({"mediaType": mt, "digest": d.to_string(), "size": size}));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": model::OCI_MANIFEST,
            "config": {"mediaType": model::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
        let d = store.content().write(&bytes, None)?;
        out.push(store.set(&image_name, &d, model::OCI_MANIFEST, None)?);
    }
    Ok(out)
}

fn import_rootfs(store: &ImageStore, path: &Path, name: &str) -> Result<Image> {
    // Check every entry now (into a scratch directory) so an unsafe tar is refused at
    // import with the entry named, not later on a node.
    {
        let scratch = TempDir(
            store
                .root()
                .join(format!(".check-{}", uuid::Uuid::new_v4())),
        );
        fs::create_dir_all(&scratch.0).map_err(|e| ImageError::io("create", &scratch.0, e))?;
        let f = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        let layer = path.display().to_string();
        crate::unpack::apply_layer(
            io::BufReader::new(f),
            &scratch.0,
            &layer,
            &crate::unpack::UnpackOptions::default(),
        )?;
    }
    let f = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
    let plain = decompress(f).map_err(|e| ImageError::io("read", path, e))?;
    let mut hashing = HashingReader {
        inner: plain,
        hasher: Hasher::new("sha256"),
        read: 0,
    };
    let (layer_digest, layer_size) = {
        let gz = flate2::read::GzEncoder::new(&mut hashing, flate2::Compression::fast());
        store.content().write_from(gz, None)?
    };
    let diff_id = std::mem::replace(&mut hashing.hasher, Hasher::new("sha256")).finish();
    let host = Platform::host();
    let config = json!({
        "created": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "architecture": host.architecture,
        "os": host.os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    let config_bytes = serde_json::to_vec(&config).expect("config JSON");
    let config_digest = store.content().write(&config_bytes, None)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": model::OCI_MANIFEST,
        "config": {"mediaType": model::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": [{"mediaType": model::OCI_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer_size}],
    });
    let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
    let d = store.content().write(&bytes, None)?;
    store.set(name, &d, model::OCI_MANIFEST, None)
}

/// Writes `image` into an OCI image layout at `dest` (created or extended), tagged `tag`;
/// a `dest` ending in `.tar` becomes an OCI archive instead.
pub fn export(store: &ImageStore, image: &Image, dest: &Path, tag: &str) -> Result<()> {
    if dest.extension().is_some_and(|e| e == "tar") {
        let tmp = TempDir(
            store
                .root()
                .join(format!(".export-{}", uuid::Uuid::new_v4())),
        );
        export_layout(store, image, &tmp.0, tag)?;
        let f = fs::File::create(dest).map_err(|e| ImageError::io("create", dest, e))?;
        let mut b = tar::Builder::new(io::BufWriter::new(f));
        b.append_dir_all(".", &tmp.0)
            .map_err(|e| ImageError::io("write", dest, e))?;
        b.into_inner()
            .and_then(|mut w| io::Write::flush(&mut w))
            .map_err(|e| ImageError::io("write", dest, e))?;
        return Ok(());
    }
    export_layout(store, image, dest, tag)
}

fn export_layout(store: &ImageStore, image: &Image, dir: &Path, tag: &str) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| ImageError::io("create", dir, e))?;
    let lp = dir.join("oci-layout");
    fs::write(&lp, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| ImageError::io("write", &lp, e))?;
    let digests = std::iter::once(&image.entry.digest)
        .chain(std::iter::once(&image.config_digest))
        .chain(image.manifest.layers.iter().map(|l| &l.digest));
    for d in digests {
        let target = layout_blob(dir, d);
        if target.exists() {
            continue;
        }
        let parent = target.parent().expect("blob path has a parent");
        fs::create_dir_all(parent).map_err(|e| ImageError::io("create", parent, e))?;
        let src = store.content().path(d);
        if fs::hard_link(&src, &target).is_err() {
            fs::copy(&src, &target).map_err(|e| ImageError::io("copy", &target, e))?;
        }
    }
    let ip = dir.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match fs::read(&ip) {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| {
        m.pointer("/annotations/org.opencontainers.image.ref.name")
            .and_then(|v| v.as_str())
            != Some(tag)
    });
    let size = store.content().size(&image.entry.digest).unwrap_or(0);
    let mut ann = BTreeMap::new();
    ann.insert(REF_NAME, tag);
    manifests.push(json!({"mediaType": image.entry.media_type, "digest": image.entry.digest.to_string(), "size": size, "annotations": ann}));
    let index = json!({"schemaVersion": 2, "mediaType": model::OCI_INDEX, "manifests": manifests});
    fs::write(&ip, serde_json::to_vec(&index).expect("index JSON"))
        .map_err(|e| ImageError::io("write", &ip, e))
}
