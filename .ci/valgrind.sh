#!/usr/bin/env bash
# Runs the selector's, the reactor's and the executor's test suites (the
# crates with `unsafe` code: syscalls, and the executor's raw task
# allocation) under valgrind memcheck
# (invalid reads and writes, uses of uninitialised values, bad frees; leaks
# are not checked), in their short mode: TARN_VALGRIND=1 makes the heavy
# tests shrink their iteration counts (100k-round ping-pongs to 1k, 100k
# timers to 1k, proptest cases to 16), widen the few setup margins that
# assume native speed, and give their watchdogs ten times the patience,
# since everything runs 30 to 50 times slower under valgrind. No test is
# skipped. The reactor's and the executor's binaries re-run themselves on
# the poll and select backends, and some tests run in a child process of
# their own; valgrind
# follows every child (--trace-children=yes) and writes one log per
# process, and any error in any log fails the step.
#
# valgrind 3.19 (Debian 12) does not know epoll_pwait2 (syscall 441): it
# warns in the log and fails the call with ENOSYS, and the selector then
# falls back to epoll_wait, as it does on kernels before 5.11.
#
# Called by .ci/run; runs alone too: bash .ci/valgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi

# The test binaries, as cargo names them in its JSON messages.
mapfile -t binaries < <(
    cargo test -p tarn-selector -p tarn-reactor -p tarn-executor --tests --no-run --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'
)
if [ ${#binaries[@]} -eq 0 ]; then
    echo "cargo listed no test binaries" >&2
    exit 1
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export TARN_VALGRIND=1
# --fair-sched=yes: valgrind runs one thread at a time, and by default the
# thread that releases its lock may take it straight back, so a task that is
# always ready (tests of starvation freedom) could starve the thread that
# was to wake it: such tests then passed in 2-3 s or hung for 60 s.
flags=(
    --tool=memcheck
    --fair-sched=yes
    --error-exitcode=1
    --leak-check=no
    --trace-children=yes
    --suppressions=.ci/valgrind.supp
    --log-file="$logs/%p.log"
)

failed=()
start=$SECONDS
for bin in "${binaries[@]}"; do
    name=$(basename "$bin")
    name=${name%-*}
    rm -f "$logs"/*.log
    began=$SECONDS
    status=0
    # The lines of passing tests are left out; summaries and failures stay.
    valgrind "${flags[@]}" "$bin" 2>&1 | grep -v '^test .* \.\.\. ok$' || status=${PIPESTATUS[0]}
    processes=$(find "$logs" -name '*.log' | wc -l)
    for log in "$logs"/*.log; do
        if ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
            cat "$log"
            [ "$status" -ne 0 ] || status=1
        fi
    done
    echo "-- valgrind $name: exit $status, $processes processes, $((SECONDS - began)) s"
    [ "$status" -eq 0 ] || failed+=("$name")
done
echo "valgrind: ${#binaries[@]} test binaries in $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "valgrind: failed: ${failed[*]}" >&2
    exit 1
fi
