#!/bin/sh
# list_kernels.sh LIBRARY LISTER ARCH...: prints the kernels of the CUDA backend's
# fat binary for each architecture (sm_80 sm_90 ...) and checks that every
# __global__ function of cuda/*.cu is there for each one, and that PTX is there
# for the newest, so later GPUs can run it. Fails when anything is missing.
set -eu
library="$1"; lister="$2"; shift 2
listing="$("$lister" "$library")"

# The kernels the sources define: `__global__ void [__launch_bounds__(...)] name(`.
expected="$(cat cuda/*.cu | tr '\n' ' ' |
  grep -oE '__global__[[:space:]]+void[[:space:]]+(__launch_bounds__[[:space:]]*\([^)]*\)[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*' |
  awk '{print $NF}' | sort -u)"
[ -n "$expected" ] || { echo "list_kernels: no __global__ functions found in cuda/*.cu"; exit 1; }

missing=0
for arch in "$@"; do
  functions="$(printf '%s\n' "$listing" | awk -v arch="$arch" '$1 == arch {print $2}' | sort -u)"
  count=0
  echo "== $arch"
  for kernel in $expected; do
    # Itanium mangling writes the name as <length><name>; extern "C" kernels keep it bare.
    instances="$(printf '%s\n' "$functions" | grep -cE "^(${kernel}\$|_Z.*[^0-9]${#kernel}${kernel}|_Z${#kernel}${kernel})" || true)"
    if [ "$instances" -eq 0 ]; then
      echo "  MISSING $kernel"
      missing=$((missing + 1))
    else
      printf '  %-40s %3d instance(s)\n' "$kernel" "$instances"
      count=$((count + instances))
    fi
  done
  echo "  $count kernel functions for $(printf '%s\n' "$expected" | wc -l) kernels"
done
newest="$(for arch in "$@"; do echo "$arch"; done | sort | tail -n 1 | sed 's/^sm_/compute_/')"
if printf '%s\n' "$listing" | grep -q "^ptx $newest\$"; then
  echo "== PTX for $newest: present"
else
  echo "== PTX for $newest: MISSING"
  missing=$((missing + 1))
fi
[ "$missing" -eq 0 ] || { echo "list_kernels: $missing missing"; exit 1; }
