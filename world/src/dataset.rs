//! Writing "Shapes & Signs" examples to disk: PNG + JSON for people to look at, or a training shard for the
//! trainer (`trainer/`).
//!
//! Shard layout (format `tessera-shard-1`), chosen so numpy can memory-map the pixels:
//! - `images.u8`: every image, `count × 128 × 128 × 3` bytes, RGB, row-major;
//! - `examples.jsonl`: one line per example: `text`, `category`, `lang`, `tgt` (image index), `src` (image
//!   index of the image being edited, or null), and `cond` / `uncond`: the prompt token ids of
//!   [`Prompt`] with `-1` standing for the 256 tokens of the source image (the trainer knows them only once
//!   its VQ is trained); `lettering`: the pixel box `[x0, y0, x1, y1]` of the target's sign lettering
//!   ([`sign_lettering`]), or null;
//! - `meta.json`: format, seed, counts, image size and the special token ids.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;
use serde_json::json;

use crate::scenes::IMAGE_SIZE;
use crate::scenes::render::{render, sign_lettering};
use crate::scenes::sample::{Mix, Sample, example_rng, training_sample};
use tessera::generation::prompt::{
    BOS, EditLayout, GEN, IMG, IMG_END, PAD, Prompt, Segment, TEXT_VOCAB, USER,
};

/// Stands for the source image's tokens in a shard's `cond` / `uncond`.
pub const IMAGE_SLOT: i64 = -1;

/// Examples drawn and rendered in parallel per batch; bounds memory to a few hundred MB.
const BATCH: usize = 4096;

fn draw(seed: u64, mix: Mix, index: usize) -> (Sample, Vec<u8>, Option<Vec<u8>>) {
    let sample = training_sample(&mut example_rng(seed, index as u64), mix);
    let target = render(&sample.scene);
    let source = sample.source.as_ref().map(render);
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

/// Write `n` training examples drawn with `seed` and `mix` as a shard in `out`, edits in `layout`.
pub fn write_shard(
    seed: u64,
    mix: Mix,
    layout: EditLayout,
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
            .map(|i| draw(seed, mix, i))
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
            let prompt = Prompt::new(&sample.text, src.map(|_| &[][..]), layout);
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
        "edit_layout": layout,
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

/// Write `n` examples drawn with `seed` and `mix` as `NNNNN.png` (target), `NNNNN-source.png` (edits) and
/// `NNNNN.json` (caption, scene, edit) for inspection.
pub fn write_samples(
    seed: u64,
    mix: Mix,
    n: usize,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    fs::create_dir_all(out)?;
    (0..n)
        .into_par_iter()
        .try_for_each(|i| -> Result<(), String> {
            let (sample, target, source) = draw(seed, mix, i);
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
