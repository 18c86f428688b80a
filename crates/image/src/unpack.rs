//! Safe application of layer tarballs (plain, gzip or zstd — detected from magic bytes) to
//! a directory.
//!
//! Every entry name is checked before anything is written: absolute names and `..`
//! components are rejected, no parent of an entry may be a symlink (nothing is ever written
//! through a link), symlink targets may not climb above the root, hardlinks must name an
//! earlier entry inside the root, device nodes are refused unless allowed, and an entry
//! whose data is shorter than its header claims fails. Errors name the layer and the entry.
//!
//! Two whiteout modes: `Overlay` keeps each layer in its own directory and converts
//! `.wh.<name>` into overlayfs whiteouts (0/0 character devices) and `.wh..wh..opq` into the
//! `trusted.overlay.opaque` xattr, so snapshots stack as overlayfs lowerdirs; `Flatten`
//! applies the deletions to one directory (for runtimes without overlayfs and for export).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::error::{ImageError, Result};

/// How whiteouts are represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhiteoutMode {
    Overlay,
    Flatten,
}

/// Options for [`apply_layer`].
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    pub mode: WhiteoutMode,
    /// Allow character and block devices (other than overlay whiteouts).
    pub allow_devices: bool,
    /// Lower layers (top first), where hardlink targets from earlier layers are found in
    /// overlay mode.
    pub lower: Vec<PathBuf>,
    /// Check the uncompressed stream against this digest (the image config's diff ID).
    pub diff_id: Option<Digest>,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            mode: WhiteoutMode::Flatten,
            allow_devices: false,
            lower: Vec::new(),
            diff_id: None,
        }
    }
}

/// What applying a layer did.
#[derive(Clone, Debug, Default)]
pub struct UnpackReport {
    pub entries: u64,
    pub diff_id: Option<Digest>,
}

/// Wraps a possibly compressed layer stream in the matching decompressor.
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(1 << 20, r);
    let head = br.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(br)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(br)?))
    } else {
        Ok(Box::new(br))
    }
}

fn unsafe_entry(layer: &str, entry: &str, reason: impl Into<String>) -> ImageError {
    ImageError::UnsafeEntry {
        layer: layer.to_owned(),
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

/// Normalises an archive path to components below the root: strips `./` and a leading `/`
/// only when `allow_absolute`; rejects `..`.
fn clean_path(raw: &[u8], allow_absolute: bool) -> std::result::Result<PathBuf, &'static str> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir if allow_absolute => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
            Component::ParentDir => return Err("path contains '..'"),
        }
    }
    Ok(out)
}

