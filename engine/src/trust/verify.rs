//! Proof by regeneration. An image this engine made names its model and weights, its seed and settings, and
//! hashes its prompt; given the prompt, the same model draws it again, and every pixel value must come back
//! within [`REGENERATION_TOLERANCE`]. What a viewer sees is more than the first frame's colours, so the file
//! is held to be exactly what the engine writes: one frame, opaque, 8 bits a sample, no chunk that changes
//! how its colours or orientation are shown, one XMP packet. The command line (`tessera verify`) and the
//! browser's "Check an image" panel both ask this module and only render its [`Verdict`]; whether a valid
//! signature binds the claims (C2PA) is the front door's check, told to [`Claimed::signed`]: without one
//! the same pixels are [`Verdict::Unsigned`], never [`Verdict::Verified`].

use std::sync::Arc;

use crate::error::{Result, TesseraError};
use crate::generation::Generation;
use crate::interpret::{self, Before};
use crate::model::Model;
use crate::trust::provenance::{Provenance, XMP_KEYWORD, xmp_in};

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
    /// `[height, width]` opacity, when the file has an alpha channel or a transparent colour (`tRNS`).
    alpha: Option<Vec<u8>>,
    /// What else in the file changes what a viewer sees (frames, bit depth, colour chunks), one phrase
    /// each: the engine writes none of it.
    beyond_pixels: Vec<String>,
    /// Whether a valid signature binds these claims to the file, as the front door found it.
    signed: bool,
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
    /// The file holds more than the pixels compared that changes what a viewer sees.
    BeyondPixels { what: Vec<String> },
    /// The regeneration differs: `changed` of `values` colour values by more than the tolerance, and
    /// `not_opaque` pixels are transparent where the regeneration is opaque.
    PixelsDiffer {
        changed: usize,
        not_opaque: usize,
        values: usize,
        worst: u8,
    },
    /// The regeneration is the same image, and no valid signature binds the claims to the file: the pixels
    /// are what the claims make, but who wrote the claims, and when, is not proven.
    Unsigned { values: usize, worst: u8 },
    /// The regeneration is the same image (no value of `values` differs by more than the tolerance), and a
    /// valid signature binds the claims to the file.
    Verified { values: usize, worst: u8 },
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }

    /// `verified`; `unsigned` when the pixels regenerate and no signature binds the claims; `not-verified`
    /// when the claims are shown false for this image; `unknown` when they could not be checked (an edit,
    /// another model).
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Verified { .. } => "verified",
            Verdict::Unsigned { .. } => "unsigned",
            Verdict::WrongPrompt
            | Verdict::WrongSize { .. }
            | Verdict::BeyondPixels { .. }
            | Verdict::PixelsDiffer { .. } => "not-verified",
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
            Verdict::BeyondPixels { what } => format!(
                "the file shows a viewer more than the pixels compared: {}; the engine writes none of it",
                what.join("; ")
            ),
            Verdict::PixelsDiffer {
                changed,
                not_opaque,
                ..
            } => {
                let colours = (*changed > 0)
                    .then(|| format!("{changed} pixel values differ from the regeneration"));
                let alpha = (*not_opaque > 0).then(|| {
                    format!("{not_opaque} pixels are transparent where the regeneration is opaque")
                });
                format!(
                    "{} (the pixels were changed, or the claims are not this image's)",
                    [colours, alpha]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(", and ")
                )
            }
            Verdict::Unsigned { .. } => {
                "regenerated from the recorded model, seed and settings: the same pixels, but no \
                 signature binds the claims to the file, so who made it and when is not proven"
                    .into()
            }
            Verdict::Verified { .. } => {
                "regenerated from the recorded model, seed and settings: the same pixels, and the \
                 claims are signed"
                    .into()
            }
        }
    }
}

