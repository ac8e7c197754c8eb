#!/usr/bin/env bash
# Fails when the committed BPF skeleton was not regenerated after a change to its sources.
# The skeleton records a SHA-256 over the files it is built from (bpf/*.c, bpf/*.h and the
# generator script); comparing that hash is exact and needs no clang, bpftool or BTF, unlike
# regenerating and diffing bytes, which also changes with the kernel's BTF and the clang version.
#
# Usage: tools/check-bpf-skeleton.sh              exit 0 if fresh, 1 with a message if stale
#        tools/check-bpf-skeleton.sh --print-hash print the sources' hash
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
hash="$( (ls bpf/*.c bpf/*.h tools/gen-bpf-skeleton.sh | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"; sha256sum < "$f"; done) | sha256sum | cut -d' ' -f1)"
if [ "${1:-}" = "--print-hash" ]; then echo "$hash"; exit 0; fi
skel=Sources/CKernelProbes/syscall_probes.skel.h
recorded="$(sed -n 's|^// bpf-source-sha256: \([0-9a-f]*\)$|\1|p' "$skel" 2>/dev/null | head -1)"
if [ "$recorded" != "$hash" ]; then
    echo "BPF skeleton is stale: $skel was built from sources with hash '${recorded:-none}'," \
         "bpf/ now hashes to $hash; run tools/gen-bpf-skeleton.sh and commit the result" >&2
    exit 1
fi
echo "BPF skeleton is up to date ($hash)"
