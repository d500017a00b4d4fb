//! Any bytes as the weights of the micro model: every tensor's name and shape is checked, never trusted.
#![no_main]

use std::sync::OnceLock;

use burn::tensor::Device;
use libfuzzer_sys::fuzz_target;
use tessera::{Model, ModelConfig};

fuzz_target!(|data: &[u8]| {
    static CONFIG: OnceLock<ModelConfig> = OnceLock::new();
    let config = CONFIG.get_or_init(ModelConfig::micro);
    let _ = Model::from_config(config.clone(), data, &Device::flex());
});
