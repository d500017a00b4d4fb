//! Project tasks, run with `cargo xtask <task>`. Each installs what it needs on a fresh Debian machine
//! (rustup target, Debian packages) and says what it is doing.
//!
//! - `test`: the format check, every native test with clippy's lints (including the wgpu backend on Vulkan
//!   lavapipe and the parity test against the PyTorch reference's stored outputs), the browser build, and
//!   the browser tests in headless Chromium (WebGPU through SwiftShader, and the CPU fallback).
//! - `bench`: the release CLI's `tessera bench --json` against the PyTorch reference on the same model
//!   (`trainer/.venv` is made when missing).
//! - `build-web`: compile the engine to wasm32 and generate `pkg/` with wasm-bindgen (the CLI pinned to the
//!   `Cargo.lock` version, installed when missing; `wasm-opt` when on the PATH). The repository root is then a
//!   static site.
//! - `serve [--port P]`: `build-web`, then serve the repository root on 127.0.0.1 and print the URL
//!   (`xtask/static-server.mjs`, the server the browser tests use).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The repository root: of the checkout `cargo xtask` runs in (cargo names it at run time), not of the one
/// the binary was built in. A clone with older files than a cached xtask binary reuses that binary, whose
/// compile-time path may be another checkout's.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Run a command in the repository root, echoing it; fail the task when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with(program, args, &[])
}

/// Print the command line a task is about to run.
fn echo(program: &str, args: &[&str], env: &[(&str, &str)]) {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!("\n$ {}{program} {}", shown.concat(), args.join(" "));
}

/// [`run`] with extra environment variables.
fn run_with(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    echo(program, args, env);
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
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

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}

fn test() -> Result<(), String> {
    // Mesa's lavapipe gives wgpu a Vulkan device on machines without a GPU; Chromium runs the browser tests
    // (WebGPU through its SwiftShader); CJK fonts let it draw the Chinese examples.
    ensure_debian_packages(&[
        "mesa-vulkan-drivers",
        "libvulkan1",
        "chromium",
        "fonts-noto-cjk",
        "libimage-exiftool-perl",
        // c2patool links OpenSSL.
        "libssl-dev",
        "pkg-config",
    ])?;
    let c2patool = ensure_c2patool()?;
    let c2patool = c2patool.to_str().ok_or("a UTF-8 target path")?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    // Every test target, natively, with the wgpu backend (for the lavapipe test) and clippy's lints. Vulkan's
    // loader wants a private runtime directory.
    let xdg = target_dir().join("xdg-runtime");
    std::fs::create_dir_all(&xdg).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let xdg = xdg.to_str().ok_or("a UTF-8 target path")?;
    let native = ["test", "--workspace", "--features", "tessera-cli/gpu"];
    let mut used = cargo_build(&[&native[..], &["--no-run"]].concat(), &CLIPPY)?;
    run_with(
        "cargo",
        &native,
        &[
            CLIPPY[0],
            CLIPPY[1],
            ("XDG_RUNTIME_DIR", xdg),
            ("C2PATOOL", c2patool),
        ],
    )?;
    used.extend(cargo_build(&["build", "--package", "xtask"], &[])?);
    prune_target("debug", &used)?;
    // The browser build compiles the engine for wasm32 (it must stay free of threads, files and `Instant`)
    // and lints the wasm-only front door.
    build_web(&CLIPPY)?;
    run("npm", &["ci", "--no-audit", "--no-fund"])?;
    // The browser tests compare the browser's image with the native CLI's, and have the C2PA reference tool
    // read the PNGs the app and the widget sign.
    let cli = target_dir().join("debug/tessera");
    run_with(
        "node",
        &["--test", "--test-concurrency=1", "tests/browser/"],
        &[
            ("TESSERA_CLI", cli.to_str().ok_or("a UTF-8 target path")?),
            ("C2PATOOL", c2patool),
        ],
    )?;
    eprintln!("\nall checks passed");
    Ok(())
}

