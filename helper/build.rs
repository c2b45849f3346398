//! Builds `ebpf/` for the BPF target with aya-build and stable rust (`RUSTC_BOOTSTRAP=1`,
//! `-Z build-std=core`), leaving the object in `OUT_DIR/memmon`.
//!
//! Without bpf-linker the build still succeeds with an empty placeholder object, so the
//! /proc-only and embedded modes work anywhere; `MEMMON_REQUIRE_EBPF=1` (set by CI) turns that
//! into a hard error so a release can never ship the placeholder.
use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, bail};

const OBJECT: &str = "memmon";
/// Benchmark baseline object (empty programs on the same tracepoints).
const EMPTY_OBJECT: &str = "memmon-empty";
/// Call-site programs, loaded only for a call-site session.
const CALLSITES_OBJECT: &str = "memmon-callsites";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=MEMMON_REQUIRE_EBPF");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rustc-check-cfg=cfg(memmon_ebpf_placeholder)");
    if env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return Ok(());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let require = env::var("MEMMON_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    if !have_bpf_linker() {
        if require {
            bail!(
                "MEMMON_REQUIRE_EBPF=1 but bpf-linker is not on PATH: install it with \
                 `cargo install bpf-linker --version 0.13.0 --no-default-features --features llvm-22` \
                 (needs llvm-22-dev; set LLVM_PREFIX=/usr/lib/llvm-22)"
            );
        }
        println!(
            "cargo:warning=bpf-linker not found: building memmon-helper without eBPF programs \
             (it will run in /proc-only mode)"
        );
        println!("cargo:rustc-cfg=memmon_ebpf_placeholder");
        for name in [OBJECT, EMPTY_OBJECT, CALLSITES_OBJECT] {
            fs::write(out_dir.join(name), []).context("writing the placeholder eBPF object")?;
        }
        return Ok(());
    }
    build_object(&out_dir)
}

#[cfg(not(feature = "ebpf"))]
fn build_object(_out_dir: &std::path::Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(feature = "ebpf")]
fn build_object(out_dir: &std::path::Path) -> anyhow::Result<()> {
    // SAFETY: build scripts are single-threaded; aya-build passes this to the cargo it spawns so
    // that stable rust accepts `-Z build-std=core`.
    unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    let ebpf_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?)
        .join("../ebpf")
        .canonicalize()
        .context("locating ebpf/")?;
    let root_dir = ebpf_dir.to_str().context("non UTF-8 path to ebpf/")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "memmon-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom("stable"),
    )?;
    let object = out_dir.join(OBJECT);
    let len = fs::metadata(&object)
        .with_context(|| format!("eBPF object {} missing after build", object.display()))?
        .len();
    if len == 0 {
        bail!("eBPF object {} is empty after build", object.display());
    }
    Ok(())
}

fn have_bpf_linker() -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join("bpf-linker").is_file()))
}
