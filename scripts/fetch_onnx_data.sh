#!/usr/bin/env bash
# Fetch and generate the ONNX test data under target/onnx-data and the TFLite test
# data under target/tflite-data (both ignored by git).
#
#   scripts/fetch_onnx_data.sh        # from anywhere inside the repository
#
# Steps, each skipped when its output is already there (a stamp file per step, under
# target/onnx-data/.stamps, target/tflite-data/.stamps, target/onnx-cache/wheels/.stamp,
# target/onnx-cache/wheels/.stamp-tflite and target/bench-venv/.kiln-requirements,
# holds a digest of what it was made from: change those inputs and the step runs again):
#   1. venv: target/bench-venv with scripts/requirements.txt (shared with
#      scripts/compare.sh: onnx, onnxruntime, numpy, ai-edge-litert, tflite,
#      flatbuffers); created with $PYTHON -m venv when absent. Where that fails
#      (Debian without python3-venv) and apt-get is there and we are root, installs
#      python3-venv and tries again.
#   2. wheels: pip download --no-deps --require-hashes of scripts/onnx-data-wheels.txt
#      (onnx 1.22.0, rapidocr-onnxruntime 1.4.4) into target/onnx-cache/wheels, only
#      when step 3 or 4 has something to do.
#   3. node: the ONNX backend node tests from the onnx 1.22.0 wheel, unzipped to
#      target/onnx-data/node/<case>/{model.onnx,test_data_set_0/{input,output}_N.pb}.
#   4. models: target/onnx-data/models/<name>/ in the same layout for mobilenetv2,
#      squeezenet1.1, resnet50, bert_encoder, yolov8n, byte_classifier, speech_rnn
#      (scripts/onnx_models.py) and ppocr_det, ppocr_cls, ppocr_rec (from the
#      rapidocr-onnxruntime wheel); expected outputs by onnxruntime
#      (scripts/onnx_data.py). Each model has its own stamp, a digest of the pins,
#      requirements.txt, onnx_models.py and onnx_data.py: editing either script
#      remakes every model, adding a name here makes only the new one.
#   5. tflite wheel: pip download --no-deps --require-hashes of
#      scripts/tflite-data-wheels.txt (mediapipe 0.10.14) into target/onnx-cache/wheels,
#      only when step 6 has something to do.
#   6. tflite models: target/tflite-data/models/<name>/{model.tflite,
#      test_data_set_0/{input,output}_N.pb} for the MediaPipe models of the mediapipe
#      wheel (face_detection_short_range, face_detection_full_range_sparse,
#      face_landmark, hand_landmark_lite, hand_landmark_full, hand_recrop,
#      iris_landmark, palm_detection_lite, palm_detection_full, pose_detection,
#      pose_landmark_full, selfie_segmentation, selfie_segmentation_landscape) and
#      mobilenet_v2_f32, mobilenet_int8, mobilenet_uint8, ops_f32
#      (scripts/tflite_models.py); expected outputs by LiteRT (scripts/tflite_data.py).
#      Each model has its own stamp, a digest of the pins, requirements.txt,
#      tflite_models.py and tflite_data.py.
# Progress goes to stderr; a one-line summary of the counts per data set (ONNX, then
# TFLite) to stdout at the end.
#
# Needs python3 (3.11 tested) and PyPI the first time. Environment: PYTHON
# (interpreter that creates the venv, default python3).
set -euo pipefail

PYTHON="${PYTHON:-python3}"

say() { printf '[onnx-data] %s\n' "$*" >&2; }
die() { printf '[onnx-data] error: %s\n' "$*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="target/bench-venv"
wheels="target/onnx-cache/wheels"
data="target/onnx-data"
stamps="$data/.stamps"
py="$venv/bin/python"
pins="scripts/onnx-data-wheels.txt"

# The stamp of a step (a file) holds a digest of everything the step was made from.
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
stamp() { mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" >"$1"; }
start=$SECONDS

# 1. venv -------------------------------------------------------------------------
make_venv() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=...)"
    say "creating $venv"
    if "$PYTHON" -m venv "$venv" >&2; then return 0; fi
    rm -rf "$venv"
    if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
        say "$PYTHON -m venv failed; installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2 \
            || die "apt-get install python3-venv failed"
        "$PYTHON" -m venv "$venv" >&2 || die "$PYTHON -m venv still fails after installing python3-venv"
    else
        die "$PYTHON -m venv failed (on Debian: apt-get install python3-venv)"
    fi
}
key="$(digest scripts/requirements.txt)"
if [[ ! -x "$py" ]]; then
    rm -rf "$venv"
    make_venv
    rm -f "$venv/.kiln-requirements"
fi
if ! fresh "$venv/.kiln-requirements" "$key"; then
    say "installing scripts/requirements.txt into $venv"
    "$py" -m pip install --quiet --disable-pip-version-check --progress-bar off \
        -r scripts/requirements.txt >&2 || die "pip install -r scripts/requirements.txt failed"
    "$py" -c 'import onnx, onnxruntime, numpy, tflite, flatbuffers, ai_edge_litert.interpreter' 2>/dev/null \
        || die "$venv is incomplete; remove it and rerun (rm -rf $venv)"
    stamp "$venv/.kiln-requirements" "$key"
fi

