//! Hand-written GPU kernels (CubeCL, so the same source compiles to WGSL for WebGPU and to SPIR-V for
//! Vulkan) for the shapes burn's own kernels handle badly.
//!
//! A decode step works on a few rows (one per guidance sequence). Without autotuning, burn's matmul tiles a
//! `[rows ≤ 4, in]·[in, out]` product like a large one and computes mostly rows that do not exist; a
//! broadcast multiply and a sum does the right work but writes and re-reads a `[rows, in, out]`
//! intermediate (on Mesa's lavapipe those two kernels took 85 % of a decode step). And a software GPU
//! (Chromium's SwiftShader) pays mostly per dispatch, where burn spends six kernels on an RMSNorm and six on
//! a rotary embedding. So a decode step on a GPU runs these instead: [`few_rows_matmul`],
//! [`few_rows_swiglu`], [`decode_attention`], [`rms_norm`] and [`rotary_step`]; prefill keeps burn's ops.

use burn::backend::Cube;
use burn::tensor::{DType, Shape, Tensor as BurnTensor};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::ir::FloatKind;
use cubecl::std::tensor::layout::linear::LinearViewMut;
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// The 2 × 2 block of products both few-row kernels accumulate: rows `x0`, `x1` of `x` (element offsets)
/// against column vector `ca` of `wa` and `cb` of `wb` (vector indices; `a_step`, `b_step`: vectors per
/// weight row) → `(x0·a, x0·b, x1·a, x1·b)`. Each weight vector is loaded once for both rows.
#[cube]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn pair_products<E: Numeric, N: Size>(
    x: &Tensor<E>,
    x0: usize,
    x1: usize,
    wa: &Tensor<Vector<E, N>>,
    ca: usize,
    a_step: usize,
    wb: &Tensor<Vector<E, N>>,
    cb: usize,
    b_step: usize,
) -> (Vector<E, N>, Vector<E, N>, Vector<E, N>, Vector<E, N>) {
    let x_step = x.stride(1);
    let zero = Vector::broadcast(E::from_int(0));
    let (mut s0a, mut s0b, mut s1a, mut s1b) = (zero, zero, zero, zero);
    for i in 0..wa.shape(0) {
        let a = wa[i * a_step + ca];
        let b = wb[i * b_step + cb];
        let r0 = Vector::broadcast(x[x0 + i * x_step]);
        let r1 = Vector::broadcast(x[x1 + i * x_step]);
        s0a += r0 * a;
        s0b += r0 * b;
        s1a += r1 * a;
        s1b += r1 * b;
    }
    (s0a, s0b, s1a, s1b)
}

/// One unit per output vector of a pair of rows: `output[r, c..c + N] = bias[c..] + Σ_i x[r, i] · weight[i,
/// c..]` for `r` in `2p, 2p + 1` (a decode step with guidance is exactly one pair).
///
/// Each weight vector is loaded once for both rows; the units of a pair read consecutive vectors of each
/// weight row, and all of them read the same `x[r, i]`. An odd last row is computed twice (from the same
/// row) and written once.
#[cube(launch_unchecked, address_type = "dynamic")]
fn few_rows_matmul_kernel<E: Numeric, N: Size>(
    x: &Tensor<E>,
    weight: &Tensor<Vector<E, N>>,
    bias: ComptimeOption<&[Vector<E, N>]>,
    mut output: LinearViewMut<'_, Vector<E, N>>,
    #[define(E)] _dtype: ElemType,
) {
    let line = weight.vector_size();
    // Shapes and strides count elements; indices into `weight` and `output` count vectors.
    let cols = weight.shape(1) / line;
    let rows = x.shape(0);
    let col_pairs = cols.div_ceil(2);
    let pair = ABSOLUTE_POS / col_pairs;
    let c0 = (ABSOLUTE_POS % col_pairs) * 2;
    let r0 = pair * 2;
    if r0 >= rows {
        terminate!();
    }
    let r1 = clamp_max(r0 + 1, rows - 1);
    let c1 = clamp_max(c0 + 1, cols - 1);
    let x0 = r0 * x.stride(0);
    let x1 = r1 * x.stride(0);
    let w_step = weight.stride(0) / line;

    let (s00, s01, s10, s11) = pair_products(x, x0, x1, weight, c0, w_step, weight, c1, w_step);
    let zero = Vector::broadcast(E::from_int(0));
    let b0: ComptimeOption<Vector<E, N>> = bias.as_ref().map(|bias| bias[c0]);
    let b1: ComptimeOption<Vector<E, N>> = bias.as_ref().map(|bias| bias[c1]);
    let (b0, b1) = (b0.unwrap_or(zero), b1.unwrap_or(zero));
    output.write(r0 * cols + c0, s00 + b0);
    if c1 > c0 {
        output.write(r0 * cols + c1, s01 + b1);
    }
    if r1 > r0 {
        output.write(r1 * cols + c0, s10 + b0);
        if c1 > c0 {
            output.write(r1 * cols + c1, s11 + b1);
        }
    }
}

