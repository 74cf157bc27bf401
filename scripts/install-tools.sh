#!/usr/bin/env bash
# Installs the cargo tools the checks use, pinned, into the project's own root `.tools/`
# (CARGO_INSTALL_ROOT; git-ignored), from crates.io with `--locked`. A tool already there at
# the pinned version is skipped, so a warm machine pays nothing. Prints how long an install
# took (cargo-deny builds from source: a few minutes on a 2-core machine).
#
#   scripts/install-tools.sh            # every tool
#   scripts/install-tools.sh cargo-deny # one tool
#
# The tools are then at .tools/bin/<tool> (scripts call them by that path).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$HOME/.cargo/env" 2>/dev/null || true

# name=version, one per tool.
PINNED=(
  "cargo-deny=0.20.2"
)

tools_root="${ARC_TOOLS_ROOT:-$root/.tools}"

install_one() {
  local name="$1" version="$2" bin="$tools_root/bin/$1"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "$name $version"; then
    echo "$name $version: already in ${tools_root#"$root"/}/bin"
    return 0
  fi
  echo "$name $version: installing into ${tools_root#"$root"/} (cargo install --locked)"
  local start=$SECONDS
  # A quick release build: these tools run for seconds, so their own profile's fat LTO and
  # single codegen unit (most of the build time on 2 cores) are not worth it.
  CARGO_INSTALL_ROOT="$tools_root" CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_INCREMENTAL=false \
    cargo install --locked --quiet "$name" --version "$version" --force
  echo "$name $version: installed in $((SECONDS - start)) s"
}

want="${1:-}"
found=0
for entry in "${PINNED[@]}"; do
  name="${entry%%=*}"
  version="${entry#*=}"
  if [ -z "$want" ] || [ "$want" = "$name" ]; then
    install_one "$name" "$version"
    found=1
  fi
done
if [ "$found" = 0 ]; then
  echo "install-tools: unknown tool '$want' (known: ${PINNED[*]})" >&2
  exit 2
fi
