//! A loaded model: config, transformer and VQ on one device, plus the identity of its weights. Loading
//! takes bytes (the browser fetches them; the CLI reads a folder) and checks every tensor.
//!
//! The maths lives in [`transformer`] and the two codecs, [`vq`] (Tessera's, streaming) and [`vq16`]
//! (Janus's); the transformer's run state in [`kv_cache`]; what the Janus family adds (its config layout,
//! key table and prompt rows) in [`janus`].

pub mod janus;
pub mod kv_cache;
pub mod transformer;
pub mod vq;
pub mod vq16;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

use crate::config::{Family, ModelConfig, VqKind};
use crate::error::{Result, TesseraError};
use crate::weights::stream::StreamedWeights;
use crate::weights::{
    KeyTable, TensorMap, TensorSource, WeightStore, WeightsError, check_header, probe, probe_names,
    to_safetensors,
};
use transformer::Transformer;
use vq::{DecoderState, Vq};
use vq16::Vq16;

pub struct Model {
    pub config: ModelConfig,
    pub transformer: Transformer,
    pub codec: Codec,
    /// A Janus model's `tokenizer.json`, when its folder has one.
    pub tokenizer: Option<janus::TextTokenizer>,
    /// Hex sha256 of the weights: of the one file they were loaded from, or of a sharded folder's
    /// `model.sha256` list (`crate::checkpoint`).
    pub sha256: String,
    /// Size of the weight files.
    pub weight_bytes: u64,
    /// Number of weight values loaded (the transformer's and the codec's).
    pub parameters: Parameters,
    device: Device,
}

/// Weight values loaded, by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parameters {
    pub transformer: usize,
    pub codec: usize,
}

impl Parameters {
    pub fn total(&self) -> usize {
        self.transformer + self.codec
    }
}

/// The image tokenizer a model's config names.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per model, built once and never moved again: boxing buys nothing
pub enum Codec {
    /// Tessera's: every finished token row decodes to final pixels.
    Streaming(Vq),
    /// Janus's VQ-16: decoded once the grid is complete.
    Vq16(Vq16),
}

impl Codec {
    /// Image `[B, 3, H, W]` in [−1, 1] → codebook indices `[B, h·w]`, raster order.
    pub fn encode(&self, img: Tensor<4>) -> Tensor<2, burn::tensor::Int> {
        match self {
            Codec::Streaming(vq) => vq.encode(img),
            Codec::Vq16(vq) => vq.encode(img),
        }
    }

    /// Full-grid decode: indices `[B, h·w]` → pixels `[B, 3, H, W]` in about [−1, 1].
    pub fn decode(&self, indices: Tensor<2, burn::tensor::Int>, grid_w: usize) -> Tensor<4> {
        match self {
            Codec::Streaming(vq) => vq.decode(indices, grid_w),
            Codec::Vq16(vq) => vq.decode(indices, grid_w),
        }
    }

    /// The streaming decoder of `r` new token rows `[B, r·w]` → their final pixel rows, continuing from
    /// `state`; `None` for a codec that decodes only whole grids.
    pub fn decode_rows(
        &self,
        indices: Tensor<2, burn::tensor::Int>,
        grid_w: usize,
        state: &mut DecoderState,
    ) -> Option<Tensor<4>> {
        match self {
            Codec::Streaming(vq) => Some(vq.decode_rows(indices, grid_w, state)),
            Codec::Vq16(_) => None,
        }
    }
}

/// The key table of a config's family.
pub(crate) fn keys(config: &ModelConfig) -> KeyTable {
    match config.family {
        Family::Tessera => KeyTable::TESSERA,
        Family::Janus(_) => janus::JANUS_KEYS,
    }
}

