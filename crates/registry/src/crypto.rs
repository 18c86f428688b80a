//! At-rest encryption of stored blobs with AES-256-GCM (ring's implementation: it is already
//! in the tree for TLS and uses AES-NI/CLMUL, so no second AES crate is built).
//!
//! File format: `BRTHAES1` magic, a random 12-byte nonce base, then segments of at most
//! 64 KiB plaintext, each sealed with its own nonce (base XOR segment index) and a 16-byte
//! tag. The last segment is sealed with associated data `1`, all others with `0`, so a
//! truncated or reordered file fails to decrypt instead of yielding shorter content. Digests
//! are always computed over the plaintext.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{RegistryError, Result};

const MAGIC: &[u8; 8] = b"BRTHAES1";
pub(crate) const HEADER_LEN: u64 = 20;
pub(crate) const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;

/// An AES-256-GCM key loaded from a key file.
pub struct BlobCipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for BlobCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobCipher(..)")
    }
}

impl BlobCipher {
    /// Reads a key file holding 32 raw bytes or 64 hex characters (a trailing newline is
    /// allowed). Generate one with `head -c 32 /dev/urandom > key`.
    pub fn from_key_file(path: &Path) -> Result<BlobCipher> {
        let raw = std::fs::read(path).map_err(|e| RegistryError::io("read key file", path, e))?;
        let text = std::str::from_utf8(&raw).ok().map(str::trim);
        let key = match text {
            Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
                hex::decode(t).expect("checked hex")
            }
            _ if raw.len() == 32 => raw,
            _ => {
                return Err(RegistryError::Config {
                    field: format!("encryption key file {}", path.display()),
                    reason: "must hold 32 raw bytes or 64 hex characters".into(),
                });
            }
        };
        BlobCipher::from_key(&key)
    }

    pub fn from_key(key: &[u8]) -> Result<BlobCipher> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| RegistryError::Config {
            field: "encryption key".into(),
            reason: "must be 32 bytes".into(),
        })?;
        Ok(BlobCipher {
            key: LessSafeKey::new(unbound),
        })
    }

    fn nonce(base: &[u8; 12], index: u64) -> Nonce {
        let mut n = *base;
        for (i, b) in index.to_be_bytes().iter().enumerate() {
            n[4 + i] ^= b;
        }
        Nonce::assume_unique_for_key(n)
    }

    fn seal(&self, base: &[u8; 12], index: u64, last: bool, buf: &mut Vec<u8>) {
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(base, index), Aad::from([last as u8]), buf)
            .expect("AES-GCM sealing of a segment below the size limit cannot fail");
        buf.extend_from_slice(tag.as_ref());
    }

    fn open<'a>(
        &self,
        base: &[u8; 12],
        index: u64,
        last: bool,
        buf: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        self.key
            .open_in_place(Self::nonce(base, index), Aad::from([last as u8]), buf)
            .ok()
    }
}

/// Plaintext length of an encrypted file of `file_len` bytes, or `None` if malformed.
pub(crate) fn plaintext_len(file_len: u64) -> Option<u64> {
    let ct = file_len.checked_sub(HEADER_LEN)?;
    let seg = (SEGMENT + TAG) as u64;
    let nsegs = ct.div_ceil(seg);
    if nsegs == 0 || ct - (nsegs - 1) * seg < TAG as u64 {
        return None;
    }
    Some(ct - nsegs * TAG as u64)
}

/// Encrypts everything written to it into `inner`; [`EncryptingWriter::finish`] seals the
/// final segment.
pub(crate) struct EncryptingWriter<W: Write> {
    inner: W,
    cipher: std::sync::Arc<BlobCipher>,
    base: [u8; 12],
    index: u64,
    buf: Vec<u8>,
}

impl<W: Write> EncryptingWriter<W> {
    pub(crate) fn new(mut inner: W, cipher: std::sync::Arc<BlobCipher>) -> io::Result<Self> {
        let mut base = [0u8; 12];
        SystemRandom::new()
            .fill(&mut base)
            .map_err(|_| io::Error::other("system random generator failed"))?;
        inner.write_all(MAGIC)?;
        inner.write_all(&base)?;
        Ok(EncryptingWriter {
            inner,
            cipher,
            base,
            index: 0,
            buf: Vec::with_capacity(SEGMENT + TAG),
        })
    }

