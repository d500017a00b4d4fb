//! The VQ image tokenizer: a convolutional encoder, an L2-normalised codebook (after LlamaGen) and a
//! *vertically causal*, streaming decoder.
//!
//! Every 3×3 convolution of the decoder sees its own row and the two rows above, never below, and
//! normalisation is per pixel, so the pixels of token row r depend only on token rows 0..=r: a token row is
//! final pixels the moment it is sampled. [`DecoderState`] keeps, for each causal convolution, the last two
//! input rows it has seen, so decoding row r costs one row's work, and decoding all rows at once from a fresh
//! state is the full-grid decode (the same arithmetic).

use burn::module::{Module, Param};
use burn::tensor::activation::silu;
use burn::tensor::module::{conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::VqConfig;
use crate::weights::WeightStore;

/// How a convolution pads and strides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// 3×3, padding 1: same size.
    Same,
    /// 3×3, stride 2, padding 1: half size.
    Down,
    /// 3×3 over the row and two rows above (left/right padding 1); rows above come from [`DecoderState`].
    Causal,
    /// 1×1.
    Pointwise,
    /// 3×3, stride 2, no padding, after one zero row below and one zero column to the right: half size
    /// (LlamaGen's `Downsample`).
    DownPadEnd,
}

/// A convolution with bias, shared by both codecs.
#[derive(Module, Debug)]
pub struct Conv {
    /// `[out, in, k, k]`
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
    #[module(skip)]
    kind: ConvKind,
}

impl Conv {
    pub(crate) fn load(
        w: &mut WeightStore,
        name: &str,
        c_in: usize,
        c_out: usize,
        kind: ConvKind,
    ) -> Self {
        let k = if kind == ConvKind::Pointwise { 1 } else { 3 };
        Conv {
            weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [c_out, c_in, k, k])),
            bias: Param::from_tensor(w.tensor(&format!("{name}.bias"), [c_out])),
            kind,
        }
    }

    /// # Shapes
    /// `[B, C_in, H, W]` → `[B, C_out, H', W']`. For [`ConvKind::Causal`], `x` must already carry the two rows
    /// above it (see [`CausalRows`]), so H' = H − 2.
    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let opts = match self.kind {
            ConvKind::Same => ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            ConvKind::Down => ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
            ConvKind::Causal => ConvOptions::new([1, 1], [0, 1], [1, 1], 1),
            ConvKind::Pointwise => ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            ConvKind::DownPadEnd => ConvOptions::new([2, 2], [0, 0], [1, 1], 1),
        };
        let x = match self.kind {
            ConvKind::DownPadEnd => x.pad((0, 1, 0, 1), 0.0), // right, bottom
            _ => x,
        };
        conv2d(x, self.weight.val(), Some(self.bias.val()), opts)
    }
}

/// LayerNorm over channels at each pixel: no statistics across pixels, so it streams.
#[derive(Module, Debug)]
pub struct ChannelNorm {
    weight: Param<Tensor<1>>,
    bias: Param<Tensor<1>>,
    eps: f64,
}

impl ChannelNorm {
    fn load(w: &mut WeightStore, name: &str, c: usize, eps: f64) -> Self {
        ChannelNorm {
            weight: Param::from_tensor(w.tensor(&format!("{name}.weight"), [c])),
            bias: Param::from_tensor(w.tensor(&format!("{name}.bias"), [c])),
            eps,
        }
    }

    /// `[B, C, H, W]` → same.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mean = x.clone().mean_dim(1);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(1);
        let normed = centered / (var + self.eps).sqrt();
        let c = self.weight.dims()[0];
        normed * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// The rows above the current ones, per causal convolution, in the order the decoder runs them.
#[derive(Clone, Debug, Default)]
pub struct DecoderState {
    rows: Vec<Tensor<4>>,
    /// Token rows decoded so far.
    pub token_rows: usize,
}

/// Hands each causal convolution its slot of [`DecoderState`] during one decoder pass.
struct CausalRows<'a> {
    state: &'a mut DecoderState,
    next: usize,
}

impl CausalRows<'_> {
    /// Run `conv` on `x` `[B, C, h, W]` with the two rows above it, and remember this input's last two rows.
    fn conv(&mut self, conv: &Conv, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let above = match self.state.rows.get(self.next) {
            Some(rows) => rows.clone(),
            None => Tensor::zeros([b, c, 2, w], &x.device()), // above the image top: zero padding
        };
        let input = Tensor::cat(vec![above, x], 2); // [B, C, h + 2, W]
        let tail = input.clone().narrow(2, h, 2);
        if self.next < self.state.rows.len() {
            self.state.rows[self.next] = tail;
        } else {
            self.state.rows.push(tail);
        }
        self.next += 1;
        conv.forward(input)
    }
}

