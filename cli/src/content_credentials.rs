//! Content Credentials (a C2PA manifest) in the PNGs the command line writes, and reading them back.
//!
//! The manifest sits in a PNG `caBX` chunk and binds a hash of every other byte of the file (pixels and the
//! XMP packet of [`tessera::trust::provenance`] alike). Its `c2pa.actions` assertion records a `c2pa.created` action
//! whose `digitalSourceType` is IPTC `trainedAlgorithmicMedia`; an `invalid.tessera.generation` assertion
//! repeats the generation claims (model, seed, settings, prompt hash) under the signature.
//!
//! It is signed with this machine's own key, made on first use: an Ed25519 local certificate authority and
//! an end-entity certificate it issues (C2PA refuses self-signed signing certificates). Validators no one
//! here wrote (`c2patool`, the C2PA SDK) report such a manifest as **valid but untrusted**: the signature
//! and hashes check out, but no trust list knows this local authority. What the signature proves is that the
//! file has not changed since a holder of this key signed it.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose,
};

use tessera::sha256_hex;
use tessera::trust::provenance::{DIGITAL_SOURCE_TYPE, Provenance};

/// Label of the assertion that carries the generation claims (reverse of the XMP namespace's domain).
pub const GENERATION_ASSERTION: &str = "invalid.tessera.generation";

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

    /// A fresh Ed25519 local authority and an end-entity certificate it issues, valid from the start of last
    /// year for ten years. The authority's private key is dropped: it signs this one certificate only.
    fn create() -> Result<Self, String> {
        let authority_key = Ed25519Key::generate()?;
        let signing_key = Ed25519Key::generate()?;
        let this_year = current_year();
        let name = |common_name: &str| {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, common_name);
            dn.push(DnType::OrganizationName, "Tessera (local key)");
            dn
        };
        let validity = |params: &mut CertificateParams| -> Result<(), String> {
            params.not_before = rcgen::date_time_ymd(this_year - 1, 1, 1);
            params.not_after = rcgen::date_time_ymd(this_year + 10, 1, 1);
            // A random positive 64-bit serial number (RFC 5280: unique per issuer).
            let mut serial = [0u8; 8];
            getrandom::fill(&mut serial).map_err(|e| format!("no randomness for a serial: {e}"))?;
            serial[0] &= 0x7f;
            params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
            Ok(())
        };
        let bad = |e: rcgen::Error| format!("cannot make a signing certificate: {e}");

        let mut authority = CertificateParams::default();
        authority.distinguished_name = name("Tessera local authority");
        authority.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut authority)?;
        let authority_cert = authority.self_signed(&authority_key).map_err(bad)?;

        let mut signer = CertificateParams::default();
        signer.distinguished_name = name("Tessera image signer");
        signer.is_ca = IsCa::ExplicitNoCa;
        signer.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // C2PA accepts email protection (among a few) as the purpose of a claim-signing certificate.
        signer.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        signer.use_authority_key_identifier_extension = true;
        validity(&mut signer)?;
        let issuer = Issuer::new(authority, authority_key);
        let signer_cert = signer.signed_by(&signing_key, &issuer).map_err(bad)?;

        let pem = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        Ok(LocalKey {
            key_pem: signing_key
                .0
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| format!("cannot encode the signing key: {e}"))?
                .to_string(),
            chain_pem: format!("{}{}", pem(signer_cert.der()), pem(authority_cert.der())),
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

fn first_certificate_sha256(chain_pem: &str) -> Option<String> {
    let first = pem::parse_many(chain_pem).ok()?.into_iter().next()?;
    Some(sha256_hex(first.contents()))
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

/// An Ed25519 key as rcgen's signing key for the certificates.
struct Ed25519Key(ed25519_dalek::SigningKey, [u8; 32]);

impl Ed25519Key {
    fn generate() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        Ok(Ed25519Key(key, public))
    }
}

impl rcgen::PublicKeyData for Ed25519Key {
    fn der_bytes(&self) -> &[u8] {
        &self.1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for Ed25519Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use ed25519_dalek::Signer;
        Ok(self.0.sign(msg).to_bytes().to_vec())
    }
}

/// `png` with a signed manifest embedded; `title` is the file's name.
pub fn sign_png(
    png: &[u8],
    title: &str,
    claims: &Provenance,
    key: &LocalKey,
) -> Result<Vec<u8>, String> {
    let software = serde_json::json!({"name": "Tessera", "version": env!("CARGO_PKG_VERSION")});
    let definition = serde_json::json!({
        "title": title,
        "claim_generator_info": [software],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": DIGITAL_SOURCE_TYPE,
                    "softwareAgent": software,
                }]},
            },
            {"label": GENERATION_ASSERTION, "data": claims.claims_json()},
        ],
    });
    let fail = |e: c2pa::Error| format!("cannot sign the image's Content Credentials: {e}");
    let mut builder = c2pa::Builder::default()
        .with_definition(definition.to_string())
        .map_err(fail)?;
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

