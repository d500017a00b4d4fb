//! Tessera's engine: native image generation that runs in the browser. An autoregressive transformer writes
//! an image as discrete tokens; a streaming VQ decoder turns each finished token row into pixels.
//!
//! The modules, in the order data flows (DESIGN §1):
//! - [`config`] and [`weights`]: what a model folder holds, checked tensor by tensor;
//! - [`model`]: the maths — the [`model::transformer`], its [`model::kv_cache`], the [`model::vq`] codec;
//! - [`kernels`]: the faster equivalents a decode step runs on the CPU or the GPU, and the one place that
//!   picks them;
//! - [`generation`]: the [`generation::prompt`] and sequence layout, the [`generation::sampler`], and the
//!   [`Generation`] the caller drives step by step;
//! - [`interpret`]: a message read into the default model's world ("interpreted as …"), new picture or edit;
//! - [`trust`]: the prompt policy, the provenance every image carries, and verification by regeneration;
//! - [`image_input`]: images given to the model (uploads, edits);
//! - `web` (wasm32 only): the browser's front door, one `Engine` the Web Worker drives.

#[cfg(not(target_family = "wasm"))]
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod generation;
pub mod image_input;
pub mod interpret;
pub mod kernels;
pub mod model;
pub mod trust;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use config::ModelConfig;
pub use error::{Result, TesseraError};
pub use generation::{Band, Generation, Settings, Step};
pub use model::{Model, Parameters, WeightsIdentity, sha256_hex};
pub use trust::{Policy, Provenance};

#[cfg(test)]
mod test_util {
    /// The largest absolute difference between two equally long slices.
    pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    /// wgpu's default adapter (Mesa's lavapipe on machines without a GPU), initialised once per process.
    #[cfg(feature = "gpu")]
    pub fn wgpu_device() -> burn::tensor::Device {
        use burn::tensor::Device;
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
