#!/usr/bin/env bash
# Builds the reader's libFuzzer target (Fuzz/ReaderFuzzTarget.swift: every input read as a trace and put
# through report, export and flamegraph) with swiftc -sanitize=fuzzer,address, and runs it on the corpus.
# It is not a SwiftPM target: a fuzz target has no main, and -sanitize=fuzzer cannot be a target setting.
#
#   bash tools/fuzz.sh [SECONDS] [libFuzzer options...]     default 60 s; exits non-zero on a crash, a
#                                                            timeout (10 s per input) or RSS over the limit
#   ASYNCTRACE_FUZZ_SANITIZE=fuzzer bash tools/fuzz.sh ...   without AddressSanitizer (faster; RSS as users see it)
# Findings are written to .build-fuzz/findings/; new corpus entries to .build-fuzz/corpus/ (the committed
# seeds in Fuzz/corpus stay as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
sanitize=${ASYNCTRACE_FUZZ_SANITIZE:-fuzzer,address}
out=.build-fuzz/${sanitize//,/-}
mkdir -p "$out" .build-fuzz/corpus .build-fuzz/findings

# TraceExports and every module it depends on, dependencies first (from Package.swift, so a new dependency
# between the reading modules needs no change here).
mapfile -t modules < <(swift package dump-package | python3 -c '
import json, sys
targets = {t["name"]: t for t in json.load(sys.stdin)["targets"]}
order = []
def visit(name):
    if name in order or name not in targets: return
    for d in targets[name]["dependencies"]:
        visit((d.get("byName") or d.get("target") or [None])[0])
    order.append(name)
visit("TraceExports")
print("\n".join(order))')
[ "${#modules[@]}" -gt 0 ] || { echo "asynctrace fuzz: could not read the module graph from Package.swift" >&2; exit 1; }
common=(-O -package-name asynctrace -parse-as-library -I "$out" -sanitize="$sanitize" -swift-version 6)
stamp="$out/.stamp"
sources=()
for m in "${modules[@]}"; do sources+=("Sources/$m"); done
newest=$(find "${sources[@]}" Fuzz/ReaderFuzzTarget.swift tools/fuzz.sh -newer "$stamp" 2>/dev/null | head -1 || true)
if [ ! -f "$stamp" ] || [ -n "$newest" ] || [ ! -x "$out/reader-fuzzer" ]; then
    echo "asynctrace fuzz: building the reader fuzz target ($sanitize)" >&2
    for m in "${modules[@]}"; do
        swiftc "${common[@]}" -module-name "$m" -emit-module -emit-module-path "$out/$m.swiftmodule" \
            -emit-object -wmo -o "$out/$m.o" Sources/"$m"/*.swift
    done
    objects=()
    for m in "${modules[@]}"; do objects+=("$out/$m.o"); done
    swiftc "${common[@]}" -module-name ReaderFuzzTarget Fuzz/ReaderFuzzTarget.swift "${objects[@]}" -o "$out/reader-fuzzer"
    touch "$stamp"
fi

# Seeds: the committed corpus (small real traces, and the golden traces of every format version).
seeds=(Fuzz/corpus)
[ -d Tests/TraceReaderTests/Golden ] && seeds+=(Tests/TraceReaderTests/Golden)
# 256 MB is the bound the reader keeps; AddressSanitizer's shadow memory and quarantine add to RSS, so its runs
# get 512 MB (with a small quarantine).
rss=256
[[ "$sanitize" == *address* ]] && rss=512
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=16} "$out/reader-fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb="$rss" \
    -max_len=65536 -print_final_stats=1 -artifact_prefix=.build-fuzz/findings/ "$@" .build-fuzz/corpus "${seeds[@]}"