/// The transformer and the codec from `w`, and the values each took.
fn build(config: &ModelConfig, w: &mut WeightStore) -> (Transformer, Codec, Parameters) {
    let transformer = Transformer::load(&config.transformer, w);
    let in_transformer = w.parameters();
    let codec = match config.vq.kind {
        VqKind::Streaming => Codec::Streaming(Vq::load(&config.vq, w)),
        VqKind::Vq16 { .. } => Codec::Vq16(Vq16::load(&config.vq, w)),
    };
    let parameters = Parameters {
        transformer: in_transformer,
        codec: w.parameters() - in_transformer,
    };
    (transformer, codec, parameters)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `found` (hex) against the `expected` sha256 of a weights file.
pub(crate) fn check_sha256(found: &str, expected: &str) -> Result<()> {
    if found.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(WeightsError::Checksum {
            expected: expected.trim().to_string(),
            found: found.to_string(),
        }
        .into())
    }
}

/// The identity of weight files from their sha256 list (`<hex>  <file>` lines): the one file's sha256,
/// or the list's own.
pub(crate) fn list_identity(list: &str, files: usize, bytes: u64) -> WeightsIdentity {
    let sha256 = match files {
        1 => list[..64].to_string(),
        _ => hex(&Sha256::digest(list.as_bytes())),
    };
    WeightsIdentity { sha256, bytes }
}

/// What a model needs, known from its config alone ([`Model::needs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needs {
    /// Values in the tensors the engine loads.
    pub parameters: u64,
    /// The checkpoint name of the largest tensor, and its bytes as the GPU holds it (f32, one buffer).
    pub largest_tensor: String,
    pub largest_tensor_f32_bytes: u64,
    /// Every tensor's bytes in f32.
    pub f32_bytes: u64,
}

/// What identifies a model's weights: their sha256 (`Model::sha256`) and size.
#[derive(Clone, Debug)]
pub struct WeightsIdentity {
    pub sha256: String,
    pub bytes: u64,
}

impl Model {
    /// Parse `config.json` (Tessera's own, or a Janus one) and safetensors bytes; every tensor is checked
    /// against the config.
    pub fn from_bytes(config_json: &[u8], weights: &[u8], device: &Device) -> Result<Self> {
        Self::from_config(ModelConfig::from_json(config_json)?, weights, device)
    }

    /// A whole file's bytes load as a stream of one piece: the same checks, and each tensor prepared straight
    /// from the bytes in hand.
    pub fn from_config(config: ModelConfig, weights: &[u8], device: &Device) -> Result<Self> {
        let mut streamed = Self::streamed_weights(&config, device)?;
        streamed.begin_file(crate::weights::stream::SINGLE_FILE, None)?;
        streamed.push(weights)?;
        streamed.end_file()?;
        Self::from_streamed(config, streamed)
    }

    /// Where the weights of `config`'s model go as their bytes arrive (`weights::stream`), prepared for
    /// `device`; a config out of bounds is refused before any byte.
    pub fn streamed_weights(config: &ModelConfig, device: &Device) -> Result<StreamedWeights> {
        config.validate().map_err(TesseraError::Config)?;
        let keys = keys(config);
        let layout = probe(device, keys, |w| {
            build(config, w);
        });
        Ok(StreamedWeights::new(layout, keys, device))
    }

    /// The model built from weights whose every file has arrived.
    pub fn from_streamed(config: ModelConfig, weights: StreamedWeights) -> Result<Self> {
        let identity = weights.identity()?;
        let device = weights.device().clone();
        Self::from_source(config, &weights, || Ok(identity), &device)
    }

    /// Build `config`'s model from the tensors of `source`, read one at a time. The config's bounds and
    /// every tensor's name, shape and dtype are checked from the header first, so a checkpoint that cannot
    /// load is refused before `identity` (which hashes the weights) runs and before any tensor is read.
    pub fn from_source(
        config: ModelConfig,
        source: &dyn TensorSource,
        identity: impl FnOnce() -> Result<WeightsIdentity>,
        device: &Device,
    ) -> Result<Self> {
        config.validate().map_err(TesseraError::Config)?;
        let keys = keys(&config);
        check_header(
            source,
            &Self::architecture(&config, device),
            keys.unused,
            device,
        )?;
        let identity = identity()?;
        let mut store = WeightStore::new(source, keys, device);
        let (transformer, codec, parameters) = build(&config, &mut store);
        store.finish()?;
        Ok(Model {
            config,
            transformer,
            codec,
            tokenizer: None,
            sha256: identity.sha256,
            weight_bytes: identity.bytes,
            parameters,
            device: device.clone(),
        })
    }

