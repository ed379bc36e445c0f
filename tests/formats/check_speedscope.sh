#!/usr/bin/env bash
# Usage: check_speedscope.sh UNIT_OUTPUT OUT_DIR
# Validates pyspy-cpp's speedscope output against the schema of the speedscope npm
# package (versions pinned in package-lock.json next to this script): the golden file
# tests/golden/profile.speedscope.json and the files that the unit_output test case
# "speedscope files for the schema check" writes into OUT_DIR. Installs the packages
# (npm ci) into tests/formats/node_modules when missing. Without node or npm it says
# SKIP and exits 77, which ctest reports as skipped.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 UNIT_OUTPUT OUT_DIR" >&2
    exit 2
fi
unit_output=$1
out_dir=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
golden="$here/../golden/profile.speedscope.json"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (scripts/install-deps installs nodejs and npm)"
        exit 77
    fi
done

if [[ ! -f "$here/node_modules/speedscope/dist/release/file-format-schema.json" ||
      ! -f "$here/node_modules/ajv/package.json" ]]; then
    echo "installing the pinned speedscope and ajv packages (npm ci) into $here/node_modules"
    if ! npm ci --prefix "$here" --no-audit --no-fund; then
        echo "FAIL: npm ci in $here failed (is the npm registry reachable?)" >&2
        exit 1
    fi
fi

mkdir -p "$out_dir"
rm -f "$out_dir"/*.speedscope.json
PYSPY_FORMATS_OUT="$out_dir" "$unit_output" "speedscope files for the schema check"
shopt -s nullglob
files=("$out_dir"/*.speedscope.json)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "FAIL: $unit_output wrote no speedscope files into $out_dir" >&2
    exit 1
fi

node "$here/validate_speedscope.js" "$golden" "${files[@]}"
