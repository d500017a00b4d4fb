//! A loaded model: config, transformer and VQ on one device, plus the identity of its weights. Loading
//! takes bytes (the browser fetches them; the CLI reads a folder) and checks every tensor.
//!
//! The maths lives in [`transformer`] and [`vq`]; the transformer's run state in [`kv_cache`].

pub mod kv_cache;
pub mod transformer;
pub mod vq;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

use crate::config::ModelConfig;
use crate::error::{Result, TesseraError};
use crate::weights::{TensorMap, WeightStore, WeightsError, probe_names, to_safetensors};
use transformer::Transformer;
use vq::Vq;

pub struct Model {
    pub config: ModelConfig,
    pub transformer: Transformer,
    pub vq: Vq,
    /// Hex sha256 of the safetensors bytes the model was loaded from.
    pub sha256: String,
    /// Size of those bytes.
    pub weight_bytes: usize,
    /// Number of weight values.
    pub parameters: usize,
    device: Device,
}

fn build(config: &ModelConfig, w: &mut WeightStore) -> (Transformer, Vq) {
    (
        Transformer::load(&config.transformer, w),
        Vq::load(&config.vq, w),
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Model {
    /// Parse `config.json` and safetensors bytes; every tensor is checked against the config.
    pub fn from_bytes(config_json: &[u8], weights: &[u8], device: &Device) -> Result<Self> {
        let config: ModelConfig = serde_json::from_slice(config_json)
            .map_err(|e| TesseraError::Config(format!("config.json: {e}")))?;
        Self::from_config(config, weights, device)
    }

    pub fn from_config(config: ModelConfig, weights: &[u8], device: &Device) -> Result<Self> {
        config.validate().map_err(TesseraError::Config)?;
        let mut store = WeightStore::from_safetensors(weights, device)?;
        let (transformer, vq) = build(&config, &mut store);
        store.finish()?;
        let parameters = count_parameters(&config, device);
        Ok(Model {
            config,
            transformer,
            vq,
            sha256: sha256_hex(weights),
            weight_bytes: weights.len(),
            parameters,
            device: device.clone(),
        })
    }

    /// Load a model folder: `config.json`, `model.safetensors`, and `model.sha256` when present (checked).
    #[cfg(not(target_family = "wasm"))]
    pub fn load_dir(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                TesseraError::Config(format!("cannot read {}: {e}", dir.join(name).display()))
            })
        };
        let config = read("config.json")?;
        let weights = read("model.safetensors")?;
        if let Ok(sum) = std::fs::read_to_string(dir.join("model.sha256")) {
            Self::verify_sha256(&weights, sum.split_whitespace().next().unwrap_or(""))?;
        }
        Self::from_bytes(&config, &weights, device)
    }

    /// Check `weights` against an expected sha256 (hex) before loading them.
    pub fn verify_sha256(weights: &[u8], expected: &str) -> Result<()> {
        let found = sha256_hex(weights);
        if found.eq_ignore_ascii_case(expected.trim()) {
            Ok(())
        } else {
            Err(WeightsError::Checksum {
                expected: expected.trim().to_string(),
                found,
            }
            .into())
        }
    }

    /// Every tensor the architecture of `config` needs: name → shape (torch layout), the loader's table.
    pub fn architecture(config: &ModelConfig, device: &Device) -> BTreeMap<String, Vec<usize>> {
        probe_names(device, |w| {
            build(config, w);
        })
    }

    /// Safetensors bytes with random weights for `config` (norm scales 1, biases 0, matrices uniform in
    /// ±1/√fan_in), made through the same name table the loader checks: the untrained stand-in and tests.
    pub fn random_weights(config: &ModelConfig, seed: u64, device: &Device) -> Vec<u8> {
        let names = Self::architecture(config, device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors: TensorMap = names
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let values = if shape.len() == 1 {
                    let is_norm_scale = name.contains("norm") && name.ends_with(".weight");
                    vec![if is_norm_scale { 1.0 } else { 0.0 }; n]
                } else {
                    let fan_in: usize = shape[1..].iter().product();
                    let a = if name.contains("embed") || name.contains("codebook") {
                        1.0
                    } else {
                        1.0 / (fan_in as f32).sqrt()
                    };
                    (0..n).map(|_| rng.random_range(-a..a)).collect()
                };
                (name, (shape, values))
            })
            .collect();
        to_safetensors(&tensors)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// RGB bytes of an image of the model's size → its codebook indices, raster order.
    pub async fn encode_rgb(&self, rgb: &[u8]) -> Result<Vec<u32>> {
        let size = self.config.image_size;
        if rgb.len() != size * size * 3 {
            return Err(TesseraError::Image(format!(
                "expected {size}×{size} RGB, got {} bytes",
                rgb.len()
            )));
        }
        let x = vq::image_to_tensor(rgb, size, &self.device);
        let ids = read_ints(self.vq.encode(x)).await?;
        Ok(ids.into_iter().map(|i| i as u32).collect())
    }
}

/// Number of weight values the architecture has.
fn count_parameters(config: &ModelConfig, device: &Device) -> usize {
    Model::architecture(config, device)
        .values()
        .map(|s| s.iter().product::<usize>())
        .sum()
}

/// Read a float tensor back to the host (asynchronously: WebGPU cannot block).
pub async fn read_floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data: TensorData = t
        .into_data_async()
        .await
        .map_err(|e| TesseraError::Device(format!("{e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| TesseraError::Device(format!("{e:?}")))
}

/// Read an integer tensor back to the host.
pub async fn read_ints<const D: usize>(t: Tensor<D, burn::tensor::Int>) -> Result<Vec<i64>> {
    let data: TensorData = t
        .into_data_async()
        .await
        .map_err(|e| TesseraError::Device(format!("{e:?}")))?;
    // Backends store indices as i32 or i64; ask for i64 either way.
    data.try_into_vec_as::<i64>()
        .map_err(|e| TesseraError::Device(format!("{e:?}")))
}
