#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs each one briefly, to prove
# they still work; the figures of a quick run are rough.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --manifest-path bench/Cargo.toml --bin selector -- --quick
cargo run --release --manifest-path bench/Cargo.toml --bin executor -- --quick
