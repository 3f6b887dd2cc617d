//! Compiles every `src/bpf/*.bpf.c` with clang into `$OUT_DIR/<name>.bpf.o`
//! (the Rust side embeds the objects with `include_bytes!`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = PathBuf::from("src/bpf");
    println!("cargo:rerun-if-changed=src/bpf");
    let entries = std::fs::read_dir(&src).expect("bpf/src/bpf exists");
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".bpf.c") else {
            continue;
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let obj = out.join(format!("{stem}.bpf.o"));
        let status = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c"])
            .arg(&path)
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("clang is installed (apt-get install clang)");
        assert!(status.success(), "clang failed on {}", path.display());
    }
}
