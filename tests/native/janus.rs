//! The Janus family against the reference code on `tests/fixtures/janus-tiny` (random weights made by
//! deepseek-ai/Janus's own classes with Janus's key names; its README says how): prefill, teacher forcing,
//! guidance, greedy generation, and the VQ-16 decode and encode, on the CPU and on wgpu.
//!
//! Both sides are float32. The reference's own KV-cached and uncached runs differ by 2.6e-6, its smallest
//! greedy top-1/top-2 gap is 0.136 and its smallest encoder argmin gap 0.018, so logits and pixels must
//! agree to [`TOL`] and every integer sequence exactly.

use std::sync::Arc;

use crate::common::{cases, ints, max_abs_diff, root};
use burn::tensor::{Device, Int, Tensor, TensorData};
use tessera::config::Family;
use tessera::model::kv_cache::KvCache;
use tessera::model::{Codec, read_floats, read_ints};
use tessera::{Generation, Model, Settings};

pub(crate) const FIXTURE: &str = "tests/fixtures/janus-tiny";
/// Logits are O(4) and images O(2) here; float32 sums in another order move them by ~1e-6.
const TOL: f64 = 1e-4;

type Cases = std::collections::HashMap<String, (Vec<usize>, Vec<f64>)>;

fn fixture() -> Cases {
    cases(&format!("{FIXTURE}/cases.safetensors"))
}

fn load(device: &Device) -> Arc<Model> {
    Arc::new(Model::load_dir(&root().join(FIXTURE), device).expect("janus-tiny loads"))
}

/// The fixture prompt's two rows through the decoder: the guided image logits of the last position.
pub(crate) fn prefill_logits(model: &Model) -> Vec<f32> {
    let (c, device) = (fixture(), model.device());
    let rows: Vec<i64> = c["cfg_batch_tokens"].1.iter().map(|&v| v as i64).collect();
    let len = rows.len() / 2;
    let t = &model.transformer;
    let mut cache = KvCache::new(&model.config.transformer, 2, len, device);
    let hidden = t.forward(t.embed_text(ids(rows, [2, len], device)), &mut cache);
    let dim = model.config.transformer.dim;
    let logits = floats(t.image_logits(hidden.narrow(1, len - 1, 1).reshape([2, dim])));
    let k = model.config.transformer.codebook_size;
    let guidance = model.config.default_settings().guidance;
    tessera::generation::sampler::guide(&logits[..k], &logits[k..], guidance)
}

/// (a): the prefill's guided logits against the reference's, within `tolerance`.
pub(crate) fn prefill_matches(model: &Model, tolerance: f64) {
    let d = max_abs_diff(&prefill_logits(model), &fixture()["a_prefill_logits_cfg"].1);
    eprintln!("prefill guided logits: {d:.1e}");
    assert!(
        d < tolerance,
        "prefill differs from the reference by {d:.2e}"
    );
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    pollster::block_on(read_floats(t)).unwrap()
}

fn ids<const D: usize>(values: Vec<i64>, shape: [usize; D], device: &Device) -> Tensor<D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn check(what: &str, got: &[f32], want: &[f64]) {
    let d = max_abs_diff(got, want);
    eprintln!("{what}: {d:.1e}");
    assert!(d < TOL, "{what}: differs from the reference by {d:.2e}");
}

