//! Content Credentials (`tessera_cli::content_credentials`): the local key, signing a PNG and reading the
//! manifest back. Tampering (forged XMP claims, changed pixels) is tested through the CLI and c2patool
//! (`cli/verify.rs`).

use std::path::PathBuf;

use tessera::trust::provenance::{DIGITAL_SOURCE_TYPE, new_salt, png_with_provenance, read_xmp};
use tessera::{Provenance, Settings};
use tessera_cli::content_credentials::{
    CHAIN_FILE, Credentials, KEY_FILE, LocalKey, current_year, read, sign_png,
};

/// A key folder that does not exist yet, inside a scratch folder removed when the first value drops.
fn key_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("key");
    (root, dir)
}

#[test]
fn the_year_comes_from_the_clock() {
    let year = current_year();
    assert!((2025..2200).contains(&year), "{year}");
}

#[test]
fn a_signed_png_validates_with_this_key() {
    let (_root, dir) = key_dir();
    let key = LocalKey::load_or_create(&dir).unwrap();
    let again = LocalKey::load_or_create(&dir).unwrap();
    assert_eq!(key.fingerprint(), again.fingerprint(), "the key is kept");
    assert_eq!(key.fingerprint().len(), 64);

    let claims = Provenance::new(
        "m",
        "abc",
        &Settings::default(),
        "a red circle",
        None,
        &new_salt(),
    );
    let png = png_with_provenance(&[7u8; 8 * 8 * 3], 8, 8, &claims);
    assert!(matches!(read(&png), Ok(Credentials::Absent)));
    let signed = sign_png(&png, "a.png", &claims, &key).unwrap();
    let Ok(Credentials::Present(m)) = read(&signed) else {
        panic!("a manifest")
    };
    assert!(m.valid, "{:?}", m.failures);
    assert_eq!(m.digital_source_type.as_deref(), Some(DIGITAL_SOURCE_TYPE));
    assert_eq!(
        tessera_credentials::DIGITAL_SOURCE_TYPE,
        DIGITAL_SOURCE_TYPE,
        "the manifest and the XMP state one source type"
    );
    assert_eq!(m.problem_with(&claims.claims_json()), None);
    assert_eq!(m.certificate_sha256, Some(key.fingerprint()));
    assert!(m.signer.contains("Tessera image signer"), "{}", m.signer);
    // The image still decodes, with its XMP intact.
    assert!(read_xmp(&signed).is_some());
    image::load_from_memory(&signed).unwrap();

    // Tampering (forged XMP claims, changed pixels) is tested through the CLI and c2patool.
}

#[test]
fn a_half_key_folder_is_refused_not_replaced() {
    let (_root, dir) = key_dir();
    LocalKey::load_or_create(&dir).unwrap();
    std::fs::remove_file(dir.join(CHAIN_FILE)).unwrap();
    let err = LocalKey::load_or_create(&dir).err().unwrap();
    assert!(err.contains("but not") && err.contains(CHAIN_FILE), "{err}");
    assert!(dir.join(KEY_FILE).exists(), "the key is left alone");
    std::fs::write(dir.join(CHAIN_FILE), "not a certificate").unwrap();
    let err = LocalKey::load_or_create(&dir).err().unwrap();
    assert!(err.contains("is not usable"), "{err}");
}

#[cfg(unix)]
#[test]
fn key_files_are_private_from_creation_and_an_open_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (root, dir) = key_dir();
    LocalKey::load_or_create(&dir).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(CHAIN_FILE)), 0o600);
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["key"], "no staging folder is left");
    std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalKey::load_or_create(&dir).err().unwrap();
    assert!(
        err.contains("open to others (mode 644)") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn two_first_uses_at_once_get_the_same_key() {
    let (root, dir) = key_dir();
    let start = std::sync::Barrier::new(8);
    let fingerprints: Vec<String> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    LocalKey::load_or_create(&dir).unwrap().fingerprint()
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        fingerprints.iter().all(|f| f == &fingerprints[0]),
        "{fingerprints:?}"
    );
    assert_eq!(
        LocalKey::load(&dir).unwrap().unwrap().fingerprint(),
        fingerprints[0]
    );
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        1,
        "no staging folder is left"
    );
}

#[test]
fn a_key_that_is_not_its_certificates_is_refused() {
    let (_root, dir) = key_dir();
    let (_other_root, other) = key_dir();
    LocalKey::load_or_create(&dir).unwrap();
    LocalKey::load_or_create(&other).unwrap();
    std::fs::copy(other.join(KEY_FILE), dir.join(KEY_FILE)).unwrap();
    let err = LocalKey::load_or_create(&dir).err().unwrap();
    assert!(err.contains("not the one its certificate names"), "{err}");
}
