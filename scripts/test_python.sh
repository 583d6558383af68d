#!/usr/bin/env bash
# The Python package's tests (part of scripts/test): builds the `kiln` wheel
# from python/ with maturin, in the workspace's dev profile and target
# directory (so the kiln crates `cargo test` just built are reused; only the
# pyo3 glue compiles), installs it into target/bench-venv (made by
# scripts/fetch_onnx_data.sh, with numpy, onnx and onnxruntime), and runs
# python/tests with pytest. Extra arguments go to pytest:
#
#   scripts/test_python.sh                  # build, install, run every test
#   scripts/test_python.sh -k builder -x    # some of them
#
# Pins: python/requirements-test.txt (maturin, pytest), installed once (a stamp,
# target/bench-venv/.kiln-python-requirements, holds its digest); the Rust
# side uses the workspace's Cargo.lock (--locked).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[python] %s\n' "$*" >&2; }
venv=target/bench-venv
py="$venv/bin/python"
pins=python/requirements-test.txt
stamp="$venv/.kiln-python-requirements"
[[ -x "$py" ]] || { say "error: $py is missing; run scripts/fetch_onnx_data.sh first"; exit 1; }

key="$(sha256sum "$pins" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$key" ]]; then
    say "installing $pins into $venv"
    "$py" -m pip install --quiet --disable-pip-version-check --progress-bar off -r "$pins" >&2
    printf '%s\n' "$key" >"$stamp"
fi

start=$SECONDS
wheels=target/python-wheels
rm -rf "$wheels"
say "building the wheel (maturin, dev profile)"
"$venv/bin/maturin" build --quiet --locked --profile dev --manifest-path python/Cargo.toml \
    --interpreter "$py" --auditwheel skip --out "$wheels" >&2
"$py" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$wheels"/kiln-*.whl >&2
say "built and installed in $((SECONDS - start)) s"
PYTHONDONTWRITEBYTECODE=1 exec "$py" -m pytest python/tests -q -p no:cacheprovider "$@"
