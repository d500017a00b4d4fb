//! From a request to image tokens: the [`prompt`] and its sequence layout, the seeded [`sampler`], and the
//! [`generator`]'s small named steps, which the caller drives one token at a time.

pub mod generator;
pub mod prompt;
pub mod sampler;

pub use generator::{Band, Generation, Preview, Step, decode_tokens, sign_glyphs};
pub use prompt::{EditLayout, Prompt, Segment};
pub use sampler::Settings;
