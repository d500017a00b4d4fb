//! LlamaGen's VQ-16, the image tokenizer of Janus and Janus-Pro: a convolutional encoder and decoder with
//! GroupNorm (32 groups) and single-head attention at the deepest level, an L2-normalised codebook, and 1×1
//! maps between the convolutions' `z_channels` and the codes. Downsample 16: 384² ↔ 24×24 tokens.
//!
//! Its decoder is global (GroupNorm's statistics and the attention span the whole grid), so an image is
//! decoded once its grid is complete, not row by row. Tensor names are LlamaGen's under `vq.` (the Janus
//! key table puts them under `gen_vision_model.`). Reference: `janus/models/vq_model.py` at 1daa72f.

use burn::module::{Module, Param};
use burn::nn::GroupNorm;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor};

use crate::config::{VqConfig, VqKind};
use crate::model::vq::{Conv, ConvKind, l2_normalize_rows, lookup_codes, nearest_codes};
use crate::weights::WeightStore;

/// GroupNorm's fixed group count in LlamaGen (`Normalize`).
const GROUPS: usize = 32;

fn group_norm(w: &mut WeightStore, name: &str, c: usize, eps: f64) -> GroupNorm {
    GroupNorm {
        gamma: Some(Param::from_tensor(w.tensor(&format!("{name}.weight"), [c]))),
        beta: Some(Param::from_tensor(w.tensor(&format!("{name}.bias"), [c]))),
        num_groups: GROUPS,
        num_channels: c,
        epsilon: eps,
        affine: true,
    }
}

/// norm1 → swish → conv1 → norm2 → swish → conv2, plus the input (through a 1×1 `nin_shortcut` where the
/// channels change).
#[derive(Module, Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    norm2: GroupNorm,
    conv2: Conv,
    nin_shortcut: Option<Conv>,
}

impl ResnetBlock {
    fn load(w: &mut WeightStore, name: &str, c_in: usize, c_out: usize, eps: f64) -> Self {
        ResnetBlock {
            norm1: group_norm(w, &format!("{name}.norm1"), c_in, eps),
            conv1: Conv::load(w, &format!("{name}.conv1"), c_in, c_out, ConvKind::Same),
            norm2: group_norm(w, &format!("{name}.norm2"), c_out, eps),
            conv2: Conv::load(w, &format!("{name}.conv2"), c_out, c_out, ConvKind::Same),
            nin_shortcut: (c_in != c_out).then(|| {
                let name = format!("{name}.nin_shortcut");
                Conv::load(w, &name, c_in, c_out, ConvKind::Pointwise)
            }),
        }
    }

    /// `[B, C_in, H, W]` → `[B, C_out, H, W]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        match &self.nin_shortcut {
            Some(shortcut) => shortcut.forward(x) + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over every pixel, with 1×1 q/k/v/proj_out maps and a residual.
#[derive(Module, Debug)]
pub struct AttnBlock {
    norm: GroupNorm,
    q: Conv,
    k: Conv,
    v: Conv,
    proj_out: Conv,
}

impl AttnBlock {
    fn load(w: &mut WeightStore, name: &str, c: usize, eps: f64) -> Self {
        let conv = |w: &mut WeightStore, part: &str| {
            Conv::load(w, &format!("{name}.{part}"), c, c, ConvKind::Pointwise)
        };
        AttnBlock {
            norm: group_norm(w, &format!("{name}.norm"), c, eps),
            q: conv(w, "q"),
            k: conv(w, "k"),
            v: conv(w, "v"),
            proj_out: conv(w, "proj_out"),
        }
    }

    /// `[B, C, H, W]` → same: softmax(q·kᵀ / √C) · v over the H·W positions.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let normed = self.norm.forward(x.clone());
        let flat = |conv: &Conv| conv.forward(normed.clone()).reshape([b, c, h * w]); // [B, C, N]
        let (q, k, v) = (flat(&self.q), flat(&self.k), flat(&self.v));
        let scores = q.swap_dims(1, 2).matmul(k) / (c as f64).sqrt(); // [B, N, N]: query, key
        let out = softmax(scores, 2).matmul(v.swap_dims(1, 2)); // [B, N, C]
        x + self
            .proj_out
            .forward(out.swap_dims(1, 2).reshape([b, c, h, w]))
    }
}

