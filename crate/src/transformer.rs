//! The unified autoregressive transformer: a LLaMA-style decoder (RMSNorm, rotary positions, SwiGLU, no
//! biases) over one sequence of text and image tokens, with separate input embeddings for the two kinds and an
//! image head over the VQ codebook (after Janus-Pro; see `trainer/tessera_ref.py` for the reference).
//!
//! Weights are immutable; the run state is the [`KvCache`], which the caller owns and can reset.

use burn::module::{Module, Param};
use burn::nn::{Linear, RmsNorm};
use burn::tensor::activation::{gelu, silu, softmax};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
#[cfg(any(feature = "gpu", target_arch = "wasm32"))]
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::config::TransformerConfig;
use crate::weights::WeightStore;

/// `Linear` from a torch-layout `[out, in]` weight, transposed on the host to burn's `[in, out]`: a
/// transposed *view* would make every matmul take gemm's slow strided path.
pub(crate) fn linear(
    w: &mut WeightStore,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
) -> Linear {
    let weight = w.tensor_transposed(&format!("{name}.weight"), [d_out, d_in]);
    let bias = bias.then(|| Param::from_tensor(w.tensor(&format!("{name}.bias"), [d_out])));
    Linear {
        weight: Param::from_tensor(weight),
        bias,
    }
}

/// A linear layer with a faster path for decode steps; on the CPU backend it also keeps a host copy of its
/// weight.
///
/// A decode step multiplies `[B ≤ 2, in]` by `[in, out]`: a matrix-vector product whose cost is streaming
/// the weight from memory. burn's CPU matmul runs that shape through gemm's small-M kernel on one thread (it
/// is below burn's parallel threshold); [`HostLinear::apply`] streams a packed copy of the weight once, in
/// f16 where the checkpoint is, for every output row at once, on two cores. On a GPU, burn's matmul
/// (without autotuning) tiles that shape for large products and wastes most of its work on rows that do not
/// exist; `gpu_kernels::few_rows_matmul` is one
/// kernel sized to the product instead. Prefill (many rows) keeps burn's matmul everywhere.
#[derive(Module, Debug)]
pub struct Dense {
    linear: Linear,
    #[module(skip)]
    host: Option<Arc<HostLinear>>,
}

/// Rows up to which [`Dense`] takes its decode-step path (a step has 1 or 2: guidance runs a batch of two).
const HOST_ROWS: usize = 4;

#[derive(Debug)]
struct HostLinear {
    weight: HostWeight,
    /// `[out]`
    bias: Option<Vec<f32>>,
    d_in: usize,
    d_out: usize,
}

/// Output columns per panel of a [`HostWeight`]: a decode step's accumulators for one panel (rows ×
/// `PANEL` f32) stay in registers for the whole input loop — 2 rows × 4 AVX2 vectors natively; 2 × 4
/// SIMD128 vectors in wasm, whose engines have 16 vector registers to give them.
const PANEL: usize = if cfg!(target_arch = "wasm32") { 16 } else { 32 };

/// A [`HostLinear`] weight, packed in panels of [`PANEL`] output columns: `[⌈out / PANEL⌉, in, PANEL]`,
/// the last panel padded with zeros, so a panel streams from memory in one contiguous run.
///
/// Checkpoints stored in f16 keep their f16 values: half the bytes to stream per decode step (the
/// default model's 45 MB of f32 is more than this class of machine's L3; 22 MB is not), and widening an f16
/// to f32 is exact, so the products are bit-for-bit those of the f32 copy.
#[derive(Debug)]
enum HostWeight {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns, all finite.
    F16(Vec<u16>),
}

impl HostLinear {
    /// `weight` `[in, out]` row-major, packed; kept as f16 when every value is one exactly.
    fn new(weight: Vec<f32>, bias: Option<Vec<f32>>, d_in: usize, d_out: usize) -> Self {
        assert_eq!(weight.len(), d_in * d_out, "HostLinear weight is [in, out]");
        let panels = d_out.div_ceil(PANEL);
        let mut packed = vec![0.0f32; panels * d_in * PANEL];
        for (i, row) in weight.chunks_exact(d_out).enumerate() {
            for (p, columns) in row.chunks(PANEL).enumerate() {
                let start = (p * d_in + i) * PANEL;
                packed[start..start + columns.len()].copy_from_slice(columns);
            }
        }
        let as_f16: Option<Vec<u16>> = packed
            .iter()
            .map(|&v| {
                let h = half::f16::from_f32(v);
                (h.is_finite() && h.to_f32() == v).then_some(h.to_bits())
            })
            .collect();
        let weight = match as_f16 {
            Some(bits) => HostWeight::F16(bits),
            None => HostWeight::F32(packed),
        };
        HostLinear {
            weight,
            bias,
            d_in,
            d_out,
        }
    }