/// `x` `[rows, in]` · `weight` `[in, out]` (+ `bias` `[out]`) → `[rows, out]`, on the tensors' GPU device.
///
/// # Panics
/// When the tensors are not on a CubeCL device, are not f32, or the weight is not row-major contiguous
/// (weights are loaded that way: see `transformer::linear`).
pub fn few_rows_matmul(
    x: BurnTensor<2>,
    weight: BurnTensor<2>,
    bias: Option<BurnTensor<1>>,
) -> BurnTensor<2> {
    let x = primitive(x);
    let weight = primitive(weight);
    let bias = bias.map(primitive);
    assert!(
        weight.is_contiguous(),
        "few_rows_matmul needs a row-major weight"
    );
    let (output, line) = row_product_output(&x, &weight);
    let [rows, d_out] = dims2(&output);
    let units = rows.div_ceil(2) * (d_out / line).div_ceil(2);
    let (cubes, cube_dim) = grid(&x.client, units);
    let addressing = address_type(&[&x, &weight, &output]).max(
        bias.as_ref()
            .map_or(AddressType::default(), CubeTensor::required_address_type),
    );
    // SAFETY: every index the kernel reads is inside its tensor: rows and columns come from the output's
    // shape ([rows, out], checked above against x and weight), the inner index stays below `in`.
    unsafe {
        few_rows_matmul_kernel::launch_unchecked(
            &output.client,
            cubes,
            cube_dim,
            addressing,
            line,
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            bias.map(CubeTensor::into_buffer_arg).into(),
            output.clone().into_linear_view(),
            F32,
        );
    }
    BurnTensor::from_primitive::<Cube>(output)
}

/// The element type of every kernel here (the engine computes in f32).
const F32: ElemType = ElemType::Float(FloatKind::F32);

