//! The content store: blobs by digest under `<root>/blobs/<alg>/<hex>`, written to
//! `<root>/ingest/` first and renamed into place only after their digest was verified, so a
//! blob in the store is always complete. Partial downloads stay in `ingest/` under the
//! digest they are meant to have, so a pull can resume them with an HTTP `Range`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::error::{ImageError, Result};

#[derive(Clone, Debug)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<ContentStore> {
        let root = root.into();
        for d in ["blobs", "ingest"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| ImageError::io("create", &p, e))?;
        }
        Ok(ContentStore { root })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.path(d)).ok().map(|m| m.len())
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d);
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::ContentMissing {
                digest: d.to_string(),
            },
            _ => ImageError::io("read", &p, e),
        })
    }

    pub fn open_blob(&self, d: &Digest) -> Result<fs::File> {
        let p = self.path(d);
        fs::File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::ContentMissing {
                digest: d.to_string(),
            },
            _ => ImageError::io("open", &p, e),
        })
    }

    /// Stores `data`, verifying it against `expected` when given; returns its digest.
    pub fn write(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let alg = expected
            .map(|d| d.algorithm().to_owned())
            .unwrap_or_else(|| "sha256".into());
        let mut h = Hasher::new(&alg);
        h.update(data);
        let actual = h.finish();
        if let Some(e) = expected
            && e != &actual
        {
            return Err(ImageError::DigestMismatch {
                what: "blob".into(),
                expected: e.to_string(),
                actual: actual.to_string(),
            });
        }
        if self.has(&actual) {
            return Ok(actual);
        }
        let tmp = self
            .root
            .join("ingest")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        fs::write(&tmp, data).map_err(|e| ImageError::io("write", &tmp, e))?;
        self.install(&tmp, &actual)?;
        Ok(actual)
    }

    /// Streams `reader` into the store; verifies against `expected` when given.
    pub fn write_from(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let alg = expected
            .map(|d| d.algorithm().to_owned())
            .unwrap_or_else(|| "sha256".into());
        let tmp = self
            .root
            .join("ingest")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let f = fs::File::create(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        let mut w = crate::digest::HashingWriter {
            inner: io::BufWriter::with_capacity(1 << 20, f),
            hasher: Hasher::new(&alg),
            written: 0,
        };
        let mut r = reader;
        let res = io::copy(&mut r, &mut w).and_then(|_| w.flush());
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io("write", &tmp, e));
        }
        let actual = w.hasher.finish();
        let n = w.written;
        if let Some(e) = expected
            && e != &actual
        {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                what: "blob".into(),
                expected: e.to_string(),
                actual: actual.to_string(),
            });
        }
        self.install(&tmp, &actual)?;
        Ok((actual, n))
    }

    fn install(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let fin = self.path(d);
        let dir = fin.parent().expect("blob path has a parent");
        fs::create_dir_all(dir).map_err(|e| ImageError::io("create", dir, e))?;
        fs::File::open(tmp)
            .and_then(|f| f.sync_data())
            .map_err(|e| ImageError::io("fsync", tmp, e))?;
        fs::rename(tmp, &fin).map_err(|e| ImageError::io("rename", &fin, e))
    }

    /// Where a partial download of `d` lives.
    pub fn ingest_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}-{}", d.algorithm(), d.hex()))
    }

    /// Bytes of `d` already downloaded.
    pub fn partial_len(&self, d: &Digest) -> u64 {
        fs::metadata(self.ingest_path(d))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Verifies a complete download of `d` and moves it into the store. On a mismatch the
    /// partial file is removed (a resumed download cannot be trusted any more).
    pub fn commit_ingest(&self, d: &Digest) -> Result<()> {
        let p = self.ingest_path(d);
        let mut f = fs::File::open(&p).map_err(|e| ImageError::io("open", &p, e))?;
        let mut h = d.hasher();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| ImageError::io("read", &p, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let actual = h.finish();
        if &actual != d {
            let _ = fs::remove_file(&p);
            return Err(ImageError::DigestMismatch {
                what: "downloaded blob".into(),
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        self.install(&p, d)
    }

    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io("remove", &p, e)),
        }
    }

    /// Every stored digest.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str()
                    && let Ok(d) = format!("{alg}:{n}").parse()
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_writes_and_resumable_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let c = ContentStore::open(dir.path()).unwrap();
        let d = c.write(b"hello", None).unwrap();
        assert!(c.has(&d));
        assert!(
            c.write(b"hello", Some(&Digest::sha256_of(b"x")))
                .unwrap_err()
                .is_unsafe_content()
        );
        let d2 = Digest::sha256_of(b"0123456789");
        fs::write(c.ingest_path(&d2), b"01234").unwrap();
        assert_eq!(c.partial_len(&d2), 5);
        fs::OpenOptions::new()
            .append(true)
            .open(c.ingest_path(&d2))
            .unwrap()
            .write_all(b"56789")
            .unwrap();
        c.commit_ingest(&d2).unwrap();
        assert_eq!(c.read(&d2).unwrap(), b"0123456789");
        fs::write(c.ingest_path(&d), b"wrong").unwrap();
        assert!(c.commit_ingest(&d).is_err());
        assert!(!c.ingest_path(&d).exists());
    }
}
