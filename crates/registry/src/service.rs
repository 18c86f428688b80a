//! The repository service: the registry's operations on blobs, uploads, manifests, tags and
//! referrers, independent of HTTP. It combines the blob driver (content) with the
//! repository metadata (what each repository may serve) and holds the lock that keeps
//! garbage collection and pushes apart (see `gc.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::digest::{Algorithm, Digest};
use crate::driver::{BlobDriver, BlobRead, BlobStat, BlobWriter};
use crate::error::{RegistryError, Result};
use crate::manifest::{self, Reference};
use crate::meta::Meta;
use crate::names::validate_tag;
use crate::uploads::{Session, Uploads};

/// Largest manifest kept in the in-memory manifest cache, and the cache's total budget.
const CACHE_ENTRY_MAX: usize = 256 * 1024;
const CACHE_BUDGET: usize = 64 * 1024 * 1024;

/// Tunables of the service.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub delete_enabled: bool,
    pub max_manifest_bytes: u64,
    pub chunk_min_length: u64,
    pub gc_grace: Duration,
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug)]
pub(crate) enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    pub(crate) fn parse(s: &str) -> Result<ManifestRef> {
        if s.contains(':') {
            Ok(ManifestRef::Digest(s.parse()?))
        } else {
            validate_tag(s)?;
            Ok(ManifestRef::Tag(s.to_owned()))
        }
    }
}

#[derive(Default)]
struct ManifestCache {
    entries: HashMap<Digest, Bytes>,
    bytes: usize,
}

pub(crate) struct Service {
    pub driver: Arc<dyn BlobDriver>,
    pub meta: Meta,
    pub uploads: Uploads,
    pub settings: Settings,
    /// Pushes that make content referenced (manifest PUT, upload commit, mount) hold it
    /// shared; garbage collection's sweep holds it exclusively.
    pub gc_lock: tokio::sync::RwLock<()>,
    /// Blobs whose existence a client checked recently (it may skip uploading them and
    /// reference them from a manifest soon): garbage collection spares them.
    touched: Mutex<HashMap<Digest, Instant>>,
    cache: Mutex<ManifestCache>,
}

/// Body frames are coalesced into writes of about this size (frames of chunked uploads are
/// often a few KiB; one channel hand-off per frame would cost more than the copy).
const COALESCE: usize = 256 * 1024;

