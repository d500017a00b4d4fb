//! `tessera init`: an UNTRAINED model folder (random weights) of a preset architecture, for tests and for
//! trying a configuration end to end before training it.

use std::path::PathBuf;

use burn::tensor::Device;
use clap::Args;
use tessera::Model;

use crate::args::{Failure, Preset, write_atomically};

#[derive(Args)]
pub struct InitArgs {
    #[arg(long, value_enum)]
    pub preset: Preset,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: InitArgs) -> Result<(), Failure> {
    let mut config = a.preset.config();
    config.trained = false;
    let weights = Model::random_weights(&config, a.seed, &Device::flex());
    std::fs::create_dir_all(&a.out)?;
    let config_json = serde_json::to_string_pretty(&config)?;
    write_atomically(&a.out.join("config.json"), config_json.as_bytes())?;
    write_atomically(&a.out.join("model.safetensors"), &weights)?;
    let sum = format!("{}  model.safetensors\n", tessera::sha256_hex(&weights));
    write_atomically(&a.out.join("model.sha256"), sum.as_bytes())?;
    println!("wrote {} (untrained, seed {})", a.out.display(), a.seed);
    Ok(())
}
