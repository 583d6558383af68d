#!/usr/bin/env bash
# Ahead-of-time artifacts against the JIT, on the same .onnx/.webnn files,
# one thread, same run: `kiln compile` wall time (load included), the
# linked object's median latency (scripts/aot_bench.c) and `kiln bench`'s
# median (JIT, --threads 1), interleaved RUNS times each.
#
#   scripts/aot_bench.sh                       # MobileNetV2, SqueezeNet, ResNet-50
#   RUNS=50 scripts/aot_bench.sh model.onnx --shape x=1x3x224x224
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
cargo build --release --locked -q
kiln=target/release/kiln
work=target/aot-bench
mkdir -p "$work"
if [ $# -gt 0 ]; then
    models=("$1"); shift; extra=("$@")
else
    models=(target/onnx-data/models/mobilenetv2/model.onnx target/onnx-data/models/squeezenet1.1/model.onnx
            target/onnx-data/models/resnet50/model.onnx); extra=()
fi
printf '%-16s %12s %12s %12s %8s\n' model "compile ms" "AOT ms" "JIT ms" AOT/JIT
for model in "${models[@]}"; do
    name=$(basename "$(dirname "$model")")
    [ "$name" = "." ] && name=$(basename "$model")
    dir="$work/$name"
    start=$(date +%s%N)
    "$kiln" compile "$model" "${extra[@]}" -o "$dir" --name model 2>/dev/null >/dev/null
    compile_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    cc -O2 -o "$dir/bench" scripts/aot_bench.c "$dir/model.o" -I "$dir" -lm
    aot=$("$dir/bench" "$RUNS")
    jit=$("$kiln" bench "$model" "${extra[@]}" --threads 1 --runs "$RUNS" --json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["median_ms"])')
    printf '%-16s %12s %12s %12s %8.2f\n' "$name" "$compile_ms" "$aot" "$jit" "$(python3 -c "print($aot/$jit)")"
done