/// A new f32 tensor of `shape` on `like`'s device.
fn empty_like(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// The `[rows, out]` output of `x` `[rows, in]` times `weight` `[in, out]`, and the vector width its
/// columns are read and written in.
fn row_product_output(x: &CubeTensor, weight: &CubeTensor) -> (CubeTensor, usize) {
    let ([rows, inner], [weight_inner, out]) = (dims2(x), dims2(weight));
    assert_eq!(inner, weight_inner, "inner sizes differ");
    (empty_like(x, Shape::new([rows, out])), vector_width(out))
}

/// A 2-D tensor's `[rows, columns]`.
fn dims2(t: &CubeTensor) -> [usize; 2] {
    let shape = t.meta.shape();
    [shape[0], shape[1]]
}

/// The cube count and cube size that run `units` units, one per unit of work.
fn grid(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(client, units);
    (
        calculate_cube_count_elemwise(client, units, cube_dim),
        cube_dim,
    )
}

/// vec4 loads where the width allows (every model here has widths divisible by 4).
fn vector_width(width: usize) -> usize {
    [4, 2, 1]
        .into_iter()
        .find(|n| width.is_multiple_of(*n))
        .expect("1 divides everything")
}

/// The widest index type any of `tensors` needs.
fn address_type(tensors: &[&CubeTensor]) -> AddressType {
    tensors
        .iter()
        .map(|t| t.required_address_type())
        .max()
        .unwrap_or_default()
}

/// `t`'s CubeCL tensor.
fn primitive<const D: usize>(t: BurnTensor<D>) -> CubeTensor {
    let t = t
        .try_into_primitive::<Cube>()
        .expect("the GPU kernels run on GPU tensors");
    assert_eq!(t.dtype, DType::F32, "the GPU kernels compute in f32");
    t
}

/// SwiGLU for a pair of rows: `output[r, c..] = silu(x[r] · gate[:, c..]) ⊙ (x[r] · up[:, c..])`, one unit per
/// output vector of the pair: the two products, the SiLU and the product in one kernel where the layer ran
/// four. The weights are read as in [`few_rows_matmul_kernel`].
#[cube(launch_unchecked, address_type = "dynamic")]
fn few_rows_swiglu_kernel<F: Float, N: Size>(
    x: &Tensor<F>,
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    mut output: LinearViewMut<'_, Vector<F, N>>,
    #[define(F)] _dtype: ElemType,
) {
    let line = gate.vector_size();
    let cols = gate.shape(1) / line;
    let rows = x.shape(0);
    let r0 = (ABSOLUTE_POS / cols) * 2;
    let c = ABSOLUTE_POS % cols;
    if r0 >= rows {
        terminate!();
    }
    let r1 = clamp_max(r0 + 1, rows - 1);
    let (x0, x1) = (r0 * x.stride(0), r1 * x.stride(0));
    let (g_step, u_step) = (gate.stride(0) / line, up.stride(0) / line);

    let (g0, u0, g1, u1) = pair_products(x, x0, x1, gate, c, g_step, up, c, u_step);
    let one = Vector::broadcast(F::new(1.0));
    output.write(r0 * cols + c, g0 / (one + (-g0).exp()) * u0);
    if r1 > r0 {
        output.write(r1 * cols + c, g1 / (one + (-g1).exp()) * u1);
    }
}

/// [`few_rows_swiglu_kernel`]: `x` `[rows, in]`, `gate` and `up` `[in, hidden]` (row-major) → `[rows, hidden]`.
pub fn few_rows_swiglu(x: BurnTensor<2>, gate: BurnTensor<2>, up: BurnTensor<2>) -> BurnTensor<2> {
    let (x, gate, up) = (primitive(x), primitive(gate), primitive(up));
    assert!(
        gate.is_contiguous() && up.is_contiguous() && gate.meta.shape() == up.meta.shape(),
        "few_rows_swiglu needs two row-major weights of one shape"
    );
    let (output, line) = row_product_output(&x, &gate);
    let [rows, hidden] = dims2(&output);
    let (cubes, cube_dim) = grid(&x.client, rows.div_ceil(2) * hidden / line);
    let addressing = address_type(&[&x, &gate, &up, &output]);
    // SAFETY: as in `few_rows_matmul`: rows and columns come from the output's shape, checked above.
    unsafe {
        few_rows_swiglu_kernel::launch_unchecked(
            &output.client,
            cubes,
            cube_dim,
            addressing,
            line,
            x.into_tensor_arg(),
            gate.into_tensor_arg(),
            up.into_tensor_arg(),
            output.clone().into_linear_view(),
            F32,
        );
    }
    BurnTensor::from_primitive::<Cube>(output)
}

/// A unit's `(batch, head, i)` when units run over `[B, heads, inner]` in row-major order.
#[cube]
fn batch_head_index(pos: usize, heads: usize, inner: usize) -> (usize, usize, usize) {
    (pos / (inner * heads), (pos / inner) % heads, pos % inner)
}

/// A decode step's attention scores: `scores[b, h, s] = scale · q[b, h, 0, :] · keys[b, h, s, :]` for the
/// first `S` cached positions. One unit per score.
#[cube(launch_unchecked, address_type = "dynamic")]
fn decode_scores_kernel<F: Float>(
    q: &Tensor<F>,
    keys: &Tensor<F>,
    scores: &mut Tensor<F>,
    scale: f32,
    #[define(F)] _dtype: ElemType,
) {
    let (heads, len) = (scores.shape(1), scores.shape(2));
    if ABSOLUTE_POS >= scores.shape(0) * heads * len {
        terminate!();
    }
    let (b, h, s) = batch_head_index(ABSOLUTE_POS, heads, len);
    let q_row = b * q.stride(0) + h * q.stride(1);
    let k_row = b * keys.stride(0) + h * keys.stride(1) + s * keys.stride(2);
    let (q_step, k_step) = (q.stride(3), keys.stride(3));
    let mut dot = F::new(0.0);
    for j in 0..q.shape(3) {
        dot += q[q_row + j * q_step] * keys[k_row + j * k_step];
    }
    // `scores` is freshly allocated, row-major: its index is the unit's.
    scores[ABSOLUTE_POS] = dot * F::cast_from(scale);
}

/// A decode step's attention output: `out[b, h·hd + d] = Σ_s softmax_s(scores[b, h, :]) · values[b, h, s, d]`,
/// written straight into the `[B, H·hd]` layout the output projection reads. One unit per output vector;
/// each unit takes the softmax's maximum and sum itself (`S` reads of a row it shares with its head's
/// other units), which costs less than the three kernels of a separate softmax.
#[cube(launch_unchecked, address_type = "dynamic")]
fn decode_mix_kernel<F: Float, N: Size>(
    scores: &Tensor<F>,
    values: &Tensor<Vector<F, N>>,
    mut output: LinearViewMut<'_, Vector<F, N>>,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.shape() {
        terminate!();
    }
    let line = values.vector_size();
    let (heads, head_vectors, len) = (values.shape(1), values.shape(3) / line, scores.shape(2));
    let (b, h, d) = batch_head_index(ABSOLUTE_POS, heads, head_vectors);
    let row = b * scores.stride(0) + h * scores.stride(1);
    let step = scores.stride(2);

    let mut max = scores[row];
    for s in 1..len {
        max = F::max(max, scores[row + s * step]);
    }
    let v_row = (b * values.stride(0) + h * values.stride(1)) / line + d;
    let v_step = values.stride(2) / line;
    let mut total = F::new(0.0);
    let mut sum = Vector::broadcast(F::new(0.0));
    for s in 0..len {
        let p = (scores[row + s * step] - max).exp();
        total += p;
        sum += Vector::broadcast(p) * values[v_row + s * v_step];
    }
    output.write(ABSOLUTE_POS, sum / Vector::broadcast(total));
}

