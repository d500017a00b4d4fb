//! Content Credentials (a C2PA manifest) in the PNGs Tessera writes, and reading them back: one
//! implementation for the command line (`tessera generate`, `tessera verify`) and the browser ([`web`],
//! compiled to its own wasm module, `pkg/credentials/`, loaded only when a picture is signed or checked).
//!
//! The manifest sits in a PNG `caBX` chunk and binds a hash of every other byte of the file (pixels and the
//! XMP packet alike). Its `c2pa.actions` assertion records a `c2pa.created` action whose `digitalSourceType`
//! is IPTC `trainedAlgorithmicMedia`; the [`GENERATION_ASSERTION`] repeats the generation claims (model,
//! seed, settings, salted prompt hash) under the signature.
//!
//! A manifest is signed with a key of the machine or browser that made the picture, certified by a local
//! authority made with it ([`issue_chain`]; C2PA refuses self-signed signing certificates). Validators no
//! one here wrote (`c2patool`, the C2PA SDK) report such a manifest as **valid but untrusted**: the
//! signature and hashes check out, but no trust list knows this local authority. What the signature proves
//! is that the file has not changed since a holder of this key signed it.

use std::io::Cursor;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[cfg(target_arch = "wasm32")]
pub mod web;

/// Label of the assertion that carries the generation claims (reverse of the XMP namespace's domain).
pub const GENERATION_ASSERTION: &str = "invalid.tessera.generation";

/// IPTC's digital source type of a picture a trained model made (the engine's XMP states the same; the
/// native tests hold the two equal).
pub const DIGITAL_SOURCE_TYPE: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

/// A manifest under construction for a PNG named `title` that makes `claims` (the engine's
/// `Provenance::claims_json`): the `c2pa.created` action and the generation assertion.
pub fn builder(title: &str, claims: &Value) -> Result<c2pa::Builder, String> {
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
            {"label": GENERATION_ASSERTION, "data": claims},
        ],
    });
    c2pa::Builder::default()
        .with_definition(definition.to_string())
        .map_err(signing_failed)
}

/// The error of a manifest that could not be made or signed.
pub fn signing_failed(e: c2pa::Error) -> String {
    format!("cannot sign the image's Content Credentials: {e}")
}

/// The public key a signing certificate names.
pub enum SubjectKey {
    /// An Ed25519 key (the command line's).
    Ed25519([u8; 32]),
    /// An uncompressed P-256 point, `0x04 ‖ x ‖ y` (a browser's WebCrypto ECDSA key).
    P256(Vec<u8>),
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            SubjectKey::Ed25519(key) => key,
            SubjectKey::P256(point) => point,
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SubjectKey::Ed25519(_) => &rcgen::PKCS_ED25519,
            SubjectKey::P256(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

/// A fresh Ed25519 local authority and an end-entity certificate it issues for `subject` (named
/// `signer_name`), both valid from the start of last year (`this_year` - 1) for ten years: the chain as DER,
/// end-entity first. The authority's private key is dropped: it signs this one certificate only.
pub fn issue_chain(
    subject: &SubjectKey,
    signer_name: &str,
    this_year: i32,
) -> Result<Vec<Vec<u8>>, String> {
    let authority_key = Ed25519Key::generate()?;
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
    signer.distinguished_name = name(signer_name);
    signer.is_ca = IsCa::ExplicitNoCa;
    signer.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // C2PA accepts email protection (among a few) as the purpose of a claim-signing certificate.
    signer.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
    signer.use_authority_key_identifier_extension = true;
    validity(&mut signer)?;
    let issuer = Issuer::new(authority, authority_key);
    let signer_cert = signer.signed_by(subject, &issuer).map_err(bad)?;
    Ok(vec![
        signer_cert.der().to_vec(),
        authority_cert.der().to_vec(),
    ])
}

/// An Ed25519 key as rcgen's signing key for the certificates.
pub struct Ed25519Key(pub ed25519_dalek::SigningKey, [u8; 32]);

impl Ed25519Key {
    pub fn generate() -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a key: {e}"))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        Ok(Ed25519Key(key, public))
    }

    pub fn public(&self) -> [u8; 32] {
        self.1
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

/// sha256 of a certificate's DER, lowercase hex: how a key is named to the user.
pub fn certificate_sha256(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// sha256 of the first certificate of a PEM chain.
pub fn first_certificate_sha256(chain_pem: &str) -> Option<String> {
    let first = pem::parse_many(chain_pem).ok()?.into_iter().next()?;
    Some(certificate_sha256(first.contents()))
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
    /// sha256 of the signing certificate (DER), comparable with [`certificate_sha256`] of a key's own.
    pub certificate_sha256: Option<String>,
    /// When the signature was made, as the manifest states it.
    pub signed_at: Option<String>,
    /// The `digitalSourceType` of the `c2pa.created` action.
    pub digital_source_type: Option<String>,
    /// The generation claims under the signature (the [`GENERATION_ASSERTION`]), as JSON.
    pub generation: Option<Value>,
}

impl Manifest {
    /// The claims whose signed value differs from `claims` (the XMP's, as `Provenance::claims_json`), by
    /// their JSON names; every name when the manifest carries no generation assertion. Numbers compare as
    /// numbers (a signed `1.0` may come back as `1`).
    pub fn differences_from(&self, claims: &Value) -> Vec<String> {
        let (Some(signed), Some(xmp)) = (
            self.generation.as_ref().and_then(|g| g.as_object()),
            claims.as_object(),
        ) else {
            return vec!["all of them (the manifest has no generation assertion)".into()];
        };
        let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        };
        let null = Value::Null;
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

    /// Why this manifest does not vouch for `claims`, if it does not: it fails validation, it does not
    /// declare a trained model's creation, or it signs other claims. `None`: a valid signature over them.
    pub fn problem_with(&self, claims: &Value) -> Option<String> {
        if !self.valid {
            return Some(format!(
                "the C2PA manifest does not match this file ({}): it was changed after it was signed",
                self.failures.join("; ")
            ));
        }
        if self.digital_source_type.as_deref() != Some(DIGITAL_SOURCE_TYPE) {
            return Some("the C2PA manifest does not declare a c2pa.created action by a trained model (trainedAlgorithmicMedia)".into());
        }
        let differ = self.differences_from(claims);
        (!differ.is_empty()).then(|| {
            format!(
                "the signed generation claims differ from the XMP claims in {}",
                differ.join(", ")
            )
        })
    }
}

/// Reads and validates the manifest of a PNG. A file whose manifest cannot even be parsed is an error.
pub fn read(png: &[u8]) -> Result<Credentials, String> {
    // Default settings: no trust list (a local key is untrusted anyway), no network.
    let reader = c2pa::Reader::from_context(c2pa::Context::new());
    report(reader.with_stream("image/png", Cursor::new(png)))
}

/// [`read`], for where the SDK reads asynchronously (the browser).
pub async fn read_async(png: &[u8]) -> Result<Credentials, String> {
    let reader = c2pa::Reader::from_context(c2pa::Context::new());
    report(
        reader
            .with_stream_async("image/png", Cursor::new(png))
            .await,
    )
}

fn report(reader: c2pa::Result<c2pa::Reader>) -> Result<Credentials, String> {
    let reader = match reader {
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
