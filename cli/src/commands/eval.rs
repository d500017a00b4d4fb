//! `tessera eval`: ShapesEval — fresh scenes drawn by the model and read back (one JSON object on stdout),
//! optionally every generated image saved for people to look at.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_world::eval::{self, Outcome};

use crate::args::{Failure, ModelArg, SamplingArgs};

#[derive(Args)]
pub struct EvalArgs {
    /// Seed of the scenes; each sample's sampler seed is derived from it and the sample's index.
    #[arg(long, default_value_t = 1000)]
    pub seed: u64,
    #[arg(long, default_value_t = 70)]
    pub n: usize,
    /// Run only this split (single, multi, grid, text, edit, zh, heldout, paraphrase, replace): its N
    /// samples are those a full run of 9·N draws, in a ninth of the time.
    #[arg(long)]
    pub only: Option<String>,
    /// Print one compact JSON line (the default is indented JSON).
    #[arg(long)]
    pub json: bool,
    /// Also write every generated image to this folder (`00012-edit-miss.png`, and the image an edit
    /// started from as `00012-edit-source.png`) with the prompts in `samples.jsonl`.
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArg,
}

pub fn run(a: EvalArgs) -> Result<(), Failure> {
    let settings = a.sampling.settings(a.seed, &a.model.config()?);
    settings.validate()?;
    if a.n == 0 {
        return Err("--n must be at least 1".into());
    }
    let model = a.model.load()?;
    let mut saved = a
        .save
        .as_deref()
        .map(|dir| SavedSamples::create(dir, model.config.image_size))
        .transpose()?;
    let mut save_error = None;
    let bar = ProgressBar::new(a.n as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:32} {pos}/{len} samples  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    let report = eval::run(
        &model,
        a.seed,
        a.n,
        a.only.as_deref(),
        &settings,
        |outcome| {
            bar.inc(1);
            if let Some(saved) = &mut saved
                && save_error.is_none()
            {
                save_error = saved.add(&outcome).err();
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = save_error {
        return Err(e);
    }
    let text = if a.json {
        serde_json::to_string(&report)?
    } else {
        serde_json::to_string_pretty(&report)?
    };
    println!("{text}");
    Ok(())
}

/// `tessera eval --save`: each generated image as a PNG and one line per sample in `samples.jsonl`.
struct SavedSamples {
    dir: PathBuf,
    size: u32,
    lines: std::fs::File,
}

impl SavedSamples {
    fn create(dir: &Path, size: usize) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("samples.jsonl");
        let lines = std::fs::File::create(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(SavedSamples {
            dir: dir.to_path_buf(),
            size: size as u32,
            lines,
        })
    }

    fn add(&mut self, o: &Outcome) -> Result<(), Failure> {
        use std::io::Write;
        let verdict = if o.right { "ok" } else { "miss" };
        let stem = format!("{:05}-{}", o.index, o.split);
        let file = format!("{stem}-{verdict}.png");
        let png = |name: &str, rgb: &[u8]| {
            let path = self.dir.join(name);
            image::save_buffer(&path, rgb, self.size, self.size, image::ColorType::Rgb8)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        png(&file, o.image)?;
        if let Some(source) = o.source {
            png(&format!("{stem}-source.png"), source)?;
        }
        let line = serde_json::json!({
            "index": o.index, "split": o.split, "prompt": o.prompt, "right": o.right, "image": file,
        });
        writeln!(self.lines, "{line}")?;
        Ok(())
    }
}
