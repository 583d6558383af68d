#!/usr/bin/env bash
# Runs one fuzz target (cargo-fuzz, libFuzzer) for a while:
#
#   scripts/fuzz.sh TARGET SECONDS      # TARGET: onnx, tflite, webnn_text, npy, differential
#
# Each target is the function of the same name in harness/src/fuzz.rs
# (fuzz/fuzz_targets/TARGET.rs calls it): bytes in, and it must return
# normally whatever they are. Installs cargo-fuzz (pinned) when missing. The
# stable toolchain has no sanitizers: it runs with `--sanitizer none`
# (libFuzzer's coverage guidance, Rust's own bounds and overflow checks with
# debug assertions on). The corpus, fuzz/corpus/TARGET (ignored by git), is
# seeded on the first run from the repository's files of that kind (and the
# ONNX node tests and TFLite models of target/, when fetched). A crash leaves
# its input in fuzz/artifacts/TARGET/: fix the bug, then copy the input to
# tests/data/fuzz/TARGET/, where tests/fuzz_regressions.rs replays it.
set -euo pipefail

target="${1:-}"
seconds="${2:-}"
die() { printf '[fuzz] error: %s\n' "$*" >&2; exit 1; }
say() { printf '[fuzz] %s\n' "$*" >&2; }
case "$target" in
    onnx | tflite | webnn_text | npy | differential) ;;
    *) die "usage: scripts/fuzz.sh onnx|tflite|webnn_text|npy|differential SECONDS" ;;
esac
[[ "$seconds" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, got '$seconds'"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz 0.13.1"
    cargo install cargo-fuzz --version 0.13.1 --locked
fi

corpus="fuzz/corpus/$target"
mkdir -p "$corpus"
if [[ -z "$(ls -A "$corpus")" ]]; then
    say "seeding $corpus"
    seed() { [[ -f "$1" ]] && cp "$1" "$corpus/$(printf '%s' "$1" | tr '/' '_')"; return 0; }
    case "$target" in
        onnx)
            for f in $(find target/onnx-data/node -name model.onnx -size -64k 2>/dev/null | sort | head -400); do seed "$f"; done ;;
        tflite)
            for f in $(find target/tflite-data/models -name model.tflite -size -2M 2>/dev/null | sort); do seed "$f"; done ;;
        webnn_text)
            for f in examples/*.webnn tests/golden/*.webnn; do seed "$f"; done ;;
        npy)
            for f in examples/*.npy; do seed "$f"; done ;;
        differential)
            # Eight bytes are a seed of kiln_harness::differential::random_graph.
            for s in 1 2 3 4 5 6 7 8; do printf '%08d' "$s" > "$corpus/seed$s"; done ;;
    esac
    for f in tests/data/fuzz/"$target"/*; do seed "$f"; done
    [[ -n "$(ls -A "$corpus")" ]] || printf '\0' > "$corpus/empty"
fi

say "running $target for ${seconds}s (corpus $corpus)"
exec cargo fuzz run "$target" --sanitizer none "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1
