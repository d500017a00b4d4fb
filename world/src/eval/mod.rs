//! ShapesEval: draw fresh scenes from the generator with a seed, generate each with the model, read the
//! result back with the [`detector`], and score it against the scene the prompt described.
//!
//! Splits, drawn in turn so every n has them in fixed proportions:
//! - `single`: one object; right when shape, colour and position are right;
//! - `multi`: two to four objects; per object;
//! - `grid`: full 3×3 and 4×4 grids; per object;
//! - `text`: a sign; right when the word is read back exactly; `text_letters` is the share of the asked
//!   word's letters read back in their place (partial credit, so progress shows before whole words do);
//! - `edit`: an instruction on a ground-truth source image; right when the result parses to the target scene
//!   (every object, the background, the sign's word, nothing extra); `edit_preserved` is the share of pixels
//!   the edit does not touch that stay within `PRESERVE_TOLERANCE` of the source; `edit_ops` is
//!   `edit_correct` per kind of edit (add, remove, recolor, move, background, sign_text);
//! - `zh`: one to four objects captioned in Chinese; the same scenes are also generated from their English
//!   captions, reported as `zh_en`, so the two are compared on identical scenes;
//! - `heldout`: one to three objects, at least one a held-out shape × colour pair; per object;
//! - `paraphrase`: single, multi and grid scenes (in turn; a third in Chinese) prompted in words unlike the
//!   captions' ([`paraphrase`]): `paraphrase_raw` per object with the prompt as typed,
//!   `paraphrase_interpreted` per object with the prompt as the engine's interpreter reads it, and
//!   `paraphrase_read` the share of prompts the interpreter reads as exactly their scene;
//! - `replace`: a follow-up that describes a whole new scene (one object, several, or a sign) after a
//!   ground-truth picture, put to the model as the app puts it (the interpreter decides new picture or
//!   edit, and the model reads its canonical text, with the picture as context for an edit); right when
//!   the result is the new scene (every object, the background, the word, nothing extra);
//!   `replace_read` the share the interpreter reads as a new picture.
//!
//! `--only SPLIT` runs the samples of one split that a full run nine times as long would draw.
//!
//! `vq_psnr` is the VQ's reconstruction of every ground-truth target image; `vq_text` the share of signs
//! whose word still reads right after that round trip (the ceiling the tokenizer puts on `text`);
//! `detector_gt` is the detector's per-object (and per-word) accuracy on the ground-truth images: the judge
//! judged.

pub mod detector;
pub mod paraphrase;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use serde::Serialize;

use crate::scenes::render::render;
use crate::scenes::sample::{Category, HeldOut, Sample, example_rng, sample};
use crate::scenes::{IMAGE_SIZE, Lang, Scene};
use detector::{Detected, detect};
use tessera::Generation;
use tessera::Model;
use tessera::Result;
use tessera::Settings;
use tessera::interpret::{Before, Kind, interpret};

/// A channel may differ by this much from the source and still count as preserved (VQ reconstruction alone
/// moves edges by about this much).
pub const PRESERVE_TOLERANCE: u8 = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Single,
    Multi,
    Grid,
    Text,
    Edit,
    Zh,
    HeldOut,
    Paraphrase,
    Replace,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Single => "single",
            Split::Multi => "multi",
            Split::Grid => "grid",
            Split::Text => "text",
            Split::Edit => "edit",
            Split::Zh => "zh",
            Split::HeldOut => "heldout",
            Split::Paraphrase => "paraphrase",
            Split::Replace => "replace",
        }
    }
}

/// One generated sample, as [`run`] hands it to its observer (to show progress, or to keep the images).
pub struct Outcome<'a> {
    pub index: usize,
    pub split: &'static str,
    pub prompt: &'a str,
    /// The generated image, RGB.
    pub image: &'a [u8],
    /// The image an edit started from, RGB.
    pub source: Option<&'a [u8]>,
    /// Everything in the scene right and nothing extra (the `single` and `edit_correct` criterion).
    pub right: bool,
}

