//! Weights loaded as their bytes arrive (`tessera::weights::stream`, what the browser's downloads feed): in
//! pieces of any size, from one file or from shards, the same model as a folder read from disk — bit for bit,
//! on the CPU and on wgpu — holding no more than one tensor's bytes at a time; and every bad byte stream
//! refused with the file named, a bad header before any of its tensors.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera::weights::stream::StreamedWeights;
use tessera::{Generation, Model, ModelConfig, Settings};

use crate::checkpoints::convert_to_shards;
use crate::cli::temp_dir;
use crate::common::root;
use crate::janus::{FIXTURE, prefill_logits};

/// A folder's weight files in the order its sha256 list gives them, with their expected sha256s.
fn files(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    let list = std::fs::read_to_string(dir.join("model.sha256")).unwrap();
    list.lines()
        .map(|line| {
            let (sum, name) = line.split_once("  ").unwrap();
            let name = if name.is_empty() {
                "model.safetensors"
            } else {
                name
            };
            let bytes = std::fs::read(dir.join(name)).unwrap();
            (name.to_string(), sum.to_string(), bytes)
        })
        .collect()
}

/// `files` pushed in pieces of random sizes (1 byte up to `max_piece`, so headers and tensors split
/// anywhere).
fn stream(
    weights: &mut StreamedWeights,
    files: &[(String, String, Vec<u8>)],
    max_piece: usize,
    seed: u64,
) -> tessera::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (name, sum, bytes) in files {
        weights.begin_file(name, Some(sum))?;
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.random_range(1..=max_piece).min(bytes.len() - at);
            weights.push(&bytes[at..at + n])?;
            at += n;
        }
        weights.end_file()?;
    }
    Ok(())
}

