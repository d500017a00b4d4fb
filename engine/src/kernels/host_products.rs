//! The CPU backend's products: `[rows, in] · [in, out]` from a packed host copy of the weight, in the
//! checkpoint's own f16 or bf16 where it has one, every output row at once, split over two cores natively.
//! The host copy is the only copy of the weight on the CPU: prefill takes it too.
//!
//! A decode step multiplies a few rows (1 or 2: guidance runs a batch of two) by each weight: a
//! matrix-vector product whose cost is streaming the weight from memory. burn's CPU matmul runs that shape
//! through gemm's small-M kernel on one thread (it is below burn's parallel threshold); [`HostLinear::apply`]
//! streams a packed copy once for every output row, and natively hands half the panels to
//! [`super::hot_join`]'s helper thread. A prefill's many rows take each panel in turn, in groups of
//! [`DECODE_ROWS`] rows, while the panel sits in the core's cache.

use safetensors::Dtype;

use super::DECODE_ROWS;

/// A linear layer's weight and bias as the host keeps them.
#[derive(Debug)]
pub(crate) struct HostLinear {
    weight: HostWeight,
    /// `[out]`
    bias: Option<Vec<f32>>,
    d_in: usize,
    pub(crate) d_out: usize,
}

/// Output columns per panel of a [`HostWeight`]: a decode step's accumulators for one panel (rows ×
/// `PANEL` f32) stay in registers for the whole input loop — 2 rows × 4 AVX2 vectors natively; 2 × 4
/// SIMD128 vectors in wasm, whose engines have 16 vector registers to give them.
const PANEL: usize = if cfg!(target_arch = "wasm32") { 16 } else { 32 };

/// A [`HostLinear`] weight, packed in panels of [`PANEL`] output columns: `[⌈out / PANEL⌉, in, PANEL]`,
/// the last panel padded with zeros, so a panel streams from memory in one contiguous run.
///
/// Checkpoints stored in f16 or bf16 keep their 16-bit values: half the bytes to hold and to stream per
/// decode step (the default model's 45 MB of f32 is more than this class of machine's L3; 22 MB is not),
/// and widening either to f32 is exact, so the products are bit-for-bit those of an f32 copy. An f32
/// checkpoint whose values are all f16 values is kept as f16 for the same reason.
#[derive(Debug)]
enum HostWeight {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns, all finite.
    F16(Vec<u16>),
    /// bfloat16 bit patterns (the top half of an f32's).
    Bf16(Vec<u16>),
}

/// Packs a weight given in torch layout `[out, in]` (`at(o, i)`) into [`HostWeight`] panels.
fn pack<T: Copy + Default>(d_in: usize, d_out: usize, at: impl Fn(usize) -> T) -> Vec<T> {
    let mut packed = vec![T::default(); d_out.div_ceil(PANEL) * d_in * PANEL];
    for o in 0..d_out {
        let (panel, column) = (o / PANEL, o % PANEL);
        for i in 0..d_in {
            packed[(panel * d_in + i) * PANEL + column] = at(o * d_in + i);
        }
    }
    packed
}