const SPLITS: [Split; 9] = [
    Split::Single,
    Split::Multi,
    Split::Grid,
    Split::Text,
    Split::Edit,
    Split::Zh,
    Split::HeldOut,
    Split::Paraphrase,
    Split::Replace,
];

/// Right / total, reported as a fraction.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    right: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, right: usize, total: usize) {
        self.right += right;
        self.total += total;
    }

    fn fraction(self) -> Option<f64> {
        (self.total > 0).then(|| self.right as f64 / self.total as f64)
    }
}

/// ShapesEval's result: fractions in [0, 1] (null when a split had no samples), `vq_psnr` in dB.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub single: Option<f64>,
    pub multi: Option<f64>,
    pub grid: Option<f64>,
    pub text: Option<f64>,
    pub text_letters: Option<f64>,
    pub edit_correct: Option<f64>,
    /// `edit_correct` by kind of edit.
    pub edit_ops: BTreeMap<&'static str, f64>,
    pub edit_preserved: Option<f64>,
    pub zh: Option<f64>,
    pub zh_en: Option<f64>,
    pub heldout: Option<f64>,
    pub paraphrase_raw: Option<f64>,
    pub paraphrase_interpreted: Option<f64>,
    pub paraphrase_read: Option<f64>,
    pub replace: Option<f64>,
    pub replace_read: Option<f64>,
    /// Share of images whose background colour is right.
    pub background: Option<f64>,
    /// Share of cells that should be empty where something was drawn.
    pub extra_objects: Option<f64>,
    pub vq_psnr: f64,
    pub vq_text: Option<f64>,
    pub detector_gt: Option<f64>,
    pub n: usize,
    /// The one split run (`--only`), or null for a full run.
    pub only: Option<String>,
    pub seed: u64,
    pub seconds: f64,
    pub settings: Settings,
    pub model_id: String,
    pub model_sha256: String,
}

/// How one generated image scored against its scene.
struct Score {
    objects_right: usize,
    objects: usize,
    background_right: bool,
    word_right: Option<bool>,
    /// Letters of the scene's word read back in their place, and the word's length.
    letters: (usize, usize),
    extra: usize,
    empty_cells: usize,
}

impl Score {
    fn all_right(&self) -> bool {
        self.objects_right == self.objects
            && self.background_right
            && self.word_right != Some(false)
            && self.extra == 0
    }
}

fn score(img: &[u8], scene: &Scene) -> Score {
    let d: Detected = detect(img, scene.layout, scene.sign.as_ref().map(|s| s.row));
    let n = scene.layout.n() as usize;
    let mut objects_right = 0;
    for o in &scene.objects {
        let f = d.cells[o.row as usize * n + o.col as usize];
        objects_right += f.is_some_and(|f| f.shape == o.shape && f.color == o.color) as usize;
    }
    let mut extra = 0;
    let mut empty_cells = 0;
    for (i, cell) in d.cells.iter().enumerate() {
        let (row, col) = ((i / n) as u8, (i % n) as u8);
        if scene.object_at(row, col).is_none()
            && scene.sign.as_ref().is_none_or(|s| s.row != row || n != 3)
        {
            empty_cells += 1;
            extra += cell.is_some() as usize;
        }
    }
    Score {
        objects_right,
        objects: scene.objects.len(),
        background_right: d.background == scene.background,
        word_right: scene
            .sign
            .as_ref()
            .map(|s| d.word.as_deref() == Some(s.word.as_str())),
        letters: scene.sign.as_ref().map_or((0, 0), |s| {
            let read = d.word.as_deref().unwrap_or("");
            let right = s.word.bytes().zip(read.bytes()).filter(|(a, b)| a == b);
            (right.count(), s.word.len())
        }),
        extra,
        empty_cells,
    }
}