fn config(dir: &Path) -> ModelConfig {
    ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

fn streamed(dir: &Path, max_piece: usize, seed: u64, device: &Device) -> Model {
    let config = config(dir);
    let mut weights = Model::streamed_weights(&config, device).unwrap();
    stream(&mut weights, &files(dir), max_piece, seed).unwrap();
    let largest = largest_tensor_bytes(dir);
    assert!(
        weights.peak_partial_bytes() <= largest,
        "the stream held {} bytes of one tensor; the largest has {largest}",
        weights.peak_partial_bytes()
    );
    Model::from_streamed(config, weights).unwrap()
}

/// The largest tensor's stored bytes in the folder's files.
fn largest_tensor_bytes(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .flat_map(|(_, _, bytes)| {
            let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
            st.tensors()
                .into_iter()
                .map(|(_, t)| t.data().len() as u64)
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap()
}

/// The seeded tokens of a first picture.
fn tokens(model: Model) -> Vec<u32> {
    let settings = Settings {
        seed: 7,
        ..Settings::default()
    };
    let mut g = Generation::new(Arc::new(model), "a red circle", None, settings).unwrap();
    while pollster::block_on(g.step()).unwrap().is_some() {}
    g.tokens().to_vec()
}

fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut devices = vec![Device::flex()];
    #[cfg(feature = "gpu")]
    devices.push(crate::common::wgpu());
    devices
}

/// A Tessera model's one file in pieces of up to 1 byte, 1 KiB and 1 MiB: the same tokens as the folder
/// read from disk, on each backend.
#[test]
fn a_file_streamed_in_any_pieces_is_the_model_read_from_disk() {
    let dir = root().join("models/tessera-micro");
    for device in devices() {
        let expected = tokens(Model::load_dir(&dir, &device).unwrap());
        for (max_piece, seed) in [(1, 1), (1 << 10, 2), (1 << 20, 3)] {
            let model = streamed(&dir, max_piece, seed, &device);
            assert_eq!(
                model.sha256,
                files(&dir)[0].1,
                "the identity is the file's sha256"
            );
            assert_eq!(tokens(model), expected, "pieces of up to {max_piece} bytes");
        }
    }
}

/// janus-tiny converted to 1 MiB shards, streamed shard after shard: the folder's identity and exactly its
/// prefill logits, on each backend.
#[test]
fn shards_streamed_one_after_another_are_the_folder_read_from_disk() {
    let scratch = temp_dir("streamed-shards");
    let out = scratch.join("janus-tiny");
    convert_to_shards(&root().join(FIXTURE), &out);
    assert!(files(&out).len() >= 3, "several shards");
    for device in devices() {
        let from_disk = Model::load_dir(&out, &device).unwrap();
        let model = streamed(&out, 64 << 10, 4, &device);
        assert_eq!(model.sha256, from_disk.sha256);
        assert_eq!(model.parameters, from_disk.parameters);
        assert_eq!(prefill_logits(&model), prefill_logits(&from_disk));
    }
}

/// What a bad stream gives: the file named, each at the first byte that shows it.
#[test]
fn a_bad_stream_is_refused_with_the_file_named() {
    let dir = root().join("models/tessera-micro");
    let config = config(&dir);
    let [(name, sum, bytes)] = &files(&dir)[..] else {
        panic!("one file")
    };
    let device = Device::flex();
    let fresh = || Model::streamed_weights(&config, &device).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    // A header whose tensor has another shape is refused when the header is complete, before its data.
    let mut wrong = config.clone();
    wrong.transformer.mlp_hidden += 1;
    let mut weights = Model::streamed_weights(&wrong, &device).unwrap();
    weights.begin_file(name, Some(sum)).unwrap();
    weights.push(&bytes[..header - 1]).unwrap();
    let err = weights
        .push(&bytes[header - 1..header])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w_gate.weight") && err.contains("shape"),
        "{err}"
    );

    // A file that ends early names itself and what it lacks.
    let mut weights = fresh();
    weights.begin_file(name, Some(sum)).unwrap();
    weights.push(&bytes[..bytes.len() - 10]).unwrap();
    let err = weights.end_file().unwrap_err().to_string();
    assert!(
        err.contains(name.as_str()) && err.contains("truncated"),
        "{err}"
    );

    // A flipped byte is the sha256's to find, when the file ends.
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let mut weights = fresh();
    weights.begin_file(name, Some(sum)).unwrap();
    weights.push(&flipped).unwrap();
    let err = weights.end_file().unwrap_err().to_string();
    assert!(err.contains("sha256"), "{err}");

    // Bytes past what the header describes, and a header that claims more than the format allows.
    let mut weights = fresh();
    weights.begin_file(name, None).unwrap();
    let mut longer = bytes.clone();
    longer.push(0);
    let err = weights.push(&longer).unwrap_err().to_string();
    assert!(
        err.contains(name.as_str()) && err.contains("more bytes"),
        "{err}"
    );
    let mut weights = fresh();
    weights.begin_file(name, None).unwrap();
    let err = weights
        .push(&u64::MAX.to_le_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("header claims"), "{err}");

    // A file with a tensor missing loads no model, and says which.
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "norm.weight")
        .collect();
    let without = safetensors::serialize(kept, None).unwrap();
    let mut weights = fresh();
    weights.begin_file(name, None).unwrap();
    weights.push(&without).unwrap();
    weights.end_file().unwrap();
    let err = Model::from_streamed(config.clone(), weights)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("norm.weight") && err.contains("missing"),
        "{err}"
    );

    // Bytes before any file, and a model asked for before its file ended.
    let mut weights = fresh();
    assert!(weights.push(b"x").is_err());
    weights.begin_file(name, None).unwrap();
    weights.push(&bytes[..100]).unwrap();
    let err = Model::from_streamed(config.clone(), weights)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not ended"), "{err}");
}

/// Whatever the pieces, the stream holds at most one tensor's bytes (checked in `streamed` for every load
/// above); a piece that holds whole tensors is prepared from the piece itself and copies nothing.
#[test]
fn whole_tensors_in_one_piece_are_never_copied() {
    let dir = root().join("models/tessera-micro");
    let config = config(&dir);
    let mut weights = Model::streamed_weights(&config, &Device::flex()).unwrap();
    let [(name, sum, bytes)] = &files(&dir)[..] else {
        panic!("one file")
    };
    weights.begin_file(name, Some(sum)).unwrap();
    weights.push(bytes).unwrap();
    weights.end_file().unwrap();
    assert_eq!(weights.peak_partial_bytes(), 0);
    Model::from_streamed(config, weights).unwrap();
}