/// The little-endian 16-bit words of `bytes`.
fn words(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

impl HostLinear {
    /// A weight as its checkpoint stores it (`dtype` F32, F16 or BF16, little-endian `bytes`, torch layout
    /// `[out, in]`), packed without an f32 copy of a 16-bit one.
    pub(crate) fn from_stored(
        dtype: Dtype,
        bytes: &[u8],
        bias: Option<Vec<f32>>,
        d_in: usize,
        d_out: usize,
    ) -> Self {
        assert_eq!(
            bytes.len(),
            d_in * d_out * dtype.bitsize() / 8,
            "HostLinear weight is [out, in]"
        );
        let weight = match dtype {
            Dtype::BF16 => {
                let w: Vec<u16> = words(bytes).collect();
                HostWeight::Bf16(pack(d_in, d_out, |j| w[j]))
            }
            Dtype::F16 if words(bytes).all(|h| half::f16::from_bits(h).is_finite()) => {
                let w: Vec<u16> = words(bytes).collect();
                HostWeight::F16(pack(d_in, d_out, |j| w[j]))
            }
            // f32, and f16 holding infinities or NaNs (which the f16 kernels do not widen).
            _ => {
                let w = crate::weights::decode(dtype, bytes);
                Self::f16_if_exact(pack(d_in, d_out, |j| w[j]))
            }
        };
        HostLinear {
            weight,
            bias,
            d_in,
            d_out,
        }
    }

    /// A weight of zeros: what a tensor that could not be read loads as while the rest are read (the load
    /// then fails with every problem), left untouched in memory.
    pub(crate) fn zeros(bias: Option<Vec<f32>>, d_in: usize, d_out: usize) -> Self {
        HostLinear {
            weight: HostWeight::F32(vec![0.0; d_out.div_ceil(PANEL) * d_in * PANEL]),
            bias,
            d_in,
            d_out,
        }
    }

    /// Packed f32 values, kept as f16 when every one is an f16 exactly.
    fn f16_if_exact(packed: Vec<f32>) -> HostWeight {
        let as_f16: Option<Vec<u16>> = packed
            .iter()
            .map(|&v| {
                let h = half::f16::from_f32(v);
                (h.is_finite() && h.to_f32() == v).then_some(h.to_bits())
            })
            .collect();
        match as_f16 {
            Some(bits) => HostWeight::F16(bits),
            None => HostWeight::F32(packed),
        }
    }

    /// How the weight is kept: "f32", "f16" or "bf16".
    #[cfg(test)]
    pub(crate) fn kept_as(&self) -> &'static str {
        match self.weight {
            HostWeight::F32(_) => "f32",
            HostWeight::F16(_) => "f16",
            HostWeight::Bf16(_) => "bf16",
        }
    }

    /// `x` `[rows, in]` → `[rows, out]`: the weight streamed once for up to [`DECODE_ROWS`] rows, and for
    /// more, each panel taken by every group of rows while it is in cache.
    pub(crate) fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert!(rows >= 1 && x.len() == rows * self.d_in);
        let mut out = match &self.bias {
            Some(bias) => bias.repeat(rows),
            None => vec![0.0; rows * self.d_out],
        };
        let x: Vec<&[f32]> = x.chunks_exact(self.d_in).collect();
        let mut out_rows: Vec<&mut [f32]> = out.chunks_exact_mut(self.d_out).collect();
        self.accumulate(&x, &mut out_rows);
        out
    }

    /// `out` `[rows, out]` += `x` `[rows, in]` · weight. Natively, a product big enough to pay for the
    /// hand-over is split by panels between this thread and [`super::hot_join`]'s helper: each streams half
    /// the weight, which is what bounds a decode step (one core alone does not reach the memory bandwidth).
    fn accumulate(&self, x: &[&[f32]], out: &mut [&mut [f32]]) {
        let k = self.d_in;
        let weight = self.weight.panels();
        #[cfg(not(target_arch = "wasm32"))]
        if k * self.d_out >= SPLIT_WEIGHTS {
            let columns = self.d_out.div_ceil(PANEL) / 2 * PANEL;
            let (weight_left, weight_right) = weight.split_at(columns * k);
            let (mut left, mut right): (Vec<&mut [f32]>, Vec<&mut [f32]>) =
                out.iter_mut().map(|row| row.split_at_mut(columns)).unzip();
            super::hot_join::join(
                || accumulate_panels(weight_left, x, &mut left, k),
                || accumulate_panels(weight_right, x, &mut right, k),
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
            HostWeight::Bf16(w) => Panels::Bf16(w),
        }
    }
}

/// A run of whole panels of a [`HostWeight`].
#[derive(Clone, Copy)]
enum Panels<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
    Bf16(&'a [u16]),
}

impl<'a> Panels<'a> {
    /// The first `len` values (whole panels) and the rest.
    #[cfg(not(target_arch = "wasm32"))]
    fn split_at(self, len: usize) -> (Self, Self) {
        match self {
            Panels::F32(w) => (Panels::F32(&w[..len]), Panels::F32(&w[len..])),
            Panels::F16(w) => (Panels::F16(&w[..len]), Panels::F16(&w[len..])),
            Panels::Bf16(w) => (Panels::Bf16(&w[..len]), Panels::Bf16(&w[len..])),
        }
    }
}

