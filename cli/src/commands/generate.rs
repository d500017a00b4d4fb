//! `tessera generate` and `tessera edit`: one image from a prompt, or from an image and an instruction,
//! written with its provenance and a signed C2PA manifest, never as a partial file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera::Generation;
use tessera::config::Family;
use tessera::interpret::{self, Before, Interpretation, Kind};
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
    /// Janus models: prompt with these token ids (comma-separated, BOS first and `<begin_of_image>` last)
    /// instead of tokenizing the prompt, which the provenance then records as typed.
    #[arg(long, value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
    /// Also write the generated image tokens, raster order, as one JSON array.
    #[arg(long)]
    pub tokens_out: Option<PathBuf>,
}

pub fn generate(a: GenerateArgs) -> Result<(), Failure> {
    let d = a.draw;
    let config = d.model.config()?;
    let settings = d.sampling.settings(d.seed, &config);
    settings.validate()?;
    let reading = read(&d, &a.prompt, Before::Nothing, None)?;
    let model = d.model.load()?;
    // The engine refuses ids for a model that reads text, and a Janus model without a tokenizer or ids.
    let generation = match &d.prompt_ids {
        Some(ids) => Generation::from_prompt_ids(model, &a.prompt, ids, settings)?,
        None => {
            let text = reading
                .as_ref()
                .map_or(&*a.prompt, |r| r.canonical.as_str());
            Generation::new(model, text, None, settings)?.typed_as(&a.prompt)
        }
    };
    if let (Family::Tessera, Some(r)) = (&config.family, &reading) {
        say(r);
    }
    draw(generation, &d.out, d.tokens_out.as_deref())
}

pub fn edit(a: EditArgs) -> Result<(), Failure> {
    let d = a.draw;
    // A Janus model is refused by the engine: it generates from text only.
    let settings = d.sampling.settings(d.seed, &d.model.config()?);
    settings.validate()?;
    let reading = read(&d, &a.instruction, Before::Picture(None), Some(Kind::Edit))?;
    let shown = a.input.display();
    let bytes = std::fs::read(&a.input).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let model = d.model.load()?;
    let rgb = tessera::image_input::load_rgb(&bytes, model.config.image_size as u32)
        .map_err(|e| format!("{shown}: {e}"))?;
    let context = pollster::block_on(model.encode_rgb(&rgb))?;
    let text = reading
        .as_ref()
        .map_or(&*a.instruction, |r| r.canonical.as_str());
    let generation =
        Generation::new(model, text, Some(&context), settings)?.typed_as(&a.instruction);
    if let Some(r) = &reading {
        say(r);
    }
    draw(generation, &d.out, d.tokens_out.as_deref())
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

/// Runs `generation` with a progress bar and writes the signed PNG to `out` (and its tokens to
/// `tokens_out`), each written whole or not at all.
fn draw(mut generation: Generation, out: &Path, tokens_out: Option<&Path>) -> Result<(), Failure> {
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
    if let Some(path) = tokens_out {
        let json = serde_json::to_vec(generation.tokens())?;
        write_atomically(path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
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
