//! Any bytes as a PNG whose Content Credentials are read and validated (`tessera verify`, the browser's
//! check panel through the same crate): errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tessera_credentials::Credentials::Present(manifest)) = tessera_credentials::read(data)
    {
        let _ = manifest.problem_with(&serde_json::json!({"seed": 1}));
    }
});
