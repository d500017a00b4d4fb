//! Arguments several subcommands share: the model folder, the prompt policy, the sampling settings, and the
//! architecture presets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use clap::{Args, ValueEnum};
use tessera::{Model, ModelConfig, Policy, Settings, TesseraError};

pub type Failure = Box<dyn std::error::Error>;

#[derive(Args, Clone)]
pub struct ModelArg {
    /// Model folder (config.json, model.safetensors, model.sha256). Default: the bundled model.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

impl ModelArg {
    /// The model on burn's CPU backend, as every subcommand but `bench --device gpu` runs it.
    pub fn load(&self) -> Result<Arc<Model>, TesseraError> {
        self.load_on(&Device::flex())
    }

    /// The model folder given, else the bundled model, else (in a checkout without it) an untrained stand-in
    /// of the default architecture; an untrained model is announced on stderr.
    pub fn load_on(&self, device: &Device) -> Result<Arc<Model>, TesseraError> {
        let model = match &self.model {
            Some(dir) => Model::load_dir(dir, device)?,
            None if bundled_model_dir().join("model.safetensors").exists() => {
                Model::load_dir(&bundled_model_dir(), device)?
            }
            None => {
                let mut config = ModelConfig::default_model();
                config.model_id = "untrained-stand-in".into();
                config.trained = false;
                random_model(config, device)?
            }
        };
        if !model.config.trained {
            eprintln!(
                "warning: model `{}` is UNTRAINED (random weights): its images are noise",
                model.config.model_id
            );
        }
        Ok(Arc::new(model))
    }

    /// The model's config alone (what reading a prompt for it needs): the folder's `config.json`, or the
    /// default architecture's where there is none.
    pub fn config(&self) -> Result<ModelConfig, Failure> {
        let path = self.dir().join("config.json");
        match std::fs::read(&path) {
            Ok(bytes) => ModelConfig::from_json(&bytes)
                .map_err(|e| format!("{}: {e}", path.display()).into()),
            Err(_) if self.model.is_none() => Ok(ModelConfig::default_model()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display()).into()),
        }
    }

    /// The folder the model is read from.
    pub fn dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(bundled_model_dir)
    }
}

/// The bundled default model, in the repository beside this crate.
pub fn bundled_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tessera-shapes")
}

/// A model of `config` with random weights (seed 0) on `device`.
pub fn random_model(config: ModelConfig, device: &Device) -> Result<Model, TesseraError> {
    let weights = Model::random_weights(&config, 0, device);
    Model::from_config(config, &weights, device)
}

#[derive(Args, Clone)]
pub struct PolicyArg {
    /// Prompt policy (JSON, the shape of engine/src/trust/policy.json). Default: the bundled policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

impl PolicyArg {
    pub fn load(&self) -> Result<Policy, Failure> {
        Ok(match &self.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Policy::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Policy::default_policy(),
        })
    }
}

/// Sampling flags; the temperature and guidance a flag leaves out are the model's own defaults
/// (`ModelConfig::default_settings`: the default model's 1 and 1.5, Janus's 1 and 5).
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// 0 samples greedily; higher is more varied. Default: the model's (1).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample only among the most likely tokens that together reach this probability.
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().top_p)]
    pub top_p: f32,
    /// Classifier-free guidance scale (1 = off). Default: the model's (1.5 for the default model, 5 for
    /// Janus).
    #[arg(long, alias = "cfg", allow_negative_numbers = true)]
    pub guidance: Option<f32>,
    /// Edits: how strongly to keep the source image where the model is unsure (0 = off).
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().keep)]
    pub keep: f32,
}

impl SamplingArgs {
    /// The settings for a model of `config`: these flags over its defaults.
    pub fn settings(&self, seed: u64, config: &ModelConfig) -> Settings {
        let defaults = config.default_settings();
        Settings {
            seed,
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_k: self.top_k,
            top_p: self.top_p,
            guidance: self.guidance.unwrap_or(defaults.guidance),
            keep: self.keep,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Preset {
    /// The default model's architecture (11.5 M + 2.6 M parameters).
    Default,
    /// The test architecture the tiny trained model uses.
    Tiny,
    /// 32² images, one layer: the browser tests' model on a software GPU.
    Micro,
    /// Janus-Pro-1B's image half (24 layers, d = 2048, VQ-16, a 24×24 grid), in Janus's config layout: for
    /// speed and memory only.
    #[value(name = "janus-pro-1b-sized")]
    JanusPro1bSized,
}

impl Preset {
    pub fn config(self) -> ModelConfig {
        match self {
            Preset::Default => ModelConfig::default_model(),
            Preset::Tiny => ModelConfig::tiny(),
            Preset::Micro => ModelConfig::micro(),
            Preset::JanusPro1bSized => ModelConfig::janus_pro_1b_sized(),
        }
    }
}

/// A float format for weights on disk.
#[derive(Clone, Copy, ValueEnum)]
pub enum FloatFormatArg {
    F32,
    F16,
    Bf16,
}

impl From<FloatFormatArg> for tessera::weights::FloatFormat {
    fn from(f: FloatFormatArg) -> Self {
        match f {
            FloatFormatArg::F32 => Self::F32,
            FloatFormatArg::F16 => Self::F16,
            FloatFormatArg::Bf16 => Self::Bf16,
        }
    }
}

/// Write via a temporary file and a rename, so a failure never leaves a partial file at `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}
