//! What makes an image trustworthy and a request acceptable: the prompt [`policy`] checked before any work,
//! the [`provenance`] every image carries, and [`verify`], which proves a claim by regenerating the image.

pub mod policy;
pub mod provenance;
pub mod verify;

pub use policy::Policy;
pub use provenance::Provenance;
pub use verify::{Claimed, Redraw, Verdict, verify};
