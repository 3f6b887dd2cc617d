//! Replays every committed input through its target, without libFuzzer:
//! the seeds (`seeds/<target>/`), the minimized campaign corpora
//! (`corpus/<target>/`) and the inputs that once crashed a target
//! (`crashes/<target>/`). A panic on any of them fails the test and names
//! the file, so a fixed crash cannot come back unnoticed.
//!
//! Run with `cargo test --profile replay` (release speed with debug
//! assertions and overflow checks on, as `cargo fuzz build -O` builds).

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use quicpro_fuzz::TARGETS;

const DIRS: [&str; 3] = ["seeds", "corpus", "crashes"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Every target of `Cargo.toml` is in `TARGETS` and the other way round,
/// and every input directory is named after a target (a misspelled one
/// would be skipped silently).
#[test]
fn targets_and_directories_agree() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let mut bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .map(|section| {
            let line = section.lines().find(|l| l.trim_start().starts_with("name")).expect("bin name");
            line.split('"').nth(1).expect("quoted name")
        })
        .collect();
    bins.sort_unstable();
    let mut names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    names.sort_unstable();
    assert_eq!(bins, names, "fuzz/Cargo.toml [[bin]] targets and quicpro_fuzz::TARGETS differ");
    for dir in DIRS {
        let Ok(entries) = fs::read_dir(root().join(dir)) else { continue };
        for e in entries {
            let e = e.expect("directory entry");
            if e.path().is_dir() {
                let name = e.file_name().into_string().expect("utf-8 name");
                assert!(names.contains(&name.as_str()), "{dir}/{name} is not a fuzz target");
            }
        }
    }
}

#[test]
fn every_committed_input_replays() {
    let mut failures = Vec::new();
    let mut without_corpus = Vec::new();
    let mut total = 0usize;
    for target in TARGETS {
        let mut count = 0usize;
        for dir in DIRS {
            for file in inputs(&root().join(dir).join(target.name)) {
                // QUICPRO_REPLAY_ONLY=part-of-a-path replays just those
                // inputs (with a target's FUZZ_DEBUG output, to study one).
                if std::env::var("QUICPRO_REPLAY_ONLY").is_ok_and(|only| !file.to_string_lossy().contains(&only)) {
                    continue;
                }
                // A campaign running beside the test may remove a file it
                // just reduced; only such a vanished file is skipped.
                let data = match fs::read(&file) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => panic!("{}: {e}", file.display()),
                };
                if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&data))) {
                    let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    failures.push(format!("{}: {}: {msg}", target.name, file.display()));
                }
                count += 1;
            }
        }
        if inputs(&root().join("corpus").join(target.name)).is_empty() {
            without_corpus.push(target.name);
        }
        eprintln!("replay {}: {count} inputs", target.name);
        total += count;
    }
    assert!(failures.is_empty(), "{} inputs panicked:\n{}", failures.len(), failures.join("\n"));
    if std::env::var_os("QUICPRO_REPLAY_ONLY").is_none() {
        assert!(without_corpus.is_empty(), "targets without a committed corpus: {without_corpus:?}");
    }
    eprintln!("replay: {total} inputs, none panicked");
}