#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: ChannelNorm,
    conv1: Conv,
    norm2: ChannelNorm,
    conv2: Conv,
}

impl ResBlock {
    fn load(w: &mut WeightStore, name: &str, c: usize, eps: f64, kind: ConvKind) -> Self {
        ResBlock {
            norm1: ChannelNorm::load(w, &format!("{name}.norm1"), c, eps),
            conv1: Conv::load(w, &format!("{name}.conv1"), c, c, kind),
            norm2: ChannelNorm::load(w, &format!("{name}.norm2"), c, eps),
            conv2: Conv::load(w, &format!("{name}.conv2"), c, c, kind),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        x + self.conv2.forward(silu(self.norm2.forward(h)))
    }

    fn forward_causal(&self, x: Tensor<4>, rows: &mut CausalRows) -> Tensor<4> {
        let h = rows.conv(&self.conv1, silu(self.norm1.forward(x.clone())));
        x + rows.conv(&self.conv2, silu(self.norm2.forward(h)))
    }
}

#[derive(Module, Debug)]
pub struct Level {
    res: Vec<ResBlock>,
    /// Encoder: stride-2 convolution to the next level. Decoder: convolution after ×2 upsampling to the next
    /// finer level.
    resample: Option<Conv>,
}

#[derive(Module, Debug)]
pub struct Encoder {
    conv_in: Conv,
    levels: Vec<Level>,
    norm_out: ChannelNorm,
    conv_out: Conv,
}

impl Encoder {
    fn load(config: &VqConfig, w: &mut WeightStore) -> Self {
        let ch = &config.enc_channels;
        let levels = (0..ch.len())
            .map(|i| Level {
                res: (0..config.res_blocks)
                    .map(|j| {
                        ResBlock::load(
                            w,
                            &format!("vq.encoder.levels.{i}.res.{j}"),
                            ch[i],
                            config.norm_eps,
                            ConvKind::Same,
                        )
                    })
                    .collect(),
                resample: (i + 1 < ch.len()).then(|| {
                    Conv::load(
                        w,
                        &format!("vq.encoder.levels.{i}.down"),
                        ch[i],
                        ch[i + 1],
                        ConvKind::Down,
                    )
                }),
            })
            .collect();
        Encoder {
            conv_in: Conv::load(w, "vq.encoder.conv_in", 3, ch[0], ConvKind::Same),
            levels,
            norm_out: ChannelNorm::load(
                w,
                "vq.encoder.norm_out",
                ch[ch.len() - 1],
                config.norm_eps,
            ),
            conv_out: Conv::load(
                w,
                "vq.encoder.conv_out",
                ch[ch.len() - 1],
                config.code_dim,
                ConvKind::Pointwise,
            ),
        }
    }

