//! The `tessera` command line: generate and edit images, inspect models, draw training data, evaluate.
//! Every error is one line on stderr and a non-zero exit; no partial output file is left behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tessera::content_credentials::{self, Credentials, LocalKey};
use tessera::provenance::{Provenance, png_with_provenance};
use tessera::{Generation, Model, ModelConfig, Settings, TesseraError};

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

#[derive(Args, Clone)]
struct ModelArg {
    /// Model folder (config.json, model.safetensors, model.sha256). Default: the bundled model.
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct PolicyArg {
    /// Prompt policy (JSON, the shape of crate/src/policy.json). Default: the bundled policy.
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl PolicyArg {
    fn load(&self) -> Result<tessera::Policy, Box<dyn std::error::Error>> {
        Ok(match &self.policy {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                tessera::Policy::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => tessera::Policy::default_policy(),
        })
    }
}

#[derive(Args, Clone)]
struct SamplingArgs {
    /// 0 samples greedily; higher is more varied.
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().temperature)]
    temperature: f32,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample only among the most likely tokens that together reach this probability.
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().top_p)]
    top_p: f32,
    /// Classifier-free guidance scale (1 = off).
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().cfg)]
    cfg: f32,
    /// Edits: how strongly to keep the source image where the model is unsure (0 = off).
    #[arg(long, allow_negative_numbers = true, default_value_t = Settings::default().keep)]
    keep: f32,
}

