//! Model configuration: documented data with named presets. `config.json` in a model folder is this type
//! serialised; the trainer (`trainer/tessera_ref.py`) writes the same fields. The named presets are data in
//! `engine/presets/`, read here and by the trainer.

use serde::{Deserialize, Serialize};

use crate::generation::prompt::EditLayout;

/// The autoregressive transformer (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformerConfig {
    /// Width of the residual stream.
    pub dim: usize,
    /// Number of decoder blocks.
    pub n_layers: usize,
    /// Attention heads; `dim / n_heads` is the head size and must be even (rotary pairs).
    pub n_heads: usize,
    /// Key/value heads under grouped-query attention, each shared by `n_heads / n_kv_heads` query heads;
    /// configs without it have one per query head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_kv_heads: Option<usize>,
    /// Hidden width of the SwiGLU MLP.
    pub mlp_hidden: usize,
    /// Text vocabulary: 256 bytes + special tokens (see `generation::prompt`).
    pub text_vocab: usize,
    /// Image vocabulary: the VQ codebook size.
    pub codebook_size: usize,
    /// Width of the image-token embedding before the aligner MLP lifts it to `dim`.
    pub img_embed_dim: usize,
    /// Longest sequence (prompt + image tokens) the KV cache holds.
    pub max_seq: usize,
    /// Rotary embedding base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub norm_eps: f64,
}

/// The VQ image tokenizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VqConfig {
    /// Number of codes.
    pub codebook_size: usize,
    /// Dimension of a code (codes and encoder outputs are L2-normalised before lookup).
    pub code_dim: usize,
    /// Encoder channels per resolution, finest first; each level after the first halves the resolution.
    pub enc_channels: Vec<usize>,
    /// Decoder channels per resolution, finest first.
    pub dec_channels: Vec<usize>,
    /// Residual blocks per level, encoder and decoder.
    pub res_blocks: usize,
    /// Normalisation epsilon (per-pixel LayerNorm, or GroupNorm for [`VqKind::Vq16`]).
    pub norm_eps: f64,
    /// Which codec these widths describe; configs without it are Tessera's streaming VQ.
    #[serde(default, skip_serializing_if = "VqKind::is_streaming")]
    pub kind: VqKind,
}

/// The codec architectures the engine runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VqKind {
    /// Tessera's own ([`crate::model::vq`]): per-pixel norms and a vertically causal decoder, so every
    /// finished token row is final pixels.
    #[default]
    Streaming,
    /// LlamaGen's VQ-16, Janus-Pro's image tokenizer ([`crate::model::vq16`]): GroupNorm of 32 groups,
    /// attention at the deepest level, `res_blocks` per encoder level and one more per decoder level, and
    /// `z_channels` between the convolutions and the 1×1 maps to and from the codes. Its decoder is global:
    /// an image is decoded once its grid is complete.
    Vq16 { z_channels: usize },
}

impl VqKind {
    fn is_streaming(&self) -> bool {
        *self == VqKind::Streaming
    }
}

impl TransformerConfig {
    /// Key/value heads: `n_kv_heads`, or one per query head.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }
}

impl VqConfig {
    /// Pixels per token side: 2^(levels − 1).
    pub fn downsample(&self) -> usize {
        1 << (self.dec_channels.len() - 1)
    }
}

/// Everything needed to rebuild a model from its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Names the model in provenance metadata.
    pub model_id: String,
    /// Square RGB images of this side.
    pub image_size: usize,
    pub transformer: TransformerConfig,
    pub vq: VqConfig,
    /// False for weights that were initialised but never trained (the tools say so loudly).
    #[serde(default = "yes")]
    pub trained: bool,
    /// The edit prompt layout the model was trained on; configs without it are image-first.
    #[serde(default)]
    pub edit_layout: EditLayout,
    /// How a message is put to the model; configs without it read messages into the world's captions.
    #[serde(default)]
    pub interpreter: Interpreter,
    /// Whether a new picture with a sign is prompted with that sign drawn alone as its context image
    /// ([`crate::interpret::sign::sign_picture`]), so the model copies the lettering instead of spelling it
    /// from bytes; configs without it draw signs from the text alone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sign_glyphs: bool,
    /// The model family: which prompt builder and sampling defaults it takes. Tessera's own configs leave it
    /// out; a Janus-Pro `config.json` is read into this type by [`crate::model::janus`].
    #[serde(default, skip_serializing_if = "Family::is_tessera")]
    pub family: Family,
}

