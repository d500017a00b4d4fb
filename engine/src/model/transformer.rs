//! The unified autoregressive transformer: a LLaMA-style decoder (RMSNorm, rotary positions, SwiGLU, no
//! biases) over one sequence of text and image tokens, with separate input embeddings for the two kinds and an
//! image head over the VQ codebook (after Janus-Pro; `trainer/tessera_ref.py` is the same model in PyTorch).
//!
//! This file is the maths, written in burn's ops. Weights are immutable; the run state is the [`KvCache`],
//! which the caller owns and can reset. A decode step (one new position per row) takes faster kernels where
//! `kernels` has one: each `kernels::*_step` call below either takes the step (`Break`) or hands its input
//! back (`Continue`) for the maths that follows.

use std::ops::ControlFlow::{Break, Continue};

use burn::module::{Module, Param};
use burn::nn::RmsNorm;
use burn::tensor::activation::{gelu, silu, softmax};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::config::TransformerConfig;
use crate::kernels::{self, Dense};
use crate::model::kv_cache::{KvCache, LayerCache};
use crate::weights::WeightStore;

#[derive(Module, Debug)]
pub struct Transformer {
    /// `[text_vocab, D]`
    text_embed: Param<Tensor<2>>,
    /// `[codebook, img_embed_dim]`
    img_embed: Param<Tensor<2>>,
    img_align: GeluMlp,
    layers: Vec<Block>,
    norm: RmsNorm,
    img_head: GeluMlp,
    #[module(skip)]
    rope: Rope,
    #[module(skip)]
    config: TransformerConfig,
}

#[derive(Module, Debug)]
pub struct Block {
    attn_norm: RmsNorm,
    attn: Attention,
    mlp_norm: RmsNorm,
    w_gate: Dense,
    w_up: Dense,
    w_down: Dense,
}

#[derive(Module, Debug)]
pub struct Attention {
    wq: Dense,
    wk: Dense,
    wv: Dense,
    wo: Dense,
    n_heads: usize,
    /// Fewer than `n_heads` under grouped-query attention.
    n_kv_heads: usize,
}

/// Linear → exact GELU → Linear, with biases: the image aligner and the image head.
#[derive(Module, Debug)]
pub struct GeluMlp {
    fc1: Dense,
    fc2: Dense,
}

/// Rotary tables for every position the cache can hold, HF LLaMA layout (both halves of a head share one
/// frequency): `cos`, `sin` `[max_seq, head_dim]`.
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Transformer {
    /// Build from checkpoint tensors; names are those of `trainer/tessera_ref.py`'s `Transformer`.
    pub fn load(config: &TransformerConfig, w: &mut WeightStore) -> Self {
        let c = config;
        let (d, h, eps) = (c.dim, c.mlp_hidden, c.norm_eps);
        let kv = c.kv_heads() * c.head_dim(); // width of the keys and of the values
        // The largest tensor (Janus's is 102,400 × 2048) first, while its bytes and its f32 copy are the
        // only things loading holds besides the little built so far.
        let text_embed = Param::from_tensor(w.tensor("text_embed.weight", [c.text_vocab, d]));
        let layers = (0..c.n_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                let dense = |w: &mut WeightStore, name: &str, d_in, d_out| {
                    Dense::load(w, &format!("{p}.{name}"), d_in, d_out, false)
                };
                Block {
                    attn_norm: rms_norm(w, &format!("{p}.attn_norm"), d, eps),
                    attn: Attention {
                        wq: dense(w, "attn.wq", d, d),
                        wk: dense(w, "attn.wk", d, kv),
                        wv: dense(w, "attn.wv", d, kv),
                        wo: dense(w, "attn.wo", d, d),
                        n_heads: c.n_heads,
                        n_kv_heads: c.kv_heads(),
                    },
                    mlp_norm: rms_norm(w, &format!("{p}.mlp_norm"), d, eps),
                    w_gate: dense(w, "mlp.w_gate", d, h),
                    w_up: dense(w, "mlp.w_up", d, h),
                    w_down: dense(w, "mlp.w_down", h, d),
                }
            })
            .collect();
        let device = w.device().clone();
        Transformer {
            text_embed,
            img_embed: Param::from_tensor(
                w.tensor("img_embed.weight", [c.codebook_size, c.img_embed_dim]),
            ),
            img_align: GeluMlp::load(w, "img_align", c.img_embed_dim, d, d),
            layers,
            norm: rms_norm(w, "norm", d, eps),
            img_head: GeluMlp::load(w, "img_head", d, d, c.codebook_size),
            rope: Rope::new(c.head_dim(), c.max_seq, c.rope_theta, &device),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// # Shapes
    /// Text-vocabulary ids `[B, T]` → embeddings `[B, T, D]`.
    pub fn embed_text(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.text_embed.val(), ids)
    }

    /// # Shapes
    /// Codebook indices `[B, T]` → `[B, T, img_embed_dim]` → the aligner MLP → `[B, T, D]`.
    pub fn embed_image(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.img_align.forward(embedding(self.img_embed.val(), ids))
    }

    /// Every block, then the final norm, appending each layer's keys and values to the cache.
    ///
    /// # Shapes
    /// `x` `[B, T, D]` at positions `cache.len()..+T` → hidden states `[B, T, D]`.
    ///
    /// # Panics
    /// When the cache would overflow; callers check lengths against `max_seq` first.
    pub fn forward(&self, x: Tensor<3>, cache: &mut KvCache) -> Tensor<3> {
        let start = cache.len;
        let t = x.dims()[1];
        assert!(
            start + t <= cache.capacity(),
            "sequence of {} exceeds the KV cache ({})",
            start + t,
            cache.capacity()
        );
        let mut x = x;
        for (block, layer) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, &self.rope, layer, start);
        }
        cache.len = start + t;
        normalize(&self.norm, x)
    }

    /// # Shapes
    /// Hidden states `[..., D]` → logits over the codebook `[..., K]`.
    pub fn image_logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        self.img_head.forward(hidden)
    }
}