    /// `x` `[rows ≤ HOST_ROWS, in]` → `[rows, out]`, reading the weight once.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert!((1..=HOST_ROWS).contains(&rows) && x.len() == rows * self.d_in);
        let mut out = match &self.bias {
            Some(bias) => bias.repeat(rows),
            None => vec![0.0; rows * self.d_out],
        };
        match rows {
            1 => self.accumulate::<1>(x, &mut out),
            2 => self.accumulate::<2>(x, &mut out),
            3 => self.accumulate::<3>(x, &mut out),
            _ => self.accumulate::<4>(x, &mut out),
        }
        out
    }

    /// `out` `[R, out]` += `x` `[R, in]` · weight. Natively, a product big enough to pay for the hand-over
    /// is split by panels between this thread and [`crate::hot_join`]'s helper: each streams half the
    /// weight, which is what bounds a decode step (one core alone does not reach the memory bandwidth).
    fn accumulate<const R: usize>(&self, x: &[f32], out: &mut [f32]) {
        let k = self.d_in;
        let x: [&[f32]; R] = std::array::from_fn(|r| &x[r * k..][..k]);
        let mut rows = out.chunks_exact_mut(self.d_out);
        let out: [&mut [f32]; R] = std::array::from_fn(|_| rows.next().expect("R output rows"));
        let weight = self.weight.panels();
        #[cfg(not(target_arch = "wasm32"))]
        if k * self.d_out >= SPLIT_WEIGHTS {
            let columns = self.d_out.div_ceil(PANEL) / 2 * PANEL;
            let (weight_left, weight_right) = weight.split_at(columns * k);
            let mut left = out;
            let right: [&mut [f32]; R] = std::array::from_fn(|r| {
                let (row_left, row_right) = std::mem::take(&mut left[r]).split_at_mut(columns);
                left[r] = row_left;
                row_right
            });
            crate::hot_join::join(
                || accumulate_panels(weight_left, x, left, k),
                || accumulate_panels(weight_right, x, right, k),
            );
            return;
        }
        accumulate_panels(weight, x, out, k);
    }
}

/// Weights (`in × out`) from which a native host product is split over two threads: below it, handing
/// half over costs more than it saves.
#[cfg(not(target_arch = "wasm32"))]
const SPLIT_WEIGHTS: usize = 1 << 15;

impl HostWeight {
    fn panels(&self) -> Panels<'_> {
        match self {
            HostWeight::F32(w) => Panels::F32(w),
            HostWeight::F16(w) => Panels::F16(w),
        }
    }
}

/// A run of whole panels of a [`HostWeight`].
#[derive(Clone, Copy)]
enum Panels<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
}

impl<'a> Panels<'a> {
    /// The first `len` values (whole panels) and the rest.
    #[cfg(not(target_arch = "wasm32"))]
    fn split_at(self, len: usize) -> (Self, Self) {
        match self {
            Panels::F32(w) => (Panels::F32(&w[..len]), Panels::F32(&w[len..])),
            Panels::F16(w) => (Panels::F16(&w[..len]), Panels::F16(&w[len..])),
        }
    }
}

