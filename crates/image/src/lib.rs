//! berth's node image store: the OCI image model, a content store by digest, a client for
//! any OCI registry (token and Basic auth, resumable downloads, uploads with mounts), safe
//! layer unpacking into snapshot directories (overlayfs lowerdirs), import from OCI
//! layouts/archives, Docker archives and plain rootfs tars, and export to OCI layouts.
//!
//! Depends on no other berth crate (the registry server is a separate crate; this one only
//! speaks the protocol as a client). What the node agent needs is [`ImageService`]-shaped:
//! [`ensure_image`] ("pull unless present") and [`ImageStore::prepare_rootfs`] ("snapshot
//! directories + entrypoint/cmd/env/workdir/user for a container").
//!
//! Main decisions: manifests are kept as the exact bytes received so digests stay stable;
//! every blob is verified before it enters the store and partial downloads are kept for
//! resumption; layers unpack once per chain ID into their own directory with overlayfs
//! whiteouts, so containers share them as read-only lowerdirs; unpacking refuses anything
//! that could write outside the target (see `unpack.rs`).

mod archive;
mod client;
mod content;
mod digest;
mod error;
mod model;
mod reference;
mod runtime;
mod store;
mod transfer;
mod unpack;

pub use archive::{export, import};
pub use client::{EndpointConfig, RegistryClient};
pub use content::ContentStore;
pub use digest::{Digest, Hasher};
pub use error::{ImageError, Result};
pub use model::{
    AnyManifest, ContainerConfig, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LIST, DOCKER_MANIFEST,
    Descriptor, ImageConfig, Index, MANIFEST_ACCEPT, Manifest, OCI_CONFIG, OCI_INDEX,
    OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST, Platform, RootFs, parse_manifest,
};
pub use reference::ImageRef;
pub use runtime::{PreparedRootfs, RuntimeConfig};
pub use store::{Image, ImageEntry, ImageStore, PruneReport};
pub use transfer::{NoProgress, Progress, pull, push};
pub use unpack::{UnpackOptions, UnpackReport, WhiteoutMode, apply_layer, decompress};

/// When [`ensure_image`] contacts the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Makes sure `reference` (qualified with `default_registry` when unqualified) is in the
/// store, pulling it according to `policy`; what a node agent calls before creating a
/// container.
pub async fn ensure_image(
    store: &ImageStore,
    reference: &str,
    default_registry: &str,
    policy: PullPolicy,
    endpoint: impl Fn(&str) -> EndpointConfig,
    progress: &dyn Progress,
) -> Result<Image> {
    let r = ImageRef::parse(reference)?.qualify(default_registry);
    if policy != PullPolicy::Always
        && let Ok(img) = store.get(&r.store_name())
    {
        return Ok(img);
    }
    if policy == PullPolicy::Never {
        return Err(ImageError::NotFound {
            name: r.to_string(),
            where_: "the local image store (pull policy Never)".into(),
        });
    }
    let client = RegistryClient::new(endpoint(r.registry.as_deref().unwrap_or(default_registry)))?;
    pull(store, &client, &r, &Platform::host(), progress).await
}