/// Share of the pixels an edit leaves alone (identical in the source and target renders, and at least 3 px
/// from any pixel it changes) that stay within `PRESERVE_TOLERANCE` in the generated image.
fn preserved(generated: &[u8], source: &[u8], target: &[u8]) -> (usize, usize) {
    let s = IMAGE_SIZE;
    let changed: Vec<bool> = (0..s * s)
        .map(|p| source[p * 3..p * 3 + 3] != target[p * 3..p * 3 + 3])
        .collect();
    let near_change = |x: usize, y: usize| {
        let r = 3usize;
        (y.saturating_sub(r)..(y + r + 1).min(s))
            .any(|yy| (x.saturating_sub(r)..(x + r + 1).min(s)).any(|xx| changed[yy * s + xx]))
    };
    let (mut kept, mut total) = (0, 0);
    for y in 0..s {
        for x in 0..s {
            if near_change(x, y) {
                continue;
            }
            total += 1;
            let p = (y * s + x) * 3;
            kept += (0..3).all(|c| generated[p + c].abs_diff(source[p + c]) <= PRESERVE_TOLERANCE)
                as usize;
        }
    }
    (kept, total)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-10)).log10()
}

fn draw(seed: u64, i: usize) -> (Split, Sample, Option<Sample>) {
    let split = SPLITS[i % SPLITS.len()];
    let mut rng = example_rng(seed, i as u64);
    let (category, lang, held) = match split {
        Split::Single => (Category::Single, Lang::En, HeldOut::Exclude),
        Split::Multi => (Category::Multi, Lang::En, HeldOut::Exclude),
        Split::Grid => (Category::Grid, Lang::En, HeldOut::Exclude),
        Split::Text => (Category::Sign, Lang::En, HeldOut::Exclude),
        Split::Edit => (Category::Edit, Lang::En, HeldOut::Exclude),
        Split::Zh => (
            if i.is_multiple_of(2) {
                Category::Single
            } else {
                Category::Multi
            },
            Lang::Zh,
            HeldOut::Exclude,
        ),
        Split::HeldOut => (
            if i.is_multiple_of(2) {
                Category::Single
            } else {
                Category::Multi
            },
            Lang::En,
            HeldOut::Require,
        ),
        Split::Paraphrase => {
            let k = i / SPLITS.len();
            let category = [Category::Single, Category::Multi, Category::Grid][k % 3];
            let lang = if k % 3 == 1 { Lang::Zh } else { Lang::En };
            (category, lang, HeldOut::Exclude)
        }
        Split::Replace => {
            let k = i / SPLITS.len();
            let category = [Category::Single, Category::Multi, Category::Sign][k % 3];
            (category, Lang::En, HeldOut::Exclude)
        }
    };
    let mut s = sample(&mut rng, category, lang, held);
    if split == Split::Paraphrase {
        s.text = paraphrase::paraphrase(&mut rng, &s.scene, lang);
    }
    if split == Split::Replace {
        // The picture before: another scene of one to four objects.
        let before = [Category::Single, Category::Multi][rng.random_range(0..2)];
        s.source = Some(sample(&mut rng, before, Lang::En, held).scene);
    }
    // Grids in the eval are the hard ones: 3×3 and 4×4.
    while split == Split::Grid && s.scene.layout.n() < 3 {
        s = sample(&mut rng, category, lang, held);
    }
    let english = (split == Split::Zh).then(|| Sample {
        text: crate::scenes::caption::describe(&mut rng, &s.scene, Lang::En),
        lang: Lang::En,
        ..s.clone()
    });
    (split, s, english)
}

/// What `--only` with an unknown name is told: every name of [`split_names`] (a unit test keeps the two
/// alike; an error's reason is a `&'static str`).
const UNKNOWN_SPLIT: &str =
    "use one of single, multi, grid, text, edit, zh, heldout, paraphrase, replace";

/// The names of ShapesEval's splits, in the order samples are drawn.
pub fn split_names() -> impl Iterator<Item = &'static str> {
    SPLITS.iter().map(|s| s.name())
}