/// One resolution: residual blocks (each followed by attention at the deepest level), then the resampling
/// convolution to the next level.
#[derive(Module, Debug)]
pub struct Level {
    res: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    resample: Option<Conv>,
}

impl Level {
    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (i, res) in self.res.iter().enumerate() {
            x = res.forward(x);
            if let Some(attn) = self.attn.get(i) {
                x = attn.forward(x);
            }
        }
        x
    }
}

/// Resnet, attention, resnet at the deepest resolution.
#[derive(Module, Debug)]
pub struct Mid {
    first: ResnetBlock,
    attn: AttnBlock,
    second: ResnetBlock,
}

impl Mid {
    fn load(w: &mut WeightStore, name: &str, c: usize, eps: f64) -> Self {
        Mid {
            first: ResnetBlock::load(w, &format!("{name}.0"), c, c, eps),
            attn: AttnBlock::load(w, &format!("{name}.1"), c, eps),
            second: ResnetBlock::load(w, &format!("{name}.2"), c, c, eps),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.second
            .forward(self.attn.forward(self.first.forward(x)))
    }
}

/// conv_in, the levels (shallowest first), mid, norm_out → swish → conv_out; `levels` decoder-side are
/// deepest first, as LlamaGen stores them.
#[derive(Module, Debug)]
pub struct Tower {
    conv_in: Conv,
    levels: Vec<Level>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv,
}

#[derive(Module, Debug)]
pub struct Vq16 {
    encoder: Tower,
    /// 1×1, `z_channels` → code_dim.
    quant_conv: Conv,
    /// L2-normalised at load: `[K, code_dim]`.
    codebook: Param<Tensor<2>>,
    /// 1×1, code_dim → `z_channels`.
    post_quant_conv: Conv,
    decoder: Tower,
}

impl Vq16 {
    /// Build from `vq.*` tensors named as LlamaGen's `VQModel` names them.
    ///
    /// # Panics
    /// When `config.kind` is not [`VqKind::Vq16`].
    pub fn load(config: &VqConfig, w: &mut WeightStore) -> Self {
        let VqKind::Vq16 { z_channels: z } = config.kind else {
            panic!("Vq16::load takes a VQ-16 config")
        };
        let (ch, eps, blocks) = (&config.enc_channels, config.norm_eps, config.res_blocks);
        let deepest = ch.len() - 1;
        let encoder = Tower {
            conv_in: Conv::load(w, "vq.encoder.conv_in", 3, ch[0], ConvKind::Same),
            levels: (0..ch.len())
                .map(|i| {
                    let p = format!("vq.encoder.conv_blocks.{i}");
                    let c_in = if i == 0 { ch[0] } else { ch[i - 1] };
                    Level {
                        res: (0..blocks)
                            .map(|j| {
                                let c_in = if j == 0 { c_in } else { ch[i] };
                                ResnetBlock::load(w, &format!("{p}.res.{j}"), c_in, ch[i], eps)
                            })
                            .collect(),
                        attn: match i == deepest {
                            true => (0..blocks)
                                .map(|j| AttnBlock::load(w, &format!("{p}.attn.{j}"), ch[i], eps))
                                .collect(),
                            false => vec![],
                        },
                        resample: (i != deepest).then(|| {
                            let name = format!("{p}.downsample.conv");
                            Conv::load(w, &name, ch[i], ch[i], ConvKind::DownPadEnd)
                        }),
                    }
                })
                .collect(),
            mid: Mid::load(w, "vq.encoder.mid", ch[deepest], eps),
            norm_out: group_norm(w, "vq.encoder.norm_out", ch[deepest], eps),
            conv_out: Conv::load(w, "vq.encoder.conv_out", ch[deepest], z, ConvKind::Same),
        };
        let ch = &config.dec_channels;
        let decoder = Tower {
            conv_in: Conv::load(w, "vq.decoder.conv_in", z, ch[deepest], ConvKind::Same),
            // Stored deepest first: conv_blocks.0 is the deepest level.
            levels: (0..ch.len())
                .map(|i| {
                    let p = format!("vq.decoder.conv_blocks.{i}");
                    let level = deepest - i;
                    let c_in = ch[(level + 1).min(deepest)];
                    Level {
                        res: (0..=blocks)
                            .map(|j| {
                                let c_in = if j == 0 { c_in } else { ch[level] };
                                ResnetBlock::load(w, &format!("{p}.res.{j}"), c_in, ch[level], eps)
                            })
                            .collect(),
                        attn: match level == deepest {
                            true => (0..=blocks)
                                .map(|j| {
                                    AttnBlock::load(w, &format!("{p}.attn.{j}"), ch[level], eps)
                                })
                                .collect(),
                            false => vec![],
                        },
                        resample: (level != 0).then(|| {
                            let name = format!("{p}.upsample.conv");
                            Conv::load(w, &name, ch[level], ch[level], ConvKind::Same)
                        }),
                    }
                })
                .collect(),
            mid: Mid::load(w, "vq.decoder.mid", ch[deepest], eps),
            norm_out: group_norm(w, "vq.decoder.norm_out", ch[0], eps),
            conv_out: Conv::load(w, "vq.decoder.conv_out", ch[0], 3, ConvKind::Same),
        };
        let (k, d) = (config.codebook_size, config.code_dim);
        Vq16 {
            encoder,
            quant_conv: Conv::load(w, "vq.quant_conv", z, d, ConvKind::Pointwise),
            codebook: Param::from_tensor(l2_normalize_rows(w.tensor("vq.codebook", [k, d]))),
            post_quant_conv: Conv::load(w, "vq.post_quant_conv", d, z, ConvKind::Pointwise),
            decoder,
        }
    }

