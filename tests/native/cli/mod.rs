//! The `tessera` command line on good and bad input: every failure is a non-zero exit, one line on stderr
//! that says what to do, and no output file. `verify` has its own file.

mod verify;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use tessera::{Model, ModelConfig};

/// A scratch folder that is removed when it goes out of scope; it reads as the `Path` it holds.
pub(crate) struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

pub(crate) fn temp_dir(name: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("tessera-cli-{name}-"))
            .tempdir()
            .unwrap(),
    )
}

/// A folder with the tiny architecture and random weights, optionally spoiled by `edit`.
pub(crate) fn tiny_model(edit: impl FnOnce(&mut ModelConfig, &mut Vec<u8>)) -> Scratch {
    let dir = temp_dir("model");
    write_tiny_model(&dir, edit);
    dir
}

/// Writes the tiny architecture with random weights (seed 9), spoiled by `edit`, into the folder `dir`.
pub(crate) fn write_tiny_model(dir: &Path, edit: impl FnOnce(&mut ModelConfig, &mut Vec<u8>)) {
    let mut cfg = ModelConfig::tiny();
    let mut weights = Model::random_weights(&cfg, 9, &Device::flex());
    edit(&mut cfg, &mut weights);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
}

/// The C2PA reference tool's report on a file, stdout and stderr (`cargo xtask test` installs the tool and
/// names it in `C2PATOOL`).
pub(crate) fn c2patool(file: &Path) -> String {
    let tool = std::env::var("C2PATOOL").unwrap_or_else(|_| "c2patool".into());
    let out = Command::new(&tool)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (`cargo xtask test` installs c2patool)"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The chunks of a PNG: (type, whole chunk bytes including length and CRC).
pub(crate) fn png_chunks(png: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = png[at + 4..at + 8].try_into().unwrap();
        chunks.push((kind, &png[at..at + 12 + len]));
        at += 12 + len;
    }
    chunks
}

/// `signed` with its chunks of type `kind` taken from `donor` instead: a file whose C2PA manifest (the
/// `caBX` chunk) is kept while its pixels (`IDAT`) or XMP (`iTXt`) are changed.
pub(crate) fn with_chunks_from(signed: &[u8], donor: &[u8], kind: &[u8; 4]) -> Vec<u8> {
    let mut out = signed[..8].to_vec();
    let mut replaced = false;
    for (k, bytes) in png_chunks(signed) {
        if &k != kind {
            out.extend_from_slice(bytes);
        } else if !replaced {
            replaced = true;
            for (_, b) in png_chunks(donor).into_iter().filter(|(d, _)| d == kind) {
                out.extend_from_slice(b);
            }
        }
    }
    assert!(replaced, "no {} chunk", String::from_utf8_lossy(kind));
    out
}

