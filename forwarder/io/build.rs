//! Compiles the XDP programs (bpf/*.bpf.c) and generates their libbpf-rs skeletons.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// (source, skeleton file) of each program.
const PROGRAMS: [(&str, &str); 3] = [
    ("bpf/redirect.bpf.c", "redirect.skel.rs"),
    ("bpf/sink.bpf.c", "sink.skel.rs"),
    ("bpf/fib.bpf.c", "fib.skel.rs"),
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Debian keeps asm/ headers (pulled in by linux/types.h) under the multiarch directory, which
    // clang does not search when targeting bpf.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    for (src, skel) in PROGRAMS {
        SkeletonBuilder::new()
            .source(src)
            .clang_args(["-O2", "-g", "-Wall", multiarch.as_str()])
            .build_and_generate(out.join(skel))
            .unwrap_or_else(|e| panic!("compiling {src} and generating its skeleton: {e}"));
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-changed=bpf/headers.h");
}
