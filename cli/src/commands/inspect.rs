//! `tessera inspect`: a model's family, config, parameter count, weight size and sha256.

use clap::Args;

use crate::args::{Failure, ModelArg};

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub model: ModelArg,
}

pub fn run(a: InspectArgs) -> Result<(), Failure> {
    let model = a.model.load()?;
    println!("family: {}", model.config.family.name());
    println!("{}", serde_json::to_string_pretty(&model.config)?);
    let m = |n: usize| n as f64 / 1e6;
    let p = model.parameters;
    println!(
        "parameters: {} ({:.2} M): transformer {} ({:.2} M), image codec {} ({:.2} M)",
        p.total(),
        m(p.total()),
        p.transformer,
        m(p.transformer),
        p.codec,
        m(p.codec)
    );
    println!(
        "weight bytes: {} ({:.1} MB)",
        model.weight_bytes,
        model.weight_bytes as f64 / 1e6
    );
    println!("sha256: {}", model.sha256);
    Ok(())
}