/// `out[r]` (the columns `panels` cover) += `x[r]` `[in]` · `panels`, compiled once per instruction set and
/// picked at run time (AVX2 where the CPU has it) by `pulp`, so the plain loops of [`panel_products`] are
/// vectorised with the widest instructions the CPU has.
fn accumulate_panels<const R: usize>(
    panels: Panels,
    x: [&[f32]; R],
    out: [&mut [f32]; R],
    k: usize,
) {
    struct Kernel<'a, const R: usize> {
        panels: Panels<'a>,
        x: [&'a [f32]; R],
        out: [&'a mut [f32]; R],
        k: usize,
    }
    impl<const R: usize> pulp::WithSimd for Kernel<'_, R> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            match self.panels {
                Panels::F32(w) => panel_products::<_, Portable, R>(w, self.x, self.out, self.k),
                Panels::F16(w) => panel_products::<_, Portable, R>(w, self.x, self.out, self.k),
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let Panels::F16(w) = panels
        && has_f16c_kernel_features()
    {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        unsafe { f16c_panel_products(w, x, out, k) };
        return;
    }
    pulp::Arch::new().dispatch(Kernel { panels, x, out, k });
}

/// How a panel row of stored weights (`PANEL` values) becomes f32, exactly.
trait WidenRow<E> {
    fn widen_row(row: &[E], wide: &mut [f32; PANEL]);
}

/// Plain Rust that every target vectorises.
struct Portable;

impl WidenRow<f32> for Portable {
    #[inline(always)]
    fn widen_row(row: &[f32], wide: &mut [f32; PANEL]) {
        wide.copy_from_slice(row);
    }
}

impl WidenRow<u16> for Portable {
    #[inline(always)]
    fn widen_row(row: &[u16], wide: &mut [f32; PANEL]) {
        for (f, &h) in wide.iter_mut().zip(row) {
            *f = widen_f16(h);
        }
    }
}

/// x86's F16C conversion instruction: one per 8 values, where [`widen_f16`] takes five operations (a
/// decode step's f16 products ran conversion-bound without it).
#[cfg(target_arch = "x86_64")]
struct F16c;

#[cfg(target_arch = "x86_64")]
impl WidenRow<u16> for F16c {
    #[inline(always)]
    fn widen_row(row: &[u16], wide: &mut [f32; PANEL]) {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_storeu_ps};
        assert_eq!(row.len(), PANEL);
        for (eight, out) in row.chunks_exact(8).zip(wide.chunks_exact_mut(8)) {
            // SAFETY: only used where `has_f16c_kernel_features` holds (F16C, AVX); each load and store
            // covers 8 values of slices that hold 8.
            unsafe {
                let halves = _mm_loadu_si128(eight.as_ptr().cast::<__m128i>());
                _mm256_storeu_ps(out.as_mut_ptr(), _mm256_cvtph_ps(halves));
            }
        }
    }
}

/// Whether this CPU has what [`f16c_panel_products`] is compiled for (std caches the detection).
#[cfg(target_arch = "x86_64")]
fn has_f16c_kernel_features() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx") && has!("avx2") && has!("fma") && has!("f16c")
}

/// [`panel_products`] for f16 panels with [`F16c`], compiled for AVX2 + FMA + F16C.
///
/// # Safety
/// The CPU must have those features ([`has_f16c_kernel_features`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2,fma,f16c")]
unsafe fn f16c_panel_products<const R: usize>(
    panels: &[u16],
    x: [&[f32]; R],
    out: [&mut [f32]; R],
    k: usize,
) {
    panel_products::<u16, F16c, R>(panels, x, out, k);
}

/// `out[r]` += `x[r]` `[k]` · `panels` (whole panels of a [`HostWeight`], covering `out[r].len()`
/// columns). Per panel, R × [`PANEL`] accumulators start from `out` and take every input feature in order
/// (so the sums are the same, bit for bit, as a plain row-by-row loop, however the panels are split);
/// multiply and add stay separate operations, as wasm has no fused multiply-add, so every target computes
/// the same floats.
#[inline(always)]
fn panel_products<E, W: WidenRow<E>, const R: usize>(
    panels: &[E],
    x: [&[f32]; R],
    mut out: [&mut [f32]; R],
    k: usize,
) {
    let n = out[0].len();
    for (p, panel) in panels.chunks_exact(k * PANEL).enumerate() {
        let (start, width) = (p * PANEL, PANEL.min(n - p * PANEL));
        let mut acc = [[0.0f32; PANEL]; R];
        for (acc, out) in acc.iter_mut().zip(&out) {
            acc[..width].copy_from_slice(&out[start..][..width]);
        }
        for (i, w) in panel.chunks_exact(PANEL).enumerate() {
            let mut wide = [0.0f32; PANEL];
            W::widen_row(w, &mut wide);
            for (acc, x) in acc.iter_mut().zip(x) {
                let xi = x[i];
                for (a, w) in acc.iter_mut().zip(wide) {
                    *a += xi * w;
                }
            }
        }
        for (acc, out) in acc.iter().zip(&mut out) {
            out[start..][..width].copy_from_slice(&acc[..width]);
        }
    }
}

