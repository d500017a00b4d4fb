//! The native integration tests, as one test binary: every test binary links the whole engine (burn, wgpu,
//! the C2PA SDK), so one binary is one link and one copy on disk instead of one per file.

mod backends;
mod cli;
mod common;
mod engine;
mod parity;
