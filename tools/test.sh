#!/usr/bin/env bash
# README's test command: installs what the tests need, builds, runs every test, and fails when
# kernel tests were skipped on a machine that could have run them (root + BTF).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
mkdir -p .build
# Formatting first (seconds): .swift-format is the project's style; `bash tools/format.sh` applies it.
bash tools/format.sh --check
# A doc comment on every public declaration of every library product (root and Adapters) and of TraceSymbols,
# whose types the analyses' public API uses (about a second; `python3 tools/undocumented.py --products --summary`).
python3 tools/undocumented.py --check --products Sources/TraceSymbols
log=.build/test.log
set +e
swift test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    # Each issue again, briefly, at the end, where a CI log cut to its head and tail still shows it.
    echo "asynctrace: the failed expectations (the first lines of each; the full log is $log):" >&2
    awk '/✘ Test .*recorded an issue/ { n = 10 } n > 0 { print substr($0, 1, 400); n-- }' "$log" | head -n 200 >&2
    echo "asynctrace: swift test failed (exit $status)" >&2
    exit "$status"
fi
# The swift-distributed-tracing bridge is a package of its own (its dependency stays out of the root build).
echo "asynctrace: testing Adapters/AsyncTraceTracing" >&2
(cd Adapters/AsyncTraceTracing && swift test 2>&1 | tee -a "../../$log") || {
    echo "asynctrace: the tracing adapter's tests failed" >&2
    exit 1
}
# The SwiftNIO bridge, likewise (swift-nio stays out of the root build; ~4.5 min clean build on a busy
# 2-core box). Its kernel test records a NIO server with the CLI the root build made.
echo "asynctrace: testing Adapters/AsyncTraceNIO" >&2
(cd Adapters/AsyncTraceNIO && ASYNCTRACE_CLI="$(pwd)/../../.build/debug/asynctrace" swift test 2>&1 | tee -a "../../$log") || {
    echo "asynctrace: the NIO adapter's tests failed" >&2
    exit 1
}
# Warnings are errors for our own code (a fresh clone compiles every file, so CI sees them all; the
# packages we depend on are not ours to fix).
root=$(pwd)
warnings=$(grep -E "^$root/(Sources|Tests|Benchmarks|Fuzz|Adapters/[^/]+/(Sources|Tests))/[^:]+:[0-9]+:[0-9]+: warning:" "$log" | sort -u || true)
if [ -n "$warnings" ]; then
    echo "$warnings" >&2
    echo "asynctrace: the build printed warnings in the project's own code (above); they are errors here" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ] && [ -r /sys/kernel/btf/vmlinux ]; then
    if grep -q "KERNEL TEST SKIPPED" "$log"; then
        echo "asynctrace: kernel tests were skipped on a machine with root and BTF; that is a failure" >&2
        exit 1
    fi
fi

# ThreadSanitizer over the tests of the code that runs on many threads: hooks, recorder, runtime, net.
# (CrashTests are left out: their children die of signals TSan's own handlers catch first. The filter names
# test modules: unanchored, 'RecorderTests' also took KernelProbesTests.FlightRecorderTests, whose timed
# end-to-end runs of a TSan-built `record` missed their deadlines.)
# ASYNCTRACE_TSAN=0 skips it.
if [ "${ASYNCTRACE_TSAN:-1}" != "0" ]; then
    echo "asynctrace: ThreadSanitizer run (hooks, recorder, runtime, net)" >&2
    tsan_log=.build/tsan.log
    set +e
    swift build --build-tests --sanitize=thread --scratch-path .build-tsan >"$tsan_log" 2>&1 &&
        TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0} swift test --skip-build --sanitize=thread --scratch-path .build-tsan \
            --filter '^(RecorderTests|AsyncHooksTests|RuntimeTests|NetTests)\.' --skip CrashTests >>"$tsan_log" 2>&1
    tsan_status=$?
    set -e
    tail -n 3 "$tsan_log"
    if [ "$tsan_status" -ne 0 ] || grep -q "WARNING: ThreadSanitizer" "$tsan_log"; then
        grep -A 30 "WARNING: ThreadSanitizer" "$tsan_log" | head -n 120 >&2 || true
        grep -E "✘|Expectation failed|error:" "$tsan_log" | head -n 40 >&2 || true
        echo "asynctrace: the ThreadSanitizer run failed (exit $tsan_status; full log in $tsan_log)" >&2
        exit 1
    fi
fi

# A release build of everything (what the benchmarks and users run; -O finds what debug builds hide).
echo "asynctrace: release build" >&2
swift build -c release --scratch-path .build-release 2>&1 | tail -n 3

# The reader's fuzz target (issue 13): a short libFuzzer run over the committed corpus and golden traces,
# with AddressSanitizer; a crash, a 10 s input or too much memory fails CI. ASYNCTRACE_FUZZ_SECONDS=0 skips it.
fuzz_seconds=${ASYNCTRACE_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != "0" ]; then
    bash tools/fuzz.sh "$fuzz_seconds"
fi
