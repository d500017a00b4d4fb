//! `tessera interpret`: a message as the model will read it (one JSON object: `canonical`, `kind`, `edit`,
//! `unknown`, `notes`, `note`, `scene`, `understood`), after a previous picture with `--after`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tessera::interpret::{self, Before, Kind};
use tessera::trust::Claimed;

use crate::args::{Failure, ModelArg, PolicyArg};

#[derive(Args)]
pub struct InterpretArgs {
    pub text: String,
    /// A picture this tool wrote, as the conversation so far: the message may edit it.
    #[arg(long)]
    pub after: Option<PathBuf>,
    /// Decide the kind instead of the interpreter: a new picture, or an edit of `--after`.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub policy: PolicyArg,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    New,
    Edit,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::New => Kind::New,
            KindArg::Edit => Kind::Edit,
        }
    }
}

pub fn run(a: InterpretArgs) -> Result<(), Failure> {
    let policy = a.policy.load()?;
    let config = a.model.config()?;
    if let Some(path) = &a.after {
        previous_picture(path)?;
    } else if matches!(a.kind, Some(KindArg::Edit)) {
        return Err("--kind edit needs the picture to edit: give it with --after IMAGE.png".into());
    }
    let before = match a.after {
        Some(_) => Before::Picture(None),
        None => Before::Nothing,
    };
    let reading = interpret::checked(&config, &policy, &a.text, before, a.kind.map(Kind::from))?;
    println!("{}", serde_json::to_string(&reading)?);
    Ok(())
}

/// Checks that `path` is a picture this tool wrote (it carries Tessera's provenance).
pub fn previous_picture(path: &std::path::Path) -> Result<(), Failure> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match Claimed::read_claims(&bytes).map_err(|e| format!("{shown}: {e}"))? {
        Some(_) => Ok(()),
        None => Err(format!(
            "{shown} carries no Tessera provenance: --after takes a picture this tool wrote"
        )
        .into()),
    }
}
