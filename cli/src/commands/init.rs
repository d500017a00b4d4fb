//! `tessera init`: an UNTRAINED model folder (random weights) of a preset architecture, for tests, for
//! speed and memory measurements, and for trying a configuration end to end before training it.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::Args;
use tessera::checkpoint::{SHARD_BYTES, ShardWriter};
use tessera::weights::encode;
use tessera::{Model, ModelConfig};

use crate::args::{Failure, FloatFormatArg, Preset};

#[derive(Args)]
pub struct InitArgs {
    #[arg(long, value_enum)]
    pub preset: Preset,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The weights' float format on disk (the values are rounded to it).
    #[arg(long, value_enum, default_value_t = FloatFormatArg::F32)]
    pub dtype: FloatFormatArg,
    /// A new folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: InitArgs) -> Result<(), Failure> {
    let mut config = a.preset.config();
    config.trained = false;
    // A Janus preset is written in Janus's own layout (untrained), as a released folder holds it.
    let config_json = match a.preset {
        Preset::JanusPro1bSized => ModelConfig::JANUS_PRO_1B_SIZED.to_string(),
        _ => serde_json::to_string_pretty(&config)?,
    };
    // One tensor at a time: a 1.5 G-parameter preset never exists whole in memory.
    let mut writer = ShardWriter::new(&a.out, SHARD_BYTES)?;
    for (name, shape, values) in Model::random_tensors(&config, a.seed, &Device::flex()) {
        let (dtype, bytes) = encode(&name, &values, a.dtype.into())?;
        writer.push(name, dtype, shape, bytes)?;
    }
    writer.add_file("config.json", config_json.as_bytes())?;
    let identity = writer.finish()?;
    println!(
        "wrote {} (untrained, seed {}, {:.1} MB of weights, sha256 {})",
        a.out.display(),
        a.seed,
        identity.bytes as f64 / 1e6,
        identity.sha256
    );
    Ok(())
}
