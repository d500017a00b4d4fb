//! The Janus family (DeepSeek's Janus and Janus-Pro, image generation only): its `config.json` read into a
//! [`ModelConfig`], its key table, and its prompt rows.
//!
//! The maths is the engine's own: Janus's LLaMA decoder is [`crate::model::transformer`] (with
//! grouped-query attention where a checkpoint has fewer key/value heads), `gen_embed` → `gen_aligner` is the
//! image embedding and aligner, `gen_head` the image head, and `gen_vision_model` the VQ-16 codec of
//! [`crate::model::vq16`]. Reference: deepseek-ai/Janus at 1daa72f (`janus/models/modeling_vlm.py`,
//! `vq_model.py`, `projector.py`, and the loop of `generation_inference.py`).

use serde::{Deserialize, Serialize};

use crate::config::{Family, Interpreter, ModelConfig, TransformerConfig, VqConfig, VqKind};
use crate::generation::prompt::{Prompt, Segment};
use crate::weights::KeyTable;

/// The longest prompt, in text tokens, a Janus generation takes: with the image grid, what sizes the rotary
/// tables (the KV cache is sized per generation, by the prompt it is given).
pub const PROMPT_LIMIT: usize = 1024;

/// What a Janus prompt needs beyond the transformer: the special token ids and the published sampling
/// defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JanusPrompt {
    /// `<｜begin▁of▁sentence｜>`, the first id of both rows.
    pub bos_id: Option<u32>,
    /// `<｜▁pad▁｜>`, which replaces every prompt id of the unconditional row but the first and the last.
    pub pad_id: Option<u32>,
    /// `<begin_of_image>`, the last prompt id, after which image tokens follow.
    pub image_start_id: Option<u32>,
    /// Classifier-free guidance (the reference's `cfg_weight`).
    pub guidance: f32,
    pub temperature: f32,
}

/// Whether `config.json` is a Janus one (`model_type: multi_modality`).
pub fn is_janus(json: &serde_json::Value) -> bool {
    json.get("model_type").and_then(|t| t.as_str()) == Some("multi_modality")
}

/// `config.json`'s layout (that of the released checkpoints), the fields image generation reads.
#[derive(Deserialize)]
struct JanusJson {
    language_config: LanguageConfig,
    gen_vision_config: Component<VisionParams>,
    gen_aligner_config: Component<AlignerParams>,
    gen_head_config: Component<HeadParams>,
    /// The VQ's construction arguments where they differ from VQ-16's (the fixtures' tiny codec).
    #[serde(default)]
    gen_vision_model_args: VqArgs,
    /// Token ids and sampling defaults where the folder states them (the released folders leave them to
    /// `tokenizer.json` and the reference's script).
    #[serde(default)]
    generation: GenerationJson,
    #[serde(default, rename = "_name_or_path")]
    name_or_path: Option<String>,
    /// Tessera's own key, `false` in folders of random weights (`tessera init`), which the app and the CLI
    /// then announce as untrained; a released folder leaves it out.
    #[serde(default = "released")]
    trained: bool,
}

fn released() -> bool {
    true
}

/// `{"cls": …, "params": {…}}`.
#[derive(Deserialize)]
struct Component<P> {
    cls: String,
    params: P,
}

/// transformers' `LlamaConfig`; the defaults are its own, which Janus-Pro-1B does not override.
#[derive(Deserialize)]
struct LanguageConfig {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    vocab_size: usize,
    #[serde(default = "llama_rms_norm_eps")]
    rms_norm_eps: f64,
    #[serde(default = "llama_rope_theta")]
    rope_theta: f64,
    #[serde(default = "silu")]
    hidden_act: String,
    #[serde(default)]
    attention_bias: bool,
}

fn llama_rms_norm_eps() -> f64 {
    1e-6
}
fn llama_rope_theta() -> f64 {
    10_000.0
}
fn silu() -> String {
    "silu".into()
}

#[derive(Deserialize)]
struct VisionParams {
    image_token_size: usize,
    n_embed: usize,
}

#[derive(Deserialize)]
struct AlignerParams {
    depth: usize,
    input_dim: usize,
    n_embed: usize,
    projector_type: String,
}

