//! The `tessera` command line's library half: Content Credentials (signed C2PA manifests) for the PNGs it
//! writes, and what the integration tests reach directly. The subcommands are the binary's (`src/commands/`).

pub mod content_credentials;
