//! The benchmark harness of `tessera bench`: whole generations timed (medians after a warm-up), the
//! machine's measured matmul rate, the prefill's matmul work, and the PyTorch reference timed on the same
//! model and settings in the same run (`trainer/bench_peer.py`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use tessera::{Generation, Model, Settings};

use crate::args::{Failure, SamplingArgs};

/// Floating-point operations of a prefill of `t` positions (multiply-adds count 2): every matmul of every
/// layer at every prompt position, causal attention, and the image head at the last position, times the
/// batch (2 with guidance). Norms, rotary and activations are left out (a few per cent).
fn prefill_flops(model: &Model, t: usize, guidance: f32) -> f64 {
    let c = &model.config.transformer;
    let t = t as f64;
    let (d, h, k) = (c.dim as f64, c.mlp_hidden as f64, c.codebook_size as f64);
    let kv = (c.kv_heads() * c.head_dim()) as f64; // keys' and values' width (below d under GQA)
    let per_position = c.n_layers as f64 * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * h) * 2.0;
    // Scores and weighted values: each position attends to itself and the positions before it.
    let attention = c.n_layers as f64 * 2.0 * 2.0 * d * t * (t + 1.0) / 2.0;
    let head = 2.0 * (d * d + d * k);
    let batch = if guidance == 1.0 { 1.0 } else { 2.0 };
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
pub fn bench_peer(
    python: &Path,
    model_dir: &Path,
    prompt: &str,
    prompt_ids: Option<&[u32]>,
    sampling: &Settings,
    runs: usize,
) -> Result<serde_json::Value, Failure> {
    if sampling.top_k.is_some() {
        return Err("--peer times top-p sampling only: leave out --top-k".into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../trainer/bench_peer.py");
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut command = std::process::Command::new(python);
    command.arg(&script).arg(model_dir);
    if let Some(ids) = prompt_ids {
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        command.args(["--prompt-ids", &ids.join(",")]);
    }
    let out = command
        .args([
            "--runs",
            &runs.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args([
            "--prompt",
            prompt,
            "--guidance",
            &sampling.guidance.to_string(),
        ])
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

pub fn bench(
    model: &Arc<Model>,
    prompt: &str,
    prompt_ids: Option<&[u32]>,
    sampling: &SamplingArgs,
    runs: usize,
) -> Result<serde_json::Value, Failure> {
    let (mut tokens_per_s, mut first_row_ms, mut image_ms) = (vec![], vec![], vec![]);
    let (mut prefill_s, mut decode_steps_per_s) = (vec![], vec![]);
    let mut prompt_len = 0;
    for run in 0..=runs {
        let settings = sampling.settings(run as u64, &model.config);
        let mut g = match prompt_ids {
            Some(ids) => Generation::from_prompt_ids(model.clone(), prompt, ids, settings)?,
            None => Generation::new(model.clone(), prompt, None, settings)?,
        };
        prompt_len = g.prompt_len();
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
    let guidance = sampling.settings(0, &model.config).guidance;
    Ok(serde_json::json!({
        "model_id": model.config.model_id,
        "runs": runs,
        "guidance": guidance,
        "tokens_per_s": median(&mut tokens_per_s),
        "first_row_ms": median(&mut first_row_ms),
        "image_ms": median(&mut image_ms),
        "peak_rss_mb": peak_rss_mb(),
        "prefill_ms": prefill * 1e3,
        // One step: a token of each CFG row through the transformer (the VQ's rows decoded in between).
        "decode_steps_per_s": median(&mut decode_steps_per_s),
        "device": format!("{:?}", model.device()),
        "model_gflops": prefill_flops(model, prompt_len, guidance) / prefill / 1e9,
        "peak_gflops": sgemm_gflops(model.device()),
        "threads": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
    }))
}
