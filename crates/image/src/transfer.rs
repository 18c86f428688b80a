//! Pull (registry → store) and push (store → registry), with progress callbacks.
//!
//! Pull resolves an index to this node's platform, skips blobs the store already holds
//! (dedup across images), fetches up to three layers at once, and resumes interrupted
//! downloads from the partial file with an HTTP `Range`. Every blob is verified against its
//! digest before it enters the store.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::client::RegistryClient;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::model::{AnyManifest, Descriptor, Platform, parse_manifest};
use crate::reference::ImageRef;
use crate::store::{Image, ImageStore};

const CONCURRENT_LAYERS: usize = 3;

/// Receives transfer progress (the CLI draws bars; the agent logs).
pub trait Progress: Send + Sync {
    fn start(&self, id: &str, total: u64);
    fn advance(&self, id: &str, bytes: u64);
    fn finish(&self, id: &str, note: &str);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: &str, _: u64) {}
    fn finish(&self, _: &str, _: &str) {}
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

async fn fetch_blob(
    store: &ImageStore,
    client: &RegistryClient,
    repo: &str,
    desc: &Descriptor,
    progress: &dyn Progress,
) -> Result<()> {
    let d = &desc.digest;
    let id = short(d);
    if store.content().has(d) {
        progress.finish(&id, "already present");
        return Ok(());
    }
    progress.start(&id, desc.size);
    let path = store.content().ingest_path(d);
    let mut offset = store.content().partial_len(d);
    if offset > desc.size {
        offset = 0;
    }
    let (mut stream, resumed) = client.get_blob(repo, d, offset).await?;
    let mut f = if resumed && offset > 0 {
        progress.advance(&id, offset);
        tokio::fs::OpenOptions::new().append(true).open(&path).await
    } else {
        tokio::fs::File::create(&path).await
    }
    .map_err(|e| ImageError::io("open", &path, e))?;
    let mut got = if resumed { offset } else { 0 };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ImageError::Http {
            registry: client.host().to_owned(),
            source: e,
        })?;
        got += chunk.len() as u64;
        if got > desc.size {
            drop(f);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(ImageError::invalid(
                format!("blob {d}"),
                format!("registry sent more than the declared {} bytes", desc.size),
            ));
        }
        f.write_all(&chunk)
            .await
            .map_err(|e| ImageError::io("write", &path, e))?;
        progress.advance(&id, chunk.len() as u64);
    }
    f.flush()
        .await
        .map_err(|e| ImageError::io("write", &path, e))?;
    drop(f);
    let content = store.content().clone();
    let dd = d.clone();
    tokio::task::spawn_blocking(move || content.commit_ingest(&dd))
        .await
        .expect("commit task")?;
    progress.finish(&id, "done");
    Ok(())
}

/// Pulls `r` (a qualified reference) into the store under `r.store_name()`.
pub async fn pull(
    store: &ImageStore,
    client: &RegistryClient,
    r: &ImageRef,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<Image> {
    let _ingest = store.ingest_lock()?;
    let repo = &r.repository;
    let (body, mt, digest) = client.get_manifest(repo, &r.reference()).await?;
    let (mut body, mut mt, mut digest, mut index) = (body, mt, digest, None);
    if let AnyManifest::Index(idx) = parse_manifest(&body, Some(&mt))? {
        let choice = idx
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
            })
            .or_else(|| {
                (idx.manifests.len() == 1 && idx.manifests[0].platform.is_none())
                    .then(|| &idx.manifests[0])
            })
            .ok_or_else(|| ImageError::PlatformMissing {
                name: r.to_string(),
                platform: platform.to_string(),
                available: idx
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?
            .clone();
        store.content().write(&body, Some(&digest))?;
        index = Some(digest);
        let (b, m, d) = client.get_manifest(repo, choice.digest.as_str()).await?;
        (body, mt, digest) = (
            b,
            if m.is_empty() {
                choice.media_type.clone()
            } else {
                m
            },
            d,
        );
    }
    let manifest = match parse_manifest(&body, Some(&mt))? {
        AnyManifest::Image(m) => m,
        AnyManifest::Index(_) => {
            return Err(ImageError::invalid(
                r.to_string(),
                "nested index where an image manifest was expected",
            ));
        }
    };
    if mt.is_empty() {
        mt = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| crate::model::OCI_MANIFEST.to_owned());
    }
    fetch_blob(store, client, repo, &manifest.config, progress).await?;
    futures::stream::iter(manifest.layers.iter())
        .map(|l| fetch_blob(store, client, repo, l, progress))
        .buffer_unordered(CONCURRENT_LAYERS)
        .try_collect::<Vec<()>>()
        .await?;
    store.content().write(&body, Some(&digest))?;
    store.set(&r.store_name(), &digest, &mt, index)
}

/// Pushes a stored image to `target` (a qualified reference with a tag or digest); returns
/// the manifest digest.
pub async fn push(
    store: &ImageStore,
    client: &RegistryClient,
    image: &Image,
    target: &ImageRef,
    progress: Arc<dyn Progress>,
) -> Result<Digest> {
    let repo = &target.repository;
    let blobs: Vec<&Descriptor> = std::iter::once(&image.manifest.config)
        .chain(image.manifest.layers.iter())
        .collect();
    futures::stream::iter(blobs)
        .map(|desc| {
            let progress = progress.clone();
            async move {
                let d = &desc.digest;
                let id = short(d);
                if client.has_blob(repo, d).await? {
                    progress.finish(&id, "already exists");
                    return Ok(());
                }
                let path = store.content().path(d);
                let size = std::fs::metadata(&path)
                    .map_err(|e| ImageError::io("stat", &path, e))?
                    .len();
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| ImageError::io("open", &path, e))?;
                progress.start(&id, size);
                let p2 = progress.clone();
                let id2 = id.clone();
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).inspect(move |c| {
                        if let Ok(c) = c {
                            p2.advance(&id2, c.len() as u64);
                        }
                    });
                client
                    .push_blob(repo, d, size, None, move || {
                        reqwest::Body::wrap_stream(stream)
                    })
                    .await?;
                progress.finish(&id, "pushed");
                Ok::<_, ImageError>(())
            }
        })
        .buffer_unordered(CONCURRENT_LAYERS)
        .try_collect::<Vec<()>>()
        .await?;
    let body = store.content().read(&image.entry.digest)?;
    let reference = match (&target.tag, &target.digest) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_owned(),
    };
    client
        .put_manifest(repo, &reference, &image.entry.media_type, body.into())
        .await
}
