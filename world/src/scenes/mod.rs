//! "Shapes & Signs": the seeded, procedural world the default model is trained on and judged against
//! (DESIGN §3). A [`Scene`] is plain data (defined in the engine, whose interpreter reads messages into it);
//! [`render`] draws it, [`caption`] describes it in English or Chinese, [`sample`] draws scenes and edits
//! from a seed.

pub mod render;
pub mod sample;

pub use tessera::interpret::scene::*;
pub use tessera::interpret::{caption, font, sign};
