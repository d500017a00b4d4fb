//! The faster equivalents of the model's maths that a decode step runs, and the one place that picks them.
//!
//! Prefill (many positions) always runs burn's ops: the maths as `model::transformer` writes it. A decode
//! step feeds one position per row (two rows with guidance), and there burn's ops leave most of the machine
//! idle: on the CPU backend its matmul takes gemm's small-M kernel on one thread, and its attention copies
//! the cache out every step; on a GPU its matmul tiles the product like a large one and its norms and
//! rotations take six kernel launches each. So, decided by [`path`]:
//! - on the CPU: [`host_products`] (packed f16 weights, both cores) and [`host_attention`] over the host KV
//!   cache, with [`hot_join`]'s helper thread natively;
//! - on a GPU: our CubeCL kernels in [`gpu`] (compiled to WGSL for WebGPU, SPIR-V for Vulkan).
//!
//! Each entry point returns `Break(result)` when it took the step, or `Continue(input)`, untouched, for burn's
//! ops to go on with.

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::{Linear, RmsNorm};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::kv_cache::{Buffers, LayerCache};
use crate::weights::{Take, WeightStore};
use host_products::HostLinear;

#[cfg(gpu_kernels)]
pub mod gpu;
mod host_attention;
mod host_products;
#[cfg(not(target_arch = "wasm32"))]
mod hot_join;

/// Rows up to which a product takes a decode-step kernel (a step has 1 or 2: guidance runs a batch of two).
pub(crate) const DECODE_ROWS: usize = 4;

/// Where a product of some rows runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// burn's ops: prefill everywhere, and anything without a faster kernel.
    Burn,
    /// The host kernels, over the host copies of the weights and the cache (burn's CPU backend).
    Host,
    /// The GPU kernels (WebGPU, or natively a build with `--features gpu`).
    Gpu,
}

/// Whether tensors on `device` live on burn's CPU backend, where weights and the KV cache have host copies.
pub(crate) fn on_host(device: &Device) -> bool {
    *device == Device::flex()
}

/// The values of a tensor on burn's CPU backend (the host kernels' input and the host copies' source).
pub(crate) fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("CPU tensors are f32")
}

/// Which kernels take `rows` rows on `device`.
pub(crate) fn path(device: &Device, rows: usize) -> Path {
    if rows > DECODE_ROWS {
        Path::Burn
    } else if on_host(device) {
        Path::Host
    } else if cfg!(gpu_kernels) {
        Path::Gpu
    } else {
        Path::Burn
    }
}

/// A linear layer and its faster kernels. On the CPU backend its weight lives only in the host copy
/// ([`HostLinear`]: packed, in the checkpoint's f16 or bf16 where it has one), which takes every product,
/// prefill's too; elsewhere in burn's [`Linear`] on the device.
#[derive(Module, Debug)]
pub struct Dense {
    /// `None` on the CPU backend.
    pub(crate) linear: Option<Linear>,
    #[module(skip)]
    host: Option<Arc<HostLinear>>,
}

impl Dense {
    /// The layer `name` (`{name}.weight` `[out, in]` in torch layout, `{name}.bias` `[out]` when `bias`). On
    /// the CPU backend the weight is packed straight from the checkpoint's bytes; on a device it is
    /// transposed on the host to burn's `[in, out]`: a transposed *view* would make every matmul take the
    /// slow strided path.
    pub(crate) fn load(
        w: &mut WeightStore,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Self {
        let weight_name = format!("{name}.weight");
        if w.probing() {
            let (weight_take, bias_take) = match on_host(w.device()) {
                true => (Take::HostStored, Take::HostValues),
                false => (Take::DeviceTransposed, Take::Device),
            };
            w.declare(&weight_name, &[d_out, d_in], weight_take);
            if bias {
                w.declare(&format!("{name}.bias"), &[d_out], bias_take);
            }
            return Dense {
                linear: None,
                host: None,
            };
        }
        if on_host(w.device()) {
            let bias = bias.then(|| w.values(&format!("{name}.bias"), &[d_out]));
            let host = match w.stored(&weight_name, &[d_out, d_in]) {
                Some(stored) => {
                    HostLinear::from_stored(stored.dtype, &stored.bytes, bias, d_in, d_out)
                }
                None => HostLinear::zeros(bias, d_in, d_out),
            };
            return Dense {
                linear: None,
                host: Some(Arc::new(host)),
            };
        }
        let weight = w.tensor_transposed(&weight_name, [d_out, d_in]);
        let bias = bias.then(|| Param::from_tensor(w.tensor(&format!("{name}.bias"), [d_out])));
        Dense {
            linear: Some(Linear {
                weight: Param::from_tensor(weight),
                bias,
            }),
            host: None,
        }
    }

    /// burn's layer, which every device but the CPU backend has.
    #[cfg(gpu_kernels)]
    fn device_linear(&self) -> &Linear {
        self.linear
            .as_ref()
            .expect("a layer off the CPU backend has burn's weights")
    }

    /// # Shapes
    /// `x` `[..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        if let Some(host) = &self.host {
            let device = x.device();
            let out = host.apply(&host_values(x), rows);
            dims[D - 1] = host.d_out;
            return Tensor::from_data(TensorData::new(out, dims), &device);
        }
        let linear = self
            .linear
            .as_ref()
            .expect("a layer has a host copy or burn's weights");
        match path(&x.device(), rows) {
            #[cfg(gpu_kernels)]
            Path::Gpu => as_rows(x, |x| {
                let bias = linear.bias.as_ref().map(|b| b.val());
                gpu::few_rows_matmul(x, linear.weight.val(), bias)
            }),
            _ => linear.forward(x),
        }
    }
}