    /// Image `[B, 3, H, W]` in [−1, 1] → the latent before quantisation, `[B, code_dim, H/16, W/16]`.
    pub fn encode_latent(&self, img: Tensor<4>) -> Tensor<4> {
        let e = &self.encoder;
        let mut x = e.conv_in.forward(img);
        for level in &e.levels {
            x = level.forward(x);
            if let Some(down) = &level.resample {
                x = down.forward(x);
            }
        }
        let x = e.mid.forward(x);
        self.quant_conv
            .forward(e.conv_out.forward(silu(e.norm_out.forward(x))))
    }

    /// Image `[B, 3, H, W]` in [−1, 1] → codebook indices `[B, (H/16)·(W/16)]`, raster order.
    pub fn encode(&self, img: Tensor<4>) -> Tensor<2, Int> {
        nearest_codes(self.encode_latent(img), self.codebook.val())
    }

    /// The code nearest the codebook's centre `[1, 1]`: what a preview puts where nothing is drawn yet, the
    /// least committal of the codes.
    pub fn neutral_code(&self) -> Tensor<2, Int> {
        let codebook = self.codebook.val(); // [K, D], rows unit length
        let [_, d] = codebook.dims();
        let centre = codebook.clone().mean_dim(0).reshape([d, 1]);
        codebook.matmul(centre).argmax(0) // [1, 1]
    }

    /// The normalised codes of `indices` `[B, h·w]` → `[B, code_dim, h, w]`.
    pub fn codes(&self, indices: Tensor<2, Int>, grid_w: usize) -> Tensor<4> {
        lookup_codes(self.codebook.val(), indices, grid_w)
    }

    /// Indices `[B, h·w]` → pixels `[B, 3, 16h, 16w]` in about [−1, 1].
    pub fn decode(&self, indices: Tensor<2, Int>, grid_w: usize) -> Tensor<4> {
        let d = &self.decoder;
        let mut x = d
            .conv_in
            .forward(self.post_quant_conv.forward(self.codes(indices, grid_w)));
        x = d.mid.forward(x);
        for level in &d.levels {
            x = level.forward(x);
            if let Some(up) = &level.resample {
                let [_, _, h, w] = x.dims();
                let opts = InterpolateOptions::new(InterpolateMode::Nearest)
                    .with_output_size([2 * h, 2 * w]);
                x = up.forward(interpolate(x, opts));
            }
        }
        d.conv_out.forward(silu(d.norm_out.forward(x)))
    }
}
