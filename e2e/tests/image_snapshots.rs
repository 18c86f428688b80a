//! Snapshots as overlayfs lowerdirs: an image of three layers (gzip, zstd, plain) with a
//! whiteout and an opaque directory, unpacked by the image store and mounted with real
//! overlayfs; the merged view must show the layers' combined result. Also: a pull from
//! berth's registry that finds a partial download resumes it with `Range`.

use std::io::Write;
use std::path::Path;

use berth_e2e::{require_root, unique_name};
use berth_image::{Digest, ImageStore};

fn tar_layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.set_cksum();
                b.append_data(&mut h, name, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn put(store: &ImageStore, bytes: &[u8]) -> Digest {
    store.content().write(bytes, None).unwrap()
}

#[test]
fn snapshots_stack_as_overlay_lowerdirs() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path().join("images")).unwrap();
    let l1 = tar_layer(&[
        ("etc/", None),
        ("etc/keep", Some(b"1")),
        ("etc/gone", Some(b"1")),
        ("opq/", None),
        ("opq/old", Some(b"1")),
    ]);
    let l2 = tar_layer(&[
        ("etc/.wh.gone", Some(b"")),
        ("opq/", None),
        ("opq/.wh..wh..opq", Some(b"")),
        ("opq/new", Some(b"2")),
    ]);
    let l3 = tar_layer(&[("etc/added", Some(b"3"))]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&l1).unwrap();
    let l1c = gz.finish().unwrap();
    let l2c = zstd::encode_all(&l2[..], 3).unwrap();
    let diff: Vec<Digest> = [&l1, &l2, &l3]
        .iter()
        .map(|l| Digest::sha256_of(l))
        .collect();
    let blobs = [put(&store, &l1c), put(&store, &l2c), put(&store, &l3)];
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff.iter().map(|d| d.to_string()).collect::<Vec<_>>()}});
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = put(&store, &cb);
    let sizes = [l1c.len(), l2c.len(), l3.len()];
    let types = [
        berth_image::OCI_LAYER_GZIP,
        berth_image::OCI_LAYER_ZSTD,
        berth_image::OCI_LAYER_TAR,
    ];
    let layers: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"mediaType": types[i], "digest": blobs[i].to_string(), "size": sizes[i]}))
        .collect();
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": berth_image::OCI_MANIFEST,
        "config": {"mediaType": berth_image::OCI_CONFIG, "digest": cd.to_string(), "size": cb.len()}, "layers": layers});
    let md = put(&store, &serde_json::to_vec(&manifest).unwrap());
    let image = store
        .set("test/overlay:1", &md, berth_image::OCI_MANIFEST, None)
        .unwrap();

    let prepared = store.prepare_rootfs(&image).unwrap();
    assert_eq!(prepared.lowerdirs.len(), 3);
    assert_eq!(prepared.config.cmd, ["/bin/sh"]);
    // A second preparation reuses the snapshots.
    let again = store.prepare_rootfs(&image).unwrap();
    assert_eq!(prepared.lowerdirs, again.lowerdirs);

    let merged = tmp.path().join(unique_name("m"));
    std::fs::create_dir(&merged).unwrap();
    let lower = prepared
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lower}").as_str()),
    )
    .expect("mount overlay");
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _u = Umount(&merged);
    assert_eq!(std::fs::read(merged.join("etc/keep")).unwrap(), b"1");
    assert_eq!(std::fs::read(merged.join("etc/added")).unwrap(), b"3");
    assert!(
        !merged.join("etc/gone").exists(),
        "whiteout did not hide etc/gone"
    );
    assert!(
        !merged.join("opq/old").exists(),
        "opaque dir did not hide opq/old"
    );
    assert_eq!(std::fs::read(merged.join("opq/new")).unwrap(), b"2");

    // Flattened export of the same image agrees.
    let flat = tmp.path().join("flat");
    store.flatten_into(&image, &flat).unwrap();
    assert!(
        !flat.join("etc/gone").exists()
            && !flat.join("opq/old").exists()
            && flat.join("opq/new").exists()
    );

    // rmi prunes content and snapshots.
    let report = store.remove("test/overlay:1").unwrap();
    assert_eq!(report.snapshots, 3);
    assert!(store.content().list().unwrap().is_empty());
}

mod registry_support;

/// A pull that finds half of a layer already downloaded continues with `Range` and ends
/// with a verified blob; a corrupt partial file is detected and discarded.
#[test]
fn pull_resumes_partial_downloads() {
    require_root();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    registry_support::busybox_layout(t, "1");
    let reg = registry_support::RegistryProc::start(&t.join("reg"), &["--no-auth"]);
    registry_support::run(registry_support::skopeo(t).args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", registry_support::layout_path(t).display()),
        &format!("docker://{}/resume/bb:1", reg.addr),
    ]));
    let store = ImageStore::open(t.join("images")).unwrap();
    let client = berth_image::RegistryClient::new(berth_image::EndpointConfig {
        host: reg.addr.clone(),
        plain_http: true,
        ..Default::default()
    })
    .unwrap();
    let r = berth_image::ImageRef::parse(&format!("{}/resume/bb:1", reg.addr)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pull = || {
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(120),
                berth_image::pull(
                    &store,
                    &client,
                    &r,
                    &berth_image::Platform::host(),
                    &berth_image::NoProgress,
                ),
            )
            .await
            .expect("pull timed out")
        })
    };
    let img = pull().unwrap();
    let layer = img.manifest.layers[0].digest.clone();
    let bytes = store.content().read(&layer).unwrap();
    store.remove(&img.entry.name).unwrap();
    assert!(!store.content().has(&layer));
    // Half downloaded before an interruption.
    std::fs::write(
        store.content().ingest_path(&layer),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let img = pull().unwrap();
    assert_eq!(store.content().read(&layer).unwrap(), bytes);
    store.remove(&img.entry.name).unwrap();
    // A corrupt partial file fails verification and is discarded; the next pull succeeds.
    let mut bad = bytes[..bytes.len() / 2].to_vec();
    bad[10] ^= 0xff;
    std::fs::write(store.content().ingest_path(&layer), &bad).unwrap();
    let err = pull().unwrap_err();
    assert!(err.is_unsafe_content(), "{err}");
    assert!(!store.content().ingest_path(&layer).exists());
    pull().unwrap();
}
