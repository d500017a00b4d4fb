//! `tessera verify`, one case a test: the claims it reads, the signature it reports, and the engine's verdict
//! on regenerating the image (`tessera::trust::verify`) for a genuine image and for each way one can lie.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tessera::Provenance;
use tessera::trust::provenance::{XMP_KEYWORD, png_with_provenance, read_xmp};
use tessera_cli::content_credentials::{LocalKey, sign_png};

use super::{
    c2patool, fails_with, png_chunks, temp_dir, tessera, tessera_with_key, tiny_model,
    with_chunks_from, write_tiny_model,
};

const PROMPT: &str = "a red circle";

/// One signed image made by the CLI (seed 5) and the tiny model that made it, shared by every test here:
/// kept in Cargo's scratch folder for integration tests and made anew by each run.
struct Made {
    model: PathBuf,
    image: PathBuf,
    bytes: Vec<u8>,
    claims: Provenance,
    rgb: Vec<u8>,
}

fn made() -> &'static Made {
    static MADE: OnceLock<Made> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-cli-verify");
        let _ = std::fs::remove_dir_all(&dir);
        let model = dir.join("model");
        std::fs::create_dir_all(&model).unwrap();
        write_tiny_model(&model, |_, _| {});
        let image = dir.join("a.png");
        let (image_s, model_s) = (image.to_str().unwrap(), model.to_str().unwrap());
        let r = tessera(&[
            "generate", PROMPT, "-o", image_s, "--seed", "5", "--model", model_s,
        ]);
        assert!(r.ok, "{}", r.stderr);
        let bytes = std::fs::read(&image).unwrap();
        let claims = Provenance::from_xmp(&read_xmp(&bytes).unwrap()).unwrap();
        let rgb = image::load_from_memory(&bytes)
            .unwrap()
            .to_rgb8()
            .into_raw();
        Made {
            model,
            image,
            bytes,
            claims,
            rgb,
        }
    })
}

impl Made {
    fn model(&self) -> &str {
        self.model.to_str().unwrap()
    }

    fn image(&self) -> &str {
        self.image.to_str().unwrap()
    }

    /// The pixels with one value in the middle flipped.
    fn touched(&self) -> Vec<u8> {
        let mut rgb = self.rgb.clone();
        rgb[3 * (64 * 128 + 64)] ^= 0x80;
        rgb
    }

    /// The claims with another seed.
    fn forged(&self) -> Provenance {
        let mut forged = self.claims.clone();
        forged.settings.seed = 6;
        forged
    }
}

/// `png` signed, claiming `claims`, by a key made in `dir` (not the tests' own key): what anyone can do to
/// a file they made up.
fn signed_elsewhere(dir: &Path, png: &[u8], claims: &Provenance) -> Vec<u8> {
    let key = LocalKey::load_or_create(&dir.join("their-key")).unwrap();
    sign_png(png, "theirs.png", claims, &key).unwrap()
}

/// `png` without its chunks of type `kind`.
fn without_chunks(png: &[u8], kind: &[u8; 4]) -> Vec<u8> {
    let kept = png_chunks(png).into_iter().filter(|(k, _)| k != kind);
    png[..8]
        .iter()
        .copied()
        .chain(kept.flat_map(|(_, b)| b.to_vec()))
        .collect()
}

/// A file in `dir` holding `bytes`.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `verify FILE --prompt PROMPT` with the image's model fails with one line containing `needle`.
fn refuses(file: &Path, needle: &str) {
    let m = made();
    let args = [
        "verify",
        file.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--model",
        m.model(),
    ];
    fails_with(&args, &file.with_file_name("never-written.png"), needle);
}

#[test]
fn without_a_prompt_the_claims_are_read() {
    let r = tessera(&["verify", made().image()]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("trainedAlgorithmicMedia")
            && r.stdout.contains("seed 5")
            && r.stdout.contains("guidance 1.5")
            && r.stdout.contains("created 20")
            && r.stdout.contains("pass --prompt"),
        "{}",
        r.stdout
    );
}

