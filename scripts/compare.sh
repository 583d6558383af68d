#!/usr/bin/env bash
# kiln vs ONNX Runtime (CPU) on the same .onnx files: the nine models of
# scripts/fetch_onnx_data.sh (target/onnx-data/models/<name>/model.onnx); and kiln vs
# LiteRT (pip ai-edge-litert, its default XNNPACK delegate) on the same .tflite files
# (target/tflite-data/models/<name>/model.tflite, entries `tflite/<name>`).
#
#   scripts/compare.sh                 # from anywhere inside the repository
#   RUNS=50 THREADS="1 2 4" MODELS="resnet50 ppocr_det" scripts/compare.sh
#
# Steps: run scripts/fetch_onnx_data.sh when a requested model (or its
# test_data_set_0) is missing; create target/bench-venv from scripts/requirements.txt
# if it is absent; build kiln (release); read each model's input shapes from its
# test_data_set_0/input_N.pb (graph inputs that are not initializers, in order);
# then for every model and thread count run `kiln bench MODEL.onnx --shape NAME=DIMS...
# --json` and `scripts/bench_ort.py MODEL.onnx --shape NAME=DIMS... --json` (for a
# tflite/ entry: `kiln bench MODEL.tflite --json` and `scripts/bench_litert.py
# MODEL.tflite --json`, static shapes) in alternation, ROUNDS times each (a shared machine's slow spells then hit both; each
# side's figure is the median of its rounds' medians), and (at the first thread
# count) `kiln bench --no-optimize` once (the graph as
# given), and print two markdown tables on stdout: kiln vs ORT, and the optimizer
# (operators before and after the graph passes, kernels, rewrite time, latency
# with the graph passes off and on). Progress goes to stderr; the raw JSON
# lines are kept in target/compare/results.jsonl. A failed measurement (an import or
# compile error, say) does not stop the others: it shows as "failed" in the table,
# its error is listed under the table and kept in results.jsonl, and the script
# exits 1 after printing the table.
#
# Environment: RUNS (timed runs per round, default 20), ROUNDS (alternations of kiln and
# ORT per measurement, default 3), THREADS (default "1 2"),
# MODELS (default "mobilenetv2 squeezenet1.1 resnet50 bert_encoder yolov8n
# byte_classifier ppocr_det ppocr_det@x=1x3x640x640 ppocr_cls ppocr_rec
# tflite/mobilenet_v2_f32 tflite/mobilenet_int8 tflite/face_detection_short_range
# tflite/hand_landmark_full tflite/selfie_segmentation tflite/pose_landmark_full"; an entry
# NAME@INPUT=DIMS[,INPUT=DIMS...] measures model NAME at those input shapes instead
# of its test data's, and is its own row), PYTHON (interpreter used to create the
# venv, default python3).
set -euo pipefail

RUNS="${RUNS:-20}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
MODELS="${MODELS:-mobilenetv2 squeezenet1.1 resnet50 bert_encoder yolov8n byte_classifier ppocr_det ppocr_det@x=1x3x640x640 ppocr_cls ppocr_rec tflite/mobilenet_v2_f32 tflite/mobilenet_int8 tflite/face_detection_short_range tflite/hand_landmark_full tflite/selfie_segmentation tflite/pose_landmark_full}"
PYTHON="${PYTHON:-python3}"