/// The C2PA reference tool that checks our manifests: the release built on the same C2PA SDK version as the
/// engine (`c2pa =0.90.22`), without its network features.
const C2PATOOL_VERSION: &str = "0.27.22";

/// c2patool, installed under the target directory (a cache that survives clones) when missing; its build
/// folder is removed afterwards (it is large and only the binary is used).
fn ensure_c2patool() -> Result<PathBuf, String> {
    let tools = target_dir().join("tools");
    let binary = tools.join("bin/c2patool");
    let installed = Command::new(&binary).arg("--version").output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(C2PATOOL_VERSION)) {
        return Ok(binary);
    }
    let build = target_dir().join("c2patool-build");
    let (tools_s, build_s) = (
        tools.to_str().ok_or("a UTF-8 target path")?,
        build.to_str().ok_or("a UTF-8 target path")?,
    );
    let crate_version = format!("c2patool@{C2PATOOL_VERSION}");
    run(
        "cargo",
        &[
            "install",
            &crate_version,
            "--locked",
            "--no-default-features",
            "--root",
            tools_s,
            "--target-dir",
            build_s,
        ],
    )?;
    let _ = std::fs::remove_dir_all(&build);
    Ok(binary)
}

/// The native benchmark against its PyTorch peer: makes `trainer/.venv` (the reference's pinned
/// requirements) when missing, builds the release CLI, and prints `tessera bench --json --peer`'s object.
fn bench() -> Result<(), String> {
    let python = root().join("trainer/.venv/bin/python");
    if !python.exists() {
        run("bash", &["trainer/setup.sh"])?;
    }
    run("cargo", &["build", "--release"])?;
    let tessera = target_dir().join("release/tessera");
    run(
        tessera.to_str().ok_or("a UTF-8 target path")?,
        &[
            "bench",
            "--runs",
            "5",
            "--json",
            "--peer",
            python.to_str().ok_or("a UTF-8 path")?,
        ],
    )
}

fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines
                .next()
                .and_then(|v| v.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'));
            return version
                .map(str::to_string)
                .ok_or_else(|| "Cargo.lock: wasm-bindgen has no version".into());
        }
    }
    Err("Cargo.lock does not mention wasm-bindgen".into())
}

fn ensure_wasm_bindgen_cli(version: &str) -> Result<(), String> {
    let installed = Command::new("wasm-bindgen").arg("--version").output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version)) {
        return Ok(());
    }
    // `--locked` fails for this release (a pinned dependency is missing from the registry), so it is left out.
    run(
        "cargo",
        &["install", "wasm-bindgen-cli", "--version", version],
    )
}

/// The build units (cargo's `name-HASH` artifacts and build-script folders) a set of cargo builds used.
#[derive(Default)]
struct Used {
    hashes: HashSet<String>,
    /// Artifacts cargo copied out of `deps/` (binaries, the wasm module) are hard links: known by inode.
    inodes: HashSet<u64>,
}

impl Used {
    fn extend(&mut self, other: Used) {
        self.hashes.extend(other.hashes);
        self.inodes.extend(other.inodes);
    }

    fn note_path(&mut self, path: &str) {
        let path = Path::new(path);
        if let Ok(meta) = std::fs::metadata(path) {
            self.inodes.insert(meta.ino());
        }
        self.hashes
            .extend(path.iter().filter_map(|c| unit_hash(c.to_str()?)));
    }
}

/// The unit hash in a name cargo gave: `libburn_flex-cce6eb2d3f5565f5.rlib` → `cce6eb2d3f5565f5`.
fn unit_hash(name: &str) -> Option<String> {
    let stem = name.split('.').next()?;
    let (_, hash) = stem.rsplit_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hash.to_string())
}

