//! The same greedy generation on burn's wgpu backend (Vulkan; Mesa lavapipe on machines without a GPU)
//! and on the CPU backend: tokens must agree exactly and pixels to within rounding. Built with
//! `--features gpu`, which `cargo xtask test` always enables.

#![cfg(feature = "gpu")]

use std::sync::Arc;

use crate::common::{cases, ints, root};
use burn::tensor::Device;
use tessera::{Generation, Model, Settings};

const PROMPT: &str = "a big red circle in the center on a white background";

fn greedy(model: Model) -> (Vec<u32>, Vec<u8>) {
    let mut g = Generation::new(
        Arc::new(model),
        PROMPT,
        None,
        Settings {
            guidance: 3.0,
            ..Settings::greedy()
        },
    )
    .unwrap();
    while pollster::block_on(g.step()).unwrap().is_some() {}
    (g.tokens().to_vec(), g.image().to_vec())
}

#[test]
fn wgpu_and_cpu_agree_on_the_tiny_model() {
    let dir = root().join("models/tessera-tiny");
    let wgpu = crate::common::wgpu();
    let (cpu_tokens, cpu_image) = greedy(Model::load_dir(&dir, &Device::flex()).unwrap());
    let (gpu_tokens, gpu_image) = greedy(Model::load_dir(&dir, &wgpu).unwrap());
    assert_eq!(
        cpu_tokens,
        ints(&cases("tests/fixtures/parity-tiny/cases.safetensors")["greedy_tokens"].1),
        "CPU vs the reference"
    );
    assert_eq!(gpu_tokens, cpu_tokens, "wgpu vs CPU tokens");
    let worst = cpu_image
        .iter()
        .zip(&gpu_image)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 2, "wgpu and CPU pixels differ by {worst} levels");
}