/// `out[r]` (the columns `panels` cover) += `x[r]` `[in]` · `panels`, compiled once per instruction set and
/// picked at run time (AVX2 where the CPU has it) by `pulp`, so the plain loops of [`panel_products`] are
/// vectorised with the widest instructions the CPU has.
fn accumulate_panels(panels: Panels, x: &[&[f32]], out: &mut [&mut [f32]], k: usize) {
    struct Kernel<'a, 'b> {
        panels: Panels<'a>,
        x: &'a [&'a [f32]],
        out: &'a mut [&'b mut [f32]],
        k: usize,
    }
    impl pulp::WithSimd for Kernel<'_, '_> {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            match self.panels {
                Panels::F32(w) => panel_products::<_, Portable>(w, self.x, self.out, self.k),
                Panels::F16(w) => panel_products::<_, Portable>(w, self.x, self.out, self.k),
                Panels::Bf16(w) => panel_products::<_, Bf16>(w, self.x, self.out, self.k),
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

/// bfloat16 is the top half of an f32: widening is a shift, exact for every value.
struct Bf16;

impl WidenRow<u16> for Bf16 {
    #[inline(always)]
    fn widen_row(row: &[u16], wide: &mut [f32; PANEL]) {
        for (f, &h) in wide.iter_mut().zip(row) {
            *f = f32::from_bits(u32::from(h) << 16);
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

/// How far ahead of the panel row being multiplied the weights are asked for, in bytes.
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 2048;

/// Asks for the cache lines [`PREFETCH_BYTES`] past the start of `row` (a panel row: 64 bytes of f16 or
/// bf16, 128 of f32). A decode step streams every weight once and waited on memory at ~8 GB/s per core
/// with the hardware prefetcher alone; this keeps more lines in flight. A hint only (an address past the
/// end of the weights included), so the products are unchanged; x86-64 only (wasm has no prefetch).
#[inline(always)]
fn prefetch_ahead<E>(row: &[E]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let ahead = row.as_ptr().cast::<i8>().wrapping_add(PREFETCH_BYTES);
        for line in (0..std::mem::size_of_val(row)).step_by(64) {
            // SAFETY: a prefetch reads nothing and faults on no address; SSE is part of x86-64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
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
unsafe fn f16c_panel_products(panels: &[u16], x: &[&[f32]], out: &mut [&mut [f32]], k: usize) {
    panel_products::<u16, F16c>(panels, x, out, k);
}

/// `out[r]` += `x[r]` `[k]` · `panels` (whole panels of a [`HostWeight`], covering `out[r].len()`
/// columns): panel by panel, each taken by the rows in groups of [`DECODE_ROWS`] ([`panel_rows`]); a
/// decode step's few rows are one group, picked once for all panels.
#[inline(always)]
fn panel_products<E, W: WidenRow<E>>(panels: &[E], x: &[&[f32]], out: &mut [&mut [f32]], k: usize) {
    match x.len() {
        1 => each_panel(panels, k, out[0].len(), |panel, columns| {
            panel_rows::<E, W, 1>(panel, x, out, columns)
        }),
        2 => each_panel(panels, k, out[0].len(), |panel, columns| {
            panel_rows::<E, W, 2>(panel, x, out, columns)
        }),
        3 => each_panel(panels, k, out[0].len(), |panel, columns| {
            panel_rows::<E, W, 3>(panel, x, out, columns)
        }),
        _ => each_panel(panels, k, out[0].len(), |panel, columns| {
            for (x, out) in x.chunks(DECODE_ROWS).zip(out.chunks_mut(DECODE_ROWS)) {
                let columns = columns.clone();
                match x.len() {
                    1 => panel_rows::<E, W, 1>(panel, x, out, columns),
                    2 => panel_rows::<E, W, 2>(panel, x, out, columns),
                    3 => panel_rows::<E, W, 3>(panel, x, out, columns),
                    _ => panel_rows::<E, W, DECODE_ROWS>(panel, x, out, columns),
                }
            }
        }),
    }
}

/// `body(panel, output columns)` for each panel of `panels` (`k` × [`PANEL`] values each) over `n`
/// output columns.
#[inline(always)]
fn each_panel<E>(
    panels: &[E],
    k: usize,
    n: usize,
    mut body: impl FnMut(&[E], std::ops::Range<usize>),
) {
    for (p, panel) in panels.chunks_exact(k * PANEL).enumerate() {
        body(panel, p * PANEL..(p * PANEL + PANEL).min(n));
    }
}

/// `out[r][columns]` += `x[r]` · `panel` for R rows, asking for the weights ahead: R × [`PANEL`] accumulators start from `out` and take
/// every input feature in order (so the sums are the same, bit for bit, as a plain row-by-row loop, however
/// the panels and rows are split); multiply and add stay separate operations, as wasm has no fused
/// multiply-add, so every target computes the same floats.
#[inline(always)]
fn panel_rows<E, W: WidenRow<E>, const R: usize>(
    panel: &[E],
    x: &[&[f32]],
    out: &mut [&mut [f32]],
    columns: std::ops::Range<usize>,
) {
    let x: [&[f32]; R] = std::array::from_fn(|r| x[r]);
    let width = columns.len();
    let mut acc = [[0.0f32; PANEL]; R];
    for (acc, out) in acc.iter_mut().zip(out.iter()) {
        acc[..width].copy_from_slice(&out[columns.clone()]);
    }
    for (i, w) in panel.chunks_exact(PANEL).enumerate() {
        prefetch_ahead(w);
        let mut wide = [0.0f32; PANEL];
        W::widen_row(w, &mut wide);
        for (acc, x) in acc.iter_mut().zip(x) {
            let xi = x[i];
            for (a, w) in acc.iter_mut().zip(wide) {
                *a += xi * w;
            }
        }
    }
    for (acc, out) in acc.iter().zip(out.iter_mut()) {
        out[columns.clone()].copy_from_slice(&acc[..width]);
    }
}

/// A finite f16 (bit pattern `h`) as the f32 of the same value, in plain integer and float operations so
/// the loop around it vectorises on every target (wasm SIMD has no f16 conversion): `h` in the top half of
/// a word, shifted right arithmetically by 3, puts the exponent and mantissa in f32's places and copies the
/// sign into three bits the mask clears; read as an f32 that is the value × 2⁻¹¹², and one exact multiply
/// rebiases it, subnormals included. Infinities and NaNs are not handled ([`HostLinear::from_stored`] keeps
/// none).
#[inline(always)]
fn widen_f16(h: u16) -> f32 {
    let bits = (((u32::from(h) << 16) as i32 >> 3) as u32) & 0x8fff_e000;
    f32::from_bits(bits) * f32::from_bits(0x7780_0000) // 2¹¹²
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