/// One query per sequence attending to the first `len` cached positions: `q` `[B, H, 1, hd]`, `keys` and
/// `values` `[B, H, capacity, hd]` (row-major) → `[B, H·hd]`, softmax scaled by `1/√hd`. Two kernels
/// where burn's matmul, scale, softmax, matmul and transpose take nine.
///
/// # Panics
/// As [`few_rows_matmul`]; and when the caches are not row-major.
pub fn decode_attention(
    q: BurnTensor<4>,
    keys: BurnTensor<4>,
    values: BurnTensor<4>,
    len: usize,
) -> BurnTensor<2> {
    let [b, h, one, hd] = q.dims();
    assert_eq!(one, 1, "decode_attention takes one query per sequence");
    let (q, keys, values) = (primitive(q), primitive(keys), primitive(values));
    assert!(
        values.is_contiguous() && keys.is_contiguous(),
        "decode_attention needs row-major caches"
    );
    let scores = empty_like(&q, Shape::new([b, h, len]));
    let output = empty_like(&q, Shape::new([b, h * hd]));
    let client = q.client.clone();

    let units = b * h * len;
    let (cubes, cube_dim) = grid(&client, units);
    let addressing = address_type(&[&q, &keys, &scores]);
    assert!(
        len <= keys.meta.shape()[2],
        "more positions than the cache holds"
    );
    // SAFETY: units index only `b`, `h` and `s < len` within the tensors' shapes, `len ≤ capacity`.
    unsafe {
        decode_scores_kernel::launch_unchecked(
            &client,
            cubes,
            cube_dim,
            addressing,
            q.into_tensor_arg(),
            keys.into_tensor_arg(),
            scores.clone().into_tensor_arg(),
            1.0 / (hd as f32).sqrt(),
            F32,
        );
    }

    let line = vector_width(hd);
    let units = b * h * hd / line;
    let (cubes, cube_dim) = grid(&client, units);
    let addressing = address_type(&[&scores, &values, &output]);
    // SAFETY: as above; `d` indexes whole vectors of a row-major `hd`.
    unsafe {
        decode_mix_kernel::launch_unchecked(
            &client,
            cubes,
            cube_dim,
            addressing,
            line,
            scores.into_tensor_arg(),
            values.into_tensor_arg(),
            output.clone().into_linear_view(),
            F32,
        );
    }
    BurnTensor::from_primitive::<Cube>(output)
}

