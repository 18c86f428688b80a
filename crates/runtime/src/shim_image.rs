//! The embedded shim image (see `shim/main.rs`): a static executable of a few kilobytes that
//! stays resident beside each container. It is written once under the runtime root, named by
//! its content hash, and exec'd through a descriptor.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, RuntimeError};

static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-shim"));

/// Path of the shim image under `root`.
pub fn path(root: &Path) -> PathBuf {
    let digest = Sha256::digest(IMAGE);
    root.join(format!(".shim-{}", hex::encode(&digest[..8])))
}

/// Opens the shim image for `execveat`, writing it first if this root has none yet.
pub(crate) fn open(root: &Path) -> Result<OwnedFd> {
    let p = path(root);
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(p)
            .map(OwnedFd::from)
    };
    match open(&p) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RuntimeError::io("open", &p, e)),
    }
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::io("create", root, e))?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| RuntimeError::io("create", &tmp, e))?;
    f.write_all(IMAGE)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(|e| RuntimeError::io("chmod", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &p).map_err(|e| RuntimeError::io("rename", &tmp, e))?;
    open(&p).map_err(|e| RuntimeError::io("open", &p, e))
}

/// Size of the embedded image in bytes.
pub fn image_size() -> usize {
    IMAGE.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_image_is_a_small_static_elf() {
        let img = super::IMAGE;
        assert_eq!(&img[..4], b"\x7fELF");
        assert!(img.len() < 64 * 1024, "shim image is {} bytes", img.len());
    }
}
