//! Compiles the XDP program (bpf/redirect.bpf.c) and generates its libbpf-rs skeleton.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/redirect.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Debian keeps asm/ headers (pulled in by linux/types.h) under the multiarch directory, which
    // clang does not search when targeting bpf.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-O2", "-g", "-Wall", multiarch.as_str()])
        .build_and_generate(out.join("redirect.skel.rs"))
        .expect("compiling bpf/redirect.bpf.c and generating its skeleton");
    println!("cargo:rerun-if-changed={SRC}");
}