/// A finite f16 (bit pattern `h`) as the f32 of the same value, in plain integer and float operations so
/// the loop around it vectorises on every target (wasm SIMD has no f16 conversion): `h` in the top half of
/// a word, shifted right arithmetically by 3, puts the exponent and mantissa in f32's places and copies the
/// sign into three bits the mask clears; read as an f32 that is the value × 2⁻¹¹², and one exact multiply
/// rebiases it, subnormals included. Infinities and NaNs are not handled ([`HostLinear::new`] keeps none).
#[inline(always)]
fn widen_f16(h: u16) -> f32 {
    let bits = (((u32::from(h) << 16) as i32 >> 3) as u32) & 0x8fff_e000;
    f32::from_bits(bits) * f32::from_bits(0x7780_0000) // 2¹¹²
}

impl Dense {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        match &self.host {
            Some(host) if rows <= HOST_ROWS => {
                let device = x.device();
                let input = x
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .expect("CPU activations are f32");
                let mut shape = dims;
                shape[D - 1] = host.d_out;
                let out = host.apply(&input, rows);
                Tensor::from_data(TensorData::new(out, shape), &device)
            }
            _ => {
                #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
                let x = match gpu_decode_step(x, |x| {
                    crate::gpu_kernels::few_rows_matmul(
                        x,
                        self.linear.weight.val(),
                        self.linear.bias.as_ref().map(|b| b.val()),
                    )
                }) {
                    ControlFlow::Break(y) => return y,
                    ControlFlow::Continue(x) => x,
                };
                self.linear.forward(x)
            }
        }
    }
}

/// [`linear`] as a [`Dense`], with the host copy when the weights live on the CPU backend.
pub(crate) fn dense(
    w: &mut WeightStore,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
) -> Dense {
    let linear = linear(w, name, d_in, d_out, bias);
    let floats = |t: Tensor<1>| {
        t.into_data()
            .try_into_vec_as::<f32>()
            .expect("weights are f32")
    };
    let host = (*w.device() == Device::flex()).then(|| {
        Arc::new(HostLinear::new(
            floats(linear.weight.val().reshape([d_in * d_out])),
            linear.bias.as_ref().map(|b| floats(b.val())),
            d_in,
            d_out,
        ))
    });
    Dense { linear, host }
}

/// A decode step's few rows on a GPU through one of `gpu_kernels`' row kernels: `x` `[..., in]` as `[rows,
/// in]` through `kernel`, and its `[rows, out]` back as `[..., out]` (`Break`). `Continue(x)`, untouched, for
/// more rows (prefill: burn's ops) or a tensor on the CPU.
#[cfg(any(feature = "gpu", target_arch = "wasm32"))]
fn gpu_decode_step<const D: usize>(
    x: Tensor<D>,
    kernel: impl FnOnce(Tensor<2>) -> Tensor<2>,
) -> ControlFlow<Tensor<D>, Tensor<D>> {
    let mut dims = x.dims();
    let rows: usize = dims[..D - 1].iter().product();
    if rows > HOST_ROWS || x.device() == Device::flex() {
        return ControlFlow::Continue(x);
    }
    let y = kernel(x.reshape([rows, dims[D - 1]]));
    dims[D - 1] = y.dims()[1];
    ControlFlow::Break(y.reshape(dims))
}

/// `norm` applied to `x` `[..., D]`; a decode step's few rows on a GPU take one kernel.
fn normalize<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
    let x = match gpu_decode_step(x, |x| {
        crate::gpu_kernels::rms_norm(x, norm.gamma.val(), norm.epsilon)
    }) {
        ControlFlow::Break(y) => return y,
        ControlFlow::Continue(x) => x,
    };
    norm.forward(x)
}

fn rms_norm(w: &mut WeightStore, name: &str, dim: usize, eps: f64) -> RmsNorm {
    RmsNorm {
        gamma: Param::from_tensor(w.tensor(&format!("{name}.weight"), [dim])),
        epsilon: eps,
    }
}

/// Linear → exact GELU → Linear, with biases: the image aligner and the image head.
#[derive(Module, Debug)]
pub struct GeluMlp {
    fc1: Dense,
    fc2: Dense,
}