/// (a) and (b): the prompt's two rows through the decoder, then each forced token fed to both rows.
fn teacher_forcing_matches(device: &Device) {
    let (c, model) = (fixture(), load(device));
    let t = &model.transformer;
    let (dim, k) = (
        model.config.transformer.dim,
        model.config.transformer.codebook_size,
    );
    let rows: Vec<i64> = c["cfg_batch_tokens"].1.iter().map(|&v| v as i64).collect();
    let len = rows.len() / 2;
    let embeds = t.embed_text(ids(rows, [2, len], device)); // [2, 12, D]
    check(
        "prompt embeddings",
        &floats(embeds.clone()),
        &c["cfg_batch_embeds"].1,
    );
    let mut cache = KvCache::new(&model.config.transformer, 2, len + 16, device);
    let mut hidden = t
        .forward(embeds, &mut cache)
        .narrow(1, len - 1, 1)
        .reshape([2, dim]);
    let forced = ints(&c["b_forced_tokens"].1);
    let settings = model.config.default_settings();
    for (step, &token) in forced.iter().enumerate() {
        let h = floats(hidden.clone());
        check(
            &format!("step {step} hidden"),
            &h,
            &c["b_hidden_last"].1[step * 2 * dim..(step + 1) * 2 * dim],
        );
        let logits = floats(t.image_logits(hidden.clone())); // [2·K], cond row first
        let at = step * k..(step + 1) * k;
        check(
            &format!("step {step} cond logits"),
            &logits[..k],
            &c["b_logits_cond"].1[at.clone()],
        );
        check(
            &format!("step {step} uncond logits"),
            &logits[k..],
            &c["b_logits_uncond"].1[at.clone()],
        );
        let guided =
            tessera::generation::sampler::guide(&logits[..k], &logits[k..], settings.guidance);
        check(
            &format!("step {step} guided logits"),
            &guided,
            &c["b_logits_cfg"].1[at],
        );
        let x = t.embed_image(ids(vec![token as i64; 2], [2, 1], device)); // [2, 1, D]
        let row = floats(x.clone().narrow(0, 0, 1));
        check(
            &format!("step {step} image embedding"),
            &row,
            &c["b_gen_img_embeds"].1[step * dim..(step + 1) * dim],
        );
        hidden = t.forward(x, &mut cache).reshape([2, dim]);
    }
    let first = &c["a_prefill_logits_cfg"].1;
    assert_eq!(
        &c["b_logits_cfg"].1[..k],
        first.as_slice(),
        "the fixture's step 0 is its prefill"
    );
}

/// (d): greedy generation with the family's guidance, through [`Generation`], and its image.
fn greedy_generation_matches(device: &Device) {
    let (c, model) = (fixture(), load(device));
    let prompt = ints(&c["prompt_ids"].1);
    let settings = Settings {
        temperature: 0.0,
        ..model.config.default_settings()
    };
    assert_eq!(settings.guidance, 5.0, "Janus guides at 5");
    let mut g =
        Generation::from_prompt_ids(model.clone(), "janus-tiny", &prompt, settings).unwrap();
    let k = model.config.transformer.codebook_size;
    let mut bands = Vec::new();
    let mut step = 0;
    while let Some(s) = pollster::block_on(g.step()).unwrap() {
        let at = step * k..(step + 1) * k;
        check(
            &format!("greedy step {step} cond"),
            &g.last_logits()[..k],
            &c["d_logits_cond"].1[at.clone()],
        );
        check(
            &format!("greedy step {step} uncond"),
            &g.last_logits()[k..],
            &c["d_logits_uncond"].1[at],
        );
        bands.extend(s.band.map(|b| (b.row, b.y0, b.height)));
        step += 1;
    }
    assert_eq!(
        g.tokens(),
        ints(&c["d_greedy_tokens"].1).as_slice(),
        "greedy tokens"
    );
    // VQ-16 is not row-causal: one band, the whole image, with the last token.
    assert_eq!(bands, vec![(3, 0, 64)]);
    let size = model.config.image_size;
    let (_, reference) = &c["d_image"];
    let worst = (0..size * size * 3)
        .map(|j| {
            let (p, ch) = (j / 3, j % 3);
            let want = ((reference[ch * size * size + p] + 1.0) * 127.5)
                .round()
                .clamp(0.0, 255.0);
            (g.image()[j] as f64 - want).abs()
        })
        .fold(0.0, f64::max);
    assert!(worst <= 1.0, "image bytes differ by {worst} levels");
}