/// Streams `body` into `writer`; returns how many bytes were written. Bytes received before
/// an error are written too (the session's offset then tells the client where to resume).
pub(crate) async fn copy_body(body: Body, writer: &mut dyn BlobWriter) -> Result<u64> {
    let mut body = body;
    let mut n = 0u64;
    let mut pending = bytes::BytesMut::new();
    let result = loop {
        let Some(frame) = body.frame().await else {
            break Ok(());
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                break Err(RegistryError::BodyInvalid {
                    reason: format!("reading the request body: {e}"),
                });
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        n += data.len() as u64;
        if pending.is_empty() && data.len() >= COALESCE {
            writer.write(data).await?;
            continue;
        }
        pending.extend_from_slice(&data);
        if pending.len() >= COALESCE {
            writer.write(pending.split().freeze()).await?;
        }
    };
    if !pending.is_empty() {
        writer.write(pending.freeze()).await?;
    }
    result.map(|()| n)
}

impl Service {
    pub(crate) fn new(
        driver: Arc<dyn BlobDriver>,
        meta: Meta,
        uploads: Uploads,
        settings: Settings,
    ) -> Service {
        Service {
            driver,
            meta,
            uploads,
            settings,
            gc_lock: tokio::sync::RwLock::new(()),
            touched: Mutex::new(HashMap::new()),
            cache: Mutex::new(ManifestCache::default()),
        }
    }

    fn touch(&self, d: &Digest) {
        let mut t = self.touched.lock().expect("touched lock");
        if t.len() > 100_000 {
            let grace = self.settings.gc_grace;
            t.retain(|_, at| at.elapsed() < grace);
        }
        t.insert(d.clone(), Instant::now());
    }

    pub(crate) fn recently_touched(&self, d: &Digest, within: Duration) -> bool {
        self.touched
            .lock()
            .expect("touched lock")
            .get(d)
            .is_some_and(|t| t.elapsed() < within)
    }

    /// Size of a blob the repository may serve.
    pub(crate) async fn blob_stat(&self, repo: &str, d: &Digest) -> Result<BlobStat> {
        let unknown = || RegistryError::BlobUnknown {
            digest: d.to_string(),
        };
        if !self.meta.blob_linked(repo, d) {
            return Err(unknown());
        }
        let st = self.driver.stat(d).await?.ok_or_else(unknown)?;
        self.touch(d);
        Ok(st)
    }

    pub(crate) async fn blob_reader(&self, d: &Digest, offset: u64) -> Result<BlobRead> {
        self.driver.reader(d, offset).await
    }

    pub(crate) async fn delete_blob(&self, repo: &str, d: &Digest) -> Result<()> {
        self.require_delete("blob delete")?;
        if !self.meta.unlink_blob(repo, d)? {
            return Err(RegistryError::BlobUnknown {
                digest: d.to_string(),
            });
        }
        Ok(())
    }

    fn require_delete(&self, what: &str) -> Result<()> {
        if self.settings.delete_enabled {
            Ok(())
        } else {
            Err(RegistryError::Unsupported {
                operation: what.to_owned(),
            })
        }
    }

    /// Links `d` from repository `from` into `repo`; `false` when `from` does not have it.
    pub(crate) async fn mount(&self, repo: &str, from: &str, d: &Digest) -> Result<bool> {
        let _g = self.gc_lock.read().await;
        if !self.meta.blob_linked(from, d) || self.driver.stat(d).await?.is_none() {
            return Ok(false);
        }
        self.meta.link_blob(repo, d)?;
        Ok(true)
    }

    pub(crate) async fn start_upload(&self, repo: &str) -> Result<String> {
        let w = self.driver.writer().await?;
        Ok(self.uploads.create(repo, w))
    }

    /// Commits the session's data as `digest` and links it into the repository.
    pub(crate) async fn finish_upload(
        &self,
        id: &str,
        session: &mut Session,
        digest: &Digest,
    ) -> Result<BlobStat> {
        let writer = session
            .writer
            .take()
            .ok_or_else(|| RegistryError::UploadUnknown { id: id.to_owned() })?;
        self.uploads.remove(id);
        self.commit(&session.repo.clone(), writer, digest).await
    }

    /// Commits a writer as `digest` and links it into `repo`.
    pub(crate) async fn commit(
        &self,
        repo: &str,
        writer: Box<dyn BlobWriter>,
        digest: &Digest,
    ) -> Result<BlobStat> {
        let _g = self.gc_lock.read().await;
        let st = writer.commit(digest).await?;
        self.meta.link_blob(repo, digest)?;
        Ok(st)
    }

    pub(crate) async fn put_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
        content_type: Option<&str>,
        extra_tags: &[String],
        body: Bytes,
    ) -> Result<(Digest, Option<Digest>)> {
        if body.len() as u64 > self.settings.max_manifest_bytes {
            return Err(RegistryError::ManifestTooLarge {
                size: body.len() as u64,
                limit: self.settings.max_manifest_bytes,
            });
        }
        let parsed = manifest::parse(&body, content_type)?;
        let digest = match reference {
            ManifestRef::Digest(d) => {
                let actual = Digest::of(d.algorithm(), &body);
                if &actual != d {
                    return Err(RegistryError::DigestInvalid {
                        digest: d.to_string(),
                        reason: format!("the manifest's digest is {actual}"),
                    });
                }
                actual
            }
            ManifestRef::Tag(_) => Digest::of(Algorithm::Sha256, &body),
        };
        for t in extra_tags {
            validate_tag(t)?;
        }
        let _g = self.gc_lock.read().await;
        let mut missing = Vec::new();
        for r in &parsed.references {
            let present = match r {
                Reference::Blob(d) => {
                    self.meta.blob_linked(repo, d) && self.driver.stat(d).await?.is_some()
                }
                Reference::Manifest(d) => self.meta.manifest_media_type(repo, d)?.is_some(),
            };
            if !present {
                let (Reference::Blob(d) | Reference::Manifest(d)) = r;
                missing.push(d.to_string());
            }
        }
        if !missing.is_empty() {
            return Err(RegistryError::ManifestBlobUnknown {
                name: repo.to_owned(),
                missing,
            });
        }
        if self.driver.stat(&digest).await?.is_none() {
            self.driver.write_small(body.clone(), &digest).await?;
        }
        self.meta.link_manifest(repo, &digest, &parsed.media_type)?;
        if let ManifestRef::Tag(t) = reference {
            self.meta.set_tag(repo, t, &digest)?;
        }
        for t in extra_tags {
            self.meta.set_tag(repo, t, &digest)?;
        }
        if let Some(subject) = &parsed.subject {
            let desc = parsed.referrer_descriptor(&digest, body.len() as u64);
            self.meta.add_referrer(repo, subject, &digest, &desc)?;
        }
        self.cache_put(&digest, &body);
        Ok((digest, parsed.subject))
    }

    fn cache_put(&self, d: &Digest, body: &Bytes) {
        if body.len() > CACHE_ENTRY_MAX {
            return;
        }
        let mut c = self.cache.lock().expect("cache lock");
        if c.bytes + body.len() > CACHE_BUDGET {
            c.entries.clear();
            c.bytes = 0;
        }
        if c.entries.insert(d.clone(), body.clone()).is_none() {
            c.bytes += body.len();
        }
    }

    /// Resolves a reference to a digest linked in the repository.
    pub(crate) fn resolve(&self, repo: &str, reference: &ManifestRef) -> Result<(Digest, String)> {
        let unknown = || RegistryError::ManifestUnknown {
            name: repo.to_owned(),
            reference: match reference {
                ManifestRef::Tag(t) => t.clone(),
                ManifestRef::Digest(d) => d.to_string(),
            },
        };
        let d = match reference {
            ManifestRef::Tag(t) => self.meta.tag(repo, t)?.ok_or_else(unknown)?,
            ManifestRef::Digest(d) => d.clone(),
        };
        let mt = self
            .meta
            .manifest_media_type(repo, &d)?
            .ok_or_else(unknown)?;
        Ok((d, mt))
    }

    pub(crate) async fn get_manifest(
        &self,
        repo: &str,
        reference: &ManifestRef,
    ) -> Result<(Digest, String, Bytes)> {
        let (d, mt) = self.resolve(repo, reference)?;
        if let Some(b) = self
            .cache
            .lock()
            .expect("cache lock")
            .entries
            .get(&d)
            .cloned()
        {
            return Ok((d, mt, b));
        }
        let body = self
            .driver
            .read_small(&d, self.settings.max_manifest_bytes)
            .await?;
        self.cache_put(&d, &body);
        Ok((d, mt, body))
    }

    pub(crate) async fn delete_manifest(&self, repo: &str, reference: &ManifestRef) -> Result<()> {
        match reference {
            ManifestRef::Tag(t) => {
                self.require_delete("tag delete")?;
                if !self.meta.delete_tag(repo, t)? {
                    return Err(RegistryError::ManifestUnknown {
                        name: repo.into(),
                        reference: t.clone(),
                    });
                }
            }
            ManifestRef::Digest(d) => {
                self.require_delete("manifest delete")?;
                if self.meta.manifest_media_type(repo, d)?.is_none() {
                    return Err(RegistryError::ManifestUnknown {
                        name: repo.into(),
                        reference: d.to_string(),
                    });
                }
                if let Ok(body) = self
                    .driver
                    .read_small(d, self.settings.max_manifest_bytes)
                    .await
                    && let Ok(p) = manifest::parse(&body, None)
                    && let Some(subject) = p.subject
                {
                    self.meta.remove_referrer(repo, &subject, d)?;
                }
                for t in self.meta.tags(repo)?.unwrap_or_default() {
                    if self.meta.tag(repo, &t)?.as_ref() == Some(d) {
                        self.meta.delete_tag(repo, &t)?;
                    }
                }
                self.meta.unlink_manifest(repo, d)?;
            }
        }
        Ok(())
    }

    /// Referrers of `subject`, optionally only those of `artifact_type`.
    pub(crate) fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        let mut all = self.meta.referrers(repo, subject)?;
        // Drop entries whose manifest was deleted meanwhile.
        all.retain(|v| {
            v.get("digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse::<Digest>().ok())
                .is_some_and(|d| matches!(self.meta.manifest_media_type(repo, &d), Ok(Some(_))))
        });
        if let Some(at) = artifact_type {
            all.retain(|v| v.get("artifactType").and_then(|a| a.as_str()) == Some(at));
        }
        Ok(all)
    }
}