impl GeluMlp {
    fn load(w: &mut WeightStore, name: &str, d_in: usize, d_hidden: usize, d_out: usize) -> Self {
        // Checkpoint names follow torch's nn.Sequential(Linear, GELU, Linear): indices 0 and 2.
        GeluMlp {
            fc1: dense(w, &format!("{name}.0"), d_in, d_hidden, true),
            fc2: dense(w, &format!("{name}.2"), d_hidden, d_out, true),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Attention {
    wq: Dense,
    wk: Dense,
    wv: Dense,
    wo: Dense,
    n_heads: usize,
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

/// Rotary tables for every position the cache can hold, HF LLaMA layout (both halves of a head share one
/// frequency): `cos`, `sin` `[max_seq, head_dim]`.
#[derive(Clone, Debug)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
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

    /// Rotate `x` `[B, H, T, hd]` whose positions are `start..start + T`.
    fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, t, hd] = x.dims();
        let cos = self.cos.clone().narrow(0, start, t); // [T, hd]
        let sin = self.sin.clone().narrow(0, start, t);
        #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
        if t == 1 && x.device() != Device::flex() {
            return crate::gpu_kernels::rotary_step(x, cos, sin);
        }
        let (cos, sin) = (cos.unsqueeze::<4>(), sin.unsqueeze::<4>()); // [1, 1, T, hd]
        let half = hd / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos + rotated * sin
    }
}

/// Keys and values of every position seen so far, per layer, preallocated to `max_seq` positions:
/// `[B, H, max_seq, hd]`, of which the first `len` are filled.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
}

/// One layer's keys and values, `[B, H, max_seq, hd]` each.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per layer, never moved in a loop: boxing would buy nothing
enum LayerCache {
    /// On a GPU: device tensors (`Option` only so a step can own them while it writes; always `Some` between
    /// steps).
    Device {
        keys: Option<Tensor<4>>,
        values: Option<Tensor<4>>,
    },
    /// On the CPU: host buffers, which a decode step's attention reads in place ([`host_decode_attention`]);
    /// a tensor view of them would be copied out every step.
    Host { keys: Vec<f32>, values: Vec<f32> },
}