/// (c) and (e): the codec alone.
fn codec_matches(device: &Device) {
    let (c, model) = (fixture(), load(device));
    let Codec::Vq16(vq) = &model.codec else {
        panic!("a Janus config names VQ-16")
    };
    let grid = model.config.grid();
    let forced: Vec<i64> = c["b_forced_tokens"].1.iter().map(|&v| v as i64).collect();
    let codes = vq.codes(ids(forced.clone(), [1, 16], device), grid);
    check("codebook lookup", &floats(codes), &c["c_codebook_lookup"].1);
    check(
        "decode",
        &floats(vq.decode(ids(forced, [1, 16], device), grid)),
        &c["c_image"].1,
    );
    let input: Vec<f32> = c["e_input_image"].1.iter().map(|&v| v as f32).collect();
    let input = Tensor::<4>::from_data(TensorData::new(input, [1, 3, 64, 64]), device);
    check(
        "encoder latent",
        &floats(vq.encode_latent(input.clone())),
        &c["e_prequant"].1,
    );
    let got = pollster::block_on(read_ints(vq.encode(input))).unwrap();
    let want: Vec<i64> = c["e_indices"].1.iter().map(|&v| v as i64).collect();
    assert_eq!(got, want, "encoder indices");
}

#[test]
fn teacher_forcing_matches_the_reference() {
    teacher_forcing_matches(&Device::flex());
}

#[test]
fn greedy_generation_matches_the_reference() {
    greedy_generation_matches(&Device::flex());
}

#[test]
fn the_vq16_codec_matches_the_reference() {
    codec_matches(&Device::flex());
}

#[cfg(feature = "gpu")]
#[test]
fn on_wgpu_every_case_matches_the_reference() {
    let device = crate::common::wgpu();
    teacher_forcing_matches(&device);
    greedy_generation_matches(&device);
    codec_matches(&device);
}

#[test]
fn the_config_names_the_family_and_the_checkpoint_names_its_tensors() {
    let model = load(&Device::flex());
    let config = &model.config;
    assert!(matches!(config.family, Family::Janus(_)));
    assert_eq!((config.image_size, config.grid()), (64, 4));
    // The unused tensors (the text head, the codebook statistic) were skipped, every other one loaded.
    let names = Model::architecture(config, &Device::flex());
    assert!(names.contains_key("language_model.model.layers.1.self_attn.k_proj.weight"));
    assert!(!names.contains_key("language_model.lm_head.weight"));
    assert_eq!(names.len(), 374 - 2);
}

/// A checkpoint whose key/value projections are narrower than the config's heads (grouped-query
/// attention read as plain attention) fails by name with both shapes.
#[test]
fn a_grouped_query_checkpoint_read_as_plain_attention_fails_by_name() {
    let dir = root().join(FIXTURE);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    json["language_config"]["num_key_value_heads"] = 2.into();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let err = match Model::from_bytes(json.to_string().as_bytes(), &weights, &Device::flex()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a checkpoint of 4 key/value heads loaded as 2"),
    };
    assert!(
        err.contains("language_model.model.layers.0.self_attn.k_proj.weight")
            && err.contains("[64, 64]")
            && err.contains("[32, 64]"),
        "{err}"
    );
}

