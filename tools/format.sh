#!/usr/bin/env bash
# The project's Swift style is .swift-format (swift-format, shipped with the toolchain as `swift format`).
#   bash tools/format.sh           rewrites every Swift file of the project in that style
#   bash tools/format.sh --check   lists what differs and fails (tools/test.sh runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
# Packages' sources only: an example's or adapter's .build/ holds its dependencies' checkouts.
paths=(Package.swift Sources Tests Benchmarks Fuzz)
for p in Adapters/*/ Examples/*/; do paths+=("${p}Package.swift" "${p}Sources" "${p}Tests"); done
existing=()
for p in "${paths[@]}"; do [ -e "$p" ] && existing+=("$p"); done
if [ "${1:-}" = "--check" ]; then
    if ! swift format lint --strict --parallel --recursive "${existing[@]}"; then
        echo "asynctrace: Swift files differ from .swift-format's style (above); run: bash tools/format.sh" >&2
        exit 1
    fi
else
    # Only the files that differ: rewriting every file would touch them all and make the next build a full one.
    mapfile -t differing < <(swift format lint --parallel --recursive "${existing[@]}" 2>&1 |
        sed -n 's/^\(.*\.swift\):[0-9]*:[0-9]*: .*/\1/p' | sort -u)
    if [ "${#differing[@]}" -gt 0 ]; then
        swift format format --in-place --parallel "${differing[@]}"
    fi
fi