impl KvCache {
    pub fn new(cfg: &TransformerConfig, batch: usize, device: &Device) -> Self {
        let hd = cfg.dim / cfg.n_heads;
        let shape = [batch, cfg.n_heads, cfg.max_seq, hd];
        let layer = || {
            if *device == Device::flex() {
                LayerCache::Host {
                    keys: vec![0.0; shape.iter().product()],
                    values: vec![0.0; shape.iter().product()],
                }
            } else {
                LayerCache::Device {
                    keys: Some(Tensor::zeros(shape, device)),
                    values: Some(Tensor::zeros(shape, device)),
                }
            }
        };
        KvCache {
            layers: (0..cfg.n_layers).map(|_| layer()).collect(),
            len: 0,
            capacity: cfg.max_seq,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget every position (the buffers are reused).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Attention {
    /// # Shapes
    /// `x` `[B, T, D]` at positions `cache.len()..+T` → `[B, T, D]`; appends this layer's keys and values.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        layer: &mut LayerCache,
        start: usize,
    ) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let hd = d / self.n_heads;
        let heads = |y: Tensor<3>| y.reshape([b, t, self.n_heads, hd]).swap_dims(1, 2); // [B, H, T, hd]
        let q = rope.apply(heads(self.wq.forward(x.clone())), start);
        let k = rope.apply(heads(self.wk.forward(x.clone())), start);
        let v = heads(self.wv.forward(x));
        let end = start + t;
        let (keys, values) = match layer {
            LayerCache::Host { keys, values } => {
                let capacity = keys.len() / (b * self.n_heads * hd);
                let rows = |y: Tensor<4>| {
                    y.into_data()
                        .try_into_vec_as::<f32>()
                        .expect("CPU tensors are f32")
                };
                write_positions(keys, &rows(k), capacity, start, t, hd);
                write_positions(values, &rows(v), capacity, start, t, hd);
                if t == 1 {
                    let out = host_decode_attention(&rows(q), keys, values, capacity, end, hd); // [B, D]
                    let out = Tensor::from_data(TensorData::new(out, [b, 1, d]), &Device::flex());
                    return self.wo.forward(out);
                }
                // Prefill: burn's attention over a copy of the filled positions.
                let shape = [b, self.n_heads, end, hd];
                let filled = |buffer: &[f32]| {
                    let data = buffer
                        .chunks_exact(capacity * hd)
                        .flat_map(|head| &head[..end * hd])
                        .copied()
                        .collect::<Vec<_>>();
                    Tensor::<4>::from_data(TensorData::new(data, shape), &Device::flex())
                };
                (filled(keys), filled(values))
            }
            LayerCache::Device { keys, values } => {
                let range = [0..b, 0..self.n_heads, start..end, 0..hd];
                // Take the buffers out of the cache so they are uniquely owned and `slice_assign` writes in
                // place (a shared buffer would be copied whole, every step).
                let written = |buffer: &mut Option<Tensor<4>>, rows: Tensor<4>| {
                    let full = buffer
                        .take()
                        .expect("cache buffers are always present")
                        .slice_assign(range.clone(), rows);
                    *buffer = Some(full.clone());
                    full
                };
                let (keys, values) = (written(keys, k), written(values, v));
                #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
                if t == 1 {
                    let out = crate::gpu_kernels::decode_attention(q, keys, values, end); // [B, D]
                    return self.wo.forward(out.reshape([b, 1, d]));
                }
                (keys.narrow(2, 0, end), values.narrow(2, 0, end)) // [B, H, S, hd]
            }
        };
        let scores = q.matmul(keys.swap_dims(2, 3)) / (hd as f64).sqrt(); // [B, H, T, S]
        let scores = match t {
            1 => scores, // one new position sees every cached one
            _ => scores.mask_fill(causal_mask(t, end, &values.device()), f32::NEG_INFINITY),
        };
        let out = softmax(scores, 3).matmul(values); // [B, H, T, hd]
        self.wo.forward(out.swap_dims(1, 2).reshape([b, t, d]))
    }
}

/// `a · b`, in 8 running sums (a sum in one running total is one dependent add after another, which the
/// compiler may not reorder into vectors).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a8.zip(b8) {
        for ((s, a), b) in sums.iter_mut().zip(a).zip(b) {
            *s += a * b;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Copies `rows` `[B·H, T, hd]` into `buffer` `[B·H, capacity, hd]` at positions `start..start + T`.
fn write_positions(
    buffer: &mut [f32],
    rows: &[f32],
    capacity: usize,
    start: usize,
    t: usize,
    hd: usize,
) {
    for (head, rows) in buffer
        .chunks_exact_mut(capacity * hd)
        .zip(rows.chunks_exact(t * hd))
    {
        head[start * hd..(start + t) * hd].copy_from_slice(rows);
    }
}

/// One decode step's attention on the host: `q` `[B·H, hd]` over the first `len` positions of `keys` and
/// `values` `[B·H, capacity, hd]` → `[B, H·hd]` (heads side by side, the layout `wo` reads). Softmax in f32
/// with the maximum subtracted, as burn's.
fn host_decode_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    capacity: usize,
    len: usize,
    hd: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; q.len()];
    // Natively, half the heads on each core (as burn's batched matmul did).
    #[cfg(not(target_arch = "wasm32"))]
    {
        let heads = q.len() / hd;
        let (split, cached) = (heads / 2 * hd, heads / 2 * capacity * hd);
        let (q_left, q_right) = q.split_at(split);
        let (out_left, out_right) = out.split_at_mut(split);
        let (keys_left, keys_right) = keys.split_at(cached);
        let (values_left, values_right) = values.split_at(cached);
        crate::hot_join::join(
            || attend(q_left, keys_left, values_left, out_left, capacity, len, hd),
            || {
                attend(
                    q_right,
                    keys_right,
                    values_right,
                    out_right,
                    capacity,
                    len,
                    hd,
                )
            },
        );
    }
    #[cfg(target_arch = "wasm32")]
    attend(q, keys, values, &mut out, capacity, len, hd);
    out
}

