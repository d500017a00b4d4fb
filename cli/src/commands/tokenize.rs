//! `tessera tokenize`: the ids a folder's `tokenizer.json` gives a text, as the `tokenizers` library's
//! `encode(TEXT, add_special_tokens=False)` gives them (no template, no BOS), one JSON array on stdout.

use std::path::PathBuf;

use clap::Args;
use tessera::model::janus::TextTokenizer;

use crate::args::Failure;

#[derive(Args)]
pub struct TokenizeArgs {
    pub text: String,
    /// A model folder holding tokenizer.json.
    #[arg(
        long,
        required_unless_present = "tokenizer",
        conflicts_with = "tokenizer"
    )]
    pub model: Option<PathBuf>,
    /// A tokenizer.json file.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

pub fn run(a: TokenizeArgs) -> Result<(), Failure> {
    let path = match (a.tokenizer, a.model) {
        (Some(file), _) => file,
        (None, Some(dir)) => dir.join("tokenizer.json"),
        (None, None) => unreachable!("clap requires one of the two"),
    };
    let json = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokenizer =
        TextTokenizer::from_bytes(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{}", serde_json::to_string(&tokenizer.encode(&a.text)?)?);
    Ok(())
}
