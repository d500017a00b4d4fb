//! Tessera: native image generation that runs in the browser. An autoregressive transformer writes an image
//! as discrete tokens; a streaming VQ decoder turns each finished token row into pixels.
//!
//! The pieces, in the order data flows (DESIGN §1): [`text`] builds the token sequence, [`transformer`]
//! predicts image tokens, [`sampler`] picks them, [`generator`] drives the steps, [`vq`] turns token rows into
//! pixels. [`model`] loads weights checked by [`weights`] against [`config`]. [`scenes`] is the procedural
//! world the default model learned.

pub mod config;
#[cfg(feature = "content-credentials")]
pub mod content_credentials;
#[cfg(feature = "cli")]
pub mod dataset;
pub mod error;
pub mod eval;
pub mod generator;
#[cfg(any(feature = "gpu", target_arch = "wasm32"))]
pub mod gpu_kernels;
#[cfg(not(target_arch = "wasm32"))]
mod hot_join;
pub mod image_input;
pub mod model;
pub mod policy;
pub mod provenance;
pub mod sampler;
pub mod scenes;
pub mod text;
pub mod transformer;
pub mod vq;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use config::ModelConfig;
pub use error::{Result, TesseraError};
pub use generator::{Band, Generation, Step};
pub use model::Model;
pub use policy::Policy;
pub use sampler::Settings;

#[cfg(test)]
mod test_util {
    /// The largest absolute difference between two equally long slices.
    pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }
}