    /// Load a model folder: `config.json`, the weights in any layout `crate::checkpoint` reads (checked
    /// against `model.sha256` when the folder has one), and a Janus model's `tokenizer.json` when present.
    #[cfg(not(target_family = "wasm"))]
    pub fn load_dir(dir: &std::path::Path, device: &Device) -> Result<Self> {
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                TesseraError::Config(format!("cannot read {}: {e}", dir.join(name).display()))
            })
        };
        let config = ModelConfig::from_json(&read("config.json")?)?;
        let weights = crate::checkpoint::Checkpoint::open(dir)?;
        let model = Self::from_source(config, weights.source(), || weights.identity(), device)?;
        match (&model.config.family, dir.join("tokenizer.json")) {
            (Family::Janus(_), path) if path.exists() => {
                model.with_tokenizer(&read("tokenizer.json")?)
            }
            _ => Ok(model),
        }
    }

    /// The model with the text tokenizer of `tokenizer.json` (Janus models), which also gives the prompt
    /// ids its config leaves out.
    pub fn with_tokenizer(mut self, json: &[u8]) -> Result<Self> {
        let tokenizer = janus::TextTokenizer::from_bytes(json).map_err(TesseraError::Config)?;
        let Family::Janus(janus) = &mut self.config.family else {
            return Err(TesseraError::Config(format!(
                "{} reads text as bytes: it takes no tokenizer.json",
                self.config.model_id
            )));
        };
        tokenizer.fill_in(janus);
        self.tokenizer = Some(tokenizer);
        Ok(self)
    }

    /// What `config`'s model needs before any weight is fetched, from its architecture alone: what decides
    /// where it can run.
    pub fn needs(config: &ModelConfig) -> Result<Needs> {
        config.validate().map_err(TesseraError::Config)?;
        let architecture = Self::architecture(config, &Device::flex());
        let count = |shape: &Vec<usize>| shape.iter().product::<usize>() as u64;
        let (largest, largest_shape) = architecture
            .iter()
            .max_by_key(|(_, shape)| count(shape))
            .expect("every architecture has tensors");
        let parameters: u64 = architecture.values().map(count).sum();
        Ok(Needs {
            parameters,
            largest_tensor: largest.clone(),
            largest_tensor_f32_bytes: 4 * count(largest_shape),
            f32_bytes: 4 * parameters,
        })
    }

    /// Every tensor the architecture of `config` needs: name → shape (torch layout), the loader's table.
    pub fn architecture(config: &ModelConfig, device: &Device) -> BTreeMap<String, Vec<usize>> {
        probe_names(device, keys(config), |w| {
            build(config, w);
        })
    }

    /// Safetensors bytes with random weights for `config` ([`Model::random_tensors`]): the untrained
    /// stand-in and tests.
    pub fn random_weights(config: &ModelConfig, seed: u64, device: &Device) -> Vec<u8> {
        let tensors: TensorMap = Self::random_tensors(config, seed, device)
            .map(|(name, shape, values)| (name, (shape, values)))
            .collect();
        to_safetensors(&tensors)
    }

    /// Random weights for `config`, one tensor at a time in name order (norm scales 1, biases 0, matrices
    /// uniform in ±1/√fan_in), named and shaped by the same table the loader checks.
    pub fn random_tensors(
        config: &ModelConfig,
        seed: u64,
        device: &Device,
    ) -> impl Iterator<Item = (String, Vec<usize>, Vec<f32>)> {
        let names = Self::architecture(config, device);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        names.into_iter().map(move |(name, shape)| {
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
            (name, shape, values)
        })
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
        let ids = read_ints(self.codec.encode(x)).await?;
        Ok(ids.into_iter().map(|i| i as u32).collect())
    }
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
