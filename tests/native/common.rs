//! Helpers shared by the integration tests: paths, fixture tensors, comparisons.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every tensor of a safetensors fixture as (shape, values as f64).
pub fn cases(path: &str) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    tensors(&bytes)
}

/// Every tensor of safetensors bytes as (shape, values as f64).
pub fn tensors(bytes: &[u8]) -> HashMap<String, (Vec<usize>, Vec<f64>)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let d = v.data();
            let values: Vec<f64> = match v.dtype() {
                Dtype::F32 => d
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I64 => d
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I32 => d
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, (v.shape().to_vec(), values))
        })
        .collect()
}

pub fn ints(values: &[f64]) -> Vec<u32> {
    values.iter().map(|&v| v as u32).collect()
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// wgpu's default adapter (Mesa's lavapipe on machines without a GPU), initialised once for the process.
#[cfg(feature = "gpu")]
pub fn wgpu() -> burn::tensor::Device {
    static DEVICE: std::sync::OnceLock<burn::tensor::Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            burn::tensor::Device::wgpu_options()
                .init()
                .expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)")
        })
        .clone()
}
