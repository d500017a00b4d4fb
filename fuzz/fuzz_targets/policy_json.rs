//! Any text as a policy file (`--policy`, a deployment's own rules): refused with a clear error or loaded,
//! and a loaded policy checks prompts without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::Policy;

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = Policy::from_json(&String::from_utf8_lossy(data)) {
        let _ = policy.check("a big red circle in the center on a white background");
        let _ = policy.check("一个红色的圆");
    }
});
