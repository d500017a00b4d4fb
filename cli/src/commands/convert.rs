//! `tessera convert`: a downloaded model folder (safetensors, sharded safetensors or a PyTorch pickle) as
//! the folder format the browser loads: the image half's tensors only, optionally in another float format,
//! in safetensors shards with their index and a sha256 list.

use std::path::PathBuf;

use clap::Args;
use tessera::checkpoint::{SHARD_BYTES, convert};

use crate::args::{Failure, FloatFormatArg};

#[derive(Args)]
pub struct ConvertArgs {
    /// The model folder to read: config.json, the weights, tokenizer.json when the model has one.
    pub src: PathBuf,
    /// A new folder to write.
    pub out: PathBuf,
    /// Float format of the written weights (default: as stored).
    #[arg(long, value_enum)]
    pub dtype: Option<FloatFormatArg>,
    /// Most tensor data per shard, in MiB (a larger tensor gets a shard of its own).
    #[arg(long, default_value_t = SHARD_BYTES >> 20)]
    pub shard_mib: usize,
}

pub fn run(a: ConvertArgs) -> Result<(), Failure> {
    if a.shard_mib == 0 {
        return Err("--shard-mib must be at least 1".into());
    }
    let identity = convert(&a.src, &a.out, a.dtype.map(Into::into), a.shard_mib << 20)?;
    println!(
        "wrote {} ({:.1} MB of weights, sha256 {})",
        a.out.display(),
        identity.bytes as f64 / 1e6,
        identity.sha256
    );
    Ok(())
}
