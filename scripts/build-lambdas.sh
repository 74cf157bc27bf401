#!/usr/bin/env bash
# Builds the five Lambda zips the Terraform module deploys:
#   build/lambda/<arch>/<name>/bootstrap.zip  for initialize, handle-error, aggregate, complete, sweeper
#   scripts/build-lambdas.sh [--arch arm64|x86_64]     (default arm64, the module's default)
# Installs what it needs: cargo-lambda (PyPI, pinned) into .venv-cargo-lambda (it brings
# zig for cross-linking) and, for arm64, the aarch64-unknown-linux-gnu Rust target.
set -euo pipefail
CARGO_LAMBDA_VERSION="1.9.2"
BINARIES=(initialize handle-error aggregate complete sweeper)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-cargo-lambda"

arch="arm64"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "build-lambdas.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  arm64) target_flag="--arm64"; rust_target="aarch64-unknown-linux-gnu" ;;
  x86_64) target_flag="--x86-64"; rust_target="x86_64-unknown-linux-gnu" ;;
  *) echo "build-lambdas.sh: --arch must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac

# shellcheck disable=SC1091
. "$HOME/.cargo/env" 2>/dev/null || true

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('cargo-lambda') != '$CARGO_LAMBDA_VERSION')" 2>/dev/null; then
  echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
export PATH="$venv/bin:$PATH"

if ! rustup target list --installed | grep -qx "$rust_target"; then
  rustup target add "$rust_target"
fi

out="$root/build/lambda/$arch"
mkdir -p "$out"
bin_args=()
for name in "${BINARIES[@]}"; do bin_args+=(--bin "$name"); done

cd "$root"
cargo lambda build --release "$target_flag" --output-format zip --lambda-dir "$out" "${bin_args[@]}"

for name in "${BINARIES[@]}"; do
  if [ ! -f "$out/$name/bootstrap.zip" ]; then
    echo "build-lambdas.sh: expected $out/$name/bootstrap.zip was not produced" >&2
    exit 1
  fi
  echo "$out/$name/bootstrap.zip"
done
