//! Tessera: native image generation that runs in the browser. An autoregressive transformer writes an image
//! as discrete tokens; a streaming VQ decoder turns each finished token row into pixels.

#[cfg(feature = "cli")]
pub mod dataset;
pub mod scenes;
pub mod text;