impl SamplingArgs {
    fn settings(&self, seed: u64) -> Settings {
        Settings {
            seed,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            cfg: self.cfg,
            keep: self.keep,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// The default model's architecture (11.5 M + 2.6 M parameters).
    Default,
    /// The test architecture the tiny trained model uses.
    Tiny,
    /// 32² images, one layer: the browser tests' model on a software GPU.
    Micro,
    /// The size of Janus-Pro-1B's language model (24 layers, d = 2048; a 24×24 grid): for speed only.
    JanusPro1bSized,
}

impl Preset {
    fn config(self) -> ModelConfig {
        match self {
            Preset::Default => ModelConfig::default_model(),
            Preset::Tiny => ModelConfig::tiny(),
            Preset::Micro => ModelConfig::micro(),
            Preset::JanusPro1bSized => ModelConfig::janus_pro_1b_sized(),
        }
    }
}

/// Where `bench` runs the engine.
#[derive(Clone, Copy, ValueEnum)]
enum BenchDevice {
    /// burn's CPU backend (flex), as the CLI always runs.
    Cpu,
    /// burn's wgpu backend on the first adapter (Vulkan, Metal or DX12): a build with `--features gpu`.
    Gpu,
}

impl BenchDevice {
    fn device(self) -> Result<Device, Box<dyn std::error::Error>> {
        match self {
            BenchDevice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            BenchDevice::Gpu => Device::wgpu_options()
                .init()
                .map_err(|e| format!("no wgpu adapter: {e}").into()),
            #[cfg(not(feature = "gpu"))]
            BenchDevice::Gpu => Err("this tessera was built without the GPU backend: \
                 build it with `cargo build --release --features gpu`"
                .into()),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    /// PNG + JSON per example, for people.
    Png,
    /// A training shard (raw pixels + JSONL), for the trainer.
    Shard,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an image from a prompt.
    Generate {
        prompt: String,
        /// Seed of the sampler: the same seed, settings and model give the same image.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(short, long)]
        out: PathBuf,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// Edit an image with an instruction ("make the circle green").
    Edit {
        input: PathBuf,
        instruction: String,
        /// Seed of the sampler: the same seed, settings and model give the same image.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(short, long)]
        out: PathBuf,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// What an image says about where it came from, and whether that checks out. With --prompt it is
    /// regenerated from the recorded model, seed and settings and the pixels are compared.
    Verify {
        image: PathBuf,
        /// The prompt the image was made from: checked against the recorded hash, then regenerated.
        #[arg(long)]
        prompt: Option<String>,
        #[command(flatten)]
        model: ModelArg,
    },
    /// Check a prompt against the prompt policy: prints `allowed`, or the refusal and exits non-zero.
    Policy {
        prompt: String,
        #[command(flatten)]
        policy: PolicyArg,
    },
    /// Write an UNTRAINED model folder (random weights) of a preset architecture, for tests and for trying a
    /// configuration end to end before training it.
    Init {
        #[arg(long, value_enum)]
        preset: Preset,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model's config, parameter count, weight size and sha256.
    Inspect {
        #[command(flatten)]
        model: ModelArg,
    },
    /// ShapesEval: generate fresh scenes and score what the model drew (one JSON object on stdout).
    Eval {
        /// Seed of the scenes; each sample's sampler seed is derived from it and the sample's index.
        #[arg(long, default_value_t = 1000)]
        seed: u64,
        #[arg(long, default_value_t = 70)]
        n: usize,
        /// Run only this split (single, multi, grid, text, edit, zh, heldout): its N samples are those a
        /// full run of 7·N draws, in a seventh of the time.
        #[arg(long)]
        only: Option<String>,
        /// Print one compact JSON line (the default is indented JSON).
        #[arg(long)]
        json: bool,
        /// Also write every generated image to this folder (`00012-edit-miss.png`, and the image an edit
        /// started from as `00012-edit-source.png`) with the prompts in `samples.jsonl`.
        #[arg(long)]
        save: Option<PathBuf>,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        model: ModelArg,
    },
    /// Time whole generations (median of several runs): tokens/s, time to the first row and to the image.
    Bench {
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(
            long,
            default_value = "a big red circle in the center on a white background"
        )]
        prompt: String,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        model: ModelArg,
        /// Print one compact JSON line (the default is indented JSON).
        #[arg(long)]
        json: bool,
        /// Also time the PyTorch reference on the same model and settings, in the same run, with this Python
        /// (one with the trainer's requirements, e.g. trainer/.venv/bin/python): adds `peer_*` and `ratio`.
        #[arg(long)]
        peer: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = BenchDevice::Cpu)]
        device: BenchDevice,
        /// Time this architecture with random weights instead of a model folder (its images are noise).
        #[arg(long, value_enum, conflicts_with_all = ["model", "peer"])]
        preset: Option<Preset>,
    },
    /// Draw "Shapes & Signs" examples.
    Data {
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        n: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = DataFormat::Png)]
        format: DataFormat,
        /// Relative weight of each category, e.g. `sign=30,edit=30`; categories not named keep their default
        /// (single=15, multi=25, grid=20, sign=15, edit=25: the shipped model's mix).
        #[arg(long)]
        mix: Option<tessera::scenes::sample::Mix>,
        /// Shards only: `image-first` (the shipped model's) or `text-first` edit prompts (see `text.rs`); the
        /// trainer writes it into the model's config.
        #[arg(long, default_value = "image-first")]
        edit_layout: tessera::text::EditLayout,
    },
}

/// `tessera eval --save`: each generated image as a PNG and one line per sample in `samples.jsonl`.
struct SavedSamples {
    dir: PathBuf,
    size: u32,
    lines: std::fs::File,
}

impl SavedSamples {
    fn create(dir: &Path, size: usize) -> Result<Self, Box<dyn std::error::Error>> {
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

    fn add(&mut self, o: &tessera::eval::Outcome) -> Result<(), Box<dyn std::error::Error>> {
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

/// The bundled default model, next to this crate in the repository.
fn bundled_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tessera-shapes")
}

fn load_model(arg: &ModelArg) -> Result<Arc<Model>, TesseraError> {
    load_model_on(arg, &Device::flex())
}

/// A model of `config` with random weights (seed 0) on `device`.
fn random_model(config: ModelConfig, device: &Device) -> Result<Model, TesseraError> {
    let weights = Model::random_weights(&config, 0, device);
    Model::from_config(config, &weights, device)
}

fn load_model_on(arg: &ModelArg, device: &Device) -> Result<Arc<Model>, TesseraError> {
    let model = match &arg.model {
        Some(dir) => Model::load_dir(dir, device)?,
        None if bundled_model_dir().join("model.safetensors").exists() => {
            Model::load_dir(&bundled_model_dir(), device)?
        }
        None => {
            let mut cfg = ModelConfig::default_model();
            cfg.model_id = "untrained-stand-in".into();
            cfg.trained = false;
            random_model(cfg, device)?
        }
    };
    if !model.config.trained {
        eprintln!(
            "warning: model `{}` is UNTRAINED (random weights): its images are noise",
            model.config.model_id
        );
    }
    Ok(Arc::new(model))
}

/// Largest per-value difference between an image and its regeneration that still counts as the same image:
/// float sums may round differently on another machine (thread count, SIMD width).
const REGENERATION_TOLERANCE: u8 = 2;

/// `tessera verify`: prints the claims, then (with a prompt) regenerates and compares. A claim that does not
/// check out is an error (non-zero exit) after the report.
fn verify(
    path: &Path,
    prompt: Option<&str>,
    model: &ModelArg,
) -> Result<(), Box<dyn std::error::Error>> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let pixels = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| format!("{shown} is not a readable PNG image ({e})"))?
        .to_rgb8();
    let xmp = tessera::provenance::read_xmp(&bytes)
        .ok_or_else(|| format!("{shown} carries no provenance metadata: nothing to verify"))?;
    let claims = Provenance::from_xmp(&xmp)
        .map_err(|e| format!("{shown}: the provenance metadata is not valid: {e}"))?;
    let s = &claims.settings;
    println!(
        "image: {shown} ({}×{} PNG)",
        pixels.width(),
        pixels.height()
    );
    println!(
        "claims: made by an AI model (IPTC trainedAlgorithmicMedia): {} (weights sha256 {})",
        claims.model_id, claims.model_sha256
    );
    println!(
        "        seed {}, temperature {}, top-k {}, top-p {}, guidance {}; prompt sha256 {}",
        s.seed,
        s.temperature,
        s.top_k.map_or("all".into(), |k| k.to_string()),
        s.top_p,
        s.cfg,
        claims.prompt_sha256
    );
    if let Some(created) = &claims.created {
        println!("        created {created}");
    }
    let credentials =
        content_credentials::read(&bytes).map_err(|e| format!("not verified: {shown}: {e}"))?;
    match &credentials {
        Credentials::Absent => {
            println!("signature: none (no C2PA manifest: the claims above are unsigned)")
        }
        Credentials::Present(m) => {
            let whose = match (
                LocalKey::load(&content_credentials::default_key_dir())
                    .ok()
                    .flatten(),
                &m.certificate_sha256,
            ) {
                (Some(key), Some(cert)) if key.fingerprint() == *cert => "this machine's key",
                _ => "a key that is not this machine's",
            };
            println!(
                "signature: C2PA manifest signed by {} ({whose}, certificate sha256 {}){}",
                m.signer,
                m.certificate_sha256.as_deref().unwrap_or("unknown"),
                m.signed_at
                    .as_ref()
                    .map_or(String::new(), |t| format!(" at {t}"))
            );
            if !m.valid {
                return Err(format!(
                    "not verified: the C2PA manifest does not match this file ({}): it was changed after it was signed",
                    m.failures.join("; ")
                )
                .into());
            }
            if m.digital_source_type.as_deref() != Some(tessera::provenance::DIGITAL_SOURCE_TYPE) {
                return Err("not verified: the C2PA manifest does not declare a c2pa.created action by a trained model (trainedAlgorithmicMedia)".into());
            }
            println!(
                "           valid: the signature and the hashes of every byte check out; untrusted: a local key that no trust list knows"
            );
        }
    }
    let Some(prompt) = prompt else {
        println!(
            "verdict: claims read; pass --prompt \"…\" to check them by regenerating the image"
        );
        return Ok(());
    };
    if tessera::model::sha256_hex(prompt.as_bytes()) != claims.prompt_sha256 {
        return Err(
            "not verified: that prompt is not the one recorded in the image (its sha256 differs)"
                .into(),
        );
    }
    println!("prompt: matches the recorded sha256");
    if claims.source_sha256.is_some() {
        return Err("cannot regenerate: this image is an edit, and the tokens of the image it edited are not in the file".into());
    }
    let model = load_model(model)?;
    if model.sha256 != claims.model_sha256 {
        return Err(format!(
            "cannot regenerate: the image was made by {} (sha256 {}), the model here is {} (sha256 {}); pass --model with the recorded one",
            claims.model_id, claims.model_sha256, model.config.model_id, model.sha256
        )
        .into());
    }
    let mut generation = Generation::new(model.clone(), prompt, None, claims.settings.clone())?;
    while pollster::block_on(generation.step())?.is_some() {}
    let again = generation.image();
    let size = model.config.image_size as u32;
    if (pixels.width(), pixels.height()) != (size, size) {
        return Err(format!(
            "not verified: the image is {}×{}, the model draws {size}×{size}",
            pixels.width(),
            pixels.height()
        )
        .into());
    }
    let diffs: Vec<u8> = pixels
        .as_raw()
        .iter()
        .zip(again)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let changed = diffs
        .iter()
        .filter(|&&d| d > REGENERATION_TOLERANCE)
        .count();
    let worst = diffs.iter().copied().max().unwrap_or(0);
    println!(
        "pixels: regenerated with the recorded model, seed and settings; {changed} of {} values differ by more than {REGENERATION_TOLERANCE} levels (largest difference {worst})",
        diffs.len()
    );
    if changed > 0 {
        return Err(format!(
            "not verified: {changed} pixel values differ from the regeneration (the pixels were changed, or the claims are not this image's)"
        )
        .into());
    }
    println!("verdict: VERIFIED: this model, prompt, seed and settings make exactly this image");
    Ok(())
}

fn generate(
    model: &Arc<Model>,
    prompt: &str,
    context: Option<&[u32]>,
    settings: Settings,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut generation = Generation::new(model.clone(), prompt, context, settings.clone())?;
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
    let size = model.config.image_size as u32;
    let provenance = Provenance::new(
        &model.config.model_id,
        &model.sha256,
        &settings,
        prompt,
        context,
    )
    .created_at(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    let png = png_with_provenance(generation.image(), size, size, &provenance);
    let title = out
        .file_name()
        .map_or("image.png".into(), |n| n.to_string_lossy());
    let signed = content_credentials::sign_png(&png, &title, &provenance, &signing_key()?)?;
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

/// This machine's signing key, made on first use (see `content_credentials`).
fn signing_key() -> Result<LocalKey, String> {
    LocalKey::load_or_create(&content_credentials::default_key_dir())
}

/// Floating-point operations of the prefill of `prompt` (multiply-adds count 2): every matmul of every
/// layer at every prompt position, causal attention, and the image head at the last position, times the
/// batch (2 with guidance). Norms, rotary and activations are left out (a few per cent).
fn prefill_flops(model: &Model, prompt: &str, cfg: f32) -> f64 {
    let c = &model.config.transformer;
    let t = tessera::text::Prompt::new(prompt, None, Default::default()).len() as f64;
    let (d, h, k) = (c.dim as f64, c.mlp_hidden as f64, c.codebook_size as f64);
    let per_position = c.n_layers as f64 * (4.0 * d * d + 3.0 * d * h) * 2.0;
    // Scores and weighted values: each position attends to itself and the positions before it.
    let attention = c.n_layers as f64 * 2.0 * 2.0 * d * t * (t + 1.0) / 2.0;
    let head = 2.0 * (d * d + d * k);
    let batch = if cfg == 1.0 { 1.0 } else { 2.0 };
    batch * (t * per_position + attention + head)
}

/// The machine's measured single-precision matmul rate on the engine's device: the median of 5 products of
/// two 1024×1024 matrices, after a warm-up. `None` when the device's product is wrong (checked against the
/// host at a few entries), so a kernel that silently did nothing is never reported as a rate.
fn sgemm_gflops(device: &Device) -> Option<f64> {
    use burn::tensor::{Distribution, Tensor};
    let n = 1024;
    let a = Tensor::<2>::random([n, n], Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], Distribution::Default, device);
    let mut product = vec![];
    let mut seconds: Vec<f64> = (0..6)
        .map(|_| {
            let start = Instant::now();
            let c = a.clone().matmul(b.clone());
            product = c.into_data().try_into_vec_as::<f32>().unwrap_or_default(); // waits for the result
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    let a = a.into_data().try_into_vec_as::<f32>().ok()?;
    let b = b.into_data().try_into_vec_as::<f32>().ok()?;
    let right = [(0, 0), (n / 2, n / 3), (n - 1, n - 1)]
        .iter()
        .all(|&(i, j)| {
            let want: f32 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            product
                .get(i * n + j)
                .is_some_and(|got| (got - want).abs() <= 1e-3 * want.abs().max(1.0))
        });
    right.then(|| 2.0 * (n as f64).powi(3) / median(&mut seconds) / 1e9)
}

/// `trainer/bench_peer.py` with `python`: the PyTorch reference timed on the same model and settings.
fn bench_peer(
    python: &Path,
    model_dir: &Path,
    prompt: &str,
    sampling: &SamplingArgs,
    runs: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    if sampling.top_k.is_some() {
        return Err("--peer times top-p sampling only: leave out --top-k".into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../trainer/bench_peer.py");
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(model_dir)
        .args([
            "--runs",
            &runs.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args(["--prompt", prompt, "--cfg", &sampling.cfg.to_string()])
        .args(["--temperature", &sampling.temperature.to_string()])
        .args(["--top-p", &sampling.top_p.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the PyTorch peer failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Peak resident memory of this process in MB (Linux), 0 where unknown.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

fn bench(
    model: &Arc<Model>,
    prompt: &str,
    sampling: &SamplingArgs,
    runs: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (mut tokens_per_s, mut first_row_ms, mut image_ms) = (vec![], vec![], vec![]);
    let (mut prefill_s, mut decode_steps_per_s) = (vec![], vec![]);
    for run in 0..=runs {
        let mut g = Generation::new(model.clone(), prompt, None, sampling.settings(run as u64))?;
        let start = Instant::now();
        let mut first_row = None;
        // The first step is the prefill of the prompt (and one sample): the model's matmul-bound phase.
        pollster::block_on(g.step())?;
        let prefill = start.elapsed().as_secs_f64();
        while let Some(step) = pollster::block_on(g.step())? {
            if step.band.is_some() && first_row.is_none() {
                first_row = Some(start.elapsed().as_secs_f64());
            }
        }
        let total = start.elapsed().as_secs_f64();
        if run == 0 {
            continue; // warm-up: first-touch allocations and caches
        }
        prefill_s.push(prefill);
        decode_steps_per_s.push((g.tokens().len() - 1) as f64 / (total - prefill));
        tokens_per_s.push(g.total_tokens() as f64 / total);
        first_row_ms.push(first_row.unwrap_or(total) * 1e3);
        image_ms.push(total * 1e3);
    }
    let prefill = median(&mut prefill_s);
    Ok(serde_json::json!({
        "model_id": model.config.model_id,
        "runs": runs,
        "cfg": sampling.cfg,
        "tokens_per_s": median(&mut tokens_per_s),
        "first_row_ms": median(&mut first_row_ms),
        "image_ms": median(&mut image_ms),
        "peak_rss_mb": peak_rss_mb(),
        "prefill_ms": prefill * 1e3,
        // One step: a token of each CFG row through the transformer (the VQ's rows decoded in between).
        "decode_steps_per_s": median(&mut decode_steps_per_s),
        "device": format!("{:?}", model.device()),
        "model_gflops": prefill_flops(model, prompt, sampling.cfg) / prefill / 1e9,
        "peak_gflops": sgemm_gflops(model.device()),
        "threads": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
    }))
}

/// Write via a temporary file and a rename, so a failure never leaves a partial file at `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Generate {
            prompt,
            seed,
            out,
            sampling,
            model,
            policy,
        } => {
            let settings = sampling.settings(seed);
            settings.validate()?;
            policy.load()?.check(&prompt)?;
            let model = load_model(&model)?;
            generate(&model, &prompt, None, settings, &out)
        }
        Command::Edit {
            input,
            instruction,
            seed,
            out,
            sampling,
            model,
            policy,
        } => {
            let settings = sampling.settings(seed);
            settings.validate()?;
            policy.load()?.check(&instruction)?;
            let bytes = std::fs::read(&input)
                .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
            let model = load_model(&model)?;
            let rgb = tessera::image_input::load_rgb(&bytes, model.config.image_size as u32)
                .map_err(|e| format!("{}: {e}", input.display()))?;
            let context = pollster::block_on(model.encode_rgb(&rgb))?;
            generate(&model, &instruction, Some(&context), settings, &out)
        }
        Command::Verify {
            image,
            prompt,
            model,
        } => verify(&image, prompt.as_deref(), &model),
        Command::Policy { prompt, policy } => {
            policy.load()?.check(&prompt)?;
            println!("allowed");
            Ok(())
        }
        Command::Init { preset, seed, out } => {
            let mut config = preset.config();
            config.trained = false;
            let weights = Model::random_weights(&config, seed, &Device::flex());
            std::fs::create_dir_all(&out)?;
            write_atomically(
                &out.join("config.json"),
                serde_json::to_string_pretty(&config)?.as_bytes(),
            )?;
            write_atomically(&out.join("model.safetensors"), &weights)?;
            let sum = format!(
                "{}  model.safetensors\n",
                tessera::model::sha256_hex(&weights)
            );
            write_atomically(&out.join("model.sha256"), sum.as_bytes())?;
            println!("wrote {} (untrained, seed {seed})", out.display());
            Ok(())
        }
        Command::Inspect { model } => {
            let model = load_model(&model)?;
            println!("{}", serde_json::to_string_pretty(&model.config)?);
            println!(
                "parameters: {} ({:.2} M)",
                model.parameters,
                model.parameters as f64 / 1e6
            );
            println!(
                "weight bytes: {} ({:.1} MB)",
                model.weight_bytes,
                model.weight_bytes as f64 / 1e6
            );
            println!("sha256: {}", model.sha256);
            Ok(())
        }
        Command::Eval {
            seed,
            n,
            only,
            json,
            save,
            sampling,
            model,
        } => {
            let settings = sampling.settings(seed);
            settings.validate()?;
            if n == 0 {
                return Err("--n must be at least 1".into());
            }
            let model = load_model(&model)?;
            let mut saved = save
                .as_deref()
                .map(|dir| SavedSamples::create(dir, model.config.image_size))
                .transpose()?;
            let mut save_error = None;
            let bar = ProgressBar::new(n as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:32} {pos}/{len} samples  {elapsed} (eta {eta})")
                    .expect("a valid template"),
            );
            let report =
                tessera::eval::run(&model, seed, n, only.as_deref(), &settings, |outcome| {
                    bar.inc(1);
                    if let Some(saved) = &mut saved
                        && save_error.is_none()
                    {
                        save_error = saved.add(&outcome).err();
                    }
                })?;
            bar.finish_and_clear();
            if let Some(e) = save_error {
                return Err(e);
            }
            let text = if json {
                serde_json::to_string(&report)?
            } else {
                serde_json::to_string_pretty(&report)?
            };
            println!("{text}");
            Ok(())
        }
        Command::Bench {
            runs,
            prompt,
            sampling,
            model: model_arg,
            json,
            peer,
            device,
            preset,
        } => {
            if runs == 0 {
                return Err("--runs must be at least 1".into());
            }
            let device = device.device()?;
            let model = match preset {
                Some(preset) => Arc::new(random_model(preset.config(), &device)?),
                None => load_model_on(&model_arg, &device)?,
            };
            let mut report = bench(&model, &prompt, &sampling, runs)?;
            if let Some(python) = peer {
                let dir = model_arg.model.unwrap_or_else(bundled_model_dir);
                let peer = bench_peer(&python, &dir, &prompt, &sampling, runs)?;
                let ratio = report["tokens_per_s"].as_f64().unwrap_or(0.0)
                    / peer["tokens_per_s"].as_f64().unwrap_or(f64::NAN);
                report["peer"] = peer["peer"].clone();
                report["peer_tokens_per_s"] = peer["tokens_per_s"].clone();
                report["peer_first_row_ms"] = peer["first_row_ms"].clone();
                report["peer_image_ms"] = peer["image_ms"].clone();
                report["ratio"] = ratio.into();
            }
            if json {
                println!("{report}");
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Data {
            seed,
            n,
            out,
            format,
            mix,
            edit_layout,
        } => {
            let mix = mix.unwrap_or_default();
            match format {
                DataFormat::Png => tessera::dataset::write_samples(seed, mix, n, &out),
                DataFormat::Shard => tessera::dataset::write_shard(seed, mix, edit_layout, n, &out)
                    .map_err(Into::into),
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
