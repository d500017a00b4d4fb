//! Proof by regeneration. An image this engine made names its model and weights, its seed and settings, and
//! hashes its prompt; given the prompt, the same model draws it again, and every pixel value must come back
//! within [`REGENERATION_TOLERANCE`]. The command line (`tessera verify`) and the browser's "Check an image"
//! panel both ask this module and only render its [`Verdict`]; signatures (C2PA) are the command line's own
//! check, made before this one.

use std::sync::Arc;

use crate::error::{Result, TesseraError};
use crate::generation::Generation;
use crate::interpret::{self, Before};
use crate::model::{Model, sha256_hex};
use crate::trust::provenance::{Provenance, xmp_in};

/// Largest per-value difference between an image and its regeneration that still counts as the same image:
/// float sums may round differently on another machine (thread count, SIMD width, a GPU), so an image made
/// in the browser on WebGPU verifies natively.
pub const REGENERATION_TOLERANCE: u8 = 2;

/// The largest side of an image that is read to be checked: far above what any model here draws, and small
/// enough that decoding it stays well inside a browser's memory.
pub const MAX_SIDE: u32 = 4096;

/// A PNG's provenance claims and the pixels a viewer sees.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub provenance: Provenance,
    pub width: u32,
    pub height: u32,
    /// `[height, width, 3]` RGB bytes.
    rgb: Vec<u8>,
}

/// What checking an image's claims against its regeneration found.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The prompt given is not the one whose sha256 the image records.
    WrongPrompt,
    /// The image is an edit: the tokens of the image it edited are not in the file, so it cannot be redrawn.
    Edit,
    /// The model read the prompt as interpreted, and interpreting it here does not give the text it read
    /// (it followed an earlier picture, or another version of the interpreter read it).
    TextNotRecovered,
    /// The image names other weights than the model at hand.
    OtherModel {
        model_id: String,
        model_sha256: String,
        loaded_id: String,
        loaded_sha256: String,
    },
    /// The image is not the size the model draws.
    WrongSize { width: u32, height: u32, size: u32 },
    /// The regeneration differs: `changed` of `values` pixel values by more than the tolerance.
    PixelsDiffer {
        changed: usize,
        values: usize,
        worst: u8,
    },
    /// The regeneration is the same image: no value of `values` differs by more than the tolerance.
    Verified { values: usize, worst: u8 },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }

    /// `verified`; `not-verified` when the claims are shown false for this image; `unknown` when they could
    /// not be checked (an edit, another model).
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "verified",
            Verdict::WrongPrompt | Verdict::WrongSize { .. } | Verdict::PixelsDiffer { .. } => {
                "not-verified"
            }
            Verdict::Edit | Verdict::TextNotRecovered | Verdict::OtherModel { .. } => "unknown",
        }
    }

    /// The verdict in one sentence, without a leading capital or a full stop, for either front door to frame.
    pub fn reason(&self) -> String {
        match self {
            Verdict::WrongPrompt => {
                "that prompt is not the one recorded in the image (its sha256 differs)".into()
            }
            Verdict::Edit => {
                "this image is an edit, and the tokens of the image it edited are not in the file"
                    .into()
            }
            Verdict::TextNotRecovered => {
                "the model read this prompt as interpreted, and reading it here does not give \
                 the same text (it followed an earlier picture, or another version read it)"
                    .into()
            }
            Verdict::OtherModel {
                model_id,
                model_sha256,
                loaded_id,
                loaded_sha256,
            } => format!(
                "the image was made by {model_id} (sha256 {model_sha256}), the model here is {loaded_id} (sha256 {loaded_sha256})"
            ),
            Verdict::WrongSize {
                width,
                height,
                size,
            } => format!("the image is {width}×{height}, the model draws {size}×{size}"),
            Verdict::PixelsDiffer { changed, .. } => format!(
                "{changed} pixel values differ from the regeneration (the pixels were changed, or the claims are not this image's)"
            ),
            Verdict::Verified { .. } => {
                "regenerated from the recorded model, seed and settings: the same pixels".into()
            }
        }
    }
}

