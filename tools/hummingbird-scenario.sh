#!/usr/bin/env bash
# Issue 16's "done when": a Hummingbird server with one slow handler (GET /report reads a 64 MiB file with
# blocking read(2) calls), changed only by the asynctrace line (and its import) marked in
# Examples/HummingbirdSlowHandler/Sources/hummingbird-slow-handler/main.swift, recorded with
# `asynctrace record` while a client sends /hello requests and one /report. Checks that the report names
# the slow request's span, the task it ran in, the thread, and the read(2) it blocked in, and that the
# connections' socket reads and writes belong to their channels.
#
# Not part of tools/test.sh: Hummingbird's first debug build takes 2.5-4.5 min (more on a busy machine).
# Usage: bash tools/hummingbird-scenario.sh [trace-file]     (root: the kernel probes need it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
trace=${1:-/tmp/asynctrace-hummingbird-$$.atrace}
cli=$root/.build/debug/asynctrace
[ -x "$cli" ] || swift build --product asynctrace
echo "asynctrace: building Examples/HummingbirdSlowHandler (debug)" >&2
(cd Examples/HummingbirdSlowHandler && swift build 2>&1 | tail -n 2)
server=$root/Examples/HummingbirdSlowHandler/.build/debug/hummingbird-slow-handler

work=$(mktemp -d /tmp/asynctrace-hb.XXXXXX)
trap 'kill $record_pid 2>/dev/null || true; rm -rf "$work"' EXIT
big=$work/big.bin
head -c $((64 << 20)) /dev/urandom >"$big"

"$cli" record -o "$trace" -- "$server" "$big" >"$work/out" 2>"$work/err" &
record_pid=$!
for _ in $(seq 1 200); do grep -q '^PORT ' "$work/out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^PORT //p' "$work/out" | head -n 1)
[ -n "$port" ] || { cat "$work/err" >&2; echo "asynctrace: the server did not start" >&2; exit 1; }

for _ in $(seq 1 20); do curl -s "http://127.0.0.1:$port/hello" >/dev/null; done
curl -s "http://127.0.0.1:$port/report"
for _ in $(seq 1 20); do curl -s "http://127.0.0.1:$port/hello" >/dev/null; done
kill -TERM $record_pid  # forwarded to the server (Hummingbird shuts down gracefully on SIGTERM)
wait $record_pid || true

"$cli" report "$trace" >"$work/report.txt"
sed -n '/^SPANS/,/^$/p' "$work/report.txt"
# (awk stops by itself: sed into head could die of SIGPIPE and, with pipefail, end the script)
awk '/^BLOCKING/ { on = 1 } on && n < 12 { print; n++ } on && /^$/ { exit }' "$work/report.txt"
"$cli" report --json "$trace" >"$work/report.json"
python3 - "$big" "$work/report.json" <<'PY'
import json, sys
big = sys.argv[1]
r = json.load(open(sys.argv[2]))
spans = [s for s in r["spans"] if s["name"] == "/report"]
assert spans, "no /report span: %s" % [s["name"] for s in r["spans"]]
span = spans[0]
print("span: %s (trace %s) %.1f ms, started in %s %s on thread %s" % (
    span["name"], span["trace_id"], span["duration_ns"] / 1e6, span["execution_type"],
    span["execution_async_id"], span["thread"]))
assert span["execution_type"] == "SwiftTask", span
assert span["thread"], span
# The blocking callback that ran the handler: a SwiftTask run whose syscalls include the reads of the file.
hits = [b for b in r["blocking"] if b["type"] == "SwiftTask"
        and any(s["name"] == "read" and s["fd_detail"] == big for s in b["syscalls"])]
assert hits, "no blocking SwiftTask callback read %s: %s" % (big, [(b["type"], [s["name"] for s in b["syscalls"]]) for b in r["blocking"]])
b = hits[0]
assert b["async_id"] == span["execution_async_id"], "the blocked task is the one the span began in"
read = next(s for s in b["syscalls"] if s["name"] == "read" and s["fd_detail"] == big)
print("task: SwiftTask %s on %s blocked %.1f ms; read(fd %d -> %s) %.1f ms (%d calls, %d bytes)" % (
    b["async_id"], b["thread"], b["duration_ns"] / 1e6, read["fd"], read["fd_detail"], read["ns"] / 1e6,
    read["count"], read["bytes"]))
assert read["bytes"] == 64 << 20, read
# The connections' socket reads and writes run inside their channel's callbacks (issue 16: >= 99%).
a = r["attribution"]
print("channels: %d of %d reads/writes on the channels' sockets inside their own channel's callbacks (%.1f%%)" % (
    a["on_resource_fds_by_owner"], a["on_resource_fds"], 100 * a["owner_share"]))
assert a["on_resource_fds"] > 0 and a["owner_share"] >= 0.99, a
print("asynctrace: the report names the slow request's span, its task, its thread and the read it blocked in")
PY
