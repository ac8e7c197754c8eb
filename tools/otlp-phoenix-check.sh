#!/usr/bin/env bash
# OTLP/HTTP export against a real third-party receiver: Arize Phoenix (PyPI `arize-phoenix`, an
# OpenTelemetry trace store that takes OTLP/HTTP protobuf on /v1/traces). No OpenTelemetry Collector
# installs here (Debian and PyPI ship none); Phoenix is the nearest real receiver. Not part of
# tools/test.sh: the install takes minutes and ~400 MB. Run: bash tools/otlp-phoenix-check.sh
# It records the `blocking` example, sends its OTLP export to Phoenix on loopback, reads the spans back
# through Phoenix's REST API and checks: every span arrived once, every parent exists, the blocking
# callback and the loop stall kept status ERROR.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=20.26.1
VENV=${PHOENIX_VENV:-/tmp/asynctrace-phoenix-venv}
PORT=${PHOENIX_PORT:-16006}
WORK=$(mktemp -d /tmp/asynctrace-phoenix.XXXXXX)
BIN=${BIN:-.build/debug}
if [ ! -x "$VENV/bin/phoenix" ]; then
    echo "installing arize-phoenix $VERSION into $VENV (a few minutes)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "arize-phoenix==$VERSION"
fi
PHOENIX_WORKING_DIR="$WORK" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=$PORT PHOENIX_GRPC_PORT=$((PORT + 1)) \
    PHOENIX_TELEMETRY_ENABLED=false DO_NOT_TRACK=1 "$VENV/bin/phoenix" serve > "$WORK/phoenix.log" 2>&1 &
PHOENIX=$!
trap 'kill $PHOENIX 2>/dev/null; wait $PHOENIX 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 180); do
    curl -sf "http://127.0.0.1:$PORT/v1/projects" > /dev/null && break
    sleep 1
done
curl -sf "http://127.0.0.1:$PORT/v1/projects" > /dev/null || { tail -20 "$WORK/phoenix.log"; echo "phoenix did not start" >&2; exit 1; }
"$BIN/asynctrace" record -o "$WORK/app.atrace" -- "$BIN/asynctrace-examples" blocking > /dev/null
"$BIN/asynctrace" export "$WORK/app.atrace" --format otlp -o "$WORK/app.otlp.pb"
"$BIN/asynctrace" export "$WORK/app.atrace" --format otlp --otlp-endpoint "http://127.0.0.1:$PORT" 2>&1 | tee "$WORK/sent.txt"
sent=$(grep -o '[0-9]* spans in' "$WORK/sent.txt" | awk '{print $1}')
sleep 2
curl -sf "http://127.0.0.1:$PORT/v1/projects/default/spans?limit=100000" -o "$WORK/spans.json"
python3 - "$WORK/spans.json" "$sent" <<'PY'
import json, sys
spans = json.load(open(sys.argv[1]))["data"]
sent = int(sys.argv[2])
ids = [s["context"]["span_id"] for s in spans]
assert len(spans) == sent, f"phoenix holds {len(spans)} spans, {sent} were sent"
assert len(set(ids)) == len(ids), "a span arrived twice"
known = set(ids)
orphans = [s for s in spans if s.get("parent_id") and s["parent_id"] not in known]
assert not orphans, f"{len(orphans)} spans have a parent phoenix does not hold"
errors = sorted(s["name"] for s in spans if s.get("status_code") == "ERROR")
assert "loop stall" in errors and len(errors) >= 2, f"ERROR spans: {errors}"
print(f"phoenix: {len(spans)} spans received once each, {sum(1 for s in spans if s.get('parent_id'))} with parents (all present), ERROR: {errors}")
PY
