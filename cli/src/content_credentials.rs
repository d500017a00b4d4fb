//! Content Credentials in the PNGs the command line writes: this machine's signing key (an Ed25519 key,
//! certified by a local authority made with it, `tessera_credentials::issue_chain`), kept private in its
//! folder, and the manifest it signs. The manifest itself, and reading it back, are
//! `tessera_credentials`'s, shared with the browser.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use tessera::sha256_hex;
use tessera::trust::provenance::Provenance;
pub use tessera_credentials::{Credentials, GENERATION_ASSERTION, Manifest, read};
use tessera_credentials::{Ed25519Key, SubjectKey, first_certificate_sha256, issue_chain};

/// Files of a signing key folder: the end-entity private key (PKCS #8) and the certificate chain (the
/// end-entity certificate, then the local authority's).
pub const KEY_FILE: &str = "signing-key.pem";
pub const CHAIN_FILE: &str = "certificates.pem";

/// Where the command line keeps its key: `$TESSERA_KEY_DIR`, else `$XDG_CONFIG_HOME/tessera/key`, else
/// `~/.config/tessera/key`.
pub fn default_key_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TESSERA_KEY_DIR") {
        return dir.into();
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("tessera/key")
}

/// This machine's signing key and its certificate chain (PEM).
pub struct LocalKey {
    key_pem: String,
    chain_pem: String,
}

impl LocalKey {
    /// The key in `dir`, made there first if the folder holds none. Two first uses at once agree: each
    /// makes its key in a private staging folder and renames it into place, and the one that finds `dir`
    /// taken loads the key that won.
    pub fn load_or_create(dir: &Path) -> Result<Self, String> {
        if let Some(key) = Self::load(dir)? {
            return Ok(key);
        }
        let key = Self::create()?;
        if key.save_new(dir)? {
            return Ok(key);
        }
        Self::load(dir)?.ok_or_else(|| {
            format!(
                "{} holds other files but no signing key: move them away, or name another folder with TESSERA_KEY_DIR",
                dir.display()
            )
        })
    }