/// Run ShapesEval: `n` samples drawn with `seed`, generated with `settings` (each sample's sampler seed is
/// derived from `seed` and its index). With `only` (a name of [`split_names`]), the `n` samples are that
/// split's: the very samples a full run of 9·`n` would hold, so a split's figure costs a ninth of the
/// time. `observe` sees each sample once it is scored.
pub fn run(
    model: &Arc<Model>,
    seed: u64,
    n: usize,
    only: Option<&str>,
    settings: &Settings,
    mut observe: impl FnMut(Outcome),
) -> Result<Report> {
    let indices: Vec<usize> = match only {
        None => (0..n).collect(),
        Some(name) => {
            let Some(first) = split_names().position(|s| s == name) else {
                return Err(tessera::TesseraError::Setting {
                    name: "only",
                    value: name.into(),
                    reason: UNKNOWN_SPLIT,
                });
            };
            (0..n).map(|k| first + k * SPLITS.len()).collect()
        }
    };
    let start = Instant::now();
    let mut t: std::collections::HashMap<&str, Tally> = Default::default();
    let mut ops: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut psnr_sum = 0.0;
    for &i in &indices {
        let (split, s, english) = draw(seed, i);
        let target = render(&s.scene);
        // The judge on ground truth, and the VQ on ground truth.
        let gt = score(&target, &s.scene);
        t.entry("detector_gt").or_default().add(
            gt.objects_right + gt.word_right.map_or(0, usize::from),
            gt.objects + gt.word_right.is_some() as usize,
        );
        let codes = pollster::block_on(model.encode_rgb(&target))?;
        let reconstruction = pollster::block_on(tessera::generation::decode_tokens(model, &codes))?;
        psnr_sum += psnr(&reconstruction, &target);
        if s.scene.sign.is_some() {
            let word_right = score(&reconstruction, &s.scene).word_right == Some(true);
            t.entry("vq_text").or_default().add(word_right as usize, 1);
        }

        let source_render = s.source.as_ref().map(render);
        let context = match &source_render {
            Some(src) => Some(pollster::block_on(model.encode_rgb(src))?),
            None => None,
        };
        let per_sample = Settings {
            seed: seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            ..settings.clone()
        };
        let img = match split {
            Split::Replace => {
                let before = s
                    .source
                    .as_ref()
                    .expect("replace samples carry the picture before");
                let reading = interpret(&s.text, Before::Picture(Some(before)), None);
                t.entry("replace_read")
                    .or_default()
                    .add((reading.kind == Kind::New) as usize, 1);
                let context = context.as_deref().filter(|_| reading.kind == Kind::Edit);
                generate(model, &reading.canonical, context, &per_sample)?
            }
            _ => generate(model, &s.text, context.as_deref(), &per_sample)?,
        };
        let sc = score(&img, &s.scene);
        t.entry("background")
            .or_default()
            .add(sc.background_right as usize, 1);
        t.entry("extra").or_default().add(sc.extra, sc.empty_cells);
        match split {
            Split::Single => t
                .entry("single")
                .or_default()
                .add((sc.objects_right == sc.objects) as usize, 1),
            Split::Multi => t
                .entry("multi")
                .or_default()
                .add(sc.objects_right, sc.objects),
            Split::Grid => t
                .entry("grid")
                .or_default()
                .add(sc.objects_right, sc.objects),
            Split::Text => {
                t.entry("text")
                    .or_default()
                    .add((sc.word_right == Some(true)) as usize, 1);
                t.entry("text_letters")
                    .or_default()
                    .add(sc.letters.0, sc.letters.1);
            }
            Split::HeldOut => t
                .entry("heldout")
                .or_default()
                .add(sc.objects_right, sc.objects),
            Split::Edit => {
                t.entry("edit_correct")
                    .or_default()
                    .add(sc.all_right() as usize, 1);
                let op = s.edit.as_ref().expect("edit samples carry their edit").op();
                ops.entry(op).or_default().add(sc.all_right() as usize, 1);
                let (kept, total) = preserved(&img, source_render.as_ref().unwrap(), &target);
                t.entry("edit_preserved").or_default().add(kept, total);
            }
            Split::Paraphrase => {
                t.entry("paraphrase_raw")
                    .or_default()
                    .add(sc.objects_right, sc.objects);
                let reading = interpret(&s.text, Before::Nothing, None);
                t.entry("paraphrase_read")
                    .or_default()
                    .add((reading.scene.as_ref() == Some(&s.scene)) as usize, 1);
                let read = generate(model, &reading.canonical, None, &per_sample)?;
                let sc_read = score(&read, &s.scene);
                t.entry("paraphrase_interpreted")
                    .or_default()
                    .add(sc_read.objects_right, sc_read.objects);
            }
            Split::Replace => t
                .entry("replace")
                .or_default()
                .add(sc.all_right() as usize, 1),
            Split::Zh => {
                t.entry("zh").or_default().add(sc.objects_right, sc.objects);
                let en = english.expect("zh samples carry their English caption");
                let sc_en = score(&generate(model, &en.text, None, &per_sample)?, &en.scene);
                t.entry("zh_en")
                    .or_default()
                    .add(sc_en.objects_right, sc_en.objects);
            }
        }
        observe(Outcome {
            index: i,
            split: split.name(),
            prompt: &s.text,
            image: &img,
            source: source_render.as_deref(),
            right: sc.all_right(),
        });
    }
    let f = |k: &str| t.get(k).and_then(|x| x.fraction());
    Ok(Report {
        single: f("single"),
        multi: f("multi"),
        grid: f("grid"),
        text: f("text"),
        text_letters: f("text_letters"),
        edit_correct: f("edit_correct"),
        edit_ops: ops
            .into_iter()
            .filter_map(|(op, tally)| Some((op, tally.fraction()?)))
            .collect(),
        edit_preserved: f("edit_preserved"),
        zh: f("zh"),
        zh_en: f("zh_en"),
        heldout: f("heldout"),
        paraphrase_raw: f("paraphrase_raw"),
        paraphrase_interpreted: f("paraphrase_interpreted"),
        paraphrase_read: f("paraphrase_read"),
        replace: f("replace"),
        replace_read: f("replace_read"),
        background: f("background"),
        extra_objects: f("extra"),
        vq_psnr: if n > 0 { psnr_sum / n as f64 } else { 0.0 },
        only: only.map(str::to_owned),
        vq_text: f("vq_text"),
        detector_gt: f("detector_gt"),
        n,
        seed,
        seconds: start.elapsed().as_secs_f64(),
        settings: settings.clone(),
        model_id: model.config.model_id.clone(),
        model_sha256: model.sha256.clone(),
    })
}

