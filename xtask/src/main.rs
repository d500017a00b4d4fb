//! Project tasks, run with `cargo xtask <task>`. Each installs what it needs on a fresh Debian machine
//! (rustup target, Debian packages) and says what it is doing.
//!
//! - `test`: format and lint checks, every test (including the wgpu backend on Vulkan lavapipe and the
//!   parity test against the PyTorch reference's stored outputs), and a wasm32 build of the library.
//! - `demo`: build the release CLI and draw the example prompts with the bundled model into `out/`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Run a command in the repository root, echoing it; fail the task when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("\n$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Debian packages a task needs, installed with apt when missing (the project's machines are Debian).
fn ensure_debian_packages(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !succeeds("dpkg", &["-s", p]))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = !succeeds("sh", &["-c", "[ \"$(id -u)\" = 0 ]"]);
    let apt = |args: &[&str]| -> Result<(), String> {
        let mut all: Vec<&str> = args.to_vec();
        if sudo {
            all.insert(0, "apt-get");
            run("sudo", &all)
        } else {
            run("apt-get", &all)
        }
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    apt(&install)
}

fn ensure_rust_target(target: &str) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    run("rustup", &["target", "add", target])
}

fn test() -> Result<(), String> {
    ensure_rust_target("wasm32-unknown-unknown")?;
    // Mesa's lavapipe gives wgpu a Vulkan device on machines without a GPU.
    ensure_debian_packages(&["mesa-vulkan-drivers", "libvulkan1"])?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            "tessera/gpu",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(
        "cargo",
        &["test", "--workspace", "--features", "tessera/gpu"],
    )?;
    // The engine must stay wasm-clean: no threads, files or Instant on the browser path.
    run(
        "cargo",
        &[
            "clippy",
            "-p",
            "tessera",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run(
        "cargo",
        &[
            "build",
            "-p",
            "tessera",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
        ],
    )?;
    eprintln!("\nall checks passed");
    Ok(())
}

fn demo() -> Result<(), String> {
    run("cargo", &["build", "--release", "-p", "tessera"])?;
    let out = root().join("out");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let prompts = [
        (
            "circle",
            "a big red circle in the center on a white background",
        ),
        (
            "star-heart",
            "a small blue star in the top left corner and a big yellow heart at the bottom right, black background",
        ),
        (
            "sign",
            "a yellow sign that says HELLO in the middle, blue background",
        ),
        (
            "zh",
            "白色背景上，左上角有一个大的红色圆形，右下角有一个小的蓝色星形",
        ),
    ];
    let exe = root().join("target/release/tessera");
    let exe = exe.to_str().expect("a UTF-8 path");
    for (name, prompt) in prompts {
        let path = out.join(format!("{name}.png"));
        run(
            exe,
            &[
                "generate",
                prompt,
                "-o",
                path.to_str().expect("a UTF-8 path"),
                "--seed",
                "1",
            ],
        )?;
    }
    let edited = out.join("circle-green.png");
    run(
        exe,
        &[
            "edit",
            out.join("circle.png").to_str().unwrap(),
            "make the circle green",
            "-o",
            edited.to_str().unwrap(),
        ],
    )?;
    eprintln!("\nimages in {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "test" => test(),
        "demo" => demo(),
        _ => Err("usage: cargo xtask <test|demo>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