#[derive(Deserialize)]
struct HeadParams {
    image_token_embed: usize,
    image_token_size: usize,
    n_embed: usize,
}

/// LlamaGen's `VQModel` arguments; the defaults are VQ-16's (`ModelArgs`, and `Encoder`/`Decoder`'s `ch`
/// and `num_res_blocks`).
#[derive(Deserialize)]
#[serde(default)]
struct VqArgs {
    encoder_ch_mult: Vec<usize>,
    decoder_ch_mult: Vec<usize>,
    z_channels: usize,
    ch: usize,
    num_res_blocks: usize,
    group_norm_eps: f64,
    group_norm_num_groups: usize,
    codebook_l2_norm: bool,
}

impl Default for VqArgs {
    fn default() -> Self {
        VqArgs {
            encoder_ch_mult: vec![1, 1, 2, 2, 4],
            decoder_ch_mult: vec![1, 1, 2, 2, 4],
            z_channels: 256,
            ch: 128,
            num_res_blocks: 2,
            group_norm_eps: 1e-6,
            group_norm_num_groups: 32,
            codebook_l2_norm: true,
        }
    }
}

/// The reference script's constants: 384² images, guidance 5, temperature 1.
#[derive(Deserialize)]
#[serde(default)]
struct GenerationJson {
    bos_id: Option<u32>,
    pad_id: Option<u32>,
    image_start_id: Option<u32>,
    cfg_weight: f32,
    temperature: f32,
    img_size: usize,
}

impl Default for GenerationJson {
    fn default() -> Self {
        GenerationJson {
            bos_id: None,
            pad_id: None,
            image_start_id: None,
            cfg_weight: 5.0,
            temperature: 1.0,
            img_size: 384,
        }
    }
}

/// A Janus `config.json` → the engine's config, every field the engine cannot run named.
pub fn config_from_json(json: serde_json::Value) -> Result<ModelConfig, String> {
    let j: JanusJson = serde_path_to_error::deserialize(json)
        .map_err(|e| format!("config.json: {}: {}", e.path(), e.inner()))?;
    let (lm, vq) = (&j.language_config, &j.gen_vision_model_args);
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(
        j.gen_vision_config.cls == "VQ-16",
        format!(
            "gen_vision_config.cls is `{}`; the engine runs VQ-16",
            j.gen_vision_config.cls
        ),
    );
    expect(
        j.gen_aligner_config.cls == "MlpProjector"
            && j.gen_aligner_config.params.projector_type == "mlp_gelu"
            && j.gen_aligner_config.params.depth == 2,
        "gen_aligner_config must be an MlpProjector of type mlp_gelu and depth 2".into(),
    );
    expect(
        j.gen_head_config.cls == "vision_head",
        format!(
            "gen_head_config.cls is `{}`; the engine runs vision_head",
            j.gen_head_config.cls
        ),
    );
    let (aligner, head) = (&j.gen_aligner_config.params, &j.gen_head_config.params);
    let codes = j.gen_vision_config.params.image_token_size;
    expect(
        aligner.input_dim == j.gen_vision_config.params.n_embed
            && aligner.n_embed == lm.hidden_size,
        format!(
            "gen_aligner_config.params maps {} → {}; the image embedding is {} wide and the language model {}",
            aligner.input_dim, aligner.n_embed, j.gen_vision_config.params.n_embed, lm.hidden_size
        ),
    );
    expect(
        head.n_embed == lm.hidden_size
            && head.image_token_embed == lm.hidden_size
            && head.image_token_size == codes,
        format!(
            "gen_head_config.params ({} → {} → {}) must read the language model's {} and write gen_vision_config's {} codes",
            head.n_embed, head.image_token_embed, head.image_token_size, lm.hidden_size, codes
        ),
    );
    expect(
        lm.hidden_act == "silu" && !lm.attention_bias,
        "language_config: the engine runs SiLU-gated MLPs and attention without biases".into(),
    );
    expect(
        vq.codebook_l2_norm && vq.group_norm_num_groups == 32,
        "gen_vision_model_args: the engine runs an L2-normalised codebook and GroupNorm of 32 groups"
            .into(),
    );
    expect(
        vq.encoder_ch_mult == vq.decoder_ch_mult
            && vq.encoder_ch_mult.first() == Some(&1)
            && vq.encoder_ch_mult.len() <= crate::config::LIMITS.vq_levels,
        format!(
            "gen_vision_model_args: encoder_ch_mult and decoder_ch_mult must be the same levels, the first 1, at most {}",
            crate::config::LIMITS.vq_levels
        ),
    );
    if !problems.is_empty() {
        return Err(format!("config.json: {}", problems.join("; ")));
    }
    // Saturating: a size out of bounds is named by `ModelConfig::validate`, never wrapped.
    let channels: Vec<usize> = vq
        .encoder_ch_mult
        .iter()
        .map(|m| m.saturating_mul(vq.ch))
        .collect();
    let image_size = j.generation.img_size;
    let grid = image_size >> (channels.len() - 1);
    let model_id = j
        .name_or_path
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("janus")
        .to_string();
    Ok(ModelConfig {
        model_id,
        image_size,
        transformer: TransformerConfig {
            dim: lm.hidden_size,
            n_layers: lm.num_hidden_layers,
            n_heads: lm.num_attention_heads,
            n_kv_heads: lm.num_key_value_heads,
            mlp_hidden: lm.intermediate_size,
            text_vocab: lm.vocab_size,
            codebook_size: codes,
            img_embed_dim: j.gen_vision_config.params.n_embed,
            max_seq: PROMPT_LIMIT.saturating_add(grid.saturating_mul(grid)),
            rope_theta: lm.rope_theta,
            norm_eps: lm.rms_norm_eps,
        },
        vq: VqConfig {
            codebook_size: codes,
            code_dim: j.gen_vision_config.params.n_embed,
            enc_channels: channels.clone(),
            dec_channels: channels,
            res_blocks: vq.num_res_blocks,
            norm_eps: vq.group_norm_eps,
            kind: VqKind::Vq16 {
                z_channels: vq.z_channels,
            },
        },
        trained: j.trained,
        edit_layout: Default::default(),
        interpreter: Interpreter::AsTyped,
        sign_glyphs: false,
        family: Family::Janus(JanusPrompt {
            bos_id: j.generation.bos_id,
            pad_id: j.generation.pad_id,
            image_start_id: j.generation.image_start_id,
            guidance: j.generation.cfg_weight,
            temperature: j.generation.temperature,
        }),
    })
}