fn generate(
    model: &Arc<Model>,
    text: &str,
    context: Option<&[u32]>,
    settings: &Settings,
) -> Result<Vec<u8>> {
    let mut g = Generation::new(model.clone(), text, context, settings.clone())?;
    while pollster::block_on(g.step())?.is_some() {}
    Ok(g.image().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_split_name_is_told_every_split() {
        let names: Vec<_> = split_names().collect();
        assert_eq!(UNKNOWN_SPLIT, format!("use one of {}", names.join(", ")));
    }

    #[test]
    fn ground_truth_scores_perfectly_and_blank_images_do_not() {
        for i in 0..28 {
            let (_, s, _) = draw(5, i);
            let img = render(&s.scene);
            assert!(score(&img, &s.scene).all_right(), "{}", s.text);
            let blank = render(&Scene {
                objects: vec![],
                sign: None,
                ..s.scene.clone()
            });
            let sc = score(&blank, &s.scene);
            assert!(
                !sc.all_right() || (s.scene.objects.is_empty() && s.scene.sign.is_none()),
                "{}",
                s.text
            );
        }
    }

    #[test]
    fn preservation_counts_untouched_pixels_only() {
        let (_, s, _) = (0..)
            .map(|i| draw(6, i))
            .find(|(split, _, _)| *split == Split::Edit)
            .unwrap();
        let (src, tgt) = (render(s.source.as_ref().unwrap()), render(&s.scene));
        let (kept, total) = preserved(&tgt, &src, &tgt);
        assert_eq!(kept, total, "the target itself preserves everything");
        let inverted: Vec<u8> = tgt.iter().map(|v| 255 - v).collect();
        let (kept, _) = preserved(&inverted, &src, &tgt);
        assert!(kept < total / 10);
    }
}
