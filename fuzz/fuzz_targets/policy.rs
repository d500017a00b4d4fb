//! Any text through the prompt policy's normaliser and matcher (NFKC, case folding, look-alikes, spelled-out
//! words).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::Policy;

fuzz_target!(|data: &[u8]| {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    let policy = POLICY.get_or_init(Policy::default_policy);
    let _ = policy.check(&String::from_utf8_lossy(data));
});
