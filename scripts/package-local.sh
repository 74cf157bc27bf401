#!/usr/bin/env bash
# Packages the host-built debug binaries for the local (moto) apply:
#   target/debug/<name>  ->  build/lambda/local/<name>/bootstrap.zip   (entry named `bootstrap`)
# for initialize, handle-error, aggregate, complete, sweeper. `cargo build --workspace --bins`
# (scripts/test.sh) builds them first. Debug info is stripped (when `strip` exists): a
# debug binary is ~340 MB with it, ~40 MB without. Prints the zip folder.
set -euo pipefail
BINARIES=(initialize handle-error aggregate complete sweeper)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$root/build/lambda/local"

missing=()
for name in "${BINARIES[@]}"; do
  [ -x "$target_dir/debug/$name" ] || missing+=("$target_dir/debug/$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "package-local.sh: the Lambda binaries are not built: ${missing[*]}" >&2
  echo "package-local.sh: run 'cargo build --workspace --bins' first" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for name in "${BINARIES[@]}"; do
  mkdir -p "$out/$name"
  bin="$target_dir/debug/$name"
  if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$tmp/$name" "$bin"
    bin="$tmp/$name"
  fi
  python3 - "$bin" "$out/$name/bootstrap.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16  # regular file, rwxr-xr-x: Lambda runs it as is
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read())
PY
done
echo "$out"
