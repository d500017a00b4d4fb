//! The Rust engine against the PyTorch reference (`trainer/parity.py`) on both shipped models: prefill and
//! KV-cached logits at every step of a greedy CFG run, the generated tokens and image, the VQ decode and
//! encode, and the first steps of an edit. Reference outputs are float32 on the CPU; so is this side, so
//! differences are float32 rounding. Regenerate the fixtures with
//! `trainer/parity.py MODEL_DIR tests/fixtures/parity-NAME` whenever a model's weights change.

use std::sync::Arc;

use crate::common::{cases, ints, max_abs_diff, root};
use burn::tensor::Device;
use tessera::generation::{Prompt, Segment};
use tessera::{Generation, Model, Settings};

/// (model folder, fixture) pairs.
const MODELS: [(&str, &str); 2] = [
    (
        "models/tessera-shapes",
        "tests/fixtures/parity-default/cases.safetensors",
    ),
    (
        "models/tessera-tiny",
        "tests/fixtures/parity-tiny/cases.safetensors",
    ),
];

/// What the reference was run on (`cases.json` beside the fixture's tensors): the prompt, the edit
/// instruction, and the guidance scale of both runs.
struct Inputs {
    prompt: String,
    edit: String,
    guidance: f32,
}

fn inputs(fixture: &str) -> Inputs {
    let path = root().join(fixture).with_file_name("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |name: &str| json[name].clone();
    Inputs {
        prompt: field("prompt").as_str().expect("cases.json: prompt").into(),
        edit: field("edit").as_str().expect("cases.json: edit").into(),
        // Written as `cfg` by the reference script.
        guidance: field("cfg").as_f64().expect("cases.json: cfg") as f32,
    }
}
/// Logits are O(10); float32 sums over 384-wide rows in another order differ by about 1e-5 per layer.
const LOGIT_TOL: f64 = 2e-3;
const PIXEL_TOL: f64 = 1e-3;

fn model(dir: &str) -> Arc<Model> {
    Arc::new(Model::load_dir(&root().join(dir), &Device::flex()).expect("the shipped model loads"))
}

fn flat(segments: &[Segment]) -> Vec<u32> {
    segments
        .iter()
        .flat_map(|s| match s {
            Segment::Text(t) | Segment::Image(t) => t.clone(),
        })
        .collect()
}

#[test]
fn prompt_ids_match_the_reference_format() {
    let c = cases(MODELS[0].1);
    let p = Prompt::new(&inputs(MODELS[0].1).prompt, None, Default::default());
    assert_eq!(flat(&p.cond), ints(&c["prompt_ids"].1));
    assert_eq!(flat(&p.uncond), ints(&c["uncond_ids"].1));
}

#[test]
fn greedy_guided_run_matches_the_reference_step_by_step() {
    for (dir, fixture) in MODELS {
        let (c, given) = (cases(fixture), inputs(fixture));
        let model = model(dir);
        let settings = Settings {
            guidance: given.guidance,
            ..Settings::greedy()
        };
        let mut g = Generation::new(model.clone(), &given.prompt, None, settings).unwrap();
        let k = model.config.transformer.codebook_size;
        let (_, ref_logits) = &c["greedy_logits"];
        let mut worst = 0.0f64;
        let mut i = 0;
        while pollster::block_on(g.step()).unwrap().is_some() {
            let d = max_abs_diff(g.last_logits(), &ref_logits[i * 2 * k..(i + 1) * 2 * k]);
            worst = worst.max(d);
            assert!(d < LOGIT_TOL, "{dir} step {i}: logits differ by {d}");
            i += 1;
        }
        assert_eq!(
            g.tokens(),
            ints(&c["greedy_tokens"].1).as_slice(),
            "greedy tokens"
        );
        let px: Vec<f32> = g.image().iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
        // The engine's bytes against the reference's floats: rounding to bytes costs up to half a level.
        let (_, ref_img) = &c["greedy_image"];
        let ref_bytes: Vec<f64> = (0..px.len())
            .map(|j| {
                let (p, ch) = (j / 3, j % 3);
                let v = ref_img[ch * (px.len() / 3) + p];
                ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) / 127.5 - 1.0
            })
            .collect();
        let d = max_abs_diff(&px, &ref_bytes);
        assert!(d <= 1.0 / 127.5 + 1e-6, "image differs by {d}");
        eprintln!("{dir}: worst logit difference over {i} steps: {worst:.2e}");
    }
}

#[test]
fn vq_encode_and_decode_match_the_reference() {
    for (dir, fixture) in MODELS {
        let c = cases(fixture);
        let model = model(dir);
        let (_, input) = &c["encode_input"];
        let size = model.config.image_size;
        let rgb: Vec<u8> = (0..size * size * 3)
            .map(|j| {
                let (p, ch) = (j / 3, j % 3);
                ((input[ch * size * size + p] + 1.0) * 127.5).round() as u8
            })
            .collect();
        let ids = pollster::block_on(model.encode_rgb(&rgb)).unwrap();
        assert_eq!(ids, ints(&c["encode_indices"].1));
        let tokens = ints(&c["greedy_tokens"].1);
        let decoded = model.codec.decode(
            burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(
                    tokens.iter().map(|&t| t as i64).collect::<Vec<_>>(),
                    [1, tokens.len()],
                ),
                model.device(),
            ),
            model.config.grid(),
        );
        let values = pollster::block_on(tessera::model::read_floats(decoded)).unwrap();
        let d = max_abs_diff(&values, &c["greedy_image"].1);
        assert!(d < PIXEL_TOL, "decode differs by {d}");
    }
}

#[test]
fn edit_run_matches_the_reference_step_by_step() {
    for (dir, fixture) in MODELS {
        let (c, given) = (cases(fixture), inputs(fixture));
        let model = model(dir);
        let context = ints(&c["encode_indices"].1);
        let mut g = Generation::new(
            model.clone(),
            &given.edit,
            Some(&context),
            Settings {
                guidance: given.guidance,
                keep: 0.0, // the reference samples the guided logits as they are
                ..Settings::greedy()
            },
        )
        .unwrap();
        let k = model.config.transformer.codebook_size;
        let ref_tokens = ints(&c["edit_tokens"].1);
        let (_, ref_logits) = &c["edit_logits"];
        for (i, &token) in ref_tokens.iter().enumerate() {
            pollster::block_on(g.step()).unwrap();
            let d = max_abs_diff(g.last_logits(), &ref_logits[i * 2 * k..(i + 1) * 2 * k]);
            assert!(d < LOGIT_TOL, "{dir} edit step {i}: logits differ by {d}");
            assert_eq!(g.tokens()[i], token, "{dir} edit step {i}: token");
        }
    }
}
