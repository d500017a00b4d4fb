//! `tessera policy`: checks one prompt against the prompt policy (`allowed`, or the refusal and a non-zero exit).

use clap::Args;

use crate::args::{Failure, PolicyArg};

#[derive(Args)]
pub struct PolicyArgs {
    pub prompt: String,
    #[command(flatten)]
    pub policy: PolicyArg,
}

pub fn run(a: PolicyArgs) -> Result<(), Failure> {
    a.policy.load()?.check(&a.prompt)?;
    println!("allowed");
    Ok(())
}
