//! One name for "this build has the GPU kernels": wasm32 (WebGPU) always, native builds with `--features gpu`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpu_kernels)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    if wasm || std::env::var_os("CARGO_FEATURE_GPU").is_some() {
        println!("cargo::rustc-cfg=gpu_kernels");
    }
}
