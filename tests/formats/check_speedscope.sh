#!/usr/bin/env bash
# Usage: check_speedscope.sh FILE...
#        check_speedscope.sh --unit-test UNIT_OUTPUT OUT_DIR
# Validates speedscope files against the schema of the speedscope npm package
# (versions pinned in package-lock.json next to this script), with validate_speedscope.js.
# The first form checks the given files (tests/integration/test_record.py passes a
# recorded profile). The second (the ctest "formats: speedscope ...") checks the golden
# file tests/golden/profile.speedscope.json and the files that the unit_output test
# case "speedscope files for the schema check" writes into OUT_DIR.
# Installs the packages (npm ci) into tests/formats/node_modules when missing. Without
# node or npm it says SKIP and exits 77, which ctest reports as skipped.
set -euo pipefail

usage() {
    echo "usage: $0 FILE... | $0 --unit-test UNIT_OUTPUT OUT_DIR" >&2
    exit 2
}
unit_output=""
if [[ $# -ge 1 && "$1" == --unit-test ]]; then
    [[ $# -eq 3 ]] || usage
    unit_output=$2
    out_dir=$3
elif [[ $# -eq 0 ]]; then
    usage
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
golden="$here/../golden/profile.speedscope.json"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (scripts/install-deps installs nodejs and npm)"
        exit 77
    fi
done

installed() {
    [[ -f "$here/node_modules/speedscope/dist/release/file-format-schema.json" &&
       -f "$here/node_modules/ajv/package.json" ]]
}
if ! installed; then
    # Tests running in parallel install once: the others wait on the lock, then see it.
    exec 9<"$here/package-lock.json"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
fi
if ! installed; then
    echo "installing the pinned speedscope and ajv packages (npm ci) into $here/node_modules"
    if ! npm ci --prefix "$here" --no-audit --no-fund; then
        echo "FAIL: npm ci in $here failed (is the npm registry reachable?)" >&2
        exit 1
    fi
fi

if [[ -z "$unit_output" ]]; then
    exec node "$here/validate_speedscope.js" "$@"
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