/// Run a cargo build (`args` from the subcommand on) with its messages as JSON, diagnostics still shown on
/// stderr, and return the units it used, fresh ones included.
fn cargo_build(args: &[&str], env: &[(&str, &str)]) -> Result<Used, String> {
    let args = [args, &["--message-format", "json-render-diagnostics"]].concat();
    echo("cargo", &args, env);
    let out = Command::new("cargo")
        .args(&args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo {}` failed ({})",
            args.join(" "),
            out.status
        ));
    }
    let mut used = Used::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let paths = message["filenames"].as_array().into_iter().flatten();
        let paths = paths.chain([&message["executable"], &message["out_dir"]]);
        paths
            .filter_map(|p| p.as_str())
            .for_each(|p| used.note_path(p));
    }
    Ok(used)
}

/// Cargo never deletes what it built for an earlier Cargo.lock, feature set or profile setting, so a target
/// directory kept between runs (CI's cache) grows by gigabytes with each such change until the disk is
/// full. Removes from one profile's `deps/` and `build/` every unit the last builds did not use.
fn prune_target(profile: &str, used: &Used) -> Result<(), String> {
    let dir = target_dir().join(profile);
    let mut freed = 0u64;
    for (sub, is_dir) in [("deps", false), ("build", true)] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hash) = name.to_str().and_then(unit_hash) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if used.hashes.contains(&hash) || used.inodes.contains(&meta.ino()) {
                continue;
            }
            let path = entry.path();
            freed += if is_dir { dir_size(&path) } else { meta.len() };
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if freed > 0 {
        eprintln!(
            "removed {:.1} MB of stale build units from {}",
            freed as f64 / 1e6,
            dir.display()
        );
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Build with clippy's lints on this workspace's crates, warnings denied: what `cargo clippy` does, but with
/// code generation, so linting costs no separate check build of every dependency (minutes, on 2 cores).
const CLIPPY: [(&str, &str); 2] = [
    ("RUSTC_WORKSPACE_WRAPPER", "clippy-driver"),
    (
        "CLIPPY_ARGS",
        "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
    ),
];

/// `pkg/` from the wasm32 build of the library (`env`: extra variables for cargo, e.g. [`CLIPPY`]).
fn build_web(env: &[(&str, &str)]) -> Result<(), String> {
    ensure_rust_target("wasm32-unknown-unknown")?;
    let version = locked_wasm_bindgen()?;
    ensure_wasm_bindgen_cli(&version)?;
    let pkg = root().join("pkg");
    // The engine, then the Content Credentials module the page loads only to sign or check a picture (so
    // the C2PA SDK adds nothing to the engine's download); `-Os` for that one, which is small work per image.
    let mut used = wasm_module("tessera", &pkg, "-O2", env)?;
    used.extend(wasm_module(
        "tessera-credentials",
        &pkg.join("credentials"),
        "-Os",
        env,
    )?);
    // Host units (proc macros, build scripts) of this profile, then the wasm32 ones.
    prune_target("web", &used)?;
    prune_target("wasm32-unknown-unknown/web", &used)?;
    write_build_stamp(&pkg)?;
    for module in ["tessera_bg.wasm", "credentials/tessera_credentials_bg.wasm"] {
        let size = std::fs::metadata(pkg.join(module))
            .map_err(|e| e.to_string())?
            .len();
        eprintln!("pkg/{module} is {:.1} MB", size as f64 / 1e6);
    }
    Ok(())
}

/// Builds the crate `package` as a wasm32 cdylib and writes its wasm-bindgen module into `out` (then
/// `wasm-opt` at `level`, when it is on the PATH). Returns the build units it used.
fn wasm_module(
    package: &str,
    out: &Path,
    level: &str,
    env: &[(&str, &str)],
) -> Result<Used, String> {
    // A cdylib only for this build, so native builds do not link one.
    let used = cargo_build(
        &[
            "rustc",
            "-p",
            package,
            "--lib",
            "--profile",
            "web",
            "--target",
            "wasm32-unknown-unknown",
            "--crate-type",
            "cdylib",
        ],
        env,
    )?;
    let name = package.replace('-', "_");
    let wasm = target_dir().join(format!("wasm32-unknown-unknown/web/{name}.wasm"));
    let wasm = wasm.to_str().ok_or("a UTF-8 target path")?;
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--no-typescript",
            "--out-dir",
            out.to_str().ok_or("a UTF-8 path")?,
            wasm,
        ],
    )?;
    if succeeds("wasm-opt", &["--version"]) {
        let bg = out.join(format!("{name}_bg.wasm"));
        let optimised = out.join(format!("{name}_bg.opt.wasm"));
        let (bg_s, optimised_s) = (
            bg.to_str().ok_or("a UTF-8 path")?,
            optimised.to_str().ok_or("a UTF-8 path")?,
        );
        let args = [
            level,
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-simd",
            bg_s,
            "-o",
            optimised_s,
        ];
        echo("wasm-opt", &args, &[]);
        // A wasm-opt older than the features this rustc emits refuses the module (Debian 12's binaryen 108
        // does): the module is then kept as wasm-bindgen wrote it, never half-written.
        let status = Command::new("wasm-opt")
            .args(args)
            .current_dir(root())
            .status();
        match status {
            Ok(s) if s.success() => {
                std::fs::rename(&optimised, &bg).map_err(|e| format!("{}: {e}", bg.display()))?
            }
            _ => {
                let _ = std::fs::remove_file(&optimised);
                eprintln!(
                    "wasm-opt could not optimise {bg_s} (too old for this module?): kept unoptimised"
                );
            }
        }
    }
    Ok(used)
}

/// `pkg/build.js`: the app's version (the `tessera` crate's) and a digest of every file the service worker
/// caches, so any change to the shell or the wasm makes a new service worker, which the page announces.
fn write_build_stamp(pkg: &Path) -> Result<(), String> {
    use std::hash::{DefaultHasher, Hasher};
    let manifest =
        std::fs::read_to_string(root().join("engine/Cargo.toml")).map_err(|e| e.to_string())?;
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or("engine/Cargo.toml has no version")?;
    let mut files = vec![
        root().join("index.html"),
        root().join("sw.js"),
        pkg.join("tessera.js"),
        pkg.join("tessera_bg.wasm"),
    ];
    let mut dirs = vec![root().join("www"), pkg.join("credentials")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    // SipHash with fixed keys: a stable fingerprint, not a security measure.
    let mut hasher = DefaultHasher::new();
    for file in &files {
        hasher.write(
            file.strip_prefix(root())
                .unwrap_or(file)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.write(&std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let stamp = format!(
        "// Generated by `cargo xtask build-web`: the app version and a digest of the files the service worker caches.\n\
         // A classic script, so the service worker can `importScripts` it; the page imports it as a module.\n\
         self.TESSERA_BUILD = {{ version: '{version}', build: '{:016x}' }};\n",
        hasher.finish()
    );
    std::fs::write(pkg.join("build.js"), stamp).map_err(|e| e.to_string())
}

/// `xtask/static-server.mjs` (the one static server, which the browser tests use too) on 127.0.0.1:`port`.
fn serve(port: u16) -> Result<(), String> {
    if !succeeds("node", &["--version"]) {
        ensure_debian_packages(&["nodejs"])?;
    }
    run(
        "node",
        &["xtask/static-server.mjs", "--port", &port.to_string()],
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    let port = match args
        .iter()
        .position(|a| a == "--port")
        .map(|i| args.get(i + 1).map(|p| p.parse::<u16>()))
    {
        None => Ok(8080),
        Some(Some(Ok(p))) => Ok(p),
        Some(_) => Err("--port needs a number".to_string()),
    };
    let result = match (task.as_str(), port) {
        ("test", _) => test(),
        ("bench", _) => bench(),
        ("build-web", _) => build_web(&[]),
        ("serve", Ok(port)) => build_web(&[]).and_then(|()| serve(port)),
        (_, Err(e)) => Err(e),
        _ => Err("usage: cargo xtask <test|bench|build-web|serve [--port P]>".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
