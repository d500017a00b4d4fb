//! The `tessera` command line on good and bad input: every failure is a non-zero exit, one line on stderr
//! that says what to do, and no output file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::Device;
use tessera::{Model, ModelConfig};

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tessera-cli-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A folder with the tiny architecture and random weights, optionally spoiled by `edit`.
fn tiny_model(edit: impl FnOnce(&mut ModelConfig, &mut Vec<u8>)) -> PathBuf {
    let dir = temp_dir("model");
    let mut cfg = ModelConfig::tiny();
    let mut weights = Model::random_weights(&cfg, 9, &Device::flex());
    edit(&mut cfg, &mut weights);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    dir
}

struct Outcome {
    ok: bool,
    stderr: String,
}

fn tessera(args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .unwrap();
    Outcome {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a clean failure: non-zero exit, exactly one stderr line containing `needle`, no file at `out`.
fn fails_with(args: &[&str], out: &Path, needle: &str) {
    let r = tessera(args);
    assert!(!r.ok, "{args:?} succeeded");
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning: model"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line on stderr for {args:?}, got: {}",
        r.stderr
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {}",
        lines[0]
    );
    assert!(!out.exists(), "{args:?} left {}", out.display());
    assert!(
        !out.with_extension("partial").exists(),
        "{args:?} left a partial file"
    );
}

#[test]
fn generates_a_png_that_states_its_provenance() {
    let model = tiny_model(|_, _| {});
    let out = temp_dir("ok").join("a.png");
    let r = tessera(&[
        "generate",
        "a red circle",
        "-o",
        out.to_str().unwrap(),
        "--seed",
        "3",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains("UNTRAINED"),
        "random weights are labelled: {}",
        r.stderr
    );
    let png = std::fs::read(&out).unwrap();
    let xmp = tessera::provenance::read_xmp(&png).expect("XMP provenance");
    assert!(
        xmp.contains(tessera::provenance::DIGITAL_SOURCE_TYPE)
            && xmp.contains("tessera:Seed=\"3\"")
    );
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!(img.width(), 128);

    // Editing that image works too, and records what it edited.
    let edited = out.with_file_name("b.png");
    let r = tessera(&[
        "edit",
        out.to_str().unwrap(),
        "make it blue",
        "-o",
        edited.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        tessera::provenance::read_xmp(&std::fs::read(&edited).unwrap())
            .unwrap()
            .contains("SourceTokensSha256")
    );
}

#[test]
fn bad_prompts_and_settings_fail_cleanly() {
    let model = tiny_model(|_, _| {});
    let m = model.to_str().unwrap();
    let out = temp_dir("bad").join("x.png");
    let o = out.to_str().unwrap();
    let long = "a".repeat(2000);
    let cases: [(&[&str], &str); 7] = [
        (
            &["generate", "", "-o", o, "--model", m],
            "the prompt is empty",
        ),
        (
            &["generate", &long, "-o", o, "--model", m],
            "2000 bytes long; this model reads at most",
        ),
        (
            &["generate", "x", "-o", o, "--model", m, "--top-p", "0"],
            "--top-p 0 is invalid",
        ),
        (
            &[
                "generate",
                "x",
                "-o",
                o,
                "--model",
                m,
                "--temperature",
                "-1",
            ],
            "--temperature -1 is invalid",
        ),
        (
            &["generate", "x", "-o", o, "--model", m, "--top-k", "0"],
            "--top-k 0 is invalid",
        ),
        (
            &["generate", "x", "-o", o, "--model", m, "--cfg", "-1"],
            "--cfg -1 is invalid",
        ),
        (
            &["generate", "x", "-o", o, "--model", "/nonexistent/model"],
            "cannot read /nonexistent/model/config.json",
        ),
    ];
    for (args, needle) in cases {
        fails_with(args, &out, needle);
    }
}

#[test]
fn bad_weights_fail_cleanly_and_name_the_problem() {
    let out = temp_dir("weights").join("x.png");
    let o = out.to_str().unwrap();
    let truncated = tiny_model(|_, w| w.truncate(w.len() / 3));
    let garbage = tiny_model(|_, w| *w = b"{\"this is\": not safetensors".to_vec());
    let mismatch = tiny_model(|cfg, _| cfg.transformer.mlp_hidden = 96);
    let cases = [
        (truncated, "not valid safetensors"),
        (garbage, "not valid safetensors"),
        (
            mismatch,
            "`layers.0.mlp.w_gate.weight` has shape [128, 64], the architecture needs [96, 64]",
        ),
    ];
    for (dir, needle) in cases {
        fails_with(
            &[
                "generate",
                "a red circle",
                "-o",
                o,
                "--model",
                dir.to_str().unwrap(),
            ],
            &out,
            needle,
        );
    }
    let bad_sum = tiny_model(|_, _| {});
    std::fs::write(bad_sum.join("model.sha256"), "00ff  model.safetensors\n").unwrap();
    fails_with(
        &[
            "generate",
            "a red circle",
            "-o",
            o,
            "--model",
            bad_sum.to_str().unwrap(),
        ],
        &out,
        "sha256",
    );
}

#[test]
fn editing_something_that_is_not_an_image_fails_cleanly() {
    let model = tiny_model(|_, _| {});
    let dir = temp_dir("edit");
    let text = dir.join("notes.png");
    std::fs::write(&text, "these are not pixels").unwrap();
    let out = dir.join("x.png");
    let args = [
        "edit",
        text.to_str().unwrap(),
        "make it green",
        "-o",
        out.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    fails_with(&args, &out, "not an image");
    let missing = [
        "edit",
        "/nonexistent.png",
        "make it green",
        "-o",
        out.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    fails_with(&missing, &out, "cannot read /nonexistent.png");
}

#[test]
fn inspect_reports_size_and_hash() {
    let model = tiny_model(|_, _| {});
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["inspect", "--model", model.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    let expected =
        tessera::model::sha256_hex(&std::fs::read(model.join("model.safetensors")).unwrap());
    assert!(
        text.contains(&format!("sha256: {expected}")) && text.contains("parameters: "),
        "{text}"
    );
}