say() { printf '[compare] %s\n' "$*" >&2; }
die() { printf '[compare] error: %s\n' "$*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v cargo >/dev/null || die "cargo not found"
[[ -n "${MODELS// /}" ]] || die "MODELS is empty"

venv="target/bench-venv"
models_dir="target/onnx-data/models"
out_dir="target/compare"
kiln="target/release/kiln"

tflite_dir="target/tflite-data/models"
# The model file of an entry (without its @shapes).
model_file() {
    case "$1" in
        tflite/*) echo "$tflite_dir/${1#tflite/}/model.tflite" ;;
        *) echo "$models_dir/$1/model.onnx" ;;
    esac
}

missing=""
for entry in $MODELS; do
    model="${entry%%@*}"
    [[ -f "$(model_file "$model")" ]] || missing="$missing $model"
done
if [[ -n "$missing" ]]; then
    say "missing:$missing; running scripts/fetch_onnx_data.sh"
    PYTHON="$PYTHON" scripts/fetch_onnx_data.sh >&2
    for model in $missing; do
        [[ -f "$(model_file "$model")" ]] \
            || die "no $(model_file "$model") (unknown model? there are: $(ls "$models_dir" | tr '\n' ' ') and under $tflite_dir: $(ls "$tflite_dir" | tr '\n' ' '))"
    done
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"
    say "creating $venv and installing scripts/requirements.txt"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -r scripts/requirements.txt >&2
fi
py="$venv/bin/python"
"$py" -c 'import onnx, onnxruntime, numpy' 2>/dev/null \
    || die "$venv is incomplete; remove it and rerun (rm -rf $venv)"

say "building kiln (release)"
cargo build --release --quiet --bin kiln >&2

# Prints `NAME=D0xD1x...`, one line per graph input that is not an initializer, in
# order, with the shape of test_data_set_0/input_N.pb.
input_shapes() {
    "$py" - "$1" <<'PY'
import os, sys
import onnx
from onnx import numpy_helper

d = sys.argv[1]
model = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
inits = {t.name for t in model.graph.initializer}
names = [i.name for i in model.graph.input if i.name not in inits]
for n, name in enumerate(names):
    path = os.path.join(d, "test_data_set_0", f"input_{n}.pb")
    if not os.path.isfile(path):
        sys.exit(f"{path}: missing (graph input {n} is `{name}`)")
    tensor = onnx.load_tensor(path)
    if tensor.name and tensor.name != name:
        sys.exit(f"{path}: holds `{tensor.name}`, graph input {n} is `{name}`")
    shape = numpy_helper.to_array(tensor).shape
    if not shape or 0 in shape:
        sys.exit(f"{path}: shape {list(shape)} cannot be passed as --shape (scalar or zero-size)")
    print(f"{name}={'x'.join(str(s) for s in shape)}")
PY
}

mkdir -p "$out_dir/raw"
rm -f "$out_dir"/raw/*
runs_list="$out_dir/raw/runs.tsv"
: >"$runs_list"

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime; }
first_threads="${THREADS%% *}"
load_before="$(load)"
say "load average before: $load_before ($(nproc) cores)"

for entry in $MODELS; do
    model="${entry%%@*}"
    file="$(model_file "$model")"
    if [[ "$model" == tflite/* ]]; then
        shapes="static"
        reference=(scripts/bench_litert.py "$file")
    elif [[ "$entry" == *@* ]]; then
        shapes="$(tr ',' '\n' <<<"${entry#*@}")"
    else
        shapes="$(input_shapes "$models_dir/$model")" || die "$model: cannot read its input shapes"
    fi
    model="$entry"
    shape_args=()
    if [[ "$shapes" != static ]]; then
        while IFS= read -r s; do shape_args+=(--shape "$s"); done <<<"$shapes"
        reference=(scripts/bench_ort.py "$file" "${shape_args[@]}")
    fi
    shapes="${shapes//$'\n'/ }"
    say "$model: $shapes"
    for t in $THREADS; do
        raw="$out_dir/raw/${model//\//_}.$t"
        for round in $(seq 1 "$ROUNDS"); do
            say "$model, $t thread(s), round $round of $ROUNDS, $RUNS runs: kiln"
            "$kiln" bench "$file" ${shape_args[@]+"${shape_args[@]}"} --threads "$t" --runs "$RUNS" --json \
                >"$raw.kiln.$round.json" 2>"$raw.kiln.$round.err" \
                || say "$model: kiln failed: $(tail -n 3 "$raw.kiln.$round.err")"
            say "$model, $t thread(s), round $round of $ROUNDS, $RUNS runs: ${reference[0]}"
            "$py" "${reference[@]}" --threads "$t" --runs "$RUNS" --json \
                >"$raw.ort.$round.json" 2>"$raw.ort.$round.err" \
                || say "$model: ${reference[0]} failed: $(tail -n 3 "$raw.ort.$round.err")"
        done
        if [[ "$t" == "$first_threads" ]]; then
            say "$model, $t thread(s), $RUNS runs: kiln --no-optimize"
            "$kiln" bench "$file" ${shape_args[@]+"${shape_args[@]}"} --threads "$t" --runs "$RUNS" --json --no-optimize \
                >"$raw.plain.json" 2>"$raw.plain.err" \
                || say "$model: kiln --no-optimize failed: $(tail -n 3 "$raw.plain.err")"
        fi
        printf '%s\t%s\t%s\t%s\n' "$model" "$t" "$raw" "$shapes" >>"$runs_list"
    done
done

load_after="$(load)"
say "load average after: $load_after"

"$py" - "$runs_list" "$out_dir/results.jsonl" "$RUNS" "$load_before" "$load_after" "$(nproc)" "$ROUNDS" <<'PY'
import json, os, statistics, sys
import onnxruntime
from importlib.metadata import version

runs_list, results, runs, before, after, cores, rounds = sys.argv[1:]


def one(path):
    """(result, None) or (None, error text) for one run of a bench command."""
    try:
        with open(f"{path}.json") as f:
            return json.loads(f.read().strip().splitlines()[-1]), None
    except (OSError, ValueError, IndexError):
        with open(f"{path}.err") as f:
            return None, f.read().strip() or "no output"


def measurement(raw, who):
    """One kiln / ORT measurement over its rounds: the last round's record with
    median_ms and compile_ms the medians of the rounds' (and every round's figures
    under "rounds"), or (None, error text) if a round failed."""
    records = []
    for r in range(1, int(rounds) + 1):
        rec, err = one(f"{raw}.{who}.{r}")
        if err:
            return None, err
        records.append(rec)
    result = dict(records[-1])
    result["rounds"] = [{"median_ms": r["median_ms"], "compile_ms": r["compile_ms"]} for r in records]
    result["median_ms"] = statistics.median(r["median_ms"] for r in records)
    result["compile_ms"] = statistics.median(r["compile_ms"] for r in records)
    return result, None


rows, failures, shapes_of = [], [], {}
with open(results, "w") as out:
    for line in open(runs_list):
        model, threads, raw, shapes = line.rstrip("\n").split("\t")
        shapes_of[model] = shapes
        k, k_err = measurement(raw, "kiln")
        o, o_err = measurement(raw, "ort")
        record = {"model": model, "threads": int(threads), "shapes": shapes.split(), "kiln": k, "ort": o}
        if k_err:
            record["kiln_error"] = k_err
            failures.append((model, threads, "kiln", k_err))
        if o_err:
            record["ort_error"] = o_err
            failures.append((model, threads, "LiteRT" if model.startswith("tflite/") else "onnxruntime", o_err))
        p, _ = one(f"{raw}.plain") if os.path.exists(f"{raw}.plain.json") else (None, None)
        if p:
            record["kiln_no_optimize"] = p
        out.write(json.dumps(record) + "\n")
        rows.append((model, threads, k, o, p))

print(f"kiln (cpu backend) vs onnxruntime {onnxruntime.__version__} (CPUExecutionProvider) on the same "
      f".onnx files and vs LiteRT (ai-edge-litert {version('ai-edge-litert')}, XNNPACK) on the same .tflite "
      f"files (tflite/ rows), {rounds} alternating rounds of {runs} timed runs after 1 warm-up each; "
      f"median of the rounds' medians, ms")
print(f"load average before {before}, after {after} ({cores} cores)")
print()
print("| model | threads | kiln median ms | reference | reference median ms | kiln/reference | kiln compile ms | reference session ms |")
print("|---|---:|---:|---|---:|---:|---:|---:|")
for model, threads, k, o, _ in rows:
    ref = "LiteRT" if model.startswith("tflite/") else "ORT"
    km = f"{k['median_ms']:.2f}" if k else "failed"
    om = f"{o['median_ms']:.2f}" if o else "failed"
    ratio = f"{k['median_ms'] / o['median_ms']:.2f}" if k and o else "-"
    kc = f"{k['compile_ms']:.1f}" if k else "-"
    oc = f"{o['compile_ms']:.1f}" if o else "-"
    print(f"| {model} | {threads} | {km} | {ref} | {om} | {ratio} | {kc} | {oc} |")
print()
onnx_shapes = [f"{m} {s}" for m, s in shapes_of.items() if s != "static"]
print("kiln/reference > 1 means kiln is slower."
      + (" Input shapes (test_data_set_0; .tflite models are static): " + "; ".join(onnx_shapes) + "." if onnx_shapes else ""))
optimizer = [(m, t, k, p) for m, t, k, _, p in rows if k and p]
if optimizer:
    print()
    print("The optimizer (graph passes: folding, rewrites), kiln alone, optimizer off vs on:")
    print()
    print("| model | threads | operators | after graph passes | kernels | rewrite ms | off median ms | on median ms | on/off |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model, threads, k, p in optimizer:
        rewrite = f"{k['rewrite_ms']:.1f}" if k.get("rewrite_ms") is not None else "-"
        print(f"| {model} | {threads} | {k['operators_before']} | {k['operators_after']} | {p['kernels']} -> {k['kernels']} "
              f"| {rewrite} | {p['median_ms']:.2f} | {k['median_ms']:.2f} | {k['median_ms'] / p['median_ms']:.2f} |")
if failures:
    print()
    for model, threads, who, err in failures:
        print(f"- {model}, {threads} thread(s), {who} failed: " + " / ".join(err.splitlines()[-3:]))
sys.exit(1 if failures else 0)
PY
