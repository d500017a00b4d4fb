//! `tessera data`: "Shapes & Signs" examples, as PNG + JSON for people or as a training shard for the trainer.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tessera::generation::EditLayout;
use tessera_world::{dataset, scenes::sample::Mix};

use crate::args::Failure;

#[derive(Clone, Copy, ValueEnum)]
pub enum DataFormat {
    /// PNG + JSON per example, for people.
    Png,
    /// A training shard (raw pixels + JSONL), for the trainer.
    Shard,
}

#[derive(Args)]
pub struct DataArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = DataFormat::Png)]
    pub format: DataFormat,
    /// Relative weight of each category, e.g. `sign=30,edit=30`; categories not named keep their default
    /// (single=15, multi=25, grid=20, sign=15, edit=25: the shipped model's mix).
    #[arg(long)]
    pub mix: Option<Mix>,
    /// Shards only: `image-first` (the shipped model's) or `text-first` edit prompts (see
    /// `engine/src/generation/prompt.rs`); the trainer writes it into the model's config.
    #[arg(long, default_value = "image-first")]
    pub edit_layout: EditLayout,
    /// New pictures with a sign carry the sign drawn alone as context (the engine prompts a model whose
    /// config has `sign_glyphs` so); the trainer writes it into the model's config.
    #[arg(long)]
    pub sign_glyphs: bool,
}

pub fn run(a: DataArgs) -> Result<(), Failure> {
    let mix = a.mix.unwrap_or_default();
    let prompts = dataset::Prompts {
        edit_layout: a.edit_layout,
        sign_glyphs: a.sign_glyphs,
    };
    match a.format {
        DataFormat::Png => dataset::write_samples(a.seed, mix, prompts, a.n, &a.out),
        DataFormat::Shard => {
            dataset::write_shard(a.seed, mix, prompts, a.n, &a.out).map_err(Into::into)
        }
    }
}