impl Block {
    /// Pre-norm residual attention, then a pre-norm residual SwiGLU MLP.
    ///
    /// # Shapes
    /// `x` `[B, T, D]` at positions `start..start + T` → `[B, T, D]`.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        layer: &mut LayerCache,
        start: usize,
    ) -> Tensor<3> {
        let attended = self
            .attn
            .forward(normalize(&self.attn_norm, x.clone()), rope, layer, start);
        let x = x + attended;
        let h = normalize(&self.mlp_norm, x.clone());
        x + self.w_down.forward(self.swiglu(h))
    }

    /// # Shapes
    /// `silu(h · W_gate) ⊙ (h · W_up)`: `h` `[B, T, D]` → `[B, T, hidden]`.
    fn swiglu(&self, h: Tensor<3>) -> Tensor<3> {
        let h = match kernels::swiglu_step(h, &self.w_gate, &self.w_up) {
            Break(step) => return step,
            Continue(h) => h,
        };
        silu(self.w_gate.forward(h.clone())) * self.w_up.forward(h)
    }
}

impl Attention {
    /// Causal multi-head attention over the cached positions and these, after appending these to the cache.
    ///
    /// # Shapes
    /// `x` `[B, T, D]` at positions `start..start + T` → `[B, T, D]`.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        layer: &mut LayerCache,
        start: usize,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let hd = d / self.n_heads;
        let heads = |y: Tensor<3>, n| y.reshape([b, t, n, hd]).swap_dims(1, 2); // [B, n, T, hd]
        let q = rope.apply(heads(self.wq.forward(x.clone()), self.n_heads), start); // [B, H, T, hd]
        let k = rope.apply(heads(self.wk.forward(x.clone()), self.n_kv_heads), start); // [B, KV, T, hd]
        let v = heads(self.wv.forward(x), self.n_kv_heads);
        // Under grouped-query attention each key/value head serves `H / KV` consecutive query heads; the
        // cache holds them repeated to H, so every attention kernel reads one key per query head.
        let (k, v) = (self.per_query_head(k), self.per_query_head(v));
        layer.append(k, v, start);
        let end = start + t;
        let out = match kernels::attention_step(q, layer, end) {
            Break(step) => step, // [B, 1, D]
            Continue(q) => {
                let (keys, values) = layer.filled(end); // [B, H, S, hd], S = end
                let scores = q.matmul(keys.swap_dims(2, 3)) / (hd as f64).sqrt(); // [B, H, T, S]
                let scores = match t {
                    1 => scores, // one new position sees every cached one
                    _ => scores.mask_fill(causal_mask(t, end, &values.device()), f32::NEG_INFINITY),
                };
                let out = softmax(scores, 3).matmul(values); // [B, H, T, hd]
                out.swap_dims(1, 2).reshape([b, t, d])
            }
        };
        self.wo.forward(out)
    }
}

impl Attention {
    /// `[B, KV, T, hd]` → `[B, H, T, hd]`, each key/value head repeated for its group of query heads.
    fn per_query_head(&self, x: Tensor<4>) -> Tensor<4> {
        if self.n_kv_heads == self.n_heads {
            return x;
        }
        let [b, kv, t, hd] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .repeat_dim(2, self.n_heads / kv)
            .reshape([b, self.n_heads, t, hd])
    }
}

impl GeluMlp {
    fn load(w: &mut WeightStore, name: &str, d_in: usize, d_hidden: usize, d_out: usize) -> Self {
        // Checkpoint names follow torch's nn.Sequential(Linear, GELU, Linear): indices 0 and 2.
        GeluMlp {
            fc1: Dense::load(w, &format!("{name}.0"), d_in, d_hidden, true),
            fc2: Dense::load(w, &format!("{name}.2"), d_hidden, d_out, true),
        }
    }

