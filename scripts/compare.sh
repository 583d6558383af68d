#!/usr/bin/env bash
# kiln vs ONNX Runtime (CPU) on the three benchmark models of examples/zoo.rs.
#
#   scripts/compare.sh                 # from anywhere inside the repository
#   RUNS=50 THREADS="1 2 4" scripts/compare.sh
#
# Steps: build kiln (release); write the kiln models to target/zoo (cargo run
# --release --example zoo); create target/bench-venv from scripts/requirements.txt
# if it is absent; write the ONNX models to target/zoo-onnx (scripts/onnx_models.py);
# then for every model and thread count run `kiln bench --json` and
# scripts/bench_ort.py --json back to back, and print a markdown table on stdout.
# Progress goes to stderr; the raw JSON lines are kept in target/compare/results.jsonl.
#
# Environment: RUNS (timed runs per measurement, default 20), THREADS (default "1 2"),
# MODELS (default "mobilenetv2 squeezenet1.1 resnet50"), PYTHON (interpreter used
# to create the venv, default python3).
set -euo pipefail

RUNS="${RUNS:-20}"
THREADS="${THREADS:-1 2}"
MODELS="${MODELS:-mobilenetv2 squeezenet1.1 resnet50}"
PYTHON="${PYTHON:-python3}"

say() { printf '[compare] %s\n' "$*" >&2; }
die() { printf '[compare] error: %s\n' "$*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v cargo >/dev/null || die "cargo not found"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"

venv="target/bench-venv"
kiln_dir="target/zoo"
onnx_dir="target/zoo-onnx"
out_dir="target/compare"
kiln="target/release/kiln"

say "building kiln (release)"
cargo build --release --quiet --bin kiln --example zoo >&2

say "writing kiln models to $kiln_dir"
cargo run --release --quiet --example zoo -- "$kiln_dir" >&2

if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv and installing scripts/requirements.txt"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -r scripts/requirements.txt >&2
fi
py="$venv/bin/python"
"$py" -c 'import onnx, onnxruntime, numpy' 2>/dev/null \
    || die "$venv is incomplete; remove it and rerun (rm -rf $venv)"

say "writing ONNX models to $onnx_dir"
"$py" scripts/onnx_models.py "$onnx_dir" >&2

mkdir -p "$out_dir"
results="$out_dir/results.jsonl"
: >"$results"

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime; }
load_before="$(load)"
say "load average before: $load_before ($(nproc) cores)"

for model in $MODELS; do
    [[ -f "$kiln_dir/$model.webnn" ]] || die "missing $kiln_dir/$model.webnn"
    [[ -f "$onnx_dir/$model.onnx" ]] || die "missing $onnx_dir/$model.onnx"
    for t in $THREADS; do
        say "$model, $t thread(s), $RUNS runs: kiln"
        k="$("$kiln" bench "$kiln_dir/$model.webnn" --threads "$t" --runs "$RUNS" --json)"
        say "$model, $t thread(s), $RUNS runs: onnxruntime"
        o="$("$py" scripts/bench_ort.py "$onnx_dir/$model.onnx" --threads "$t" --runs "$RUNS" --json)"
        printf '{"model": "%s", "threads": %s, "kiln": %s, "ort": %s}\n' "$model" "$t" "$k" "$o" >>"$results"
    done
done

load_after="$(load)"
say "load average after: $load_after"

"$py" - "$results" "$RUNS" "$load_before" "$load_after" "$(nproc)" <<'EOF'
import json, sys
import onnxruntime

path, runs, before, after, cores = sys.argv[1:]
print(f"kiln (cpu backend) vs onnxruntime {onnxruntime.__version__} CPUExecutionProvider, "
      f"batch 1, f32, {runs} timed runs after 1 warm-up; median ms")
print(f"load average before {before}, after {after} ({cores} cores)")
print()
print("| model | threads | kiln median ms | ORT median ms | kiln/ORT | kiln compile ms | ORT session ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
for line in open(path):
    r = json.loads(line)
    k, o = r["kiln"], r["ort"]
    print(f"| {r['model']} | {r['threads']} | {k['median_ms']:.2f} | {o['median_ms']:.2f} | "
          f"{k['median_ms'] / o['median_ms']:.2f} | {k['compile_ms']:.1f} | {o['compile_ms']:.1f} |")
print()
print("kiln/ORT > 1 means kiln is slower.")
EOF
