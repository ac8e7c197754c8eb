#!/usr/bin/env bash
# Every reading command (report text/JSON/HTML, export in every format, flamegraph) on hostile trace files:
# tools/crafted-traces.py's crafted shapes and mutants of the corpus. Fails if any command crashes (a signal,
# or an exit status other than 0/1), runs over 10 s, or peaks over 256 MB RSS; prints the run's totals.
#
#   bash tools/reader-torture.sh [MUTANTS_PER_SEED] [asynctrace binary]     (default 50; .build/release or debug)
set -euo pipefail
cd "$(dirname "$0")/.."
per_seed=${1:-50}
cli=${2:-}
if [ -z "$cli" ]; then
    for c in .build-release/release/asynctrace .build/release/asynctrace .build/debug/asynctrace; do
        [ -x "$c" ] && { cli=$c; break; }
    done
fi
[ -x "$cli" ] || { echo "reader-torture: build asynctrace first (swift build)" >&2; exit 1; }
work=$(mktemp -d /tmp/asynctrace-torture-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 tools/crafted-traces.py "$work/in" "$per_seed"
inputs=("$work"/in/*.atrace)
commands=("report" "report --json" "report --html -o $work/out.html" "export --format perfetto -o $work/out.pb"
          "export --format chrome -o $work/out.json" "export --format speedscope -o $work/out.ss.json"
          "export --format folded -o $work/out.folded" "flamegraph -o $work/out.svg")
runs=0 failures=0 peak=0 peak_what="" slowest=0 slowest_what=""
start=$(date +%s)
for f in "${inputs[@]}"; do
    for c in "${commands[@]}"; do
        # shellcheck disable=SC2086
        set +e
        /usr/bin/time -f "%M %e" -o "$work/time" timeout -s KILL 10 "$cli" $c "$f" > /dev/null 2> "$work/err"
        status=$?
        set -e
        runs=$((runs + 1))
        read -r kb secs < <(tail -1 "$work/time")
        if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
            failures=$((failures + 1))
            echo "FAIL ($status): $cli $c $f: $(tail -3 "$work/err")" >&2
            cp "$f" "/tmp/reader-torture-failure-$failures.atrace"
        elif [ "$kb" -gt $((256 * 1024)) ]; then
            failures=$((failures + 1))
            echo "FAIL (peak RSS ${kb} KB): $cli $c $f" >&2
        fi
        if [ "$kb" -gt "$peak" ]; then peak=$kb; peak_what="$c $(basename "$f")"; fi
        if awk "BEGIN{exit !($secs > $slowest)}"; then slowest=$secs; slowest_what="$c $(basename "$f")"; fi
    done
done
echo "reader-torture: $runs runs ($(( ${#inputs[@]} )) files x ${#commands[@]} commands) in $(( $(date +%s) - start )) s with $cli;" \
     "failures $failures; peak RSS $((peak / 1024)) MB ($peak_what); slowest ${slowest} s ($slowest_what)"
[ "$failures" -eq 0 ]