    /// Image `[B, 3, H, W]` in [−1, 1] → `[B, code_dim, H/8, W/8]` (before normalisation).
    fn forward(&self, img: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv_in.forward(img);
        for level in &self.levels {
            for r in &level.res {
                x = r.forward(x);
            }
            if let Some(down) = &level.resample {
                x = down.forward(x);
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Decoder {
    conv_in: Conv,
    /// Finest first; run coarsest first.
    levels: Vec<Level>,
    norm_out: ChannelNorm,
    conv_out: Conv,
}

impl Decoder {
    fn load(config: &VqConfig, w: &mut WeightStore) -> Self {
        let ch = &config.dec_channels;
        let levels = (0..ch.len())
            .map(|i| Level {
                res: (0..config.res_blocks)
                    .map(|j| {
                        ResBlock::load(
                            w,
                            &format!("vq.decoder.levels.{i}.res.{j}"),
                            ch[i],
                            config.norm_eps,
                            ConvKind::Causal,
                        )
                    })
                    .collect(),
                resample: (i > 0).then(|| {
                    Conv::load(
                        w,
                        &format!("vq.decoder.levels.{i}.up"),
                        ch[i],
                        ch[i - 1],
                        ConvKind::Causal,
                    )
                }),
            })
            .collect();
        Decoder {
            conv_in: Conv::load(
                w,
                "vq.decoder.conv_in",
                config.code_dim,
                ch[ch.len() - 1],
                ConvKind::Causal,
            ),
            levels,
            norm_out: ChannelNorm::load(w, "vq.decoder.norm_out", ch[0], config.norm_eps),
            conv_out: Conv::load(w, "vq.decoder.conv_out", ch[0], 3, ConvKind::Causal),
        }
    }

    /// The next token rows' codes `[B, code_dim, r, w]` → their pixel rows `[B, 3, 8r, 8w]`, continuing from
    /// `state`.
    fn forward(&self, codes: Tensor<4>, state: &mut DecoderState) -> Tensor<4> {
        let mut rows = CausalRows { state, next: 0 };
        let mut x = rows.conv(&self.conv_in, codes);
        for level in self.levels.iter().rev() {
            for r in &level.res {
                x = r.forward_causal(x, &mut rows);
            }
            if let Some(up) = &level.resample {
                let [_, _, h, w] = x.dims();
                let opts = InterpolateOptions::new(InterpolateMode::Nearest)
                    .with_output_size([2 * h, 2 * w]);
                x = rows.conv(up, interpolate(x, opts));
            }
        }
        rows.conv(&self.conv_out, silu(self.norm_out.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Vq {
    encoder: Encoder,
    /// L2-normalised at load: `[K, code_dim]`.
    codebook: Param<Tensor<2>>,
    decoder: Decoder,
    #[module(skip)]
    config: VqConfig,
}

impl Vq {
    /// Build from checkpoint tensors named `vq.*` (see `trainer/tessera_ref.py`'s `VQ`).
    pub fn load(config: &VqConfig, w: &mut WeightStore) -> Self {
        let codebook = w.tensor("vq.codebook", [config.codebook_size, config.code_dim]);
        Vq {
            encoder: Encoder::load(config, w),
            codebook: Param::from_tensor(l2_normalize_rows(codebook)),
            decoder: Decoder::load(config, w),
            config: config.clone(),
        }
    }

    /// Image `[B, 3, H, W]` in [−1, 1] → codebook indices `[B, (H/8)·(W/8)]`, raster order: the nearest
    /// normalised code to each normalised encoder output.
    pub fn encode(&self, img: Tensor<4>) -> Tensor<2, Int> {
        nearest_codes(self.encoder.forward(img), self.codebook.val())
    }

    /// Codebook indices `[B, r·w]` of `r` new token rows → their pixel rows `[B, 3, 8r, 8w]` in about [−1, 1],
    /// continuing from `state` (a fresh state decodes from the top).
    pub fn decode_rows(
        &self,
        indices: Tensor<2, Int>,
        grid_w: usize,
        state: &mut DecoderState,
    ) -> Tensor<4> {
        let r = indices.dims()[1] / grid_w;
        let codes = lookup_codes(self.codebook.val(), indices, grid_w); // [B, D, r, w]
        let pixels = self.decoder.forward(codes, state);
        state.token_rows += r;
        pixels
    }

    /// Full-grid decode: indices `[B, h·w]` → `[B, 3, 8h, 8w]`.
    pub fn decode(&self, indices: Tensor<2, Int>, grid_w: usize) -> Tensor<4> {
        self.decode_rows(indices, grid_w, &mut DecoderState::default())
    }

    pub fn config(&self) -> &VqConfig {
        &self.config
    }
}

/// Rows of `[N, D]` scaled to unit length (F.normalize's epsilon of 1e-12).
pub(crate) fn l2_normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// The nearest of the unit `codebook` rows `[K, D]` to each normalised `z` `[B, D, h, w]` → indices
/// `[B, h·w]`, raster order. For unit vectors the smallest |z − e|² is the largest z·e.
pub(crate) fn nearest_codes(z: Tensor<4>, codebook: Tensor<2>) -> Tensor<2, Int> {
    let [b, d, h, w] = z.dims();
    let flat = l2_normalize_rows(z.permute([0, 2, 3, 1]).reshape([b * h * w, d])); // [N, D]
    let sim = flat.matmul(codebook.transpose()); // [N, K]
    sim.argmax(1).reshape([b, h * w])
}

/// Codebook rows for `indices` `[B, h·w]` → `[B, D, h, w]` (channel first).
pub(crate) fn lookup_codes(codebook: Tensor<2>, indices: Tensor<2, Int>, w: usize) -> Tensor<4> {
    let [b, n] = indices.dims();
    let d = codebook.dims()[1];
    codebook
        .select(0, indices.reshape([b * n]))
        .reshape([b, n / w, w, d])
        .permute([0, 3, 1, 2])
}

/// RGB bytes `H × W × 3` → `[1, 3, H, W]` in [−1, 1].
pub fn image_to_tensor(rgb: &[u8], size: usize, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = rgb.iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
    Tensor::<3>::from_data(TensorData::new(values, [size, size, 3]), device)
        .permute([2, 0, 1])
        .unsqueeze::<4>()
}

/// `[3, H, W]` values in about [−1, 1] (as f32, channel-major) → RGB bytes `H × W × 3`, rounded and clipped.
pub fn tensor_values_to_rgb(values: &[f32], h: usize, w: usize) -> Vec<u8> {
    let plane = h * w;
    let mut out = Vec::with_capacity(plane * 3);
    for p in 0..plane {
        for c in 0..3 {
            out.push(
                ((values[c * plane + p] + 1.0) * 127.5)
                    .round()
                    .clamp(0.0, 255.0) as u8,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::model::Model;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    fn tiny_vq() -> (Vq, ModelConfig) {
        let device = Device::flex();
        let config = ModelConfig::tiny();
        let model = Model::from_config(
            config.clone(),
            &Model::random_weights(&config, 2, &device),
            &device,
        )
        .unwrap();
        match model.codec {
            crate::model::Codec::Streaming(vq) => (vq, config),
            crate::model::Codec::Vq16(_) => unreachable!("the tiny preset streams"),
        }
    }

    fn ids(tokens: &[i64], device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(tokens.to_vec(), [1, tokens.len()]), device)
    }

    #[test]
    fn channel_norm_matches_hand_computation() {
        let device = Device::flex();
        let norm = ChannelNorm {
            weight: Param::from_tensor(Tensor::from_floats([1.0, 1.0, 2.0], &device)),
            bias: Param::from_tensor(Tensor::from_floats([0.0, 0.5, 0.0], &device)),
            eps: 0.0,
        };
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device).reshape([1, 3, 1, 1]);
        let got = values(norm.forward(x));
        let s = (1.5f32).sqrt(); // 1 / sqrt(var = 2/3)
        let want = [-s, 0.5, 2.0 * s];
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
            "{got:?} vs {want:?}"
        );
    }

    #[test]
    fn streaming_decode_equals_full_decode_and_never_looks_down() {
        let (vq, config) = tiny_vq();
        let device = Device::flex();
        let grid = config.grid();
        let tokens: Vec<i64> = (0..config.image_tokens() as i64)
            .map(|i| (i * 37 + 11) % 1024)
            .collect();
        let full = values(vq.decode(ids(&tokens, &device), grid));
        let mut state = DecoderState::default();
        let mut streamed = vec![vec![]; 3];
        for r in 0..grid {
            let band = values(vq.decode_rows(
                ids(&tokens[r * grid..(r + 1) * grid], &device),
                grid,
                &mut state,
            ));
            let plane = band.len() / 3;
            for c in 0..3 {
                streamed[c].extend_from_slice(&band[c * plane..(c + 1) * plane]);
            }
        }
        let streamed: Vec<f32> = streamed.concat();
        let worst = crate::test_util::max_abs_diff(&full, &streamed);
        assert!(
            worst < 1e-5,
            "streamed rows differ from the full decode by {worst}"
        );
        assert_eq!(state.token_rows, grid);

        // Changing the last token row leaves every pixel above it bit-identical.
        let mut changed = tokens.clone();
        for t in &mut changed[(grid - 1) * grid..] {
            *t = (*t + 500) % 1024;
        }
        let other = values(vq.decode(ids(&changed, &device), grid));
        let (size, down) = (config.image_size, config.vq.downsample());
        let mut differs_below = false;
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let i = c * size * size + y * size + x;
                    if y < size - down {
                        assert_eq!(
                            full[i], other[i],
                            "pixel ({x}, {y}) above the changed row moved"
                        );
                    } else {
                        differs_below |= full[i] != other[i];
                    }
                }
            }
        }
        assert!(differs_below, "the changed row itself must change");
    }

    #[test]
    fn encoding_picks_the_nearest_normalised_code() {
        let (vq, config) = tiny_vq();
        let device = Device::flex();
        let img = Tensor::<4>::random(
            [1, 3, config.image_size, config.image_size],
            burn::tensor::Distribution::Uniform(-1.0, 1.0),
            &device,
        );
        let z = vq.encoder.forward(img.clone());
        let [_, d, h, w] = z.dims();
        let z = values(z.permute([0, 2, 3, 1]).reshape([h * w, d]));
        let codebook = values(vq.codebook.val());
        let got = vq.encode(img).into_data().try_into_vec_as::<i64>().unwrap();
        for (p, &k) in got.iter().enumerate() {
            let zp = &z[p * d..(p + 1) * d];
            let norm = zp.iter().map(|v| v * v).sum::<f32>().sqrt();
            let dist = |c: usize| {
                codebook[c * d..(c + 1) * d]
                    .iter()
                    .zip(zp)
                    .map(|(e, v)| (e - v / norm).powi(2))
                    .sum::<f32>()
            };
            let best = (0..config.vq.codebook_size)
                .min_by(|&a, &b| dist(a).total_cmp(&dist(b)))
                .unwrap();
            assert!(
                dist(k as usize) <= dist(best) + 1e-5,
                "position {p}: picked {k}, nearest is {best}"
            );
        }
    }
}