    fn seal_current(&mut self, last: bool) -> io::Result<()> {
        self.cipher
            .seal(&self.base, self.index, last, &mut self.buf);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.seal_current(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            if self.buf.len() == SEGMENT {
                // More data follows, so the full segment is not the last one.
                self.seal_current(false)?;
            }
            let take = (SEGMENT - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the plaintext of an encrypted file from a plaintext offset on.
pub(crate) struct DecryptingReader {
    file: std::fs::File,
    path: PathBuf,
    cipher: std::sync::Arc<BlobCipher>,
    base: [u8; 12],
    nsegs: u64,
    index: u64,
    seg: Vec<u8>,
    pos: usize,
    len: usize,
}

impl DecryptingReader {
    pub(crate) fn open(
        path: &Path,
        cipher: std::sync::Arc<BlobCipher>,
        offset: u64,
    ) -> io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let file_len = file.metadata()?.len();
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a berth encrypted blob");
        let plain = plaintext_len(file_len).ok_or_else(bad)?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(bad());
        }
        let mut base = [0u8; 12];
        base.copy_from_slice(&header[8..]);
        let nsegs = (file_len - HEADER_LEN).div_ceil((SEGMENT + TAG) as u64);
        let offset = offset.min(plain);
        let index = offset / SEGMENT as u64;
        let mut r = DecryptingReader {
            file,
            path: path.to_owned(),
            cipher,
            base,
            nsegs,
            index,
            seg: Vec::with_capacity(SEGMENT + TAG),
            pos: 0,
            len: 0,
        };
        if index < nsegs {
            r.file
                .seek(SeekFrom::Start(HEADER_LEN + index * (SEGMENT + TAG) as u64))?;
            r.load()?;
            r.pos = (offset % SEGMENT as u64) as usize;
        }
        Ok(r)
    }

    fn load(&mut self) -> io::Result<()> {
        self.seg.resize(SEGMENT + TAG, 0);
        let mut filled = 0;
        while filled < self.seg.len() {
            let n = self.file.read(&mut self.seg[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let last = self.index + 1 == self.nsegs;
        let plain = self
            .cipher
            .open(&self.base, self.index, last, &mut self.seg[..filled])
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: segment {} failed authentication",
                        self.path.display(),
                        self.index
                    ),
                )
            })?
            .len();
        self.len = plain;
        self.pos = 0;
        self.index += 1;
        Ok(())
    }
}

impl Read for DecryptingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            if self.index >= self.nsegs {
                return Ok(0);
            }
            self.load()?;
        }
        let n = (self.len - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.seg[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn roundtrip(len: usize, offset: u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let cipher = Arc::new(BlobCipher::from_key(&[7u8; 32]).unwrap());
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut w =
            EncryptingWriter::new(std::fs::File::create(&path).unwrap(), cipher.clone()).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        let file_len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(plaintext_len(file_len), Some(len as u64));
        let mut out = Vec::new();
        DecryptingReader::open(&path, cipher, offset)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, &data[(offset as usize).min(len)..]);
        let raw = std::fs::read(&path).unwrap();
        if len > 64 {
            assert!(
                !raw.windows(64).any(|w| w == &data[..64]),
                "plaintext leaked"
            );
        }
    }

    #[test]
    fn roundtrips_at_segment_edges() {
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 5,
        ] {
            for off in [0, 1, SEGMENT as u64, len as u64] {
                roundtrip(len, off);
            }
        }
    }

    #[test]
    fn truncation_and_tampering_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let cipher = Arc::new(BlobCipher::from_key(&[1u8; 32]).unwrap());
        let mut w =
            EncryptingWriter::new(std::fs::File::create(&path).unwrap(), cipher.clone()).unwrap();
        w.write_all(&vec![5u8; 2 * SEGMENT + 10]).unwrap();
        w.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        // Drop the last segment: the remaining last one was sealed as non-final.
        std::fs::write(&path, &raw[..HEADER_LEN as usize + 2 * (SEGMENT + TAG)]).unwrap();
        let fails = |c: Arc<BlobCipher>| {
            let mut out = Vec::new();
            DecryptingReader::open(&path, c, 0)
                .and_then(|mut r| r.read_to_end(&mut out))
                .is_err()
        };
        assert!(fails(cipher.clone()), "truncation undetected");
        let mut tampered = raw.clone();
        tampered[100] ^= 1;
        std::fs::write(&path, &tampered).unwrap();
        assert!(fails(cipher.clone()), "tampering undetected");
        let other = Arc::new(BlobCipher::from_key(&[2u8; 32]).unwrap());
        std::fs::write(&path, &raw).unwrap();
        assert!(fails(other), "wrong key undetected");
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
        BlobCipher::from_key_file(&p).unwrap();
        std::fs::write(&p, [9u8; 32]).unwrap();
        BlobCipher::from_key_file(&p).unwrap();
        std::fs::write(&p, "short").unwrap();
        let e = BlobCipher::from_key_file(&p).unwrap_err();
        assert!(e.to_string().contains("key file"), "{e}");
    }
}