/// `output[r, j] = x[r, j] / √(mean_k x[r, k]² + ε) · gamma[j]` for a few rows: one unit per element, each
/// summing its row's squares itself (the rows are a few hundred wide), where burn's RMSNorm takes six
/// kernels.
#[cube(launch_unchecked, address_type = "dynamic")]
fn rms_norm_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &[F],
    output: &mut Tensor<F>,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let width = x.shape(1);
    if ABSOLUTE_POS >= x.shape(0) * width {
        terminate!();
    }
    let (row, col) = (ABSOLUTE_POS / width, ABSOLUTE_POS % width);
    let base = row * x.stride(0);
    let step = x.stride(1);
    let mut squares = F::new(0.0);
    for k in 0..width {
        let v = x[base + k * step];
        squares += v * v;
    }
    let rms = (squares / F::cast_from(width) + F::cast_from(epsilon)).sqrt();
    output[ABSOLUTE_POS] = x[base + col * step] / rms * gamma[col];
}

/// [`rms_norm_kernel`]: `x` `[rows, D]`, `gamma` `[D]` → `[rows, D]`.
pub fn rms_norm(x: BurnTensor<2>, gamma: BurnTensor<1>, epsilon: f64) -> BurnTensor<2> {
    let (x, gamma) = (primitive(x), primitive(gamma));
    let shape = x.meta.shape().clone();
    assert_eq!(shape[1], gamma.meta.shape()[0], "rms_norm: widths differ");
    let output = empty_like(&x, shape.clone());
    let units = shape.num_elements();
    let client = x.client.clone();
    let (cubes, cube_dim) = grid(&client, units);
    let addressing = address_type(&[&x, &gamma, &output]);
    // SAFETY: units index rows and columns of `x`'s own shape; `gamma` is as wide as a row.
    unsafe {
        rms_norm_kernel::launch_unchecked(
            &client,
            cubes,
            cube_dim,
            addressing,
            x.into_tensor_arg(),
            gamma.into_buffer_arg(),
            output.clone().into_tensor_arg(),
            epsilon as f32,
            F32,
        );
    }
    BurnTensor::from_primitive::<Cube>(output)
}

/// Rotary positions for one new position: `output[b, h, 0, j] = x[j]·cos[j] + x'[j]·sin[j]`, where `x'` is `x`
/// with its halves swapped and the second half negated (`[−x₂, x₁]`, the HF LLaMA layout). One unit per
/// element, where burn's slices, negation, concatenation, products and sum take six kernels.
#[cube(launch_unchecked, address_type = "dynamic")]
fn rotary_step_kernel<F: Float>(
    x: &Tensor<F>,
    cos: &Tensor<F>,
    sin: &Tensor<F>,
    output: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let (heads, hd) = (x.shape(1), x.shape(3));
    if ABSOLUTE_POS >= x.shape(0) * heads * hd {
        terminate!();
    }
    let (b, h, j) = batch_head_index(ABSOLUTE_POS, heads, hd);
    let row = b * x.stride(0) + h * x.stride(1);
    let step = x.stride(3);
    let half = hd / 2;
    let partner = x[row + ((j + half) % hd) * step];
    let partner = select(j < half, -partner, partner);
    output[ABSOLUTE_POS] =
        x[row + j * step] * cos[j * cos.stride(1)] + partner * sin[j * sin.stride(1)];
}

/// [`rotary_step_kernel`]: `x` `[B, H, 1, hd]` (any strides), `cos`, `sin` `[1, hd]` (the position's row of
/// the tables) → `[B, H, 1, hd]`.
pub fn rotary_step(x: BurnTensor<4>, cos: BurnTensor<2>, sin: BurnTensor<2>) -> BurnTensor<4> {
    let (x, cos, sin) = (primitive(x), primitive(cos), primitive(sin));
    let shape = x.meta.shape().clone();
    assert_eq!(shape[2], 1, "rotary_step rotates one position");
    assert_eq!(cos.meta.shape()[1], shape[3], "rotary_step: table width");
    let output = empty_like(&x, shape.clone());
    let units = shape.num_elements();
    let client = x.client.clone();
    let (cubes, cube_dim) = grid(&client, units);
    let addressing = address_type(&[&x, &cos, &sin, &output]);
    // SAFETY: units index `x`'s own shape; the tables are one row as wide as a head.
    unsafe {
        rotary_step_kernel::launch_unchecked(
            &client,
            cubes,
            cube_dim,
            addressing,
            x.into_tensor_arg(),
            cos.into_tensor_arg(),
            sin.into_tensor_arg(),
            output.clone().into_tensor_arg(),
            F32,
        );
    }
    BurnTensor::from_primitive::<Cube>(output)
}