/// What a PNG's Content Credentials say and whether they check out.
#[derive(Debug)]
pub enum Credentials {
    /// The file has no C2PA manifest.
    Absent,
    Present(Manifest),
}

#[derive(Debug)]
pub struct Manifest {
    /// The signature and every hash check out. (Never "trusted": no trust list knows a local key.)
    pub valid: bool,
    /// What failed, as C2PA status codes with their explanations (empty when `valid`).
    pub failures: Vec<String>,
    /// Common name and organisation of the signing certificate.
    pub signer: String,
    /// sha256 of the signing certificate (DER), comparable with [`LocalKey::fingerprint`].
    pub certificate_sha256: Option<String>,
    /// When the signature was made, as the manifest states it.
    pub signed_at: Option<String>,
    /// The `digitalSourceType` of the `c2pa.created` action.
    pub digital_source_type: Option<String>,
    /// The generation claims under the signature (the [`GENERATION_ASSERTION`]), as JSON.
    pub generation: Option<serde_json::Value>,
}

impl Manifest {
    /// The claims whose signed value differs from `claims` (read from the XMP), by their JSON names; every
    /// name when the manifest carries no generation assertion. Numbers compare as numbers (a signed `1.0`
    /// may come back as `1`).
    pub fn differences_from(&self, claims: &Provenance) -> Vec<String> {
        let xmp = claims.claims_json();
        let (Some(signed), Some(xmp)) = (
            self.generation.as_ref().and_then(|g| g.as_object()),
            xmp.as_object(),
        ) else {
            return vec!["all of them (the manifest has no generation assertion)".into()];
        };
        let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        };
        let null = serde_json::Value::Null;
        let mut names: Vec<&String> = xmp.keys().chain(signed.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|n| {
                !same(
                    xmp.get(*n).unwrap_or(&null),
                    signed.get(*n).unwrap_or(&null),
                )
            })
            .cloned()
            .collect()
    }
}

/// Reads and validates the manifest of a PNG. A file whose manifest cannot even be parsed is an error.
pub fn read(png: &[u8]) -> Result<Credentials, String> {
    // Default settings: no trust list (a local key is untrusted anyway), no network.
    let reader = c2pa::Reader::from_context(c2pa::Context::new());
    let reader = match reader.with_stream("image/png", Cursor::new(png)) {
        Ok(reader) => reader,
        Err(c2pa::Error::JumbfNotFound) => return Ok(Credentials::Absent),
        Err(e) => return Err(format!("its C2PA manifest cannot be read: {e}")),
    };
    let Some(active) = reader.active_manifest() else {
        return Err("its C2PA manifest store has no active manifest".into());
    };
    // Untrusted is expected (a local key); anything else is a real failure.
    let failures: Vec<String> = reader
        .validation_status()
        .unwrap_or_default()
        .iter()
        .filter(|s| s.code() != c2pa::validation_status::SIGNING_CREDENTIAL_UNTRUSTED)
        .map(|s| match s.explanation() {
            Some(why) => format!("{} ({why})", s.code()),
            None => s.code().to_string(),
        })
        .collect();
    let signature = active.signature_info();
    let digital_source_type = active
        .assertions()
        .iter()
        .filter(|a| a.label().starts_with("c2pa.actions"))
        .filter_map(|a| a.value().ok())
        .filter_map(|v| v["actions"].as_array().cloned())
        .flatten()
        .find(|action| action["action"] == "c2pa.created")
        .and_then(|action| action["digitalSourceType"].as_str().map(String::from));
    let generation = active
        .assertions()
        .iter()
        .find(|a| a.label() == GENERATION_ASSERTION)
        .and_then(|a| a.value().ok().cloned());
    Ok(Credentials::Present(Manifest {
        valid: failures.is_empty() && reader.validation_state() != c2pa::ValidationState::Invalid,
        failures,
        signer: signature
            .map(|s| {
                [s.common_name.as_deref(), s.issuer.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", issued by ")
            })
            .unwrap_or_default(),
        certificate_sha256: signature.and_then(|s| first_certificate_sha256(s.cert_chain())),
        signed_at: signature.and_then(|s| s.time.clone()),
        digital_source_type,
        generation,
    }))
}
