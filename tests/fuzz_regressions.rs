//! Replays every saved fuzz input (`tests/data/fuzz/<target>/`, one folder
//! per target of `kiln_harness::fuzz`) through its target: each must return
//! normally. The inputs are crashes the fuzzers found (fixed since) and
//! hand-made hostile seeds; `scripts/fuzz.sh` explains how to add one.

use std::path::PathBuf;

use kiln_harness::fuzz::TARGETS;

#[test]
fn every_saved_input_runs_through_its_target() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        files.sort();
        assert!(!files.is_empty(), "{} has no inputs", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            println!("{name}: {}", file.display());
            target(&data);
            replayed += 1;
        }
    }
    println!("{replayed} inputs replayed");
}

/// Every target survives the trivial inputs and every prefix of a valid
/// file of its kind (truncation is the commonest corruption).
#[test]
fn targets_survive_empty_and_truncated_inputs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let valid = [
        ("webnn_text", root.join("examples/small_cnn.webnn")),
        ("npy", root.join("examples/small_cnn_input.npy")),
    ];
    for (name, target) in TARGETS {
        target(&[]);
        target(&[0]);
        target(&[0xff; 64]);
        if let Some((_, path)) = valid.iter().find(|(n, _)| n == name) {
            let data = std::fs::read(path).unwrap();
            for end in (0..data.len()).step_by(7) {
                target(&data[..end]);
            }
        }
    }
}
