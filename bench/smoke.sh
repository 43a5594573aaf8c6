#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs each one briefly, to prove
# they still work; the figures of a quick run are rough.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --manifest-path bench/Cargo.toml --bin selector -- --quick
cargo run --release --manifest-path bench/Cargo.toml --bin executor -- --quick
# The servers against tokio and smol: one round of 2 s runs (about 40 s).
bench/run.sh --quick
# hyper on tarn against hyper on tokio: one round of 1 s runs and small
# callgrind batches, without the tarn-hyper Server variant (about 17 s).
bash bench/hyper.sh --quick --no-server
# Thread per core against tokio and smol, one and two threads: one round
# of 2 s runs and 1 s callgrind loads (about 60 s).
bash bench/per_core.sh --quick
