//! Compiles every `src/bpf/*.bpf.c` into `$OUT_DIR/<name>.bpf.o` with clang
//! (`-O2 -g -target bpf`); the Rust side embeds the objects with
//! `include_bytes!` and loads them with libbpf-rs.
//!
//! Headers: the kernel UAPI from `/usr/include` (plus the multiarch
//! directory for `asm/`), and libbpf's `bpf_helpers.h` from the copy
//! libbpf-sys installs (`DEP_BPF_INCLUDE`, set because we depend on it
//! directly).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = manifest.join("src").join("bpf");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let libbpf_include = env::var("DEP_BPF_INCLUDE").ok();

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".bpf.c")))
        .collect();
    sources.sort();
    for source in sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let file = source.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name");
        let name = file.trim_end_matches(".bpf.c");
        let object = out.join(format!("{name}.bpf.o"));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-I/usr/include/x86_64-linux-gnu"]);
        if let Some(inc) = &libbpf_include {
            cmd.arg(format!("-I{inc}"));
        }
        cmd.arg("-c").arg(&source).arg("-o").arg(&object);
        let status = cmd.status().unwrap_or_else(|e| panic!("running {clang} (install clang to build the eBPF programs): {e}"));
        assert!(status.success(), "{clang} failed on {}", source.display());
    }
}
