//! The `tessera` command line: generate and edit images, verify them, inspect models, draw training data,
//! evaluate and benchmark. Every error is one line on stderr and a non-zero exit; no partial output file is
//! left behind.

mod args;
mod bench;
mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{
    bench as bench_cmd, convert, data, eval, generate, init, inspect, interpret, policy, tokenize,
    verify,
};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Image generation with an autoregressive image-token transformer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an image from a prompt.
    Generate(generate::GenerateArgs),
    /// Edit an image with an instruction ("make the circle green").
    Edit(generate::EditArgs),
    /// A message as the model will read it ("interpreted as"): one JSON object with the canonical text,
    /// whether it is a new picture or an edit (of the --after picture), and the words it could not place.
    Interpret(interpret::InterpretArgs),
    /// What an image says about where it came from, and whether that checks out. With --prompt it is
    /// regenerated from the recorded model, seed and settings and the pixels are compared.
    Verify(verify::VerifyArgs),
    /// Check a prompt against the prompt policy: prints `allowed`, or the refusal and exits non-zero.
    Policy(policy::PolicyArgs),
    /// Write an UNTRAINED model folder (random weights) of a preset architecture, for tests and for trying a
    /// configuration end to end before training it.
    Init(init::InitArgs),
    /// Rewrite a downloaded model folder (safetensors, shards or pytorch_model.bin) as the folder the browser
    /// loads: the image half's tensors in safetensors shards, with a sha256 list.
    Convert(convert::ConvertArgs),
    /// Print a model's family, config, parameter counts, weight size and sha256.
    Inspect(inspect::InspectArgs),
    /// ShapesEval: generate fresh scenes and score what the model drew (one JSON object on stdout).
    Eval(eval::EvalArgs),
    /// Time whole generations (median of several runs): tokens/s, time to the first row and to the image.
    Bench(bench_cmd::BenchArgs),
    /// Draw "Shapes & Signs" examples.
    Data(data::DataArgs),
    /// The token ids a tokenizer.json gives a text (Janus models), as one JSON array.
    Tokenize(tokenize::TokenizeArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Generate(a) => generate::generate(a),
        Command::Edit(a) => generate::edit(a),
        Command::Interpret(a) => interpret::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Policy(a) => policy::run(a),
        Command::Init(a) => init::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Data(a) => data::run(a),
        Command::Tokenize(a) => tokenize::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
