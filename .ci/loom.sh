#!/usr/bin/env bash
# Model-checks tarn's synchronisation protocols with loom: every
# interleaving of the models' threads, up to a bound on preemptions. The
# models are unit tests under `#[cfg(all(test, loom))]` beside the code
# they check (`mod model` in selector/src/sys/wakefd.rs: the notifier;
# reactor/src/source.rs: the readiness tick and the drained shortcut;
# reactor/src/driver/parker.rs: parking against unparks and another
# driver, and for I/O behind another driver; reactor/src/driver/
# fallback.rs: the fallback thread stepping aside and back, and a source
# moving between thread reactors while a foreign task waits on it;
# executor/src/task.rs: a task's wakes, abort, join handle and
# executor against a waker on another thread; executor/src/executor.rs:
# the real run loop and park against wakes from another thread), run
# over the real code with loom's atomics, mutexes and condition variables
# in place of std's (each crate's `sync` module). A lost wakeup is a
# deadlock loom reports.
#
#   bash .ci/loom.sh                          # the bound CI uses (3 preemptions, ~4 min)
#   LOOM_MAX_PREEMPTIONS=4 bash .ci/loom.sh   # deeper (the fallback models: long)
#   LOOM_MAX_PREEMPTIONS= LOOM_SKIP="driver::fallback executor::model" bash .ci/loom.sh
#                                             # unbounded: every interleaving of
#                                             # every model but the fallback ones
#                                             # and the executor's run loop (they
#                                             # do not finish unbounded), ~1 min
#   LOOM_MAX_PREEMPTIONS=6 LOOM_ONLY=executor::model bash .ci/loom.sh
#                                             # the run loop's deep mode, ~25 s
#   (LOOM_SKIP: space-separated name patterns)
#   LOOM_ONLY=task::model bash .ci/loom.sh    # the models whose path has this
#
# It sets `--cfg loom` itself, in a target directory of its own
# (target/loom) so the ordinary build's cache is left alone. Release mode:
# loom runs each model thousands of times.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
# Unset or empty: loom's default, no bound.
if [ -z "${LOOM_MAX_PREEMPTIONS+set}" ]; then
    export LOOM_MAX_PREEMPTIONS=3
elif [ -z "$LOOM_MAX_PREEMPTIONS" ]; then
    unset LOOM_MAX_PREEMPTIONS
fi
echo "loom: LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-unbounded}"
start=$SECONDS
for crate in tarn-selector tarn-reactor tarn-executor; do
    began=$SECONDS
    # One model at a time: a failing model aborts its process (loom panics
    # while unwinding), and its output is then the last thing printed.
    skip=()
    for pattern in ${LOOM_SKIP:-}; do skip+=(--skip "$pattern"); done
    cargo test --release -q -p "$crate" --lib -- "${LOOM_ONLY:-model::}" \
        "${skip[@]}" --test-threads=1
    echo "-- loom $crate: $((SECONDS - began)) s"
done
echo "loom: every model passed in $((SECONDS - start)) s"