# 2. wheels (only when a later step has work to do) --------------------------------
onnx_whl=""
ocr_whl=""
wheels_key="$(digest "$pins")"
find_wheels() {
    onnx_whl="$(ls "$wheels"/onnx-1.22.0-*.whl 2>/dev/null | head -n1 || true)"
    ocr_whl="$(ls "$wheels"/rapidocr_onnxruntime-1.4.4-*.whl 2>/dev/null | head -n1 || true)"
}
need_wheels() {
    [[ -n "$onnx_whl" ]] && return 0
    find_wheels
    if fresh "$wheels/.stamp" "$wheels_key" && [[ -n "$onnx_whl" && -n "$ocr_whl" ]]; then return 0; fi
    say "downloading the data wheels of $pins into $wheels"
    mkdir -p "$wheels"
    # A fixed platform, so that the hashed files are the ones chosen on any host.
    "$py" -m pip download --quiet --disable-pip-version-check --progress-bar off \
        --no-deps --require-hashes --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        -d "$wheels" -r "$pins" >&2 || die "pip download -r $pins failed"
    find_wheels
    [[ -n "$onnx_whl" && -n "$ocr_whl" ]] || die "pip download did not leave the wheels in $wheels"
    stamp "$wheels/.stamp" "$wheels_key"
}

# 3. node tests -------------------------------------------------------------------
key="$(digest "$pins")"
if fresh "$stamps/node" "$key" && [[ -d "$data/node" ]]; then
    say "node tests: up to date"
else
    need_wheels
    say "extracting the node tests from $(basename "$onnx_whl")"
    rm -f "$stamps/node"
    "$py" scripts/onnx_data.py node "$onnx_whl" "$data/node"
    stamp "$stamps/node" "$key"
fi

# 4. models -----------------------------------------------------------------------
key="$(digest "$pins" scripts/requirements.txt scripts/onnx_models.py scripts/onnx_data.py)"
for name in mobilenetv2 squeezenet1.1 resnet50 bert_encoder yolov8n byte_classifier speech_rnn ppocr_det ppocr_cls ppocr_rec; do
    dir="$data/models/$name"
    if fresh "$stamps/model-$name" "$key" && [[ -f "$dir/model.onnx" && -d "$dir/test_data_set_0" ]]; then
        say "$name: up to date"
        continue
    fi
    need_wheels
    say "$name: writing model and test data"
    rm -f "$stamps/model-$name"
    "$py" scripts/onnx_data.py model "$name" "$data/models" --rapidocr-wheel "$ocr_whl"
    stamp "$stamps/model-$name" "$key"
done

# 5. tflite wheel (only when step 6 has work to do) ---------------------------------
tfl_pins="scripts/tflite-data-wheels.txt"
tfl_data="target/tflite-data"
tfl_stamps="$tfl_data/.stamps"
mp_whl=""
tfl_wheels_key="$(digest "$tfl_pins")"
find_mp_wheel() {
    mp_whl="$(ls "$wheels"/mediapipe-0.10.14-*.whl 2>/dev/null | head -n1 || true)"
}
need_mp_wheel() {
    [[ -n "$mp_whl" ]] && return 0
    find_mp_wheel
    if fresh "$wheels/.stamp-tflite" "$tfl_wheels_key" && [[ -n "$mp_whl" ]]; then return 0; fi
    say "downloading the data wheel of $tfl_pins into $wheels"
    mkdir -p "$wheels"
    # A fixed platform, as above; mediapipe's wheel is tagged manylinux2014 (2_17).
    "$py" -m pip download --quiet --disable-pip-version-check --progress-bar off \
        --no-deps --require-hashes --only-binary=:all: \
        --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        -d "$wheels" -r "$tfl_pins" >&2 || die "pip download -r $tfl_pins failed"
    find_mp_wheel
    [[ -n "$mp_whl" ]] || die "pip download did not leave the mediapipe wheel in $wheels"
    stamp "$wheels/.stamp-tflite" "$tfl_wheels_key"
}

# 6. tflite models ----------------------------------------------------------------
key="$(digest "$tfl_pins" scripts/requirements.txt scripts/tflite_models.py scripts/tflite_data.py)"
for name in face_detection_short_range face_detection_full_range_sparse face_landmark \
    hand_landmark_lite hand_landmark_full hand_recrop iris_landmark palm_detection_lite \
    palm_detection_full pose_detection pose_landmark_full selfie_segmentation \
    selfie_segmentation_landscape mobilenet_v2_f32 mobilenet_int8 mobilenet_uint8 ops_f32; do
    dir="$tfl_data/models/$name"
    if fresh "$tfl_stamps/model-$name" "$key" && [[ -f "$dir/model.tflite" && -d "$dir/test_data_set_0" ]]; then
        say "tflite $name: up to date"
        continue
    fi
    need_mp_wheel
    say "tflite $name: writing model and test data"
    rm -f "$tfl_stamps/model-$name"
    "$py" scripts/tflite_data.py model "$name" "$tfl_data/models" --mediapipe-wheel "$mp_whl"
    stamp "$tfl_stamps/model-$name" "$key"
done

say "done in $((SECONDS - start)) s"
"$py" scripts/onnx_data.py summary "$data"
"$py" scripts/tflite_data.py summary "$tfl_data"
