//! The engine's contract at its edges: weights that do not match the architecture, prompts it cannot take,
//! and the end-to-end generation loop on a tiny random model.

use std::sync::Arc;

use burn::tensor::Device;
use tessera::model::WeightsIdentity;
use tessera::weights::{TensorMap, TensorSource, safetensors_source, to_safetensors};
use tessera::{Generation, Model, ModelConfig, Settings, TesseraError};

fn tiny() -> (ModelConfig, TensorMap) {
    let cfg = ModelConfig::tiny();
    let tensors = Model::architecture(&cfg, &Device::flex())
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            (name, (shape, vec![0.01; n]))
        })
        .collect();
    (cfg, tensors)
}

fn load(cfg: &ModelConfig, tensors: &TensorMap) -> Result<Model, TesseraError> {
    Model::from_config(cfg.clone(), &to_safetensors(tensors), &Device::flex())
}

fn err(r: Result<Model, TesseraError>) -> String {
    match r {
        Ok(_) => panic!("the weights were accepted"),
        Err(e) => e.to_string(),
    }
}

/// The parameter count the engine reports is what the weights file holds, counted from the file's own
/// header (not from the architecture table the loader checks against); the shipped default model is the
/// 11.50 M + 2.56 M its model card states.
#[test]
fn the_parameter_count_is_what_the_weights_file_holds() {
    for dir in [
        "models/tessera-shapes",
        "models/tessera-tiny",
        "models/tessera-micro",
    ] {
        let path = crate::common::root().join(dir);
        let bytes = std::fs::read(path.join("model.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let in_file: usize = file
            .tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum();
        let model = Model::load_dir(&path, &Device::flex()).unwrap();
        assert_eq!(model.parameters.total(), in_file, "{dir}");
        assert_eq!(model.weight_bytes, bytes.len() as u64, "{dir}");
    }
    let shipped = Model::load_dir(
        &crate::common::root().join("models/tessera-shapes"),
        &Device::flex(),
    );
    let parameters = shipped.unwrap().parameters;
    let millions = |n: usize| n as f64 / 1e6;
    assert!(
        (millions(parameters.transformer) - 11.50).abs() < 0.01
            && (millions(parameters.codec) - 2.56).abs() < 0.01,
        "{parameters:?}"
    );
}

/// Each shipped model's architecture is its preset's (`engine/presets/`, which the trainer reads too).
#[test]
fn the_shipped_models_are_their_presets_architectures() {
    let presets = [
        ("models/tessera-shapes", ModelConfig::default_model()),
        ("models/tessera-tiny", ModelConfig::tiny()),
        ("models/tessera-micro", ModelConfig::micro()),
    ];
    for (dir, preset) in presets {
        let text =
            std::fs::read_to_string(crate::common::root().join(dir).join("config.json")).unwrap();
        let shipped: ModelConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (shipped.image_size, &shipped.transformer, &shipped.vq),
            (preset.image_size, &preset.transformer, &preset.vq),
            "{dir}"
        );
    }
}

#[test]
fn a_missing_tensor_is_named_with_its_shape() {
    let (cfg, mut tensors) = tiny();
    tensors.remove("layers.1.attn.wq.weight");
    let e = err(load(&cfg, &tensors));
    assert!(
        e.contains("`layers.1.attn.wq.weight` is missing") && e.contains("[64, 64]"),
        "{e}"
    );
}

#[test]
fn a_wrong_shape_names_the_tensor_and_both_shapes() {
    let (cfg, mut tensors) = tiny();
    tensors.insert("vq.codebook".into(), (vec![512, 8], vec![0.0; 512 * 8]));
    let e = err(load(&cfg, &tensors));
    assert!(
        e.contains("`vq.codebook` has shape [512, 8], the architecture needs [1024, 8]"),
        "{e}"
    );
}

#[test]
fn an_unexpected_tensor_is_named() {
    let (cfg, mut tensors) = tiny();
    tensors.insert("lm_head.weight".into(), (vec![2, 2], vec![0.0; 4]));
    let e = err(load(&cfg, &tensors));
    assert!(
        e.contains("`lm_head.weight` [2, 2] is not part of this architecture"),
        "{e}"
    );
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_refused() {
    let (mut cfg, tensors) = tiny();
    cfg.transformer.dim = 96;
    cfg.transformer.n_heads = 4;
    let e = err(load(&cfg, &tensors));
    assert!(
        e.contains("do not match the config")
            && e.contains("has shape [64], the architecture needs [96]"),
        "{e}"
    );
}

#[test]
fn truncated_or_corrupt_files_are_refused() {
    let (cfg, tensors) = tiny();
    let bytes = to_safetensors(&tensors);
    for broken in [
        &bytes[..bytes.len() / 2],
        &bytes[..7],
        b"not a safetensors file at all".as_slice(),
    ] {
        let e = match Model::from_config(cfg.clone(), broken, &Device::flex()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("model.safetensors") && e.contains("truncated"),
            "{e}"
        );
    }
}

#[test]
fn an_invalid_config_is_explained() {
    let e = match Model::from_bytes(b"{\"image_size\": 128}", &[], &Device::flex()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("config.json") && e.contains("missing field"),
        "{e}"
    );
}

/// The configs of the upload-and-load review, each refused at load with the field named (nothing is
/// allocated from them: a 65-level VQ would shift past 64 bits, a `max_seq` of a million would size the
/// rotary tables).
#[test]
fn configs_out_of_bounds_are_refused_with_the_field_named() {
    let (cfg, tensors) = tiny();
    let weights = to_safetensors(&tensors);
    type Break = fn(&mut ModelConfig);
    let cases: [(&str, Break); 7] = [
        ("image_size is 0", |c| c.image_size = 0),
        ("transformer.codebook_size is 0", |c| {
            c.transformer.codebook_size = 0
        }),
        ("vq.codebook_size is 0", |c| c.vq.codebook_size = 0),
        ("transformer.max_seq is 1000000", |c| {
            c.transformer.max_seq = 1_000_000
        }),
        ("vq.dec_channels (levels) is 65", |c| {
            c.vq.dec_channels = vec![8; 65]
        }),
        ("transformer.dim is 0", |c| c.transformer.dim = 0),
        ("transformer.norm_eps is NaN", |c| {
            c.transformer.norm_eps = f64::NAN
        }),
    ];
    for (field, break_it) in cases {
        let mut broken = cfg.clone();
        break_it(&mut broken);
        let e = match Model::from_config(broken, &weights, &Device::flex()) {
            Ok(_) => panic!("{field}: accepted"),
            Err(e) => e,
        };
        assert_eq!(e.name(), "BadConfig", "{field}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    // Products that fit each bound but not together (a 2^20-word vocabulary of width 16384) are named too;
    // natively they fit, on wasm32 they would not.
    let mut wide = ModelConfig::default_model();
    wide.transformer.text_vocab = 1 << 20;
    wide.transformer.dim = 16384;
    wide.transformer.n_heads = 128;
    let problem = wide.validate();
    if cfg!(target_pointer_width = "32") {
        assert!(
            problem
                .unwrap_err()
                .contains("text_vocab × transformer.dim")
        );
    } else {
        problem.unwrap();
    }
}

/// A source that declares tensors it does not hold, and counts the tensors read.
struct Declaring<'a> {
    inner: safetensors::SafeTensors<'a>,
    extra: Vec<(String, Vec<usize>)>,
    reads: std::cell::Cell<usize>,
}

impl TensorSource for Declaring<'_> {
    fn names(&self) -> Vec<String> {
        let mut names = TensorSource::names(&self.inner);
        names.extend(self.extra.iter().map(|(n, _)| n.clone()));
        names
    }
    fn info(&self, name: &str) -> Option<(safetensors::Dtype, Vec<usize>)> {
        let extra = self.extra.iter().find(|(n, _)| n == name);
        extra
            .map(|(_, shape)| (safetensors::Dtype::F32, shape.clone()))
            .or_else(|| self.inner.info(name))
    }
    fn read(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read(name)
    }
}

/// A checkpoint whose header shows it cannot load is refused before any tensor is read and before its
/// sha256 is taken: a 2 GiB tensor the architecture does not name, a million empty tensors, more bytes
/// than the build can load.
#[test]
fn checkpoints_that_cannot_load_are_refused_from_the_header() {
    let (cfg, tensors) = tiny();
    let weights = to_safetensors(&tensors);
    let cases = [
        (
            vec![("extra".to_string(), vec![1 << 29])],
            "tensor `extra` [536870912] is not part of this architecture",
        ),
        (
            (0..1_000_000)
                .map(|i| (format!("empty.{i}"), vec![0]))
                .collect(),
            "tensors; a checkpoint may hold at most 65536",
        ),
        (
            vec![("vast".to_string(), vec![1 << 40, 1 << 20])],
            "this build loads at most",
        ),
    ];
    for (extra, expected) in cases {
        let source = Declaring {
            inner: safetensors_source(&weights).unwrap(),
            extra,
            reads: Default::default(),
        };
        let hashed = std::cell::Cell::new(false);
        let identity = || {
            hashed.set(true);
            Ok(WeightsIdentity {
                sha256: String::new(),
                bytes: 0,
            })
        };
        let e = match Model::from_source(cfg.clone(), &source, identity, &Device::flex()) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        assert_eq!(e.name(), "BadWeights");
        assert!(e.to_string().contains(expected), "{e}");
        assert_eq!((source.reads.get(), hashed.get()), (0, false), "{expected}");
    }
    // The same source without extras loads, reading each tensor once.
    let source = Declaring {
        inner: safetensors_source(&weights).unwrap(),
        extra: vec![],
        reads: Default::default(),
    };
    let ok = || {
        Ok(WeightsIdentity {
            sha256: String::new(),
            bytes: 0,
        })
    };
    Model::from_source(cfg.clone(), &source, ok, &Device::flex()).unwrap();
    assert_eq!(source.reads.get(), tensors.len());
}

#[test]
fn prompts_it_cannot_take_get_clear_errors() {
    let (cfg, tensors) = tiny();
    let model = Arc::new(load(&cfg, &tensors).unwrap());
    let new = |text: &str, ctx: Option<&[u32]>| {
        Generation::new(model.clone(), text, ctx, Settings::default())
            .err()
            .map(|e| e.to_string())
    };
    assert!(new("", None).unwrap().contains("empty"));
    assert!(new("   \n", None).unwrap().contains("empty"));
    let limit = cfg.transformer.max_seq - cfg.image_tokens() - 4;
    assert!(
        new(&"a".repeat(limit), None).is_none(),
        "a prompt of exactly the limit is accepted"
    );
    let e = new(&"a".repeat(limit + 1), None).unwrap();
    assert!(e.contains(&format!("at most {limit} bytes")), "{e}");
    let e = new(&"a".repeat(100_000), None).unwrap();
    assert!(e.contains("100000 bytes"), "{e}");
    assert!(
        new("edit", Some(&[1, 2, 3]))
            .unwrap()
            .contains("256 tokens")
    );
    assert!(
        new("edit", Some(&vec![5000; 256]))
            .unwrap()
            .contains("256 tokens below 1024")
    );
}

/// The tiny architecture with seeded random weights.
fn random_tiny_model() -> (ModelConfig, Arc<Model>) {
    let cfg = ModelConfig::tiny();
    let weights = Model::random_weights(&cfg, 3, &Device::flex());
    let model = Model::from_config(cfg.clone(), &weights, &Device::flex()).unwrap();
    (cfg, Arc::new(model))
}

#[test]
fn generation_streams_one_band_per_token_row_and_is_seeded() {
    let (cfg, model) = random_tiny_model();
    let run = |seed| {
        let mut g = Generation::new(
            model.clone(),
            "a red circle",
            None,
            Settings {
                seed,
                ..Settings::default()
            },
        )
        .unwrap();
        let mut bands = vec![];
        while let Some(step) = pollster::block_on(g.step()).unwrap() {
            if let Some(b) = step.band {
                assert_eq!(
                    step.index % cfg.grid(),
                    cfg.grid() - 1,
                    "bands come when a row completes"
                );
                bands.push(b.row);
            }
        }
        assert!(pollster::block_on(g.step()).unwrap().is_none());
        (g.tokens().to_vec(), g.image().to_vec(), bands)
    };
    let (a, img, bands) = run(1);
    assert_eq!(bands, (0..cfg.grid()).collect::<Vec<_>>());
    assert_eq!(a.len(), cfg.image_tokens());
    assert_eq!(run(1).0, a, "same seed, same tokens");
    assert_ne!(run(2).0, a, "another seed, other tokens");
    let decoded = pollster::block_on(tessera::generation::decode_tokens(&model, &a)).unwrap();
    assert_eq!(decoded, img, "streamed bands assemble into the full decode");
}

#[test]
fn keep_favours_the_source_of_an_edit_and_nothing_else() {
    let (cfg, model) = random_tiny_model();
    let tokens = |context: Option<&[u32]>, keep: f32| {
        let settings = Settings {
            seed: 4,
            keep,
            ..Settings::default()
        };
        let mut g = Generation::new(model.clone(), "make it blue", context, settings).unwrap();
        while pollster::block_on(g.step()).unwrap().is_some() {}
        g.tokens().to_vec()
    };
    let source: Vec<u32> = (0..cfg.image_tokens() as u32)
        .map(|i| i * 7 % 1024)
        .collect();
    let free = tokens(Some(&source), 0.0);
    let same = free.iter().zip(&source).filter(|(a, b)| a == b).count();
    assert!(same < source.len() / 4, "{same} kept without a bonus");
    assert_eq!(
        tokens(Some(&source), 1e4),
        source,
        "an overwhelming bonus copies"
    );
    let kept = tokens(Some(&source), 3.0);
    assert!(
        kept.iter().zip(&source).filter(|(a, b)| a == b).count() > same,
        "a bonus of 3 keeps more of the source"
    );
    assert_eq!(
        tokens(None, 0.0),
        tokens(None, 1e4),
        "a new picture has no source"
    );
}

/// A model with `sign_glyphs` draws a new picture with a sign as an edit of that sign drawn alone: the same
/// tokens as the same weights given that picture's codes as context; pictures without a sign, and edits,
/// are prompted as before.
#[test]
fn a_sign_glyphs_model_reads_the_sign_it_draws_as_a_picture() {
    let (cfg, plain) = random_tiny_model();
    let glyph_cfg = ModelConfig {
        sign_glyphs: true,
        ..cfg.clone()
    };
    let weights = Model::random_weights(&cfg, 3, &Device::flex());
    let glyphs = Arc::new(Model::from_config(glyph_cfg, &weights, &Device::flex()).unwrap());
    let draw = |model: &Arc<Model>, text: &str, context: Option<&[u32]>| {
        let settings = Settings {
            seed: 9,
            keep: 0.0,
            ..Settings::default()
        };
        let mut g = Generation::new(model.clone(), text, context, settings).unwrap();
        let prompt_len = g.prompt_len();
        while pollster::block_on(g.step()).unwrap().is_some() {}
        (prompt_len, g.tokens().to_vec())
    };
    let sign = "a yellow sign that says HELLO in the middle, blue background";
    let picture = tessera::generation::sign_glyphs(sign).expect("the text asks for a sign");
    let codes = pollster::block_on(plain.encode_rgb(&picture)).unwrap();
    let (len, tokens) = draw(&glyphs, sign, None);
    assert_eq!((len, tokens), draw(&plain, sign, Some(&codes)));
    assert_ne!(draw(&plain, sign, None).1, draw(&glyphs, sign, None).1);
    let circle = "a red circle in the top left";
    assert!(tessera::generation::sign_glyphs(circle).is_none());
    assert_eq!(draw(&glyphs, circle, None), draw(&plain, circle, None));
    assert_eq!(
        draw(&glyphs, sign, Some(&codes)),
        draw(&plain, sign, Some(&codes))
    );
    // The model's own size is the world's: a config of other images cannot ask for glyphs.
    let mut odd = ModelConfig::micro();
    odd.sign_glyphs = true;
    let e = odd.validate().unwrap_err();
    assert!(
        e.contains("sign_glyphs needs a Tessera model of 128² images"),
        "{e}"
    );
}