impl Claimed {
    /// The claims and pixels of `png`; `None` when it carries no provenance. A file that is not a readable
    /// PNG, or whose claims are malformed, is an error that says which.
    pub fn read(png: &[u8]) -> Result<Option<Claimed>> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().map_err(unreadable)?;
        let claims = claims_in(reader.info());
        let (width, height) = reader.info().size();
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(bad(format!(
                "it is {width}×{height}, larger than any image this engine draws ({MAX_SIDE} pixels a side at most)"
            )));
        }
        let beyond_pixels = beyond_pixels(png, reader.info());
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| bad("it is too large".into()))?;
        let mut buffer = vec![0; size];
        let frame = reader.next_frame(&mut buffer).map_err(unreadable)?;
        // Gray, gray + alpha, RGB or RGBA after expansion; 16-bit samples are judged by their high byte
        // (and refused above for their depth).
        let bytes = frame.bit_depth as usize / 8;
        let samples = frame.color_type.samples();
        let pixels = buffer[..frame.buffer_size()].chunks_exact(samples * bytes);
        let value = |p: &[u8], i: usize| p[i * bytes];
        let rgb = pixels
            .clone()
            .flat_map(|p| match samples {
                1 | 2 => [value(p, 0); 3],
                _ => [value(p, 0), value(p, 1), value(p, 2)],
            })
            .collect();
        let alpha =
            matches!(samples, 2 | 4).then(|| pixels.map(|p| value(p, samples - 1)).collect());
        let Some(provenance) = claims? else {
            return Ok(None);
        };
        Ok(Some(Claimed {
            provenance,
            width,
            height,
            rgb,
            alpha,
            beyond_pixels,
            signed: false,
        }))
    }

    /// The same claims, `signed` saying whether a valid signature binds them to the file (read as unsigned
    /// until told).
    pub fn signed(mut self, signed: bool) -> Self {
        self.signed = signed;
        self
    }

    /// The claims of `png` alone, read from its header without decoding a pixel (what the browser shows
    /// before anything is checked); errors as [`Claimed::read`]'s.
    pub fn read_claims(png: &[u8]) -> Result<Option<Provenance>> {
        let reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .map_err(unreadable)?;
        claims_in(reader.info())
    }

    /// [`Verdict::BeyondPixels`] when the file shows a viewer more than the pixels compared: decided from
    /// the file alone, before any prompt.
    pub fn beyond_pixels(&self) -> Option<Verdict> {
        (!self.beyond_pixels.is_empty()).then(|| Verdict::BeyondPixels {
            what: self.beyond_pixels.clone(),
        })
    }

    /// What the file and `prompt` alone decide, before any model is loaded: a file that shows more than
    /// its pixels, a prompt that is not the recorded one, or an edit. `None`: the image can be regenerated.
    pub fn precheck(&self, prompt: &str) -> Option<Verdict> {
        if let Some(verdict) = self.beyond_pixels() {
            Some(verdict)
        } else if self.provenance.text_sha256(prompt) != self.provenance.prompt_sha256 {
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
                if claims.text_sha256(&read.canonical) != *hash {
                    return Ok(Redraw::Decided(Verdict::TextNotRecovered));
                }
                read.canonical
            }
        };
        let generation = Generation::new(model, &text, None, claims.settings.clone())?;
        Ok(Redraw::Draw(Box::new(generation)))
    }

    /// The verdict on `regenerated` (RGB bytes of the finished redraw, which is opaque): every colour value
    /// within the tolerance, and every pixel opaque within it.
    pub fn compare(&self, regenerated: &[u8]) -> Verdict {
        let within = |d: u8| d <= REGENERATION_TOLERANCE;
        let diffs = self
            .rgb
            .iter()
            .zip(regenerated)
            .map(|(a, b)| a.abs_diff(*b));
        let (changed, worst) = diffs.fold((0, 0), |(changed, worst), d| {
            (changed + usize::from(!within(d)), worst.max(d))
        });
        let not_opaque = self.alpha.as_ref().map_or(0, |alpha| {
            alpha.iter().filter(|&&a| !within(255 - a)).count()
        });
        let values = self.rgb.len();
        match (changed + not_opaque, self.signed) {
            (0, true) => Verdict::Verified { values, worst },
            (0, false) => Verdict::Unsigned { values, worst },
            _ => Verdict::PixelsDiffer {
                changed,
                not_opaque,
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

/// Chunks that cannot change what a viewer sees of an opaque 8-bit picture (`tRNS` can, and the alpha it
/// makes is compared; `caBX` holds the C2PA manifest; text chunks are counted for XMP apart).
const CHUNKS_THAT_SHOW_NOTHING: [&[u8; 4]; 13] = [
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"pHYs", b"tIME", b"sBIT", b"bKGD", b"tEXt",
    b"zTXt", b"iTXt", b"caBX",
];

/// What in a PNG (`png`, whose header is `info`) changes what a viewer sees beyond one frame of 8-bit
/// pixels, one phrase each. Every chunk of the file is listed from its bytes, so a chunk the decoder here
/// skips (an unreadable colour profile, a kind it does not know) is named all the same.
fn beyond_pixels(png: &[u8], info: &png::Info) -> Vec<String> {
    let mut what = Vec::new();
    if let Some(animation) = &info.animation_control {
        what.push(format!(
            "it is an animated PNG of {} frames, which a viewer plays",
            animation.num_frames
        ));
    }
    if info.bit_depth == png::BitDepth::Sixteen {
        what.push("16 bits a sample, finer than the 8 compared".into());
    }
    let chunks = chunks(png);
    let xmp = chunks
        .iter()
        .filter(|(kind, data)| {
            [b"iTXt", b"tEXt", b"zTXt"].contains(kind)
                && data.split(|&b| b == 0).next() == Some(XMP_KEYWORD.as_bytes())
        })
        .count();
    if xmp > 1 {
        what.push(format!(
            "{xmp} XMP packets, where a reader may show another one's claims"
        ));
    }
    let mut named: Vec<&[u8; 4]> = Vec::new();
    for (kind, _) in &chunks {
        let animation = [b"acTL", b"fcTL", b"fdAT"].contains(kind);
        if !animation && !CHUNKS_THAT_SHOW_NOTHING.contains(kind) && !named.contains(kind) {
            named.push(kind);
        }
    }
    for kind in named {
        let name = String::from_utf8_lossy(kind);
        what.push(match kind {
            b"gAMA" | b"cHRM" | b"sRGB" | b"iCCP" | b"cICP" | b"mDCV" | b"cLLI" => {
                format!("a {name} chunk, which changes the colours a viewer shows")
            }
            b"eXIf" => format!("an {name} chunk, which may turn or flip the picture in a viewer"),
            _ => format!("a {name} chunk, which a viewer may act on"),
        });
    }
    what
}

/// The chunks of a PNG as (type, data), in file order up to `IEND`; a truncated chunk ends the list (the
/// decoder has refused such a file before this is asked).
fn chunks(png: &[u8]) -> Vec<(&[u8; 4], &[u8])> {
    let mut found = Vec::new();
    let mut rest = png.get(8..).unwrap_or_default();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let kind: &[u8; 4] = rest[4..8].try_into().expect("4 bytes");
        let Some(data) = rest.get(8..8 + len) else {
            break;
        };
        found.push((kind, data));
        if kind == b"IEND" {
            break;
        }
        rest = rest.get(12 + len..).unwrap_or_default();
    }
    found
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

/// [`Claimed::read`] then [`Claimed::regenerate`], `signed` saying whether the front door found a valid
/// signature over the claims: `None` when `png` carries no claims to check.
pub async fn verify(
    model: Arc<Model>,
    png: &[u8],
    prompt: &str,
    signed: bool,
) -> Result<Option<Verdict>> {
    match Claimed::read(png)? {
        Some(claimed) => Ok(Some(
            claimed.signed(signed).regenerate(model, prompt).await?,
        )),
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
            pollster::block_on(verify(model.clone(), png, prompt, true))
                .unwrap()
                .unwrap()
        };
        let verdict = check(&png, prompt, &model);
        assert!(verdict.is_verified(), "{verdict:?}");
        assert_eq!(verdict.outcome(), "verified");
        // The same pixels without a signature over the claims: never VERIFIED.
        let unsigned = pollster::block_on(verify(model.clone(), &png, prompt, false))
            .unwrap()
            .unwrap();
        assert!(
            matches!(unsigned, Verdict::Unsigned { worst: 0, .. }),
            "{unsigned:?}"
        );
        assert_eq!(unsigned.outcome(), "unsigned");
        assert!(unsigned.reason().contains("no signature binds the claims"));
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
        let verdict =
            pollster::block_on(verify(model.clone(), &edit, "make it green", true)).unwrap();
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
            pollster::block_on(verify(model.clone(), &unmarked, "x", true)).unwrap(),
            None
        );

        let broken = &edit[..40];
        let err = pollster::block_on(verify(model, broken, "x", true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a readable PNG"), "{err}");
    }

    /// `claimed`'s claims over `frames` (each `[height, width, samples]` of `color` at 8 bits, or 16 when
    /// `wide`), with `before` chunks ahead of the pixels and `after` chunks behind them.
    fn rewritten(
        claimed: &Claimed,
        color: png::ColorType,
        wide: bool,
        frames: &[Vec<u8>],
        before: &[(&[u8; 4], Vec<u8>)],
        after: &[(&[u8; 4], Vec<u8>)],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, claimed.width, claimed.height);
            enc.set_color(color);
            enc.set_depth(if wide {
                png::BitDepth::Sixteen
            } else {
                png::BitDepth::Eight
            });
            enc.add_itxt_chunk(XMP_KEYWORD.into(), claimed.provenance.xmp())
                .unwrap();
            if frames.len() > 1 {
                enc.set_animated(frames.len() as u32, 0).unwrap();
            }
            let mut writer = enc.write_header().unwrap();
            for (kind, data) in before {
                writer
                    .write_chunk(png::chunk::ChunkType(**kind), data)
                    .unwrap();
            }
            for frame in frames {
                writer.write_image_data(frame).unwrap();
            }
            for (kind, data) in after {
                writer
                    .write_chunk(png::chunk::ChunkType(**kind), data)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn what_a_viewer_sees_beyond_the_first_frame_colours_is_held_to_the_regeneration() {
        let model = micro(1);
        let prompt = "a big red circle in the center";
        let png = drawn(&model, prompt, None);
        let claimed = Claimed::read(&png).unwrap().unwrap();
        let rgb = claimed.rgb.clone();
        let verdict = |file: &[u8]| {
            pollster::block_on(verify(model.clone(), file, prompt, true))
                .unwrap()
                .unwrap()
        };
        let beyond = |file: &[u8], needle: &str| {
            let v = verdict(file);
            assert_eq!(v.outcome(), "not-verified", "{v:?}");
            assert!(v.reason().contains(needle), "{needle}: {}", v.reason());
        };
        let rgba = |alpha: &dyn Fn(usize) -> u8| -> Vec<u8> {
            rgb.chunks(3)
                .enumerate()
                .flat_map(|(i, p)| [p[0], p[1], p[2], alpha(i)])
                .collect()
        };
        let (rgb_type, rgba_type) = (png::ColorType::Rgb, png::ColorType::Rgba);

        // Written again plainly, and with an alpha channel that is opaque everywhere: the same picture.
        let plain = rewritten(
            &claimed,
            rgb_type,
            false,
            std::slice::from_ref(&rgb),
            &[],
            &[],
        );
        assert!(verdict(&plain).is_verified());
        let opaque = rewritten(&claimed, rgba_type, false, &[rgba(&|_| 255)], &[], &[]);
        assert!(verdict(&opaque).is_verified());

        // An animated PNG whose first frame is the genuine picture.
        let inverted: Vec<u8> = rgb.iter().map(|v| 255 - v).collect();
        let animated = rewritten(
            &claimed,
            rgb_type,
            false,
            &[rgb.clone(), inverted],
            &[],
            &[],
        );
        assert_eq!(Claimed::read(&animated).unwrap().unwrap().rgb, rgb);
        beyond(&animated, "it is an animated PNG of 2 frames");

        // A shaped alpha channel: colours intact, a hole cut in the picture.
        let holed = rewritten(
            &claimed,
            rgba_type,
            false,
            &[rgba(&|i| if i % 32 < 8 { 0 } else { 255 })],
            &[],
            &[],
        );
        let v = verdict(&holed);
        assert!(
            matches!(
                v,
                Verdict::PixelsDiffer {
                    changed: 0,
                    not_opaque: 256,
                    ..
                }
            ),
            "{v:?}"
        );
        assert!(
            v.reason()
                .starts_with("256 pixels are transparent where the regeneration is opaque")
        );
        // The genuine RGB picture with one more chunk ahead of its pixels.
        let with_chunk = |kind: &[u8; 4], data: &[u8]| {
            rewritten(
                &claimed,
                rgb_type,
                false,
                std::slice::from_ref(&rgb),
                &[(kind, data.to_vec())],
                &[],
            )
        };
        // A transparent colour (tRNS) does the same to every pixel of that colour.
        let [r, g, b] = [rgb[0], rgb[1], rgb[2]];
        let keyed = with_chunk(b"tRNS", &[0, r, 0, g, 0, b]);
        assert!(matches!(
            verdict(&keyed),
            Verdict::PixelsDiffer { changed: 0, .. }
        ));

        // Colour chunks, an orientation, 16-bit samples and a second XMP packet behind the pixels.
        let gamma = with_chunk(b"gAMA", &100_000u32.to_be_bytes());
        beyond(
            &gamma,
            "a gAMA chunk, which changes the colours a viewer shows",
        );
        // A profile this decoder cannot even inflate is named all the same.
        let profile = with_chunk(b"iCCP", b"p\0\0not deflate");
        beyond(&profile, "a iCCP chunk, which changes the colours");
        let exif = with_chunk(b"eXIf", b"MM\0*\0\0\0\x08\0\0");
        beyond(&exif, "an eXIf chunk, which may turn or flip the picture");
        let unknown = with_chunk(b"zzZz", &[1]);
        beyond(&unknown, "a zzZz chunk, which a viewer may act on");
        let wide: Vec<u8> = rgb.iter().flat_map(|&v| [v, v]).collect();
        let sixteen = rewritten(&claimed, rgb_type, true, &[wide], &[], &[]);
        beyond(&sixteen, "16 bits a sample");
        let second_xmp = [
            XMP_KEYWORD.as_bytes(),
            b"\0\0\0\0\0",
            claimed.provenance.xmp().as_bytes(),
        ]
        .concat();
        let two_packets = rewritten(
            &claimed,
            rgb_type,
            false,
            std::slice::from_ref(&rgb),
            &[],
            &[(b"iTXt", second_xmp)],
        );
        beyond(&two_packets, "2 XMP packets");
        // Decided from the file: no model is needed, whatever prompt is given.
        let read = Claimed::read(&gamma).unwrap().unwrap();
        assert!(matches!(
            read.precheck("any prompt"),
            Some(Verdict::BeyondPixels { .. })
        ));
    }
}
