//! Images for containers, from berth's image store: pulls (one at a time per reference),
//! lookups by any name the store knows, and the per-image runtime settings and overlay lower
//! directories, computed once per image digest and cached (DESIGN §10: no image-config
//! parsing or layer unpacking on the container start path).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_cri::{CriError, FsInfo, ImageInfo, ImageRef, RegistryAuth, Result};
use berth_image::{EndpointConfig, Image, ImageStore, NoProgress, PullPolicy, RuntimeConfig};

/// How the runtime reaches registries: the default for unqualified names, and the endpoint
/// settings (TLS, credentials) of a registry host.
pub type EndpointFn = Arc<dyn Fn(&str) -> EndpointConfig + Send + Sync>;

/// What a container of an image needs, prepared once.
#[derive(Debug)]
pub struct Prepared {
    pub image: ImageRef,
    /// Overlay lower directories, top-most first.
    pub lowerdirs: Vec<PathBuf>,
    pub config: RuntimeConfig,
}

pub struct Images {
    store: Arc<ImageStore>,
    default_registry: Option<String>,
    endpoint: EndpointFn,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn image_err(image: &str, e: impl std::fmt::Display) -> CriError {
    CriError::ImagePull {
        image: image.to_string(),
        message: e.to_string(),
    }
}

fn to_ref(reference: &str, img: &Image) -> ImageRef {
    ImageRef {
        reference: reference.to_string(),
        digest: img.entry.digest.to_string(),
        id: img.config_digest.to_string(),
        size_bytes: img.size(),
        user: img.config.config.user.clone().filter(|u| !u.is_empty()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CriError::internal(format!("blocking task: {e}")))
}

impl Images {
    pub fn new(store: ImageStore, default_registry: Option<String>, endpoint: EndpointFn) -> Self {
        Images {
            store: Arc::new(store),
            default_registry,
            endpoint,
            prepared: Mutex::new(HashMap::new()),
            pulls: Mutex::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }

    async fn find(&self, name: &str) -> Result<Option<Image>> {
        let store = self.store.clone();
        let (n, reg) = (name.to_string(), self.default_registry.clone());
        let found = blocking(move || store.find(&n, reg.as_deref())).await?;
        match found {
            Ok(img) => Ok(Some(img)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(CriError::internal(format!("image store: {e}"))),
        }
    }

    pub async fn status(&self, name: &str) -> Result<Option<ImageRef>> {
        Ok(self.find(name).await?.map(|img| to_ref(name, &img)))
    }

    /// Pulls `name` from its registry (the default registry for unqualified names).
    pub async fn pull(&self, name: &str, auth: Option<&RegistryAuth>) -> Result<ImageRef> {
        let lock = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            pulls.entry(name.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let default = match &self.default_registry {
            Some(r) => r.clone(),
            None => {
                let parsed = berth_image::ImageRef::parse(name).map_err(|e| image_err(name, e))?;
                if parsed.registry.is_none() {
                    return Err(image_err(
                        name,
                        "the name has no registry and this node knows no default registry",
                    ));
                }
                String::new()
            }
        };
        let endpoint = self.endpoint.clone();
        let auth = auth.cloned();
        let ep = move |host: &str| {
            let mut cfg = endpoint(host);
            match &auth {
                Some(RegistryAuth::Basic { username, password }) => {
                    cfg.username = Some(username.clone());
                    cfg.password = Some(password.clone());
                }
                Some(RegistryAuth::Bearer { token }) => {
                    cfg.username = Some("<token>".into());
                    cfg.password = Some(token.clone());
                }
                None => {}
            }
            cfg
        };
        // The pull runs to completion on a blocking thread driving this runtime's reactor: its
        // future holds higher-ranked closures that the compiler cannot prove `Send`.
        let (store, n, handle) = (
            self.store.clone(),
            name.to_string(),
            tokio::runtime::Handle::current(),
        );
        let img = blocking(move || {
            handle.block_on(berth_image::ensure_image(
                &store,
                &n,
                &default,
                PullPolicy::Always,
                ep,
                &NoProgress,
            ))
        })
        .await?
        .map_err(|e| image_err(name, e))?;
        // Unpack the layers now, so creating a container does not.
        self.prepare_image(name, img.clone()).await?;
        Ok(to_ref(name, &img))
    }

    async fn prepare_image(&self, name: &str, img: Image) -> Result<Arc<Prepared>> {
        let key = img.entry.digest.to_string();
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let store = self.store.clone();
        let reference = to_ref(name, &img);
        let rootfs = blocking(move || store.prepare_rootfs(&img))
            .await?
            .map_err(|e| CriError::internal(format!("unpacking image {name}: {e}")))?;
        let p = Arc::new(Prepared {
            image: reference,
            lowerdirs: rootfs.lowerdirs,
            config: rootfs.config,
        });
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, p.clone());
        Ok(p)
    }

    /// The prepared image a container of `name` uses; the image must be present.
    pub async fn prepared(&self, name: &str) -> Result<Arc<Prepared>> {
        let img = self.find(name).await?.ok_or_else(|| CriError::NotFound {
            kind: "image",
            id: name.to_string(),
        })?;
        let p = self.prepare_image(name, img).await?;
        if p.image.reference == name {
            return Ok(p);
        }
        Ok(Arc::new(Prepared {
            image: ImageRef {
                reference: name.to_string(),
                ..p.image.clone()
            },
            lowerdirs: p.lowerdirs.clone(),
            config: p.config.clone(),
        }))
    }

    pub async fn list(&self) -> Result<Vec<ImageInfo>> {
        let store = self.store.clone();
        let all = blocking(move || store.list())
            .await?
            .map_err(|e| CriError::internal(format!("image store: {e}")))?;
        let mut by_digest: HashMap<String, ImageInfo> = HashMap::new();
        for img in all {
            let e = by_digest
                .entry(img.entry.digest.to_string())
                .or_insert_with(|| ImageInfo {
                    id: img.config_digest.to_string(),
                    digest: img.entry.digest.to_string(),
                    names: vec![],
                    size_bytes: img.size(),
                });
            e.names.push(img.entry.name.clone());
        }
        let mut v: Vec<ImageInfo> = by_digest.into_values().collect();
        v.sort_by(|a, b| a.names.cmp(&b.names));
        Ok(v)
    }

    /// Removes every name of the image `name` refers to, then unused content.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let Some(img) = self.find(name).await? else {
            return Ok(());
        };
        let digest = img.entry.digest.clone();
        let store = self.store.clone();
        blocking(
            move || -> std::result::Result<(), berth_image::ImageError> {
                for other in store.list()? {
                    if other.entry.digest == digest {
                        match store.remove(&other.entry.name) {
                            Ok(_) => {}
                            Err(e) if e.is_not_found() => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(())
            },
        )
        .await?
        .map_err(|e| CriError::internal(format!("removing image {name}: {e}")))?;
        self.prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(img.entry.digest.as_str());
        Ok(())
    }

    pub async fn fs_info(&self) -> Result<FsInfo> {
        let root = self.root();
        let used = self.list().await?.iter().map(|i| i.size_bytes).sum();
        let st = nix::sys::statvfs::statvfs(&root)
            .map_err(|e| CriError::internal(format!("statvfs {}: {e}", root.display())))?;
        Ok(FsInfo {
            path: root,
            capacity_bytes: st.blocks() * st.fragment_size(),
            available_bytes: st.blocks_available() * st.fragment_size(),
            used_bytes: used,
            inodes: st.files(),
            inodes_free: st.files_available(),
        })
    }
}