/// Grouped-query attention itself: a config of 2 key/value heads for 4 query heads, on random weights,
/// gives what the same model gives with each key/value head's weights repeated for its 2 query heads.
#[test]
fn grouped_query_attention_equals_plain_attention_with_repeated_heads() {
    let device = Device::flex();
    let dir = root().join(FIXTURE);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    json["language_config"]["num_key_value_heads"] = 2.into();
    let gqa_config = tessera::ModelConfig::from_json(json.to_string().as_bytes()).unwrap();
    let plain_config =
        tessera::ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let gqa_weights = Model::random_weights(&gqa_config, 3, &device);
    // The plain model: every tensor the same, k_proj and v_proj `[2·16, 64]` → `[4·16, 64]` with each
    // 16-row head block repeated.
    let mut tensors = tessera::weights::TensorMap::new();
    for (name, (mut shape, values)) in crate::common::tensors(&gqa_weights) {
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect(); // f32 written, f32 back
        let values = if name.ends_with("k_proj.weight") || name.ends_with("v_proj.weight") {
            shape[0] *= 2;
            values
                .chunks_exact(16 * 64)
                .flat_map(|head| [head, head].concat())
                .collect()
        } else {
            values
        };
        tensors.insert(name, (shape, values));
    }
    let plain_weights = tessera::weights::to_safetensors(&tensors);
    let run = |config: &tessera::ModelConfig, weights: &[u8]| {
        let model = Arc::new(Model::from_config(config.clone(), weights, &device).unwrap());
        let mut g = Generation::from_prompt_ids(
            model,
            "gqa",
            &[1, 9, 8, 7, 3],
            Settings {
                temperature: 0.0,
                ..config.default_settings()
            },
        )
        .unwrap();
        let mut logits = Vec::new();
        while pollster::block_on(g.step()).unwrap().is_some() {
            logits.extend_from_slice(g.last_logits());
        }
        (g.tokens().to_vec(), logits)
    };
    let (gqa_tokens, gqa_logits) = run(&gqa_config, &gqa_weights);
    let (plain_tokens, plain_logits) = run(&plain_config, &plain_weights);
    assert_eq!(gqa_tokens, plain_tokens);
    let plain: Vec<f64> = plain_logits.iter().map(|&v| v as f64).collect();
    check("grouped-query logits", &gqa_logits, &plain);
}

/// The text tokenizer (the `tokenizers` crate without Oniguruma) against Python `tokenizers` on Janus-Pro-1B's
/// tokenizer.json (`tests/fixtures/deepseek-tokenizer/README.md`): every id of every case, and the Janus
/// prompt template with BOS first.
#[test]
fn the_tokenizer_gives_the_reference_ids() {
    let dir = root().join("tests/fixtures/deepseek-tokenizer");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let tokenizer = tessera::model::janus::TextTokenizer::from_bytes(&tokenizer).unwrap();
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect()
    };
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            tokenizer.encode(text).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
    }
    let template = &cases["template"];
    let prompt = template["prompt"].as_str().unwrap();
    assert_eq!(tokenizer.prompt_ids(prompt).unwrap(), ids(&template["ids"]));
}

