//! `tessera verify`: what an image claims, whether its C2PA signature holds and signs those claims, and,
//! given the prompt, the engine's verdict on regenerating it (`tessera::trust::verify`). Only a valid
//! signature over the same claims and the same pixels is VERIFIED; anything less is an error (a non-zero
//! exit) after the report.

use std::path::PathBuf;

use clap::Args;
use tessera::trust::provenance::Provenance;
use tessera::trust::verify::{Claimed, REGENERATION_TOLERANCE, Verdict};
use tessera_cli::content_credentials::{self, Credentials, LocalKey};

use crate::args::{Failure, ModelArg};

#[derive(Args)]
pub struct VerifyArgs {
    pub image: PathBuf,
    /// The prompt the image was made from: checked against the recorded hash, then regenerated.
    #[arg(long)]
    pub prompt: Option<String>,
    #[command(flatten)]
    pub model: ModelArg,
}

pub fn run(a: VerifyArgs) -> Result<(), Failure> {
    let shown = a.image.display();
    let bytes = std::fs::read(&a.image).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let claimed = Claimed::read(&bytes)
        .map_err(|e| format!("{shown}: {e}"))?
        .ok_or_else(|| format!("{shown} carries no provenance metadata: nothing to verify"))?;
    let claims = &claimed.provenance;
    let s = &claims.settings;
    println!("image: {shown} ({}×{} PNG)", claimed.width, claimed.height);
    println!(
        "claims: made by an AI model (IPTC trainedAlgorithmicMedia): {} (weights sha256 {})",
        claims.model_id, claims.model_sha256
    );
    println!(
        "        seed {}, temperature {}, top-k {}, top-p {}, guidance {}; prompt sha256 {}",
        s.seed,
        s.temperature,
        s.top_k.map_or("all".into(), |k| k.to_string()),
        s.top_p,
        s.guidance,
        claims.prompt_sha256
    );
    if let Some(created) = &claims.created {
        println!("        created {created}");
    }
    let signed = report_signature(&bytes, &shown.to_string(), claims)?;
    let claimed = claimed.signed(signed);
    if let Some(beyond) = claimed.beyond_pixels() {
        return Err(format!("not verified: {}", beyond.reason()).into());
    }
    let Some(prompt) = a.prompt else {
        println!(
            "verdict: claims read{}; pass --prompt \"…\" to check them by regenerating the image",
            if signed { "" } else { " (unsigned)" }
        );
        return Ok(());
    };
    let verdict = match claimed.precheck(&prompt) {
        Some(verdict) => verdict,
        None => {
            println!("prompt: matches the recorded sha256");
            let model = a.model.load()?;
            pollster::block_on(claimed.regenerate(model, &prompt))?
        }
    };
    let compared = match verdict {
        Verdict::Verified { values, worst } => Some((0, values, worst)),
        Verdict::Unsigned { values, worst } => Some((0, values, worst)),
        Verdict::PixelsDiffer {
            changed,
            values,
            worst,
            ..
        } => Some((changed, values, worst)),
        _ => None,
    };
    if let Some((changed, values, worst)) = compared {
        println!(
            "pixels: regenerated with the recorded model, seed and settings; {changed} of {values} values differ by more than {REGENERATION_TOLERANCE} levels (largest difference {worst})"
        );
    }
    match verdict.outcome() {
        "verified" => {
            println!(
                "verdict: VERIFIED: this model, prompt, seed and settings make exactly this image"
            );
            Ok(())
        }
        "not-verified" | "unsigned" => Err(format!("not verified: {}", verdict.reason()).into()),
        _ => {
            let hint = match verdict {
                Verdict::OtherModel { .. } => "; pass --model with the recorded one",
                _ => "",
            };
            Err(format!("cannot regenerate: {}{hint}", verdict.reason()).into())
        }
    }
}

/// Prints who signed the file's C2PA manifest, if anyone, and says whether a valid signature binds `claims`
/// (read from the XMP) to the file. A manifest that does not match the file, does not declare a trained
/// model's creation, or signs other claims than the XMP's is an error (`shown`: the file, as the messages
/// name it).
fn report_signature(bytes: &[u8], shown: &str, claims: &Provenance) -> Result<bool, String> {
    let read =
        content_credentials::read(bytes).map_err(|e| format!("not verified: {shown}: {e}"))?;
    let manifest = match read {
        Credentials::Absent => {
            println!(
                "signature: none (no C2PA manifest: the claims above are unsigned, and anyone could have written them)"
            );
            return Ok(false);
        }
        Credentials::Present(m) => m,
    };
    let here = LocalKey::load(&content_credentials::default_key_dir())
        .ok()
        .flatten();
    let whose = match (here, &manifest.certificate_sha256) {
        (Some(key), Some(cert)) if key.fingerprint() == *cert => "this machine's key",
        _ => "another key, not this machine's: the name above is whatever its maker wrote in it",
    };
    println!(
        "signature: C2PA manifest signed by {} ({whose}; certificate sha256 {}){}",
        manifest.signer,
        manifest.certificate_sha256.as_deref().unwrap_or("unknown"),
        manifest
            .signed_at
            .as_ref()
            .map_or(String::new(), |t| format!(" at {t}"))
    );
    if let Some(problem) = manifest.problem_with(&claims.claims_json()) {
        return Err(format!("not verified: {problem}"));
    }
    println!(
        "           valid: the signature and the hashes of every byte check out, and it signs the claims above; untrusted: a local key that no trust list knows"
    );
    Ok(true)
}
