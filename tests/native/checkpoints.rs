//! Model folders in the layouts people download, loaded through the checked path: `torch.save` pickles of
//! janus-tiny (`tests/fixtures/janus-tiny-pickle`, float32 and bfloat16), the sharded folder `tessera
//! convert` writes, and what truncated or corrupt files give (the file named, nothing written).

use std::path::Path;

use burn::tensor::Device;
use tessera::Model;
use tessera::weights::{TensorMap, to_safetensors};

use crate::cli::{Scratch, temp_dir, tessera};
use crate::common::{root, tensors};
use crate::janus::{FIXTURE, prefill_logits, prefill_matches};

/// A Janus folder: janus-tiny's config.json and `weights` under `file`.
fn folder(name: &str, file: &str, weights: &[u8]) -> Scratch {
    let dir = temp_dir(name);
    let config = std::fs::read(root().join(FIXTURE).join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join(file), weights).unwrap();
    dir
}

fn pickle(dtype: &str) -> Vec<u8> {
    std::fs::read(root().join(format!(
        "tests/fixtures/janus-tiny-pickle/pytorch_model_{dtype}.bin"
    )))
    .unwrap()
}

fn load(dir: &Path) -> Model {
    Model::load_dir(dir, &Device::flex()).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn load_error(dir: &Path) -> String {
    match Model::load_dir(dir, &Device::flex()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// The float32 pickle is the fixture's own values: the reference's prefill within the family tolerance.
#[test]
fn a_pytorch_pickle_loads_and_matches_the_reference() {
    let dir = folder("pickle-f32", "pytorch_model.bin", &pickle("f32"));
    let model = load(&dir);
    prefill_matches(&model, 1e-4);
    let direct = load(&root().join(FIXTURE));
    assert_eq!(model.parameters, direct.parameters);
}

/// The bfloat16 pickle (Janus-Pro-1B's released dtype) computes exactly what its values give as float32
/// (widening bf16 is exact, and the host keeps it as bf16), and stays near the float32 reference (bf16
/// keeps 8 bits of mantissa: ~0.4% per weight).
#[test]
fn a_bf16_pickle_computes_what_its_values_give_in_f32() {
    let dir = folder("pickle-bf16", "pytorch_model.bin", &pickle("bf16"));
    let from_pickle = prefill_logits(&load(&dir));

    let original = std::fs::read(root().join(FIXTURE).join("model.safetensors")).unwrap();
    let rounded: TensorMap = tensors(&original)
        .into_iter()
        .map(|(name, (shape, values))| {
            let values = values
                .iter()
                .map(|&v| half::bf16::from_f32(v as f32).to_f32())
                .collect();
            (name, (shape, values))
        })
        .collect();
    let dir = folder(
        "bf16-as-f32",
        "model.safetensors",
        &to_safetensors(&rounded),
    );
    let from_f32 = prefill_logits(&load(&dir));
    assert_eq!(from_pickle, from_f32);
    prefill_matches(&load(&dir), 0.5);
}

/// `tessera convert src out --shard-mib 1`: a folder of 1 MiB shards, their index and sha256 list.
pub(crate) fn convert_to_shards(src: &Path, out: &Path) {
    let run = tessera(&[
        "convert",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
        "--shard-mib",
        "1",
    ]);
    assert!(run.ok, "{}", run.stderr);
}

/// `tessera convert` of the pickle with 1 MiB shards: several shards, their index and sha256 list, only
/// the tensors the image half reads, and the same model (bit for bit) when loaded; `--dtype f16` loads too.
#[test]
fn convert_writes_shards_that_load_as_the_same_model() {
    let src = folder("convert-src", "pytorch_model.bin", &pickle("f32"));
    let scratch = temp_dir("convert-out");
    let out = scratch.join("janus-tiny");
    convert_to_shards(&src, &out);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let map = index["weight_map"].as_object().unwrap();
    let shards: std::collections::BTreeSet<&str> =
        map.values().map(|v| v.as_str().unwrap()).collect();
    assert!(shards.len() >= 3, "{shards:?}");
    assert!(
        !map.keys()
            .any(|k| k.starts_with("language_model.lm_head") || k.contains("codebook_used")),
        "tensors the image half never reads were written"
    );
    let list = std::fs::read_to_string(out.join("model.sha256")).unwrap();
    assert_eq!(list.lines().count(), shards.len(), "{list}");
    let converted = load(&out);
    let original = load(&src);
    assert_eq!(prefill_logits(&converted), prefill_logits(&original));
    assert_eq!(converted.parameters, original.parameters);

    let f16 = scratch.join("janus-tiny-f16");
    let run = tessera(&[
        "convert",
        out.to_str().unwrap(),
        f16.to_str().unwrap(),
        "--dtype",
        "f16",
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        f16.join("model.safetensors").exists(),
        "one shard: the plain folder"
    );
    prefill_matches(&load(&f16), 0.05);

    // A shard that is not what the list says is refused by name.
    let first = shards.iter().next().unwrap();
    let mut bytes = std::fs::read(out.join(first)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(out.join(first), bytes).unwrap();
    let err = load_error(&out);
    assert!(err.contains("sha256"), "{err}");
}

/// A truncated pickle or shard is named; converting one leaves nothing at the destination.
#[test]
fn truncated_files_are_named_and_nothing_is_written() {
    let whole = pickle("f32");
    let src = folder(
        "truncated-pickle",
        "pytorch_model.bin",
        &whole[..whole.len() / 2],
    );
    let err = load_error(&src);
    assert!(err.contains("pytorch_model.bin"), "{err}");

    let out = src.join("converted");
    let run = tessera(&["convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(
        !run.ok && run.stderr.contains("pytorch_model.bin"),
        "{}",
        run.stderr
    );
    assert!(!out.exists() && !src.join("converted.partial").exists());

    let weights = std::fs::read(root().join(FIXTURE).join("model.safetensors")).unwrap();
    let cut = folder(
        "truncated-shard",
        "model.safetensors",
        &weights[..weights.len() - 100],
    );
    let err = load_error(&cut);
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

/// A conversion that fails part-way (a value f16 cannot hold, in the last tensor written, after earlier
/// shards are on disk) names the tensor and leaves neither the folder nor its staging copy.
#[test]
fn a_conversion_failing_part_way_leaves_nothing() {
    let original = std::fs::read(root().join(FIXTURE).join("model.safetensors")).unwrap();
    let mut weights: TensorMap = tensors(&original)
        .into_iter()
        .map(|(name, (shape, values))| (name, (shape, values.iter().map(|&v| v as f32).collect())))
        .collect();
    let last = "language_model.model.norm.weight";
    weights.get_mut(last).unwrap().1[0] = 1e6;
    let src = folder(
        "overflow-src",
        "model.safetensors",
        &to_safetensors(&weights),
    );
    let out = src.join("converted");
    let run = tessera(&[
        "convert",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
        "--dtype",
        "f16",
        "--shard-mib",
        "1",
    ]);
    assert!(!run.ok && run.stderr.contains(last), "{}", run.stderr);
    assert!(!out.exists() && !src.join("converted.partial").exists());
}