pub(crate) struct Outcome {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The signing key folder of these tests (never the user's own key): kept in Cargo's scratch folder for
/// integration tests, so that every run signs with the same test key and nothing piles up in the system's
/// temporary folder.
pub(crate) fn key_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-cli-key")
}

pub(crate) fn tessera(args: &[&str]) -> Outcome {
    tessera_with_key(&key_dir(), args)
}

pub(crate) fn tessera_with_key(key: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_KEY_DIR", key)
        .output()
        .unwrap();
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a clean failure: non-zero exit, exactly one stderr line containing `needle`, no file at `out`.
pub(crate) fn fails_with(args: &[&str], out: &Path, needle: &str) {
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
    let dir = temp_dir("ok");
    let out = dir.join("a.png");
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
    let xmp = tessera::trust::provenance::read_xmp(&png).expect("XMP provenance");
    assert!(
        xmp.contains(tessera::trust::provenance::DIGITAL_SOURCE_TYPE)
            && xmp.contains("tessera:Seed=\"3\"")
    );
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!(img.width(), 128);

    // A reader no one here wrote: exiftool (Debian's libimage-exiftool-perl, installed by `cargo xtask test`).
    let exif = Command::new("exiftool")
        .args([
            "-j",
            "-XMP-iptcExt:DigitalSourceType",
            "-XMP:Seed",
            "-XMP-xmp:CreateDate",
        ])
        .arg(&out)
        .output()
        .expect("exiftool is installed (cargo xtask test installs libimage-exiftool-perl)");
    let json = String::from_utf8_lossy(&exif.stdout);
    assert!(
        json.contains(&format!(
            "\"DigitalSourceType\": \"{}\"",
            tessera::trust::provenance::DIGITAL_SOURCE_TYPE
        )) && json.contains("\"Seed\": 3")
            && json.contains("\"CreateDate\": \"20"),
        "{json}"
    );

    // The C2PA reference tool reads the signed manifest: valid (signature and hashes), untrusted (a local
    // key), created by a trained model.
    let report = c2patool(&out);
    assert!(
        report.contains("\"validation_state\": \"Valid\"")
            && report.contains("signingCredential.untrusted")
            && report.contains("c2pa.created")
            && report.contains(tessera::trust::provenance::DIGITAL_SOURCE_TYPE)
            && report.contains("\"seed\": 3"),
        "{report}"
    );

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
        tessera::trust::provenance::read_xmp(&std::fs::read(&edited).unwrap())
            .unwrap()
            .contains("SourceTokensSha256")
    );
}

#[test]
fn bad_prompts_and_settings_fail_cleanly() {
    let model = tiny_model(|_, _| {});
    let m = model.to_str().unwrap();
    let dir = temp_dir("bad");
    let out = dir.join("x.png");
    let o = out.to_str().unwrap();
    let long = "a".repeat(2000);
    let cases: [(&[&str], &str); 8] = [
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
            &["generate", "x", "-o", o, "--model", m, "--guidance", "-1"],
            "--guidance -1 is invalid",
        ),
        (
            // The guidance scale's older name is an alias.
            &["generate", "x", "-o", o, "--model", m, "--cfg", "-2"],
            "--guidance -2 is invalid",
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
    let dir = temp_dir("weights");
    let out = dir.join("x.png");
    let o = out.to_str().unwrap();
    let truncated = tiny_model(|_, w| w.truncate(w.len() / 3));
    let garbage = tiny_model(|_, w| *w = b"{\"this is\": not safetensors".to_vec());
    let mismatch = tiny_model(|cfg, _| cfg.transformer.mlp_hidden = 96);
    let cases = [
        (truncated, "model.safetensors: it"),
        (garbage, "model.safetensors: it"),
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
    let expected = tessera::sha256_hex(&std::fs::read(model.join("model.safetensors")).unwrap());
    assert!(
        text.contains(&format!("sha256: {expected}")) && text.contains("parameters: "),
        "{text}"
    );
}

#[test]
fn the_prompt_policy_refuses_before_any_work_and_can_be_replaced() {
    let model = tiny_model(|_, _| {});
    let dir = temp_dir("policy");
    let out = dir.join("x.png");
    let (out_s, model_s) = (out.to_str().unwrap(), model.to_str().unwrap());
    // Refused with the rule and the reason; an evasion (full-width, spaced out) is refused the same way.
    for prompt in ["a beheading", "a ｂｅ ｈｅａｄｉｎｇ", "一张血腥的图片"] {
        fails_with(
            &["generate", prompt, "-o", out_s, "--model", model_s],
            &out,
            "refused by the prompt policy (rule `gore`",
        );
    }
    let input = dir.join("in.png");
    std::fs::write(&input, "not even read: the instruction is refused first").unwrap();
    let edit = [
        "edit",
        input.to_str().unwrap(),
        "make it n u d e",
        "-o",
        out_s,
    ];
    fails_with(&edit, &out, "rule `sexual`");

    // Another policy: what it names is refused, what it does not is allowed.
    let custom = dir.join("policy.json");
    std::fs::write(
        &custom,
        r#"{"version":1,"rules":[{"id":"no-stars","category":"stars","reason":"no stars today","all":[["star*","星"]]}]}"#,
    )
    .unwrap();
    let custom_s = custom.to_str().unwrap();
    let star = ["generate", "a blue star", "-o", out_s, "--policy", custom_s];
    fails_with(
        &star,
        &out,
        "rule `no-stars`, stars, matched \"star*\"): no stars today",
    );
    let r = tessera(&["policy", "a beheading", "--policy", custom_s]);
    assert!(r.ok, "{}", r.stderr);
    let r = tessera(&["policy", "a red circle"]);
    assert!(r.ok, "{}", r.stderr);
    fails_with(&["policy", "a swastika"], &out, "rule `hate-symbols`");

    // A broken policy file is an error, never a silent fall-back to no policy.
    std::fs::write(&custom, r#"{"version":1,"rules":[{"id":"x"}]}"#).unwrap();
    fails_with(
        &["policy", "a red circle", "--policy", custom_s],
        &out,
        "the prompt policy is invalid",
    );
}

#[test]
fn eval_scores_every_split_and_its_judge_reads_ground_truth_perfectly() {
    let model = tiny_model(|_, _| {});
    let m = model.to_str().unwrap();
    let dir = temp_dir("eval");
    let saved = dir.join("samples");
    let s = saved.to_str().unwrap();
    let r = tessera(&[
        "eval",
        "--n",
        "8",
        "--seed",
        "3",
        "--guidance",
        "1",
        "--json",
        "--model",
        m,
        "--save",
        s,
    ]);
    assert!(r.ok, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["n"], 8);
    assert_eq!(report["detector_gt"], 1.0, "{report}");
    for key in [
        "single",
        "multi",
        "grid",
        "text",
        "text_letters",
        "edit_correct",
        "edit_preserved",
        "zh",
        "zh_en",
        "heldout",
        "paraphrase_raw",
        "paraphrase_interpreted",
        "paraphrase_read",
        "background",
        "extra_objects",
        "vq_text",
    ] {
        let v = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {report}"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // One sample of each of the eight splits: one edit, of a known kind.
    let ops = report["edit_ops"].as_object().unwrap();
    assert_eq!(ops.len(), 1, "{report}");
    let kinds = [
        "add",
        "remove",
        "recolor",
        "move",
        "background",
        "sign_text",
    ];
    assert!(ops.keys().all(|k| kinds.contains(&k.as_str())), "{report}");
    fails_with(
        &["eval", "--n", "0"],
        &dir.join("never-written"),
        "--n must be at least 1",
    );
    // One split: the samples a full run of 8·n holds at that split's places (the same edit as above first).
    let r = tessera(&[
        "eval",
        "--n",
        "2",
        "--seed",
        "3",
        "--guidance",
        "1",
        "--json",
        "--model",
        m,
        "--only",
        "edit",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let only: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((&only["n"], &only["only"]), (&2.into(), &"edit".into()));
    assert!(
        only["single"].is_null() && only["edit_correct"].is_f64(),
        "{only}"
    );
    let ops: usize = only["edit_ops"].as_object().unwrap().len();
    assert!((1..=2).contains(&ops), "{only}");
    fails_with(
        &["eval", "--n", "1", "--only", "edits"],
        &dir.join("never-written"),
        "use one of single, multi",
    );
}

#[test]
fn data_takes_a_training_mix_and_refuses_a_bad_one() {
    let dir = temp_dir("data");
    let out = dir.join("signs");
    let o = out.to_str().unwrap();
    let mix = "single=0,multi=0,grid=0,edit=0";
    let r = tessera(&[
        "data", "--format", "shard", "--n", "6", "--mix", mix, "--out", o,
    ]);
    assert!(r.ok, "{}", r.stderr);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["mix"]["sign"], 15);
    assert_eq!(meta["mix"]["edit"], 0);
    let examples = std::fs::read_to_string(out.join("examples.jsonl")).unwrap();
    assert_eq!(examples.lines().count(), 6);
    for line in examples.lines() {
        let example: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(example["category"], "sign", "{line}");
        // The sign's lettering box: a few glyphs high, inside the 128-pixel image.
        let b: Vec<usize> = serde_json::from_value(example["lettering"].clone()).unwrap();
        assert!(b[0] < b[2] && b[2] <= 128 && b[3] - b[1] == 21, "{line}");
    }

    // Text-first edits: the instruction, then the image slot (-1), then </img> <gen> <img>.
    let edits = dir.join("edits");
    let mix = "single=0,multi=0,grid=0,sign=0";
    let e = edits.to_str().unwrap();
    let layout = ["--edit-layout", "text-first"];
    let r = tessera(
        &[
            &[
                "data", "--format", "shard", "--n", "4", "--mix", mix, "--out", e,
            ][..],
            &layout,
        ]
        .concat(),
    );
    assert!(r.ok, "{}", r.stderr);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(edits.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["edit_layout"], "text-first");
    for line in std::fs::read_to_string(edits.join("examples.jsonl"))
        .unwrap()
        .lines()
    {
        let example: serde_json::Value = serde_json::from_str(line).unwrap();
        let cond: Vec<i64> = serde_json::from_value(example["cond"].clone()).unwrap();
        let text = example["text"].as_str().unwrap().len();
        assert_eq!(cond[..2], [257, 258], "<bos> <user> first: {line}");
        assert_eq!(cond[2 + text..], [260, -1, 261, 259, 260], "{line}");
    }

    let bad = dir.join("bad");
    let r = tessera(&["data", "--mix", "signs=3", "--out", bad.to_str().unwrap()]);
    assert!(
        !r.ok && r.stderr.contains("no category `signs`"),
        "{}",
        r.stderr
    );
    assert!(!bad.exists());
}

#[test]
fn interpret_reads_a_message_and_generate_prompts_the_model_with_it() {
    let model = tiny_model(|_, _| {});
    let m = model.to_str().unwrap();
    let dir = temp_dir("interpret");
    let json = |r: &Outcome| -> serde_json::Value {
        assert!(r.ok, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let cat = json(&tessera(&[
        "interpret",
        "a photo of a cat wearing a detective hat",
    ]));
    assert_eq!(cat["kind"], "new");
    assert_eq!(
        cat["unknown"],
        serde_json::json!(["cat", "detective", "hat"])
    );
    assert!(
        cat["note"].as_str().unwrap().contains("It draws circles"),
        "{cat}"
    );
    let sign = json(&tessera(&[
        "interpret",
        "一块黄色的牌子，上面写着HELLO，蓝色背景",
    ]));
    assert_eq!(
        sign["canonical"],
        "a yellow sign that says HELLO in the middle on a blue background"
    );

    // The model reads the interpretation; the provenance hashes the prompt as typed and the text it read.
    let out = dir.join("circle.png");
    let o = out.to_str().unwrap();
    let r = tessera(&["generate", "a red circle", "-o", o, "--model", m]);
    assert!(
        r.ok && r
            .stderr
            .contains("interpreted as: a big red circle in the center on a white background"),
        "{}",
        r.stderr
    );
    let xmp = tessera::trust::provenance::read_xmp(&std::fs::read(&out).unwrap()).unwrap();
    let claims = tessera::Provenance::from_xmp(&xmp).unwrap();
    let sha = |t: &str| claims.text_sha256(t);
    assert!(xmp.contains(&format!("tessera:PromptSha256=\"{}\"", sha("a red circle"))));
    assert!(xmp.contains(&format!(
        "tessera:ModelTextSha256=\"{}\"",
        sha("a big red circle in the center on a white background")
    )));
    // Regenerated from the prompt as typed: the verifier reads it the same way.
    let r = tessera(&["verify", o, "--prompt", "a red circle", "--model", m]);
    assert!(
        r.ok && r.stdout.contains("VERIFIED"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    // --raw: the text as typed, and nothing else recorded.
    let raw = dir.join("raw.png");
    let r = tessera(&[
        "generate",
        "a red circle",
        "--raw",
        "-o",
        raw.to_str().unwrap(),
        "--model",
        m,
    ]);
    assert!(r.ok && !r.stderr.contains("interpreted as"), "{}", r.stderr);
    let xmp = tessera::trust::provenance::read_xmp(&std::fs::read(&raw).unwrap()).unwrap();
    assert!(!xmp.contains("ModelTextSha256"), "{xmp}");

    // After a picture: an edit of it; a picture without provenance is refused.
    let edit = json(&tessera(&[
        "interpret",
        "make the circle blue",
        "--after",
        o,
    ]));
    assert_eq!(
        (&edit["kind"], &edit["edit"]["op"]),
        (&"edit".into(), &"recolor".into())
    );
    assert_eq!(edit["canonical"], "make the circle blue");
    let new = json(&tessera(&[
        "interpret",
        "a green star on black",
        "--after",
        o,
    ]));
    assert_eq!(new["kind"], "new");
    let forced = json(&tessera(&[
        "interpret",
        "make the circle blue",
        "--after",
        o,
        "--kind",
        "new",
    ]));
    assert_eq!(forced["kind"], "new");
    let plain = dir.join("plain.png");
    image::RgbImage::new(8, 8).save(&plain).unwrap();
    let never = dir.join("never-written");
    fails_with(
        &[
            "interpret",
            "make it blue",
            "--after",
            plain.to_str().unwrap(),
        ],
        &never,
        "carries no Tessera provenance",
    );
    fails_with(&["interpret", "  "], &never, "the prompt is empty");
    fails_with(&["interpret", "a ｎｕｄｅ figure"], &never, "rule `sexual`");
}
