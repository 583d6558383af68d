#!/usr/bin/env bash
# The Python package's tests (part of scripts/test, after `cargo test
# --workspace`): builds the extension module kiln._kiln, stages the `kiln`
# package under target/python-pkg, and runs python/tests with pytest in
# target/bench-venv (made by scripts/fetch_onnx_data.sh, with numpy, onnx and
# onnxruntime). Extra arguments go to pytest:
#
#   scripts/test_python.sh                  # build, run every test
#   scripts/test_python.sh -k builder -x    # some of them
#
# The module is built by cargo, not maturin, so that it reuses what `cargo
# test --workspace` compiled: a build selecting the workspace's tests resolves
# the shared crates' features as the test build did (dev-dependencies
# included), and only pyo3, numpy and python/ compile. A maturin build
# (`pip install ./python`) selects python/ alone, which changes features of
# shared crates and recompiles kiln. PYO3_BUILD_EXTENSION_MODULE=1 (what
# maturin sets) leaves libpython unlinked, as an extension module must.
#
# Pins: python/requirements-test.txt (pytest), installed once (a stamp,
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
say "building the extension module (cargo, dev profile)"
PYO3_BUILD_EXTENSION_MODULE=1 cargo build --quiet --workspace --locked --lib --tests
target_dir="${CARGO_TARGET_DIR:-target}"
package=target/python-pkg/kiln
rm -rf "$package"
mkdir -p "$package"
cp python/kiln/*.py python/kiln/*.pyi python/kiln/py.typed "$package"/
cp "$target_dir/debug/lib_kiln.so" "$package/_kiln.abi3.so"
say "built and staged in $((SECONDS - start)) s"
PYTHONPATH=target/python-pkg PYTHONDONTWRITEBYTECODE=1 exec "$py" -m pytest python/tests -q -p no:cacheprovider "$@"