/// `norm` over a decode step's rows `[..., D]` on a GPU, in one kernel.
pub(crate) fn rms_norm_step<const D: usize>(
    norm: &RmsNorm,
    x: Tensor<D>,
) -> ControlFlow<Tensor<D>, Tensor<D>> {
    #[cfg(gpu_kernels)]
    if is_gpu_step(&x) {
        return Break(as_rows(x, |x| {
            gpu::rms_norm(x, norm.gamma.val(), norm.epsilon)
        }));
    }
    let _ = norm;
    Continue(x)
}

/// `silu(h · W_gate) ⊙ (h · W_up)` over a decode step's rows, `[B, T, D]` → `[B, T, hidden]`, on a GPU in
/// one kernel.
pub(crate) fn swiglu_step(
    h: Tensor<3>,
    gate: &Dense,
    up: &Dense,
) -> ControlFlow<Tensor<3>, Tensor<3>> {
    #[cfg(gpu_kernels)]
    if is_gpu_step(&h) {
        let (gate, up) = (
            gate.device_linear().weight.val(),
            up.device_linear().weight.val(),
        );
        return Break(as_rows(h, |h| gpu::few_rows_swiglu(h, gate, up)));
    }
    let _ = (gate, up);
    Continue(h)
}

/// The rotary embedding of one position, `x` `[B, H, 1, hd]` by `cos`, `sin` `[1, hd]`, on a GPU in one
/// kernel.
pub(crate) fn rotary_step(
    x: Tensor<4>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
) -> ControlFlow<Tensor<4>, Tensor<4>> {
    #[cfg(gpu_kernels)]
    if x.dims()[2] == 1 && path(&x.device(), 1) == Path::Gpu {
        return Break(gpu::rotary_step(x, cos.clone(), sin.clone()));
    }
    let _ = (cos, sin);
    Continue(x)
}

/// One decode step's attention: `q` `[B, H, 1, hd]` over the first `len` positions `layer` holds →
/// `[B, 1, H·hd]` (heads side by side, the layout the output projection reads). On the CPU it reads the
/// host cache in place; on a GPU it is two kernels where burn's ops take nine.
pub(crate) fn attention_step(
    q: Tensor<4>,
    layer: &LayerCache,
    len: usize,
) -> ControlFlow<Tensor<3>, Tensor<4>> {
    let [b, h, t, hd] = q.dims();
    if t != 1 {
        return Continue(q);
    }
    match &layer.buffers {
        Buffers::Host { keys, values } => {
            let capacity = layer.shape[2];
            let out = host_attention::host_decode_attention(
                &host_values(q),
                keys,
                values,
                capacity,
                len,
                hd,
            );
            Break(Tensor::from_data(
                TensorData::new(out, [b, 1, h * hd]),
                &Device::flex(),
            ))
        }
        #[cfg(gpu_kernels)]
        Buffers::Device { keys, values } => {
            let present = |buffer: &Option<Tensor<4>>| {
                buffer.clone().expect("cache buffers are always present")
            };
            let out = gpu::decode_attention(q, present(keys), present(values), len); // [B, H·hd]
            Break(out.reshape([b, 1, h * hd]))
        }
        #[cfg(not(gpu_kernels))]
        Buffers::Device { .. } => Continue(q),
    }
}

/// Whether `x` `[..., in]` holds a decode step's rows on a GPU.
#[cfg(gpu_kernels)]
fn is_gpu_step<const D: usize>(x: &Tensor<D>) -> bool {
    let rows: usize = x.dims()[..D - 1].iter().product();
    path(&x.device(), rows) == Path::Gpu
}

