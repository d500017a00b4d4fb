//! The `tessera` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Image generation with an autoregressive image-token transformer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    /// PNG + JSON per example, for people.
    Png,
    /// A training shard (raw pixels + JSONL), for the trainer.
    Shard,
}

#[derive(Subcommand)]
enum Command {
    /// Draw "Shapes & Signs" examples.
    Data {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        n: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = DataFormat::Png)]
        format: DataFormat,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Data { seed, n, out, format } => match format {
            DataFormat::Png => tessera::dataset::write_samples(seed, n, &out),
            DataFormat::Shard => tessera::dataset::write_shard(seed, n, &out).map_err(Into::into),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