#[test]
fn with_its_prompt_and_model_the_image_is_proven_by_regenerating_it() {
    let m = made();
    let r = tessera(&[
        "verify",
        m.image(),
        "--prompt",
        PROMPT,
        "--model",
        m.model(),
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("prompt: matches the recorded sha256")
            && r.stdout
                .contains("0 of 49152 values differ by more than 2 levels")
            && r.stdout.contains("verdict: VERIFIED")
            && r.stdout
                .contains("C2PA manifest signed by Tessera image signer")
            && r.stdout.contains("(this machine's key")
            && r.stdout.contains("valid: the signature and the hashes"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_signature_from_another_key_is_named_as_such() {
    let dir = temp_dir("verify-key");
    let elsewhere = tessera_with_key(&dir.join("another-key"), &["verify", made().image()]);
    assert!(
        elsewhere.ok
            && elsewhere.stdout.contains(
                "another key, not this machine's: the name above is whatever its maker wrote in it"
            ),
        "{}",
        elsewhere.stdout
    );
}

/// A stripped signature leaves claims anyone could have written: the pixels regenerate, and still the
/// verdict is not VERIFIED.
#[test]
fn claims_without_a_signature_are_shown_unsigned_never_verified() {
    let (m, dir) = (made(), temp_dir("verify-unsigned"));
    let stripped = write(&dir, "stripped.png", &without_chunks(&m.bytes, b"caBX"));
    let r = tessera(&["verify", stripped.to_str().unwrap()]);
    assert!(
        r.ok && r.stdout.contains("signature: none") && r.stdout.contains("claims read (unsigned)"),
        "{}",
        r.stdout
    );
    refuses(
        &stripped,
        "not verified: regenerated from the recorded model, seed and settings: the same pixels, but no signature binds the claims to the file",
    );
}

/// What a forger controls when they sign with their own key: the claims and everything in the file. The
/// signature is valid, so the verdict rests on the claims matching the XMP and on what a viewer sees.
#[test]
fn a_valid_signature_over_other_claims_or_another_picture_is_refused() {
    let (m, dir) = (made(), temp_dir("verify-resigned"));
    let genuine = without_chunks(&m.bytes, b"caBX");
    let resigned = write(
        &dir,
        "resigned.png",
        &signed_elsewhere(&dir, &genuine, &m.claims),
    );
    let r = tessera(&[
        "verify",
        resigned.to_str().unwrap(),
        "--prompt",
        PROMPT,
        "--model",
        m.model(),
    ]);
    assert!(
        r.ok && r.stdout.contains("another key") && r.stdout.contains("verdict: VERIFIED"),
        "the same picture and claims signed by another key: {}{}",
        r.stdout,
        r.stderr
    );
    let other_claims = signed_elsewhere(&dir, &genuine, &m.forged());
    refuses(
        &write(&dir, "other-claims.png", &other_claims),
        "not verified: the signed generation claims differ from the XMP claims in seed",
    );

    // The genuine picture as an animation's first frame, with a hole cut in it, or under a colour chunk.
    let encode = |color: png::ColorType, frames: &[Vec<u8>], chunk: Option<(&[u8; 4], &[u8])>| {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 128, 128);
            enc.set_color(color);
            enc.add_itxt_chunk(XMP_KEYWORD.into(), m.claims.xmp())
                .unwrap();
            if frames.len() > 1 {
                enc.set_animated(frames.len() as u32, 0).unwrap();
            }
            let mut writer = enc.write_header().unwrap();
            if let Some((kind, data)) = chunk {
                writer
                    .write_chunk(png::chunk::ChunkType(*kind), data)
                    .unwrap();
            }
            for frame in frames {
                writer.write_image_data(frame).unwrap();
            }
        }
        signed_elsewhere(&dir, &out, &m.claims)
    };
    let rgb = png::ColorType::Rgb;
    let blank = vec![255; m.rgb.len()];
    let animated = encode(rgb, &[m.rgb.clone(), blank], None);
    refuses(
        &write(&dir, "animated.png", &animated),
        "not verified: the file shows a viewer more than the pixels compared: it is an animated PNG of 2 frames",
    );
    let holed: Vec<u8> = m
        .rgb
        .chunks(3)
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], if i % 128 < 64 { 0 } else { 255 }])
        .collect();
    refuses(
        &write(
            &dir,
            "holed.png",
            &encode(png::ColorType::Rgba, &[holed], None),
        ),
        "not verified: 8192 pixels are transparent where the regeneration is opaque",
    );
    let gamma = encode(
        rgb,
        std::slice::from_ref(&m.rgb),
        Some((b"gAMA", &20_000u32.to_be_bytes())),
    );
    refuses(
        &write(&dir, "gamma.png", &gamma),
        "a gAMA chunk, which changes the colours a viewer shows",
    );
    let profile = encode(
        rgb,
        std::slice::from_ref(&m.rgb),
        Some((b"iCCP", b"p\0\0profile")),
    );
    refuses(
        &write(&dir, "profile.png", &profile),
        "a iCCP chunk, which changes the colours a viewer shows",
    );
    for file in ["animated.png", "holed.png", "gamma.png"] {
        let report = c2patool(&dir.join(file));
        assert!(
            report.contains("\"validation_state\": \"Valid\""),
            "{file}: {report}"
        );
    }
}

