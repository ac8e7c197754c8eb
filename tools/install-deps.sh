#!/usr/bin/env bash
# Installs the Debian packages asynctrace needs to build and test (idempotent; root or sudo).
set -euo pipefail
pkgs=(libbpf-dev libelf-dev zlib1g-dev libssl-dev bpftool)
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
