//! Builds the guest function crates (`shoal-fn-examples`, `shoal-fn-testing`, `shoal-fn-legacy`) for
//! `wasm32-wasip2` in release mode and copies the resulting components into `OUT_DIR`, where
//! `src/lib.rs` embeds them with `include_bytes!`.
//!
//! The inner cargo gets its own target directory under `OUT_DIR` (sharing the outer one would
//! wait forever on the lock the outer build holds), no inherited RUSTFLAGS and no outer profile
//! variables; its release profile is set through `CARGO_PROFILE_RELEASE_*` because profile
//! sections in a non-root manifest are ignored. rustc's `wasm32-wasip2` `cdylib` output is
//! already a component (it runs `wasm-component-ld`), so no extra componentisation step.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[(&str, &str)] = &[
    ("shoal-fn-examples", "shoal_fn_examples"),
    ("shoal-fn-testing", "shoal_fn_testing"),
    ("shoal-fn-legacy", "shoal_fn_legacy"),
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let functions = manifest_dir.parent().ok_or("functions/bundle has no parent directory")?.to_path_buf();
    let root = functions.parent().ok_or("functions/ has no parent directory")?.to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);

    for dir in ["wit", "wit-0.1", "guest/src", "examples/src", "testing/src", "legacy/src"] {
        rerun_tree(&functions.join(dir));
    }
    for manifest in ["guest/Cargo.toml", "examples/Cargo.toml", "testing/Cargo.toml", "legacy/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", functions.join(manifest).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed=build.rs");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    check_target(&cargo)?;

    let target_dir = out_dir.join("guest-target");
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    for (package, _) in GUESTS {
        cmd.arg("-p").arg(package);
    }
    // Never inherit the outer build's flags, profile or lock-holding target dir.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_TARGET_")
            || key.starts_with("CARGO_ENCODED_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MAKEFLAGS")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CARGO_INCREMENTAL"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "DEBUG"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "TARGET"
                    | "HOST"
                    | "NUM_JOBS"
                    | "OUT_DIR"
                    | "RUSTC_LINKER"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false");

    // Cargo reads this script's stdout for directives: send the inner build's output to stderr.
    cmd.stdout(std::io::stderr());
    let status = cmd.status().map_err(|e| format!("running `{cargo} build` for the guest functions: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the guest functions for {TARGET} failed ({status}); see the output above"
        ));
    }

    for (_, file_stem) in GUESTS {
        let built = target_dir.join(TARGET).join("release").join(format!("{file_stem}.wasm"));
        let dest = out_dir.join(format!("{file_stem}.wasm"));
        std::fs::copy(&built, &dest)
            .map_err(|e| format!("copying {} to {}: {e}", built.display(), dest.display()))?;
        let bytes = std::fs::read(&dest).map_err(|e| format!("reading {}: {e}", dest.display()))?;
        // A component starts with the wasm magic and the component-layer version (0x0d, 0x00,
        // 0x01, 0x00); a core module would have version 1 and layer 0.
        if bytes.get(4..8) != Some(&[0x0d, 0x00, 0x01, 0x00][..]) {
            return Err(format!(
                "{} is not a WebAssembly component (is the target {TARGET}?)",
                built.display()
            ));
        }
    }
    Ok(())
}

fn env_var(key: &str) -> Result<String, String> {
    env::var(key).map_err(|_| format!("environment variable {key} is not set"))
}

/// Fails with a clear message when the wasm32-wasip2 standard library is not installed.
fn check_target(cargo: &str) -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running `{rustc} --print sysroot`: {e}"))?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if !lib.exists() {
        return Err(format!(
            "the {TARGET} target is not installed for this toolchain ({sysroot}); the guest \
             functions are compiled for it by this build script.\n\
             Run `rustup target add {TARGET}` and build again. (Used cargo: {cargo}.)"
        ));
    }
    Ok(())
}

fn rerun_tree(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rerun_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
