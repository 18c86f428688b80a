//! The conformance suite every [`BlobDriver`] implementation runs (from its own tests):
//! `driver_testsuite::run_all(&driver).await`. It panics with a message naming the broken
//! guarantee. The driver must be empty when the suite starts.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::digest::{Algorithm, Digest};
use crate::driver::BlobDriver;

/// Runs every check against `d`.
pub async fn run_all(d: &dyn BlobDriver) {
    write_commit_read(d).await;
    read_at_offset(d).await;
    empty_blob(d).await;
    mismatch_is_invisible(d).await;
    cancel_is_invisible(d).await;
    concurrent_writers_of_one_blob(d).await;
    sha512(d).await;
    delete_and_walk(d).await;
    purge_uploads(d).await;
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn read_all(d: &dyn BlobDriver, digest: &Digest, offset: u64) -> Vec<u8> {
    let mut r = d.reader(digest, offset).await.expect("reader");
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.expect("read");
    v
}

async fn write_commit_read(d: &dyn BlobDriver) {
    let content = data(3 * 1024 * 1024 + 17, 1);
    let digest = Digest::sha256_of(&content);
    assert!(
        d.stat(&digest).await.unwrap().is_none(),
        "blob visible before it was written"
    );
    let mut w = d.writer().await.unwrap();
    for chunk in content.chunks(100_000) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(w.size(), content.len() as u64);
    assert!(
        d.stat(&digest).await.unwrap().is_none(),
        "blob visible before commit"
    );
    let st = w.commit(&digest).await.unwrap();
    assert_eq!(st.size, content.len() as u64);
    assert_eq!(
        d.stat(&digest).await.unwrap().unwrap().size,
        content.len() as u64
    );
    assert_eq!(
        read_all(d, &digest, 0).await,
        content,
        "content differs after commit"
    );
    let missing = Digest::sha256_of(b"never written");
    let err = d
        .reader(&missing, 0)
        .await
        .err()
        .expect("reader of a missing blob must fail");
    assert!(err.is_not_found(), "missing blob: {err}");
}

async fn read_at_offset(d: &dyn BlobDriver) {
    let content = data(200_000, 2);
    let digest = Digest::sha256_of(&content);
    d.write_small(content.clone().into(), &digest)
        .await
        .unwrap();
    for off in [0u64, 1, 65_535, 65_536, 131_073, 199_999, 200_000] {
        assert_eq!(
            read_all(d, &digest, off).await,
            &content[off as usize..],
            "read at offset {off}"
        );
    }
}

async fn empty_blob(d: &dyn BlobDriver) {
    let digest = Digest::sha256_of(b"");
    d.write_small(Bytes::new(), &digest).await.unwrap();
    assert_eq!(d.stat(&digest).await.unwrap().unwrap().size, 0);
    assert!(read_all(d, &digest, 0).await.is_empty());
}

async fn mismatch_is_invisible(d: &dyn BlobDriver) {
    let content = data(1000, 3);
    let claimed = Digest::sha256_of(b"something else");
    let mut w = d.writer().await.unwrap();
    w.write(content.clone().into()).await.unwrap();
    let err = w.commit(&claimed).await.unwrap_err();
    assert!(
        err.is_digest_mismatch(),
        "mismatch must be reported as such: {err}"
    );
    assert!(
        d.stat(&claimed).await.unwrap().is_none(),
        "mismatched content became visible"
    );
    assert!(
        d.stat(&Digest::sha256_of(&content))
            .await
            .unwrap()
            .is_none()
    );
}

async fn cancel_is_invisible(d: &dyn BlobDriver) {
    let content = data(1000, 4);
    let mut w = d.writer().await.unwrap();
    w.write(content.clone().into()).await.unwrap();
    w.cancel().await.unwrap();
    assert!(
        d.stat(&Digest::sha256_of(&content))
            .await
            .unwrap()
            .is_none()
    );
}

async fn concurrent_writers_of_one_blob(d: &dyn BlobDriver) {
    let content = Bytes::from(data(2 * 1024 * 1024, 5));
    let digest = Digest::sha256_of(&content);
    let mut writers = Vec::new();
    for _ in 0..4 {
        writers.push(d.writer().await.unwrap());
    }
    // Interleave the writes, then commit all at once.
    for chunk in 0..8 {
        for w in writers.iter_mut() {
            let part = content.slice(chunk * 262_144..(chunk + 1) * 262_144);
            w.write(part).await.unwrap();
        }
    }
    let commits = writers.into_iter().map(|w| w.commit(&digest));
    for r in futures::future::join_all(commits).await {
        r.expect("concurrent commit of the same blob");
    }
    assert_eq!(read_all(d, &digest, 0).await, content.as_ref());
}

async fn sha512(d: &dyn BlobDriver) {
    let content = data(70_000, 6);
    let digest = Digest::of(Algorithm::Sha512, &content);
    d.write_small(content.clone().into(), &digest)
        .await
        .unwrap();
    assert_eq!(read_all(d, &digest, 0).await, content);
    let wrong = Digest::of(Algorithm::Sha512, b"x");
    let err = d.write_small(content.into(), &wrong).await.unwrap_err();
    assert!(err.is_digest_mismatch(), "{err}");
}

async fn delete_and_walk(d: &dyn BlobDriver) {
    let a = data(10, 7);
    let da = Digest::sha256_of(&a);
    d.write_small(a.into(), &da).await.unwrap();
    let listed: Vec<Digest> = d
        .walk()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(listed.contains(&da), "walk misses a committed blob");
    assert!(d.delete(&da).await.unwrap());
    assert!(
        !d.delete(&da).await.unwrap(),
        "second delete must report absence"
    );
    assert!(d.stat(&da).await.unwrap().is_none());
    let listed: Vec<Digest> = d
        .walk()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert!(!listed.contains(&da), "walk lists a deleted blob");
}

async fn purge_uploads(d: &dyn BlobDriver) {
    // A writer that is dropped without commit or cancel (as after a crash) leaves nothing
    // visible, and purge with a future cut-off removes its leftovers.
    let content = data(5000, 8);
    let mut w = d.writer().await.unwrap();
    w.write(content.clone().into()).await.unwrap();
    drop(w);
    assert!(
        d.stat(&Digest::sha256_of(&content))
            .await
            .unwrap()
            .is_none()
    );
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        d.purge_uploads(future).await.unwrap() >= 1,
        "purge found no leftover"
    );
    assert_eq!(d.purge_uploads(future).await.unwrap(), 0);
}