/// Whether a relative symlink target placed at `link` (relative to the root) climbs above
/// the root.
fn symlink_escapes(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        // Resolved against the container's root at run time, never the host's.
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Creates the parents of `rel` under `root`, refusing to pass through symlinks.
fn ensure_parents(root: &Path, rel: &Path) -> std::result::Result<(), String> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "parent {} is a symlink; refusing to write through it",
                    cur.display()
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&cur).map_err(|e| e.to_string())?;
                fs::create_dir(&cur).map_err(|e| e.to_string())?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let n = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: both strings are valid NUL-terminated C strings and value is a valid slice for
    // the given length; lsetxattr does not retain the pointers.
    let rc = unsafe {
        nix::libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Applies one layer stream to `target`.
pub fn apply_layer(
    reader: impl Read,
    target: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<UnpackReport> {
    let decompressed = decompress(reader)
        .map_err(|e| unsafe_entry(layer, "", format!("reading the layer: {e}")))?;
    let mut hashing = HashingReader {
        inner: decompressed,
        hasher: opts
            .diff_id
            .as_ref()
            .map(|d| d.hasher())
            .unwrap_or_else(|| crate::digest::Hasher::new("sha256")),
        read: 0,
    };
    let mut report = UnpackReport::default();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive
            .entries()
            .map_err(|e| unsafe_entry(layer, "", format!("not a tar archive: {e}")))?;
        let mut created: HashSet<PathBuf> = HashSet::new();
        for entry in entries {
            let mut entry =
                entry.map_err(|e| unsafe_entry(layer, "", format!("corrupt archive: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            apply_entry(&mut entry, target, layer, &name, &raw, opts, &mut created)?;
            report.entries += 1;
        }
    }
    // Read the rest (end-of-archive blocks) so the hash covers the whole stream.
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| unsafe_entry(layer, "", format!("reading the layer: {e}")))?;
    let actual = hashing.hasher.finish();
    if let Some(expected) = &opts.diff_id
        && &actual != expected
    {
        return Err(ImageError::DigestMismatch {
            what: format!("uncompressed layer {layer}"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    report.diff_id = Some(actual);
    Ok(report)
}

fn apply_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    target: &Path,
    layer: &str,
    name: &str,
    raw: &[u8],
    opts: &UnpackOptions,
    created: &mut HashSet<PathBuf>,
) -> Result<()> {
    let bad = |reason: String| unsafe_entry(layer, name, reason);
    let rel = clean_path(raw, false).map_err(|r| bad(r.into()))?;
    if rel.as_os_str().is_empty() {
        return Ok(()); // the root itself
    }
    ensure_parents(target, &rel).map_err(bad)?;
    let dest = target.join(&rel);
    let file_name = rel
        .file_name()
        .map(|f| f.as_bytes().to_vec())
        .unwrap_or_default();
    let parent_rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();

    // Whiteouts.
    if file_name == b".wh..wh..opq" {
        let dir = target.join(&parent_rel);
        match opts.mode {
            WhiteoutMode::Overlay => {
                set_xattr(&dir, "trusted.overlay.opaque", b"y")
                    .map_err(|e| bad(format!("marking opaque: {e}")))?;
            }
            WhiteoutMode::Flatten => {
                if let Ok(rd) = fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        let child_rel = parent_rel.join(e.file_name());
                        if !created.contains(&child_rel) {
                            remove_any(&e.path())
                                .map_err(|e| bad(format!("applying opaque whiteout: {e}")))?;
                        }
                    }
                }
            }
        }
        return Ok(());
    }
    if let Some(hidden) = file_name.strip_prefix(b".wh.") {
        let victim_rel = parent_rel.join(OsStr::from_bytes(hidden));
        let victim = target.join(&victim_rel);
        remove_any(&victim).map_err(|e| bad(format!("applying whiteout: {e}")))?;
        if opts.mode == WhiteoutMode::Overlay {
            nix::sys::stat::mknod(
                &victim,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .map_err(|e| bad(format!("creating overlay whiteout: {e}")))?;
        }
        return Ok(());
    }

    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
    let existing = fs::symlink_metadata(&dest).ok();
    if !(kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) {
        remove_any(&dest).map_err(|e| bad(format!("replacing existing entry: {e}")))?;
    }
    match kind {
        tar::EntryType::Directory => {
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                fs::create_dir(&dest).map_err(|e| bad(e.to_string()))?;
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                .map_err(|e| bad(e.to_string()))?;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let declared = entry.size();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&dest)
                .map_err(|e| bad(e.to_string()))?;
            let n = io::copy(entry, &mut f).map_err(|e| {
                bad(format!(
                    "data shorter than the declared {declared} bytes or unreadable: {e}"
                ))
            })?;
            if n != declared {
                return Err(bad(format!(
                    "data is {n} bytes, header declares {declared}"
                )));
            }
            if let Ok(Some(mtime)) = header
                .mtime()
                .map(|m| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(m)))
            {
                let _ = f.set_modified(mtime);
            }
            drop(f);
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                .map_err(|e| bad(e.to_string()))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| bad("symlink without a target".into()))?
                .into_owned();
            let t = Path::new(OsStr::from_bytes(&link));
            if symlink_escapes(&rel, t) {
                return Err(bad(format!(
                    "symlink target {} escapes the root",
                    t.display()
                )));
            }
            std::os::unix::fs::symlink(t, &dest).map_err(|e| bad(e.to_string()))?;
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name_bytes()
                .ok_or_else(|| bad("hardlink without a target".into()))?
                .into_owned();
            let trel =
                clean_path(&link, false).map_err(|r| bad(format!("hardlink target: {r}")))?;
            if trel.as_os_str().is_empty() {
                return Err(bad("hardlink to the root".into()));
            }
            let mut source = None;
            for base in std::iter::once(target).chain(opts.lower.iter().map(PathBuf::as_path)) {
                ensure_no_symlink_parents(base, &trel)
                    .map_err(|r| bad(format!("hardlink target: {r}")))?;
                let cand = base.join(&trel);
                if let Ok(m) = fs::symlink_metadata(&cand) {
                    if m.is_dir() {
                        return Err(bad("hardlink to a directory".into()));
                    }
                    source = Some((base == target, cand));
                    break;
                }
            }
            let Some((same_dir, src)) = source else {
                return Err(bad(format!(
                    "hardlink target {} does not exist",
                    trel.display()
                )));
            };
            if same_dir {
                fs::hard_link(&src, &dest).map_err(|e| bad(e.to_string()))?;
            } else {
                // The target lives in a lower snapshot: copy it up.
                fs::copy(&src, &dest).map_err(|e| bad(e.to_string()))?;
            }
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            if !opts.allow_devices {
                return Err(bad("device nodes are not allowed".into()));
            }
            let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
            let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
            let flag = if kind == tar::EntryType::Char {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknod(
                &dest,
                flag,
                nix::sys::stat::Mode::from_bits_truncate(mode),
                nix::sys::stat::makedev(major, minor),
            )
            .map_err(|e| bad(e.to_string()))?;
        }
        tar::EntryType::Fifo => {
            nix::unistd::mkfifo(&dest, nix::sys::stat::Mode::from_bits_truncate(mode))
                .map_err(|e| bad(e.to_string()))?;
        }
        other => return Err(bad(format!("unsupported entry type {other:?}"))),
    }
    if is_root() {
        nix::unistd::fchownat(
            None,
            &dest,
            Some(nix::unistd::Uid::from_raw(uid as u32)),
            Some(nix::unistd::Gid::from_raw(gid as u32)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| bad(format!("chown: {e}")))?;
        if kind != tar::EntryType::Symlink && mode & 0o7000 != 0 {
            // chown clears set-id bits: restore them.
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    created.insert(rel);
    Ok(())
}

fn ensure_no_symlink_parents(root: &Path, rel: &Path) -> std::result::Result<(), String> {
    let mut cur = root.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        if fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("parent {} is a symlink", cur.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: tar::EntryType,
        link: Option<&[u8]>,
        data: &[u8],
    ) {
        let mut h = header(kind, data.len() as u64);
        // Write names straight into the header so unsafe names are not sanitised.
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn apply(data: &[u8], dir: &Path, mode: WhiteoutMode) -> Result<UnpackReport> {
        apply_layer(
            data,
            dir,
            "test-layer",
            &UnpackOptions {
                mode,
                ..Default::default()
            },
        )
    }

    #[test]
    fn unpacks_files_dirs_links() {
        let t = tar_of(|b| {
            raw_entry(b, b"./bin/", tar::EntryType::Directory, None, b"");
            raw_entry(b, b"bin/busybox", tar::EntryType::Regular, None, b"ELF");
            raw_entry(b, b"bin/sh", tar::EntryType::Symlink, Some(b"busybox"), b"");
            raw_entry(
                b,
                b"bin/abs",
                tar::EntryType::Symlink,
                Some(b"/bin/busybox"),
                b"",
            );
            raw_entry(
                b,
                b"bin/hard",
                tar::EntryType::Link,
                Some(b"bin/busybox"),
                b"",
            );
        });
        let dir = tempfile::tempdir().unwrap();
        let r = apply(&t, dir.path(), WhiteoutMode::Flatten).unwrap();
        assert_eq!(r.entries, 5);
        assert_eq!(fs::read(dir.path().join("bin/hard")).unwrap(), b"ELF");
        assert_eq!(
            fs::read_link(dir.path().join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }

    fn assert_rejected(t: &[u8], what: &str, needle: &str) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let e = apply(t, &root, WhiteoutMode::Flatten).unwrap_err();
        assert!(e.is_unsafe_content(), "{what}: {e}");
        assert!(
            e.to_string().contains("test-layer"),
            "{what}: error must name the layer: {e}"
        );
        assert!(
            e.to_string().contains(needle),
            "{what}: expected {needle:?} in: {e}"
        );
        let outside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            outside,
            ["root"],
            "{what}: something was written outside the root"
        );
    }

    #[test]
    fn rejects_malicious_layers() {
        assert_rejected(
            &tar_of(|b| raw_entry(b, b"../evil", tar::EntryType::Regular, None, b"x")),
            "dotdot",
            "'..'",
        );
        assert_rejected(
            &tar_of(|b| raw_entry(b, b"/etc/evil", tar::EntryType::Regular, None, b"x")),
            "absolute",
            "absolute path",
        );
        assert_rejected(
            &tar_of(|b| {
                raw_entry(b, b"link", tar::EntryType::Symlink, Some(b"/tmp"), b"");
                raw_entry(b, b"link/evil", tar::EntryType::Regular, None, b"x");
            }),
            "write through symlink",
            "is a symlink",
        );
        assert_rejected(
            &tar_of(|b| raw_entry(b, b"a/up", tar::EntryType::Symlink, Some(b"../../etc"), b"")),
            "symlink escape",
            "escapes the root",
        );
        assert_rejected(
            &tar_of(|b| {
                raw_entry(
                    b,
                    b"h",
                    tar::EntryType::Link,
                    Some(b"../../etc/passwd"),
                    b"",
                )
            }),
            "hardlink escape",
            "'..'",
        );
        assert_rejected(
            &tar_of(|b| raw_entry(b, b"h", tar::EntryType::Link, Some(b"/etc/passwd"), b"")),
            "hardlink absolute",
            "absolute path",
        );
        assert_rejected(
            &tar_of(|b| raw_entry(b, b"dev/sda", tar::EntryType::Block, None, b"")),
            "device",
            "device nodes",
        );
        // A header that declares more data than the archive holds.
        let mut t = tar_of(|b| raw_entry(b, b"big", tar::EntryType::Regular, None, &[7u8; 600]));
        t.truncate(512 + 100);
        let dir = tempfile::tempdir().unwrap();
        let e = apply(&t, dir.path(), WhiteoutMode::Flatten).unwrap_err();
        assert!(
            e.to_string().contains("\"big\""),
            "lying size must name the entry: {e}"
        );
    }

    #[test]
    fn flatten_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = tar_of(|b| {
            raw_entry(b, b"a/x", tar::EntryType::Regular, None, b"1");
            raw_entry(b, b"a/y", tar::EntryType::Regular, None, b"1");
            raw_entry(b, b"b", tar::EntryType::Regular, None, b"1");
        });
        apply(&l1, dir.path(), WhiteoutMode::Flatten).unwrap();
        let l2 = tar_of(|b| {
            raw_entry(b, b".wh.b", tar::EntryType::Regular, None, b"");
            raw_entry(b, b"a/new", tar::EntryType::Regular, None, b"2");
            raw_entry(b, b"a/.wh..wh..opq", tar::EntryType::Regular, None, b"");
        });
        apply(&l2, dir.path(), WhiteoutMode::Flatten).unwrap();
        assert!(!dir.path().join("b").exists());
        assert!(!dir.path().join("a/x").exists());
        assert!(
            dir.path().join("a/new").exists(),
            "entries of the same layer survive its opaque marker"
        );
    }

    #[test]
    fn gzip_and_zstd_and_diff_id() {
        let t = tar_of(|b| raw_entry(b, b"f", tar::EntryType::Regular, None, b"hello"));
        let diff = Digest::sha256_of(&t);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &t).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&t[..], 1).unwrap();
        for data in [&t, &gz, &zs] {
            let dir = tempfile::tempdir().unwrap();
            let opts = UnpackOptions {
                diff_id: Some(diff.clone()),
                ..Default::default()
            };
            apply_layer(&data[..], dir.path(), "l", &opts).unwrap();
            assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"hello");
        }
        let dir = tempfile::tempdir().unwrap();
        let opts = UnpackOptions {
            diff_id: Some(Digest::sha256_of(b"other")),
            ..Default::default()
        };
        assert!(
            apply_layer(&t[..], dir.path(), "l", &opts)
                .unwrap_err()
                .is_unsafe_content()
        );
    }
}