/// `kernel` over `x` `[..., in]` reshaped to `[rows, in]`, its `[rows, out]` reshaped back to `[..., out]`.
#[cfg(gpu_kernels)]
fn as_rows<const D: usize>(x: Tensor<D>, kernel: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<D> {
    let mut dims = x.dims();
    let rows: usize = dims[..D - 1].iter().product();
    let y = kernel(x.reshape([rows, dims[D - 1]]));
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec_as::<f32>().unwrap()
    }

    /// [`Dense`] loaded from a checkpoint against burn's matmul of the same weight on `device`, for 1, 2,
    /// `DECODE_ROWS` + 1 and 37 rows (on the CPU the host copy takes all; on a GPU the last two take burn's
    /// path), with and without a bias, at output widths that take vectors of 4, 2 and 1 on a GPU, for a
    /// checkpoint in f32, in f32 holding f16 values (kept as f16 on the host), in f16 and in bf16. The
    /// host's sums follow burn's order of inputs only up to rounding, hence the tolerance.
    fn assert_products_equal_burns_matmul(device: &Device) {
        use crate::weights::{FloatFormat, encode};
        use safetensors::Dtype;
        let d_in = 48;
        // 700: enough weights for the host to split the product over two threads (an uneven panel split).
        let stored = [
            (Dtype::F32, false, "f32"),
            (Dtype::F32, true, "f16"),
            (Dtype::F16, false, "f16"),
            (Dtype::BF16, false, "bf16"),
        ];
        for d_out in [80, 6, 7, 700] {
            for (dtype, f16_values, kept_as) in stored {
                let normal = Distribution::Normal(0.0, 1.0);
                let mut weight = values(Tensor::<2>::random([d_out, d_in], normal, device));
                let round = |v: f32| match (dtype, f16_values) {
                    (Dtype::BF16, _) => half::bf16::from_f32(v).to_f32(),
                    (Dtype::F16, _) | (_, true) => half::f16::from_f32(v).to_f32(),
                    _ => v,
                };
                weight.iter_mut().for_each(|v| *v = round(*v));
                let format = match dtype {
                    Dtype::BF16 => FloatFormat::Bf16,
                    Dtype::F16 => FloatFormat::F16,
                    _ => FloatFormat::F32,
                };
                let (_, bytes) = encode("weight", &weight, format).unwrap();
                // burn's layout is [in, out], contiguous: the torch-layout weight transposed.
                let transposed: Vec<f32> = (0..d_in * d_out)
                    .map(|j| weight[(j % d_out) * d_in + j / d_out])
                    .collect();
                let linear_weight =
                    Tensor::<2>::from_data(TensorData::new(transposed, [d_in, d_out]), device);
                let bias = Tensor::<1>::random([d_out], normal, device);
                for with_bias in [false, true] {
                    let burn = Linear {
                        weight: Param::from_tensor(linear_weight.clone()),
                        bias: with_bias.then(|| Param::from_tensor(bias.clone())),
                    };
                    let dense = if on_host(device) {
                        let host = HostLinear::from_stored(
                            dtype,
                            &bytes,
                            with_bias.then(|| values(bias.clone())),
                            d_in,
                            d_out,
                        );
                        assert_eq!(
                            host.kept_as(),
                            kept_as,
                            "{dtype:?}, f16 values {f16_values}"
                        );
                        Dense {
                            linear: None,
                            host: Some(Arc::new(host)),
                        }
                    } else {
                        Dense {
                            linear: Some(burn.clone()),
                            host: None,
                        }
                    };
                    for rows in [1, 2, DECODE_ROWS + 1, 37] {
                        let x = Tensor::<3>::random([rows, 1, d_in], normal, device);
                        let ours = values(dense.forward(x.clone()));
                        let want = values(burn.forward(x));
                        assert_eq!(ours.len(), rows * d_out);
                        let worst = crate::test_util::max_abs_diff(&ours, &want);
                        assert!(
                            worst < 1e-4,
                            "out {d_out}, {dtype:?}, rows {rows}, bias {with_bias}: {worst}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_host_products_equal_burns_matmul() {
        assert_products_equal_burns_matmul(&Device::flex());
    }

    /// The GPU kernel on wgpu (Mesa's lavapipe on machines without a GPU).
    #[cfg(feature = "gpu")]
    #[test]
    fn the_gpu_decode_products_equal_burns_matmul() {
        assert_products_equal_burns_matmul(&crate::test_util::wgpu_device());
    }

    #[test]
    fn prefill_takes_burns_ops_and_decode_steps_the_device_kernels() {
        // (`Dense` on the CPU takes its host copy whatever the rows; the rest of the maths follows `path`.)
        let cpu = Device::flex();
        assert_eq!(path(&cpu, DECODE_ROWS + 1), Path::Burn);
        assert_eq!(path(&cpu, 1), Path::Host);
        assert_eq!(path(&cpu, DECODE_ROWS), Path::Host);
        #[cfg(feature = "gpu")]
        assert_eq!(path(&crate::test_util::wgpu_device(), 2), Path::Gpu);
    }
}
