//! Writing "Shapes & Signs" examples to disk: PNG + JSON for people to look at, or a training shard for the
//! trainer (`trainer/`).
//!
//! Shard layout (format `tessera-shard-1`), chosen so numpy can memory-map the pixels:
//! - `images.u8`: every image, `count × 128 × 128 × 3` bytes, RGB, row-major;
//! - `examples.jsonl`: one line per example: `text`, `category`, `lang`, `tgt` (image index), `src` (image
//!   index of the image being edited, or of the sign drawn alone in a shard with `sign_glyphs`; else null), and `cond` / `uncond`: the prompt token ids of
//!   [`Prompt`] with `-1` standing for the 256 tokens of the source image (the trainer knows them only once
//!   its VQ is trained); `lettering`: the pixel box `[x0, y0, x1, y1]` of the target's sign lettering
//!   ([`sign_lettering`]), or null;
//! - `meta.json`: format, seed, counts, image size, the special token ids, and the prompt format
//!   ([`Prompts`]) the trainer writes into the model's config.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;
use serde_json::json;

use crate::scenes::IMAGE_SIZE;
use crate::scenes::render::render;
use crate::scenes::sample::{Mix, Sample, example_rng, training_sample};
use crate::scenes::sign::{sign_lettering, sign_picture};
use tessera::generation::prompt::{
    BOS, EditLayout, GEN, IMG, IMG_END, PAD, Prompt, Segment, TEXT_VOCAB, USER,
};

/// Stands for the source image's tokens in a shard's `cond` / `uncond`.
pub const IMAGE_SLOT: i64 = -1;

/// Examples drawn and rendered in parallel per batch; bounds memory to a few hundred MB.
const BATCH: usize = 4096;

/// How a shard lays out its prompts: what a model trained on it must be prompted with (its config's
/// `edit_layout` and `sign_glyphs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Prompts {
    pub edit_layout: EditLayout,
    /// New pictures with a sign carry the sign drawn alone as their context image, as the engine prompts
    /// a model with `sign_glyphs` ([`tessera::generation::sign_glyphs`]).
    pub sign_glyphs: bool,
}

/// Example `index`: the sample, its target image and its context image (the edit's source, or the sign
/// alone when `prompts` asks for sign glyphs).
fn draw(seed: u64, mix: Mix, prompts: Prompts, index: usize) -> (Sample, Vec<u8>, Option<Vec<u8>>) {
    let sample = training_sample(&mut example_rng(seed, index as u64), mix);
    let target = render(&sample.scene);
    let source = match &sample.source {
        Some(source) => Some(render(source)),
        None if prompts.sign_glyphs => sign_picture(&sample.scene),
        None => None,
    };
    (sample, target, source)
}

fn flatten(segments: &[Segment]) -> Vec<i64> {
    let mut ids = Vec::new();
    for s in segments {
        match s {
            Segment::Text(t) => ids.extend(t.iter().map(|&i| i as i64)),
            Segment::Image(_) => ids.push(IMAGE_SLOT),
        }
    }
    ids
}

/// Write `n` training examples drawn with `seed` and `mix` as a shard in `out`, prompted as `prompts` says.
pub fn write_shard(
    seed: u64,
    mix: Mix,
    prompts: Prompts,
    n: usize,
    out: &Path,
) -> std::io::Result<()> {
    fs::create_dir_all(out)?;
    let mut images = BufWriter::new(File::create(out.join("images.u8"))?);
    let mut examples = BufWriter::new(File::create(out.join("examples.jsonl"))?);
    let mut image_count = 0usize;
    for start in (0..n).step_by(BATCH) {
        let batch: Vec<_> = (start..(start + BATCH).min(n))
            .into_par_iter()
            .map(|i| draw(seed, mix, prompts, i))
            .collect();
        for (sample, target, source) in batch {
            let src = source.map(|pixels| {
                images.write_all(&pixels)?;
                image_count += 1;
                Ok::<_, std::io::Error>(image_count - 1)
            });
            let src = src.transpose()?;
            images.write_all(&target)?;
            image_count += 1;
            // The shard only marks where the source image goes; its tokens come from the trainer's VQ.
            let prompt = Prompt::new(&sample.text, src.map(|_| &[][..]), prompts.edit_layout);
            let line = json!({
                "text": sample.text,
                "category": sample.category,
                "lang": sample.lang,
                "tgt": image_count - 1,
                "src": src,
                "cond": flatten(&prompt.cond),
                "uncond": flatten(&prompt.uncond),
                "lettering": sample.scene.sign.as_ref().map(sign_lettering),
            });
            writeln!(examples, "{line}")?;
        }
    }
    images.flush()?;
    examples.flush()?;
    let meta = json!({
        "format": "tessera-shard-1",
        "seed": seed,
        "mix": mix.to_json(),
        "edit_layout": prompts.edit_layout,
        "sign_glyphs": prompts.sign_glyphs,
        "examples": n,
        "images": image_count,
        "image_size": IMAGE_SIZE,
        "image_slot": IMAGE_SLOT,
        "tokens": {
            "pad": PAD, "bos": BOS, "user": USER, "gen": GEN,
            "img": IMG, "img_end": IMG_END, "text_vocab": TEXT_VOCAB,
        },
    });
    fs::write(
        out.join("meta.json"),
        serde_json::to_string_pretty(&meta)? + "\n",
    )
}

