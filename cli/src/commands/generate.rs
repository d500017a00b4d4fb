//! `tessera generate` and `tessera edit`: one image from a prompt, or from an image and an instruction,
//! written with its provenance and a signed C2PA manifest, never as a partial file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera::interpret::{self, Before, Interpretation, Kind};
use tessera::{Generation, Model, Settings};
use tessera_cli::content_credentials::{self, LocalKey};

use crate::args::{Failure, ModelArg, PolicyArg, SamplingArgs, write_atomically};

#[derive(Args)]
pub struct GenerateArgs {
    pub prompt: String,
    #[command(flatten)]
    pub draw: DrawArgs,
}

#[derive(Args)]
pub struct EditArgs {
    pub input: PathBuf,
    pub instruction: String,
    #[command(flatten)]
    pub draw: DrawArgs,
}

/// What a generation and an edit both take.
#[derive(Args)]
pub struct DrawArgs {
    /// Seed of the sampler: the same seed, settings and model give the same image.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(short, long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub policy: PolicyArg,
    /// Prompt the model with the text as typed, not as interpreted into its world.
    #[arg(long)]
    pub raw: bool,
}

pub fn generate(a: GenerateArgs) -> Result<(), Failure> {
    let d = a.draw;
    let settings = d.sampling.settings(d.seed);
    settings.validate()?;
    let reading = read(&d, &a.prompt, Before::Nothing, None)?;
    let model = d.model.load()?;
    draw(&model, &a.prompt, &reading, None, settings, &d.out)
}

pub fn edit(a: EditArgs) -> Result<(), Failure> {
    let d = a.draw;
    let settings = d.sampling.settings(d.seed);
    settings.validate()?;
    let reading = read(&d, &a.instruction, Before::Picture(None), Some(Kind::Edit))?;
    let shown = a.input.display();
    let bytes = std::fs::read(&a.input).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let model = d.model.load()?;
    let rgb = tessera::image_input::load_rgb(&bytes, model.config.image_size as u32)
        .map_err(|e| format!("{shown}: {e}"))?;
    let context = pollster::block_on(model.encode_rgb(&rgb))?;
    draw(
        &model,
        &a.instruction,
        &reading,
        Some(&context),
        settings,
        &d.out,
    )
}

/// How the model is prompted with `typed`: as interpreted, or (`None`) as typed with `--raw`; refused (as
/// typed and as interpreted) by the policy, or when empty or too long.
fn read(
    d: &DrawArgs,
    typed: &str,
    before: Before,
    force: Option<Kind>,
) -> Result<Option<Interpretation>, Failure> {
    let policy = d.policy.load()?;
    if d.raw {
        policy.check(typed)?;
        return Ok(None);
    }
    Ok(Some(interpret::checked(
        &d.model.config()?,
        &policy,
        typed,
        before,
        force,
    )?))
}

/// "interpreted as …", what was filled in, and the kind note.
fn say(r: &Interpretation) {
    eprintln!("interpreted as: {}", r.canonical);
    for note in &r.notes {
        eprintln!("  note: {note}");
    }
    if let Some(note) = &r.note {
        eprintln!("  {note}");
    }
}

/// Runs the generation of `prompt` as `reading` reads it (as typed without one; the provenance records the
/// prompt as typed) with a progress bar, and writes the signed PNG to `out`.
fn draw(
    model: &Arc<Model>,
    prompt: &str,
    reading: &Option<Interpretation>,
    context: Option<&[u32]>,
    settings: Settings,
    out: &Path,
) -> Result<(), Failure> {
    let text = reading.as_ref().map_or(prompt, |r| r.canonical.as_str());
    let mut generation = Generation::new(model.clone(), text, context, settings)?.typed_as(prompt);
    if let Some(r) = reading {
        say(r);
    }
    let bar = ProgressBar::new(generation.total_tokens() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} tokens  {per_sec}  {msg}")
            .expect("a valid template"),
    );
    let start = Instant::now();
    let mut first_row = None;
    while let Some(step) = pollster::block_on(generation.step())? {
        bar.inc(1);
        if step.band.is_some() && first_row.is_none() {
            first_row = Some(start.elapsed());
        }
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let provenance = generation.provenance(Some(created.clone()));
    let png = generation.png(Some(created));
    let title = out
        .file_name()
        .map_or("image.png".into(), |n| n.to_string_lossy());
    let key = LocalKey::load_or_create(&content_credentials::default_key_dir())?;
    let signed = content_credentials::sign_png(&png, &title, &provenance, &key)?;
    write_atomically(out, &signed)?;
    eprintln!(
        "wrote {} in {:.2} s ({:.0} tokens/s, first row after {:.0} ms)",
        out.display(),
        elapsed.as_secs_f64(),
        generation.total_tokens() as f64 / elapsed.as_secs_f64(),
        first_row.unwrap_or_default().as_secs_f64() * 1e3
    );
    Ok(())
}
