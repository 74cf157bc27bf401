#!/usr/bin/env bash
# The project's test command (what .ci/run runs): builds every Lambda binary, runs the unit and
# integration suites (each integration test process starts its own pinned moto server on a
# free 127.0.0.1 port), then the Terraform checks and the local lifecycle when present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "moto (pinned) in .venv-moto"
scripts/moto.sh install

step "cargo build --workspace --bins"
cargo build --workspace --bins

step "cargo test --workspace"
cargo test --workspace --no-fail-fast

step "reliability scenarios, quick mode (scripts/reliability.sh; RELIABILITY.md is the --full run)"
scripts/reliability.sh --out build/reliability-quick.md

step "benchmarks, quick mode (scripts/bench.sh --quick; BENCHMARKS.md is the full run)"
scripts/bench.sh --quick

step "cargo deny check licenses bans sources (deny.toml; offline)"
scripts/install-tools.sh cargo-deny
# cargo-deny reads the metadata of every platform's dependencies: fetch them all first (the
# builds above only downloaded this platform's).
cargo fetch --locked
.tools/bin/cargo-deny --offline check --hide-inclusion-graph licenses bans sources

if [ -x scripts/check-terraform.sh ]; then
  step "terraform module checks"
  # After the apply of terraform/examples/local, the handlers and the sweeper run against the
  # tables, bucket and state machine Terraform created.
  ARC_DEPLOYED_TEST_CMD="cargo test --workspace --no-fail-fast --test deployed -- --ignored" \
    scripts/check-terraform.sh
fi

if [ -x scripts/lifecycle-check.sh ]; then
  step "local benchmark-run lifecycle"
  scripts/lifecycle-check.sh
fi

step "all checks passed"