/// A model family: one transformer code path, each family with its key table, codec, prompt builder and
/// sampling defaults (DESIGN §2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// This project's models: byte-level text with special tokens, edits, the streaming VQ.
    #[default]
    Tessera,
    /// DeepSeek's Janus and Janus-Pro: BPE text, the VQ-16 codec, guidance 5.
    Janus(crate::model::janus::JanusPrompt),
}

impl Family {
    fn is_tessera(&self) -> bool {
        *self == Family::Tessera
    }

    /// The name the tools show.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Tessera => "tessera",
            Family::Janus(_) => "janus",
        }
    }
}

/// How a message is put to the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpreter {
    /// Read into the "Shapes & Signs" caption grammar first ([`crate::interpret`]): models of the default
    /// model's world.
    #[default]
    Shapes,
    /// The text as typed: models with their own text understanding.
    AsTyped,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A preset from `engine/presets/`, the one source of the architectures: the trainer reads the same files.
fn preset(json: &str) -> ModelConfig {
    serde_json::from_str(json).expect("the presets in engine/presets/ are valid model configs")
}

impl ModelConfig {
    /// `config.json` of either family: Janus's layout (`model_type: multi_modality`) or Tessera's.
    pub fn from_json(json: &[u8]) -> crate::Result<Self> {
        let bad = |e: String| crate::TesseraError::Config(e);
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| bad(format!("config.json: {e}")))?;
        if crate::model::janus::is_janus(&value) {
            return crate::model::janus::config_from_json(value).map_err(bad);
        }
        serde_json::from_slice(json).map_err(|e| bad(format!("config.json: {e}")))
    }

    /// The shipped default model's architecture: 128² images, a 16×16 grid of tokens from a 1024-code VQ,
    /// and an 11.5 M-parameter transformer.
    pub fn default_model() -> Self {
        preset(include_str!("../presets/default.json"))
    }

    /// A tiny model for tests and the browser's end-to-end checks: the default model's structure and image
    /// size with every width cut down (0.2 M + 0.1 M parameters). `trainer/train.py --preset tiny` trains it.
    pub fn tiny() -> Self {
        preset(include_str!("../presets/tiny.json"))
    }

    /// Janus-Pro-1B's image half in its own `config.json` layout (24 layers, d = 2048, 16 heads, an MLP of
    /// 5632, a 102 400-word text vocabulary, a 16 384-code VQ-16 writing a 24×24 grid of a 384² image), for
    /// speed and memory measurements with random weights: 1.48 G + 0.07 G parameters.
    pub fn janus_pro_1b_sized() -> Self {
        Self::from_json(Self::JANUS_PRO_1B_SIZED.as_bytes())
            .expect("the presets in engine/presets/ are valid model configs")
    }

    /// [`ModelConfig::janus_pro_1b_sized`]'s `config.json`, as a folder of its weights holds it.
    pub const JANUS_PRO_1B_SIZED: &str = include_str!("../presets/janus-pro-1b-sized.json");

    /// The smallest model the app runs: 32² images (a 4×4 grid, 16 tokens) and one narrow layer. Browser tests
    /// use it untrained on a software GPU (SwiftShader), where every kernel launch costs milliseconds and a
    /// 256-token image would take minutes; it exercises every path of the app, not image quality.
    pub fn micro() -> Self {
        preset(include_str!("../presets/micro.json"))
    }

    /// Tokens per image side.
    pub fn grid(&self) -> usize {
        self.image_size / self.vq.downsample()
    }

    /// Tokens per image.
    pub fn image_tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// The sampling settings a generation starts from unless told otherwise: the ones the model was tuned
    /// with (the default model's, from ShapesEval) or published with (Janus: guidance 5, temperature 1).
    pub fn default_settings(&self) -> crate::generation::Settings {
        let tessera = crate::generation::Settings::default();
        match &self.family {
            Family::Tessera => tessera,
            Family::Janus(janus) => crate::generation::Settings {
                guidance: janus.guidance,
                temperature: janus.temperature,
                ..tessera
            },
        }
    }

    /// Checks every size against its bounds (zero and an upper limit, the field named) and the relations
    /// between fields that the code relies on. Sizes the engine derives from the fields (the largest
    /// tensor, the key/value cache at `max_seq`) are computed in u64 and must fit this target's address
    /// space, so no product wraps on wasm32.
    pub fn validate(&self) -> Result<(), String> {
        let problems = self.out_of_bounds();
        if !problems.is_empty() {
            // The relations below compute with these sizes: they are only meaningful within bounds.
            return Err(problems.join("; "));
        }
        let problems = self.inconsistencies();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Each size outside its [`LIMITS`] bound, and derived sizes too large for this target.
    fn out_of_bounds(&self) -> Vec<String> {
        let (t, v) = (&self.transformer, &self.vq);
        let mut problems = Vec::new();
        let mut bound = |field: String, value: usize, max: usize| {
            if value == 0 || value > max {
                problems.push(format!("{field} is {value}; it must be from 1 to {max}"));
            }
        };
        let l = &LIMITS;
        bound("image_size".into(), self.image_size, l.image_size);
        bound("transformer.dim".into(), t.dim, l.width);
        bound("transformer.n_layers".into(), t.n_layers, l.layers);
        bound("transformer.n_heads".into(), t.n_heads, l.heads);
        bound("transformer.n_kv_heads".into(), t.kv_heads(), l.heads);
        bound("transformer.mlp_hidden".into(), t.mlp_hidden, l.hidden);
        bound("transformer.text_vocab".into(), t.text_vocab, l.vocab);
        bound("transformer.codebook_size".into(), t.codebook_size, l.vocab);
        bound("transformer.img_embed_dim".into(), t.img_embed_dim, l.width);
        bound("transformer.max_seq".into(), t.max_seq, l.max_seq);
        bound("vq.codebook_size".into(), v.codebook_size, l.vocab);
        bound("vq.code_dim".into(), v.code_dim, l.width);
        bound("vq.res_blocks".into(), v.res_blocks, l.res_blocks);
        bound(
            "vq.enc_channels (levels)".into(),
            v.enc_channels.len(),
            l.vq_levels,
        );
        bound(
            "vq.dec_channels (levels)".into(),
            v.dec_channels.len(),
            l.vq_levels,
        );
        for (field, channels) in [
            ("enc_channels", &v.enc_channels),
            ("dec_channels", &v.dec_channels),
        ] {
            for (i, &c) in channels.iter().enumerate() {
                bound(format!("vq.{field}[{i}]"), c, l.channels);
            }
        }
        if let VqKind::Vq16 { z_channels } = v.kind {
            bound("vq.z_channels".into(), z_channels, l.channels);
        }
        for (field, value) in [
            ("transformer.rope_theta", t.rope_theta),
            ("transformer.norm_eps", t.norm_eps),
            ("vq.norm_eps", v.norm_eps),
        ] {
            if !(value.is_finite() && value > 0.0) {
                problems.push(format!("{field} is {value}; it must be a positive number"));
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        // Within bounds no single field overflows; their products can, on a 32-bit target.
        let most = isize::MAX as u64;
        let n = |x: usize| x as u64;
        let largest = [
            (
                "transformer.text_vocab × transformer.dim",
                n(t.text_vocab) * n(t.dim),
            ),
            (
                "transformer.codebook_size × transformer.dim",
                n(t.codebook_size) * n(t.dim),
            ),
            (
                "transformer.mlp_hidden × transformer.dim",
                n(t.mlp_hidden) * n(t.dim),
            ),
        ];
        for (what, values) in largest {
            if values * 4 > most {
                problems.push(format!(
                    "{what} is a tensor of {values} values, more than this build can address ({} bytes)",
                    most
                ));
            }
        }
        // The cache a generation of `max_seq` tokens needs: keys and values, f32, two rows (guidance).
        let cache = n(t.n_layers) * n(t.max_seq) * n(t.dim) * 2 * 4 * 2;
        if cache > most {
            problems.push(format!(
                "transformer.n_layers × max_seq × dim needs a {cache}-byte key/value cache, more than this build can address ({most} bytes)"
            ));
        }
        problems
    }

    /// The relations between fields that the code relies on.
    fn inconsistencies(&self) -> Vec<String> {
        let t = &self.transformer;
        let v = &self.vq;
        let mut problems = Vec::new();
        if !t.dim.is_multiple_of(t.n_heads) || !(t.dim / t.n_heads).is_multiple_of(2) {
            problems.push(format!(
                "dim {} must split into {} heads of even size",
                t.dim, t.n_heads
            ));
        }
        let kv = t.kv_heads();
        if !t.n_heads.is_multiple_of(kv) {
            problems.push(format!(
                "n_kv_heads {kv} must divide n_heads {} (grouped-query attention)",
                t.n_heads
            ));
        }
        if t.codebook_size != v.codebook_size {
            problems.push(format!(
                "transformer.codebook_size {} differs from vq.codebook_size {}",
                t.codebook_size, v.codebook_size
            ));
        }
        let tessera = self.family == Family::Tessera;
        if tessera && t.text_vocab < crate::generation::prompt::TEXT_VOCAB {
            problems.push(format!(
                "text_vocab {} is below the tokenizer's {}",
                t.text_vocab,
                crate::generation::prompt::TEXT_VOCAB
            ));
        }
        let glyph_size = crate::interpret::scene::IMAGE_SIZE;
        if self.sign_glyphs && (!tessera || self.image_size != glyph_size) {
            problems.push(format!(
                "sign_glyphs needs a Tessera model of {glyph_size}² images (the world's signs); this is a {} model of {}² images",
                self.family.name(),
                self.image_size
            ));
        }
        if v.enc_channels.len() != v.dec_channels.len() {
            problems.push(
                "vq.enc_channels and vq.dec_channels must name the same number of levels".into(),
            );
        }
        if !self.image_size.is_multiple_of(v.downsample()) {
            problems.push(format!(
                "image_size {} is not a multiple of the VQ downsample {}",
                self.image_size,
                v.downsample()
            ));
        } else if tessera && t.max_seq < 2 * self.image_tokens() + 16 {
            problems.push(format!(
                "max_seq {} cannot hold an edit (two images of {} tokens)",
                t.max_seq,
                self.image_tokens()
            ));
        } else if self.image_tokens() >= t.max_seq {
            problems.push(format!(
                "max_seq {} cannot hold an image of {} tokens",
                t.max_seq,
                self.image_tokens()
            ));
        }
        if let VqKind::Vq16 { .. } = v.kind
            && v.enc_channels.iter().any(|c| c % 32 != 0)
        {
            problems.push(format!(
                "VQ-16 channels {:?} must be multiples of GroupNorm's 32 groups",
                v.enc_channels
            ));
        }
        problems
    }
}

/// Upper bounds on a config's sizes: well above any model the engine runs (Janus-Pro-7B's widths fit), and
/// low enough that no size is absurd before anything is allocated.
pub struct Limits {
    /// Pixels per image side.
    pub image_size: usize,
    /// `dim`, `img_embed_dim`, `code_dim`.
    pub width: usize,
    pub layers: usize,
    /// `n_heads`, `n_kv_heads`.
    pub heads: usize,
    pub hidden: usize,
    /// `text_vocab` and codebook sizes.
    pub vocab: usize,
    /// Longest sequence: sizes the rotary tables at load.
    pub max_seq: usize,
    pub vq_levels: usize,
    pub channels: usize,
    pub res_blocks: usize,
}

pub const LIMITS: Limits = Limits {
    image_size: 2048,
    width: 16384,
    layers: 256,
    heads: 256,
    hidden: 65536,
    vocab: 1 << 20,
    max_seq: 65536,
    vq_levels: 8,
    channels: 8192,
    res_blocks: 16,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_json() {
        let presets = [
            ModelConfig::default_model(),
            ModelConfig::tiny(),
            ModelConfig::micro(),
            ModelConfig::janus_pro_1b_sized(),
        ];
        for config in presets {
            config.validate().unwrap();
            let back: ModelConfig =
                serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
            assert_eq!(back, config);
        }
        assert_eq!(ModelConfig::default_model().image_tokens(), 256);
        assert_eq!(ModelConfig::tiny().image_tokens(), 256);
    }

    #[test]
    fn validate_names_each_inconsistency() {
        let mut config = ModelConfig::tiny();
        config.transformer.n_heads = 3;
        config.vq.codebook_size = 65;
        let err = config.validate().unwrap_err();
        assert!(
            err.contains("heads") && err.contains("codebook_size"),
            "{err}"
        );
    }
}