impl Claimed {
    /// The claims and pixels of `png`; `None` when it carries no provenance. A file that is not a readable
    /// PNG, or whose claims are malformed, is an error that says which.
    pub fn read(png: &[u8]) -> Result<Option<Claimed>> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().map_err(unreadable)?;
        let claims = claims_in(reader.info());
        let (width, height) = reader.info().size();
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad(format!(
                "it is {width}×{height}, larger than any image this engine draws ({MAX_SIDE} pixels a side at most)"
            )));
        }
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| bad("it is too large".into()))?;
        let mut buffer = vec![0; size];
        let frame = reader.next_frame(&mut buffer).map_err(unreadable)?;
        // Gray, gray + alpha, RGB or RGBA, 8 bits a sample: the colour a viewer sees, alpha left out.
        let rgb = buffer[..frame.buffer_size()]
            .chunks_exact(frame.color_type.samples())
            .flat_map(|p| match p.len() {
                1 | 2 => [p[0]; 3],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        let Some(provenance) = claims? else {
            return Ok(None);
        };
        Ok(Some(Claimed {
            provenance,
            width,
            height,
            rgb,
        }))
    }

    /// The claims of `png` alone, read from its header without decoding a pixel (what the browser shows
    /// before anything is checked); errors as [`Claimed::read`]'s.
    pub fn read_claims(png: &[u8]) -> Result<Option<Provenance>> {
        let reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .map_err(unreadable)?;
        claims_in(reader.info())
    }

    /// What `prompt` alone decides, before any model is loaded: a prompt that is not the recorded one, or an
    /// edit. `None`: the image can be regenerated.
    pub fn precheck(&self, prompt: &str) -> Option<Verdict> {
        if sha256_hex(prompt.as_bytes()) != self.provenance.prompt_sha256 {
            Some(Verdict::WrongPrompt)
        } else if self.provenance.source_sha256.is_some() {
            Some(Verdict::Edit)
        } else {
            None
        }
    }

    /// What redrawing the image from `prompt` with `model` takes: a verdict already, when the prompt, the
    /// model or the size rule it out, or the generation to run (the recorded seed and settings), whose image
    /// [`Claimed::compare`] then judges. The caller drives it, so the browser can cancel between tokens.
    pub fn redraw(&self, model: Arc<Model>, prompt: &str) -> Result<Redraw> {
        if let Some(verdict) = self.precheck(prompt) {
            return Ok(Redraw::Decided(verdict));
        }
        let claims = &self.provenance;
        if model.sha256 != claims.model_sha256 {
            return Ok(Redraw::Decided(Verdict::OtherModel {
                model_id: claims.model_id.clone(),
                model_sha256: claims.model_sha256.clone(),
                loaded_id: model.config.model_id.clone(),
                loaded_sha256: model.sha256.clone(),
            }));
        }
        let size = model.config.image_size as u32;
        if (self.width, self.height) != (size, size) {
            return Ok(Redraw::Decided(Verdict::WrongSize {
                width: self.width,
                height: self.height,
                size,
            }));
        }
        // The text the model read: the prompt, or the prompt as interpreted with no picture before it.
        let text = match &claims.model_text_sha256 {
            None => prompt.to_string(),
            Some(hash) => {
                let read = interpret::for_model(&model.config, prompt, Before::Nothing, None);
                if sha256_hex(read.canonical.as_bytes()) != *hash {
                    return Ok(Redraw::Decided(Verdict::TextNotRecovered));
                }
                read.canonical
            }
        };
        let generation = Generation::new(model, &text, None, claims.settings.clone())?;
        Ok(Redraw::Draw(Box::new(generation)))
    }

    /// The verdict on `regenerated` (RGB bytes of the finished redraw): every pixel value within the tolerance.
    pub fn compare(&self, regenerated: &[u8]) -> Verdict {
        let diffs = self
            .rgb
            .iter()
            .zip(regenerated)
            .map(|(a, b)| a.abs_diff(*b));
        let (changed, worst) = diffs.fold((0, 0), |(changed, worst), d| {
            (
                changed + usize::from(d > REGENERATION_TOLERANCE),
                worst.max(d),
            )
        });
        let values = self.rgb.len();
        match changed {
            0 => Verdict::Verified { values, worst },
            _ => Verdict::PixelsDiffer {
                changed,
                values,
                worst,
            },
        }
    }

    /// [`Claimed::redraw`], run to the end, then [`Claimed::compare`].
    pub async fn regenerate(&self, model: Arc<Model>, prompt: &str) -> Result<Verdict> {
        match self.redraw(model, prompt)? {
            Redraw::Decided(verdict) => Ok(verdict),
            Redraw::Draw(mut generation) => {
                while generation.step().await?.is_some() {}
                Ok(self.compare(generation.image()))
            }
        }
    }
}

fn bad(why: String) -> TesseraError {
    TesseraError::Image(why)
}

fn unreadable(e: png::DecodingError) -> TesseraError {
    bad(format!("it is not a readable PNG image ({e})"))
}

