//! `tessera bench`: whole generations timed on the CPU or a GPU, optionally against the PyTorch reference in
//! the same run (the harness is `crate::bench`).

use std::path::PathBuf;
use std::sync::Arc;

use burn::tensor::Device;
use clap::{Args, ValueEnum};

use crate::args::{Failure, ModelArg, Preset, SamplingArgs, random_model};
use crate::bench::{bench, bench_peer};

/// Where `bench` runs the engine.
#[derive(Clone, Copy, ValueEnum)]
pub enum BenchDevice {
    /// burn's CPU backend (flex), as the CLI always runs.
    Cpu,
    /// burn's wgpu backend on the first adapter (Vulkan, Metal or DX12): a build with `--features gpu`.
    Gpu,
}

impl BenchDevice {
    fn device(self) -> Result<Device, Failure> {
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

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[arg(
        long,
        default_value = "a big red circle in the center on a white background"
    )]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub model: ModelArg,
    /// Print one compact JSON line (the default is indented JSON).
    #[arg(long)]
    pub json: bool,
    /// Also time the PyTorch reference on the same model and settings, in the same run, with this Python
    /// (one with the trainer's requirements, e.g. trainer/.venv/bin/python): adds `peer_*` and `ratio`.
    #[arg(long)]
    pub peer: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BenchDevice::Cpu)]
    pub device: BenchDevice,
    /// Time this architecture with random weights instead of a model folder (its images are noise). For
    /// janus-pro-1b-sized, write the folder once with `tessera init --dtype f16` and bench that instead.
    #[arg(long, value_enum, conflicts_with_all = ["model", "peer"])]
    pub preset: Option<Preset>,
    /// Janus models: prompt with these token ids (comma-separated, BOS first and `<begin_of_image>` last)
    /// instead of tokenizing the prompt.
    #[arg(long, value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
}

pub fn run(a: BenchArgs) -> Result<(), Failure> {
    if a.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let device = a.device.device()?;
    let model = match a.preset {
        Some(preset) => Arc::new(random_model(preset.config(), &device)?),
        None => a.model.load_on(&device)?,
    };
    let ids = a.prompt_ids.as_deref();
    let mut report = bench(&model, &a.prompt, ids, &a.sampling, a.runs)?;
    if let Some(python) = &a.peer {
        let settings = a.sampling.settings(0, &model.config);
        let peer = bench_peer(python, &a.model.dir(), &a.prompt, ids, &settings, a.runs)?;
        // A Janus peer times the transformer only: compare decode steps; a Tessera one whole images.
        let rate = if peer.get("decode_steps_per_s").is_some() {
            "decode_steps_per_s"
        } else {
            "tokens_per_s"
        };
        let ratio = report[rate].as_f64().unwrap_or(0.0) / peer[rate].as_f64().unwrap_or(f64::NAN);
        if let Some(fields) = peer.as_object() {
            for (key, value) in fields {
                let key = if key == "peer" {
                    key.clone()
                } else {
                    format!("peer_{key}")
                };
                report[key] = value.clone();
            }
        }
        report["ratio_of"] = rate.into();
        report["ratio"] = ratio.into();
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