/// [`host_decode_attention`] for some heads: `q` and `out` `[heads, hd]`, `keys` and `values` `[heads,
/// capacity, hd]`.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    out: &mut [f32],
    capacity: usize,
    len: usize,
    hd: usize,
) {
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0.0f32; len];
    let heads = keys
        .chunks_exact(capacity * hd)
        .zip(values.chunks_exact(capacity * hd));
    for ((q, out), (keys, values)) in q.chunks_exact(hd).zip(out.chunks_exact_mut(hd)).zip(heads) {
        for (score, key) in scores.iter_mut().zip(keys.chunks_exact(hd)) {
            *score = dot(q, key) * scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        for (weight, value) in scores.iter().zip(values.chunks_exact(hd)) {
            let weight = weight / total;
            for (o, v) in out.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
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

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        layer: &mut LayerCache,
        start: usize,
    ) -> Tensor<3> {
        let x = x.clone()
            + self
                .attn
                .forward(normalize(&self.attn_norm, x), rope, layer, start);
        let h = normalize(&self.mlp_norm, x.clone());
        x + self.w_down.forward(self.swiglu(h))
    }

    /// `silu(h · W_gate) ⊙ (h · W_up)`, `[B, T, D]` → `[B, T, hidden]`; one kernel for a decode step on a GPU.
    fn swiglu(&self, h: Tensor<3>) -> Tensor<3> {
        #[cfg(any(feature = "gpu", target_arch = "wasm32"))]
        let h = match gpu_decode_step(h, |h| {
            let (gate, up) = (&self.w_gate.linear.weight, &self.w_up.linear.weight);
            crate::gpu_kernels::few_rows_swiglu(h, gate.val(), up.val())
        }) {
            ControlFlow::Break(y) => return y,
            ControlFlow::Continue(h) => h,
        };
        silu(self.w_gate.forward(h.clone())) * self.w_up.forward(h)
    }
}

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
    cfg: TransformerConfig,
}

impl Transformer {
    /// Build from checkpoint tensors; names are those of `trainer/tessera_ref.py`'s `Transformer`.
    pub fn load(cfg: &TransformerConfig, w: &mut WeightStore) -> Self {
        let (d, h, eps) = (cfg.dim, cfg.mlp_hidden, cfg.norm_eps);
        let layers = (0..cfg.n_layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Block {
                    attn_norm: rms_norm(w, &format!("{p}.attn_norm"), d, eps),
                    attn: Attention {
                        wq: dense(w, &format!("{p}.attn.wq"), d, d, false),
                        wk: dense(w, &format!("{p}.attn.wk"), d, d, false),
                        wv: dense(w, &format!("{p}.attn.wv"), d, d, false),
                        wo: dense(w, &format!("{p}.attn.wo"), d, d, false),
                        n_heads: cfg.n_heads,
                    },
                    mlp_norm: rms_norm(w, &format!("{p}.mlp_norm"), d, eps),
                    w_gate: dense(w, &format!("{p}.mlp.w_gate"), d, h, false),
                    w_up: dense(w, &format!("{p}.mlp.w_up"), d, h, false),
                    w_down: dense(w, &format!("{p}.mlp.w_down"), h, d, false),
                }
            })
            .collect();
        let device = w.device().clone();
        Transformer {
            text_embed: Param::from_tensor(w.tensor("text_embed.weight", [cfg.text_vocab, d])),
            img_embed: Param::from_tensor(
                w.tensor("img_embed.weight", [cfg.codebook_size, cfg.img_embed_dim]),
            ),
            img_align: GeluMlp::load(w, "img_align", cfg.img_embed_dim, d, d),
            layers,
            norm: rms_norm(w, "norm", d, eps),
            img_head: GeluMlp::load(w, "img_head", d, d, cfg.codebook_size),
            rope: Rope::new(d / cfg.n_heads, cfg.max_seq, cfg.rope_theta, &device),
            cfg: cfg.clone(),
        }
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// Text-vocabulary ids `[B, T]` → embeddings `[B, T, D]`.
    pub fn embed_text(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        embedding(self.text_embed.val(), ids)
    }

    /// Codebook indices `[B, T]` → embeddings `[B, T, D]` (embedding, then the aligner MLP).
    pub fn embed_image(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.img_align.forward(embedding(self.img_embed.val(), ids))
    }

    /// Run `x` `[B, T, D]` (positions `cache.len()..+T`) through every block and the final norm, appending to
    /// the cache → hidden states `[B, T, D]`.
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

    /// Hidden states `[..., D]` → logits over the codebook `[..., K]`.
    pub fn image_logits<const D: usize>(&self, hidden: Tensor<D>) -> Tensor<D> {
        self.img_head.forward(hidden)
    }
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