/// Janus checkpoints' names for the engine's tensors (`MultiModalityCausalLM`'s attributes): the engine's
/// name → the checkpoint's, by prefix, the first rule that matches.
const KEYS: &[(&str, &str)] = &[
    // The text embedding of the LLaMA decoder.
    ("text_embed.", "language_model.model.embed_tokens."),
    // The image-token embedding, 16 384 × 8 in Janus-Pro.
    ("img_embed.", "gen_embed."),
    // Linear → GELU → Linear lifting an image embedding to the decoder's width.
    ("img_align.", "gen_aligner.layers."),
    // The decoder's final RMSNorm.
    ("norm.", "language_model.model.norm."),
    // The image head: Linear, GELU (between), Linear over the codebook.
    ("img_head.0.", "gen_head.output_mlp_projector."),
    ("img_head.2.", "gen_head.vision_head."),
    // The codebook (LlamaGen's `VectorQuantizer.embedding`), then every other tensor of the VQ-16 codec
    // (named as LlamaGen names them).
    ("vq.codebook", "gen_vision_model.quantize.embedding.weight"),
    ("vq.", "gen_vision_model."),
];

/// Inside `layers.N.`: the engine's block names → transformers' `LlamaDecoderLayer`.
const LAYER_KEYS: &[(&str, &str)] = &[
    ("attn_norm.", "input_layernorm."),
    ("mlp_norm.", "post_attention_layernorm."),
    ("attn.wq.", "self_attn.q_proj."),
    ("attn.wk.", "self_attn.k_proj."),
    ("attn.wv.", "self_attn.v_proj."),
    ("attn.wo.", "self_attn.o_proj."),
    ("mlp.w_gate.", "mlp.gate_proj."),
    ("mlp.w_up.", "mlp.up_proj."),
    ("mlp.w_down.", "mlp.down_proj."),
];

