//! The node image store under one root: `content/` (blobs by digest), `images.json` (names
//! → manifest digests), `snapshots/<chain id>/` (one unpacked layer each, overlayfs-ready).
//!
//! Writers to `images.json` take an exclusive `flock` on `images.lock` and rewrite the file
//! atomically; pulls, imports and unpacks hold `content.lock` shared for their duration so
//! that pruning (which takes it exclusively) never removes content that a running pull has
//! fetched but not yet named.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::model::{AnyManifest, ImageConfig, Manifest, parse_manifest};
use crate::runtime::{PreparedRootfs, RuntimeConfig};
use crate::unpack::{UnpackOptions, WhiteoutMode, apply_layer};

/// A named image in the store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    pub name: String,
    /// The image manifest for this node's platform.
    pub digest: Digest,
    pub media_type: String,
    /// The index it was chosen from, when the source was multi-platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    pub created: String,
}

/// An image with its manifest and config parsed.
#[derive(Clone, Debug)]
pub struct Image {
    pub entry: ImageEntry,
    pub manifest: Manifest,
    pub config_digest: Digest,
    pub config: ImageConfig,
}

impl Image {
    /// Compressed size of config and layers.
    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// Chain IDs of the layers, bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        for d in &self.config.rootfs.diff_ids {
            let next = match out.last() {
                None => d.clone(),
                Some(prev) => Digest::sha256_of(format!("{prev} {d}").as_bytes()),
            };
            out.push(next);
        }
        out
    }
}

/// A store-level lock (see the module docs).
pub struct StoreLock {
    _f: nix::fcntl::Flock<fs::File>,
}

pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl ImageStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        let content = ContentStore::open(root.join("content"))?;
        let snaps = root.join("snapshots");
        fs::create_dir_all(&snaps).map_err(|e| ImageError::io("create", &snaps, e))?;
        Ok(ImageStore { root, content })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// `images.lock` guards rewrites of `images.json` (always exclusive, held briefly);
    /// `content.lock` is held shared by pulls, imports and unpacks and exclusively by prune.
    fn lock(&self, file: &str, exclusive: bool) -> Result<StoreLock> {
        let p = self.root.join(file);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| ImageError::io("open", &p, e))?;
        let arg = if exclusive {
            nix::fcntl::FlockArg::LockExclusive
        } else {
            nix::fcntl::FlockArg::LockShared
        };
        let f = nix::fcntl::Flock::lock(f, arg)
            .map_err(|(_, e)| ImageError::io("flock", &p, e.into()))?;
        Ok(StoreLock { _f: f })
    }

    /// Held by pulls and imports while they add content.
    pub fn ingest_lock(&self) -> Result<StoreLock> {
        self.lock("content.lock", false)
    }

    fn read_entries(&self) -> Result<BTreeMap<String, ImageEntry>> {
        let p = self.root.join("images.json");
        match fs::read(&p) {
            Ok(b) => {
                let v: Vec<ImageEntry> = serde_json::from_slice(&b)
                    .map_err(|e| ImageError::invalid(p.display().to_string(), e.to_string()))?;
                Ok(v.into_iter().map(|e| (e.name.clone(), e)).collect())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::io("read", &p, e)),
        }
    }

    fn write_entries(&self, m: &BTreeMap<String, ImageEntry>) -> Result<()> {
        let p = self.root.join("images.json");
        let tmp = self
            .root
            .join(format!(".images.json.{}", uuid::Uuid::new_v4()));
        let v: Vec<&ImageEntry> = m.values().collect();
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&v).expect("entries serialize"),
        )
        .map_err(|e| ImageError::io("write", &tmp, e))?;
        fs::rename(&tmp, &p).map_err(|e| ImageError::io("rename", &p, e))
    }

    /// Names an image (replacing an earlier image of that name).
    pub fn set(
        &self,
        name: &str,
        digest: &Digest,
        media_type: &str,
        index: Option<Digest>,
    ) -> Result<Image> {
        let _l = self.lock("images.lock", true)?;
        let mut m = self.read_entries()?;
        let entry = ImageEntry {
            name: name.to_owned(),
            digest: digest.clone(),
            media_type: media_type.to_owned(),
            index,
            created: now_rfc3339(),
        };
        let img = self.load(entry.clone())?;
        m.insert(name.to_owned(), entry);
        self.write_entries(&m)?;
        Ok(img)
    }

    fn load(&self, entry: ImageEntry) -> Result<Image> {
        let raw = self.content.read(&entry.digest)?;
        let manifest = match parse_manifest(&raw, Some(&entry.media_type))? {
            AnyManifest::Image(m) => m,
            AnyManifest::Index(_) => {
                return Err(ImageError::invalid(
                    &entry.name,
                    "names an index, not an image manifest",
                ));
            }
        };
        let config_digest = manifest.config.digest.clone();
        let config: ImageConfig = serde_json::from_slice(&self.content.read(&config_digest)?)
            .map_err(|e| {
                ImageError::invalid(format!("image config {config_digest}"), e.to_string())
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::invalid(
                format!("image {}", entry.name),
                format!(
                    "{} layers but {} diff_ids in the config",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        Ok(Image {
            entry,
            manifest,
            config_digest,
            config,
        })
    }

    /// Every image, by name.
    pub fn list(&self) -> Result<Vec<Image>> {
        self.read_entries()?
            .into_values()
            .map(|e| self.load(e))
            .collect()
    }

    /// The image called exactly `name`.
    pub fn get(&self, name: &str) -> Result<Image> {
        let m = self.read_entries()?;
        match m.get(name) {
            Some(e) => self.load(e.clone()),
            None => Err(ImageError::NotFound {
                name: name.to_owned(),
                where_: "the local image store".into(),
            }),
        }
    }

    /// Looks an image up by name, by name with `:latest`, by its name qualified with
    /// `default_registry`, or by a prefix (≥ 6 hex digits) of its config digest (its ID).
    pub fn find(&self, name: &str, default_registry: Option<&str>) -> Result<Image> {
        let m = self.read_entries()?;
        let mut candidates = vec![name.to_owned()];
        if let Ok(r) = crate::reference::ImageRef::parse(name) {
            candidates.push(r.store_name());
            if let Some(reg) = default_registry {
                candidates.push(r.qualify(reg).store_name());
            }
        }
        for c in &candidates {
            if let Some(e) = m.get(c) {
                return self.load(e.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            for e in m.values() {
                let img = self.load(e.clone())?;
                if img.config_digest.hex().starts_with(hex)
                    || img.entry.digest.hex().starts_with(hex)
                {
                    return Ok(img);
                }
            }
        }
        Err(ImageError::NotFound {
            name: name.to_owned(),
            where_: "the local image store".into(),
        })
    }

    /// Gives `src`'s image the extra name `dst`.
    pub fn tag(&self, src: &Image, dst: &str) -> Result<Image> {
        self.set(
            dst,
            &src.entry.digest,
            &src.entry.media_type,
            src.entry.index.clone(),
        )
    }

    /// Removes a name, then content and snapshots no image uses any more.
    pub fn remove(&self, name: &str) -> Result<PruneReport> {
        {
            let _l = self.lock("images.lock", true)?;
            let mut m = self.read_entries()?;
            if m.remove(name).is_none() {
                return Err(ImageError::NotFound {
                    name: name.to_owned(),
                    where_: "the local image store".into(),
                });
            }
            self.write_entries(&m)?;
        }
        self.prune()
    }

    /// Removes content and snapshots that no named image references.
    pub fn prune(&self) -> Result<PruneReport> {
        let _l = self.lock("content.lock", true)?;
        let mut live: HashSet<Digest> = HashSet::new();
        let mut live_snaps: HashSet<String> = HashSet::new();
        for e in self.read_entries()?.into_values() {
            if let Some(i) = &e.index {
                live.insert(i.clone());
            }
            live.insert(e.digest.clone());
            if let Ok(img) = self.load(e) {
                live.insert(img.config_digest.clone());
                live.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
                live_snaps.extend(img.chain_ids().iter().map(snapshot_name));
            }
        }
        let mut report = PruneReport::default();
        for d in self.content.list()? {
            if !live.contains(&d) {
                report.bytes += self.content.size(&d).unwrap_or(0);
                self.content.remove(&d)?;
                report.blobs += 1;
            }
        }
        let snaps = self.root.join("snapshots");
        if let Ok(rd) = fs::read_dir(&snaps) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !live_snaps.contains(&n) {
                    fs::remove_dir_all(e.path())
                        .map_err(|err| ImageError::io("remove", e.path(), err))?;
                    report.snapshots += 1;
                }
            }
        }
        Ok(report)
    }

    /// The snapshot directory of a layer chain.
    pub fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(snapshot_name(chain_id))
    }

    /// Unpacks the image's layers (once) as overlayfs lower directories; returns them
    /// bottom first.
    pub fn ensure_snapshots(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let _l = self.lock("content.lock", false)?;
        let chain = image.chain_ids();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (i, layer) in image.manifest.layers.iter().enumerate() {
            let dir = self.snapshot_dir(&chain[i]);
            if !dir.is_dir() {
                let tmp = self
                    .root
                    .join("snapshots")
                    .join(format!(".tmp-{}", uuid::Uuid::new_v4()));
                fs::create_dir(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
                let mut lower = dirs.clone();
                lower.reverse();
                let opts = UnpackOptions {
                    mode: WhiteoutMode::Overlay,
                    allow_devices: false,
                    lower,
                    diff_id: Some(image.config.rootfs.diff_ids[i].clone()),
                };
                let f = self.content.open_blob(&layer.digest)?;
                if let Err(e) = apply_layer(
                    io::BufReader::with_capacity(1 << 20, f),
                    &tmp,
                    layer.digest.as_str(),
                    &opts,
                ) {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(e);
                }
                if let Err(e) = fs::rename(&tmp, &dir) {
                    let _ = fs::remove_dir_all(&tmp);
                    // Another process may have finished the same snapshot first.
                    if !dir.is_dir() {
                        return Err(ImageError::io("rename", &dir, e));
                    }
                }
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// What a container of this image needs: its snapshot directories as overlayfs
    /// `lowerdir`s (top-most first, as overlayfs wants them) and its runtime settings.
    pub fn prepare_rootfs(&self, image: &Image) -> Result<PreparedRootfs> {
        let mut lowerdirs = self.ensure_snapshots(image)?;
        lowerdirs.reverse();
        Ok(PreparedRootfs {
            lowerdirs,
            config: RuntimeConfig::from_image(&image.config),
        })
    }

    /// Applies all layers into one directory (for runtimes without overlayfs).
    pub fn flatten_into(&self, image: &Image, target: &Path) -> Result<()> {
        fs::create_dir_all(target).map_err(|e| ImageError::io("create", target, e))?;
        for (i, layer) in image.manifest.layers.iter().enumerate() {
            let opts = UnpackOptions {
                mode: WhiteoutMode::Flatten,
                diff_id: Some(image.config.rootfs.diff_ids[i].clone()),
                ..Default::default()
            };
            let f = self.content.open_blob(&layer.digest)?;
            apply_layer(
                io::BufReader::with_capacity(1 << 20, f),
                target,
                layer.digest.as_str(),
                &opts,
            )?;
        }
        Ok(())
    }
}

fn snapshot_name(chain_id: &Digest) -> String {
    format!("{}-{}", chain_id.algorithm(), chain_id.hex())
}

/// What pruning removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub blobs: usize,
    pub bytes: u64,
    pub snapshots: usize,
}