/// `tessera tokenize` prints the same ids; `tessera generate` on janus-tiny writes the greedy tokens of the
/// fixture with `--prompt-ids`, and refuses a Janus folder without a tokenizer or ids, and an edit, by name.
#[test]
fn the_command_line_runs_a_janus_folder() {
    use crate::cli::{temp_dir, tessera};
    let tokenizer = root().join("tests/fixtures/deepseek-tokenizer/tokenizer.json");
    let out = tessera(&[
        "tokenize",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "a red cat",
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "[64,3074,5946]");

    let model = root().join(FIXTURE);
    let model = model.to_str().unwrap();
    let inspect = tessera(&["inspect", "--model", model]);
    assert!(
        inspect.ok && inspect.stdout.starts_with("family: janus"),
        "{}",
        inspect.stderr
    );

    let c = fixture();
    let ids: Vec<String> = ints(&c["prompt_ids"].1)
        .iter()
        .map(u32::to_string)
        .collect();
    let scratch = temp_dir("janus-cli");
    let (png, tokens) = (scratch.join("janus.png"), scratch.join("tokens.json"));
    let run = tessera(&[
        "generate",
        "janus-tiny",
        "--model",
        model,
        "--prompt-ids",
        &ids.join(","),
        "--temperature",
        "0",
        "-o",
        png.to_str().unwrap(),
        "--tokens-out",
        tokens.to_str().unwrap(),
    ]);
    assert!(run.ok, "{}", run.stderr);
    let written: Vec<u32> = serde_json::from_slice(&std::fs::read(&tokens).unwrap()).unwrap();
    assert_eq!(
        written,
        ints(&c["d_greedy_tokens"].1),
        "guidance 5 is the family's default"
    );
    assert!(png.exists());

    let refused = tessera(&[
        "generate",
        "a cat",
        "--model",
        model,
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(
        !refused.ok && refused.stderr.contains("no tokenizer.json"),
        "{}",
        refused.stderr
    );
    let edit = tessera(&[
        "edit",
        png.to_str().unwrap(),
        "make it blue",
        "--model",
        model,
        "-o",
        "x.png",
    ]);
    assert!(
        !edit.ok && edit.stderr.contains("do not edit"),
        "{}",
        edit.stderr
    );
}

/// Previews of a codec that is not row-causal: after each token row the whole grid decodes with the cells
/// not yet drawn at the codebook's most central code; they leave the tokens as they were, the last one is
/// what a generation stopped there keeps, a finished image has none, and a streaming codec never gives one.
#[test]
fn previews_show_the_grid_so_far_without_changing_it() {
    let (c, model) = (fixture(), load(&Device::flex()));
    let prompt = ints(&c["prompt_ids"].1);
    let settings = Settings {
        seed: 5,
        ..model.config.default_settings()
    };
    let run = |with_previews: bool| {
        let mut g =
            Generation::from_prompt_ids(model.clone(), "janus-tiny", &prompt, settings.clone())
                .unwrap();
        let mut previews = Vec::new();
        while pollster::block_on(g.step()).unwrap().is_some() {
            if with_previews && g.tokens().len().is_multiple_of(4) {
                previews.extend(pollster::block_on(g.preview()).unwrap());
            }
        }
        (g.tokens().to_vec(), previews)
    };
    let (plain, _) = run(false);
    let (tokens, previews) = run(true);
    assert_eq!(tokens, plain, "previews change nothing the model draws");
    assert_eq!(
        previews.iter().map(|p| p.rows).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "one after each row but the last, none once the image is complete"
    );
    // A preview is the full decode of the drawn rows and the neutral code elsewhere.
    let mut g = Generation::from_prompt_ids(model.clone(), "janus-tiny", &prompt, settings.clone())
        .unwrap();
    for _ in 0..8 {
        pollster::block_on(g.step()).unwrap();
    }
    let preview = pollster::block_on(g.preview()).unwrap().unwrap();
    assert_eq!(preview, previews[1]);
    let Codec::Vq16(vq) = &model.codec else {
        panic!("janus-tiny decodes with VQ-16")
    };
    let neutral = pollster::block_on(read_ints(vq.neutral_code())).unwrap()[0] as u32;
    let mut grid = g.tokens().to_vec();
    grid.resize(16, neutral);
    let decoded = pollster::block_on(tessera::generation::decode_tokens(&model, &grid)).unwrap();
    assert_eq!(preview.rgb, decoded);
    // Stopped here, the image kept is the preview.
    let png = g.png(None);
    let image = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(image.as_raw(), &preview.rgb);

    let micro = Model::load_dir(&root().join("models/tessera-micro"), &Device::flex()).unwrap();
    let mut g =
        Generation::new(Arc::new(micro), "a red circle", None, Settings::default()).unwrap();
    pollster::block_on(g.step()).unwrap();
    assert!(
        pollster::block_on(g.preview()).unwrap().is_none(),
        "rows are final"
    );
}

/// What a model needs, from its config alone: the parameters a load then counts, and Janus-Pro-1B's largest
/// tensor, the 102,400 × 2048 text embedding (800 MiB in f32: beyond most GPUs' 128–256 MiB bindings).
#[test]
fn a_config_says_what_its_model_needs_before_any_weight() {
    let janus = load(&Device::flex());
    let needs = Model::needs(&janus.config).unwrap();
    assert_eq!(needs.parameters, janus.parameters.total() as u64);
    assert_eq!(needs.f32_bytes, 4 * needs.parameters);
    let sized =
        tessera::ModelConfig::from_json(tessera::ModelConfig::JANUS_PRO_1B_SIZED.as_bytes())
            .unwrap();
    let needs = Model::needs(&sized).unwrap();
    assert_eq!(
        needs.largest_tensor,
        "language_model.model.embed_tokens.weight"
    );
    assert_eq!(needs.largest_tensor_f32_bytes, 102_400 * 2048 * 4);
    assert!(
        (1.4e9..1.7e9).contains(&(needs.parameters as f64)),
        "{} parameters",
        needs.parameters
    );
}
