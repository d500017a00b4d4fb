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
    /// Time this architecture with random weights instead of a model folder (its images are noise).
    #[arg(long, value_enum, conflicts_with_all = ["model", "peer"])]
    pub preset: Option<Preset>,
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
    let mut report = bench(&model, &a.prompt, &a.sampling, a.runs)?;
    if let Some(python) = &a.peer {
        let settings = a.sampling.settings(0, &model.config);
        let peer = bench_peer(python, &a.model.dir(), &a.prompt, &settings, a.runs)?;
        let ratio = report["tokens_per_s"].as_f64().unwrap_or(0.0)
            / peer["tokens_per_s"].as_f64().unwrap_or(f64::NAN);
        report["peer"] = peer["peer"].clone();
        report["peer_tokens_per_s"] = peer["tokens_per_s"].clone();
        report["peer_first_row_ms"] = peer["first_row_ms"].clone();
        report["peer_image_ms"] = peer["image_ms"].clone();
        report["ratio"] = ratio.into();
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