    /// The key in `dir`, `None` if the folder holds none. A folder holding one file of the two, or files
    /// that do not parse, is an error naming the file: a key is never silently replaced.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let (key_path, chain_path) = (dir.join(KEY_FILE), dir.join(CHAIN_FILE));
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let key = match (key_path.exists(), chain_path.exists()) {
            (false, false) => return Ok(None),
            (true, true) => LocalKey {
                key_pem: read(&key_path)?,
                chain_pem: read(&chain_path)?,
            },
            (has_key, _) => {
                let (present, missing) = if has_key {
                    (&key_path, &chain_path)
                } else {
                    (&chain_path, &key_path)
                };
                return Err(format!(
                    "the signing key folder has {} but not {}: restore it, or remove the folder to make a new key",
                    present.display(),
                    missing.display()
                ));
            }
        };
        owner_only(&key_path)?;
        let chain = key.signer().and_then(|signer| signer.certs());
        let problem = match chain {
            Ok(certificates) if certificates.is_empty() => Some("no certificate".to_string()),
            Ok(_) => key.pair_problem(),
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            return Err(format!(
                "the signing key in {} is not usable ({problem}): restore it, or remove the folder to make a new key",
                dir.display()
            ));
        }
        Ok(Some(key))
    }

    /// A fresh Ed25519 signing key and its chain from a fresh local authority (`issue_chain`).
    fn create() -> Result<Self, String> {
        let signing_key = Ed25519Key::generate()?;
        let subject = SubjectKey::Ed25519(signing_key.public());
        let chain = issue_chain(&subject, "Tessera image signer", current_year())?;
        let pem = |der: &Vec<u8>| pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
        Ok(LocalKey {
            key_pem: signing_key
                .0
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| format!("cannot encode the signing key: {e}"))?
                .to_string(),
            chain_pem: chain.iter().map(pem).collect(),
        })
    }

    /// Writes the pair as the new folder `dir`, whole or not at all: both files go into a staging folder
    /// beside it (0700, each file 0600 from its creation, synced), which is then renamed to `dir`. `false`
    /// when `dir` was taken meanwhile (another first use won); the staging folder is removed either way.
    fn save_new(&self, dir: &Path) -> Result<bool, String> {
        use std::io::Write;
        let fail = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        private_folder(true)
            .create(parent)
            .map_err(|e| fail(parent, e))?;
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|e| format!("no randomness for a folder name: {e}"))?;
        let name = dir
            .file_name()
            .map_or("key".into(), |n| n.to_string_lossy());
        let staging = parent.join(format!(".{name}.{}", sha256_hex(&tag)));
        private_folder(false)
            .create(&staging)
            .map_err(|e| fail(&staging, e))?;
        let written = (|| {
            for (file, text) in [(KEY_FILE, &self.key_pem), (CHAIN_FILE, &self.chain_pem)] {
                let path = staging.join(file);
                let mut out = private_file(&path).map_err(|e| fail(&path, e))?;
                out.write_all(text.as_bytes())
                    .and_then(|()| out.sync_all())
                    .map_err(|e| fail(&path, e))?;
            }
            match std::fs::rename(&staging, dir) {
                Ok(()) => Ok(true),
                // Taken (a folder with files in it cannot be replaced): the caller loads what is there.
                Err(_) if dir.exists() => Ok(false),
                Err(e) => Err(fail(dir, e)),
            }
        })();
        if !matches!(written, Ok(true)) {
            let _ = std::fs::remove_dir_all(&staging);
        }
        written
    }

    /// Why the private key does not belong to the first certificate of the chain, if it does not.
    fn pair_problem(&self) -> Option<String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = match ed25519_dalek::SigningKey::from_pkcs8_pem(&self.key_pem) {
            Ok(key) => key,
            Err(e) => return Some(format!("the key is not an Ed25519 PKCS #8 key: {e}")),
        };
        let first = pem::parse_many(&self.chain_pem).ok()?.into_iter().next()?;
        let certified = match x509_parser::parse_x509_certificate(first.contents()) {
            Ok((_, cert)) => cert
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec(),
            Err(e) => return Some(format!("the first certificate cannot be read: {e}")),
        };
        (certified != key.verifying_key().to_bytes())
            .then(|| "the key is not the one its certificate names".to_string())
    }

    fn signer(&self) -> c2pa::Result<c2pa::BoxedSigner> {
        c2pa::create_signer::from_keys(
            self.chain_pem.as_bytes(),
            self.key_pem.as_bytes(),
            c2pa::SigningAlg::Ed25519,
            None,
        )
    }

    /// sha256 of the end-entity certificate (DER): what `verify` shows to name the key.
    pub fn fingerprint(&self) -> String {
        first_certificate_sha256(&self.chain_pem).unwrap_or_default()
    }
}

/// A folder builder that makes folders its owner alone can enter (0700), and their parents with `recursive`.
fn private_folder(recursive: bool) -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(recursive);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// A new file (never an existing one) that its owner alone can read, from its creation (0600).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Refuses a key file that anyone but its owner may use, saying how to fix it.
fn owner_only(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the signing key {} is open to others (mode {mode:o}): run `chmod 600 {}`, then try again",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The Gregorian year now (UTC), from the system clock.
pub fn current_year() -> i32 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil year (the era arithmetic of Howard Hinnant's `civil_from_days`).
    let z = (seconds / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let year = year_of_era + era * 400 + i64::from(month_index >= 10);
    year as i32
}

/// `png` with a signed manifest embedded; `title` is the file's name.
pub fn sign_png(
    png: &[u8],
    title: &str,
    claims: &Provenance,
    key: &LocalKey,
) -> Result<Vec<u8>, String> {
    let fail = tessera_credentials::signing_failed;
    let mut builder = tessera_credentials::builder(title, &claims.claims_json())?;
    let signer = key.signer().map_err(fail)?;
    let mut signed = Cursor::new(Vec::with_capacity(png.len() + 16_384));
    builder
        .sign(
            signer.as_ref(),
            "image/png",
            &mut Cursor::new(png),
            &mut signed,
        )
        .map_err(fail)?;
    Ok(signed.into_inner())
}
