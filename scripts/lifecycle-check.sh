#!/usr/bin/env bash
# The local benchmark-run lifecycle with a small task count and a fixed seed (issue 5):
# starts moto, runs Initialize → Batch jobs run by the worker double → Aggregate → Complete, then sweeps on a
# compressed clock until no task is retryable, and checks the final accounting. arc-local exits
# non-zero itself when the tasks table, run record and S3 report disagree; this script also
# pins the split the seed produces.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bin="${ARC_LOCAL_BIN:-target/debug/arc-local}"
if [ ! -x "$bin" ]; then
  cargo build -p arc-cli --bin arc-local
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$bin" --tasks 12 --seed 7 --failure-rate 0.6 | tee "$out"

want="accounting OK: 12 tasks = 10 completed + 2 failed permanently;"
if ! grep -q "^$want" "$out"; then
  echo "lifecycle-check: expected a final line starting with: $want" >&2
  exit 1
fi
echo "lifecycle-check: ok"