#[test]
fn another_prompt_is_not_verified() {
    let m = made();
    let args = ["verify", m.image(), "--prompt", "a blue circle"];
    fails_with(
        &args,
        &m.image.with_file_name("never-written.png"),
        "not verified: that prompt is not the one recorded in the image",
    );
}

#[test]
fn another_model_cannot_regenerate_it() {
    let m = made();
    let other = tiny_model(|_, w| {
        let n = w.len();
        w[n - 1] ^= 1;
    });
    let args = [
        "verify",
        m.image(),
        "--prompt",
        PROMPT,
        "--model",
        other.to_str().unwrap(),
    ];
    fails_with(
        &args,
        &m.image.with_file_name("never-written.png"),
        "cannot regenerate: the image was made by tessera-tiny",
    );
}

#[test]
fn forged_claims_and_touched_pixels_fail_the_comparison() {
    let (m, dir) = (made(), temp_dir("verify-forged"));
    let forged = png_with_provenance(&m.rgb, 128, 128, &m.forged());
    refuses(
        &write(&dir, "forged.png", &forged),
        "pixel values differ from the regeneration",
    );
    let touched = png_with_provenance(&m.touched(), 128, 128, &m.claims);
    refuses(
        &write(&dir, "touched.png", &touched),
        "not verified: 1 pixel values differ",
    );
}

/// With the signed manifest kept, changed pixels or forged XMP claims break its hash binding: `verify` says
/// so before any regeneration, and so does the C2PA reference tool.
#[test]
fn a_signed_file_changed_after_signing_is_refused_before_regenerating() {
    let (m, dir) = (made(), temp_dir("verify-spliced"));
    let repainted = png_with_provenance(&m.touched(), 128, 128, &m.claims);
    let repainted = write(
        &dir,
        "repainted.png",
        &with_chunks_from(&m.bytes, &repainted, b"IDAT"),
    );
    assert_eq!(
        image::open(&repainted).unwrap().to_rgb8().into_raw(),
        m.touched(),
        "the splice shows the touched pixels"
    );
    let reclaimed = png_with_provenance(&m.touched(), 128, 128, &m.forged());
    let reclaimed = write(
        &dir,
        "reclaimed.png",
        &with_chunks_from(&m.bytes, &reclaimed, b"iTXt"),
    );
    for file in [&repainted, &reclaimed] {
        fails_with(
            &["verify", file.to_str().unwrap()],
            &dir.join("never-written.png"),
            "not verified: the C2PA manifest does not match this file (assertion.dataHash.mismatch",
        );
        let report = c2patool(file);
        assert!(
            report.contains("assertion.dataHash.mismatch"),
            "{}: {report}",
            file.display()
        );
    }
}

#[test]
fn stripped_truncated_and_other_files_get_clear_verdicts() {
    let (m, dir) = (made(), temp_dir("verify-files"));
    let stripped = dir.join("stripped.png");
    image::load_from_memory(&m.bytes)
        .unwrap()
        .save(&stripped)
        .unwrap();
    refuses(
        &stripped,
        "carries no provenance metadata: nothing to verify",
    );
    let truncated = write(&dir, "truncated.png", &m.bytes[..m.bytes.len() / 2]);
    refuses(&truncated, "is not a readable PNG");
    refuses(&write(&dir, "notes.png", b"hello"), "is not a readable PNG");
}

#[test]
fn a_huge_xmp_packet_is_read_whole_and_judged_on_the_pixels() {
    let (m, dir) = (made(), temp_dir("verify-huge"));
    let mut big = m.claims.clone();
    big.model_id = "x".repeat(5_000_000); // a 5 MB packet; the pixels are touched
    let huge = write(
        &dir,
        "huge-xmp.png",
        &png_with_provenance(&m.touched(), 128, 128, &big),
    );
    refuses(&huge, "1 pixel values differ");
}

#[test]
fn an_edit_cannot_be_regenerated() {
    let (m, dir) = (made(), temp_dir("verify-edit"));
    let edited = dir.join("b.png");
    let args = [
        "edit",
        m.image(),
        "make it blue",
        "-o",
        edited.to_str().unwrap(),
        "--model",
        m.model(),
    ];
    assert!(tessera(&args).ok);
    let args = [
        "verify",
        edited.to_str().unwrap(),
        "--prompt",
        "make it blue",
        "--model",
        m.model(),
    ];
    fails_with(
        &args,
        &dir.join("never-written.png"),
        "cannot regenerate: this image is an edit",
    );
}
