//! Any bytes as a model's `config.json`, of either family: refused with a clear error or read, and a config
//! that validates gives every size the engine derives from it without an overflow (fuzz builds check them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::ModelConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ModelConfig::from_json(data)
        && config.validate().is_ok()
    {
        let _ = (config.grid(), config.image_tokens(), config.default_settings());
        let t = &config.transformer;
        let _ = (t.kv_heads(), t.head_dim());
    }
});