/// Write `n` examples drawn with `seed` and `mix` as `NNNNN.png` (target), `NNNNN-source.png` (the context
/// image: an edit's source, or the sign alone) and `NNNNN.json` (caption, scene, edit) for inspection.
pub fn write_samples(
    seed: u64,
    mix: Mix,
    prompts: Prompts,
    n: usize,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    fs::create_dir_all(out)?;
    (0..n)
        .into_par_iter()
        .try_for_each(|i| -> Result<(), String> {
            let (sample, target, source) = draw(seed, mix, prompts, i);
            let save = |name: String, pixels: &[u8]| {
                image::save_buffer(
                    out.join(name),
                    pixels,
                    IMAGE_SIZE as u32,
                    IMAGE_SIZE as u32,
                    image::ColorType::Rgb8,
                )
                .map_err(|e| e.to_string())
            };
            save(format!("{i:05}.png"), &target)?;
            if let Some(src) = source {
                save(format!("{i:05}-source.png"), &src)?;
            }
            let json = serde_json::to_string_pretty(&sample).map_err(|e| e.to_string())?;
            fs::write(out.join(format!("{i:05}.json")), json + "\n").map_err(|e| e.to_string())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenes::IMAGE_SIZE;
    use crate::scenes::sample::Category;

    /// What a shard with sign glyphs teaches is what the engine prompts with: for every sign caption the
    /// engine draws, from the caption alone, the context image the shard stores, and that image is the
    /// target's sign exactly where the target has it.
    #[test]
    fn the_engine_draws_the_sign_glyphs_a_shard_was_trained_on() {
        let prompts = Prompts {
            sign_glyphs: true,
            ..Prompts::default()
        };
        let mut signs = 0;
        for i in 0..400 {
            let (sample, target, source) = draw(21, Mix::default(), prompts, i);
            let from_caption = tessera::generation::sign_glyphs(&sample.text);
            if sample.category == Category::Edit {
                assert_eq!(
                    source,
                    sample.source.as_ref().map(render),
                    "{}",
                    sample.text
                );
                continue;
            }
            assert_eq!(from_caption, source, "{}", sample.text);
            let Some(glyphs) = source else {
                assert!(sample.scene.sign.is_none(), "{}", sample.text);
                continue;
            };
            signs += 1;
            let sign = sample.scene.sign.as_ref().unwrap();
            let (x0, y0, w, h) = crate::scenes::sign::sign_board(sign);
            for y in 0..IMAGE_SIZE {
                for x in 0..IMAGE_SIZE {
                    let p = (y * IMAGE_SIZE + x) * 3;
                    let on_board = (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
                    let want = if on_board {
                        &target[p..p + 3]
                    } else {
                        &sample.scene.background.rgb()[..]
                    };
                    assert_eq!(&glyphs[p..p + 3], want, "{} at ({x}, {y})", sample.text);
                }
            }
        }
        assert!(signs > 30, "{signs} sign captions drawn");
        // Without sign glyphs, a new picture has no context image.
        let (sample, _, source) = draw(21, Mix::default(), Prompts::default(), 0);
        assert_eq!(source.is_some(), sample.source.is_some());
    }
}