/// Tensors of a Janus checkpoint that image generation never reads.
const UNUSED: &[&str] = &[
    // The text head: Janus writes text with it, never image tokens.
    "language_model.lm_head.",
    // A training statistic of the codebook (65 536 zeros).
    "gen_vision_model.quantize.codebook_used",
    // The understanding half: the SigLIP tower and its aligner.
    "vision_model.",
    "aligner.",
];

fn rename(rules: &[(&str, &str)], name: &str) -> Option<String> {
    rules
        .iter()
        .find_map(|(ours, theirs)| Some(format!("{theirs}{}", name.strip_prefix(ours)?)))
}

fn checkpoint_name(name: &str) -> String {
    // Every decoder layer, `layers.N.` → `language_model.model.layers.N.`, the rest by `LAYER_KEYS`.
    let renamed = rename(KEYS, name).unwrap_or_else(|| name.to_string());
    let Some(rest) = name.strip_prefix("layers.") else {
        return renamed;
    };
    let (layer, inner) = rest.split_once('.').unwrap_or((rest, ""));
    let inner = rename(LAYER_KEYS, inner).unwrap_or_else(|| inner.to_string());
    format!("language_model.model.layers.{layer}.{inner}")
}

/// The Janus key table.
pub const JANUS_KEYS: KeyTable = KeyTable {
    checkpoint_name,
    unused: |name| UNUSED.iter().any(|prefix| name.starts_with(prefix)),
};

/// The reference's prompt template (`apply_sft_template_for_multi_turn_prompts` with the `deepseek` format
/// and an empty system prompt, then the image start tag).
pub fn template(prompt: &str) -> String {
    format!("<|User|>: {prompt}\n\n<|Assistant|>:{IMAGE_START}")
}

const BOS: &str = "<｜begin▁of▁sentence｜>";
const PAD: &str = "<｜▁pad▁｜>";
const IMAGE_START: &str = "<begin_of_image>";

/// A folder's `tokenizer.json` (the `tokenizers` crate, built without Oniguruma so it also runs in wasm32)
/// and the special ids a Janus prompt needs.
pub struct TextTokenizer {
    tokenizer: tokenizers::Tokenizer,
    bos_id: u32,
    image_start_id: u32,
    pad_id: u32,
}

impl TextTokenizer {
    /// Parse `tokenizer.json`; it must know the BOS, pad and image start tokens.
    pub fn from_bytes(json: &[u8]) -> Result<Self, String> {
        let tokenizer =
            tokenizers::Tokenizer::from_bytes(json).map_err(|e| format!("tokenizer.json: {e}"))?;
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| format!("tokenizer.json has no token `{token}`"))
        };
        Ok(TextTokenizer {
            bos_id: id(BOS)?,
            image_start_id: id(IMAGE_START)?,
            pad_id: id(PAD)?,
            tokenizer,
        })
    }

    /// `encode(text, add_special_tokens=False)`: the ids of `text` alone.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("cannot tokenize the prompt: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The conditional row of `prompt`: BOS, then the template with the prompt, `<begin_of_image>` last.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>, String> {
        let ids = [vec![self.bos_id], self.encode(&template(prompt))?].concat();
        debug_assert_eq!(ids.last(), Some(&self.image_start_id));
        Ok(ids)
    }

    /// The config's prompt ids, those it leaves out taken from this tokenizer.
    pub fn fill_in(&self, janus: &mut JanusPrompt) {
        janus.bos_id.get_or_insert(self.bos_id);
        janus.pad_id.get_or_insert(self.pad_id);
        janus.image_start_id.get_or_insert(self.image_start_id);
    }
}

