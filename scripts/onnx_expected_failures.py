#!/usr/bin/env python3
"""Writes tests/data/onnx-node-expected-failures.txt from `kiln onnx-tests` output.

    target/release/kiln onnx-tests target/onnx-data/node | scripts/onnx_expected_failures.py > tests/data/onnx-node-expected-failures.txt

Each failing case becomes `case<TAB>reason`, the reason being kiln's own
message on one line (the list is reviewed by hand before it is committed).
"""
import re
import sys

HEADER = """# ONNX node tests (onnx 1.22.0) that fail on the cpu backend, with kiln's reason.
# Format: case<TAB>reason. tests/onnx_node.rs fails on any other failure and on a
# listed case that passes: this list only shrinks. Regenerate with
# scripts/onnx_expected_failures.py (see its docstring) and review the diff.
"""

def main():
    cases = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        m = re.match(r"^FAIL\s+(\S+): (.*)$", line)
        if m:
            cases.append([m.group(1), m.group(2)])
        elif cases and line.startswith("  node "):
            cases[-1][1] += " " + line.strip()
        elif line.strip() == "" or not line.startswith(" "):
            pass
    sys.stdout.write(HEADER)
    for name, reason in sorted(cases):
        reason = re.sub(r"\s+", " ", reason).replace("\t", " ")
        sys.stdout.write(f"{name}\t{reason}\n")

if __name__ == "__main__":
    main()
