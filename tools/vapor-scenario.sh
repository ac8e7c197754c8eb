#!/usr/bin/env bash
# A Vapor 4 server with one slow handler (GET /report reads a 64 MiB file with blocking read(2) calls),
# changed only by the asynctrace line (and its import) marked in Examples/VaporSlowHandler/Sources/vapor-slow-handler/main.swift,
# recorded with `asynctrace record` while a client sends /hello requests and one /report. Checks that the
# report names the slow request's span, the task it ran in, the thread, the read(2) it blocked in, and that
# Vapor's connections are NIOSocketChannel resources owning their sockets' reads.
#
# Not part of tools/test.sh: Vapor's first debug build takes many minutes (docs/nio.md has the measured time).
# Usage: bash tools/vapor-scenario.sh [trace-file]     (root: the kernel probes need it)
#   VAPOR_SCRATCH=dir: build in that scratch path (one that built Vapor already saves its first build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
trace=${1:-/tmp/asynctrace-vapor-$$.atrace}
cli=$root/.build/debug/asynctrace
[ -x "$cli" ] || swift build --product asynctrace
echo "asynctrace: building Examples/VaporSlowHandler (debug)" >&2
scratch=${VAPOR_SCRATCH:-$root/Examples/VaporSlowHandler/.build}
(cd Examples/VaporSlowHandler && swift build --scratch-path "$scratch" 2>&1 | tail -n 2)
server=$scratch/debug/vapor-slow-handler

work=$(mktemp -d /tmp/asynctrace-vapor.XXXXXX)
trap 'kill $record_pid 2>/dev/null || true; rm -rf "$work"' EXIT
big=$work/big.bin
head -c $((64 << 20)) /dev/urandom >"$big"

"$cli" record -o "$trace" -- "$server" "$big" >"$work/out" 2>"$work/err" &
record_pid=$!
# The app prints nothing of its own: Vapor logs "Server started on http://127.0.0.1:PORT" once it listens.
started='s|.*Server started on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p'
for _ in $(seq 1 300); do grep -q 'Server started on' "$work/out" "$work/err" 2>/dev/null && break; sleep 0.1; done
port=$(cat "$work/out" "$work/err" | sed -n "$started" | sed -n 1p)
[ -n "$port" ] || { cat "$work/err" >&2; echo "asynctrace: the server did not start" >&2; exit 1; }

for _ in $(seq 1 20); do curl -s "http://127.0.0.1:$port/hello" >/dev/null; done
curl -s "http://127.0.0.1:$port/report"
for _ in $(seq 1 20); do curl -s "http://127.0.0.1:$port/hello" >/dev/null; done
kill -TERM $record_pid  # forwarded to the server (Vapor shuts down gracefully on SIGTERM)
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
spans = [s for s in r["spans"] if s["name"] == "GET /report"]
assert spans, "no GET /report span: %s" % [s["name"] for s in r["spans"]]
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
# Vapor runs a route's handler in a task of its own (not the one TracingMiddleware's span began in): the
# blocked task is the one that began during the span, and both descend from the request's connection.
assert span["start_ns"] <= b["start_ns"] <= span["start_ns"] + span["duration_ns"], (span, b["start_ns"])
assert b["causal_chain"][:2] == ["NIOServerSocketChannel", "NIOSocketChannel"], b["causal_chain"]
read = next(s for s in b["syscalls"] if s["name"] == "read" and s["fd_detail"] == big)
print("task: SwiftTask %s (%s) on %s blocked %.1f ms; read(fd %d -> %s) %.1f ms (%d calls, %d bytes)" % (
    b["async_id"], " -> ".join(b["causal_chain"]), b["thread"], b["duration_ns"] / 1e6, read["fd"], read["fd_detail"], read["ns"] / 1e6,
    read["count"], read["bytes"]))
assert read["bytes"] == 64 << 20, read
channels = [t for t in r["resources"] if t["type"] == "NIOSocketChannel"]
assert channels and channels[0]["count"] >= 1 and channels[0]["callbacks"] >= 1, r["resources"]
rows = [f for f in r["fds"] if f.get("resource_type") == "NIOSocketChannel"]
assert rows and all(f["reads"] >= 1 for f in rows), rows
print("channels: %d NIOSocketChannel, %d callbacks; %d socket lives owned by a channel, %d reads on them" % (
    channels[0]["count"], channels[0]["callbacks"], len(rows), sum(f["reads"] for f in rows)))
a = r["attribution"]
print("ownership: %d of %d reads/writes on the channels' sockets inside their own channel's callbacks (%.1f%%)" % (
    a["on_resource_fds_by_owner"], a["on_resource_fds"], 100 * a["owner_share"]))
assert a["on_resource_fds"] > 0 and a["owner_share"] >= 0.99, a
print("asynctrace: the report names the slow request's span, its task, its thread and the read it blocked in, and Vapor's channels")
PY
