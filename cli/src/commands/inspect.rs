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
    println!(
        "parameters: {} ({:.2} M)",
        model.parameters,
        m(model.parameters)
    );
    println!(
        "weight bytes: {} ({:.1} MB)",
        model.weight_bytes,
        m(model.weight_bytes)
    );
    println!("sha256: {}", model.sha256);
    Ok(())
}
