//! The native integration tests of the whole workspace, as one test binary of the `tessera-cli` package (the
//! crate at the top of the dependency graph, so it can run the `tessera` binary and reach every crate):
//! every test binary links burn, wgpu and the C2PA SDK, so one binary is one link and one copy on disk
//! instead of one per file.

mod backends;
mod checkpoints;
mod cli;
mod common;
mod credentials;
mod engine;
mod janus;
mod parity;
mod streamed;