    /// # Shapes
    /// `x` `[..., in]` → `[..., hidden]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

impl Rope {
    fn new(head_dim: usize, max_seq: usize, theta: f64, device: &Device) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_seq * head_dim);
        let mut sin = Vec::with_capacity(max_seq * head_dim);
        for pos in 0..max_seq {
            for j in 0..head_dim {
                let inv_freq = 1.0 / theta.powf((2 * (j % half)) as f64 / head_dim as f64);
                let angle = pos as f64 * inv_freq;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Rope {
            cos: Tensor::from_data(TensorData::new(cos, [max_seq, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_seq, head_dim]), device),
        }
    }

    /// Rotate each head's halves `(x₁, x₂)` to `(x₁ cos − x₂ sin, x₂ cos + x₁ sin)`.
    ///
    /// # Shapes
    /// `x` `[B, H, T, hd]` at positions `start..start + T` → `[B, H, T, hd]`.
    fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, t, hd] = x.dims();
        let cos = self.cos.clone().narrow(0, start, t); // [T, hd]
        let sin = self.sin.clone().narrow(0, start, t);
        let x = match kernels::rotary_step(x, &cos, &sin) {
            Break(step) => return step,
            Continue(x) => x,
        };
        let (cos, sin) = (cos.unsqueeze::<4>(), sin.unsqueeze::<4>()); // [1, 1, T, hd]
        let half = hd / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }
}

/// # Shapes
/// `norm` over the last axis: `[..., D]` → `[..., D]`.
fn normalize<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    match kernels::rms_norm_step(norm, x) {
        Break(step) => step,
        Continue(x) => norm.forward(x),
    }
}

fn rms_norm(w: &mut WeightStore, name: &str, dim: usize, eps: f64) -> RmsNorm {
    RmsNorm {
        gamma: Param::from_tensor(w.tensor(&format!("{name}.weight"), [dim])),
        epsilon: eps,
    }
}

/// `[1, 1, T, S]`, true where query `i` (at position `S − T + i`) must not see key `j`.
fn causal_mask(t: usize, s: usize, device: &Device) -> Tensor<4, Bool> {
    let offset = s - t;
    let data: Vec<bool> = (0..t)
        .flat_map(|i| (0..s).map(move |j| j > offset + i))
        .collect();
    Tensor::<2, Bool>::from_data(TensorData::new(data, [t, s]), device).unsqueeze::<4>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::model::Model;
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    #[test]
    fn rope_rotates_each_pair_by_its_angle() {
        let device = Device::flex();
        let rope = Rope::new(4, 8, 10000.0, &device);
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([1, 1, 1, 4]);
        let got = values(rope.apply(x, 3));
        // Frequencies 1 and 1/100 at position 3; halves (x0, x2) and (x1, x3) rotate together.
        let (a, b) = (3.0f32, 0.03f32);
        let want = [
            1.0 * a.cos() - 3.0 * a.sin(),
            2.0 * b.cos() - 4.0 * b.sin(),
            3.0 * a.cos() + 1.0 * a.sin(),
            4.0 * b.cos() + 2.0 * b.sin(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn rms_norm_matches_hand_computation() {
        let device = Device::flex();
        let norm = RmsNorm {
            gamma: Param::from_tensor(Tensor::from_floats([1.0, 2.0], &device)),
            epsilon: 0.0,
        };
        let got = values(norm.forward(Tensor::<1>::from_floats([3.0, 4.0], &device)));
        let rms = (12.5f32).sqrt();
        assert!(
            (got[0] - 3.0 / rms).abs() < 1e-6 && (got[1] - 8.0 / rms).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn causal_mask_hides_only_the_future() {
        let m = causal_mask(2, 4, &Device::flex())
            .into_data()
            .try_into_vec_as::<bool>()
            .unwrap();
        // Queries at positions 2 and 3 over keys 0..4.
        assert_eq!(
            m,
            vec![false, false, false, true, false, false, false, false]
        );
    }

    /// Prefill plus single steps against one pass over the whole sequence, on `device` (on a GPU the steps
    /// take the decode kernels, the whole pass burn's ops).
    fn assert_kv_cached_decoding_equals_full_recomputation(device: &Device) {
        let device = device.clone();
        let config = ModelConfig::tiny();
        let model = Model::from_config(
            config.clone(),
            &Model::random_weights(&config, 1, &device),
            &device,
        )
        .unwrap();
        let t = &model.transformer;
        let x = Tensor::<3>::random(
            [2, 9, config.transformer.dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let full = values(t.forward(
            x.clone(),
            &mut KvCache::new(&config.transformer, 2, 9, &device),
        ));
        let mut cache = KvCache::new(&config.transformer, 2, 9, &device);
        let mut pieces = vec![t.forward(x.clone().narrow(1, 0, 4), &mut cache)];
        for i in 4..9 {
            pieces.push(t.forward(x.clone().narrow(1, i, 1), &mut cache));
        }
        let stepped = values(Tensor::cat(pieces, 1));
        let worst = crate::test_util::max_abs_diff(&full, &stepped);
        assert!(
            worst < 1e-4,
            "cached and recomputed hidden states differ by {worst}"
        );
        assert_eq!(cache.len(), 9);
        cache.reset();
        assert!(cache.is_empty());
    }

    #[test]
    fn kv_cached_decoding_equals_full_recomputation() {
        assert_kv_cached_decoding_equals_full_recomputation(&Device::flex());
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn kv_cached_gpu_decoding_equals_full_recomputation() {
        assert_kv_cached_decoding_equals_full_recomputation(&crate::test_util::wgpu_device());
    }
}