/// The two rows of a Janus prompt: `ids` (from the tokenizer, BOS first, `<begin_of_image>` last) as the
/// conditional row, and the unconditional row with every id but the first and the last replaced by
/// `pad_id`. Janus attends to pad tokens like any other (no attention mask).
pub fn prompt(ids: &[u32], pad_id: u32) -> Prompt {
    let uncond = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| match i == 0 || i + 1 == ids.len() {
            true => id,
            false => pad_id,
        })
        .collect();
    Prompt {
        cond: vec![Segment::Text(ids.to_vec())],
        uncond: vec![Segment::Text(uncond)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_name_has_its_janus_name() {
        for (ours, theirs) in [
            (
                "layers.11.attn.wk.weight",
                "language_model.model.layers.11.self_attn.k_proj.weight",
            ),
            (
                "layers.0.mlp_norm.weight",
                "language_model.model.layers.0.post_attention_layernorm.weight",
            ),
            ("img_head.2.bias", "gen_head.vision_head.bias"),
            ("img_align.0.weight", "gen_aligner.layers.0.weight"),
            ("vq.codebook", "gen_vision_model.quantize.embedding.weight"),
            (
                "vq.decoder.mid.1.q.weight",
                "gen_vision_model.decoder.mid.1.q.weight",
            ),
        ] {
            assert_eq!(checkpoint_name(ours), theirs);
        }
        assert!((JANUS_KEYS.unused)("language_model.lm_head.weight"));
        assert!((JANUS_KEYS.unused)(
            "vision_model.vision_tower.blocks.0.attn.qkv.weight"
        ));
        assert!(!(JANUS_KEYS.unused)(
            "gen_vision_model.quantize.embedding.weight"
        ));
    }

    #[test]
    fn the_unconditional_row_keeps_the_first_and_last_ids() {
        let p = prompt(&[1, 7, 8, 9, 3], 2);
        assert_eq!(p.cond, vec![Segment::Text(vec![1, 7, 8, 9, 3])]);
        assert_eq!(p.uncond, vec![Segment::Text(vec![1, 2, 2, 2, 3])]);
    }

    /// A word-level tokenizer.json with Janus's special tokens: the template and the special ids around the
    /// tokenizer's own ids (the byte-level BPE itself is the `tokenizers` crate's, tested against Python's
    /// in the integration tests).
    fn word_tokenizer(with_pad: bool) -> String {
        let (pad, pad_word) = match with_pad {
            true => (
                r#",{"id": 2, "content": "<｜▁pad▁｜>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}"#,
                r#""<｜▁pad▁｜>": 2,"#,
            ),
            false => ("", ""),
        };
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [
              {{"id": 1, "content": "<｜begin▁of▁sentence｜>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
              {{"id": 3, "content": "<begin_of_image>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}{pad}],
            "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null,
            "model": {{"type": "WordLevel", "unk_token": "?", "vocab": {{"?": 0, "<｜begin▁of▁sentence｜>": 1,
              {pad_word} "<begin_of_image>": 3, "<|": 10, "User": 11, "|>:": 12, "Assistant": 13,
              "a": 20, "red": 21, "cat": 22}}}}}}"#
        )
    }

    #[test]
    fn the_tokenizer_wraps_the_prompt_in_the_template() {
        let t = TextTokenizer::from_bytes(word_tokenizer(true).as_bytes()).unwrap();
        assert_eq!(t.encode("a red cat").unwrap(), vec![20, 21, 22]);
        // BOS, `<|User|>:`, the prompt, `<|Assistant|>:`, `<begin_of_image>`.
        assert_eq!(
            t.prompt_ids("a red cat").unwrap(),
            vec![1, 10, 11, 12, 20, 21, 22, 10, 13, 12, 3]
        );
        let mut janus = JanusPrompt {
            bos_id: None,
            pad_id: Some(7),
            image_start_id: None,
            guidance: 5.0,
            temperature: 1.0,
        };
        t.fill_in(&mut janus);
        assert_eq!(
            (janus.bos_id, janus.pad_id, janus.image_start_id),
            (Some(1), Some(7), Some(3))
        );
        let err = TextTokenizer::from_bytes(word_tokenizer(false).as_bytes())
            .err()
            .unwrap();
        assert!(err.contains("<｜▁pad▁｜>"), "{err}");
        assert!(
            TextTokenizer::from_bytes(b"{")
                .err()
                .unwrap()
                .contains("tokenizer.json")
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut json: serde_json::Value = serde_json::from_str(
            r#"{"model_type": "multi_modality", "language_config": {"hidden_size": 8}}"#,
        )
        .unwrap();
        assert!(is_janus(&json));
        let err = config_from_json(json.clone()).unwrap_err();
        assert!(
            err.contains("language_config") && err.contains("intermediate_size"),
            "{err}"
        );
        json["model_type"] = "llama".into();
        assert!(!is_janus(&json));
    }
}
