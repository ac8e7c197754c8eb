#!/usr/bin/env bash
# README's demo command: installs what it needs, builds asynctrace and the bundled examples,
# records the `blocking` example (a callback that blocks the loop for 200 ms in the middle of
# network traffic) with kernel probes, and prints the report.
#   bash tools/demo.sh [SCENARIO]      (default: blocking; `asynctrace-examples --help` lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-blocking}"
bash tools/install-deps.sh
echo "asynctrace demo: building (the first build takes a few minutes)..." >&2
swift build --product asynctrace >/dev/null
swift build --product asynctrace-examples >/dev/null
bin="$(swift build --show-bin-path)"
mkdir -p artifacts
trace="artifacts/${scenario}.atrace"
"$bin/asynctrace" record -o "$trace" -- "$bin/asynctrace-examples" "$scenario"
echo >&2
"$bin/asynctrace" report "$trace"