    /// [`Dense`]'s decode-step path against burn's matmul on `device`, for 1, 2 and `HOST_ROWS + 1` rows
    /// (the last takes burn's path), with and without a bias, at output widths that take vectors of 4, 2
    /// and 1 on a GPU, for weights that are f32 and weights that are f16 values (kept as f16 on the host).
    /// The host's sums follow burn's order of inputs only up to rounding, hence the tolerance.
    fn assert_decode_products_equal_burns_matmul(device: &Device) {
        let d_in = 48;
        // 700: enough weights for the host to split the product over two threads (an uneven panel split).
        let cases = [
            (80, false),
            (6, false),
            (7, false),
            (80, true),
            (7, true),
            (700, true),
            (700, false),
        ];
        for (d_out, f16_weights) in cases {
            let normal = Distribution::Normal(0.0, 1.0);
            let mut weight = Tensor::<2>::random([d_in, d_out], normal, device);
            if f16_weights {
                let rounded = values(weight)
                    .into_iter()
                    .map(|v| half::f16::from_f32(v).to_f32())
                    .collect::<Vec<_>>();
                weight = Tensor::from_data(TensorData::new(rounded, [d_in, d_out]), device);
            }
            let bias = Tensor::<1>::random([d_out], normal, device);
            for with_bias in [false, true] {
                let host = (*device == Device::flex()).then(|| {
                    let host = HostLinear::new(
                        values(weight.clone()),
                        with_bias.then(|| values(bias.clone())),
                        d_in,
                        d_out,
                    );
                    assert_eq!(
                        matches!(host.weight, HostWeight::F16(_)),
                        f16_weights,
                        "host weight kept as f16 exactly when its values are f16"
                    );
                    Arc::new(host)
                });
                let dense = Dense {
                    host,
                    linear: Linear {
                        weight: Param::from_tensor(weight.clone()),
                        bias: with_bias.then(|| Param::from_tensor(bias.clone())),
                    },
                };
                for rows in [1, 2, HOST_ROWS + 1] {
                    let x = Tensor::<3>::random([rows, 1, d_in], normal, device);
                    let ours = values(dense.forward(x.clone()));
                    let burn = values(dense.linear.forward(x));
                    assert_eq!(ours.len(), rows * d_out);
                    let worst = crate::test_util::max_abs_diff(&ours, &burn);
                    assert!(
                        worst < 1e-4,
                        "out {d_out}, f16 {f16_weights}, rows {rows}, bias {with_bias}: {worst}"
                    );
                }
            }
        }
    }

    /// Every finite f16, widened a panel row at a time by each [`WidenRow`] for f16 (the portable one and,
    /// where the CPU has it, F16C), is the f32 `half` gives: subnormals and ±0 included.
    #[test]
    fn widening_f16_is_exact() {
        let finite: Vec<u16> = (0..=u16::MAX)
            .filter(|&bits| half::f16::from_bits(bits).is_finite())
            .collect();
        let check = |name: &str, widen_row: fn(&[u16], &mut [f32; PANEL])| {
            for row in finite.chunks_exact(PANEL) {
                let mut wide = [0.0f32; PANEL];
                widen_row(row, &mut wide);
                for (&bits, got) in row.iter().zip(wide) {
                    let want = half::f16::from_bits(bits).to_f32();
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{name}: f16 bits {bits:#06x}"
                    );
                }
            }
        };
        check("portable", <Portable as WidenRow<u16>>::widen_row);
        #[cfg(target_arch = "x86_64")]
        if has_f16c_kernel_features() {
            check("F16C", <F16c as WidenRow<u16>>::widen_row);
        }
    }

    #[test]
    fn the_host_decode_products_equal_burns_matmul() {
        assert_decode_products_equal_burns_matmul(&Device::flex());
    }

    /// The GPU kernel on wgpu (Mesa's lavapipe on machines without a GPU).
    #[cfg(feature = "gpu")]
    #[test]
    fn the_gpu_decode_products_equal_burns_matmul() {
        assert_decode_products_equal_burns_matmul(&wgpu_device());
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
        let cfg = ModelConfig::tiny();
        let model = Model::from_config(
            cfg.clone(),
            &Model::random_weights(&cfg, 1, &device),
            &device,
        )
        .unwrap();
        let t = &model.transformer;
        let x = Tensor::<3>::random(
            [2, 9, cfg.transformer.dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let full = values(t.forward(x.clone(), &mut KvCache::new(&cfg.transformer, 2, &device)));
        let mut cache = KvCache::new(&cfg.transformer, 2, &device);
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
        assert_kv_cached_decoding_equals_full_recomputation(&wgpu_device());
    }

    /// wgpu's default adapter (Mesa's lavapipe on machines without a GPU), initialised once per process.
    #[cfg(feature = "gpu")]
    fn wgpu_device() -> Device {
        static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
        DEVICE
            .get_or_init(|| {
                Device::wgpu_options()
                    .init()
                    .expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)")
            })
            .clone()
    }
}
