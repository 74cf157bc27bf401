#!/usr/bin/env bash
# Benchmarks: cold start, memory, CPU, AWS calls, latency mode and zip sizes of the five
# functions, written to BENCHMARKS.md (what is measured and how: tests/src/bin/arc-bench.rs).
#
#   scripts/bench.sh                  full: release build of the five functions, both zips
#                                     (scripts/build-lambdas.sh), full sizes -> BENCHMARKS.md
#   scripts/bench.sh --quick          small sizes on the debug build (what .ci/run runs; proves
#                                     the suite runs, its figures are not comparable)
#   scripts/bench.sh --out FILE       write the report to FILE
#
# docs/benchmark-notes.md (what bounds each figure, with the profiles behind it) is appended
# to the report.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. "$HOME/.cargo/env" 2>/dev/null || true

mode=full
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --out) out="${2:-}"; shift ;;
    *) echo "usage: $0 [--quick] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
target="${CARGO_TARGET_DIR:-$root/target}"

scripts/moto.sh install >/dev/null
cargo build -p arc-integration-tests --bin arc-bench
if [ "$mode" = quick ]; then
  cargo build --workspace --bins
  bin_dir="$target/debug"
  out="${out:-$root/build/benchmarks-quick.md}"
  extra=(--quick)
else
  cargo build --release -p arc-handlers -p arc-sweeper --bins
  scripts/build-lambdas.sh --arch arm64
  scripts/build-lambdas.sh --arch x86_64
  bin_dir="$target/release"
  out="${out:-$root/BENCHMARKS.md}"
  extra=()
fi
ARC_BENCH_NOTES="$root/docs/benchmark-notes.md" \
  "$target/debug/arc-bench" "${extra[@]}" --bin-dir "$bin_dir" --zips "$root/build/lambda" --out "$out" >/dev/null
echo "wrote $out"