/// The claims among a PNG's header chunks: `None` without an XMP packet, an error when it is malformed.
fn claims_in(info: &png::Info) -> Result<Option<Provenance>> {
    xmp_in(info)
        .map(|xmp| {
            Provenance::from_xmp(&xmp)
                .map_err(|e| bad(format!("its provenance metadata is not valid: {e}")))
        })
        .transpose()
}

/// What a check needs next: nothing (the verdict is in), or a generation to run to the end.
pub enum Redraw {
    Decided(Verdict),
    Draw(Box<Generation>),
}

/// [`Claimed::read`] then [`Claimed::regenerate`]: `None` when `png` carries no claims to check.
pub async fn verify(model: Arc<Model>, png: &[u8], prompt: &str) -> Result<Option<Verdict>> {
    match Claimed::read(png)? {
        Some(claimed) => Ok(Some(claimed.regenerate(model, prompt).await?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::generation::Settings;
    use burn::tensor::Device;

    /// The micro architecture with random weights: 32² images of 16 tokens, fast enough to draw in a test.
    fn micro(seed: u64) -> Arc<Model> {
        let config = ModelConfig::micro();
        let weights = Model::random_weights(&config, seed, &Device::flex());
        Arc::new(Model::from_config(config, &weights, &Device::flex()).unwrap())
    }

    fn drawn(model: &Arc<Model>, prompt: &str, context: Option<&[u32]>) -> Vec<u8> {
        let settings = Settings {
            seed: 4,
            ..Settings::default()
        };
        let mut g = Generation::new(model.clone(), prompt, context, settings).unwrap();
        while pollster::block_on(g.step()).unwrap().is_some() {}
        g.png(Some("2026-12-01T00:00:00Z".into()))
    }

    /// The PNG re-encoded with one pixel value changed by `by`, its XMP kept.
    fn with_value_changed(png: &[u8], by: u8) -> Vec<u8> {
        let claimed = Claimed::read(png).unwrap().unwrap();
        let mut rgb = claimed.rgb.clone();
        rgb[7] = if rgb[7] > 127 {
            rgb[7] - by
        } else {
            rgb[7] + by
        };
        let p = &claimed.provenance;
        crate::trust::provenance::png_with_provenance(&rgb, claimed.width, claimed.height, p)
    }

    #[test]
    fn an_image_verifies_with_its_prompt_and_model_and_nothing_else() {
        let model = micro(1);
        let prompt = "a big red circle in the center";
        let png = drawn(&model, prompt, None);
        let check = |png: &[u8], prompt: &str, model: &Arc<Model>| {
            pollster::block_on(verify(model.clone(), png, prompt))
                .unwrap()
                .unwrap()
        };
        let verdict = check(&png, prompt, &model);
        assert!(verdict.is_verified(), "{verdict:?}");
        assert_eq!(verdict.outcome(), "verified");
        assert_eq!(
            check(&png, "a big blue circle", &model),
            Verdict::WrongPrompt
        );
        let other = check(&png, prompt, &micro(2));
        assert!(matches!(other, Verdict::OtherModel { .. }), "{other:?}");
        assert_eq!(other.outcome(), "unknown");
        // A change within the tolerance is rounding; one beyond it is a changed picture.
        let within = check(
            &with_value_changed(&png, REGENERATION_TOLERANCE),
            prompt,
            &model,
        );
        assert!(within.is_verified(), "{within:?}");
        let changed = check(&with_value_changed(&png, 40), prompt, &model);
        assert!(
            matches!(
                changed,
                Verdict::PixelsDiffer {
                    changed: 1,
                    worst: 40,
                    ..
                }
            ),
            "{changed:?}"
        );
        assert_eq!(changed.outcome(), "not-verified");
    }

    #[test]
    fn an_edit_cannot_be_regenerated_and_unmarked_or_broken_files_say_so() {
        let model = micro(1);
        let source = vec![3u32; model.config.image_tokens()];
        let edit = drawn(&model, "make it green", Some(&source));
        let verdict = pollster::block_on(verify(model.clone(), &edit, "make it green")).unwrap();
        assert_eq!(verdict, Some(Verdict::Edit));

        let plain = image::RgbImage::new(4, 4);
        let mut unmarked = Vec::new();
        plain
            .write_to(
                &mut std::io::Cursor::new(&mut unmarked),
                image::ImageFormat::Png,
            )
            .unwrap();
        assert_eq!(
            pollster::block_on(verify(model.clone(), &unmarked, "x")).unwrap(),
            None
        );

        let broken = &edit[..40];
        let err = pollster::block_on(verify(model, broken, "x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a readable PNG"), "{err}");
    }
}
