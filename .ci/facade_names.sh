#!/usr/bin/env bash
# Every type in the facade's public signatures is nameable through `tarn`:
# in the docs of `cargo doc --workspace`, rustdoc links a type to its page
# under `tarn/` when the facade re-exports it, and to the crate that defines
# it otherwise. So no page under target/doc/tarn/ may link into another
# tarn crate, except to the two crates the facade re-exports whole
# (`tarn::selector`, `tarn::blocking`).
# Called by .ci/run after the docs are built; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=target/doc/tarn
[ -d "$doc" ] || { echo "$doc is missing: run cargo doc --workspace first" >&2; exit 1; }
stray=$(grep -rhoE 'href="(\.\./)+tarn_[a-z_]+/[^"]*"' "$doc" |
    sed -E 's/href="(\.\.\/)+//; s/"$//' |
    grep -vxE 'tarn_(selector|blocking)/index\.html' | sort -u || true)
if [ -n "$stray" ]; then
    echo "the facade's docs link to items a user cannot name through tarn:" >&2
    echo "$stray" >&2
    exit 1
fi
echo "facade: every linked type is nameable through tarn"
